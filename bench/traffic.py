"""The memory-traffic bound: AsymmNet / r=0 in bytes of activations, per network and width.

On a CPU these networks are memory-bound, so the ratio of the bytes of
activations their operators read and write (``gluon_asymmnet.complexity.traffic``:
per operator as MXNet runs it unfused, views free) is what the time ratio can be
held to.  For each architecture and width: inference and a training step, with
the feature-reuse concat materialised and without it (its consumers reading the
parts), and the first estimate, the ratio of the operators' output sizes.  No
timing: the numbers do not depend on the machine.  ``bench/inference.py`` and
``bench/train_step.py`` print each time ratio next to its traffic ratio.

    python bench/traffic.py                # ~30 s
"""
import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gluon_asymmnet import get_model  # noqa: E402
from gluon_asymmnet.complexity import traffic  # noqa: E402
from timing import print_table, write_result  # noqa: E402

WIDTHS = ('1.0', '0.75', '0.5', '0.35')


@functools.lru_cache(maxsize=None)
def _counted(name, size):
    net = get_model(name, formulation='concat')
    net.initialize()
    return traffic(net, (1, 3, size, size))


def traffic_ratios(arch, width, size=224):
    """AsymmNet / r=0 (our MobileNetV3 of the same width) in bytes of activations.

    Returns
    -------
    dict
        ``inference``, ``inference_concat``, ``training``, ``training_concat``
        (without / with the concat materialised), ``outputs`` (ratio of the sums
        of the operators' output sizes, concat included: the first estimate).
    """
    asymm, r0 = (_counted('%s_%s_%s' % (family, arch, width), size)
                 for family in ('asymmnet', 'mobilenetv3'))
    ratios = {}
    for training, key in ((False, 'inference'), (True, 'training')):
        for concat, suffix in ((False, ''), (True, '_concat')):
            ratios[key + suffix] = (asymm.total(training, concat)
                                    / r0.total(training, concat))
    outputs = [sum(layer.forward_write for layer in counted.layers) for counted in (asymm, r0)]
    ratios['outputs'] = outputs[0] / outputs[1]
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--widths', nargs='+', default=list(WIDTHS), choices=WIDTHS)
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 64],
                        help='input sides (224: inference and training at 224; 64: the '
                             'training benchmark\'s other cases)')
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        for arch in ('large', 'small'):
            for width in args.widths:
                r0 = _counted('mobilenetv3_%s_%s' % (arch, width), size)
                rows.append(dict(arch=arch, width=width, size=size,
                                 r0_inference_mb=r0.total() / 1e6,
                                 r0_training_mb=r0.total(training=True) / 1e6,
                                 **traffic_ratios(arch, width, size)))
    print_table(rows, ['arch', 'width', 'size', 'r0_inference_mb', 'r0_training_mb', 'inference',
                       'inference_concat', 'training', 'training_concat', 'outputs'])
    write_result('traffic', dict(
        rows=rows, note='AsymmNet / r=0 bytes of activations read and written per image '
                        '(gluon_asymmnet.complexity.traffic); inference/training: without '
                        'the feature-reuse concat, *_concat: with it; outputs: ratio of the '
                        'operators\' output sizes; r0_*_mb: MB per image of the r=0 network'))


if __name__ == '__main__':
    main()
