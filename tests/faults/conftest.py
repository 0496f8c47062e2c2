"""Fixtures of the fault suite, and the reliability table it writes.

Every fault test records its trials with the ``trials`` fixture::

    trials.record('SIGKILL during training, then --resume auto', 'resumed at epoch 2', lost=0)

Each pytest process (xdist workers included) appends them as JSON lines to one
file per process in a results folder that the controlling process creates and
hands to its workers. When the session ends, the controlling process adds each
test's outcome and writes ``tests/faults/RELIABILITY.md``: one row per fault,
with how many times it was tried, what happened, what was lost and whether its
test passed. Rows of faults that this session did not exercise (a ``-k``
selection) are kept from the previous table. README's Reliability section
shows this table.
"""
import collections
import json
import os
import re
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

import faultlib

RELIABILITY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RELIABILITY.md')
_RESULTS_KEY = 'faults_results_dir'

# Deterministic property-based tests: the same examples on every run and in CI.
settings.register_profile('faults', max_examples=30, deadline=None, derandomize=True,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile('faults')


def _is_controller(config):
    return not hasattr(config, 'workerinput')


def pytest_configure(config):
    if _is_controller(config):
        config._faults_results = tempfile.mkdtemp(prefix='faults-results-')
    else:
        config._faults_results = config.workerinput[_RESULTS_KEY]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: tell each worker where to put its trials."""
    node.workerinput[_RESULTS_KEY] = node.config._faults_results


#: Outcome of each fault test by node id (filled in the controlling process).
_OUTCOMES = {}


def pytest_runtest_logreport(report):
    """Remember each fault test's outcome (called in the controller, with xdist or without)."""
    if 'faults/' not in report.nodeid:
        return
    if report.failed:
        _OUTCOMES[report.nodeid] = 'failed'
    elif report.when == 'call' and _OUTCOMES.get(report.nodeid) != 'failed':
        _OUTCOMES[report.nodeid] = report.outcome


class Trials:
    """Records what each try of a fault did (see the module docstring)."""

    def __init__(self, folder, nodeid):
        self._path = os.path.join(folder, 'trials-%d.jsonl' % os.getpid())
        self._nodeid = nodeid

    def record(self, fault, outcome, lost=0):
        """One try of ``fault``: what happened (short text) and how much work was lost.

        ``lost`` counts what the user would have lost: epochs missing from or
        repeated in the metrics, checkpoints that do not load, a run that cannot
        be continued, a hung process.
        """
        with open(self._path, 'a') as out:
            out.write(json.dumps({'fault': fault, 'outcome': outcome, 'lost': lost,
                                  'test': self._nodeid}) + '\n')


@pytest.fixture
def trials(request):
    return Trials(request.config._faults_results, request.node.nodeid)


@pytest.fixture(scope='session')
def digits(tmp_path_factory):
    """The digits data set at 32x32 (built once per pytest process)."""
    from gluon_asymmnet.data import prepare_digits
    return prepare_digits(str(tmp_path_factory.mktemp('digits-cache')), size=32)


@pytest.fixture
def save_dir(tmp_path, digits):
    """A fresh ``--save-dir`` whose ``digits-32`` is the already built data set (a link)."""
    root = tmp_path / 'runs'
    root.mkdir()
    os.symlink(os.path.dirname(digits.train_rec), str(root / 'digits-32'))
    return str(root)


@pytest.fixture
def rng(request):
    """A random generator seeded by the test's name."""
    return faultlib.seeded_rng(request.node.nodeid)


def _read_trials(folder):
    rows = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as lines:
            rows.extend(json.loads(line) for line in lines if line.strip())
    return rows


_HEADER = ('| Fault | Tries | What happened | Lost | Test |\n'
           '|---|---:|---|---:|---|\n')
_ROW = re.compile(r'^\| (?P<fault>.+?) \| \d+ \|')


def _previous_rows(path):
    """Table rows of the previous RELIABILITY.md by fault."""
    rows = collections.OrderedDict()
    if os.path.exists(path):
        with open(path) as table:
            for line in table:
                match = _ROW.match(line)
                if match:
                    rows[match.group('fault')] = line
    return rows


def reliability_rows(trials, outcomes):
    """Markdown rows, one per fault, from the trial records and the tests' outcomes."""
    faults = collections.OrderedDict()
    for trial in trials:
        faults.setdefault(trial['fault'], []).append(trial)
    rows = collections.OrderedDict()
    for fault, tries in faults.items():
        happened = collections.Counter(t['outcome'] for t in tries)
        what = '; '.join('%s (%d)' % (text, n) if len(happened) > 1 or n > 1 else text
                         for text, n in happened.most_common())
        tests = sorted({t['test'] for t in tries})
        states = [outcomes.get(test, 'not run') for test in tests]
        status = 'failed' if 'failed' in states else ('passed' if states and all(
            s == 'passed' for s in states) else '/'.join(sorted(set(states))))
        names = ', '.join('`%s`' % test.split('/')[-1] for test in tests)
        rows[fault] = '| %s | %d | %s | %d | %s: %s |\n' % (
            fault, len(tries), what.replace('|', '/'), sum(t['lost'] for t in tries),
            status, names)
    return rows


def pytest_sessionfinish(session):
    config = session.config
    if not _is_controller(config):
        return
    folder = config._faults_results
    try:
        trials = _read_trials(folder)
        if not trials:
            return
        rows = _previous_rows(RELIABILITY)
        rows.update(reliability_rows(trials, _OUTCOMES))
        with open(RELIABILITY + '.tmp', 'w') as table:
            table.write('# Reliability\n\nWritten by `pytest tests/faults` (part of `make test`): '
                        'every fault the suite inflicts on training, export and the model zoo, '
                        'how many times it was tried, what happened, and how much work was lost '
                        '(epochs missing or repeated in the metrics, checkpoints that do not '
                        'load, runs that cannot be continued, processes left hanging).\n\n')
            table.write(_HEADER)
            table.writelines(rows.values())
        os.replace(RELIABILITY + '.tmp', RELIABILITY)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
