"""Does a hybridized network's speed at a batch size depend on the batches it ran before?

A hybridized network runs, at each call, the graph of that call's input shape
(``gluon_asymmnet.models.graphs.GraphPerInput``): on a CPU, batch 32 at 224x224
computes the feature reuse without the concatenated map, batch 1 concatenates.
This benchmark times hybridized inference (``static_alloc``, ``static_shape``),
interleaved, of

* ``fresh``: a network whose first call had this batch size;
* ``after_other``: a network first called at the other batch size (1 before 32,
  32 before 1), then at this one;
* ``asymmrate0``: MobileNetV3 at the same width, fresh (the reference);

and reports each as a ratio to ``asymmrate0`` at the same batch size (median of
the rounds, with the rounds' range), and ``after_other / fresh``.

    OMP_NUM_THREADS=2 python bench/call_order.py --model asymmnet_large_1.0
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model  # noqa: E402
import mxnet as mx  # noqa: E402
from timing import common_arguments, interleaved_medians, print_table, write_result  # noqa: E402

BATCHES = (1, 32)


def _hybridized(name, first_batch, size):
    """A hybridized ``name`` (random weights) that has run once at ``first_batch``."""
    net = get_model(name, classes=1000)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.zeros((first_batch, 3, size, size))).wait_to_read()
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='asymmnet_large_1.0',
                        choices=['asymmnet_%s_%s' % (a, w) for a in ('large', 'small')
                                 for w in ('1.0', '0.75', '0.5', '0.35')])
    parser.add_argument('--size', type=int, default=224)
    common_arguments(parser, repeats=7, warmup=2)
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error('need --size >= 32')
    baseline = args.model.replace('asymmnet_', 'mobilenetv3_')
    calls = {}
    for batch in BATCHES:
        other = BATCHES[1 - BATCHES.index(batch)]
        x = mx.nd.random.uniform(shape=(batch, 3, args.size, args.size))
        for variant, name, first in (('fresh', args.model, batch),
                                     ('after_other', args.model, other),
                                     ('asymmrate0', baseline, batch)):
            net = _hybridized(name, first, args.size)
            calls[(batch, variant)] = lambda net=net, x=x: net(x)
    labels = {key: '%s@%d' % (key[1], key[0]) for key in calls}
    rounds = {key: [] for key in calls}
    for round_index in range(args.repeats):   # one interleaved round at a time: the spread
        times = interleaved_medians({labels[key]: fn for key, fn in calls.items()}, repeats=1,
                                    warmup=args.warmup if round_index == 0 else 1)
        for key in calls:
            rounds[key].append(times[labels[key]])
    rows = []
    for batch in BATCHES:
        reference = rounds[(batch, 'asymmrate0')]
        for variant in ('fresh', 'after_other', 'asymmrate0'):
            ratios = [t / r for t, r in zip(rounds[(batch, variant)], reference)]
            rows.append(dict(batch=batch, variant=variant,
                             ms=1e3 * statistics.median(rounds[(batch, variant)]),
                             vs_asymmrate0=statistics.median(ratios),
                             lowest=min(ratios), highest=max(ratios)))
        order = [a / f for a, f in zip(rounds[(batch, 'after_other')], rounds[(batch, 'fresh')])]
        rows.append(dict(batch=batch, variant='after_other / fresh', ms='',
                         vs_asymmrate0=statistics.median(order), lowest=min(order),
                         highest=max(order)))
    print_table(rows, ['batch', 'variant', 'ms', 'vs_asymmrate0', 'lowest', 'highest'])
    write_result('call_order', dict(
        model=args.model, baseline=baseline, size=args.size, repeats=args.repeats, rows=rows,
        note='hybridized inference time relative to the asymmrate=0 network at the same batch '
             'size (median over interleaved rounds, lowest and highest round); after_other: '
             'the network ran the other batch size first'))


if __name__ == '__main__':
    main()
