"""The fault suite's harness: run the real commands, hurt them, look at what is left.

Every command runs as a subprocess exactly as a user starts it (``python
train_imagenet.py ...``, ``python -m gluon_asymmnet.export ...``), with the
repository on ``PYTHONPATH``, one MXNet/OpenMP thread (the suite shares two
cores) and the test's private ``MXNET_HOME``.

* :func:`run_cli` runs a command to its end; :class:`CliServer` runs many
  command lines cheaply (forked from one interpreter that has MXNet imported);
* :class:`Process` starts one in the background, waits for a moment in its life
  (a log line, a file appearing in its run folder, a random time) and sends it
  a signal;
* :func:`assert_one_line_error` is the bad-input contract: non-zero exit, no
  traceback, exactly one line on stderr, naming the file at fault;
* :func:`complete_checkpoints` / :func:`resume_point` check a run folder
  independently of the trainer; :func:`epochs_in_metrics` reads its metrics;
* :func:`read_only` and :func:`file_size_limit` make a folder read-only or
  "full" (see ``test_fault_disk.py`` for the tmpfs case);
* :func:`catches` tells when a tool has entered its work (``gluon_asymmnet.cli.run``
  has installed its SIGTERM handler); :func:`save_weights`, :func:`export_argv`
  and :func:`export_holds` make and check the exports the deployment tools work on.
"""
import collections
import contextlib
import glob
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

from hypothesis import HealthCheck, settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
TRAIN = [PYTHON, os.path.join(REPO, 'train_imagenet.py')]
EVAL = [PYTHON, os.path.join(REPO, 'eval.py')]
EXPORT = [PYTHON, '-m', 'gluon_asymmnet.export']
CONVERT = [PYTHON, '-m', 'gluon_asymmnet.convert']
QUANTIZE = [PYTHON, '-m', 'gluon_asymmnet.quantize']
PLOT = [PYTHON, '-m', 'gluon_asymmnet.plot']
PREPARE = [PYTHON, '-m', 'gluon_asymmnet.data.prepare']
LAUNCH = [PYTHON, '-m', 'gluon_asymmnet.launch']

#: Seconds any single command of the suite may take before the test fails.
COMMAND_TIMEOUT = 180

Result = collections.namedtuple('Result', 'returncode stdout stderr')

#: Settings of the suite's property-based tests: the same examples on every run and in CI
#: (``derandomize``), no example database, no deadline (commands take seconds).
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                        HealthCheck.function_scoped_fixture])


