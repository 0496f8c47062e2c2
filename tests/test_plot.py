"""The curve plotter: our metrics.jsonl and logs in the original format."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
from gluon_asymmnet.plot import main, plot_run
from gluon_asymmnet.run_metrics import read_run

REFERENCE_LOG = os.path.join(FIXTURES, 'official-asymmnet-large-train-log.txt')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == 'PNG' and image.size == (1500, 450)
        pixels = np.asarray(image.convert('L'))
    assert pixels.std() > 10                                        # not a blank page


def test_reference_log_is_parsed():
    epochs = read_run(REFERENCE_LOG)
    assert sorted(epochs) == list(range(360))
    assert epochs[0] == {'train_acc': 0.065053, 'samples_per_sec': 3815.0, 'time': 343.580997,
                         'val_top1': 0.171816, 'val_top5': 0.379668, 'lr': 0.49936}
    best = max(epochs, key=lambda epoch: epochs[epoch]['val_top1'])
    assert (best, epochs[best]['val_top1']) == (358, 0.754232)     # the released weights
    assert max(values['lr'] for values in epochs.values()) == pytest.approx(2.6, abs=0.01)


def test_plot_reference_log(tmp_path):
    out = plot_run(REFERENCE_LOG, str(tmp_path / 'reference.png'))
    assert out == str(tmp_path / 'reference.png')
    assert_png(out)
    assert os.listdir(tmp_path) == ['reference.png']


def write_metrics(run_dir, epochs=4):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as stream:
        for epoch in range(epochs):
            stream.write(json.dumps({
                'epoch': epoch, 'train_loss': 2.0 / (epoch + 1), 'train_acc': 0.2 * epoch,
                'val_top1': 0.25 * epoch, 'val_top5': min(1, 0.5 + 0.2 * epoch),
                'lr': 0.1 * (epochs - epoch), 'samples_per_sec': 100.0, 'time': 1.5}) + '\n')


def test_plot_metrics_of_a_run_folder(tmp_path):
    run_dir = str(tmp_path / 'run')
    write_metrics(run_dir)
    epochs = read_run(run_dir)
    assert epochs == read_run(os.path.join(run_dir, 'metrics.jsonl'))
    assert sorted(epochs) == [0, 1, 2, 3] and epochs[3]['val_top1'] == 0.75
    assert epochs[1]['train_loss'] == 1.0 and epochs[2]['lr'] == pytest.approx(0.2)
    out = plot_run(run_dir)
    assert out == os.path.join(run_dir, 'curves.png')
    assert_png(out)


def test_log_in_our_format_with_a_resumed_epoch(tmp_path):
    log = tmp_path / 'train.log'
    log.write_text('\n'.join([
        'Namespace(lr=0.1)',
        'Epoch[0] Batch [9]\tSpeed: 512.000000 samples/sec\taccuracy=0.100000\tlr=0.010000',
        '[Epoch 0] training: loss=2.300000 accuracy=0.120000',
        '[Epoch 0] speed: 500 samples/sec\ttime cost: 3.500000',
        '[Epoch 0] validation: top1=0.200000 top5=0.600000',
        '[Epoch 1] training: loss=1.900000 accuracy=0.300000',     # interrupted here
        '[Epoch 1] training: loss=1.800000 accuracy=0.350000',     # resumed
        '[Epoch 1] validation: top1=0.400000 top5=0.800000',
    ]) + '\n')
    epochs = read_run(str(log))
    assert epochs[0] == {'lr': 0.01, 'train_loss': 2.3, 'train_acc': 0.12, 'samples_per_sec': 500,
                         'time': 3.5, 'val_top1': 0.2, 'val_top5': 0.6}
    assert epochs[1] == {'train_loss': 1.8, 'train_acc': 0.35, 'val_top1': 0.4, 'val_top5': 0.8}
    assert_png(plot_run(str(log)))
    assert os.path.isfile(tmp_path / 'train.png')


def run_cli(*args):
    return subprocess.run([sys.executable, '-m', 'gluon_asymmnet.plot'] + list(args),
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_cli(tmp_path):
    result = run_cli(REFERENCE_LOG, '-o', str(tmp_path / 'curves.png'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / 'curves.png')
    assert_png(tmp_path / 'curves.png')


@pytest.mark.parametrize('case', ['missing', 'empty_run', 'no_epochs', 'bad_json'])
def test_cli_bad_input(tmp_path, capsys, case):
    source = tmp_path / 'source'
    if case == 'empty_run':
        source.mkdir()
    elif case == 'no_epochs':
        source.write_text('nothing to see\n')
    elif case == 'bad_json':
        source.write_text('{"epoch": 0, "val_top1": 0.5}\n{"epoch": \n')
    with pytest.raises(SystemExit) as exit_:
        main([str(source)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(source) in err
