"""No hang, whatever the data source and worker count; no size that exhausts the machine.

* Class-folder data (``--data-dir``) with several loading workers (``-j 4``):
  evaluation and training run to their end, again and again, each within a
  deadline; SIGTERM in the middle of their work ends them within seconds. (MXNet's
  process-pool ``DataLoader`` hung at exit in about one run in three and could
  ignore SIGTERM while it respawned its workers; the loaders use threads.)
* Every size, count and worker flag has an upper bound that fits the machine,
  checked before any work: a value past it is one line and exit 2 within seconds,
  with nothing left behind (no staging folder, no process).
"""
import os
import signal
import sys
import time

import pytest

import faultlib
from faultlib import Process, assert_one_line_error, export_argv

#: Runs of each command over class folders with ``-j 4``.
EVAL_TRIES = 6
TRAIN_TRIES = 2
#: Seconds a run over the digits' class folders may take (about 10-25 s on 2 loaded cores).
RUN_DEADLINE = 120
#: Seconds a command may take to end after SIGTERM, and to refuse a bound.
SIGNAL_DEADLINE = 10
BOUND_DEADLINE = 60


@pytest.fixture
def folder_export(tmp_path, good_params, digits):
    """``(prefix, data_dir)``: an MXNet export of the suite's model and the digits as class
    folders (``train/`` and ``val/``)."""
    prefix = str(tmp_path / 'export' / 'model')
    assert faultlib.run_cli(export_argv(good_params, prefix)).returncode == 0
    return prefix, os.path.dirname(digits.train_dir)


def _eval_argv(prefix, data_dir, tmp_path, attempt):
    return faultlib.EVAL + ['--model-prefix', prefix, '--data-dir', data_dir, '-j', '4',
                            '--json', str(tmp_path / ('eval%d.json' % attempt))]


def _train_argv(save_dir, data_dir, tag, epochs=2):
    argv = faultlib.train_argv(save_dir, epochs, tag=tag)
    digits_flag = argv.index('--dataset')
    argv[digits_flag:digits_flag + 4] = ['--data-dir', data_dir]   # not --dataset/--digits-root
    return argv + ['-j', '4', '--input-size', '32', '--crop-ratio', '1']


def test_class_folders_with_worker_threads_never_hang(tmp_path, folder_export, trials):
    prefix, data_dir = folder_export
    argvs = [('eval.py', _eval_argv(prefix, data_dir, tmp_path, i)) for i in range(EVAL_TRIES)]
    argvs += [('train_imagenet.py', _train_argv(str(tmp_path / 'runs'), data_dir, 'hang%d' % i))
              for i in range(TRAIN_TRIES)]
    for attempt, (tool, argv) in enumerate(argvs):
        started = time.monotonic()
        process = Process(argv, str(tmp_path / 'logs'), 'run%d' % attempt)
        try:
            result = process.wait(RUN_DEADLINE)
            hung = False
        except AssertionError:   # killed at the deadline
            result, hung = None, True
        took = time.monotonic() - started
        good = not hung and result.returncode == 0 and not process.left_running
        trials.record('--data-dir with -j 4 (worker threads), run to the end %d times'
                      % len(argvs), 'exit 0 within %ds, nothing left running' % RUN_DEADLINE
                      if good else 'hung (killed after %ds)' % RUN_DEADLINE if hung
                      else 'exit %d after %.0fs, left %s' % (result.returncode, took,
                                                             process.left_running),
                      lost=0 if good else 1, tool=tool)
        assert not hung, '%s hung at its end (attempt %d)' % (tool, attempt)
        assert result.returncode == 0, result.stderr[-3000:]
        assert not process.left_running, process.left_running


@pytest.mark.parametrize('tool', ['eval.py', 'train_imagenet.py'])
def test_sigterm_ends_class_folder_work_soon(tool, tmp_path, folder_export, rng, trials):
    """SIGTERM while the loading workers read: the command ends within seconds, status 130."""
    prefix, data_dir = folder_export
    argv = (_eval_argv(prefix, data_dir, tmp_path, 0) if tool == 'eval.py'
            else _train_argv(str(tmp_path / 'runs'), data_dir, 'sigterm', epochs=3))
    process = Process(argv, str(tmp_path / 'logs'), 'work')
    # into its work, while the loading workers read: training's first batches; evaluation
    # reads for seconds once MXNet is loaded
    if tool == 'train_imagenet.py':
        process.wait_for_text(r'Epoch\[0\] Batch \[0\]', timeout=RUN_DEADLINE)
        time.sleep(rng.uniform(0.1, 1.0))
    else:
        process.wait_for_work()
        time.sleep(rng.uniform(3.0, 8.0))
    sent = time.monotonic()
    process.kill(signal.SIGTERM)
    result = process.wait(SIGNAL_DEADLINE + 60)
    took = time.monotonic() - sent
    good = (result.returncode in (0, 130) and took < SIGNAL_DEADLINE
            and not process.left_running and 'Traceback' not in result.stderr)
    trials.record('SIGTERM while --data-dir -j 4 loads', 'ended within %ds (exit %d)'
                  % (SIGNAL_DEADLINE, result.returncode) if good
                  else 'exit %d after %.1fs, left %s' % (result.returncode, took,
                                                          process.left_running),
                  lost=0 if good else 1, tool=tool)
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert result.returncode in (0, 130), (result.returncode, result.stderr[-3000:])
    assert took < SIGNAL_DEADLINE, took
    assert not process.left_running