def cli_env():
    """The environment of a command under test: the repo importable, one thread each."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    env.update(OMP_NUM_THREADS='1', MXNET_CPU_WORKER_NTHREADS='1', PYTHONUNBUFFERED='1')
    return env


def file_size_limit(limit):
    """A ``preexec_fn`` that makes every write beyond ``limit`` bytes of a file fail (EFBIG).

    This is how the suite makes a "full disk" where it cannot mount a small
    tmpfs: Python ignores ``SIGXFSZ``, so the write raises ``OSError(EFBIG)`` just
    as a full disk raises ``OSError(ENOSPC)``.
    """
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_cli(argv, timeout=COMMAND_TIMEOUT, cwd=None, preexec_fn=None):
    """Run ``argv`` to its end and return ``Result(returncode, stdout, stderr)``.

    A command that outlives ``timeout`` is killed (its whole process group) and
    the test fails with what it printed: a hang is a fault too.
    """
    process = subprocess.Popen(argv, cwd=cwd or REPO, env=cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True, preexec_fn=preexec_fn)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        raise AssertionError('%s hung for %ds\nstdout: %s\nstderr: %s'
                             % (' '.join(argv), timeout, stdout[-2000:], stderr[-2000:]))
    return Result(process.returncode, stdout, stderr)


def _kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def group_members(pgid):
    """Pids of the live (not zombie) processes of process group ``pgid``."""
    members = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid) as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != 'Z':
            members.append(int(pid))
    return members


def catches(pid, signum):
    """Whether process ``pid`` has a handler for ``signum`` now (``SigCgt`` in /proc).

    Python catches SIGINT from its start; SIGTERM only once ``gluon_asymmnet.cli.run``
    has installed its handler, that is once a tool has parsed its flags and started
    its work.
    """
    try:
        with open('/proc/%d/status' % pid) as status:
            mask = next(line for line in status if line.startswith('SigCgt:')).split()[1]
    except (OSError, StopIteration):
        return False
    return bool(int(mask, 16) >> (signum - 1) & 1)


class Process:
    """A command running in the background, its output going to files.

    Parameters
    ----------
    argv : list of str
        The command.
    log_dir : str
        Where ``<name>.out`` and ``<name>.err`` are written.
    name : str
        File name stem of its output.
    """

    def __init__(self, argv, log_dir, name='process'):
        os.makedirs(log_dir, exist_ok=True)
        self.argv = argv
        self.out_path = os.path.join(log_dir, name + '.out')
        self.err_path = os.path.join(log_dir, name + '.err')
        with open(self.out_path, 'w') as out, open(self.err_path, 'w') as err:
            self.popen = subprocess.Popen(argv, cwd=REPO, env=cli_env(), stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()
        #: Pids of its process group still running when it ended (see :meth:`wait`).
        self.left_running = []

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def output(self):
        """``(stdout, stderr)`` so far."""
        with open(self.out_path, errors='replace') as out, \
                open(self.err_path, errors='replace') as err:
            return out.read(), err.read()

    def wait_until(self, condition, timeout=COMMAND_TIMEOUT, poll=0.01):
        """Poll ``condition()`` until it is true (returns True) or the process ends (False).

        Raises AssertionError after ``timeout`` seconds: the moment never came.
        """
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if not self.alive():
                return bool(condition())
            if time.monotonic() > deadline:
                self.kill(signal.SIGKILL)
                raise AssertionError('%s: waited %ds for a moment that never came\n%s'
                                     % (' '.join(self.argv), timeout, self.output()[1][-2000:]))
            time.sleep(poll)

    def wait_for_work(self, timeout=COMMAND_TIMEOUT):
        """Wait until the command has entered its work (it :func:`catches` SIGTERM); returns
        that time (``time.monotonic()``), or the time it ended if it ended first."""
        self.wait_until(lambda: catches(self.pid, signal.SIGTERM), timeout, poll=0.002)
        return time.monotonic()

    def signal_during_work(self, signum, delay, timeout=COMMAND_TIMEOUT):
        """``delay`` seconds into its work (:meth:`wait_for_work`), send ``signum`` (see
        :meth:`kill`) and wait for the end: ``(Result, seconds from the signal to the end)``."""
        time.sleep(max(0.0, self.wait_for_work() + delay - time.monotonic()))
        sent = time.monotonic()
        self.kill(signum)
        result = self.wait(timeout)
        return result, time.monotonic() - sent

    def wait_for_text(self, pattern, timeout=COMMAND_TIMEOUT):
        """Wait until stdout or stderr matches the regular expression ``pattern``."""
        regex = re.compile(pattern)
        return self.wait_until(lambda: any(regex.search(text) for text in self.output()),
                               timeout, poll=0.02)

    def kill(self, signum=signal.SIGKILL):
        """Send ``signum`` to the process (SIGKILL: to its whole process group)."""
        if signum == signal.SIGKILL:
            _kill_group(self.popen.pid)
        elif self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def wait(self, timeout=COMMAND_TIMEOUT):
        """Wait for the end; return ``Result``. Kills and fails after ``timeout`` seconds.

        What it started and left running (:attr:`left_running`) is killed then.
        """
        try:
            self.popen.wait(timeout)
            self.left_running = group_members(self.popen.pid)
        except subprocess.TimeoutExpired:
            _kill_group(self.popen.pid)
            self.popen.wait()
            out, err = self.output()
            raise AssertionError('%s did not end within %ds\nstdout: %s\nstderr: %s'
                                 % (' '.join(self.argv), timeout, out[-2000:], err[-2000:]))
        finally:
            _kill_group(self.popen.pid)   # whatever it started goes too
        return Result(self.popen.returncode, *self.output())


def error_lines(stderr):
    """The non-blank lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_error(result, names=(), codes=None):
    """The bad-input contract: non-zero exit, no traceback, one stderr line naming the culprit.

    Parameters
    ----------
    result : Result
    names : sequence of str
        Each must appear in the line (typically the offending file's base name).
    codes : container of int, optional
        Allowed exit statuses (default: any non-zero).

    Returns
    -------
    str
        The line.
    """
    lines = error_lines(result.stderr)
    context = 'exit %d\nstderr:\n%s\nstdout tail:\n%s' % (result.returncode, result.stderr[-3000:],
                                                          result.stdout[-1000:])
    assert result.returncode != 0, context
    if codes is not None:
        assert result.returncode in codes, context
    assert 'Traceback' not in result.stderr + result.stdout, context
    assert len(lines) == 1, 'expected a one-line error, got %d lines\n%s' % (len(lines), context)
    for name in names:
        assert name in lines[0], 'the error does not name %r\n%s' % (name, context)
    return lines[0]


