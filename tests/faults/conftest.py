"""Fixtures of the fault suite, and the reliability table it writes.

Every fault test records its trials with the ``trials`` fixture, naming the
command-line tool (one of :data:`TOOLS`) the fault was inflicted on::

    trials.record('SIGKILL during training, then --resume auto', 'resumed at epoch 2', lost=0,
                  tool='train_imagenet.py')

Every pytest process that runs tests (each xdist worker, or the only process)
appends them as JSON lines to its own file in a results folder of this run
(named after xdist's ``testrunuid``, shared by the workers), and at the end
adds its tests' outcomes. With ``WRITE_RELIABILITY=1`` (``make reliability``;
``make test`` leaves the tracked file alone) the last process to finish writes
``tests/faults/RELIABILITY.md``: one row per fault, with how many times it was
tried, what happened, what was lost and whether its test passed; then one row
per tool: how many faults and tries it took, how many of those faults passed,
what was lost. (The workers
do it, not xdist's controlling process: that one does not load this conftest
when pytest is given ``tests``.) Rows of test files that this run did not run
(a ``-k`` selection, one file) are kept from the previous table (with their
tallies by tool, kept in a comment at its end). docs/reliability.md
links this table.
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
#: The tools a fault is inflicted on, in the order of the table by tool.
TOOLS = ('train_imagenet.py', 'eval.py', 'export', 'quantize', 'convert', 'plot', 'prepare',
         'summary', 'launch', 'experiments', 'get_model')
#: How the table by tool names them (default: the name in backquotes).
_TOOL_NAMES = dict([(tool, '`python -m gluon_asymmnet.%s`' % module) for tool, module in (
    ('export', 'export'), ('quantize', 'quantize'), ('convert', 'convert'), ('plot', 'plot'),
    ('prepare', 'data.prepare'), ('summary', 'summary'), ('launch', 'launch'),
    ('experiments', 'experiments'))], get_model='model zoo (`get_model`)')
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

    def record(self, fault, outcome, lost=0, *, tool):
        """One try of ``fault`` on ``tool``: what happened (short text), how much was lost.

        ``lost`` counts what the user would have lost: epochs missing from or
        repeated in the metrics, checkpoints or results that do not load, a run
        that cannot be continued, a hung process. ``tool`` is one of :data:`TOOLS`.
        """
        if tool not in TOOLS:
            raise ValueError('tool %r is not one of %s' % (tool, ', '.join(TOOLS)))
        with open(self._path, 'a') as out:
            out.write(json.dumps({'fault': fault, 'outcome': outcome, 'lost': lost,
                                  'tool': tool, 'test': self._nodeid}) + '\n')


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
_BY_TOOL = '## By tool'
_BY_TOOL_HEADER = ('| Tool | Faults | Tries | Faults passed | Lost |\n'
                   '|---|---:|---:|---:|---:|\n')
#: Opens the comment that keeps each fault's tries and losses by tool (one JSON line a fault).
_TALLIES = '<!-- tries and lost by tool of each fault'


def _previous_table(path):
    """The previous RELIABILITY.md's rows by fault, and its tallies (see :func:`tallies`)."""
    rows, counts = collections.OrderedDict(), {}
    section = 'faults'
    if os.path.exists(path):
        with open(path) as table:
            for line in table:
                if line.startswith(_BY_TOOL):
                    section = 'tools'
                elif line.startswith(_TALLIES):
                    section = 'tallies'
                elif line.startswith('-->'):
                    section = None
                elif section == 'faults' and _ROW.match(line):
                    rows[_ROW.match(line).group('fault')] = line
                elif section == 'tallies' and line.strip():
                    counts.update(json.loads(line))
    return rows, counts


def tallies(trials):
    """``{fault: {tool: [tries, lost]}}`` of the trial records."""
    counts = {}
    for trial in trials:
        tally = counts.setdefault(trial['fault'], {}).setdefault(trial['tool'], [0, 0])
        tally[0] += 1
        tally[1] += trial['lost']
    return counts


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
                 'test_fault_distributed.py', 'test_fault_tools.py', 'test_fault_tools_sigkill.py',
                 'test_fault_early_signals.py', 'test_fault_hangs_and_bounds.py',
                 'test_fault_ownership.py', 'test_fault_export_info.py', 'test_fault_grids.py')


def _order(row):
    modules = re.findall(r'`(test_\w+\.py)::', row)
    return min([_MODULE_ORDER.index(m) for m in modules if m in _MODULE_ORDER] or [99])


_COLUMNS = re.compile(r'^\| .+? \| (?P<tries>\d+) \| .* \| (?P<lost>\d+) \| (?P<status>[^|:]+):')


def tool_rows(rows, counts):
    """Markdown rows, one per tool of :data:`TOOLS` (from the tallies by fault and tool) and
    one for every fault (from the fault rows, whose last column says if its test passed)."""
    columns = {fault: _COLUMNS.match(row) for fault, row in rows.items()}
    passed = {fault for fault, match in columns.items() if match.group('status') == 'passed'}
    lines = []
    for tool in TOOLS:
        faults = [fault for fault in rows if tool in counts.get(fault, {})]
        lines.append('| %s | %d | %d | %d | %d |\n' % (
            _TOOL_NAMES.get(tool, '`%s`' % tool), len(faults),
            sum(counts[fault][tool][0] for fault in faults), len(passed.intersection(faults)),
            sum(counts[fault][tool][1] for fault in faults)))
    lines.append('| **every fault** | %d | %d | %d | %d |\n' % (
        len(rows), sum(int(match.group('tries')) for match in columns.values()), len(passed),
        sum(int(match.group('lost')) for match in columns.values())))
    return lines


def _write_table(trials, outcomes):
    ran = {nodeid.split('::')[0].split('/')[-1] for nodeid in outcomes}
    previous, counts = _previous_table(RELIABILITY)
    rows = collections.OrderedDict(
        (fault, row) for fault, row in previous.items()
        if not set(re.findall(r'`(test_\w+\.py)::', row)) & ran)
    rows.update(reliability_rows(trials, outcomes))
    counts = {fault: tally for fault, tally in counts.items() if fault in rows}
    counts.update(tallies(trials))
    tried = {trial['test'] for trial in trials}
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome == 'failed' and nodeid not in tried:
            name = nodeid.split('/')[-1]
            rows[name] = ('| %s | 0 | the test failed before its first try | 0 | '
                          'failed: `%s` |\n' % (name, name.split('[')[0]))
    rows = collections.OrderedDict(sorted(rows.items(), key=lambda item: _order(item[1])))
    with open(RELIABILITY + '.tmp', 'w') as table:
        table.write('# Reliability\n\nWritten by `make reliability` (`pytest tests/faults`): '
                    'every fault the suite inflicts on training, evaluation, the deployment '
                    'tools and the model zoo, how many times it was tried, what happened, and '
                    'how much work was lost (epochs missing or repeated in the metrics, '
                    'checkpoints or results that do not load, runs that cannot be continued, '
                    'processes left hanging).\n\n')
        table.write(_HEADER)
        table.writelines(rows.values())
        table.write('\n%s\n\nThe faults above by the tool they hit (a fault of several tools '
                    'counts for each), how many of them passed their test, and what was '
                    'lost.\n\n' % _BY_TOOL)
        table.write(_BY_TOOL_HEADER)
        table.writelines(tool_rows(rows, counts))
        table.write('\n%s (conftest.py reads them back when a run covers part of the suite)\n'
                    % _TALLIES)
        table.writelines(json.dumps({fault: counts[fault]}, sort_keys=True) + '\n'
                         for fault in rows if fault in counts)
        table.write('-->\n')
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
