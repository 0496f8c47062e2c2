"""Training helpers without training: flags, model names, lr schedule, checkpoint files."""
import json
import os

import mxnet as mx
import pytest

from gluon_asymmnet import get_model
from gluon_asymmnet.models.asymmnet import AsymmBottleneck
from gluon_asymmnet.errors import UsageError
from gluon_asymmnet.fileio import atomic_save
from gluon_asymmnet.model_zoo import zoo_name
from gluon_asymmnet.params import check_params_fit, param_shapes
from gluon_asymmnet.train.args import global_lr, net_spec, parse_args, train_recipe
from gluon_asymmnet.train.checkpoint import RunLock, latest_checkpoint, prune_checkpoints
from gluon_asymmnet.train.loop import soft_targets
from gluon_asymmnet.train.main import lr_schedule, server_lr_schedule
from gluon_asymmnet.train.precision import choose_precision



@pytest.mark.parametrize('argv, expected', [
    (['--model', 'asymmnet_small', '--width-scale', '0.5'], 'asymmnet_small_0.5'),
    (['--model', 'asymmnet_small_0.5'], 'asymmnet_small_0.5'),
    (['--model', 'asymmnet_small_0.5', '--width-scale', '0.5'], 'asymmnet_small_0.5'),
    (['--model', 'asymmnet_large', '--width-scale', '1'], 'asymmnet_large_1.0'),
    (['--model', 'mobilenetv3_small', '--width-scale', '0.75'], 'mobilenetv3_small_0.75'),
])
def test_model_name_from_family_and_width(argv, expected):
    args = parse_args(argv)
    assert zoo_name(args.model, args.width_scale) == expected


@pytest.mark.parametrize('argv, message', [
    (['--model', 'asymmnet_small_0.5', '--width-scale', '0.75'], 'has width 0.5'),
    (['--model', 'asymmnet_small', '--width-scale', '0.6'], 'has no width 0.6'),
])
def test_model_name_rejects_bad_widths(argv, message):
    args = parse_args(argv)
    with pytest.raises(ValueError, match=message):
        zoo_name(args.model, args.width_scale)


def test_model_flags_reach_the_model():
    args = parse_args(['--model', 'asymmnet_small_0.35', '--dropout', '0.3', '--asymmrate', '0',
                       '--doshuffle', '--last-gamma'])
    kwargs = net_spec(args, 'asymmnet_small_0.35', 7).get_model_kwargs()
    assert kwargs == {'classes': 7, 'dropout': 0.3, 'asymmrate': 0, 'shuffle_group': 2,
                      'last_gamma': True}
    net = get_model('asymmnet_small_0.35', **kwargs)
    assert net.output[0]._channels == 7
    blocks = [b for b in net.features if isinstance(b, AsymmBottleneck)]
    assert all(b.asymmrate == 0 for b in blocks)


def test_last_gamma_zeroes_the_last_bn_of_every_residual_block():
    def last_gammas(last_gamma):
        net = get_model('asymmnet_small_0.35', classes=10, last_gamma=last_gamma)
        net.initialize(mx.init.MSRAPrelu())   # as train_imagenet.py does
        net(mx.nd.zeros((1, 3, 32, 32)))
        return [b.pw_conv_linear.bn.gamma.data().asnumpy() for b in net.features
                if isinstance(b, AsymmBottleneck) and b.use_short_cut_conv]
    zeroed, default = last_gammas(True), last_gammas(False)
    assert len(zeroed) >= 5
    assert all((g == 0).all() for g in zeroed)
    assert all((g == 1).all() for g in default)


def test_dataset_dependent_augmentation_defaults():
    imagenet = parse_args(['--model', 'm'])
    assert (imagenet.input_size, imagenet.min_random_area, imagenet.mirror) == (224, 0.08, True)
    digits = parse_args(['--model', 'm', '--dataset', 'digits'])
    assert (digits.input_size, digits.min_random_area, digits.mirror) == (32, 1.0, False)
    assert parse_args(['--model', 'm', '--dataset', 'digits', '--mirror']).mirror is True
    assert parse_args(['--model', 'm', '--no-mirror']).mirror is False


def test_lr_scales_with_the_global_batch():
    args = parse_args(['--model', 'm', '--lr-base', '0.325'])
    assert global_lr(args, 8 * 256) == pytest.approx(2.6)     # the original recipe
    assert global_lr(parse_args(['--model', 'm', '--lr', '0.5']), 4096) == 0.5