def read_metrics(run_dir):
    """The records of ``<run_dir>/metrics.jsonl`` (one per finished epoch), in file order."""
    path = os.path.join(run_dir, 'metrics.jsonl')
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def seeded_rng(name):
    """A random generator whose seed depends only on ``name``: the suite is reproducible."""
    return random.Random(name)


def can_mount_tmpfs():
    """Whether ``unshare -m`` + ``mount -t tmpfs`` work here (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or not shutil.which('unshare'):
        return False
    probe = subprocess.run(['unshare', '-m', 'sh', '-c',
                            'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && '
                            'umount "$d"; rmdir "$d"'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


@contextlib.contextmanager
def read_only(path):
    """Make directory ``path`` read-only for the duration, even for root.

    As root (who ignores permission bits) this sets the ext4/xfs immutable
    attribute with ``chattr +i``: creating, renaming or deleting entries fails
    with EPERM, as on a read-only mount. Otherwise ``chmod a-w`` (EACCES).
    Yields how it was done.
    """
    mode = os.stat(path).st_mode
    if os.geteuid() == 0:
        subprocess.run(['chattr', '+i', path], check=True)
        how = 'chattr +i'
    else:
        os.chmod(path, 0o555)
        how = 'chmod a-w'
    try:
        yield how
    finally:
        if how == 'chattr +i':
            subprocess.run(['chattr', '-i', path], check=True)
        os.chmod(path, mode)


# --- training runs --------------------------------------------------------------------------

#: The model every fault training uses: the smallest of the zoo.
MODEL = 'asymmnet_small_0.35'
#: Training samples per epoch (4 batches of 32): an epoch takes well under a second.
SAMPLES = 128
BATCH = 32
TAG = 'faults'
RESUMING = re.compile(r'resuming \S+ at epoch (\d+) batch (\d+)')


def train_argv(save_dir, epochs, *extra, tag=TAG):
    """A tiny ``train_imagenet.py`` run on the digits set (4 batches an epoch)."""
    return TRAIN + ['--dataset', 'digits', '--digits-root', save_dir, '--model', MODEL,
                    '--save-dir', save_dir,
                    '--tag-name', tag, '--num-epochs', str(epochs), '--batch-size', str(BATCH),
                    '--num-training-samples', str(SAMPLES), '-j', '1', '--log-interval', '1',
                    '--lr', '0.05', '--save-frequency', '0', '--verbose'] + list(extra)


def run_dir_of(save_dir, tag=TAG):
    """The run folder ``train_argv(save_dir, ...)`` writes."""
    return os.path.join(save_dir, '%s-%s' % (MODEL, tag))


def temporary_files(run_dir):
    """Files that an atomic write has not renamed into place yet (``.NAME.xxxx``)."""
    try:
        return [name for name in os.listdir(run_dir)
                if name.startswith('.') and name != '.lock']
    except FileNotFoundError:
        return []


def complete_checkpoints(run_dir):
    """``{(next_epoch, next_batch): json path}`` of the run's checkpoints, each fully checked.

    A checkpoint counts as written once its ``.json`` exists (the trainer writes
    it last). Every such checkpoint must be whole: its JSON parses and its
    ``.params`` and ``.states`` files load. An AssertionError says which is not:
    that is a partial file the next resume could read.
    """
    import mxnet as mx
    found = {}
    for name in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        if not name.endswith('.json') or name.startswith('.') \
                or name in ('args.json', 'run.json') \
                or name.endswith(('-symbol.json', '-info.json')):   # the export, not a checkpoint
            continue
        path = os.path.join(run_dir, name)
        with open(path) as meta_file:
            text = meta_file.read()
        try:
            meta = json.loads(text)
        except ValueError:
            raise AssertionError('%s is not whole JSON: %r' % (path, text[:200])) from None
        params = os.path.join(run_dir, meta['params'])
        assert os.path.isfile(params), '%s names a missing %s' % (path, params)
        try:
            loaded = mx.nd.load(params)
        except mx.base.MXNetError as error:
            raise AssertionError('%s: %s does not load: %s' % (path, params, error)) from None
        assert loaded, '%s is empty' % params
        if meta.get('states'):
            states = os.path.join(run_dir, meta['states'])
            assert os.path.getsize(states) > 0, '%s names an empty %s' % (path, states)
        if not name.endswith('-best.json'):
            found[(meta['next_epoch'], meta['next_batch'])] = path
    return found


def checkpoint_positions(run_dir):
    """``(next_epoch, next_batch)`` of the checkpoints a running training has written so far.

    For polling while it runs (it may prune a checkpoint at any moment): nothing
    is loaded or asserted; see :func:`complete_checkpoints` for the real check.
    """
    positions = []
    for path in glob.glob(os.path.join(run_dir, '*.json')):
        try:
            with open(path) as meta_file:
                meta = json.load(meta_file)
            positions.append((meta['next_epoch'], meta['next_batch']))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return positions


def resume_point(run_dir):
    """Where ``--resume auto`` must continue: the newest complete checkpoint, else (0, 0)."""
    points = complete_checkpoints(run_dir)
    return max(points) if points else (0, 0)


def start_of(stderr):
    """``(epoch, batch)`` a training's log says it resumes at, (0, 0) for a fresh start,
    None if it has not said yet."""
    match = RESUMING.search(stderr)
    if match:
        return int(match.group(1)), int(match.group(2))
    if re.search(r'^Namespace\(', stderr, re.M):
        return (0, 0)
    return None


def started_at(process):
    """:func:`start_of` a running or finished :class:`Process`."""
    return start_of(process.output()[1])


def epochs_in_metrics(run_dir):
    """The ``epoch`` of every line of ``metrics.jsonl``, in file order."""
    return [record['epoch'] for record in read_metrics(run_dir)]


# --- the deployment tools --------------------------------------------------------------------

def random_net(seed):
    """The suite's model for 10 classes with random weights drawn with ``seed``."""
    import mxnet as mx
    from gluon_asymmnet import get_model
    mx.random.seed(seed)
    net = get_model(MODEL, classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 32, 32)))
    return net


