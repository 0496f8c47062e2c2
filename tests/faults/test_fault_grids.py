"""Grids and data checked before work, not after: no late failure of what could be known.

* A grid whose later cell cannot be built (``--shuffle-group 3`` on 40 depthwise
  channels), an ``--update-readme`` file with its markers out of order, runner-owned
  training flags: one line, exit 2, before the first cell trains.
* A finished cell whose last metrics line was removed is reported once, with what to
  do (delete its folder), not retried and failed on every rerun; deleted, it trains.
* Training data of one class: one line, exit 2, before any network is built; data of
  5 classes or fewer: no top-5 (it would always be 100%) in the log, the metrics or
  eval.py's report.
"""
import os
import shutil
import sys

import pytest

import faultlib
from faultlib import assert_one_line_error

#: A recipe of seconds: 2 epochs of 2 batches of the digits.
TINY = ['--dataset', 'digits', '--input-size', '32', '--crop-ratio', '1', '--batch-size', '32',
        '--num-training-samples', '64', '--num-epochs', '2', '--lr', '0.1',
        '--save-frequency', '0', '--log-interval', '100']
RUNNER = [sys.executable, '-m', 'gluon_asymmnet.experiments']


def _grid(out, root, *own, flags=()):
    return RUNNER + ['--models', faultlib.MODEL, '--out', str(out), '--latency-runs', '0'] + \
        list(own) + ['--'] + TINY + ['--digits-root', root] + list(flags)


def test_a_grid_fails_before_its_first_cell(tmp_path, digits, cli, trials):
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    readme = tmp_path / 'README.md'
    readme.write_text('<!-- experiments:end -->\n<!-- experiments:begin -->\n')
    cases = [('a later cell that cannot be built', ['--shuffle-group', '0', '3'], (),
              'shuffle_group=3'),
             ('--update-readme markers out of order', ['--update-readme', str(readme)], (),
              'before'),
             ('a runner-owned flag in the recipe', [], ('-j', '4'), '-j/--num-data-workers')]
    for what, own, flags, named in cases:
        out = tmp_path / what.replace(' ', '_')
        result = cli.run(_grid(out, root, *own, flags=flags), tmp_path)
        trained = os.path.isdir(str(out / 'runs'))
        try:
            assert_one_line_error(result, [named], codes=(2,))
            good = not trained
        except AssertionError:
            good = False
        trials.record('a grid with a fault only a later cell or the end would meet',
                      'one line, exit 2, before any cell trained' if good
                      else '%s: exit %d, trained %s: %s' % (what, result.returncode, trained,
                                                            result.stderr[-300:]),
                      lost=0 if good else 1, tool='experiments')
        assert good, (what, result.returncode, trained, result.stderr[-2000:])


def test_a_finished_cell_without_its_last_metrics_line(tmp_path, digits, trials):
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    out = tmp_path / 'grid'
    argv = _grid(out, root)
    assert faultlib.run_cli(argv).returncode == 0
    folder, = (out / 'runs').iterdir()   # the grid's one cell
    metrics = folder / 'metrics.jsonl'
    lines = metrics.read_text().splitlines(True)
    metrics.write_text(''.join(lines[:-1]))
    reruns = [faultlib.run_cli(argv) for _ in range(2)]
    said = [r for r in reruns if r.returncode == 1 and 'delete %s' % folder in r.stdout]
    kept = len(metrics.read_text().splitlines()) == len(lines) - 1   # not retrained
    shutil.rmtree(str(folder))
    final = faultlib.run_cli(argv)
    good = len(said) == 2 and kept and final.returncode == 0 and len(
        faultlib.read_metrics(str(folder))) == 2
    trials.record('a finished cell whose last metrics line was removed, rerun',
                  'reported with what to do, not retrained; trained again once deleted' if good
                  else 'reruns exit %s, retrained %s, final exit %d'
                  % ([r.returncode for r in reruns], not kept, final.returncode),
                  lost=0 if good else 1, tool='experiments')
    assert len(said) == 2, [r.stdout[-1500:] for r in reruns]
    assert kept
    assert final.returncode == 0, final.stdout[-2000:]


def _class_folders(root, digits, classes):
    """``root/train`` and ``root/val`` with the digits of ``classes`` (hard links)."""
    for split, source in (('train', digits.train_dir), ('val', digits.val_dir)):
        for name in classes:
            os.makedirs(os.path.join(root, split, name))
            for image in sorted(os.listdir(os.path.join(source, name)))[:40]:
                os.link(os.path.join(source, name, image), os.path.join(root, split, name, image))
    return root


@pytest.mark.parametrize('classes', [1, 3], ids=['one class', 'three classes'])
def test_data_of_few_classes(classes, tmp_path, digits, trials):
    data_dir = _class_folders(str(tmp_path / 'data'), digits, [str(c) for c in range(classes)])
    save_dir = str(tmp_path / 'runs')
    argv = faultlib.train_argv(save_dir, 1)
    at = argv.index('--dataset')
    argv[at:at + 4] = ['--data-dir', data_dir, '--input-size', '32', '--crop-ratio', '1']
    result = faultlib.run_cli(argv)
    if classes == 1:
        try:
            assert_one_line_error(result, [data_dir, 'one class'], codes=(2,))
            good = not os.path.exists(faultlib.run_dir_of(save_dir))
        except AssertionError:
            good = False
        outcome = 'one line, exit 2, before any network was built'
    else:
        run = faultlib.run_dir_of(save_dir)
        records = faultlib.read_metrics(run)
        evaluated = faultlib.run_cli(faultlib.EVAL + [
            '--model-prefix', os.path.join(run, faultlib.MODEL), '--data-dir', data_dir,
            '-j', '1'])
        good = (result.returncode == 0 and records and records[-1]['val_top5'] is None
                and 'top5' not in result.stderr and evaluated.returncode == 0
                and 'top1=' in evaluated.stdout and 'top5' not in evaluated.stdout)
        outcome = 'trained and evaluated, no top-5 reported'
    trials.record('training data of %s' % ('one class' if classes == 1 else '5 classes or fewer'),
                  outcome if good else 'exit %d: %s' % (result.returncode, result.stderr[-300:]),
                  lost=0 if good else 1, tool='train_imagenet.py')
    assert good, (result.returncode, result.stderr[-3000:])
