"""Fixtures of the fault suite, and the reliability table it writes.

Every fault test records its trials with the ``trials`` fixture::

    trials.record('SIGKILL during training, then --resume auto', 'resumed at epoch 2', lost=0)

Every pytest process that runs tests (each xdist worker, or the only process)
appends them as JSON lines to its own file in a results folder of this run
(named after xdist's ``testrunuid``, shared by the workers), and at the end
adds its tests' outcomes. With ``WRITE_RELIABILITY=1`` (``make reliability``;
``make test`` leaves the tracked file alone) the last process to finish writes
``tests/faults/RELIABILITY.md``: one row per fault, with how many times it was
tried, what happened, what was lost and whether its test passed. (The workers
do it, not xdist's controlling process: that one does not load this conftest
when pytest is given ``tests``.) Rows of test files that this run did not run
(a ``-k`` selection, one file) are kept from the previous table. README's
Reliability section shows this table.
"""
import collections
import fcntl
import json
import os
import re
import shutil
import tempfile

import pytest

import faultlib

RELIABILITY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'RELIABILITY.md')
#: Records per class in the small JPEG RecordIO files of ``jpeg_records``.
PER_CLASS = 4

def _is_xdist_controller(config):
    return not hasattr(config, 'workerinput') and bool(getattr(config.option, 'numprocesses', 0))


def pytest_configure(config):
    if _is_xdist_controller(config):
        return   # runs no tests
    if hasattr(config, 'workerinput'):
        folder = os.path.join(tempfile.gettempdir(),
                              'faults-results-%s' % config.workerinput['testrunuid'])
        os.makedirs(folder, exist_ok=True)
    else:
        folder = tempfile.mkdtemp(prefix='faults-results-')
    config._faults_results = folder


#: Outcome of each fault test of this process by node id.
_OUTCOMES = {}


def pytest_runtest_logreport(report):
    """Remember the outcome of each fault test that this process runs."""
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


@pytest.fixture(scope='session')
def jpeg_records(tmp_path_factory):
    """``(rec, idx)`` of 40 JPEG-encoded 32x32 digits (labels 0-9), made once per process."""
    import cv2
    from mxnet import recordio
    from gluon_asymmnet.data.digits import digits_images
    images, labels = digits_images(32)
    folder = tmp_path_factory.mktemp('jpeg-records')
    rec, idx = str(folder / 'digits.rec'), str(folder / 'digits.idx')
    writer = recordio.MXIndexedRecordIO(idx, rec, 'w')
    key = 0
    for digit in range(10):
        for position in [p for p in range(len(labels)) if labels[p] == digit][:PER_CLASS]:
            header = recordio.IRHeader(0, float(digit), key, 0)
            bgr = cv2.cvtColor(images[position], cv2.COLOR_RGB2BGR)
            writer.write_idx(key, recordio.pack_img(header, bgr, quality=90, img_fmt='.jpg'))
            key += 1
    writer.close()
    return rec, idx


@pytest.fixture(scope='session')
def good_params(tmp_path_factory):
    """A parameter file of the suite's model for 10 classes, made once per pytest process."""
    import mxnet as mx
    from gluon_asymmnet import get_model
    net = get_model(faultlib.MODEL, classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path_factory.mktemp('params') / 'model.params')
    net.save_parameters(path)
    return path


@pytest.fixture(scope='session')
def cli():
    """A :class:`faultlib.CliServer` shared by the tests of this process."""
    server = faultlib.CliServer()
    yield server
    server.close()


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


def _read_results(folder):
    """All processes' trials (a list) and test outcomes (a dict) in ``folder``."""
    trials, outcomes = [], {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as lines:
            if name.startswith('trials-'):
                trials.extend(json.loads(line) for line in lines if line.strip())
            elif name.startswith('outcomes-'):
                outcomes.update(json.load(lines))
    return trials, outcomes


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
        names = ', '.join('`%s`' % name for name in sorted(
            {test.split('/')[-1].split('[')[0] for test in tests}))
        rows[fault] = '| %s | %d | %s | %d | %s: %s |\n' % (
            fault, len(tries), what.replace('|', '/'), sum(t['lost'] for t in tries),
            status, names)
    return rows


#: Table order: the order of the faults in the issue that asked for this suite.
_MODULE_ORDER = ('test_fault_kill_resume.py', 'test_fault_graceful_stop.py', 'test_fault_disk.py',
                 'test_fault_corrupt_inputs.py', 'test_fault_fuzz_cli.py',
                 'test_fault_zoo_fuzz.py', 'test_fault_concurrency.py',
                 'test_fault_distributed.py')


def _order(row):
    modules = re.findall(r'`(test_\w+\.py)::', row)
    return min([_MODULE_ORDER.index(m) for m in modules if m in _MODULE_ORDER] or [99])


def _write_table(trials, outcomes):
    ran = {nodeid.split('::')[0].split('/')[-1] for nodeid in outcomes}
    rows = collections.OrderedDict(
        (fault, row) for fault, row in _previous_rows(RELIABILITY).items()
        if not set(re.findall(r'`(test_\w+\.py)::', row)) & ran)
    rows.update(reliability_rows(trials, outcomes))
    tried = {trial['test'] for trial in trials}
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome == 'failed' and nodeid not in tried:
            name = nodeid.split('/')[-1]
            rows[name] = ('| %s | 0 | the test failed before its first try | 0 | '
                          'failed: `%s` |\n' % (name, name.split('[')[0]))
    rows = sorted(rows.items(), key=lambda item: _order(item[1]))
    with open(RELIABILITY + '.tmp', 'w') as table:
        table.write('# Reliability\n\nWritten by `make reliability` (`pytest tests/faults`): '
                    'every fault the suite inflicts on training, export and the model zoo, '
                    'how many times it was tried, what happened, and how much work was lost '
                    '(epochs missing or repeated in the metrics, checkpoints that do not '
                    'load, runs that cannot be continued, processes left hanging).\n\n')
        table.write(_HEADER)
        table.writelines(row for _, row in rows)
    os.replace(RELIABILITY + '.tmp', RELIABILITY)


def pytest_sessionfinish(session):
    """Leave this process's outcomes; the last process to finish writes the table."""
    config = session.config
    if _is_xdist_controller(config):
        return
    folder = config._faults_results
    with open(os.path.join(folder, 'outcomes-%d.json' % os.getpid()), 'w') as out:
        json.dump(_OUTCOMES, out)
    processes = config.workerinput['workercount'] if hasattr(config, 'workerinput') else 1
    with open(os.path.join(folder, '.finished'), 'a+') as finished:
        fcntl.flock(finished, fcntl.LOCK_EX)
        finished.write('%d\n' % os.getpid())
        finished.flush()
        finished.seek(0)
        if len(finished.read().split()) < processes:
            return
        trials, outcomes = _read_results(folder)
        if trials and os.environ.get('WRITE_RELIABILITY'):   # `make reliability`
            _write_table(trials, outcomes)
    shutil.rmtree(folder, ignore_errors=True)
