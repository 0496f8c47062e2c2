"""The report of a grid: Markdown, CSV and JSON tables, two figures, AsymmNet against r=0.

Top-1/top-5 are the validation accuracies after the last epoch of each cell (not the
best epoch: choosing the epoch on the validation set would favour noisy runs), as
mean ± sample standard deviation over the seeds; a detection grid's cells are scored
the same way by their VOC07 mAP (:class:`Score` names the scores, ``Row.top1`` and
``Row.top5`` hold them).

Each AsymmNet row (``asymmrate > 0``) is compared with its r=0 twin (same family or
the same network under its MobileNetV3 name, same width) seed by seed: cells with
one seed see the same data order and augmentation and start from the same values
of every parameter the two networks share
(:func:`~gluon_asymmnet.params.seeded_initialize`), so the per-seed difference
takes away what the seed does to both.  The report gives the differences, their
mean with a 95% paired t-interval, and a sign test beside it (which assumes
nothing about their distribution).  The verdict against a stated resolution ``d``
(percentage points):

``higher`` / ``lower``           the interval excludes 0
``within ±d (resolved)``         the interval lies inside [-d, +d]
``not resolved``                 neither: more seeds are needed

An interval no wider than ``d`` (half-width ``d/2``) always ends in one of the
first three, so :func:`seeds_needed` is the number of seeds whose expected
interval, from the spread of the differences seen so far, has half-width
``d/2``.
"""
import collections
import csv
import io
import json
import math
import os

import numpy as np

from ..fileio import atomic_save, replace_block
from .grid import SAME_NETWORK_AT_R0
from .measure import QUIET_LOAD, loaded

__all__ = ['Row', 'Paired', 'Score', 'TOP1', 'mean_std', 'paired_interval', 'sign_test',
           'seeds_needed', 'resolvable', 'verdict', 'paired', 'label', 'markdown', 'record',
           'write_csv', 'plot_figures', 'write_report', 'replace_block', 'write_text', 'FIGURES']

#: Figure files of the report.
FIGURES = ('top1_vs_madds.png', 'top1_vs_latency.png')

class Score(collections.namedtuple('Score', 'name second column second_column',
                                   defaults=(None, None, None))):
    """The names of a report's scores: ``name`` (``'top-1'``, ``'mAP'``) in the text,
    ``column`` in the CSV (``<column>_mean``, ``<column>_std``), and the same of the second
    score shown beside it, if any (``Row.top1`` and ``Row.top5`` hold them)."""

    @property
    def names(self):
        """The names of the scores shown."""
        return [self.name] + ([self.second] if self.second else [])


#: The scores of classification: validation top-1 and top-5.
TOP1 = Score('top-1', 'top-5', 'top1', 'top5')

#: One report row: a variant with its measurements and per-seed accuracies (fractions).
Row = collections.namedtuple('Row', 'model family width asymmrate shuffle_group macs params '
                                    'mxnet_ms onnxruntime_ms top1 top5 mxnet_median_ms '
                                    'onnxruntime_median_ms seeds mxnet_load onnxruntime_load',
                             defaults=(None,) * 5)
Row.__doc__ += (': latencies in ms (``*_ms`` the lowest decile, ``*_median_ms`` the median), '
                '``*_load`` the busy cores of other processes while they were timed; '
                '``seeds``: the seed of each accuracy (default 0, 1, ...); measurements may '
                'be None')

#: A row against its r=0 twin: the seeds both have, the per-seed top-1 differences (pp),
#: their mean and 95% paired t-interval, the sign test (differences above and below 0, its
#: two-sided p), the verdict and the seeds that would resolve ``resolution`` pp.
Paired = collections.namedtuple('Paired', 'row twin seeds diffs mean low high above below '
                                          'sign_p verdict resolution needed')


def mean_std(values):
    """``(mean, sample standard deviation)``; the deviation is nan for fewer than 2 values."""
    values = np.asarray(values, dtype=float)
    if not values.size:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def paired_interval(diffs, confidence=0.95):
    """``(mean, low, high)``: the t-interval of the mean of paired differences.

    Needs at least 2 differences (else ``ValueError``); when they are all equal the
    interval is that value.
    """
    from scipy import stats
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2:
        raise ValueError('a paired interval needs >= 2 differences, got %d' % diffs.size)
    mean = float(diffs.mean())
    if diffs.var() == 0:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + confidence / 2, diffs.size - 1) * diffs.std(ddof=1) / math.sqrt(
        diffs.size)
    return mean, mean - half, mean + half


