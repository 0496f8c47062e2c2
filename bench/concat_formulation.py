"""The feature-reuse concat: our oneDNN-safe formulation against the workaround.

MXNet 1.9.1's oneDNN cannot back-propagate the original AsymmNet's 4-D channel
``Concat`` (see ``gluon_asymmnet.models.layers.channel_concat``); the original
code trains only with ``MXNET_MKLDNN_ENABLED=0``.  This benchmark times one
training step (batch 32, 64x64, hybridized, NAG) of

* ``asymmrate=0``: MobileNetV3 at the same width, oneDNN on (the reference);
* ``ours``: AsymmNet with the package's formulation, oneDNN on;
* ``mkldnn_off_concat4d``: AsymmNet with the original plain 4-D concat
  (``formulation='concat'``), in a child process started with
  ``MXNET_MKLDNN_ENABLED=0`` (the variable is read once, at start-up).  The
  child steps when the parent asks, so its rounds are interleaved with the
  parent's.

    OMP_NUM_THREADS=2 python bench/concat_formulation.py --model asymmnet_small_0.5
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_step import training_step  # noqa: E402  (first: the package before MXNet)
from timing import common_arguments, interleaved_medians, print_table, write_result  # noqa: E402


def _child(model, batch, size):
    """Serve timed training steps of ``model`` with the 4-D concat over stdin/stdout."""
    import mxnet as mx

    step = training_step(model, batch, size, formulation='concat')
    print('ready', flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        step().wait_to_read()
        mx.nd.waitall()
        print(time.perf_counter() - start, flush=True)


class _ChildStep(object):
    """A callable that makes the child process do one step and waits for it."""

    def __init__(self, model, batch, size):
        env = dict(os.environ, MXNET_MKLDNN_ENABLED='0', MXNET_STORAGE_FALLBACK_LOG_VERBOSE='0')
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--child', '--model', model,
             '--batch-size', str(batch), '--size', str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        if self.process.stdout.readline().strip() != 'ready':
            raise RuntimeError('the MXNET_MKLDNN_ENABLED=0 child failed to start')

    def __call__(self):
        self.process.stdin.write('step\n')
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError('the MXNET_MKLDNN_ENABLED=0 child died')

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='asymmnet_small_0.5',
                        choices=['asymmnet_%s_%s' % (a, w) for a in ('large', 'small')
                                 for w in ('1.0', '0.75', '0.5', '0.35')])
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    common_arguments(parser, repeats=9, warmup=3)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.size < 32:
        parser.error('need --batch-size >= 1 and --size >= 32')
    if args.child:
        return _child(args.model, args.batch_size, args.size)
    baseline = args.model.replace('asymmnet_', 'mobilenetv3_')
    child = _ChildStep(args.model, args.batch_size, args.size)
    try:
        steps = {'asymmrate0': training_step(baseline, args.batch_size, args.size),
                 'ours': training_step(args.model, args.batch_size, args.size),
                 'mkldnn_off_concat4d': child}
        times = interleaved_medians(steps, repeats=args.repeats, warmup=args.warmup)
    finally:
        child.close()
    rows = [dict(variant=name, step_ms=1e3 * seconds,
                 vs_asymmrate0=seconds / times['asymmrate0']) for name, seconds in times.items()]
    print_table(rows, ['variant', 'step_ms', 'vs_asymmrate0'])
    write_result('concat_formulation', dict(
        model=args.model, baseline=baseline, batch_size=args.batch_size, size=args.size,
        rows=rows, note='training step time relative to the asymmrate=0 network at the same '
                        'width with oneDNN on; the mkldnn_off variant runs in a child process'))


if __name__ == '__main__':
    main()