def save_weights(path, seed):
    """Save :func:`random_net` weights to ``path``; return their :func:`fingerprint`."""
    import mxnet as mx
    random_net(seed).save_parameters(path)
    return fingerprint(mx.nd.load(path))


def fingerprint(arrays):
    """What tells weights apart: the rounded absolute sum of each array (a dict of NDArray)."""
    return sorted(round(float(a.abs().sum().asscalar()), 2) for a in arrays.values())


def export_argv(params, prefix, *extra):
    """``python -m gluon_asymmnet.export`` of the suite's model with ``params`` at 32x32."""
    return EXPORT + ['--model', MODEL, '--params-file', params, '--input-size', '32',
                     '--prefix', prefix] + list(extra)


def export_holds(prefix, candidates):
    """Index of the weights (fingerprints) the MXNet export at ``prefix`` holds; None for a mix
    (which the readers refuse) or weights of none of them."""
    import mxnet as mx
    from gluon_asymmnet.deploy.runtime import load_exported
    from gluon_asymmnet.errors import UsageError
    try:
        load_exported(prefix)   # refuses files that are not those of its info
    except UsageError:
        return None
    held = fingerprint(mx.nd.load(prefix + '-0000.params'))
    return next((index for index, weights in enumerate(candidates) if weights == held), None)


class CliServer:
    """A ``cli_server.py`` process: :meth:`run` is :func:`run_cli` without the import cost.

    For property-based tests that run a command many times. The commands run
    in forked children of one interpreter that has MXNet and the package
    imported, as ``python SCRIPT ARGS`` / ``python -m MODULE ARGS`` would.
    """

    def __init__(self):
        self._process = subprocess.Popen(
            [PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cli_server.py')],
            cwd=REPO, env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        ready = self._process.stdout.readline()
        assert ready.strip(), 'cli_server.py did not start'

    def run(self, argv, cwd, timeout=COMMAND_TIMEOUT):
        """Run ``argv`` (which starts with :data:`PYTHON`) in ``cwd``; returns :class:`Result`."""
        request = {'command': argv, 'env': cli_env(), 'cwd': str(cwd), 'timeout': timeout}
        self._process.stdin.write(json.dumps(request) + '\n')
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        if reply['timed_out']:
            raise AssertionError('%s hung for %ds\nstderr: %s'
                                 % (' '.join(argv), timeout, reply['stderr'][-2000:]))
        return Result(reply['returncode'], reply['stdout'], reply['stderr'])

    def close(self):
        self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            _kill_group(self._process.pid)
            self._process.wait()