def sign_test(diffs):
    """``(above, below, p)``: differences above and below 0 (ties left out) and the exact
    two-sided binomial p-value of so many on one side if both were equally likely."""
    from scipy import stats
    above = int(np.sum(np.asarray(diffs) > 0))
    below = int(np.sum(np.asarray(diffs) < 0))
    if not above + below:
        return 0, 0, 1.0
    return above, below, float(stats.binomtest(above, above + below).pvalue)


def resolvable(sd, seeds, confidence=0.95):
    """The smallest ``d`` that ``seeds`` paired seeds resolve, expected from the standard
    deviation ``sd`` of the differences: twice the half-width of their interval."""
    from scipy import stats
    if seeds < 2:
        return math.inf
    return 2 * stats.t.ppf(0.5 + confidence / 2, seeds - 1) * sd / math.sqrt(seeds)


def seeds_needed(sd, resolution, confidence=0.95, most=1000):
    """The fewest seeds (>= 2) whose paired interval, expected from the standard deviation
    ``sd`` of the differences, resolves ``resolution`` (:func:`resolvable`), or None above
    ``most``."""
    for seeds in range(2, most + 1):
        if resolvable(sd, seeds, confidence) <= resolution:
            return seeds
    return None


def verdict(low, high, resolution):
    """``'higher'``, ``'lower'``, ``'within ±d (resolved)'`` or ``'not resolved'`` for an
    interval ``[low, high]`` of a difference and a resolution ``d``."""
    if low > 0:
        return 'higher'
    if high < 0:
        return 'lower'
    if -resolution <= low and high <= resolution:
        return 'within ±%g (resolved)' % resolution
    return 'not resolved'


def _twin(row, rows):
    if not row.asymmrate:
        return None
    families = (row.family, SAME_NETWORK_AT_R0.get(row.family))
    twins = [r for r in rows if r.asymmrate == 0 and r.width == row.width and r.top1 and
             r.family in families]
    twins.sort(key=lambda r: families.index(r.family))
    return twins[0] if twins else None


def _by_seed(row):
    return dict(zip(row.seeds if row.seeds is not None else range(len(row.top1)), row.top1))


def paired(rows, resolution=1.0):
    """Each row with ``asymmrate > 0`` against its r=0 twin, seed by seed (see the module).

    Parameters
    ----------
    rows : list of Row
    resolution : float
        ``d`` of the verdicts, in percentage points of top-1.

    Returns
    -------
    list of Paired
        Differences in percentage points; ``low``/``high``/``needed`` None with fewer
        than 2 seeds in common.
    """
    found = []
    for row in rows:
        twin = _twin(row, rows)
        if twin is None or not row.top1:
            continue
        mine, theirs = _by_seed(row), _by_seed(twin)
        seeds = sorted(set(mine) & set(theirs))
        diffs = [100 * (mine[s] - theirs[s]) for s in seeds]
        above, below, sign_p = sign_test(diffs)
        if len(diffs) < 2:
            found.append(Paired(row, twin, seeds, diffs, float(np.mean(diffs)) if diffs else
                                math.nan, None, None, above, below, sign_p,
                                'not resolved', resolution, None))
            continue
        mean, low, high = paired_interval(diffs)
        found.append(Paired(row, twin, seeds, diffs, mean, low, high, above, below, sign_p,
                            verdict(low, high, resolution), resolution,
                            seeds_needed(float(np.std(diffs, ddof=1)), resolution)))
    return found


def _option(value):
    return '-' if value is None else str(value)


