"""SIGINT and SIGTERM early in the life of every entry point: one line, exit 130.

Every command (training, evaluation, the deployment tools, the launcher, the
experiments runner) hears SIGINT and SIGTERM from the package's first line on
(``gluon_asymmnet.cli.hear_signals_from_start``), while MXNet and GluonCV still
import, through its work (``cli.run``, ``cli.StopFlag``), to its exit. A signal
0.1-0.7 s after the package has started loading must end the command within
:data:`SIGNAL_DEADLINE` seconds with status 130, its last line saying it was
interrupted or where it stopped, no traceback, nothing it started left running,
and no output but whole ones. (The moment is counted from when the process
catches SIGTERM: before that, Python itself is still starting.)
"""
import os
import signal
import sys

import pytest

import faultlib
from faultlib import Process, error_lines

#: Seconds an entry point may take to end after an early signal.
SIGNAL_DEADLINE = 10
#: The signal comes this many seconds after the package started loading.
EARLY = (0.1, 0.7)
ENTRY_POINTS = ('train_imagenet.py', 'eval.py', 'export', 'quantize', 'convert', 'summary',
                'plot', 'prepare', 'launch', 'experiments')


def _argv(entry, tmp_path, good_params, digits):
    """``entry`` with flags that make it work for seconds, writing under ``tmp_path/out``."""
    out = tmp_path / 'out'
    out.mkdir()
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    prefix = str(tmp_path / 'export' / 'model')
    if entry in ('eval.py', 'quantize'):
        assert faultlib.run_cli(faultlib.export_argv(good_params, prefix)).returncode == 0
    metrics = tmp_path / 'metrics.jsonl'
    metrics.write_text('{"epoch": 0, "train_loss": 1.0, "val_top1": 0.5}\n')
    return {
        'train_imagenet.py': faultlib.train_argv(str(out), 3, '--digits-root', root),
        'eval.py': faultlib.EVAL + ['--model-prefix', prefix, '--dataset', 'digits',
                                    '--digits-root', root, '-j', '1',
                                    '--json', str(out / 'eval.json')],
        'export': faultlib.export_argv(good_params, str(out / 'model')),
        'quantize': faultlib.QUANTIZE + ['--model-prefix', prefix, '--dataset', 'digits',
                                         '--digits-root', root, '--num-calib', '32', '-j', '1',
                                         '--out', str(out / 'int8')],
        'convert': faultlib.CONVERT + [good_params, '--model', faultlib.MODEL,
                                       '--root', str(out)],
        'summary': [sys.executable, '-m', 'gluon_asymmnet.summary', faultlib.MODEL],
        'plot': faultlib.PLOT + [str(metrics), '-o', str(out / 'curves.png')],
        'prepare': faultlib.PREPARE + [digits.val_dir, str(out / 'val'), '-q'],
        'launch': faultlib.LAUNCH + ['-n', '1', '--', 'python', '-c',
                                     'import time; time.sleep(60)'],
        'experiments': [sys.executable, '-m', 'gluon_asymmnet.experiments', '--models',
                        faultlib.MODEL, '--out', str(out / 'grid'), '--latency-runs', '0',
                        '--', '--dataset', 'digits', '--digits-root', root, '--num-epochs', '2',
                        '--batch-size', '32', '--num-training-samples', '64'],
    }[entry]


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
@pytest.mark.parametrize('entry', ENTRY_POINTS)
def test_an_early_signal_ends_every_entry_point_with_one_line(entry, signum, tmp_path,
                                                              good_params, digits, rng, trials):
    process = Process(_argv(entry, tmp_path, good_params, digits), str(tmp_path / 'logs'),
                      'entry')
    result, took = process.signal_during_work(signum, rng.uniform(*EARLY), SIGNAL_DEADLINE + 20)
    lines = error_lines(result.stderr)
    out = str(tmp_path / 'out')
    partial = [os.path.join(folder, name) for folder, _, names in os.walk(out)
               for name in names if name.startswith('.') and name != '.lock']
    said = bool(lines) and any(word in lines[-1] for word in ('interrupted', 'stopped'))
    # the command's own output is one line; training logs on stderr, the launcher relays
    # its workers' lines: there, the last line says it
    one_line = len(lines) == 1 or entry in ('train_imagenet.py', 'launch', 'experiments')
    good = (result.returncode == 130 and said and one_line and not partial and not
            process.left_running and took < SIGNAL_DEADLINE and 'Traceback' not in result.stderr)
    trials.record('%s 0.1-0.7 s after the start of every entry point' % signal.Signals(signum).name,
                  'exit 130 within %ds, one line saying so, no partial output' % SIGNAL_DEADLINE
                  if good else '%s: exit %d after %.1fs, stderr %r, partial %s, left %s'
                  % (entry, result.returncode, took, lines[-3:], partial, process.left_running),
                  lost=0 if good else 1, tool=entry)
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 130, (result.returncode, result.stderr[-3000:])
    assert said and one_line, lines
    assert not partial and not process.left_running, (partial, process.left_running)
    assert took < SIGNAL_DEADLINE, took
