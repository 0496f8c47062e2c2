"""The curve plotter: our metrics.jsonl and logs in the original format."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
from gluon_asymmnet.errors import UsageError
from gluon_asymmnet.plot import draw_run, main, plot_run, run_classes
from gluon_asymmnet.records import InputSpec, NetSpec, RunRecord, TrainRecipe, write_run_record
from gluon_asymmnet.run_metrics import read_metrics, read_run

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


def write_metrics(run_dir, epochs=4, val_loss=True):
    """A metrics.jsonl as training writes it (``val_loss=False``: as before 0.2)."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as stream:
        for epoch in range(epochs):
            record = {
                'epoch': epoch, 'train_loss': 2.0 / (epoch + 1), 'train_acc': 0.2 * epoch,
                'val_top1': 0.25 * epoch, 'val_top5': min(1, 0.5 + 0.2 * epoch),
                'lr': 0.1 * (epochs - epoch), 'samples_per_sec': 100.0, 'time': 1.5}
            if val_loss:
                record['val_loss'] = 1.5 / (epoch + 1)
            stream.write(json.dumps(record) + '\n')


def write_run_json(run_dir, classes):
    write_run_record(RunRecord.start(NetSpec('asymmnet_small_0.35', classes), InputSpec(32),
                                     TrainRecipe(data='digits', num_epochs=4, batch_size=8)),
                     run_dir)


def lines_of(axes):
    """``{label: (xs, ys)}`` of the curves drawn in ``axes``."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in axes.get_lines()}


def test_validation_loss_is_read_and_drawn(tmp_path):
    run_dir = str(tmp_path / 'run')
    write_metrics(run_dir)
    epochs = read_run(run_dir)
    assert [epochs[e]['val_loss'] for e in range(4)] == [1.5, 0.75, 0.5, 0.375]
    loss = draw_run(epochs, 'run').axes[0]
    drawn = lines_of(loss)
    assert drawn['val loss'] == ([0, 1, 2, 3], [1.5, 0.75, 0.5, 0.375])
    assert drawn['train loss'][1] == [2.0, 1.0, 2.0 / 3, 0.5]


def test_metrics_without_validation_loss_still_read(tmp_path):
    run_dir = str(tmp_path / 'run')
    write_metrics(run_dir, val_loss=False)
    epochs = read_run(run_dir)
    assert all('val_loss' not in values for values in epochs.values())
    assert set(lines_of(draw_run(epochs, 'run').axes[0])) == {'train loss'}
    assert_png(plot_run(run_dir))


@pytest.mark.parametrize('value', [-0.5, '"low"', 'true', '[1]'])
def test_a_bad_validation_loss_is_refused_naming_line_and_field(tmp_path, value):
    path = tmp_path / 'metrics.jsonl'
    path.write_text('{"epoch": 0, "val_loss": 1.0}\n{"epoch": 1, "val_loss": %s}\n' % value)
    with pytest.raises(UsageError, match=r'metrics.jsonl: line 2: val_loss must be null or a '
                                         r'number in \[0, inf\]'):
        read_metrics(str(path))
    path.write_text('{"epoch": 0, "val_loss": null, "val_top5": null}\n')   # not measured
    assert read_metrics(str(path)) == [{'epoch': 0, 'val_loss': None, 'val_top5': None}]


@pytest.mark.parametrize('classes, top5', [(3, False), (5, False), (6, True), (None, True)])
def test_top5_only_for_more_than_5_classes(tmp_path, classes, top5):
    run_dir = str(tmp_path / 'run')
    write_metrics(run_dir)
    if classes is not None:
        write_run_json(run_dir, classes)
    assert run_classes(run_dir) == classes
    assert run_classes(os.path.join(run_dir, 'metrics.jsonl')) == classes
    accuracy = draw_run(read_run(run_dir), 'run', run_classes(run_dir)).axes[1]
    assert ('val top-5' in lines_of(accuracy)) == top5
    assert 'val top-1' in lines_of(accuracy)


def test_best_epoch_is_marked_and_no_legend_covers_a_curve(tmp_path):
    epochs = read_run(REFERENCE_LOG)
    figure = draw_run(epochs, 'reference', 1000)
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    accuracy = figure.axes[1]
    star = lines_of(accuracy)['best top-1 75.42% (epoch 358)']
    assert star == ([358], [pytest.approx(75.4232)])
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is None:
            continue
        box, frame = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
        assert box.y1 < frame.y0, axes.get_title()     # wholly below the panel's curves
        for other in figure.axes:                       # and outside every other panel
            assert not box.overlaps(other.get_window_extent(renderer))
    assert accuracy.get_legend() is not None and figure.axes[0].get_legend() is None


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


def test_log_of_gluoncvs_script_reads_errors_as_accuracies(tmp_path):
    log = tmp_path / 'train_imagenet.log'
    log.write_text('\n'.join([
        'Epoch[0] Batch [49]\tSpeed: 1000.000000 samples/sec\taccuracy=0.010000\tlr=0.100000',
        '[Epoch 0] training: accuracy=0.020000',
        '[Epoch 0] speed: 1000 samples/sec\ttime cost: 1281.000000',
        '[Epoch 0] validation: err-top1=0.750000 err-top5=0.500000',
        '[Epoch 1] training: err-top1=0.600000',                 # GluonCV's older script
        '[Epoch 1] validation: err-top1=0.625000 err-top5=0.250000',
    ]) + '\n')
    epochs = read_run(str(log))
    assert epochs[0] == {'lr': 0.1, 'train_acc': 0.02, 'samples_per_sec': 1000, 'time': 1281,
                         'val_top1': 0.25, 'val_top5': 0.5}
    assert epochs[1] == {'train_acc': 0.4, 'val_top1': 0.375, 'val_top5': 0.75}


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
