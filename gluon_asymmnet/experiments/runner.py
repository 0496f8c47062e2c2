"""Training the cells of a grid, each an ordinary run folder of ``train_imagenet.py``.

Every cell is ``python -m gluon_asymmnet.train RECIPE --model M --seed S [--asymmrate R]
[--shuffle-group G] --save-dir OUT/runs --tag-name TAG --resume auto -j T`` in a
child process (its console output in ``OUT/logs/<run>.txt``; a classification cell runs
``python -m gluon_asymmnet.train``, a detection cell ``python -m
gluon_asymmnet.experiments.detection`` (:mod:`.tasks`): wherever the package is importable,
installed or not, without the repository's scripts), so a cell can be inspected, resumed,
evaluated and exported like any run.

Never losing work:

- a cell is *done* when its ``metrics.jsonl`` holds the last epoch and its export
  exists; a rerun skips it, and resumes a cut one (``--resume auto``);
- each child runs in a process group of its own with ``PR_SET_PDEATHSIG``: if the
  runner dies, even by SIGKILL, the kernel sends its children SIGTERM, on which
  ``train_imagenet.py`` checkpoints after the current batch and exits;
- SIGINT/SIGTERM to the runner are forwarded as SIGTERM to every child; a child
  still running :data:`STOP_GRACE` seconds later (or at a second SIGINT/SIGTERM) is
  killed with its group: a child checkpoints after its current batch, which takes
  seconds for a large network at full size, so the grace is long enough for that;
- a rerun waits for a run folder still locked by a child of a killed runner.

Each invocation that trains cells appends to ``OUT/sessions.json`` how many it
trained, its wall time and the cores that other processes kept busy meanwhile.
"""
import collections
import ctypes
import json
import os
import signal
import subprocess
import time

from ..cli import StopFlag
from ..fileio import atomic_write_json
from ..run_metrics import METRICS_FILE, read_metrics
from ..records import LEGACY_RUN_RECORD, RUN_RECORD
from .provenance import CpuLoad

__all__ = ['CellState', 'cell_state', 'run_cells', 'Interrupted', 'STOP_GRACE', 'TIMINGS_FILE',
           'cell_estimates', 'die_with_parent', 'read_timings', 'SESSIONS_FILE', 'read_sessions']

#: Seconds a child has to checkpoint and exit after SIGTERM before its group is killed: it
#: finishes its current batch first (5-7 s for AsymmNet-L at 160 px, batch 96, on 2 cores).
STOP_GRACE = 30.0
#: Seconds a run folder locked by another process (a child of a killed runner) is waited for.
LOCK_WAIT = 60.0
#: Wall and CPU seconds of every cell trained from scratch to the end, by run name.
TIMINGS_FILE = 'timings.json'
#: The training sessions of an experiment folder (see the module).
SESSIONS_FILE = 'sessions.json'
_POLL = 0.2
_PR_SET_PDEATHSIG = 1

#: ``state``: 'done', 'partial', 'todo', or 'damaged' (exported, that is finished, but its
#: metrics lack the last epoch: resuming cannot bring it back); ``epochs``: epochs
#: recorded; ``final``: the metrics record of the last epoch when done.
CellState = collections.namedtuple('CellState', 'state epochs final')


class Interrupted(Exception):
    """The runner got SIGINT/SIGTERM; ``signal_name`` says which."""

    def __init__(self, signal_name):
        super().__init__(signal_name)
        self.signal_name = signal_name


def cell_state(runs_dir, cell, num_epochs):
    """Where the run folder of ``cell`` stands (see :class:`CellState`)."""
    folder = os.path.join(runs_dir, cell.run_name)
    metrics = os.path.join(folder, METRICS_FILE)
    records = {r['epoch']: r for r in (read_metrics(metrics) if os.path.exists(metrics) else [])}
    last = records.get(num_epochs - 1)
    exported = os.path.exists(os.path.join(folder, '%s-symbol.json' % cell.model))
    if last is not None and exported:
        return CellState('done', num_epochs, last)
    if exported:
        return CellState('damaged', len(records), None)
    if records or any(os.path.exists(os.path.join(folder, name))
                      for name in (RUN_RECORD, LEGACY_RUN_RECORD)):
        return CellState('partial', len(records), None)
    return CellState('todo', 0, None)