def test_lr_schedule_warms_up_from_warmup_lr_then_follows_the_mode():
    args = parse_args(['--model', 'm', '--lr-mode', 'cosine', '--num-epochs', '5',
                       '--warmup-epochs', '1', '--warmup-lr', '0.01'])
    schedule = lr_schedule(train_recipe(args, 'digits'), 0.4, num_batches=10)
    assert schedule(0) == pytest.approx(0.01)
    assert schedule(5) == pytest.approx(0.01 + (0.4 - 0.01) * 5 / 9)
    assert schedule(10) == pytest.approx(0.4)
    assert schedule(49) == pytest.approx(0.0)
    step = lr_schedule(parse_args(['--model', 'm', '--num-epochs', '4', '--lr-decay-epoch', '2']),
                       0.1, num_batches=10)
    assert step(19) == pytest.approx(0.1) and step(20) == pytest.approx(0.01)


@pytest.mark.parametrize('flags', [['--lr-mode', 'cosine'], ['--lr-mode', 'poly'],
                                   ['--lr-decay-epoch', '2,3'], ['--lr-decay-period', '2']])
def test_server_schedule_for_dist_async_matches_gluoncv(flags):
    args = parse_args(['--model', 'm', '--num-epochs', '5', '--warmup-epochs', '1',
                       '--warmup-lr', '0.01'] + flags)
    gluoncv, server = lr_schedule(args, 0.4, 10), server_lr_schedule(args, 0.4, 10)
    for update in (0, 5, 15, 25, 35, 45):
        assert server(update) == pytest.approx(gluoncv(update), abs=0.025), update   # +-1 update


def test_soft_targets_smooth_and_mix():
    label = mx.nd.array([0, 2])
    smooth = soft_targets(label, 4, eta=0.1).asnumpy()
    assert smooth[0].tolist() == pytest.approx([0.925, 0.025, 0.025, 0.025])
    mixed = soft_targets(label, 4, lam=0.75).asnumpy()
    assert mixed[0].tolist() == pytest.approx([0.75, 0, 0.25, 0])


def test_float16_on_cpu_is_refused_and_amp_picks_bfloat16():
    with pytest.raises(UsageError, match='needs GPUs'):
        choose_precision('float16', False, on_gpu=False)
    assert choose_precision('float32', True, on_gpu=False).amp == 'bfloat16'
    assert choose_precision('float32', True, on_gpu=True).amp == 'float16'
    assert choose_precision('float16', False, on_gpu=True) == ('float16', None)


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / 'x.json'
    target.write_text('old')

    def fail(path):
        with open(path, 'w') as out:
            out.write('half')
        raise OSError('disk full')
    with pytest.raises(OSError):
        atomic_save(str(target), fail)
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['x.json']


def test_run_lock_refuses_a_second_holder(tmp_path):
    lock = RunLock(str(tmp_path)).acquire()
    with pytest.raises(UsageError, match='in use by another training'):
        RunLock(str(tmp_path)).acquire()
    lock.release()
    RunLock(str(tmp_path)).acquire().release()


def _fake_checkpoint(folder, stem, next_epoch, next_batch, complete=True):
    (folder / (stem + '.params')).write_bytes(b'p')
    if complete:
        (folder / (stem + '.json')).write_text(json.dumps(
            {'next_epoch': next_epoch, 'next_batch': next_batch, 'params': stem + '.params',
             'states': None, 'model': 'm'}))


def test_latest_checkpoint_skips_incomplete_ones_and_prune_keeps_periodic(tmp_path):
    _fake_checkpoint(tmp_path, 'm-epoch0001', 2, 0)
    _fake_checkpoint(tmp_path, 'm-epoch0002', 3, 0)
    _fake_checkpoint(tmp_path, 'm-epoch0003-batch4', 3, 4)
    _fake_checkpoint(tmp_path, 'm-epoch0003', 4, 0, complete=False)   # died before its .json
    _fake_checkpoint(tmp_path, 'm-best', 2, 0)
    assert latest_checkpoint(str(tmp_path))[0].params.endswith('m-epoch0003-batch4.params')
    prune_checkpoints(str(tmp_path), frequency=2)
    left = sorted(p for p in os.listdir(tmp_path) if p.endswith('.json'))
    assert left == ['m-best.json', 'm-epoch0001.json', 'm-epoch0003-batch4.json']


def test_param_shapes_refuses_impossible_inputs():
    with pytest.raises(UsageError, match='an input of -3x-3 pixels does not fit'):
        param_shapes(get_model('asymmnet_small_0.35', classes=5), -3)


def test_check_params_fit_names_the_first_mismatch(tmp_path):
    small = get_model('asymmnet_small_0.35', classes=5)
    small.initialize()
    small(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / 'small.params')
    small.save_parameters(path)
    shapes = param_shapes(get_model('asymmnet_small_0.35', classes=5), 32)
    check_params_fit(path, shapes, 'it')
    with pytest.raises(UsageError, match=r'parameter output\.0\.weight has shape \(5,'):
        check_params_fit(path, param_shapes(get_model('asymmnet_small_0.35', classes=10), 32),
                         'it')
    with pytest.raises(UsageError, match=r'does not fit x: parameter features\.'):
        check_params_fit(path, param_shapes(get_model('asymmnet_large_0.5', classes=5), 32), 'x')
