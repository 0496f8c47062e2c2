"""Run an MXNet parameter-server job: a scheduler, servers and workers.

``--launcher local`` (the default) runs them all on this machine, on 127.0.0.1, with the
standard ``DMLC_*`` variables that Kubeflow's MXJob and SageMaker set on real clusters
(``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``,
``DMLC_NUM_WORKER``, ``DMLC_NODE_HOST``). The scheduler and the servers are
``python -c "import mxnet"`` (importing MXNet with ``DMLC_ROLE=scheduler`` or ``server``
runs that role until the job ends); the workers run the given command and learn their
rank from ``kv.rank`` once they create a ``dist_*`` kvstore. Each worker also gets its
index on this machine and the number of workers (``ASYMMNET_LOCAL_RANK``,
``ASYMMNET_LOCAL_WORKERS``), from which the training's ``--num-gpus N`` takes GPUs
of its own (:mod:`gluon_asymmnet.train.devices`), and its share of the machine's cores:
``OMP_NUM_THREADS`` = cores / workers, unless set (:func:`gluon_asymmnet.threads.worker_threads`).

``--launcher ssh``, ``mpi`` or ``slurm`` runs the job on several machines through MXNet's
own tracker, ``dmlc_tracker`` (:mod:`gluon_asymmnet.launch_tracker`): the scheduler here,
the servers and workers on the hosts of ``-H HOSTFILE`` (ssh), of ``mpirun`` or of the
SLURM allocation. There every process runs the given command: MXNet turns the scheduler
and server processes into their roles when the command imports it.

CLI::

    python -m gluon_asymmnet.launch -n 2 -s 1 -- python -m gluon_asymmnet.train \
        --kvstore dist_sync ...
    python -m gluon_asymmnet.launch --launcher ssh -H hosts -n 2 -s 2 -- \
        python -m gluon_asymmnet.train --kvstore dist_sync ...

(``asymmnet-train`` and, in the repository, ``python train_imagenet.py`` are the same
command.)

Every line a process prints reaches the launcher's stdout or stderr behind its name,
``[worker 1] ...`` (``--no-labels``: unchanged). Worker numbers count in start order;
MXNet's ``kv.rank`` is given by the scheduler and may differ.

Either way the launcher waits for the workers and exits with the first failing process's
status (0 if all succeed). When a worker, the scheduler or a server fails, the other
processes are stopped (SIGTERM, then SIGKILL after 5 seconds). On SIGINT/SIGTERM it
passes the signal on to the workers (always SIGTERM through dmlc_tracker; a training
script then checkpoints), waits up to ``--grace`` seconds (a second signal: not at all),
stops everything and exits with status 130. A leading ``python``/``python3`` in the
command is replaced by this interpreter's path (other machines need the same path, as on
a shared file system). Bad arguments are one line and exit status 2, before anything
starts.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import launch_tracker, threads
from .cli import EXIT_INTERRUPTED, OneLineParser, StopFlag, check_ranges, run
from .errors import UsageError
from .train import devices

__all__ = ['LAUNCHERS', 'free_port', 'dmlc_env', 'Job', 'launch', 'launch_cluster', 'main']

LAUNCHERS = ('local',) + tuple(launch_tracker.LAUNCHERS)

_POLL_S = 0.05
_KILL_AFTER_S = 5.0
#: The most workers, and the most servers, of a job (each process takes two relay threads
#: of the launcher and, on a cluster, a connection of the scheduler).
MAX_PROCESSES = 1024
#: The most workers and servers together on this machine (``--launcher local``): each
#: imports MXNet (about 300 MB) and runs its own threads.
MAX_LOCAL_PROCESSES = max(16, 4 * (os.cpu_count() or 1))


def free_port(host='127.0.0.1', port=0):
    """A TCP port on ``host`` that is free right now: ``port``, or any if 0.

    Raises
    ------
    OSError
        ``port`` is in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, port))
        return probe.getsockname()[1]


def dmlc_env(role, num_workers, num_servers, port, host='127.0.0.1'):
    """The ``DMLC_*`` variables of one process of a parameter-server job."""
    return {'DMLC_ROLE': role, 'DMLC_PS_ROOT_URI': host, 'DMLC_PS_ROOT_PORT': str(port),
            'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers),
            'DMLC_NODE_HOST': host}