#: Each tool with a size, count or worker flag far past what fits: ``(tool, argv, named)``.
def _past_the_bounds(tmp_path, good_params, digits):
    root = str(tmp_path / 'digits-cache')
    prefix = str(tmp_path / 'export' / 'model')
    train = faultlib.train_argv(str(tmp_path / 'runs'), 1, '--digits-root', root)
    data = ['--model-prefix', prefix, '--dataset', 'digits', '--digits-root', root]
    experiments = [sys.executable, '-m', 'gluon_asymmnet.experiments', '--models',
                   faultlib.MODEL, '--out', str(tmp_path / 'grid'), '--dry-run']
    grid = ['--', '--dataset', 'digits', '--digits-root', root]
    return [
        ('train_imagenet.py', train + ['--input-size', '100000'], '--input-size'),
        ('train_imagenet.py', train + ['--input-size', '2000'], 'GB'),     # the digits
        ('train_imagenet.py', train + ['--batch-size', '1000000'], '--batch-size'),
        ('train_imagenet.py', train + ['--batch-size', '4096', '--input-size', '512'], 'GB'),
        ('train_imagenet.py', train + ['-j', '100000'], '-j'),
        ('train_imagenet.py', train + ['--seed', '4294967296'], '--seed'),
        ('eval.py', faultlib.EVAL + data + ['--input-size', '100000'], '--input-size'),
        ('eval.py', faultlib.EVAL + data + ['-j', '100000'], '-j'),
        ('eval.py', faultlib.EVAL + data + ['--batch-size', '60000', '--input-size', '2048'],
         'GB'),
        ('eval.py', faultlib.EVAL + ['--benchmark', '--runs', '1000000000'], '--runs'),
        ('quantize', faultlib.QUANTIZE + data + ['--out', str(tmp_path / 'q'),
                                                 '--input-size', '100000'], '--input-size'),
        ('export', export_argv(good_params, str(tmp_path / 'e'))[:-4]
         + ['--input-size', '100000', '--prefix', str(tmp_path / 'e')], '--input-size'),
        ('summary', [sys.executable, '-m', 'gluon_asymmnet.summary', faultlib.MODEL,
                     '--input-size', '100000'], '--input-size'),
        ('prepare', faultlib.PREPARE + [digits.val_dir, str(tmp_path / 'p'), '--num-thread',
                                        '100000'], '--num-thread'),
        ('prepare', faultlib.PREPARE + [digits.val_dir, str(tmp_path / 'p'), '--resize',
                                        '10000000'], '--resize'),
        ('launch', faultlib.LAUNCH + ['-n', '100000', '--', 'python', '-c', 'pass'], '-n'),
        ('launch', faultlib.LAUNCH + ['-n', '1', '-s', '100000', '--', 'python', '-c', 'pass'],
         '-s'),
        ('launch', faultlib.LAUNCH + ['-n', '1000', '--', 'python', '-c', 'pass'], 'machine'),
        ('experiments', experiments + ['--jobs', '100000'] + grid, '--jobs'),
    ]


def test_every_size_count_and_worker_flag_has_an_upper_bound(tmp_path, good_params, digits,
                                                             trials, cli):
    for tool, argv, named in _past_the_bounds(tmp_path, good_params, digits):
        started = time.monotonic()
        result = cli.run(argv, tmp_path, timeout=BOUND_DEADLINE)
        took = time.monotonic() - started
        staging = [name for name in os.listdir(str(tmp_path))
                   if name.startswith('.')] + [name for name in (
                       os.listdir(str(tmp_path / 'digits-cache'))
                       if os.path.isdir(str(tmp_path / 'digits-cache')) else [])
                       if name.startswith('.')]
        try:
            line = assert_one_line_error(result, [named], codes=(2,))
            good = not staging
        except AssertionError:
            line, good = result.stderr.strip()[-300:], False
        trials.record('a size, count or worker flag far past what fits the machine',
                      'one line naming it (or the memory needed), exit 2, within %.0fs'
                      % BOUND_DEADLINE if good else 'exit %d: %s; staging %s'
                      % (result.returncode, line, staging), lost=0 if good else 1, tool=tool)
        assert good, (argv[1:], result.returncode, line, staging)
        assert took < BOUND_DEADLINE
