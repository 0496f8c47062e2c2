"""Plot a training run's curves (loss, accuracy, top-1/top-5, learning rate) to a PNG.

The source is a run folder, its ``metrics.jsonl`` or a training log in the
original format (see :mod:`gluon_asymmnet.run_metrics`).

CLI: ``python -m gluon_asymmnet.plot SOURCE [-o OUT.png]``.
"""
import os
import sys

from .cli import OneLineParser, add_force_flag, check_output, run
from .fileio import atomic_save, writable_target
from .run_metrics import read_run

__all__ = ['plot_run', 'default_output', 'main']


def _series(epochs, key):
    points = [(epoch, values[key]) for epoch, values in sorted(epochs.items()) if key in values]
    return [epoch for epoch, _ in points], [value for _, value in points]


def _panel(axes, epochs, curves, title, ylabel, percent=False):
    drawn = False
    for key, label in curves:
        xs, ys = _series(epochs, key)
        if xs:
            ys = [100 * y for y in ys] if percent else ys
            axes.plot(xs, ys, label=label, marker='.' if len(xs) < 30 else None)
            drawn = True
    axes.set_title(title)
    axes.set_xlabel('epoch')
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(loc='best', fontsize='small')
    else:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.text(0.5, 0.5, 'not recorded', ha='center', va='center', transform=axes.transAxes,
                  color='gray')
    return drawn


def default_output(source):
    """Where :func:`plot_run` writes by default: ``<run folder>/curves.png`` for a folder,
    else the source's name with ``.png``."""
    return (os.path.join(source, 'curves.png') if os.path.isdir(source)
            else os.path.splitext(source)[0] + '.png')


def plot_run(source, out_png=None):
    """Plot a run's curves to a PNG file.

    Three panels: training (and validation) loss; training accuracy with
    validation top-1/top-5 (percent, the best top-1 marked); learning rate.

    Parameters
    ----------
    source : str
        A run folder, a ``metrics.jsonl`` file, or a log in the original format.
    out_png : str, optional
        Output file (default: :func:`default_output`).

    Returns
    -------
    str
        The PNG's path (written atomically: :func:`gluon_asymmnet.fileio.atomic_save`).

    Raises
    ------
    UsageError
        As :func:`gluon_asymmnet.run_metrics.read_run`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = read_run(source)
    out_png = out_png or default_output(source)
    figure = Figure(figsize=(15, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    loss, accuracy, rate = figure.subplots(1, 3)
    _panel(loss, epochs, [('train_loss', 'train loss'), ('val_loss', 'val loss')], 'loss', 'loss')
    if _panel(accuracy, epochs, [('train_acc', 'train accuracy'), ('val_top1', 'val top-1'),
                                 ('val_top5', 'val top-5')], 'accuracy', '%', percent=True):
        xs, ys = _series(epochs, 'val_top1')
        if xs:
            best = max(range(len(ys)), key=ys.__getitem__)
            accuracy.annotate('best top-1 %.2f%% (epoch %d)' % (100 * ys[best], xs[best]),
                              (xs[best], 100 * ys[best]), textcoords='offset points',
                              xytext=(-10, -30), ha='right', fontsize='small',
                              arrowprops={'arrowstyle': '->', 'color': 'gray'})
    _panel(rate, epochs, [('lr', 'learning rate')], 'learning rate', 'lr')
    figure.suptitle(os.path.basename(os.path.normpath(source)))
    figure.tight_layout()
    writable_target(out_png)
    atomic_save(out_png, lambda tmp: figure.savefig(tmp, format='png'))
    return out_png


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.plot SOURCE [-o OUT.png]``."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.plot',
        description="Plot a training run's loss, accuracy (val top-1/top-5) and learning rate.")
    parser.add_argument('source', help='run folder, metrics.jsonl, or a log in the original format')
    parser.add_argument('-o', '--output', help='PNG file (default: next to the source)')
    add_force_flag(parser)
    args = parser.parse_args(argv)
    print(run(parser, _plot, args))
    return 0


def _plot(args):
    check_output(args.output or default_output(args.source), 'png', args.force)
    return plot_run(args.source, args.output)


if __name__ == '__main__':
    sys.exit(main())
