"""The memory-traffic bound: AsymmNet / r=0 in bytes of activations, per network and width.

On a CPU these networks are memory-bound, so the ratio of the bytes of
activations their operators read and write (``gluon_asymmnet.complexity.traffic``,
views free) is what the time ratio can be held to.  For each architecture and
width:

- inference, counted on the graph that computes the feature reuse without the
  concatenated map (``formulation='split'``): as MXNet runs it, every operator
  unfused (the bound of the hybridized and imperative backends), and as a
  fusing runtime runs it, BatchNorm and activations inside the convolutions,
  additions accumulated into a convolution's output (the bound of ONNX Runtime
  and oneDNN's fused graph);
- inference and a training step with the concat materialised and without it
  (its consumers reading the parts), on the training graph;
- the first estimate, the ratio of the operators' output sizes.

No timing: the numbers do not depend on the machine.  ``bench/inference.py``
and ``bench/train_step.py`` print each time ratio next to its bound.

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
#: How far above its memory-traffic bound an inference time ratio may be (the
#: margin of ``bench/inference.py`` and ``bench/ort_profile.py``).
BOUND_MARGIN = 0.05
#: The batch the graphs are traced at (bytes are per image; at batch 32 a CPU's
#: inference graph splits every block, see ``gluon_asymmnet.models.feature_reuse``).
BATCH = 32


@functools.lru_cache(maxsize=None)
def _counted(name, size, formulation='concat', graph='training'):
    net = get_model(name, formulation=formulation)
    net.initialize()
    return traffic(net, (BATCH, 3, size, size), graph=graph)


def traffic_ratios(arch, width, size=224):
    """AsymmNet / r=0 (our MobileNetV3 of the same width) in bytes of activations.

    Returns
    -------
    dict
        ``inference`` and ``inference_fused``: the inference graph without the
        concatenated map, unfused and fused (see the module docstring);
        ``inference_concat`` (with it, unfused); ``training``,
        ``training_concat`` (a training step without / with the concat
        materialised); ``outputs`` (ratio of the sums of the operators' output
        sizes, concat included: the first estimate).
    """
    names = ['%s_%s_%s' % (family, arch, width) for family in ('asymmnet', 'mobilenetv3')]
    ratios = {}

    def ratio(key, counted, **kwargs):
        ratios[key] = counted[0].total(**kwargs) / counted[1].total(**kwargs)

    split = [_counted(name, size, 'split', 'inference') for name in names]
    ratio('inference', split)
    ratio('inference_fused', split, fused=True)
    concat = [_counted(name, size) for name in names]
    ratio('inference_concat', concat)
    ratio('training', concat, training=True, concat=False)
    ratio('training_concat', concat, training=True)
    outputs = [sum(layer.forward_write for layer in counted.layers) for counted in concat]
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
                r0_split = _counted('mobilenetv3_%s_%s' % (arch, width), size, 'split',
                                    'inference')
                rows.append(dict(arch=arch, width=width, size=size,
                                 r0_inference_mb=r0_split.total() / 1e6,
                                 r0_inference_fused_mb=r0_split.total(fused=True) / 1e6,
                                 r0_training_mb=r0.total(training=True) / 1e6,
                                 **traffic_ratios(arch, width, size)))
    print_table(rows, ['arch', 'width', 'size', 'r0_inference_mb', 'r0_inference_fused_mb',
                       'r0_training_mb', 'inference', 'inference_fused', 'inference_concat',
                       'training', 'training_concat', 'outputs'])
    write_result('traffic', dict(
        rows=rows, note='AsymmNet / r=0 bytes of activations read and written per image '
                        '(gluon_asymmnet.complexity.traffic); inference, inference_fused: the '
                        'inference graph without the feature-reuse concat, every operator '
                        'unfused / as a fusing runtime runs it; training: the training step '
                        'without the concat; *_concat: with it; outputs: ratio of the '
                        'operators\' output sizes; r0_*_mb: MB per image of the r=0 network'))


if __name__ == '__main__':
    main()
