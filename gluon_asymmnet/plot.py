"""Plot a training run's curves (loss, accuracy, top-1/top-5, learning rate) to a PNG.

The source is a run folder, its ``metrics.jsonl`` or a training log in the
original format (see :mod:`gluon_asymmnet.run_metrics`). Training and validation
loss share a panel; top-5 is drawn only for runs of more than 5 classes (as far
as the run's ``run.json`` tells; with fewer it is always 100%). Legends, the
best epoch's among them, sit below their panels, so that they never cover a curve.

CLI: ``python -m gluon_asymmnet.plot SOURCE [-o OUT.png]``.
"""
import os
import sys

from .cli import OneLineParser, add_force_flag, check_output, run
from .fileio import atomic_save, writable_target
from .records import RecordError, read_run_record
from .run_metrics import read_run

__all__ = ['plot_run', 'draw_run', 'run_classes', 'default_output', 'main']

#: The top-k accuracy drawn beside top-1, for runs of more than this many classes.
TOP_K = 5


def _series(epochs, key):
    points = [(epoch, values[key]) for epoch, values in sorted(epochs.items()) if key in values]
    return [epoch for epoch, _ in points], [value for _, value in points]


def _panel(axes, epochs, curves, title, ylabel, percent=False):
    """Draw ``curves`` (``(key, label)``), or say that none was recorded."""
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
    if not drawn:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.text(0.5, 0.5, 'not recorded', ha='center', va='center', transform=axes.transAxes,
                  color='gray')


def default_output(source):
    """Where :func:`plot_run` writes by default: ``<run folder>/curves.png`` for a folder,
    else the source's name with ``.png``."""
    return (os.path.join(source, 'curves.png') if os.path.isdir(source)
            else os.path.splitext(source)[0] + '.png')


def _legend_below(axes):
    """The panel's legend under its x label: outside the axes, so it covers no curve."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, -0.16),
                    ncol=2, fontsize='small', frameon=False)


def run_classes(source):
    """The number of classes of the run that ``source`` (a run folder or a file in one)
    belongs to, from its ``run.json``; None when no record tells."""
    folder = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    try:
        record, classes_unknown = read_run_record(folder)
    except RecordError:
        return None
    return None if classes_unknown else record.net.classes


def draw_run(epochs, title, classes=None):
    """The figure of a run's curves.

    Three panels: training and validation loss; training accuracy with
    validation top-1 and top-5 (percent; top-5 only for more than :data:`TOP_K`
    classes or unknown ones), the best top-1 marked by a star; learning rate.
    Each legend, with the best top-1 and its epoch, lies below its panel.

    Parameters
    ----------
    epochs : dict
        ``{epoch: {metric: value}}`` (:func:`gluon_asymmnet.run_metrics.read_run`).
    title : str
    classes : int, optional
        The run's number of classes (None: unknown).

    Returns
    -------
    matplotlib.figure.Figure
        1500 x 450 pixels at its 100 dpi.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    loss, accuracy, rate = figure.subplots(1, 3)
    _panel(loss, epochs, [('train_loss', 'train loss'), ('val_loss', 'val loss')], 'loss', 'loss')
    curves = [('train_acc', 'train accuracy'), ('val_top1', 'val top-1')]
    if classes is None or classes > TOP_K:
        curves.append(('val_top5', 'val top-%d' % TOP_K))
    _panel(accuracy, epochs, curves, 'accuracy', '%', percent=True)
    xs, ys = _series(epochs, 'val_top1')
    if xs:
        best = max(range(len(ys)), key=ys.__getitem__)
        accuracy.plot([xs[best]], [100 * ys[best]], linestyle='none', marker='*', markersize=12,
                      color='black', zorder=3,
                      label='best top-1 %.2f%% (epoch %d)' % (100 * ys[best], xs[best]))
    _panel(rate, epochs, [('lr', 'learning rate')], 'learning rate', 'lr')
    for axes in (loss, accuracy, rate):
        _legend_below(axes)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_run(source, out_png=None):
    """Plot a run's curves to a PNG file (:func:`draw_run`).

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
    epochs = read_run(source)
    out_png = out_png or default_output(source)
    figure = draw_run(epochs, os.path.basename(os.path.normpath(source)), run_classes(source))
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
