"""Outputs that are not the command's own: refused unless ``--force``; an export's files never.

A tool's output path that holds a file the tool did not make as that kind of output
(a run's ``metrics.jsonl``, its ``log.txt``, a checkpoint, another run's metrics, a
file of another export) is refused with one line naming it, exit 2, the file
untouched; ``--force`` replaces it where that makes sense. A file of an export is
never written outside that export's own publish: ``quantize --out`` onto a member
of another export is refused even with an ONNX model in hand (the export's record
would name files it no longer has).
"""
import hashlib
import os

import pytest

import faultlib
from faultlib import assert_one_line_error


def _sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.fixture
def run_folder(tmp_path):
    """A run folder's files: metrics, log, a checkpoint; and another run's metrics."""
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'metrics.jsonl').write_text('{"epoch": 0, "train_loss": 1.0, "val_top1": 0.5}\n'
                                       '{"epoch": 1, "train_loss": 0.8, "val_top1": 0.6}\n')
    (run / 'log.txt').write_text('[Epoch 0] validation: top1=0.500000 top5=0.900000\n')
    faultlib.save_weights(str(run / 'model-epoch0001.params'), 1)
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'metrics.jsonl').write_text('{"epoch": 0, "train_loss": 2.0}\n')
    return run


def test_plot_and_eval_refuse_files_that_are_not_their_kind(tmp_path, run_folder, digits, cli,
                                                            trials):
    run = str(run_folder)
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    prefix = str(tmp_path / 'export' / 'model')
    faultlib.save_weights(str(tmp_path / 'w.params'), 2)
    assert faultlib.run_cli(faultlib.export_argv(str(tmp_path / 'w.params'),
                                                 prefix)).returncode == 0
    victims = [os.path.join(run, 'metrics.jsonl'), os.path.join(run, 'log.txt'),
               os.path.join(run, 'model-epoch0001.params'),
               str(tmp_path / 'other' / 'metrics.jsonl')]
    commands = [('plot', lambda out: faultlib.PLOT + [run, '-o', out]),
                ('eval.py', lambda out: faultlib.EVAL + ['--model-prefix', prefix, '--dataset',
                                                         'digits', '--digits-root', root, '-j',
                                                         '1', '--json', out])]
    for tool, argv in commands:
        for victim in victims:
            before = _sha1(victim)
            result = cli.run(argv(victim), tmp_path)
            try:
                assert_one_line_error(result, [victim, '--force'], codes=(2,))
                good = _sha1(victim) == before
            except AssertionError:
                good = False
            trials.record("an output path holding a run's file (metrics, log, checkpoint, "
                          "another run's metrics)", 'refused in one line, exit 2, the file '
                          'untouched' if good else 'exit %d, %s' % (
                              result.returncode, 'file replaced' if _sha1(victim) != before
                              else result.stderr[-300:]), lost=0 if good else 1, tool=tool)
            assert good, (tool, victim, result.returncode, result.stderr[-2000:])
    # their own kind of file, or --force: replaced
    forced = cli.run(faultlib.PLOT + [run, '-o', victims[3], '--force'], tmp_path)
    again = cli.run(faultlib.PLOT + [run, '-o', victims[3]], tmp_path)
    assert forced.returncode == 0 and again.returncode == 0, forced.stderr + again.stderr
    json_out = str(tmp_path / 'eval.json')
    for _ in range(2):
        result = cli.run(commands[1][1](json_out), tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]


def test_quantize_never_writes_over_a_file_of_another_export(tmp_path, digits, cli, trials):
    from gluon_asymmnet.deploy.export import export_model
    folder = tmp_path / 'deploy'
    folder.mkdir()
    prefix = str(folder / 'good')
    export_model(faultlib.random_net(0), prefix, 32, fmt='onnx')
    root = os.path.dirname(os.path.dirname(digits.train_rec))
    members = [prefix + '.onnx', prefix + '-info.json']
    for member in members:
        before = {path: _sha1(path) for path in members + [prefix + '-batch1.onnx']}
        result = cli.run(faultlib.QUANTIZE + [
            '--onnx', prefix + '-batch1.onnx', '--dataset', 'digits', '--digits-root', root,
            '-j', '1', '--num-calib', '32', '--out', member], tmp_path)
        untouched = before == {path: _sha1(path) for path in before}
        try:
            assert_one_line_error(result, [member, prefix], codes=(2,))
            good = untouched
        except AssertionError:
            good = False
        trials.record('quantize --out onto a file of another export', 'refused in one line '
                      'naming the export, exit 2, the export untouched' if good
                      else 'exit %d, export %s: %s' % (
                          result.returncode, 'untouched' if untouched else 'changed',
                          result.stderr[-300:]), lost=0 if good else 1, tool='quantize')
        assert good, (member, result.returncode, result.stderr[-2000:])
