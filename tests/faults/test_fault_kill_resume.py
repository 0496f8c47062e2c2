"""SIGKILL a digits training at 10 random moments and continue it each time with ``--resume auto``.

The moments cycle through: during a training step, during validation, while a
checkpoint file is being written (a temporary file of an atomic write is on
disk), and at a random time. The epoch is the one the resumed process started
in or the next one (so some lives make progress and some do not).

After every kill the run folder is inspected independently of the trainer:
every checkpoint whose ``.json`` exists must be whole (its JSON parses, its
params load); the next process must say it resumes exactly at the newest of
them, and run on until the next kill. At the end the run finishes with exit 0
and ``metrics.jsonl`` holds every epoch exactly once, in order.
"""
import signal
import time

import faultlib
from faultlib import Process, complete_checkpoints, resume_point, started_at, temporary_files

EPOCHS = 8
KILLS = 10
MOMENTS = ('during a step', 'during validation', 'during a checkpoint write', 'at a random time')
FAULT = 'SIGKILL %s, then --resume auto'


def _wait_for_moment(process, run_dir, moment, epoch, first_batch, rng):
    """Wait until ``moment`` of ``epoch``; returns False if the process ended first."""
    if moment == 'during a step':
        batch = rng.randrange(first_batch, faultlib.SAMPLES // faultlib.BATCH - 1)
        seen = process.wait_for_text(r'Epoch\[%d\] Batch \[%d\]' % (epoch, batch))
        time.sleep(rng.uniform(0, 0.05))    # into the next step
        return seen
    if moment == 'during validation':
        seen = process.wait_for_text(r'\[Epoch %d\] speed:' % epoch)
        time.sleep(rng.uniform(0, 0.1))
        return seen
    if moment == 'during a checkpoint write':
        if not process.wait_for_text(r'\[Epoch %d\] validation:' % epoch):
            return False
        return process.wait_until(lambda: temporary_files(run_dir), poll=0.0005)
    # random: within about two epochs of the start
    time.sleep(rng.uniform(0.0, 2.0))
    return process.alive()


def test_sigkill_at_random_moments_then_resume(save_dir, rng, trials, tmp_path):
    run_dir = faultlib.run_dir_of(save_dir)
    argv = faultlib.train_argv(save_dir, EPOCHS, '--resume', 'auto')
    expected_start = (0, 0)
    for kill in range(KILLS):
        moment = MOMENTS[kill % len(MOMENTS)]
        stale = set(temporary_files(run_dir))
        process = Process(argv, str(tmp_path / 'logs'), 'life%d' % kill)
        assert process.wait_until(lambda: started_at(process) is not None), process.output()[1]
        start = started_at(process)
        assert start == expected_start, (
            'life %d resumed at %s, the newest complete checkpoint is %s\n%s'
            % (kill, start, expected_start, process.output()[1][-3000:]))
        epoch = min(start[0] + rng.choice((0, 1)), EPOCHS - 1)
        alive_at_moment = _wait_for_moment(process, run_dir, moment, epoch,
                                           start[1] if epoch == start[0] else 0, rng)
        partial = bool(set(temporary_files(run_dir)) - stale)
        process.kill(signal.SIGKILL)
        result = process.wait()
        assert alive_at_moment or result.returncode == 0, (
            'life %d died on its own (exit %d)\n%s' % (kill, result.returncode,
                                                      result.stderr[-3000:]))
        assert 'Traceback' not in result.stderr, result.stderr[-3000:]
        expected_start = resume_point(run_dir)   # asserts every checkpoint is whole
        trials.record(FAULT % moment, 'resumed at the newest complete checkpoint%s'
                      % (', ignoring the partial file the kill left' if partial else ''),
                      tool='train_imagenet.py')
    final = Process(argv, str(tmp_path / 'logs'), 'final')
    result = final.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert started_at(final) == expected_start
    epochs = faultlib.epochs_in_metrics(run_dir)
    missing = sorted(set(range(EPOCHS)) - set(epochs))
    repeated = len(epochs) - len(set(epochs))
    trials.record('SIGKILL x%d in one run: metrics after the last resume' % KILLS,
                  'every epoch exactly once' if epochs == list(range(EPOCHS))
                  else 'epochs missing %s, %d repeated' % (missing, repeated),
                  lost=len(missing) + repeated, tool='train_imagenet.py')
    assert epochs == list(range(EPOCHS)), epochs
    assert complete_checkpoints(run_dir)
    # not a loss, but disk space: what the killed atomic writes left behind
    left = temporary_files(run_dir)
    trials.record('SIGKILL x%d in one run: temporary files left in the run folder' % KILLS,
                  '%d partial files of interrupted writes (never read; disk space only)'
                  % len(left) if left else 'none', tool='train_imagenet.py')
