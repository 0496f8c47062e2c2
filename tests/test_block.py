"""The asymmetrical bottleneck as a drop-in block."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_asymmnet import AsymmBottleneck, get_model
from gluon_asymmnet.models.asymmnet import effective_asymmrate
from gluon_asymmnet.models.layers import ChannelShuffle
from gluon_asymmnet.mxnet_private import structured_params


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)


@pytest.mark.parametrize('r', [0, 1, 2, 3])
@pytest.mark.parametrize('family', ['asymmnet_large', 'asymmnet_small', 'mobilenetv2_asymm'])
def test_every_width_and_asymmrate_builds_and_runs(family, r):
    for width in ('1.0', '0.75', '0.5', '0.35'):
        net = get_model('%s_%s' % (family, width), classes=5, asymmrate=r)
        net.initialize()
        assert net(mx.nd.ones((1, 3, 32, 32))).shape == (1, 5)
        for block in _blocks(net):
            if isinstance(block, AsymmBottleneck):
                assert block.asymmrate <= r
                if block.do_expand:
                    assert block.expand.conv._channels >= 1
                    assert block.dw_channels == block.num_mid + block.asymmrate * block.num_in


def test_effective_asymmrate_keeps_one_expanded_channel():
    assert effective_asymmrate(24, 72, 1) == 1
    assert effective_asymmrate(24, 72, 3) == 2      # 72 - 3*24 = 0 channels: lowered to 2
    assert effective_asymmrate(16, 16, 2) == 0      # no expansion, nothing reused
    assert effective_asymmrate(8, 9, 5) == 1


def test_block_concat_layout_and_widths():
    block = AsymmBottleneck(8, 32, 8, kernel_size=3, asymmrate=2)
    block.initialize()
    assert block.expand.conv._channels == 32 - 2 * 8
    assert block.dw_conv.conv._channels == 32 + 2 * 8
    assert block.use_short_cut_conv
    strided = AsymmBottleneck(8, 32, 8, kernel_size=5, asymmrate=1, strides=2)
    strided.initialize()
    assert not strided.use_short_cut_conv
    assert strided(mx.nd.ones((2, 8, 16, 16))).shape == (2, 8, 8, 8)


def test_reused_copies_are_the_block_input():
    """The concat formulation's depthwise input holds [x]*r + [e] + [x]*r."""
    block = AsymmBottleneck(4, 16, 4, kernel_size=3, asymmrate=2, act_type='relu',
                            formulation='concat')
    block.initialize()
    x = mx.nd.array(np.random.RandomState(0).uniform(0.1, 1, (1, 4, 6, 6)))
    captured = {}
    block.dw_conv.register_forward_pre_hook(lambda blk, inputs: captured.update(x=inputs[0]))
    block(x)
    seen = captured['x'].asnumpy()
    assert seen.shape == (1, 16 + 2 * 4, 6, 6)
    for start in (0, 4, 16, 20):
        np.testing.assert_array_equal(seen[:, start:start + 4], x.asnumpy())
    np.testing.assert_allclose(seen[:, 8:16], block.expand(x).asnumpy(), rtol=1e-6)


@pytest.mark.parametrize('act', ['relu', 'relu6', 'hard_swish', 'swish', 'leaky'])
def test_activation_choices(act):
    block = AsymmBottleneck(16, 48, 24, 3, act_type=act, use_se=True)
    block.initialize()
    assert block(mx.nd.ones((1, 16, 8, 8))).shape == (1, 24, 8, 8)
    with pytest.raises(ValueError, match='unknown activation'):
        AsymmBottleneck(16, 48, 24, 3, act_type='gelu?')


def test_invalid_arguments_fail_early():
    for kernel_size in (1, 4):
        with pytest.raises(ValueError, match='kernel_size must be 3, 5 or 7'):
            AsymmBottleneck(16, 48, 24, kernel_size)
    with pytest.raises(ValueError, match='asymmrate'):
        AsymmBottleneck(16, 48, 24, 3, asymmrate=-1)
    with pytest.raises(ValueError, match='shuffle_group'):
        AsymmBottleneck(16, 48, 24, 3, asymmrate=1, shuffle_group=7)


def test_channel_shuffle_matches_numpy_and_changes_the_block():
    x = np.arange(2 * 6 * 2 * 2, dtype='float32').reshape(2, 6, 2, 2)
    out = ChannelShuffle(2, 6)(mx.nd.array(x)).asnumpy()
    np.testing.assert_array_equal(out, x.reshape(2, 2, 3, 2, 2).swapaxes(1, 2).reshape(x.shape))
    plain = AsymmBottleneck(8, 32, 8, 3, asymmrate=1)
    shuffled = AsymmBottleneck(8, 32, 8, 3, asymmrate=1, shuffle_group=2)
    plain.initialize()
    shuffled.initialize()
    inp = mx.nd.array(np.random.RandomState(0).uniform(size=(1, 8, 6, 6)))
    plain(inp)
    shuffled(inp)
    theirs = structured_params(shuffled)
    for key, param in structured_params(plain).items():
        theirs[key].set_data(param.data())
    assert not np.allclose(plain(inp).asnumpy(), shuffled(inp).asnumpy())


