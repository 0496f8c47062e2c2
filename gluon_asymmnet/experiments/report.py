"""The report of a grid: a Markdown and a CSV table, two figures, AsymmNet against r=0.

Top-1/top-5 are the validation accuracies after the last epoch of each cell (not the
best epoch: choosing the epoch on the validation set would favour noisy runs), as
mean ± sample standard deviation over the seeds.  Each AsymmNet row (``asymmrate >
0``) is compared with its r=0 twin (same family or the same network under its
MobileNetV3 name, same width) by Welch's t-interval over the seeds
(``scipy.stats.ttest_ind(equal_var=False)``); a 95% interval that contains 0 is
reported as within noise.
"""
import collections
import csv
import io
import math
import os

import numpy as np

from ..fileio import atomic_save
from .grid import SAME_NETWORK_AT_R0

__all__ = ['Row', 'Difference', 'mean_std', 'welch_interval', 'differences', 'markdown',
           'write_csv', 'plot_figures', 'write_report', 'replace_block', 'write_text', 'FIGURES']

#: Figure files of the report.
FIGURES = ('top1_vs_madds.png', 'top1_vs_latency.png')

#: One report row: a variant with its measurements and per-seed accuracies (fractions).
Row = collections.namedtuple('Row', 'model family width asymmrate shuffle_group macs params '
                                    'mxnet_ms onnxruntime_ms top1 top5 mxnet_median_ms '
                                    'onnxruntime_median_ms', defaults=(None, None))
Row.__doc__ += (': latencies in ms (``*_ms`` the lowest decile, ``*_median_ms`` the median); '
                'measurements may be None')

#: A row against its r=0 twin: top-1 difference in percentage points and its interval.
Difference = collections.namedtuple('Difference', 'row twin diff low high verdict')


def mean_std(values):
    """``(mean, sample standard deviation)``; the deviation is nan for fewer than 2 values."""
    values = np.asarray(values, dtype=float)
    if not values.size:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def welch_interval(a, b, confidence=0.95):
    """``(mean(a) - mean(b), low, high)``: Welch's t-interval of the difference of means.

    Both samples need at least 2 values (else ``ValueError``).  When both have zero
    variance the interval is the difference itself.
    """
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError('Welch interval needs >= 2 values on each side, got %d and %d'
                         % (a.size, b.size))
    diff = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:
        return diff, diff, diff
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return diff, float(interval.low), float(interval.high)


def _twin(row, rows):
    if not row.asymmrate:
        return None
    families = (row.family, SAME_NETWORK_AT_R0.get(row.family))
    twins = [r for r in rows if r.asymmrate == 0 and r.width == row.width and r.top1 and
             r.family in families]
    twins.sort(key=lambda r: families.index(r.family))
    return twins[0] if twins else None


def differences(rows):
    """Each row with ``asymmrate > 0`` against its r=0 twin (top-1, percentage points)."""
    found = []
    for row in rows:
        twin = _twin(row, rows)
        if twin is None or not row.top1:
            continue
        if len(row.top1) < 2 or len(twin.top1) < 2:
            found.append(Difference(row, twin, 100 * (np.mean(row.top1) - np.mean(twin.top1)),
                                    None, None, 'no interval: needs >= 2 seeds on both sides'))
            continue
        diff, low, high = (100 * v for v in welch_interval(row.top1, twin.top1))
        if low <= 0 <= high:
            verdict = 'within noise (the interval contains 0)'
        else:
            verdict = 'r=%d higher' % row.asymmrate if diff > 0 else 'r=0 higher'
        found.append(Difference(row, twin, diff, low, high, verdict))
    return found


def _option(value):
    return '-' if value is None else str(value)


def _cells(row):
    """The displayed values of a row (text)."""
    top1, top1_std = mean_std(row.top1)
    top5, top5_std = mean_std(row.top5)

    def pct(mean, std):
        if math.isnan(mean):
            return '-'
        return '%.2f' % (100 * mean) if math.isnan(std) else '%.2f ± %.2f' % (100 * mean,
                                                                             100 * std)

    def number(value, fmt):
        return '-' if value is None else fmt % value
    return [row.model, row.width or '-', _option(row.asymmrate), _option(row.shuffle_group),
            number(row.macs and row.macs / 1e6, '%.2f'), number(row.params and row.params / 1e6,
                                                                '%.3f'),
            number(row.mxnet_ms, '%.2f'), number(row.onnxruntime_ms, '%.2f'),
            pct(top1, top1_std), pct(top5, top5_std), str(len(row.top1))]


_HEADER = ['model', 'width', 'asymmrate', 'shuffle', 'MACs (M)', 'params (M)', 'MXNet ms',
           'ONNX Runtime ms', 'top-1 %', 'top-5 %', 'n']


def _label(row):
    return '%s r=%d' % (row.model, row.asymmrate) if row.asymmrate is not None else row.model


