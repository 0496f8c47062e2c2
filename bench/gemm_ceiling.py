"""The machine's ceiling: a large float32 GEMM's GFLOP/s, and each model's share of it.

A ``2048 x 2048 x 2048`` float32 ``mx.nd.dot`` (oneDNN/MKL GEMM) is timed
interleaved with the batch-32 hybridized inference of AsymmNet-L/S x1.0,
MobileNetV3-L/S x1.0 (ours, ``asymmrate=0``) and GluonCV's MobileNetV3-L/S.
A model's achieved GFLOP/s counts 2 FLOPs per MAC
(``gluon_asymmnet.complexity``); its fraction of the GEMM's GFLOP/s says how
far depthwise-heavy networks are from what the cores can do.

    OMP_NUM_THREADS=2 python bench/gemm_ceiling.py
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model  # noqa: E402
import mxnet as mx  # noqa: E402
from gluon_asymmnet.complexity import summary  # noqa: E402
from timing import common_arguments, interleaved_medians, print_table, write_result  # noqa: E402

MODELS = ('asymmnet_large_1.0', 'mobilenetv3_large_1.0', 'mobilenetv3_large',
          'asymmnet_small_1.0', 'mobilenetv3_small_1.0', 'mobilenetv3_small')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gemm-size', type=int, default=2048, help='side of the square GEMM')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--size', type=int, default=224)
    common_arguments(parser, repeats=5, warmup=2)
    args = parser.parse_args(argv)
    if args.gemm_size < 64 or args.batch_size < 1 or args.size < 32:
        parser.error('need --gemm-size >= 64, --batch-size >= 1 and --size >= 32')
    n = args.gemm_size
    a, b = mx.nd.random.uniform(shape=(n, n)), mx.nd.random.uniform(shape=(n, n))
    work = {'gemm': lambda: mx.nd.dot(a, b)}
    macs = {}
    x = mx.nd.random.uniform(shape=(args.batch_size, 3, args.size, args.size))
    for name in MODELS:
        net = get_model(name)
        net.initialize(mx.init.MSRAPrelu())
        macs[name] = summary(net, (1, 3, args.size, args.size)).macs
        net.hybridize(static_alloc=True, static_shape=True)
        work[name] = lambda net=net: net(x)
    times = interleaved_medians(work, repeats=args.repeats, warmup=args.warmup)
    ceiling = 2. * n ** 3 / times['gemm'] / 1e9
    rows = [dict(what='gemm %dx%dx%d' % (n, n, n), gflop_s=ceiling, fraction_of_gemm=1.)]
    for name in MODELS:
        achieved = 2. * macs[name] * args.batch_size / times[name] / 1e9
        rows.append(dict(what=name, gflop_s=achieved, fraction_of_gemm=achieved / ceiling,
                         images_s=args.batch_size / times[name]))
    print_table(rows, ['what', 'gflop_s', 'fraction_of_gemm', 'images_s'])
    write_result('gemm_ceiling', dict(
        gemm_size=n, batch_size=args.batch_size, size=args.size, gemm_gflop_s=ceiling,
        rows=rows, note='2 FLOPs per MAC; models hybridized, batch inference, interleaved '
                        'with the GEMM in one process'))


if __name__ == '__main__':
    main()
