"""``python -m gluon_asymmnet.summary NAME``: parameters and MACs of a zoo model, per layer.

``--zoo-table`` prints README's table of the zoo instead, ``--update FILE`` writes it
between ``<!-- zoo:begin -->`` and ``<!-- zoo:end -->`` in ``FILE``
(``tests/test_docs.py`` checks that README's table is the generated one).
Console script ``asymmnet-summary``; the counting is :mod:`gluon_asymmnet.complexity`.
"""
import sys

from .cli import MAX_INPUT_SIZE, OneLineParser, check_ranges, run
from .complexity import summary
from .errors import UsageError
from .fileio import read_block, replace_block
from .model_zoo import GHOSTNET_WIDTHS, WIDTHS, get_model, get_model_config

__all__ = ['main', 'zoo_table', 'ZOO_TABLE_MODELS', 'ZOO_BLOCK']

#: The rows of README's zoo table: AsymmNet at every width, its r=0 twins, GhostNet.
ZOO_TABLE_MODELS = tuple(['asymmnet_%s_%s' % (arch, width) for arch in ('large', 'small')
                          for width in WIDTHS]
                         + ['mobilenetv3_large_1.0', 'mobilenetv3_small_1.0']
                         + ['ghostnet_%s' % width for width in GHOSTNET_WIDTHS])
#: The marker name of the generated table: ``<!-- zoo:begin -->`` ... ``<!-- zoo:end -->``.
ZOO_BLOCK = 'zoo'


def zoo_table(names=ZOO_TABLE_MODELS, input_size=224, classes=1000):
    """The markdown table of ``names``: MACs, trainable parameters, the paper's top-1."""
    lines = ['Made by `python -m gluon_asymmnet.summary --zoo-table` (%dx%d, %d classes; MACs of '
             'convolutions and dense layers; trainable parameters include BatchNorm gamma/beta; '
             'top-1: the paper\'s ImageNet figure).' % (input_size, input_size, classes), '',
             '| model | MACs | trainable params | paper top-1 |', '|---|---|---|---|']
    for name in names:
        net = get_model(name, classes=classes)
        net.initialize()
        stats = summary(net, (1, 3, input_size, input_size))
        paper = get_model_config(name).paper
        label = name + (' (r=0)' if name.startswith('mobilenetv3_') else '')
        lines.append('| %s | %.2fM | {:,} | %s |'.format(stats.trainable_params)
                     % (label, stats.macs / 1e6, '%s%%' % paper.top1 if paper else ''))
    return '\n'.join(lines) + '\n'


def _zoo_table(args):
    if args.update:   # before the counting: a file without the markers is one line at once
        try:
            read_block(args.update, ZOO_BLOCK)
        except (OSError, ValueError) as error:
            raise UsageError('--update %s: %s' % (args.update, getattr(error, 'strerror', None)
                                                   or error)) from None
    text = zoo_table(input_size=args.input_size, classes=args.classes)
    if not args.update:
        print(text, end='')
        return
    replace_block(args.update, ZOO_BLOCK, text)
    print('updated %s' % args.update)


def _summarise(args):
    kwargs = {'classes': args.classes}
    if args.asymmrate is not None:
        kwargs['asymmrate'] = args.asymmrate
    try:
        net = get_model(args.model, **kwargs)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    net.initialize()
    stats = summary(net, (1, 3, args.input_size, args.input_size))
    if not args.totals_only:
        print(stats.table())
    print('{}: {:.2f}M MACs, {:,} trainable params ({:,} in all) at {}x{}'.format(
        args.model, stats.macs / 1e6, stats.trainable_params, stats.params,
        args.input_size, args.input_size))
    paper = get_model_config(args.model).paper
    if paper and args.classes == 1000 and args.input_size == 224:
        print('paper: {}% top-1, {}M MAdds, {} params (the original counter multiplied '
              'k x k kernels by k, not k^2)'.format(*paper))


def main(argv=None):
    """Command line: print the table and totals of a zoo model."""
    parser = OneLineParser(prog='python -m gluon_asymmnet.summary',
                           description='Count parameters and MACs of a zoo model.')
    parser.add_argument('model', nargs='?', help='zoo name, e.g. asymmnet_large_1.0')
    parser.add_argument('--input-size', type=int, default=224, help='side of the square input')
    parser.add_argument('--classes', type=int, default=1000, help='outputs of the classifier')
    parser.add_argument('--asymmrate', type=int, default=None,
                        help='reused input copies per side (default: the model\'s)')
    parser.add_argument('--totals-only', action='store_true', help='skip the per-layer table')
    parser.add_argument('--zoo-table', action='store_true',
                        help='print the markdown table of the zoo (README\'s) instead of one model')
    parser.add_argument('--update', metavar='FILE',
                        help='with --zoo-table: write it between <!-- zoo:begin/end --> in FILE')
    args = parser.parse_args(argv)
    if args.zoo_table == bool(args.model):
        parser.error('give a zoo name or --zoo-table')
    if args.update and not args.zoo_table:
        parser.error('--update writes the table of --zoo-table')
    check_ranges(parser, args, (('input_size', 32, MAX_INPUT_SIZE, True, True),
                                ('classes', 1, None, True, True),
                                ('asymmrate', 0, None, True, True)))
    return run(parser, _zoo_table if args.zoo_table else _summarise, args)


if __name__ == '__main__':
    sys.exit(main())
