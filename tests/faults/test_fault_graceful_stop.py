"""SIGTERM and SIGINT at random moments: a checkpoint is written, exit 130, resume continues.

One run folder lives through a sequence of signals, each at another moment
(during start-up while the model is built, during a step, during validation,
during a checkpoint write). After each signal the process must exit 130 within a
bounded time, without a traceback, saying where it stopped; the newest complete
checkpoint must be exactly there; the next ``--resume auto`` must continue from
it. Each signal comes in the epoch the process resumed in. The last process
runs to the end: every epoch's metrics exactly once.
"""
import re
import signal
import time

import faultlib
from faultlib import Process, resume_point, started_at, temporary_files

#: Each interruption moves the run on by at most one epoch: the last one still has room.
EPOCHS = 7
#: (signal, moment) of each interruption, in order.
PLAN = ((signal.SIGTERM, 'during a step'), (signal.SIGINT, 'during validation'),
        (signal.SIGTERM, 'during a checkpoint write'), (signal.SIGINT, 'during a step'),
        (signal.SIGTERM, 'during start-up'))
#: Seconds a stopped process may take to finish its batch and write the checkpoint.
STOP_WITHIN = 60
STOPPED_IN_EPOCH = re.compile(r'stopped after Epoch\[(\d+)\] Batch \[(\d+)\]')
STOPPED_AFTER_EPOCH = re.compile(r'stopped after epoch (\d+)')
STOPPED_BEFORE_TRAINING = re.compile(r'stopped before the first batch')


def _wait_for_moment(process, run_dir, moment, epoch, first_batch, rng):
    if moment == 'during start-up':
        # the run folder is locked; data iterators and network are being built
        return process.wait_for_text(r'no checkpoint in |resuming \S+ at epoch')
    if moment == 'during a step':
        last = faultlib.SAMPLES // faultlib.BATCH - 1   # a stop there ends the epoch instead
        if first_batch >= last:
            epoch, first_batch = epoch + 1, 0
        batch = rng.randrange(first_batch, last)
        seen = process.wait_for_text(r'Epoch\[%d\] Batch \[%d\]' % (epoch, batch))
        time.sleep(rng.uniform(0, 0.05))
        return seen
    if moment == 'during validation':
        return process.wait_for_text(r'\[Epoch %d\] speed:' % epoch)
    if not process.wait_for_text(r'\[Epoch %d\] validation:' % epoch):
        return False
    return process.wait_until(lambda: temporary_files(run_dir), poll=0.0005)


def _stopped_at(stderr):
    """The ``(next_epoch, next_batch)`` the stop message announces, or None."""
    match = STOPPED_IN_EPOCH.search(stderr)
    if match:
        return int(match.group(1)), int(match.group(2)) + 1
    match = STOPPED_AFTER_EPOCH.search(stderr)
    if match:
        return int(match.group(1)) + 1, 0
    if STOPPED_BEFORE_TRAINING.search(stderr):
        return 0, 0
    return None


def test_sigterm_sigint_at_random_moments(save_dir, rng, trials, tmp_path):
    run_dir = faultlib.run_dir_of(save_dir)
    argv = faultlib.train_argv(save_dir, EPOCHS, '--resume', 'auto')
    expected_start = (0, 0)
    for life, (signum, moment) in enumerate(PLAN):
        fault = '%s %s' % (signal.Signals(signum).name, moment)
        process = Process(argv, str(tmp_path / 'logs'), 'life%d' % life)
        epoch, first_batch = expected_start   # the epoch it resumes in
        assert _wait_for_moment(process, run_dir, moment, epoch, first_batch, rng), \
            process.output()[1][-3000:]
        process.kill(signum)
        result = process.wait(STOP_WITHIN)   # fails the test if it takes longer
        stopped = _stopped_at(result.stderr)
        clean = result.returncode == 130 and 'Traceback' not in result.stderr
        if not clean:
            what = 'traceback' if 'Traceback' in result.stderr else 'not a clean stop'
        elif stopped is None:
            what = 'no message saying where it stopped'
        elif stopped == expected_start:
            what = 'nothing new to save; resume continued from the previous checkpoint'
        else:
            what = 'checkpoint written, resume continued there'
        trials.record(fault, 'exit %d within %ds, %s' % (result.returncode, STOP_WITHIN, what),
                      lost=0 if clean and stopped else 1, tool='train_imagenet.py')
        assert result.returncode == 130, (fault, result.returncode, result.stderr[-3000:])
        assert 'Traceback' not in result.stderr, (fault, result.stderr[-3000:])
        assert stopped is not None, (fault, result.stderr[-3000:])
        assert resume_point(run_dir) == stopped, (fault, stopped, resume_point(run_dir))
        assert started_at(process) == expected_start, (fault, started_at(process))
        expected_start = stopped
    final = Process(argv, str(tmp_path / 'logs'), 'final')
    result = final.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert started_at(final) == expected_start
    epochs = faultlib.epochs_in_metrics(run_dir)
    trials.record('SIGTERM/SIGINT x%d in one run: metrics after the last resume' % len(PLAN),
                  'every epoch exactly once' if epochs == list(range(EPOCHS))
                  else 'epochs %s' % epochs,
                  lost=len(set(range(EPOCHS)) ^ set(epochs)) + len(epochs) - len(set(epochs)),
                  tool='train_imagenet.py')
    assert epochs == list(range(EPOCHS)), epochs
