"""Run an MXNet parameter-server job on this machine: scheduler, servers and workers.

Every process gets the standard ``DMLC_*`` variables that Kubeflow's MXJob and
SageMaker set on real clusters (``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``,
``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``,
``DMLC_NODE_HOST``), all on 127.0.0.1. The scheduler and the servers are
``python -c "import mxnet"`` (importing MXNet with ``DMLC_ROLE=scheduler`` or
``server`` runs that role until the job ends); the workers run the given
command and learn their rank from ``kv.rank`` once they create a ``dist_*``
kvstore. MXNet's own ``tools/launch.py`` needs dmlc-core's tracker, which the
pip package does not ship.

CLI::

    python -m gluon_asymmnet.launch -n 2 -s 1 -- python train_imagenet.py --kvstore dist_sync ...

The launcher waits for the workers and exits with the first failing worker's
status (0 if all succeed). When a worker, the scheduler or a server fails, the
other processes are stopped (SIGTERM, then SIGKILL after a few seconds). On
SIGINT/SIGTERM it passes the signal on to the workers (a training script can
then checkpoint), waits up to ``--grace`` seconds, and stops everything.
A leading ``python``/``python3`` in the command is replaced by this interpreter.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

__all__ = ['free_port', 'dmlc_env', 'launch', 'main']

_POLL_S = 0.05
_KILL_AFTER_S = 5.0


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


class _Job:
    """The processes of one job and how to stop them."""

    def __init__(self, command, num_workers, num_servers, port, host):
        self.workers, self.others = [], []
        # scheduler first: the others connect to it
        for role, count, argv in (('scheduler', 1, [sys.executable, '-c', 'import mxnet']),
                                  ('server', num_servers, [sys.executable, '-c', 'import mxnet']),
                                  ('worker', num_workers, command)):
            for index in range(count):
                env = dict(os.environ, **dmlc_env(role, num_workers, num_servers, port, host))
                # own session: a terminal's Ctrl-C reaches the launcher only, and a
                # process group can be stopped with whatever it started
                process = subprocess.Popen(argv, env=env, start_new_session=True)
                process.name = '%s %d' % (role, index) if count > 1 else role
                (self.workers if role == 'worker' else self.others).append(process)

    def signal(self, processes, signum):
        for process in processes:
            if process.poll() is None:
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
        """SIGTERM, then SIGKILL what is left after a few seconds."""
        self.signal(processes, signal.SIGTERM)
        if not self.wait(processes, _KILL_AFTER_S):
            self.signal(processes, signal.SIGKILL)
            self.wait(processes, _KILL_AFTER_S)


def launch(command, num_workers, num_servers=1, port=None, host='127.0.0.1', grace=30.0,
           log=None):
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

    Returns
    -------
    int
        0 if every worker succeeded; else the exit status of the first process
        that failed (128 + N for a signal N), or 128 + N after SIGINT/SIGTERM
        N if the workers did not exit 0 by themselves.
    """
    log = log or (lambda message: print('launch: ' + message, file=sys.stderr, flush=True))
    received = []
    handlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handlers[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    job = None
    try:
        job = _Job(command, num_workers, num_servers, port or free_port(host), host)
        everyone = job.workers + job.others
        while True:
            if received:
                log('got %s: passing it to the workers, waiting up to %gs'
                    % (signal.Signals(received[0]).name, grace))
                job.signal(job.workers, received[0])
                job.wait(job.workers, grace)
                codes = [process.poll() for process in job.workers]
                if all(code == 0 for code in codes):
                    return 0
                return 128 + received[0]
            failed = [process for process in everyone
                      if process.poll() not in (None, 0)]
            if failed:
                culprit = failed[0]
                log('%s exited with status %d: stopping the job'
                    % (culprit.name, _status(culprit.returncode)))
                return _status(culprit.returncode)
            if all(process.poll() == 0 for process in job.workers):
                if not job.wait(job.others, grace):
                    log('scheduler/servers still running %gs after the workers: stopping them'
                        % grace)
                return 0
            if any(process.poll() is not None for process in job.others):
                # the scheduler or a server ended while workers still run: they
                # can only hang now unless they are finishing
                if not job.wait(job.workers, grace):
                    log('scheduler/servers ended but workers still run: stopping the job')
                    return 1
            time.sleep(_POLL_S)
    finally:
        if job is not None:
            job.stop(job.workers + job.others)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def main(argv=None):
    """Command line: ``python -m gluon_asymmnet.launch -n N -s S [--port P] -- COMMAND...``."""
    parser = argparse.ArgumentParser(
        prog='python -m gluon_asymmnet.launch',
        description='Run COMMAND as the workers of a local MXNet parameter-server job '
                    '(scheduler, servers and workers on 127.0.0.1).')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int, default=1, help='server processes')
    parser.add_argument('--port', type=int, default=0,
                        help="scheduler's port (default: a free one)")
    parser.add_argument('--grace', type=float, default=30.0,
                        help='seconds to wait for workers after SIGINT/SIGTERM (default 30)')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='-- then the worker command, e.g. python train_imagenet.py ...')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no worker command: add -- python train_imagenet.py ...')
    if args.num_workers < 1 or args.num_servers < 1:
        parser.error('-n and -s must be at least 1')
    if not 0 <= args.port < 65536:
        parser.error('--port %d: not a TCP port' % args.port)
    try:
        port = free_port(port=args.port)
    except OSError as error:
        parser.error('--port %d: %s' % (args.port, error.strerror))
    if command[0] in ('python', 'python3'):
        command = [sys.executable] + command[1:]
    return launch(command, args.num_workers, args.num_servers, port, grace=args.grace)


if __name__ == '__main__':
    sys.exit(main())
