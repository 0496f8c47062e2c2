"""Training step speed: AsymmNet against MobileNetV3 (``asymmrate=0``) at equal width.

One step is forward, backward and a NAG update (``gluon.Trainer``), hybridized
with static memory, oneDNN on.  Each AsymmNet and the MobileNetV3 of the same
width run interleaved; the table gives samples/s and the step-time ratio.
``--amp`` runs the whole benchmark in bfloat16 AMP (``mx.contrib.amp``, as
``train_imagenet.py --amp`` on a CPU); AMP changes MXNet globally, so float32
and bfloat16 are two runs (results ``train_step_float32.json`` and
``train_step_bfloat16.json``).  Each step ratio stands next to its
memory-traffic bound (``bench/traffic.py``: bytes of activations of a training
step, without the concatenated map) and passes when it is at most the bound + 10%.

    OMP_NUM_THREADS=2 python bench/train_step.py
    OMP_NUM_THREADS=2 python bench/train_step.py --amp
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from timing import common_arguments, interleaved_medians, print_table, write_result  # noqa: E402
from traffic import traffic_ratios  # noqa: E402

#: How far above its memory-traffic bound a training step's time ratio may be.
BOUND_MARGIN = 0.10

#: (arch, width, input side, batch): large and small 1.0 at 224 (batch 16), then
#: every width at 64 (batch 32).
DEFAULT_CASES = (('large', '1.0', 224, 16), ('small', '1.0', 224, 16)) + tuple(
    (arch, width, 64, 32) for arch in ('large', 'small')
    for width in ('1.0', '0.75', '0.5', '0.35'))


def training_step(name, batch=32, size=64, amp=False, classes=1000, formulation='auto'):
    """A no-argument callable doing one training step of zoo model ``name``.

    Parameters
    ----------
    name : str
        Zoo name.
    batch, size : int
        Batch size and input side.
    amp : bool
        Attach AMP's loss scaler (``mx.contrib.amp.init`` must have been called
        before any network was built).
    classes : int
        Classifier outputs.
    formulation : str
        The feature reuse's formulation (``gluon_asymmnet.models.feature_reuse``).

    Returns
    -------
    callable
        Returns the loss NDArray of the step.
    """
    net = get_model(name, classes=classes, formulation=formulation)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'nag',
                            {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 4e-5})
    if amp:
        from mxnet.contrib import amp as mx_amp
        mx_amp.init_trainer(trainer)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.uniform(shape=(batch, 3, size, size))
    y = mx.nd.array([i % classes for i in range(batch)])

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
            if amp:
                from mxnet.contrib import amp as mx_amp
                with mx_amp.scale_loss(loss, trainer) as scaled:
                    autograd.backward(scaled)
            else:
                loss.backward()
        trainer.step(batch)
        return loss
    return step


def parse_case(text):
    """``arch:width:size[:batch]`` (e.g. ``small:0.5:64:32``) -> tuple (batch 32 if
    not given)."""
    try:
        arch, width, size, *batch = text.split(':')
        size, batch = int(size), int(batch[0]) if batch else 32
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError('expected ARCH:WIDTH:SIZE[:BATCH], got %r'
                                         % text) from None
    if (arch not in ('large', 'small') or width not in ('1.0', '0.75', '0.5', '0.35')
            or size < 32 or batch < 1):
        raise argparse.ArgumentTypeError('expected large|small : 1.0|0.75|0.5|0.35 : size >= 32'
                                         ' [: batch >= 1], got %r' % text)
    return arch, width, size, batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', nargs='+', type=parse_case, default=list(DEFAULT_CASES),
                        metavar='ARCH:WIDTH:SIZE[:BATCH]')
    parser.add_argument('--amp', action='store_true', help='bfloat16 AMP instead of float32')
    common_arguments(parser, repeats=7, warmup=3)
    args = parser.parse_args(argv)
    if args.amp:
        from mxnet.contrib import amp as mx_amp
        mx_amp.init(target_dtype='bfloat16')
    precision = 'bfloat16' if args.amp else 'float32'
    rows = []
    for arch, width, size, batch in args.cases:
        names = ('asymmnet_%s_%s' % (arch, width), 'mobilenetv3_%s_%s' % (arch, width))
        steps = {name: training_step(name, batch, size, args.amp) for name in names}
        times = interleaved_medians(steps, repeats=args.repeats, warmup=args.warmup)
        bound = traffic_ratios(arch, width, size)
        ratio = times[names[0]] / times[names[1]]
        rows.append(dict(arch=arch, width=width, size=size, batch=batch, precision=precision,
                         asymmnet_samples_s=batch / times[names[0]],
                         mobilenetv3_samples_s=batch / times[names[1]], step_ratio=ratio,
                         traffic=bound['training'], traffic_concat=bound['training_concat'],
                         within_bound=ratio <= bound['training'] * (1 + BOUND_MARGIN)))
    print_table(rows, ['arch', 'width', 'size', 'batch', 'precision', 'asymmnet_samples_s',
                       'mobilenetv3_samples_s', 'step_ratio', 'traffic', 'traffic_concat',
                       'within_bound'])
    write_result('train_step_' + precision,
                 dict(rows=rows, repeats=args.repeats, bound_margin=BOUND_MARGIN,
                      note='step_ratio: AsymmNet step time / MobileNetV3 (asymmrate=0) step '
                           'time at the same width, interleaved in one process; traffic '
                           '(traffic_concat): AsymmNet / r=0 bytes of activations of a '
                           'training step without (with) the concat; within_bound: step_ratio '
                           '<= traffic * (1 + bound_margin)'))


if __name__ == '__main__':
    main()