def _cells(row, score):
    """The displayed values of a row (text); a latency timed under load is marked ``†``."""
    top1, top1_std = mean_std(row.top1)
    top5, top5_std = mean_std(row.top5)

    def pct(mean, std):
        if math.isnan(mean):
            return '-'
        return '%.2f' % (100 * mean) if math.isnan(std) else '%.2f ± %.2f' % (100 * mean,
                                                                             100 * std)

    def number(value, fmt):
        return '-' if value is None else fmt % value

    def latency(value, load):
        return number(value, '%.2f') + ('†' if value is not None and loaded(load) else '')
    return [row.model, row.width or '-', _option(row.asymmrate), _option(row.shuffle_group),
            number(row.macs and row.macs / 1e6, '%.2f'), number(row.params and row.params / 1e6,
                                                                '%.3f'),
            latency(row.mxnet_ms, row.mxnet_load),
            latency(row.onnxruntime_ms, row.onnxruntime_load),
            pct(top1, top1_std)] + ([pct(top5, top5_std)] if score.second else []) + [
                str(len(row.top1))]


def _header(score):
    return (['model', 'width', 'asymmrate', 'shuffle', 'MACs (M)', 'params (M)', 'MXNet ms',
             'ONNX Runtime ms'] + ['%s %%' % name for name in score.names] + ['n'])


def label(row):
    """A row's name in the paired table: ``<model> r=<asymmrate>[ g=<shuffle_group>]``."""
    text = '%s r=%d' % (row.model, row.asymmrate) if row.asymmrate is not None else row.model
    return text + (' g=%d' % row.shuffle_group if row.shuffle_group else '')


def _interval(found):
    return '-' if found.low is None else '[%+.2f, %+.2f]' % (found.low, found.high)


def _paired_lines(found, resolution, score):
    """The Markdown of the paired comparisons and what their seeds resolve."""
    lines = ['', 'AsymmNet against its r=0 twin, seed by seed (one seed: the same data order '
                 'and augmentation, the same initial values of every parameter both networks '
                 'have): %s difference in percentage points per seed, their mean with its '
                 '95%% paired t-interval, and a sign test (seeds above/below 0, two-sided p). '
                 'Verdict at a resolution of ±%g pp: higher or lower when the interval '
                 'excludes 0, "within ±%g (resolved)" when it lies inside ±%g, else "not '
                 'resolved". Seeds for ±%g: how many seeds give an interval narrow enough to '
                 'always reach a verdict (at most %g wide), expected from the spread of the '
                 'differences.' % ((score.name,) + (resolution,) * 5), '',
             '| AsymmNet | r=0 twin | Δ %s per seed (pp) | mean Δ | 95%% paired t | '
             'sign test | seeds for ±%g | verdict |' % (score.name, resolution),
             '|---|---|---|---|---|---|---|---|']
    for item in found:
        lines.append('| %s | %s | %s | %+.2f | %s | %d/%d, p=%.2g | %s | %s |' % (
            label(item.row), label(item.twin), ' '.join('%+.1f' % d for d in item.diffs),
            item.mean, _interval(item), item.above, item.below, item.sign_p,
            '-' if item.needed is None else item.needed, item.verdict))
    spreads = [(np.std(item.diffs, ddof=1), item) for item in found if len(item.diffs) > 1]
    if spreads:
        sd, noisiest = max(spreads, key=lambda pair: pair[0])
        seeds = len(noisiest.diffs)

        def needed(d):
            counts = [seeds_needed(float(np.std(item.diffs, ddof=1)), d)
                      for item in found if len(item.diffs) > 1]
            return 'more than 1000' if None in counts else str(max(counts))
        lines += ['', 'With %d seeds the noisiest comparison (%s, differences spread ±%.2f pp) '
                      'resolves differences of ±%.2f pp; ±%g in every comparison takes %s '
                      'seeds%s.' % (seeds, label(noisiest.row), sd, resolvable(sd, seeds),
                                    resolution, needed(resolution),
                                    '' if resolution == 1 else ', ±1 takes %s' % needed(1.0))]
    return lines


