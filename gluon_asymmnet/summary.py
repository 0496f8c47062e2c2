"""``python -m gluon_asymmnet.summary NAME``: parameters and MACs of a zoo model, per layer.

Console script ``asymmnet-summary``; the counting is :mod:`gluon_asymmnet.complexity`.
"""
import sys

from .cli import MAX_INPUT_SIZE, OneLineParser, check_ranges, run
from .complexity import summary
from .errors import UsageError
from .model_zoo import get_model, get_model_config

__all__ = ['main']


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
    parser.add_argument('model', help='zoo name, e.g. asymmnet_large_1.0')
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument('--asymmrate', type=int, default=None)
    parser.add_argument('--totals-only', action='store_true', help='skip the per-layer table')
    args = parser.parse_args(argv)
    check_ranges(parser, args, (('input_size', 32, MAX_INPUT_SIZE, True, True),
                                ('classes', 1, None, True, True),
                                ('asymmrate', 0, None, True, True)))
    return run(parser, _summarise, args)


if __name__ == '__main__':
    sys.exit(main())
