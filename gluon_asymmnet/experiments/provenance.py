"""Where a report comes from: the training code, the commit, the machine and its load.

Training a cell is deterministic for a given training code (same seed, same
numbers), so a report belongs to that code: :func:`code_fingerprint` hashes the
files that decide what a cell computes (:data:`TRAINING_CODE`, as git hashes
their contents), an experiment folder is pinned to it, and the report records it
with the commit, so that :func:`committed_fingerprint` can tell whether the
code at a commit is still the code of a report.  :class:`CpuLoad` measures how
busy *other* processes kept the machine's cores over a span of time (the load
behind a timing).
"""
import hashlib
import os
import platform
import resource
import subprocess
import time

from .. import __version__

__all__ = ['TRAINING_CODE', 'REPO_ROOT', 'code_fingerprint', 'committed_fingerprint',
           'git_commit', 'last_code_change', 'cpu', 'machine', 'provenance', 'CpuLoad']

#: The files (folders: their ``*.py`` files) that decide what a cell computes, relative to
#: the repository root.
TRAINING_CODE = ('gluon_asymmnet/models', 'gluon_asymmnet/train', 'gluon_asymmnet/data',
                 'gluon_asymmnet/params.py')
#: The repository (or source tree) the package is imported from.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fingerprint(blobs):
    """One hash of ``{path: git blob hash}``."""
    lines = ''.join('%s %s\n' % (path, blobs[path]) for path in sorted(blobs))
    return hashlib.sha1(lines.encode()).hexdigest()


def _wanted(path, code):
    return path.endswith('.py') and any(path == top or path.startswith(top + '/')
                                        for top in code)


def code_fingerprint(root=REPO_ROOT, code=TRAINING_CODE):
    """The hash of the training code in the files under ``root`` (as they are on disk).

    Each file counts by its git blob hash, so the result equals
    :func:`committed_fingerprint` of a commit that holds the same files.  ``code``: the
    files and folders that count (a task's, :mod:`.tasks`).
    """
    blobs = {}
    for top in code:
        found = [top] if os.path.isfile(os.path.join(root, top)) else [
            os.path.relpath(os.path.join(folder, name), root).replace(os.sep, '/')
            for folder, _, names in os.walk(os.path.join(root, top)) for name in names]
        for path in (p for p in found if _wanted(p, code)):
            with open(os.path.join(root, path), 'rb') as source:
                content = source.read()
            blobs[path] = hashlib.sha1(b'blob %d\0' % len(content) + content).hexdigest()
    return _fingerprint(blobs)


def _git(root, *args):
    """The output of ``git -C root ARGS``, or None outside a git checkout (or without git)."""
    try:
        done = subprocess.run(['git', '-C', root] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def committed_fingerprint(root=REPO_ROOT, rev='HEAD', code=TRAINING_CODE):
    """:func:`code_fingerprint` of the training code at commit ``rev``, or None outside git."""
    listing = _git(root, 'ls-tree', '-r', rev, '--', *code)
    if listing is None:
        return None
    blobs = {}
    for line in listing.splitlines():
        meta, path = line.split('\t', 1)
        if _wanted(path, code):
            blobs[path] = meta.split()[2]
    return _fingerprint(blobs)


def git_commit(root=REPO_ROOT):
    """The commit checked out under ``root``, or None outside git."""
    head = _git(root, 'rev-parse', 'HEAD')
    return head.strip() if head else None


def last_code_change(root=REPO_ROOT, code=TRAINING_CODE):
    """``'<short hash> <subject>'`` of the last commit that changed the training code
    (``code``: the files that count, as :func:`code_fingerprint`)."""
    line = _git(root, 'log', '-1', '--format=%h %s', '--', *code)
    return line.strip() if line else None


def cpu():
    """The CPU model (what decides the kernels, and so the rounding, of a training)."""
    try:
        with open('/proc/cpuinfo') as info:
            names = [line.split(':', 1)[1].strip() for line in info
                     if line.startswith('model name')]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or 'CPU'


def machine():
    """``'<CPU model>, <n> core(s)'``: the CPU and the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return '%s, %d core(s)' % (cpu(), cores or 1)


def provenance(root=REPO_ROOT, code=TRAINING_CODE):
    """What a report records about the code that made it (``code``: the files that count,
    as :func:`code_fingerprint`).

    Returns
    -------
    dict
        ``commit`` (None outside git), ``code`` (:func:`code_fingerprint`),
        ``code_committed`` (whether the training code on disk is that of the commit),
        ``version`` (the package's), ``machine``.
    """
    fingerprint = code_fingerprint(root, code)
    commit = git_commit(root)
    return {'commit': commit, 'code': fingerprint,
            'code_committed': (commit is not None
                               and committed_fingerprint(root, code=code) == fingerprint),
            'version': __version__, 'machine': machine()}


def _busy_seconds():
    """CPU seconds spent by the whole machine, or None where ``/proc/stat`` is missing."""
    try:
        with open('/proc/stat') as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / float(os.sysconf('SC_CLK_TCK'))


def _own_seconds():
    return sum(usage.ru_utime + usage.ru_stime
               for usage in (resource.getrusage(resource.RUSAGE_SELF),
                             resource.getrusage(resource.RUSAGE_CHILDREN)))


class CpuLoad:
    """Cores that other processes kept busy between :meth:`start` and :meth:`others`.

    The machine's CPU time (``/proc/stat``) minus that of this process and of the
    children it waited for, per second of wall time: 0 on a quiet machine, 1.0
    when another process used one core throughout.
    """

    def __init__(self):
        self._start = None

    def start(self):
        """Begin the span; returns ``self``."""
        self._start = (time.time(), _busy_seconds(), _own_seconds())
        return self

    def others(self):
        """Average busy cores of other processes since :meth:`start`, or None (not Linux)."""
        wall, busy, own = self._start
        now = _busy_seconds()
        if busy is None or now is None or time.time() - wall <= 0:
            return None
        return max(0.0, (now - busy - (_own_seconds() - own)) / (time.time() - wall))