def markdown(rows, context, figure_prefix='', notes=(), resolution=1.0, score=TOP1):
    """The report as Markdown.

    Parameters
    ----------
    rows : list of Row
    context : list of str
        Lines saying what was run and measured, how (recipe, data, machine, code).
    figure_prefix : str
        Path from the Markdown file to the figures.
    notes : list of str
        What was left out or did not finish.
    resolution : float
        ``d`` of the verdicts (percentage points), see :func:`paired`.
    score : Score
        The names of the rows' scores.
    """
    header = _header(score)
    lines = list(context) + ['', '| %s |' % ' | '.join(header), '|' + '---|' * len(header)]
    lines += ['| %s |' % ' | '.join(_cells(row, score)) for row in rows]
    loads = [load for row in rows for value, load in ((row.mxnet_ms, row.mxnet_load),
                                                      (row.onnxruntime_ms, row.onnxruntime_load))
             if value is not None and loaded(load)]
    if loads:
        known = [load for load in loads if load is not None]
        lines += ['', '† timed while other processes kept %s busy (a quiet machine: at most '
                      '%g): slower and noisier than on a quiet machine; a rerun re-times them.'
                  % ('up to %.2f cores' % max(known) if known else 'an unknown number of cores',
                     QUIET_LOAD)]
    found = paired(rows, resolution)
    if found:
        lines += _paired_lines(found, resolution, score)
    lines += ['', '![%s against MAdds](%s%s) ![%s against latency](%s%s)'
              % (score.name, figure_prefix, FIGURES[0], score.name, figure_prefix, FIGURES[1])]
    if notes:
        lines += [''] + ['- %s' % note for note in notes]
    return '\n'.join(lines) + '\n'


def write_csv(rows, path, score=TOP1):
    """The table as CSV, numbers unrounded (scores in %)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['model', 'family', 'width', 'asymmrate', 'shuffle_group', 'macs', 'params',
                     'mxnet_ms', 'onnxruntime_ms', 'mxnet_median_ms', 'onnxruntime_median_ms']
                    + ['%s_%s' % (column, stat)
                       for column in filter(None, (score.column, score.second_column))
                       for stat in ('mean', 'std')] + ['n'])
    for row in rows:
        top1, top5 = mean_std(row.top1), mean_std(row.top5) if score.second else ()
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


def plot_figures(rows, folder, title, score=TOP1):
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
            drawn = False
            for line, members in lines.items():
                points = [(getattr(r, field) * scale,) + mean_std(r.top1)
                          for r in members if getattr(r, field) is not None]
                if not points:
                    continue
                x, y, err = (np.array(v, dtype=float) for v in zip(*points))
                axis.errorbar(x, 100 * y, yerr=np.nan_to_num(100 * err), marker='o', capsize=3,
                              label=line, color=colours[line])
                drawn = True
            axis.set_xlabel(xlabel)
            axis.set_ylabel('%s (%%)' % score.name)
            axis.grid(alpha=0.3)
            if drawn:
                axis.legend(fontsize=8)
            else:
                axis.text(0.5, 0.5, 'not measured', ha='center', va='center',
                          transform=axis.transAxes)
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


def record(rows, resolution=1.0):
    """The report's results as JSON-ready data: each row's per-seed accuracies (fractions)
    and measurements, and the paired comparisons (:func:`paired`)."""
    def number(value):
        return None if value is None or not math.isfinite(value) else value
    return {
        'resolution': resolution,
        'rows': [dict(row._asdict(), seeds=list(row.seeds if row.seeds is not None
                                                  else range(len(row.top1))),
                      top1=list(row.top1), top5=list(row.top5)) for row in rows],
        'paired': [{'row': label(item.row), 'twin': label(item.twin), 'seeds': item.seeds,
                    'diffs': item.diffs, 'mean': number(item.mean), 'low': item.low,
                    'high': item.high, 'above': item.above, 'below': item.below,
                    'sign_p': item.sign_p, 'verdict': item.verdict, 'needed': item.needed}
                   for item in paired(rows, resolution)]}


def write_report(rows, folder, context, title, notes=(), resolution=1.0, about=None,
                 score=TOP1):
    """``report.md``, ``report.csv``, ``report.json`` and the figures in ``folder``; returns
    the Markdown.

    ``about`` (a dict: the code, machine and recipe behind the report) goes into
    ``report.json`` beside :func:`record`; ``score``: the names of the rows' scores.
    """
    os.makedirs(folder, exist_ok=True)
    text = markdown(rows, context, notes=notes, resolution=resolution, score=score)
    write_text(os.path.join(folder, 'report.md'), text)
    write_csv(rows, os.path.join(folder, 'report.csv'), score)
    write_text(os.path.join(folder, 'report.json'),
               json.dumps(dict(about or {}, **record(rows, resolution)), indent=1,
                          sort_keys=True) + '\n')
    plot_figures(rows, folder, title, score)
    return text
