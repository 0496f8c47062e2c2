"""Several machines: MXNet's own job tracker, ``dmlc_tracker``, under the launcher's control.

The mxnet wheel ships dmlc-core's tracker (``dmlc_tracker``; ``mxnet/tools/launch.py`` is
its front end). Its ``ssh``, ``mpi`` and ``slurm`` modules write the command line of every
process of a parameter-server job (the scheduler on this machine; servers and workers
through ``ssh HOST``, ``mpirun`` or ``srun``) with the ``DMLC_*`` variables of each role.
:func:`start` calls their own ``submit(args)`` and changes, at run time and without
editing the installed package, what stops it from working here:

* **Python 3.9+.** The tracker waits with ``Thread.isAlive()``, which Python 3.9 removed
  (and marks threads with ``setDaemon``, deprecated since 3.10): unpatched,
  ``mxnet/tools/launch.py`` ends with ``AttributeError`` at once. The modules' ``Thread``
  is bound to :class:`_TrackerThread`, which has both.
* **Process control.** The tracker runs every command as ``subprocess.check_call(cmd,
  shell=True)`` in a daemon thread and never looks back: a failed worker leaves the others
  waiting forever, and Ctrl-C leaves everything running. The modules' ``subprocess`` is
  bound to :class:`_JobSubprocess`, whose ``check_call`` starts the command as a process of
  the launcher's job and waits for it; the launcher watches every process, stops the job
  when one fails and passes SIGINT/SIGTERM on (:mod:`gluon_asymmnet.launch`).
* **Host names.** The ssh module sets each process's ``DMLC_NODE_HOST`` to its hostfile
  entry as written. ps-lite binds its ZeroMQ socket to that address, and ZeroMQ binds to IP
  addresses and interface names only, never to DNS names: with ``localhost`` or ``node1``
  in the hostfile every process on that host ends with ``bind failed``. Hostfile entries
  and ``--host-ip`` are resolved to IPv4 addresses first (:func:`read_hostfile`).
* **The scheduler's address.** Only the ssh module passes dmlc_tracker's ``--host-ip`` on;
  under mpi and slurm the tracker always guesses. The tracker's ``get_host_ip`` is bound to
  return the launcher's ``--host-ip`` when there is one.
* **The scheduler's port.** The tracker takes the first port from 9091 up that it can
  bind, then closes it and starts the scheduler, which binds it seconds later (once MXNet
  is imported): two jobs started meanwhile get the same port. The tracker's ``PSTracker``
  is given the launcher's ``--port`` (default: a free port the system picks).
* **Remote processes.** Stopping a local ``ssh`` client does not stop the command it runs
  on the other host (without a terminal, sshd sends it no signal). Under ``--launcher ssh``
  every command starts with a watchdog (:func:`remote_watchdog`): when its standard input
  ends (the launcher closes it, or the ssh connection is gone), it sends SIGTERM to the
  command's process group, and SIGKILL ``grace`` seconds later if it still runs.

The tracker joins the command's words with spaces and runs them through a shell on this
machine (and, with ssh, another on each host) without quoting them: :func:`prepare`
refuses words that a shell would change. Bindings last for the process; each
:func:`start` binds them to its job (one tracker job at a time per process).
"""
import collections
import functools
import importlib
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading

from .errors import UsageError

__all__ = ['LAUNCHERS', 'Submission', 'prepare', 'read_hostfile', 'remote_watchdog',
           'expected_processes', 'start']

#: ``--launcher`` values that go through dmlc_tracker, and the program each one needs.
LAUNCHERS = {'ssh': 'ssh', 'mpi': 'mpirun', 'slurm': 'srun'}

#: What :func:`start` needs, checked by :func:`prepare`: ``hosts`` are ``(IPv4, ssh port)``
#: pairs (ssh), ``hostfile`` is passed to ``mpirun --hostfile`` as it is (mpi).
Submission = collections.namedtuple('Submission', 'launcher command hosts hostfile host_ip')


def _ipv4(host, where):
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as error:
        raise UsageError('%s: cannot resolve host %r (%s)'
                         % (where, host, getattr(error, 'strerror', None) or error)) from None