def test_a_hybridized_shuffled_network_trains():
    """``--doshuffle`` trains in the default hybrid mode (a transpose in the channel shuffle
    made oneDNN's backward pass fail on MXNet 1.9.1)."""
    net = get_model('asymmnet_small_0.35', classes=10, shuffle_group=2)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    with autograd.record():
        out = net(mx.nd.random.uniform(shape=(2, 3, 32, 32)))
    out.backward()
    grads = [p.grad() for p in net.collect_params().values() if p.grad_req != 'null']
    assert all(np.isfinite(g.asnumpy()).all() for g in grads)


def test_norm_kwargs_and_norm_layer_reach_every_normalisation():
    net = get_model('asymmnet_small_0.5', norm_kwargs={'use_global_stats': True})
    norms = [b for b in _blocks(net) if isinstance(b, gluon.nn.BatchNorm)]
    assert len(norms) > 30 and all(b._kwargs['use_global_stats'] for b in norms)
    net = get_model('asymmnet_small_0.5', use_global_stats=True)
    assert all(b._kwargs['use_global_stats'] for b in _blocks(net)
               if isinstance(b, gluon.nn.BatchNorm))


def test_last_gamma_zeroes_the_last_gamma_of_residual_blocks_only():
    net = get_model('asymmnet_large_0.5', last_gamma=True)
    net.initialize(mx.init.Xavier())   # a global initializer does not override it
    residual = 0
    for block in _blocks(net):
        if isinstance(block, AsymmBottleneck):
            gamma = block.pw_conv_linear.bn.gamma.data().asnumpy()
            if block.use_short_cut_conv:
                residual += 1
                assert not gamma.any()
            else:
                assert (gamma == 1).all()
    assert residual == 10


@pytest.mark.parametrize('hybridize', [False, True])
def test_trains_with_onednn_on_channel_counts_not_multiple_of_16(hybridize):
    """The original 4-D concat crashes here (oneDNN backward, AVX-512)."""
    net = get_model('asymmnet_small_0.5', classes=10, asymmrate=1)
    net.initialize(mx.init.MSRAPrelu())
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01})
    x = mx.nd.random.normal(shape=(8, 3, 64, 64))
    y = mx.nd.array(np.arange(8) % 10)
    for _ in range(2):
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
        loss.backward()
        trainer.step(8)
    assert np.isfinite(loss.asnumpy()).all()
    widths = {b.num_in for b in _blocks(net) if isinstance(b, AsymmBottleneck) and b.asymmrate}
    assert any(w % 16 for w in widths)


@pytest.mark.slow
def test_gradients_match_a_reference_without_onednn(tmp_path):
    """Same mathematics as the plain 4-D concat: compare input gradients with a
    subprocess that runs with MXNET_MKLDNN_ENABLED=0."""
    import os
    import subprocess
    import sys
    script = (
        'import sys, numpy as np, mxnet as mx\n'
        'from mxnet import autograd\n'
        'from gluon_asymmnet import AsymmBottleneck\n'
        'b = AsymmBottleneck(20, 72, 20, 3, asymmrate=1, use_se=True)\n'
        'b.initialize(mx.init.Xavier())\n'
        'b.load_parameters(sys.argv[1])\n'
        'x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (4, 20, 10, 10)))\n'
        'x.attach_grad()\n'
        'with autograd.record():\n'
        '    y = (b(x) ** 2).sum()\n'
        'y.backward()\n'
        'np.save(sys.argv[2], np.concatenate([x.grad.asnumpy().ravel(),'
        ' b.expand.conv.weight.grad().asnumpy().ravel()]))\n')
    block = AsymmBottleneck(20, 72, 20, 3, asymmrate=1, use_se=True)
    block.initialize(mx.init.Xavier())
    block(mx.nd.ones((1, 20, 10, 10)))
    params = str(tmp_path / 'b.params')
    block.save_parameters(params)
    results = {}
    for flag in ('1', '0'):
        out = str(tmp_path / ('g%s.npy' % flag))
        env = dict(os.environ, MXNET_MKLDNN_ENABLED=flag)
        subprocess.run([sys.executable, '-c', script, params, out], env=env, check=True)
        results[flag] = np.load(out)
    np.testing.assert_allclose(results['1'], results['0'], rtol=1e-4, atol=1e-4)