def cell_estimates(cells, states, timings, num_epochs, fallback):
    """Estimated seconds of each cell still to train on a quiet machine, or None where unknown.

    The CPU seconds of the timed cells of the same model in this output folder
    (their wall time at one thread each, whatever else loaded the machine), else of
    any model, else ``fallback`` (a preset's measured figure); a partial cell counts
    for its epochs still to run.
    """
    by_model = collections.defaultdict(list)
    for record in timings.values():
        by_model[record['model']].append(record['cpu_seconds'])
    every = [s for seconds in by_model.values() for s in seconds]
    estimates = []
    for cell, state in zip(cells, states):
        if state.state == 'done':
            estimates.append(0.0)
            continue
        known = by_model.get(cell.model) or every
        seconds = sum(known) / len(known) if known else fallback
        estimates.append(None if seconds is None
                         else seconds * (1 - state.epochs / float(num_epochs)))
    return estimates


def die_with_parent(parent):
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` dies (Linux), whatever kills it."""
    def arm():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return   # not Linux: the runner's own handlers still forward signals
        if os.getppid() != parent:   # the runner died before prctl took effect
            os._exit(1)
    return arm


def _run_locked(folder):
    """Whether a process holds the run folder's training lock (``flock`` on ``.lock``).

    Read from ``/proc/locks`` without touching the lock: probing it with ``flock``
    could make a training that starts at that moment find it taken.
    """
    path = os.path.join(folder, '.lock')
    try:
        status = os.stat(path)
        with open('/proc/locks') as locks:
            table = locks.read()
    except OSError:
        return False
    where = '%02x:%02x:%d' % (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    return any(line.split()[1:2] == ['FLOCK'] and where in line.split()
               for line in table.splitlines())


class _Child(collections.namedtuple('_Child', 'cell process log started from_scratch')):
    pass


def _start(cell, command, log_path, threads, from_scratch):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, 'ab') as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                   preexec_fn=die_with_parent(os.getpid()))
    return _Child(cell, process, log_path, time.time(), from_scratch)


def _stop_children(children):
    """SIGTERM to every child, then SIGKILL to the process group of those still running."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.time() + STOP_GRACE
    try:
        while time.time() < deadline and any(c.process.poll() is None for c in children):
            time.sleep(0.05)
    finally:   # also at a second SIGINT/SIGTERM (KeyboardInterrupt): stop now
        for child in children:
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child.process.wait()


def _last_line(path):
    try:
        with open(path, 'rb') as log:
            lines = [line for line in log.read().decode('utf-8', 'replace').splitlines()
                     if line.strip()]
    except OSError:
        return ''
    return lines[-1].strip() if lines else ''


def run_cells(cells, recipe_flags, out, jobs, threads, num_epochs, task, echo=print):
    """Train every cell not done yet, ``jobs`` at a time.

    Parameters
    ----------
    cells : list of Cell
    recipe_flags : list of str
        The data and training flags of every cell.
    out : str
        The experiment folder: run folders in ``out/runs``, console logs in ``out/logs``.
    jobs, threads : int
        Cells side by side, and cores (``OMP_NUM_THREADS``, ``-j``) of each.
    num_epochs : int
        ``--num-epochs`` of the recipe (a cell is done when its last epoch is recorded).
    task : Task
        What the cells train (:mod:`.tasks`): the child's command and the cells' score.
    echo : callable

    Returns
    -------
    list of (Cell, str)
        The cells that failed, with the last line of their console log.

    Raises
    ------
    Interrupted
        SIGINT/SIGTERM: the children were stopped (see the module's docstring).
    """
    runs_dir = os.path.join(out, 'runs')
    pending = collections.deque(c for c in cells
                                if cell_state(runs_dir, c, num_epochs).state != 'done')
    total, running, failed, waiting_since = len(pending), [], [], {}
    for cell in [c for c in pending if cell_state(runs_dir, c, num_epochs).state == 'damaged']:
        pending.remove(cell)
        reason = ('finished (exported) but its %s lacks epoch %d: delete %s to train it again'
                  % (METRICS_FILE, num_epochs - 1, os.path.join(runs_dir, cell.run_name)))
        failed.append((cell, reason))
        echo('FAILED %s: %s' % (cell.run_name, reason))
    load, started, trained = CpuLoad().start(), time.time(), 0
    with StopFlag() as stop:
        while (pending or running) and not stop.signal_name:
            for _ in range(len(pending)):
                if len(running) >= jobs:
                    break
                cell = pending.popleft()
                folder = os.path.join(runs_dir, cell.run_name)
                if _run_locked(folder):
                    since = waiting_since.setdefault(cell, time.time())
                    if time.time() - since < LOCK_WAIT:
                        pending.append(cell)
                        continue
                command = task.command(cell, recipe_flags, runs_dir, threads)
                state = cell_state(runs_dir, cell, num_epochs)
                echo('[%d/%d] %s %s' % (total - len(pending), total, cell.run_name,
                                        'resuming after %d epochs' % state.epochs
                                        if state.epochs else 'starting'))
                running.append(_start(cell, command, os.path.join(out, 'logs', cell.run_name
                                                                  + '.txt'),
                                      threads, state.state == 'todo'))
            for child, cpu_seconds in [(c, _reap(c.process)) for c in running]:
                if cpu_seconds is None:
                    continue
                running.remove(child)
                seconds = time.time() - child.started
                state = cell_state(runs_dir, child.cell, num_epochs)
                if child.process.returncode == 0 and state.state == 'done':
                    echo('done %s in %.0f s: val %s %.4f'
                         % (child.cell.run_name, seconds, task.score.name,
                            state.final[task.metric] or 0))
                    trained += 1
                    if child.from_scratch:
                        _record_timing(out, child.cell, seconds, cpu_seconds, jobs, threads)
                elif not stop.signal_name:
                    reason = _last_line(child.log) or 'exit status %d' % child.process.returncode
                    failed.append((child.cell, reason))
                    echo('FAILED %s (log %s): %s' % (child.cell.run_name, child.log, reason))
            time.sleep(_POLL)
        if stop.signal_name:
            echo('%s: stopping %d cell(s) in flight; rerun the same command to resume'
                 % (stop.signal_name, len(running)))
            _stop_children(running)
            _record_session(out, trained, time.time() - started, load.others())
            raise Interrupted(stop.signal_name)
    _record_session(out, trained, time.time() - started, load.others())
    return failed


def _reap(process):
    """CPU seconds (user + system) of ``process`` once it has ended, else None."""
    if process.returncode is not None:
        return 0.0
    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def read_timings(out):
    """The timed cells of an experiment folder: ``{run name: record}``."""
    path = os.path.join(out, TIMINGS_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as timings:
        return json.load(timings)


def _record_timing(out, cell, seconds, cpu_seconds, jobs, threads):
    timings = read_timings(out)
    timings[cell.run_name] = {'model': cell.model, 'seconds': round(seconds, 2),
                              'cpu_seconds': round(cpu_seconds, 2), 'jobs': jobs,
                              'threads': threads}
    atomic_write_json(timings, os.path.join(out, TIMINGS_FILE), sort_keys=True)


def read_sessions(out):
    """The training sessions of an experiment folder: a list of ``{'cells', 'seconds',
    'others_load'}`` (``others_load``: busy cores of other processes, None where unknown)."""
    path = os.path.join(out, SESSIONS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as sessions:
        return json.load(sessions)


def _record_session(out, cells, seconds, others_load):
    if cells:
        sessions = read_sessions(out) + [{'cells': cells, 'seconds': round(seconds, 1),
                                          'others_load': None if others_load is None
                                          else round(others_load, 3)}]
        atomic_write_json(sessions, os.path.join(out, SESSIONS_FILE))
