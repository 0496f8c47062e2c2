"""The local parameter-server launcher: a real dist_sync job on 127.0.0.1."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from gluon_asymmnet.launch import free_port, main

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
sys.exit(0 if (total.asnumpy() == 3).all() else 5)
'''


def job_processes(port):
    """Processes whose environment names this job's scheduler port."""
    marker = b'DMLC_PS_ROOT_PORT=%d\x00' % port
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/environ' % pid, 'rb') as stream:
                if marker in stream.read() and int(pid) != os.getpid():
                    found.append(int(pid))
        except OSError:
            pass
    return found


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


def test_two_workers_one_server_sum(tmp_path):
    launcher, port = start(tmp_path, 'sum')
    out, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, err
    for rank in (0, 1):                                             # 1 + 2 from the two ranks
        assert (tmp_path / ('rank%d' % rank)).read_text() == '2 [3.0, 3.0]'
    assert job_processes(port) == []


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
    assert launcher.returncode == 128 + signal.SIGTERM
    assert 'SIGTERM' in err
    assert job_processes(port) == []


@pytest.mark.parametrize('arguments', [['-n', '2'], ['-n', '0', '--', 'true'], ['--', 'true'],
                                       ['-n', '1', '--port', 'BUSY', '--', 'true']])
def test_bad_arguments(capsys, arguments):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        with pytest.raises(SystemExit) as exit_:
            main([port if argument == 'BUSY' else argument for argument in arguments])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith('python -m gluon_asymmnet.launch: error: ')