def _host_lines(path):
    """``(line number, text)`` of the hosts in a hostfile (blank lines and ``#`` comments out)."""
    try:
        with open(path) as stream:
            text = stream.read()
    except OSError as error:
        raise UsageError('-H %s: %s' % (path, error.strerror)) from None
    except UnicodeDecodeError:
        raise UsageError('-H %s: not a text file' % path) from None
    lines = [(number, line.split('#', 1)[0].strip())
             for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise UsageError('-H %s: no hosts in it (one a line: HOST or HOST:SSH_PORT)' % path)
    return lines


def read_hostfile(path):
    """The hosts of an ssh hostfile as ``(IPv4 address, ssh port)`` pairs.

    One host a line: ``HOST`` or ``HOST:SSH_PORT`` (port 22 by default); MPI's
    ``HOST slots=N`` is read as ``HOST``; blank lines and ``#`` comments are skipped.
    Names are resolved here, on the launching machine.

    Raises
    ------
    UsageError
        The file cannot be read, holds no host, a port is not a number or a name does not
        resolve.
    """
    hosts = []
    for number, line in _host_lines(path):
        host, _, port = line.split()[0].partition(':')
        where = '-H %s line %d' % (path, number)
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise UsageError('%s: %r is not an ssh port' % (where, port))
        hosts.append((_ipv4(host, where), port or '22'))
    return hosts


def remote_watchdog(grace):
    """The shell words that start a command under ``--launcher ssh`` (see the module's notes).

    The watchdog reads the command's standard input through fd 3: a shell without job
    control gives a background command ``/dev/null`` as its standard input (dash even
    before applying the command's own redirections). ``$$`` is the shell that ``exec``
    turns into the command, ``kill 0`` signals its process group; the command itself
    runs without fd 3.
    """
    return ('exec 3<&0; (trap "" TERM; cat <&3 >/dev/null 2>&1; kill -TERM 0; i=0; '
            'while kill -0 $$ 2>/dev/null; do [ $i -ge %d ] && kill -KILL 0; sleep 1; '
            'i=$((i+1)); done) >/dev/null 2>&1 & exec 3<&-' % math.ceil(grace))


def prepare(launcher, command, hostfile=None, host_ip=None):
    """Check a multi-machine job before anything starts; returns its :class:`Submission`.

    Parameters
    ----------
    launcher : str
        One of :data:`LAUNCHERS`.
    command : list of str
        The command every process runs (workers; the scheduler and servers too, which
        MXNet runs when the command imports it).
    hostfile : str, optional
        ssh: required (:func:`read_hostfile`); mpi: optional, passed to ``mpirun``;
        slurm: not used (the allocation says where).
    host_ip : str, optional
        The scheduler's address as the other machines reach it (default: dmlc_tracker's
        guess, the address of this machine's host name or of its default route).

    Raises
    ------
    UsageError
        dmlc_tracker or the launcher's program is missing, a word of ``command`` needs
        shell quoting, or the hostfile or ``host_ip`` is wrong.
    """
    try:
        importlib.import_module('dmlc_tracker.' + launcher)   # ships with the mxnet wheel
    except ImportError:
        raise UsageError('--launcher %s needs dmlc_tracker, which comes with the mxnet '
                         'wheel (pip install mxnet)' % launcher) from None
    if shutil.which(LAUNCHERS[launcher]) is None:
        raise UsageError('--launcher %s needs %s on PATH' % (launcher, LAUNCHERS[launcher]))
    for word in command:
        if shlex.quote(word) != word:
            raise UsageError('--launcher %s: %r would need shell quoting, which dmlc_tracker '
                             'does not do (it joins the command with spaces for the shells '
                             'that run it)' % (launcher, word))
    hosts = None
    if launcher == 'ssh':
        if hostfile is None:
            raise UsageError('--launcher ssh needs -H HOSTFILE (one host a line)')
        hosts = read_hostfile(hostfile)
    elif launcher == 'mpi' and hostfile is not None:
        _host_lines(hostfile)
    elif hostfile is not None:
        raise UsageError('-H: --launcher %s takes the hosts of its allocation' % launcher)
    if host_ip is not None:
        host_ip = _ipv4(host_ip, '--host-ip')
    return Submission(launcher, list(command), hosts, hostfile, host_ip)


def expected_processes(launcher, num_workers, num_servers):
    """``{role: processes}`` that dmlc_tracker starts: one each under ssh; under mpi and
    slurm one ``mpirun``/``srun`` runs all the workers, another all the servers."""
    if launcher == 'ssh':
        return {'scheduler': 1, 'server': num_servers, 'worker': num_workers}
    return {'scheduler': 1, 'server': 1, 'worker': 1}


class _TrackerThread(threading.Thread):
    """``threading.Thread`` with the two methods dmlc_tracker calls that Python 3.9 removed
    (``isAlive``) and 3.10 deprecated (``setDaemon``)."""

    def isAlive(self):  # noqa: N802  (dmlc_tracker's name)
        return self.is_alive()

    def setDaemon(self, daemonic):  # noqa: N802
        self.daemon = daemonic


class _JobSubprocess:
    """Stands in for the ``subprocess`` module inside dmlc_tracker's modules.

    ``check_call`` starts the command as a process of ``job`` and waits for it; the job's
    supervisor, not the tracker's thread, acts on its exit status. Everything else is
    the real module.
    """

    def __init__(self, job, launcher):
        self._job = job
        self._launcher = launcher

    def __getattr__(self, name):
        return getattr(subprocess, name)

    def check_call(self, command, shell=False, env=None, executable=None):
        role = (env or {}).get('DMLC_ROLE') or re.search(r'DMLC_ROLE=(\w+)', command).group(1)
        if role == 'scheduler':     # on this machine
            where = ''
        elif self._launcher == 'ssh':
            where = ' on ' + re.search(r'DMLC_NODE_HOST=([^;\s]+)', command).group(1)
        else:
            where = ' (%s)' % LAUNCHERS[self._launcher]
        # ssh: stdin is a pipe the launcher holds, for the watchdog; mpirun and srun pass
        # stdin to one task only, and signals to all of them themselves
        stdin = subprocess.PIPE if self._launcher == 'ssh' else subprocess.DEVNULL
        process = self._job.start(command, role, where, shell=shell, env=env,
                                  executable=executable, stdin=stdin)
        if process is not None:
            process.wait()
        return 0


@functools.lru_cache(maxsize=None)
def _tracker_originals():
    """dmlc_tracker's scheduler starter and address guess as shipped (before any binding)."""
    from dmlc_tracker import tracker
    return tracker.PSTracker, tracker.get_host_ip


def _host_ip(given, guess, hostIP=None):  # noqa: N803  (dmlc_tracker's name)
    return given or guess(hostIP)


def _submit(module, args, job):
    try:
        module.submit(args)
    except BaseException as error:   # noqa: B902  (the thread's end: say it, stop the job)
        job.error = 'dmlc_tracker could not start the job: %s' % (
            ('%s: %s' % (type(error).__name__, error)) if str(error) else type(error).__name__)


def start(job, submission, num_workers, num_servers, port, grace, scratch):
    """Submit the job through dmlc_tracker in a background thread.

    Every process it starts goes to ``job.start(command, role, where, **popen)``; a
    failure to submit goes to ``job.error`` (one line).

    Parameters
    ----------
    job : object
        The launcher's job (:class:`gluon_asymmnet.launch.Job`).
    submission : Submission
        From :func:`prepare`.
    num_workers, num_servers : int
    port : int
        The scheduler's port (free on this machine).
    grace : float
        Seconds a remote command has between SIGTERM and SIGKILL (ssh).
    scratch : str
        A folder that lives as long as the job (holds the resolved hostfile).

    Returns
    -------
    threading.Thread
    """
    from dmlc_tracker import opts, tracker
    module = importlib.import_module('dmlc_tracker.' + submission.launcher)
    argv = ['--cluster', submission.launcher, '--num-workers', str(num_workers),
            '--num-servers', str(num_servers)]
    command = submission.command
    if submission.launcher == 'ssh':
        hostfile = os.path.join(scratch, 'hosts')
        with open(hostfile, 'w') as stream:
            stream.writelines('%s:%s\n' % host for host in submission.hosts)
        argv += ['--host-file', hostfile]
        command = [remote_watchdog(grace)] + command
    elif submission.hostfile is not None:
        argv += ['--host-file', submission.hostfile]
    args = opts.get_opts(argv + ['--'] + command)
    runner = _JobSubprocess(job, submission.launcher)
    for bound in (tracker, module):
        bound.Thread = _TrackerThread
        bound.subprocess = runner
    ps_tracker, guess = _tracker_originals()
    tracker.PSTracker = functools.partial(ps_tracker, port=port, port_end=port + 1)
    tracker.get_host_ip = functools.partial(_host_ip, submission.host_ip, guess)
    thread = threading.Thread(target=_submit, args=(module, args, job), daemon=True,
                              name='dmlc_tracker')
    thread.start()
    return thread
