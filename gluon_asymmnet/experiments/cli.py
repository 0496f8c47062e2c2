"""``python -m gluon_asymmnet.experiments``: train a grid of cells and report it.

::

    python -m gluon_asymmnet.experiments --preset digits --out experiments/digits --jobs 2
    python -m gluon_asymmnet.experiments --models asymmnet_small mobilenetv3_small \\
        --widths 0.5 1.0 --seeds 3 --out experiments/mine -- --rec-train data/train.rec ...
    python -m gluon_asymmnet.experiments --preset detection --jobs 2

Everything after ``--`` is passed to every ``train_imagenet.py`` (data and
training flags; with ``--task detection``, or a detection preset, to every
detection cell, :mod:`.detection`); the runner sets the model flags, ``--seed``,
``--save-dir``, ``--tag-name``, ``--resume auto`` (and ``train_imagenet.py``'s ``-j``)
itself.  The output folder holds ``runs/`` (one ordinary run folder per cell),
``logs/`` (their console output),
``experiment.json`` (the recipe and the fingerprint of the training code: a rerun
with another recipe or other training code is refused), ``timings.json``,
``sessions.json``, ``measurements.json`` and, unless ``--report-dir`` says
otherwise, ``report.md``, ``report.csv``, ``report.json`` (every seed's numbers,
the commit, code, version and machine behind them) and the figures.
"""
import json
import os
import sys
import tempfile

from ..cli import EXIT_INTERRUPTED, OneLineParser, run as run_command
from ..errors import UsageError
from ..fileio import atomic_write_json, exclusive_lock
from . import grid as grid_mod
from .measure import RUNS, measure_variants, unmeasured
from .presets import PRESETS
from .provenance import provenance
from .report import Row, label, paired, replace_block, write_report
from .runner import (Interrupted, cell_estimates, cell_state, read_sessions, read_timings,
                     run_cells)
from .tasks import TASKS

__all__ = ['main', 'build_parser']

PROG = 'python -m gluon_asymmnet.experiments'
#: Rough wall seconds to measure one variant on both backends (``--dry-run`` estimate).
MEASURE_SECONDS = 8.0
_README_BLOCK = 'experiments'
#: The fields of a report row that come from :func:`measure_variants`.
_MEASURED = ('macs', 'params', 'mxnet_ms', 'onnxruntime_ms', 'mxnet_median_ms',
             'onnxruntime_median_ms', 'mxnet_load', 'onnxruntime_load')


def build_parser():
    """The runner's own flags (the training flags come after ``--``)."""
    parser = OneLineParser(
        prog=PROG, description='Train a grid of zoo models x widths x asymmrate x shuffle_group '
                               'x seeds with train_imagenet.py and report it. Training flags '
                               'go after "--".',
        epilog='presets: ' + '; '.join('%s: %s' % (p.name, p.description)
                                       for p in PRESETS.values()))
    what = parser.add_argument_group('the grid (a preset, or models)')
    what.add_argument('--preset', choices=list(PRESETS), help='a named grid (see below)')
    what.add_argument('--models', nargs='+', help='zoo names, or families with --widths')
    what.add_argument('--widths', nargs='+', help="width multipliers of the families ('all': "
                                                  "every width of each)")
    what.add_argument('--asymmrate', nargs='+', type=int,
                      help='asymmetrical reuse rates (default: each model its own)')
    what.add_argument('--shuffle-group', nargs='+', type=int,
                      help='channel-shuffle groups (default: none)')
    what.add_argument('--task', choices=list(TASKS), default=None,
                      help='what the cells of --models train (default classification: '
                           'train_imagenet.py; detection: GluonCV\'s SSD on the digits '
                           'detection set); a preset has its own')
    what.add_argument('--seeds', type=int, help='seeds 0..N-1 of every variant (preset: its own, '
                                                'else 1)')
    how = parser.add_argument_group('running and reporting')
    how.add_argument('--out', default=None,
                     help='experiment folder (default experiments/<preset or "grid">)')
    how.add_argument('--report-dir', default=None, help='where the report goes (default --out)')
    how.add_argument('--jobs', type=int, default=1,
                     help='cells side by side; the cores are split between them')
    how.add_argument('--cell-threads', type=int, default=None,
                     help="cores of each cell (OMP_NUM_THREADS and -j; default: the preset's, "
                          "else the cores split between --jobs); the data's augmentation "
                          "depends on it, so keep it to reproduce a report")
    how.add_argument('--resolution', type=float, default=None, metavar='PP',
                     help='the top-1 difference (percentage points) the verdicts resolve: '
                          '"within +-PP (resolved)" when the paired interval lies inside it '
                          "(default: the preset's, else 1)")
    how.add_argument('--latency-runs', type=int, default=RUNS,
                     help='timed batch-1 calls per model and backend (0: no latency)')
    how.add_argument('--latency-threads', type=int, default=1,
                     help='threads of the latency measurement (default 1: on a shared or '
                          'loaded machine, waiting OpenMP threads make multi-threaded '
                          'batch-1 timings erratic)')
    how.add_argument('--dry-run', action='store_true',
                     help='list the cells and an estimated time; train nothing')
    how.add_argument('--update-readme', metavar='README',
                     help='put the report between <!-- experiments:begin/end --> in this file')
    return parser