def _status(code):
    """An exit status as a shell reports it (killed by signal N -> 128 + N)."""
    return 128 - code if code < 0 else code


class Job:
    """The processes of one job, started from any thread, and how to stop them.

    Parameters
    ----------
    expected : dict
        ``{role: number of processes}`` once all have started.
    forward : int, optional
        The signal the workers get when the launcher receives SIGINT/SIGTERM (default:
        the one received).
    labels : bool
        Relay each line the processes print to this process's stdout/stderr behind the
        process's name (``[worker 1] ...``); else they write there directly.
    """

    def __init__(self, expected, forward=None, labels=True):
        self.expected = expected
        self.forward = forward
        self.labels = labels
        self._relays = []
        #: One line saying why the job could not be started (set by a submitting thread).
        self.error = None
        self._processes = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self, argv, role, where='', **popen):
        """Start a process of ``role`` (in a session of its own); None once the job is closed.

        ``where`` is appended to its name in messages (e.g. ``worker 1 on 10.0.0.2``).
        """
        with self._lock:
            if self._closed:
                return None
            index = sum(process.role == role for process in self._processes)
            # own session: a terminal's Ctrl-C reaches the launcher only, and a process
            # group can be stopped with whatever it started
            if self.labels:
                popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            process = subprocess.Popen(argv, start_new_session=True, **popen)
            process.role = role
            process.name = ('%s %d' % (role, index) if self.expected[role] > 1 else role) + where
            self._processes.append(process)
            if self.labels:
                for pipe, target in ((process.stdout, 'stdout'), (process.stderr, 'stderr')):
                    relay = threading.Thread(target=_relay, daemon=True,
                                             args=(pipe, target, '[%s] ' % process.name))
                    relay.start()
                    self._relays.append(relay)
            return process

    def drain(self, timeout):
        """Wait up to ``timeout`` seconds for the relays to pass on the last lines."""
        deadline = time.monotonic() + timeout
        for relay in self._relays:
            relay.join(max(0.0, deadline - time.monotonic()))

    def processes(self, *roles):
        """The processes started so far (of ``roles``, or all)."""
        with self._lock:
            return [process for process in self._processes if not roles or process.role in roles]

    def all_started(self, role):
        return len(self.processes(role)) == self.expected[role]

    def close(self):
        """Start nothing more."""
        with self._lock:
            self._closed = True

    def signal(self, processes, signum):
        """Send ``signum`` to the process groups of ``processes``.

        A process whose standard input is a pipe (a command started through ssh, see
        :func:`gluon_asymmnet.launch_tracker.remote_watchdog`) gets end-of-file there
        instead: its watchdog sends SIGTERM to the command, on whichever machine it runs.
        """
        for process in processes:
            if process.poll() is not None:
                continue
            if process.stdin is not None:
                process.stdin.close()
                continue
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, processes, timeout):
        """Wait until ``processes`` have exited or ``timeout`` seconds passed; True if all did."""
        deadline = time.monotonic() + timeout
        while any(process.poll() is None for process in processes):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def stop(self, processes):
        """SIGTERM (and end-of-file), then SIGKILL what is left after 5 seconds (at once when
        the wait is interrupted: a second Ctrl-C)."""
        self.signal(processes, signal.SIGTERM)
        stopped = False
        try:
            stopped = self.wait(processes, _KILL_AFTER_S)
        finally:
            if not stopped:
                for process in processes:
                    if process.poll() is None:
                        try:
                            os.killpg(process.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                self.wait(processes, _KILL_AFTER_S)


_PRINT_LOCK = threading.Lock()


def _relay(pipe, target, label):
    """Copy the lines of ``pipe`` to ``sys.<target>`` behind ``label`` until it closes."""
    with pipe:
        for line in iter(pipe.readline, b''):
            text = line.decode(errors='replace')
            with _PRINT_LOCK:
                stream = getattr(sys, target)
                stream.write(label + text if text.endswith('\n') else label + text + '\n')
                stream.flush()


def _default_log(message):
    print('launch: ' + message, file=sys.stderr, flush=True)


def _supervise(job, begin, grace, log):
    """``begin()`` the job, watch it to its end, stop what is left; returns the exit status.

    SIGINT/SIGTERM (:class:`~gluon_asymmnet.cli.StopFlag`): passed on to the workers, which
    get ``grace`` seconds (a second signal: none); the status is then
    :data:`~gluon_asymmnet.cli.EXIT_INTERRUPTED`.
    """
    with StopFlag() as stop:
        try:
            begin()
            while True:
                workers = job.processes('worker')
                if stop.signal_name:
                    received = getattr(signal, stop.signal_name)
                    forward = job.forward or received
                    log('got %s: sending %s to the workers, waiting up to %gs'
                        % (stop.signal_name, signal.Signals(forward).name, grace))
                    job.signal(workers, forward)
                    job.wait(workers, grace)
                    return EXIT_INTERRUPTED
                if job.error:
                    log(job.error)
                    return 1
                failed = [process for process in job.processes()
                          if process.poll() not in (None, 0)]
                if failed:
                    culprit = failed[0]
                    log('%s exited with status %d: stopping the job'
                        % (culprit.name, _status(culprit.returncode)))
                    return _status(culprit.returncode)
                others = job.processes('scheduler', 'server')
                if job.all_started('worker') and all(p.poll() == 0 for p in workers):
                    if not job.wait(others, grace):
                        log('scheduler/servers still running %gs after the workers: stopping them'
                            % grace)
                    return 0
                if any(process.poll() is not None for process in others):
                    # the scheduler or a server ended while workers still run: they
                    # can only hang now unless they are finishing
                    if not job.wait(workers, grace):
                        log('scheduler/servers ended but workers still run: stopping the job')
                        return 1
                time.sleep(_POLL_S)
        finally:
            job.close()
            job.stop(job.processes())
            job.drain(_KILL_AFTER_S)


def launch(command, num_workers, num_servers=1, port=None, host='127.0.0.1', grace=30.0,
           log=None, labels=True):
    """Run ``command`` as ``num_workers`` workers of a local parameter-server job.

    Parameters
    ----------
    command : list of str
        The worker program and its arguments.
    num_workers, num_servers : int
        Processes of each role (one scheduler besides).
    port : int, optional
        The scheduler's port (default: a free one).
    host : str
        Address of every process.
    grace : float
        Seconds the workers get to finish after SIGINT/SIGTERM, and the
        scheduler/servers after the last worker, before they are stopped.
    log : callable, optional
        Receives one-line messages (default: print to stderr).
    labels : bool
        Put each process's name before the lines it prints (see :class:`Job`).

    Returns
    -------
    int
        0 if every worker succeeded; else the exit status of the first process
        that failed (128 + N for a signal N), or 130 after SIGINT/SIGTERM.
    """
    port = port or free_port(host)
    job = Job({'scheduler': 1, 'server': num_servers, 'worker': num_workers}, labels=labels)

    def begin():
        # scheduler first: the others connect to it
        for role, argv in (('scheduler', [sys.executable, '-c', 'import mxnet']),
                           ('server', [sys.executable, '-c', 'import mxnet']),
                           ('worker', command)):
            for index in range(job.expected[role]):
                env = dict(os.environ, **dmlc_env(role, num_workers, num_servers, port, host))
                if role == 'worker':   # each its own GPUs (see train.devices) and cores
                    env = threads.worker_threads(env, num_workers)
                    env.update({devices.LOCAL_RANK: str(index),
                                devices.LOCAL_WORKERS: str(num_workers)})
                job.start(argv, role, env=env)
    return _supervise(job, begin, grace, log or _default_log)


def launch_cluster(submission, num_workers, num_servers=1, port=None, grace=30.0, log=None,
                   labels=True):
    """Run a job on several machines through dmlc_tracker; like :func:`launch` otherwise.

    Parameters
    ----------
    submission : gluon_asymmnet.launch_tracker.Submission
        The launcher, command and hosts (:func:`gluon_asymmnet.launch_tracker.prepare`).
    num_workers, num_servers : int
    port : int, optional
        The scheduler's port on this machine (default: a free one).
    grace : float
        As in :func:`launch`; also the seconds a remote command has between SIGTERM
        and SIGKILL.
    log : callable, optional
    labels : bool
        As in :func:`launch` (with mpi and slurm, one process runs all tasks of a role).

    Returns
    -------
    int
        As :func:`launch`; 1 if dmlc_tracker could not start the job.
    """
    port = port or free_port('')
    job = Job(launch_tracker.expected_processes(submission.launcher, num_workers, num_servers),
              # srun takes a first SIGINT as a request for its status; both pass SIGTERM on
              forward=signal.SIGTERM, labels=labels)
    with tempfile.TemporaryDirectory(prefix='launch-') as scratch:
        return _supervise(job, lambda: launch_tracker.start(
            job, submission, num_workers, num_servers, port, grace, scratch),
            grace, log or _default_log)


def build_parser():
    """The command line of ``python -m gluon_asymmnet.launch``."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.launch',
        description='Run COMMAND as the workers of an MXNet parameter-server job: on this '
                    'machine (scheduler, servers and workers on 127.0.0.1), or on several '
                    "through MXNet's dmlc_tracker (ssh, mpi, slurm).")
    parser.add_argument('--launcher', choices=LAUNCHERS, default='local',
                        help='where the processes run (default: local)')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int, default=1, help='server processes')
    parser.add_argument('-H', '--hostfile',
                        help='ssh: the hosts, one a line (HOST or HOST:SSH_PORT); '
                             "mpi: mpirun's --hostfile")
    parser.add_argument('--host-ip',
                        help="ssh, mpi, slurm: this machine's address as the hosts reach it "
                             "(the scheduler's; default: dmlc_tracker's guess)")
    parser.add_argument('--port', type=int, default=0,
                        help="the scheduler's port (default: a free one)")
    parser.add_argument('--grace', type=float, default=30.0,
                        help='seconds to wait for workers after SIGINT/SIGTERM (default 30)')
    parser.add_argument('--no-labels', dest='labels', action='store_false',
                        help="pass the processes' output on unchanged (default: each line "
                             'behind its process name, e.g. [worker 1])')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='-- then the worker command, e.g. python -m gluon_asymmnet.train ...')
    return parser


def _main(args):
    if not args.command:
        raise UsageError('no worker command: add -- python -m gluon_asymmnet.train ...')
    if args.command[0] != '--':
        raise UsageError('put -- before the worker command: -- %s' % ' '.join(args.command))
    command = args.command[1:]
    if not command:
        raise UsageError('no worker command after --')
    if command[0] in ('python', 'python3'):
        command = [sys.executable] + command[1:]
    if shutil.which(command[0]) is None:
        raise UsageError('%s: no such program' % command[0])
    try:
        port = free_port('127.0.0.1' if args.launcher == 'local' else '', args.port)
    except OSError as error:
        raise UsageError('--port %d: %s' % (args.port, error.strerror)) from None
    if args.launcher == 'local':
        for flag, value, launchers in (('-H', args.hostfile, 'ssh or mpi'),
                                       ('--host-ip', args.host_ip, 'ssh, mpi or slurm')):
            if value is not None:
                raise UsageError('%s: only with --launcher %s' % (flag, launchers))
        return launch(command, args.num_workers, args.num_servers, port, grace=args.grace,
                      labels=args.labels)
    submission = launch_tracker.prepare(args.launcher, command, args.hostfile, args.host_ip)
    return launch_cluster(submission, args.num_workers, args.num_servers, port, args.grace,
                          labels=args.labels)


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.launch [--launcher L] -n N -s S -- COMMAND...``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_ranges(parser, args, (('num_workers', 1, MAX_PROCESSES, True, True),
                                ('num_servers', 1, MAX_PROCESSES, True, True),
                                ('port', 0, 65535, True, True),
                                ('grace', 0, 3600, True, True)))
    if args.launcher == 'local' and args.num_workers + args.num_servers > MAX_LOCAL_PROCESSES:
        parser.error('-n %d -s %d: at most %d workers and servers together fit on this '
                     'machine (%d cores); use --launcher ssh, mpi or slurm for more'
                     % (args.num_workers, args.num_servers, MAX_LOCAL_PROCESSES,
                        os.cpu_count() or 1))
    return run(parser, _main, args)


if __name__ == '__main__':
    sys.exit(main())