def markdown(rows, context, figure_prefix='', notes=()):
    """The report as Markdown.

    Parameters
    ----------
    rows : list of Row
    context : list of str
        Lines saying what was run and measured, how (recipe, data, machine).
    figure_prefix : str
        Path from the Markdown file to the figures.
    notes : list of str
        What was left out or did not finish.
    """
    lines = list(context) + ['', '| %s |' % ' | '.join(_HEADER), '|' + '---|' * len(_HEADER)]
    lines += ['| %s |' % ' | '.join(_cells(row)) for row in rows]
    found = differences(rows)
    if found:
        lines += ['', 'AsymmNet against its r=0 twin (same network with asymmrate 0, same '
                      'width): difference of mean top-1 in percentage points, 95% Welch '
                      't-interval over the seeds.', '',
                  '| AsymmNet | r=0 twin | Δ top-1 (pp) | 95% CI | |', '|---|---|---|---|---|']
        for found_row in found:
            interval = ('-' if found_row.low is None
                        else '[%+.2f, %+.2f]' % (found_row.low, found_row.high))
            lines.append('| %s | %s | %+.2f | %s | %s |' % (
                _label(found_row.row) + (' g=%d' % found_row.row.shuffle_group
                                         if found_row.row.shuffle_group else ''),
                _label(found_row.twin), found_row.diff, interval, found_row.verdict))
    lines += ['', '![top-1 against MAdds](%s%s) ![top-1 against latency](%s%s)'
              % (figure_prefix, FIGURES[0], figure_prefix, FIGURES[1])]
    if notes:
        lines += [''] + ['- %s' % note for note in notes]
    return '\n'.join(lines) + '\n'


def write_csv(rows, path):
    """The table as CSV, numbers unrounded (accuracies in %)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['model', 'family', 'width', 'asymmrate', 'shuffle_group', 'macs', 'params',
                     'mxnet_ms', 'onnxruntime_ms', 'mxnet_median_ms', 'onnxruntime_median_ms',
                     'top1_mean', 'top1_std', 'top5_mean', 'top5_std', 'n'])
    for row in rows:
        top1, top5 = mean_std(row.top1), mean_std(row.top5)
        writer.writerow([row.model, row.family, row.width, _option(row.asymmrate),
                         _option(row.shuffle_group), row.macs, row.params, row.mxnet_ms,
                         row.onnxruntime_ms, row.mxnet_median_ms, row.onnxruntime_median_ms]
                        + ['%.4f' % (100 * v) for v in top1 + top5] +
                        [len(row.top1)])
    write_text(path, buffer.getvalue())


def _line_name(row):
    name = row.family
    if row.asymmrate is not None:
        name += ' r=%d' % row.asymmrate
    if row.shuffle_group:
        name += ' g=%d' % row.shuffle_group
    return name


def plot_figures(rows, folder, title):
    """``top1_vs_madds.png`` and ``top1_vs_latency.png`` (MXNet and ONNX Runtime), one line
    per family and option set through its widths (in order of MAdds), one colour per line in
    every panel, error bars: the standard deviation over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    lines = collections.OrderedDict()
    for row in sorted((r for r in rows if r.top1), key=lambda r: r.macs or 0):
        lines.setdefault(_line_name(row), []).append(row)
    colours = dict(zip(lines, plt.rcParams['axes.prop_cycle'].by_key()['color'] * len(lines)))
    panels = {FIGURES[0]: [('macs', 1e-6, 'MAdds (M)')],
              FIGURES[1]: [('mxnet_ms', 1, 'MXNet batch-1 latency (ms)'),
                           ('onnxruntime_ms', 1, 'ONNX Runtime batch-1 latency (ms)')]}
    for name, axes_spec in panels.items():
        fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.5 * len(axes_spec), 4.5),
                                 squeeze=False)
        for axis, (field, scale, xlabel) in zip(axes[0], axes_spec):
            for label, members in lines.items():
                points = [(getattr(r, field) * scale,) + mean_std(r.top1)
                          for r in members if getattr(r, field) is not None]
                if not points:
                    continue
                x, y, err = (np.array(v, dtype=float) for v in zip(*points))
                axis.errorbar(x, 100 * y, yerr=np.nan_to_num(100 * err), marker='o', capsize=3,
                              label=label, color=colours[label])
            axis.set_xlabel(xlabel)
            axis.set_ylabel('top-1 (%)')
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        atomic_save(os.path.join(folder, name), lambda tmp: fig.savefig(tmp, dpi=100,
                                                                       format='png'))
        plt.close(fig)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    def write(tmp):
        with open(tmp, 'w') as out:
            out.write(text)
    atomic_save(path, write)


def write_report(rows, folder, context, title, notes=()):
    """``report.md``, ``report.csv`` and the figures in ``folder``; returns the Markdown."""
    os.makedirs(folder, exist_ok=True)
    text = markdown(rows, context, notes=notes)
    write_text(os.path.join(folder, 'report.md'), text)
    write_csv(rows, os.path.join(folder, 'report.csv'))
    plot_figures(rows, folder, title)
    return text


def replace_block(path, name, text):
    """Put ``text`` between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``.

    Raises ``ValueError`` when the file lacks the markers.
    """
    begin, end = '<!-- %s:begin -->' % name, '<!-- %s:end -->' % name
    with open(path) as source:
        content = source.read()
    if begin not in content or end not in content.split(begin, 1)[1]:
        raise ValueError('%s has no %s ... %s block' % (path, begin, end))
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    write_text(path, '%s%s\n%s%s%s' % (head, begin, text, end, tail))
