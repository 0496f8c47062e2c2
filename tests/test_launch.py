"""The parameter-server launcher: real dist_sync jobs on 127.0.0.1.

``--launcher local`` starts the processes itself; ``ssh``, ``mpi`` and ``slurm`` go through
MXNet's dmlc_tracker, with stand-ins for ``ssh``, ``mpirun`` and ``srun`` (written by the
tests, first on PATH) that run the commands on this machine.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from gluon_asymmnet import threads
from gluon_asymmnet.data import prepare_digits
from gluon_asymmnet.launch import free_port, main
from helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = '''
import os, sys, time
import mxnet as mx
kv = mx.kv.create('dist_sync')
if sys.argv[1] == 'fail' and kv.rank == 1:
    os._exit(3)
if sys.argv[1] == 'hang':
    time.sleep(600)
kv.init(3, mx.nd.zeros((2,)))
kv.push(3, mx.nd.ones((2,)) * (kv.rank + 1))
total = mx.nd.zeros((2,))
kv.pull(3, out=total)
with open(os.path.join(os.path.dirname(__file__), 'rank%d' % kv.rank), 'w') as result:
    result.write('%d %s' % (kv.num_workers, total.asnumpy().tolist()))
with open(os.path.join(os.path.dirname(__file__), 'local%d' % kv.rank), 'w') as result:
    result.write('%s/%s/%s' % (os.environ.get('ASYMMNET_LOCAL_RANK'),
                               os.environ.get('ASYMMNET_LOCAL_WORKERS'),
                               os.environ.get('OMP_NUM_THREADS')))
print('rank %d done' % kv.rank)
print('rank %d warns' % kv.rank, file=sys.stderr)
sys.exit(0 if (total.asnumpy() == 3).all() else 5)
'''


def job_processes(port):
    """Processes whose environment or command line names this job's scheduler port."""
    marker = re.compile(rb'DMLC_PS_ROOT_PORT=%d[\x00;]' % port)
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/environ' % pid, 'rb') as environ, \
                    open('/proc/%s/cmdline' % pid, 'rb') as cmdline:
                if marker.search(environ.read() + cmdline.read()) and int(pid) != os.getpid():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def none_left(port, within=30):
    """True once no process of the job is left (remote ones end when their input does)."""
    deadline = time.monotonic() + within
    while job_processes(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return job_processes(port) == []


def start(tmp_path, mode, *options):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, '-m', 'gluon_asymmnet.launch', '-n', '2', '-s', '1', '--port', str(port)]
        + list(options) + ['--', 'python', str(script), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    return launcher, port


@pytest.mark.slow
@pytest.mark.parametrize('labels', [True, False])
def test_two_workers_one_server_sum(tmp_path, labels):
    launcher, port = start(tmp_path, 'sum', *([] if labels else ['--no-labels']))
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, err
    for rank in (0, 1):                                             # 1 + 2 from the two ranks
        assert (tmp_path / ('rank%d' % rank)).read_text() == '2 [3.0, 3.0]'
    # each worker's index on this machine (train_imagenet.py --num-gpus N takes GPUs of its
    # own) and its share of the cores, unless OMP_NUM_THREADS was set for the job
    cores = threads.user_threads(os.environ) or max(1, threads.available_cores() // 2)
    assert sorted((tmp_path / ('local%d' % rank)).read_text()
                  for rank in (0, 1)) == ['0/2/%s' % cores, '1/2/%s' % cores]
    assert job_processes(port) == []
    # each line behind the name of the process that printed it, on the stream it used
    label = r'\[worker [01]\] ' if labels else ''
    assert re.fullmatch(r'(%srank [01] done\n){2}' % label, out), out
    assert len(re.findall(r'^%srank [01] warns$' % label, err, re.M)) == 2, err
    if labels:
        assert {line.split(']')[0] for line in out.splitlines()} == {'[worker 0', '[worker 1'}


@pytest.mark.slow
def test_a_failing_worker_stops_the_job(tmp_path):
    launcher, port = start(tmp_path, 'fail')
    out, err = launcher.communicate(timeout=60)                    # bounded: no hang
    assert launcher.returncode == 3
    assert 'exited with status 3' in err
    assert job_processes(port) == []


def test_sigterm_stops_the_job(tmp_path):
    launcher, port = start(tmp_path, 'hang', '--grace', '2')
    deadline = time.monotonic() + 60
    while len(job_processes(port)) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(job_processes(port)) == 4                            # scheduler, server, 2 workers
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 130
    assert 'SIGTERM' in err
    assert job_processes(port) == []


@pytest.mark.parametrize('arguments', [
    ['-n', '2'], ['-n', '0', '--', 'true'], ['--', 'true'],
    ['-n', '1', '--port', 'BUSY', '--', 'true'],
    ['-n', '2', 'true'],                                            # no --
    ['-n', '2', '--launcher', 'pbs', '--', 'true'],
    ['-n', '2', '--launcher', 'ssh', '--', 'true'],                 # no hostfile
    ['-n', '2', '--launcher', 'ssh', '-H', 'MISSING', '--', 'true'],
    ['-n', '2', '--launcher', 'ssh', '-H', 'EMPTY', '--', 'true'],
    ['-n', '2', '--launcher', 'ssh', '-H', 'UNKNOWN', '--', 'true'],
    ['-n', '2', '--launcher', 'ssh', '-H', 'HOSTS', '--', 'echo', 'a b'],
    ['-n', '2', '-H', 'HOSTS', '--', 'true'],                       # local: no hosts
])
def test_bad_arguments(capsys, tmp_path, arguments):
    files = {'MISSING': tmp_path / 'missing', 'EMPTY': tmp_path / 'empty',
             'UNKNOWN': tmp_path / 'unknown', 'HOSTS': tmp_path / 'hosts'}
    files['EMPTY'].write_text('\n# no hosts\n')
    files['UNKNOWN'].write_text('127.0.0.1\nno-such-host.invalid\n')
    files['HOSTS'].write_text('127.0.0.1\n')
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        with pytest.raises(SystemExit) as exit_:
            main([port if argument == 'BUSY' else str(files.get(argument, argument))
                  for argument in arguments])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith('python -m gluon_asymmnet.launch: error: ')


def test_a_missing_program_starts_nothing(tmp_path):
    port = free_port()
    status, _, err = run_cli('gluon_asymmnet.launch', '-n', '2', '--port', port, '--',
                             tmp_path / 'nonexistent')
    assert status == 2
    assert err.strip().splitlines() == [
        'python -m gluon_asymmnet.launch: error: %s: no such program' % (tmp_path / 'nonexistent')]
    assert job_processes(port) == []                    # no scheduler or server left behind


FAKE_SSH = '''#!%s
"""Stand-in for ssh: runs the command on this machine as sshd runs it on another.

OpenSSH's options (before or after the host) are skipped; the command runs under sh -c in
a session of its own, with a fresh environment (PATH and HOME) and a standard input fed
from ours, so that it sees end-of-file when this client ends, as a remote command does
when its connection closes. Each call appends the host to ssh.log.
"""
import os, subprocess, sys, threading
args, host = sys.argv[1:], None
while args:
    word = args.pop(0)
    if word in ('-o', '-p', '-l', '-i'):
        args.pop(0)
    elif not word.startswith('-'):
        if host is not None:
            args.insert(0, word)
            break
        host = word
with open(os.path.join(os.path.dirname(__file__), 'ssh.log'), 'a') as log:
    log.write(host + '\\n')
remote = subprocess.Popen(['sh', '-c', ' '.join(args)], stdin=subprocess.PIPE,
                          start_new_session=True,
                          env={'PATH': os.environ['PATH'], 'HOME': os.environ['HOME']})


def forward():
    for chunk in iter(lambda: os.read(0, 4096), b''):
        remote.stdin.write(chunk)
        remote.stdin.flush()
    remote.stdin.close()


threading.Thread(target=forward, daemon=True).start()
code = remote.wait()
sys.exit(255 if code < 0 else code)
'''

FAKE_MPIRUN_SRUN = '''#!%s
"""Stand-in for mpirun and srun: N copies of the command on this machine.

Reads what dmlc_tracker gives them, ``mpirun -n N -x NAME=VALUE... [--hostfile H] CMD``
and ``NAME=VALUE... srun --share --exclusive=user -N NODES -n N CMD``; like both, it ends
the copies when one fails, and passes SIGTERM on.
"""
import os, signal, subprocess, sys, time
args = sys.argv[1:]
if args == ['--version']:
    print('mpirun (Open MPI) 4.1.2')
    sys.exit(0)
count, env = 1, dict(os.environ)
while args[0].startswith('-'):
    option = args.pop(0)
    if option == '-n':
        count = int(args.pop(0))
    elif option == '-x':
        name, _, value = args.pop(0).partition('=')
        env[name] = value
    elif option in ('-N', '--hostfile'):
        args.pop(0)
copies = [subprocess.Popen(args, env=env) for _ in range(count)]
signal.signal(signal.SIGTERM, lambda *_: [copy.terminate() for copy in copies])
while any(copy.poll() is None for copy in copies):
    if any(copy.poll() not in (None, 0) for copy in copies):
        for copy in copies:
            copy.kill()
    time.sleep(0.05)
sys.exit(max(copy.returncode != 0 for copy in copies))
'''


def stand_ins(tmp_path):
    """A folder with ``ssh``, ``mpirun`` and ``srun`` stand-ins; the environment to use them."""
    folder = tmp_path / 'bin'
    folder.mkdir()
    for name, text in (('ssh', FAKE_SSH), ('mpirun', FAKE_MPIRUN_SRUN),
                       ('srun', FAKE_MPIRUN_SRUN)):
        (folder / name).write_text(text % sys.executable)
        (folder / name).chmod(0o755)
    # one thread each (the tracker passes OMP_NUM_THREADS on); without DMLC_NODE_HOST
    # (mpi, slurm) ps-lite takes DMLC_INTERFACE's address
    return folder, dict(os.environ, PATH='%s:%s' % (folder, os.environ['PATH']),
                        PYTHONPATH=ROOT, OMP_NUM_THREADS='1', DMLC_INTERFACE='lo')


def start_on_hosts(tmp_path, launcher, command, *options):
    """``python -m gluon_asymmnet.launch --launcher LAUNCHER -n 2 -s 1`` on 127.0.0.1 and
    localhost (ssh), with the stand-ins; returns the launcher, its port and the stand-ins."""
    folder, env = stand_ins(tmp_path)
    hosts = tmp_path / 'hosts'
    hosts.write_text('127.0.0.1\nlocalhost\n')
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, '-m', 'gluon_asymmnet.launch', '--launcher', launcher, '-n', '2',
         '-s', '1', '--host-ip', '127.0.0.1', '--port', str(port)]
        + (['-H', str(hosts)] if launcher == 'ssh' else []) + list(options) + ['--'] + command,
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return launcher, port, folder


@pytest.mark.slow
def test_ssh_two_hosts_train_the_digits_to_identical_parameters(tmp_path):
    model = 'asymmnet_small_0.35'
    prepare_digits(str(tmp_path), size=32)      # once, not by each worker
    launcher, port, folder = start_on_hosts(tmp_path, 'ssh', [
        'python', 'train_imagenet.py', '--dataset', 'digits', '--kvstore', 'dist_sync',
        '--model', model, '--batch-size', '16', '--num-epochs', '1',
        '--num-training-samples', '64', '-j', '1', '--save-dir', str(tmp_path),
        '--log-interval', '1', '--lr', '0.05'])
    out = launcher.communicate(timeout=300)[0]
    assert launcher.returncode == 0, out
    # dmlc_tracker's ssh launcher started a server and two workers, over the hostfile's two
    # hosts, which reach it as addresses (ps-lite cannot bind to a name: "bind failed")
    assert (folder / 'ssh.log').read_text() == '127.0.0.1\n' * 3
    run_dir = tmp_path / ('%s-baseline' % model)
    rank0 = mx.nd.load(str(run_dir / ('%s-epoch0000.params' % model)))
    rank1 = mx.nd.load(str(run_dir / 'worker1-final.params'))
    trained = [name for name in rank0 if 'running_' not in name]
    assert sorted(rank0) == sorted(rank1) and len(trained) > 50
    for name in trained:    # BatchNorm running statistics are each worker's own
        np.testing.assert_array_equal(rank0[name].asnumpy(), rank1[name].asnumpy(), err_msg=name)
    assert 'step size 32' in out   # the gradients are averaged over both workers' batches
    assert none_left(port)


@pytest.mark.slow
def test_ssh_a_failing_worker_stops_every_host(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    launcher, port, _ = start_on_hosts(tmp_path, 'ssh', ['python', str(script), 'fail'])
    out = launcher.communicate(timeout=120)[0]                    # bounded: no hang
    assert launcher.returncode == 3, out
    assert re.search(r'launch: worker \d on 127.0.0.1 exited with status 3', out), out
    # the other worker, blocked in its kvstore in a session of its own on its "host", is
    # stopped by its watchdog once its ssh connection is gone
    assert none_left(port)


@pytest.mark.slow
def test_ssh_sigterm_stops_every_host(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    launcher, port, _ = start_on_hosts(tmp_path, 'ssh', ['python', str(script), 'hang'],
                                       '--grace', '2')
    deadline = time.monotonic() + 60
    while not (tmp_path / 'bin' / 'ssh.log').exists() or \
            len((tmp_path / 'bin' / 'ssh.log').read_text().split()) < 3:
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.2)
    time.sleep(1)
    launcher.send_signal(signal.SIGTERM)
    out = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 130, out
    assert 'got SIGTERM' in out
    assert none_left(port)


@pytest.mark.slow
@pytest.mark.parametrize('launcher', ['mpi', 'slurm'])
def test_mpi_and_slurm_run_the_roles_through_their_launcher(tmp_path, launcher):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    launcher, port, _ = start_on_hosts(tmp_path, launcher, ['python', str(script), 'sum'])
    out = launcher.communicate(timeout=120)[0]
    assert launcher.returncode == 0, out
    for rank in (0, 1):                                             # 1 + 2 from the two ranks
        assert (tmp_path / ('rank%d' % rank)).read_text() == '2 [3.0, 3.0]'
    assert none_left(port)