def _arms(args):
    if args.preset and args.models:
        raise UsageError('give --preset or --models, not both')
    if args.preset:
        if args.widths or args.asymmrate or args.shuffle_group or args.task:
            raise UsageError('--widths/--asymmrate/--shuffle-group/--task make a grid of '
                             '--models; a preset has its own')
        preset = PRESETS[args.preset]
        return (list(preset.arms), args.seeds if args.seeds is not None else preset.seeds,
                preset, TASKS[preset.task])
    if not args.models:
        raise UsageError('give --preset NAME or --models ... (see --help)')
    arm = grid_mod.Arm(args.models, args.widths, args.asymmrate, args.shuffle_group)
    return ([arm], args.seeds if args.seeds is not None else 1, None,
            TASKS[args.task or 'classification'])


def _writable(folder, what):
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError('%s %s cannot be written: %s' % (what, folder,
                                                          error.strerror or error)) from None


def _pin_recipe(out, flags, code, task, write):
    """Refuse an output folder holding cells of another recipe or of other training code
    (:func:`~.provenance.code_fingerprint`); record this one."""
    path = os.path.join(out, 'experiment.json')
    if os.path.exists(path):
        with open(path) as saved:
            before = json.load(saved)
        if before['recipe'] != list(flags):
            raise UsageError('%s holds cells trained with another recipe (%s); use another '
                             '--out' % (out, ' '.join(before['recipe']) or 'no flags'))
        if before.get('code') != code:
            raise UsageError('%s holds cells trained by other training code (%s changed since): '
                             'their results are not this code\'s; delete the folder or use '
                             'another --out' % (out, ', '.join(task.code)))
    elif write:
        atomic_write_json({'recipe': list(flags), 'code': code}, path)


def _check_block(readme):
    try:
        with open(readme) as text:
            content = text.read()
    except OSError as error:
        raise UsageError('--update-readme %s: %s' % (readme, error.strerror)) from None
    begin, end = ('<!-- %s:%s -->' % (_README_BLOCK, marker) for marker in ('begin', 'end'))
    for marker in (begin, end):
        if marker not in content:
            raise UsageError('--update-readme %s has no %s line' % (readme, marker))
    if end not in content.split(begin, 1)[1]:
        raise UsageError('--update-readme %s: its %s line comes before %s'
                         % (readme, end, begin))


def _lock(out):
    handle = exclusive_lock(os.path.join(out, '.runner.lock'))
    if handle is None:
        raise UsageError('%s is in use by another experiment runner' % out)
    return handle


def _duration(seconds):
    return '%d min %02d s' % divmod(int(round(seconds)), 60)


def _dry_run(cells, states, out, jobs, threads, num_epochs, preset, to_measure, resolution,
             task, echo):
    """List the cells with their estimated times, and what the done ones resolve so far."""
    timings = read_timings(out)
    estimates = cell_estimates(cells, states, timings, num_epochs,
                               preset.cell_seconds if preset else None)
    for cell, state, seconds in zip(cells, states, estimates):
        status = {'done': 'done', 'todo': 'to train',
                  'damaged': 'finished, its last metrics line missing (delete it to retrain)',
                  'partial': 'resume after %d/%d epochs' % (state.epochs, num_epochs)}
        echo('%-48s %-28s %s' % (cell.run_name, status[state.state],
                                 '' if seconds is None else '~%.0f s' % seconds))
    counts = {s: sum(1 for st in states if st.state == s) for s in ('done', 'partial', 'todo')}
    variants = len({c.variant for c in cells})
    echo('%d cells (%d variants x seeds): %d done, %d partial, %d to train; --jobs %d with %d '
         'thread(s) each' % (len(cells), variants, counts['done'], counts['partial'],
                             counts['todo'], jobs, threads))
    if any(seconds is None for seconds in estimates):
        echo('estimated time: unknown (no cell of this grid timed yet: the estimate uses the '
             'timed cells of this output folder)')
    else:
        echo('estimated time on a quiet machine: %s of training (%d cells left, the CPU time '
             'of %s, %d side by side) + up to %s of measurements'
             % (_duration(sum(estimates) / jobs), sum(1 for e in estimates if e),
                'the cells timed in this output folder' if timings else
                "the preset's measured cells", jobs, _duration(MEASURE_SECONDS * to_measure)))
    _echo_paired(_rows(_finished(cells, states), task), resolution, echo)


