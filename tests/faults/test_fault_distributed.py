"""Kill one worker of a 2-worker ``dist_sync`` training on 127.0.0.1, then resume the job.

The job runs under ``python -m gluon_asymmnet.launch -n 2 -s 1``. Once the
first epoch's checkpoint is written, one of the two workers (chosen at random)
is SIGKILLed during a step of the second epoch. The rest of the job (the
other worker, the server, the scheduler, the launcher) must end within
:data:`STOP_WITHIN` seconds with a message naming the dead worker, leaving no
process behind. A new launch with ``--resume auto`` continues from the last
complete checkpoint and finishes with every epoch's metrics exactly once.
"""
import os
import re
import signal
import time

import faultlib
from faultlib import Process, resume_point

EPOCHS = 3
#: Seconds the job may take to stop after a worker died (the launcher stops the others).
STOP_WITHIN = 30


def _job_processes(port):
    """``{pid: DMLC_ROLE}`` of the processes of the job whose scheduler listens on ``port``."""
    marker = b'DMLC_PS_ROOT_PORT=%d\x00' % port
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/environ' % pid, 'rb') as stream:
                environ = stream.read()
        except OSError:
            continue
        if marker in environ:
            role = [v for v in environ.split(b'\x00') if v.startswith(b'DMLC_ROLE=')]
            found[int(pid)] = role[0].split(b'=', 1)[1].decode() if role else '?'
    return found


def _launch(save_dir, tmp_path, name):
    from gluon_asymmnet.launch import free_port
    port = free_port()
    argv = (faultlib.LAUNCH + ['-n', '2', '-s', '1', '--port', str(port), '--']
            + faultlib.train_argv(save_dir, EPOCHS, '--kvstore', 'dist_sync', '--resume', 'auto'))
    return Process(argv, str(tmp_path / 'logs'), name), port


def test_kill_one_worker_of_dist_sync(save_dir, tmp_path, rng, trials):
    run_dir = faultlib.run_dir_of(save_dir)
    job, port = _launch(save_dir, tmp_path, 'job')
    # the first epoch's checkpoint is complete and both workers are in the second epoch
    assert job.wait_until(lambda: (1, 0) in faultlib.checkpoint_positions(run_dir)), \
        job.output()[1][-3000:]
    assert job.wait_until(lambda: len(re.findall(r'Epoch\[1\] Batch \[0\]', job.output()[1]))
                          == 2), job.output()[1][-3000:]
    workers = sorted(pid for pid, role in _job_processes(port).items() if role == 'worker')
    assert len(workers) == 2, _job_processes(port)
    victim = rng.choice(workers)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    result = job.wait(STOP_WITHIN + 30)
    took = time.monotonic() - killed_at
    left = _job_processes(port)
    for pid in left:   # do not leave a hung job behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    lines = faultlib.error_lines(result.stderr)
    message = [line for line in lines if 'exited' in line or 'stopping' in line]
    stopped = result.returncode != 0 and took < STOP_WITHIN and not left and message
    point = resume_point(run_dir)
    trials.record('SIGKILL one worker of a 2-worker dist_sync job',
                  'the job stopped within %ds, saying "%s"'
                  % (STOP_WITHIN, re.sub(r'worker \d+', 'worker N', message[0].strip()))
                  if stopped else 'exit %d after %.0fs, %d processes left'
                  % (result.returncode, took, len(left)), lost=0 if stopped else 1,
                  tool='launch')
    assert result.returncode != 0
    assert not left, 'processes of the job still running: %s' % left
    assert took < STOP_WITHIN, 'the job took %.0fs to stop' % took
    assert message, result.stderr[-3000:]

    resumed, _ = _launch(save_dir, tmp_path, 'resumed')
    result = resumed.wait()
    epochs = faultlib.epochs_in_metrics(run_dir)
    start = faultlib.start_of(result.stderr)
    trials.record('resume the dist_sync job after it lost a worker',
                  'resumed at epoch %d batch %d, every epoch exactly once' % start
                  if start == point and epochs == list(range(EPOCHS))
                  else 'exit %d, started at %s, epochs %s' % (result.returncode, start, epochs),
                  lost=len(set(range(EPOCHS)) ^ set(epochs)) + len(epochs) - len(set(epochs)),
                  tool='launch')
    assert result.returncode == 0, result.stderr[-3000:]
    assert start == point and point >= (1, 0), (start, point)
    assert epochs == list(range(EPOCHS)), epochs
