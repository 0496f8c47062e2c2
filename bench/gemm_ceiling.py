"""The machine's ceiling: a large float32 GEMM's GFLOP/s, and each model's share of it.

A ``2048 x 2048 x 2048`` float32 ``mx.nd.dot`` (oneDNN/MKL GEMM) is timed
interleaved with the batch-32 hybridized inference of AsymmNet-L/S x1.0,
MobileNetV3-L/S x1.0 (ours, ``asymmrate=0``) and GluonCV's MobileNetV3-L/S.
A model's achieved GFLOP/s counts 2 FLOPs per MAC
(``gluon_asymmnet.complexity``); its fraction of the GEMM's GFLOP/s says how
far depthwise-heavy networks are from what the cores can do.

The fastest paths run in a child process of their own (as in
``bench/inference.py``): ONNX Runtime's ``MatMul`` of the same size (its
ceiling) interleaved with AsymmNet-L x1.0 and MobileNetV3-L x1.0 (``asymmrate=0``)
in ONNX Runtime fp32 (the export, and AsymmNet's concatenated export for
reference) and INT8, at the same batch: each model's share of ONNX Runtime's
GEMM, and INT8's throughput against fp32's.

    OMP_NUM_THREADS=2 python bench/gemm_ceiling.py
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model  # noqa: E402
import mxnet as mx  # noqa: E402
from gluon_asymmnet.complexity import summary  # noqa: E402
from timing import (common_arguments, interleaved_medians, medians_in_child,  # noqa: E402
                    print_table, serve_rounds, write_result)
from inference import CONCAT_BACKEND, family_env, model_runner  # noqa: E402

MODELS = ('asymmnet_large_1.0', 'mobilenetv3_large_1.0', 'mobilenetv3_large',
          'asymmnet_small_1.0', 'mobilenetv3_small_1.0', 'mobilenetv3_small')
#: ``backend/model`` timed in ONNX Runtime against its own GEMM.
FASTEST_PATHS = ('onnxruntime/asymmnet_large_1.0', 'onnxruntime/mobilenetv3_large_1.0',
                 CONCAT_BACKEND + '/asymmnet_large_1.0',
                 'int8-onnxruntime/asymmnet_large_1.0', 'int8-onnxruntime/mobilenetv3_large_1.0')
ORT_GEMM = 'onnxruntime/gemm'


def ort_gemm(n):
    """A callable running an ``n x n x n`` float32 ``MatMul`` in ONNX Runtime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.RandomState(0)
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['a', 'b'], ['c'])], 'gemm',
        [helper.make_tensor_value_info('a', TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info('c', TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(rng.uniform(size=(n, n)).astype(np.float32), 'b')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    options = ort.SessionOptions()   # as the models' sessions (gluon_asymmnet.deploy.onnx)
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])
    a = rng.uniform(size=(n, n)).astype(np.float32)
    return lambda: session.run(None, {'a': a})[0]


def _serve(args):
    """Child mode: ONNX Runtime's GEMM and the fastest paths, for the parent."""
    build = {ORT_GEMM: lambda: ort_gemm(args.gemm_size)}
    for key in FASTEST_PATHS:
        backend, name = key.split('/')
        build[key] = (lambda backend=backend, name=name:
                      model_runner(backend, name, args.batch_size, args.size))
    serve_rounds(build, warmup=args.warmup)


def fastest_paths(args, macs):
    """Rows of ONNX Runtime's GEMM and of :data:`FASTEST_PATHS` (timed in a child)."""
    argv = [sys.executable, os.path.abspath(__file__), '--serve', '--gemm-size',
            str(args.gemm_size), '--batch-size', str(args.batch_size), '--size', str(args.size),
            '--warmup', str(args.warmup)]
    times, failures = medians_in_child(argv, family_env('onnxruntime'), args.repeats)
    if ORT_GEMM not in times:
        raise RuntimeError('ONNX Runtime could not run its GEMM: %s' % failures)
    n = args.gemm_size
    ceiling = 2. * n ** 3 / times[ORT_GEMM] / 1e9
    rows = [dict(what='%s %dx%dx%d' % (ORT_GEMM, n, n, n), gflop_s=ceiling, fraction_of_gemm=1.)]
    for key in FASTEST_PATHS:
        if key not in times:
            rows.append(dict(what=key, error=failures.get(key, 'not timed')))
            continue
        name = key.split('/')[1]
        achieved = 2. * macs[name] * args.batch_size / times[key] / 1e9
        rows.append(dict(what=key, gflop_s=achieved, fraction_of_gemm=achieved / ceiling,
                         images_s=args.batch_size / times[key]))
    by_key = {row['what']: row for row in rows}
    speedup = {}
    for name in ('asymmnet_large_1.0', 'mobilenetv3_large_1.0'):
        fp32, int8 = by_key.get('onnxruntime/' + name, {}), by_key.get(
            'int8-onnxruntime/' + name, {})
        if 'images_s' in fp32 and 'images_s' in int8:
            speedup[name] = int8['images_s'] / fp32['images_s']
    return rows, speedup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gemm-size', type=int, default=2048, help='side of the square GEMM')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--serve', action='store_true', help=argparse.SUPPRESS)
    common_arguments(parser, repeats=5, warmup=2)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args)
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
    ort_rows, int8_speedup = fastest_paths(args, macs)
    print_table(ort_rows, ['what', 'gflop_s', 'fraction_of_gemm', 'images_s'])
    print('INT8 / fp32 throughput in ONNX Runtime:',
          ', '.join('%s %.2fx' % item for item in int8_speedup.items()))
    write_result('gemm_ceiling', dict(
        gemm_size=n, batch_size=args.batch_size, size=args.size, gemm_gflop_s=ceiling,
        rows=rows, onnxruntime_rows=ort_rows, int8_speedup=int8_speedup,
        note='2 FLOPs per MAC; models hybridized, batch inference, interleaved '
             'with the GEMM in one process; onnxruntime_rows: ONNX Runtime sessions '
             'interleaved with its own MatMul in a child process'))


if __name__ == '__main__':
    main()