def _builds(variants):
    """``(model, get_model options)`` of each report row (``Cell.variant``)."""
    return [(variant[0], grid_mod.Cell(*variant, seed=0).model_kwargs()) for variant in variants]


def _context(name, preset, cells, flags, recipe, classes, threads, runs, out, about, task):
    """The lines above the report's table: what was run, by which code, where."""
    sessions = [s for s in read_sessions(out) if s['others_load'] is not None]
    seconds = sum(s['seconds'] for s in sessions)
    trained = ('; %d of its cells trained in %s of wall time on %s, other processes keeping '
               '%.2f cores busy on average' % (sum(s['cells'] for s in sessions),
                                               _duration(seconds), about['machine'],
                                               sum(s['others_load'] * s['seconds']
                                                   for s in sessions) / seconds)
               if seconds else '')
    commit = about['commit'][:10] if about['commit'] else 'no git checkout'
    return [
        '%s: %s.' % ('Preset `%s`' % name if preset else 'Grid',
                     preset.description if preset else '%d cells' % len(cells)),
        'Recipe of every cell: `%s %s` (nothing tuned per model), %d thread(s) per cell; %s: '
        '%s after the last epoch, mean ± standard deviation over n seeds.'
        % (task.program, ' '.join(flags), about['cell_threads'],
           '/'.join(task.score.names), task.description),
        'Made by gluon-asymmnet %s at commit %s (training code %s%s)%s.'
        % (about['version'], commit, about['code'][:10],
           '' if about['code_committed'] else ', not committed', trained),
        'MACs and trainable parameters %sat %dx%d, %d classes (`gluon_asymmnet.complexity`); '
        % (task.measured, recipe.input_size, recipe.input_size, classes) +
        ('latency: batch 1, random weights, %d thread(s), %s, after the trainings (MXNet '
         'hybridized; ONNX Runtime on the ONNX export), the lowest decile of %d rounds that '
         'time every model once (report.csv has the median too).' % (threads, about['machine'],
                                                                    runs)
         if runs else 'latency not measured (--latency-runs 0).')]


def _finished(cells, states):
    """``{variant: [(seed, final metrics record)]}`` of the done cells (every variant listed)."""
    results = {}
    for cell, state in zip(cells, states):
        results.setdefault(cell.variant, [])
        if state.state == 'done':
            results[cell.variant].append((cell.seed, state.final))
    return results


def _rows(results, task, measured=None):
    """The report rows of the variants with done cells, scored by ``task``'s metrics
    (``measured``: ``{variant: values}``)."""
    rows = []
    for variant, done in results.items():
        if done:
            seeds, finals = zip(*done)
            values = (measured or {}).get(variant, {})
            rows.append(Row(*variant, top1=[f[task.metric] for f in finals],
                            top5=[f[task.second] for f in finals] if task.second else [],
                            seeds=list(seeds),
                            **{field: values.get(field) for field in _MEASURED}))
    return rows


def _echo_paired(rows, resolution, echo):
    for item in paired(rows, resolution):
        echo('%s vs %s: %s (%d seeds; ±%g needs %s)' % (label(item.row), label(item.twin),
                                                      item.verdict, len(item.diffs), resolution,
                                                      item.needed or 'more than 1000'))


def _report(cells, flags, recipe, classes, out, report_dir, threads, runs, preset, notes,
            about, resolution, task, echo):
    states = [cell_state(os.path.join(out, 'runs'), cell, recipe.num_epochs) for cell in cells]
    results = _finished(cells, states)
    unfinished = sum(1 for state in states if state.state != 'done')
    variants = [v for v, done in results.items() if done]
    measured = measure_variants(_builds(variants), classes, recipe.input_size, threads, out,
                                runs, echo)
    rows = _rows(results, task, dict(zip(variants, measured.values())))
    name = preset.name if preset else 'grid'
    context = _context(name, preset, cells, flags, recipe, classes, threads, runs, out, about,
                       task)
    if unfinished:
        notes = list(notes) + ['%d cell(s) of the grid have not finished: their seeds are not '
                               'in the table' % unfinished]
    for key, values in measured.items():
        for backend in ('mxnet', 'onnxruntime'):
            if values.get(backend + '_error'):
                notes = list(notes) + ['%s: no %s latency (%s)' % (key, backend,
                                                                  values[backend + '_error'])]
    about = dict(about, recipe=list(flags), latency_threads=threads, latency_runs=runs,
                 preset=name, task=task.name)
    text = write_report(rows, report_dir, context, 'AsymmNet experiments: %s' % name, notes,
                        resolution, about, task.score)
    echo('report: %s' % os.path.join(report_dir, 'report.md'))
    _echo_paired(rows, resolution, echo)
    return text


