"""train_imagenet.py end to end on the digits RecordIO files (32x32, a few batches)."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest

from gluon_asymmnet import get_model
from gluon_asymmnet.data import prepare_digits
from gluon_asymmnet.train import main
from gluon_asymmnet.train.checkpoint import RunLock, latest_checkpoint
from gluon_asymmnet.train.errors import EXIT_DIVERGED
from helpers import store_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = 'asymmnet_small_0.35'


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('data')), size=32)


def argv(digits, save_dir, *extra, val=False, samples=32):
    args = ['--rec-train', digits.train_rec, '--rec-train-idx', digits.train_idx,
            '--model', MODEL, '--input-size', '32', '--batch-size', '16', '--num-epochs', '1',
            '--num-training-samples', str(samples), '-j', '1', '--save-dir', str(save_dir),
            '--log-interval', '1', '--lr', '0.05']
    if val:
        args += ['--rec-val', digits.val_rec, '--rec-val-idx', digits.val_idx]
    return args + list(extra)


def run_dir(save_dir, model=MODEL, tag='baseline'):
    return os.path.join(str(save_dir), '%s-%s' % (model, tag))


def metrics(folder):
    with open(os.path.join(folder, 'metrics.jsonl')) as lines:
        return [json.loads(line) for line in lines]


def python(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable] + list(args), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.parametrize('flags', [
    [], ['--label-smoothing'], ['--mixup'],
    ['--mixup', '--label-smoothing', '--mixup-off-epoch', '1'],
    ['--no-wd', '--last-gamma', '--dropout', '0.5'], ['--mode', 'imperative'],
    ['--optimizer', 'sgd', '--lr-mode', 'poly', '--warmup-epochs', '0'],
    ['--lr-decay-period', '1', '--asymmrate', '0', '--shuffle-group', '2'],
    ['--model', 'asymmnet_small', '--width-scale', '0.35'],
    ['--min-random-area', '0.5', '--no-mirror'],
])
def test_every_flag_trains_a_step(digits, tmp_path, flags):
    assert main(argv(digits, tmp_path, *flags)) == 0
    folder = run_dir(tmp_path)
    (record,) = metrics(folder)
    assert record['epoch'] == 0 and np.isfinite(record['train_loss'])
    assert os.path.exists(os.path.join(folder, MODEL + '-symbol.json'))


@pytest.mark.slow
def test_tensorboard_scalars(digits, tmp_path):
    # a fresh process: mxboard needs protobuf's pure-Python runtime, chosen at its first import
    proc = python('train_imagenet.py', *argv(digits, tmp_path, '--tensorboard'))
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    assert 'ImageRecordIOParser2' not in out      # MXNet's C++ line per record iterator
    (events,) = os.listdir(os.path.join(run_dir(tmp_path), 'tensorboard'))
    assert events.startswith('events.out.tfevents')


def test_image_folder_training(digits, tmp_path):
    args = argv(digits, tmp_path, '--data-dir', os.path.dirname(digits.train_dir), samples=32)
    cut = args.index('--rec-train')
    assert main(args[:cut] + args[cut + 4:]) == 0     # no --rec-train: the class folders
    (record,) = metrics(run_dir(tmp_path))
    assert np.isfinite(record['train_loss']) and 0 <= record['val_top1'] <= 1


def test_distillation_from_a_zoo_teacher(digits, tmp_path):
    store_weights('asymmnet_small_0.5', classes=10)
    assert main(argv(digits, tmp_path, '--teacher', 'asymmnet_small_0.5', '--temperature', '4',
                     '--label-smoothing')) == 0
    assert np.isfinite(metrics(run_dir(tmp_path))[0]['train_loss'])


def test_outputs_validation_log_lines_and_export(digits, tmp_path):
    assert main(argv(digits, tmp_path, val=True, samples=64)) == 0
    folder = run_dir(tmp_path)
    log = open(os.path.join(folder, 'log.txt')).read()
    assert log.startswith('Namespace(')
    for pattern in ('Epoch[0] Batch [0]\tSpeed: ', '[Epoch 0] training: accuracy=',
                    '[Epoch 0] speed: ', '\ttime cost: ', '[Epoch 0] validation: top1='):
        assert pattern in log
    # the whole run's ETA on every batch line and at the end of every epoch
    assert re.search(r'^Epoch\[0\] Batch \[1\]\t.*\tlr=[\d.]+\tETA \d+:\d\d:\d\d$', log, re.M)
    assert re.search(r'^\[Epoch 0\] speed: .*\tETA 0:00:00$', log, re.M)   # the last epoch
    (record,) = metrics(folder)
    assert set(record) == {'epoch', 'train_loss', 'train_acc', 'val_top1', 'val_top5',
                           'val_loss', 'lr', 'samples_per_sec', 'time'}
    assert 0 <= record['val_top1'] <= record['val_top5'] <= 1
    assert '[Epoch 0] validation: top1=%f top5=%f loss=%f' % (
        record['val_top1'], record['val_top5'], record['val_loss']) in log
    assert 0 < record['val_loss'] < 10
    record = json.load(open(os.path.join(folder, 'run.json')))
    assert record['net']['name'] == MODEL and record['input']['input_size'] == 32
    assert record['input']['class_names'] is None      # RecordIO without a synset file
    exported = mx.gluon.SymbolBlock.imports(os.path.join(folder, MODEL + '-symbol.json'),
                                            ['data'], os.path.join(folder, MODEL + '-0000.params'))
    assert exported(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 10)


def _bad(capsys, args):
    status = main(args)
    err = capsys.readouterr().err.strip()
    return status, err


@pytest.mark.parametrize('change, message', [
    (['--model', 'asymmnet_smal_0.5'], "unknown model 'asymmnet_smal_0.5'; closest: "),
    (['--rec-train', '/nonexistent/train.rec'], 'does not exist'),
    (['--rec-train-idx', '/nonexistent/train.idx'], 'does not exist'),
    (['--num-gpus', '4096'], 'MXNet sees '),   # refused on a GPU machine too
    (['--kvstore', 'nccl'], '--kvstore nccl sums gradients between GPUs'),
    (['--amp', '--kvstore', 'dist_async'], '--amp cannot train with --kvstore dist_async'),
    (['--batch-size', '5000'], 'fewer than one batch'),
    (['--classes', '5'], 'the data have 10 classes, not the 5 asked for'),
    (['--dtype', 'float16'], 'needs GPUs'),
    (['--kvstore', 'dist_sync'], 'needs the DMLC_* variables'),
    (['--teacher', 'asymmnet_large_0.35'], 'no weights for asymmnet_large_0.35'),
])
def test_bad_input_one_line_exit_2(digits, tmp_path, capsys, change, message):
    status, err = _bad(capsys, argv(digits, tmp_path, *change))
    assert status == 2
    assert err.startswith('train_imagenet.py: error: ') and message in err
    assert len(err.splitlines()) == 1
    assert not os.path.exists(run_dir(tmp_path))   # stopped before any run was set up


def test_bad_flag_values_exit_2(digits, tmp_path, capsys):
    for change in (['--lr-mode', 'linear'], ['--warmup-epochs', '1'], ['--batch-size', '0'],
                   ['--lr', 'nan'], ['--momentum', '1'], ['--crop-ratio', '0'],
                   ['--input-size', '8'], ['--logging-file', '..'], ['--lr-decay-epoch', 'a']):
        with pytest.raises(SystemExit) as stop:
            main(argv(digits, tmp_path, *change))
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith('train_imagenet.py: error: ') and len(err.splitlines()) == 1


def test_teacher_with_other_classes_is_refused(digits, tmp_path, capsys):
    store_weights('asymmnet_small_0.5', classes=5)
    status, err = _bad(capsys, argv(digits, tmp_path, '--teacher', 'asymmnet_small_0.5'))
    assert status == 2 and len(err.splitlines()) == 1
    assert 'for the 10 classes of the data: parameter output.0.weight has shape (5,' in err


def test_resume_file_of_another_model_is_refused(digits, tmp_path, capsys):
    other = get_model('asymmnet_large_0.35', classes=10)
    other.initialize()
    other(mx.nd.zeros((1, 3, 32, 32)))
    other.save_parameters(str(tmp_path / 'other.params'))
    status, err = _bad(capsys, argv(digits, tmp_path, '--resume-params',
                                    str(tmp_path / 'other.params')))
    assert status == 2 and len(err.splitlines()) == 1
    assert 'other.params does not fit %s: parameter features.' % MODEL in err


def test_a_finished_or_busy_run_folder_is_refused(digits, tmp_path, capsys):
    assert main(argv(digits, tmp_path)) == 0
    capsys.readouterr()
    status, err = _bad(capsys, argv(digits, tmp_path))
    assert status == 2 and 'already holds a run' in err
    lock = RunLock(run_dir(tmp_path)).acquire()
    try:
        status, err = _bad(capsys, argv(digits, tmp_path, '--resume', 'auto'))
    finally:
        lock.release()
    assert status == 2 and 'in use by another training (pid %d)' % os.getpid() in err


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_auto_continues(digits, tmp_path):
    common = ['--num-epochs', '3', '--lr-mode', 'cosine', '--warmup-epochs', '1']
    reference = tmp_path / 'reference'
    assert main(argv(digits, reference, *common, samples=320)) == 0

    interrupted = tmp_path / 'interrupted'
    proc = python('train_imagenet.py', *argv(digits, interrupted, *common, samples=320))
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.startswith('Epoch[1] Batch [2]'):
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, ''.join(output)
    assert any('SIGTERM: stopped after Epoch[1] Batch' in line for line in output)
    folder = run_dir(interrupted)
    meta = latest_checkpoint(folder)[0].record
    assert meta.next_epoch == 1 and 0 < meta.next_batch < 20
    net = get_model(MODEL, classes=10)
    net.load_parameters(os.path.join(folder, meta.params))               # loadable
    assert len(metrics(folder)) == 1

    assert main(argv(digits, interrupted, *common, '--resume', 'auto', samples=320)) == 0
    resumed, expected = metrics(folder), metrics(run_dir(reference))
    assert [r['epoch'] for r in resumed] == [0, 1, 2]
    assert [r['lr'] for r in resumed] == pytest.approx([r['lr'] for r in expected])
    assert 'resuming %s at epoch 1 batch %d' % (folder, meta.next_batch) in \
        open(os.path.join(folder, 'log.txt')).read()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(digits, tmp_path, capsys):
    assert main(argv(digits, tmp_path, samples=64)) == 0
    folder = run_dir(tmp_path)
    good = latest_checkpoint(folder)
    status = main(argv(digits, tmp_path, '--num-epochs', '2', '--lr', '1e30', '--resume', 'auto',
                       '--allow-recipe-change', samples=64))
    assert status == EXIT_DIVERGED != 2   # not the status of bad usage
    assert 'train_imagenet.py: error: Epoch[1] Batch [' in capsys.readouterr().err
    log = open(os.path.join(folder, 'log.txt')).read()
    assert 'the loss is nan' in log or 'the loss is inf' in log
    assert 'stopping without saving these weights' in log
    assert latest_checkpoint(folder) == good and len(metrics(folder)) == 1


@pytest.mark.slow
def test_bfloat16_amp_trains_asymmnet_on_cpu(digits, tmp_path):
    script = textwrap.dedent('''
        import sys
        import mxnet as mx
        from mxnet import autograd, gluon
        from gluon_asymmnet import get_model
        from gluon_asymmnet.train import main, precision
        mode = precision.choose_precision('float32', True, on_gpu=False)
        precision.init_amp(mode)
        net = get_model('%s', classes=10)
        net.initialize(mx.init.MSRAPrelu())
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.05})
        precision.init_trainer(trainer, mode)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        mx.random.seed(0)
        x = mx.nd.random.normal(shape=(16, 3, 32, 32))
        y = mx.nd.arange(16) %% 10
        print('first layer', mx.nd.Convolution(x, mx.nd.ones((4, 3, 3, 3)), kernel=(3, 3),
                                                num_filter=4, no_bias=True).dtype)
        losses = []
        for _ in range(8):
            with autograd.record():
                loss = loss_fn(net(x).astype('float32'), y)
                precision.backward([loss], trainer, mode)
            trainer.step(16)
            losses.append(loss.mean().asscalar())
        print('losses', ' '.join('%%.4f' %% v for v in losses))
        sys.exit(main(sys.argv[1:]))
    ''' % MODEL)
    proc = python('-c', script, *argv(digits, tmp_path, '--amp'))
    out = proc.communicate(timeout=180)[0]
    assert proc.returncode == 0, out
    assert "first layer [('bfloat16'" in out    # AMP runs the convolutions in bfloat16
    losses = [float(v) for v in out.split('losses ')[1].splitlines()[0].split()]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
    assert 'AMP bfloat16' in out
    assert np.isfinite(metrics(run_dir(tmp_path))[0]['train_loss'])


@pytest.mark.slow
def test_dist_sync_two_workers_end_with_identical_parameters(digits, tmp_path):
    proc = python('-m', 'gluon_asymmnet.launch', '-n', '2', '-s', '1', '--',
                  'python', 'train_imagenet.py',
                  *argv(digits, tmp_path, '--kvstore', 'dist_sync', samples=128))
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    folder = run_dir(tmp_path)
    rank0 = mx.nd.load(os.path.join(folder, MODEL + '-epoch0000.params'))
    rank1 = mx.nd.load(os.path.join(folder, 'worker1-final.params'))
    assert sorted(rank0) == sorted(rank1)
    trained = [name for name in rank0 if 'running_' not in name]
    assert len(trained) > 50
    for name in trained:    # BatchNorm running statistics are each worker's own
        np.testing.assert_array_equal(rank0[name].asnumpy(), rank1[name].asnumpy(), err_msg=name)
    assert 'step size 32' in out   # the gradients are averaged over both workers' batches
    assert len(metrics(folder)) == 1


@pytest.mark.slow
def test_dist_async_trains_on_the_servers_and_checkpoints_the_parameters(digits, tmp_path):
    proc = python('-m', 'gluon_asymmnet.launch', '-n', '2', '-s', '1', '--',
                  'python', 'train_imagenet.py',
                  *argv(digits, tmp_path, '--kvstore', 'dist_async', '--lr-mode', 'cosine',
                        samples=64))
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    folder = run_dir(tmp_path)
    meta = latest_checkpoint(folder)[0].record
    assert meta.next_epoch == 1 and meta.states is None   # optimizer states: on servers
    assert np.isfinite(metrics(folder)[0]['train_loss'])
    assert os.path.exists(os.path.join(folder, MODEL + '-symbol.json'))


def test_resume_follows_this_commands_weight_decay_and_momentum(digits, tmp_path):
    from gluon_asymmnet.train.args import parse_args
    from gluon_asymmnet.train.main import build_job
    assert main(argv(digits, tmp_path, '--wd', '1e-4', '--momentum', '0.9')) == 0
    job, lock, _ = build_job(parse_args(argv(digits, tmp_path, '--num-epochs', '2', '--resume',
                                             'auto', '--allow-recipe-change', '--wd', '0.01',
                                             '--momentum', '0.5')))
    try:
        assert job.start == (1, 0)
        assert job.trainer._optimizer.wd == 0.01 and job.trainer._optimizer.momentum == 0.5
        assert job.trainer._optimizer.num_update > 0     # the saved position is kept
    finally:
        lock.release()
        job.run_dir.close()
