"""Plot a training run's curves (loss, accuracy, top-1/top-5, learning rate) to a PNG.

Reads either the run's ``metrics.jsonl`` (one JSON object per epoch with keys
``epoch, train_loss, train_acc, val_top1, val_top5, lr, samples_per_sec, time``;
give the file or the run folder) or a training log in the original AsymmNet /
GluonCV format::

    Epoch[3] Batch [49]	Speed: 3943.145357 samples/sec	accuracy=0.182021	lr=0.562612
    [Epoch 3] training: accuracy=0.251987            (or loss=..., any key=value pairs)
    [Epoch 3] speed: 4006 samples/sec	time cost: 326.931348
    [Epoch 3] validation: top1=0.332825 top5=0.597941

The learning rate of an epoch is the last one its lines show. An epoch that
appears twice (a resumed run) keeps its last values.

CLI: ``python -m gluon_asymmnet.plot SOURCE [-o OUT.png]``.
"""
import argparse
import json
import os
import re
import sys

__all__ = ['read_run', 'plot_run', 'METRICS_FILE']

#: The per-epoch metrics file of a run folder.
METRICS_FILE = 'metrics.jsonl'

_EPOCH_LINE = re.compile(r'^\[Epoch (\d+)\] (training|validation|speed):\s*(.*)$')
_BATCH_LINE = re.compile(r'^Epoch\[(\d+)\] Batch \[\d+\]')
_PAIR = re.compile(r'([A-Za-z_][\w-]*)\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')
# names in the log -> names in metrics.jsonl
_LOG_KEYS = {
    'training': {'loss': 'train_loss', 'accuracy': 'train_acc', 'acc': 'train_acc',
                 'lr': 'lr'},
    'validation': {'top1': 'val_top1', 'top5': 'val_top5', 'loss': 'val_loss'},
    'speed': {'time cost': 'time'},
}


def _read_metrics(path):
    epochs = {}
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                epoch = int(record['epoch'])
            except (ValueError, KeyError, TypeError):
                raise ValueError('%s: line %d is not a JSON object with an "epoch"'
                                 % (path, number)) from None
            epochs.setdefault(epoch, {}).update(
                (key, float(value)) for key, value in record.items()
                if key != 'epoch' and isinstance(value, (int, float)))
    return epochs


def _read_log(path):
    epochs = {}
    with open(path, errors='replace') as lines:
        for line in lines:
            line = line.strip()
            match = _EPOCH_LINE.match(line)
            if match:
                epoch, kind, rest = int(match.group(1)), match.group(2), match.group(3)
                values = epochs.setdefault(epoch, {})
                if kind == 'speed':
                    speed = re.match(r'([\d.]+) samples/sec', rest)
                    cost = re.search(r'time cost:\s*([\d.]+)', rest)
                    if speed:
                        values['samples_per_sec'] = float(speed.group(1))
                    if cost:
                        values['time'] = float(cost.group(1))
                    continue
                for key, value in _PAIR.findall(rest):
                    if key in _LOG_KEYS[kind]:
                        values[_LOG_KEYS[kind][key]] = float(value)
                continue
            match = _BATCH_LINE.match(line)
            if match:
                lr = re.search(r'\blr=([-+\d.eE]+)', line)
                if lr:
                    epochs.setdefault(int(match.group(1)), {})['lr'] = float(lr.group(1))
    return epochs


def read_run(source):
    """Per-epoch metrics of a run.

    Parameters
    ----------
    source : str
        A run folder (its ``metrics.jsonl``), a ``metrics.jsonl`` file, or a
        training log in the original format.

    Returns
    -------
    dict
        ``{epoch: {'train_loss': ..., 'train_acc': ..., 'val_top1': ...,
        'val_top5': ..., 'lr': ..., ...}}`` with the keys each epoch has.

    Raises
    ------
    ValueError
        ``source`` does not exist, is unreadable, or holds no epoch metrics.
    """
    path = source
    if os.path.isdir(source):
        path = os.path.join(source, METRICS_FILE)
        if not os.path.isfile(path):
            raise ValueError('%s: run folder has no %s' % (source, METRICS_FILE))
    if not os.path.isfile(path):
        raise ValueError('%s: no such file or folder' % source)
    try:
        with open(path, errors='replace') as stream:
            first = next((line for line in stream if line.strip()), '')
        epochs = _read_metrics(path) if first.lstrip().startswith('{') else _read_log(path)
    except OSError as error:
        raise ValueError('%s: cannot read it (%s)' % (path, error.strerror)) from None
    epochs = {epoch: values for epoch, values in epochs.items() if values}
    if not epochs:
        raise ValueError('%s: no per-epoch metrics (neither JSON lines nor "[Epoch N] ..." '
                         'log lines)' % path)
    return epochs


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


def plot_run(source, out_png=None):
    """Plot a run's curves to a PNG file.

    Three panels: training (and validation) loss; training accuracy with
    validation top-1/top-5 (percent, the best top-1 marked); learning rate.

    Parameters
    ----------
    source : str
        A run folder, a ``metrics.jsonl`` file, or a log in the original format.
    out_png : str, optional
        Output file; default ``<run folder>/curves.png`` for a folder, else the
        source's name with ``.png``.

    Returns
    -------
    str
        The PNG's path (written to a temporary name first, then renamed).

    Raises
    ------
    ValueError
        As :func:`read_run`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = read_run(source)
    if out_png is None:
        out_png = (os.path.join(source, 'curves.png') if os.path.isdir(source)
                   else os.path.splitext(source)[0] + '.png')
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
    temporary = out_png + '.tmp'
    figure.savefig(temporary, format='png')
    os.replace(temporary, out_png)
    return out_png


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.plot SOURCE [-o OUT.png]``."""
    parser = argparse.ArgumentParser(
        prog='python -m gluon_asymmnet.plot',
        description="Plot a training run's loss, accuracy (val top-1/top-5) and learning rate.")
    parser.add_argument('source', help='run folder, metrics.jsonl, or a log in the original format')
    parser.add_argument('-o', '--output', help='PNG file (default: next to the source)')
    args = parser.parse_args(argv)
    try:
        out = plot_run(args.source, args.output)
    except (ValueError, OSError) as error:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, error))
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