def run(args, flags, echo=print):
    """Check the grid, train what is not done, report; returns the exit status."""
    arms, seeds, preset, task = _arms(args)
    cells, notes = grid_mod.expand(arms, seeds)
    task.check(cells)
    flags = (list(preset.recipe) if preset else []) + list(flags)
    recipe = task.recipe(flags, cells[0])
    if args.latency_runs < 0 or args.latency_threads < 1:
        raise UsageError('need --latency-runs >= 0 and --latency-threads >= 1')
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    if not 1 <= args.jobs <= cores:
        raise UsageError('--jobs must be between 1 and the %d cores here, not %d'
                         % (cores, args.jobs))
    if args.latency_threads > cores:
        raise UsageError('--latency-threads must be <= the %d cores here, not %d'
                         % (cores, args.latency_threads))
    if args.cell_threads is not None and args.cell_threads < 1:
        raise UsageError('--cell-threads must be >= 1, not %d' % args.cell_threads)
    resolution = (args.resolution if args.resolution is not None
                  else preset.resolution if preset else 1.0)
    if not resolution > 0:
        raise UsageError('--resolution must be > 0 percentage points, not %g' % resolution)
    if args.jobs > 1 and recipe.num_gpus > 0:
        raise UsageError('--jobs %d with --num-gpus %d: the cells would share the GPUs; use '
                         '--jobs 1' % (args.jobs, recipe.num_gpus))
    out = args.out or os.path.join('experiments', preset.name if preset else 'grid')
    report_dir = args.report_dir or out
    _writable(out, 'the output folder')
    _writable(report_dir, 'the report folder')
    if args.update_readme:
        _check_block(args.update_readme)
    about = provenance(code=task.code)
    _pin_recipe(out, flags, about['code'], task, write=not args.dry_run)
    runs_dir = os.path.join(out, 'runs')
    classes = task.classes(recipe)
    threads = args.cell_threads or (preset and preset.cell_threads) or max(1, cores // args.jobs)
    about['cell_threads'] = threads
    for note in notes:
        echo('note: %s' % note)
    states = [cell_state(runs_dir, cell, recipe.num_epochs) for cell in cells]
    if args.dry_run:
        to_measure = unmeasured(_builds(dict.fromkeys(c.variant for c in cells)), classes,
                                recipe.input_size, args.latency_threads, out)
        _dry_run(cells, states, out, args.jobs, threads, recipe.num_epochs, preset, to_measure,
                 resolution, task, echo)
        return 0
    lock = _lock(out)
    try:
        failed = run_cells(cells, flags, out, args.jobs, threads, recipe.num_epochs, task, echo)
        notes += ['%s failed: %s' % (cell.run_name, reason) for cell, reason in failed]
        text = _report(cells, flags, recipe, classes, out, report_dir, args.latency_threads,
                       args.latency_runs, preset, notes, about, resolution, task, echo)
    finally:
        lock.close()
    if args.update_readme:
        prefix = os.path.relpath(report_dir, os.path.dirname(os.path.abspath(args.update_readme)))
        replace_block(args.update_readme, _README_BLOCK,
                      text.replace('](top1_', '](%s/top1_' % prefix))
        echo('updated %s' % args.update_readme)
    return 1 if failed else 0


def main(argv=None):
    """Entry point; returns the exit status (130: interrupted); a bad input raises
    ``SystemExit(2)`` after one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, flags = (argv[:argv.index('--')], argv[argv.index('--') + 1:]) if '--' in argv \
        else (argv, [])
    parser = build_parser()
    args = parser.parse_args(own)
    try:   # a bad input: one line and SystemExit(2) (gluon_asymmnet.cli.run)
        return run_command(parser, run, args, flags)
    except Interrupted:   # the cells in flight checkpointed (or were stopped)
        return EXIT_INTERRUPTED
