"""Generic checks applied to every registered model (timm's test_models style)."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluon_asymmnet
from gluon_asymmnet import get_model, list_models

MODELS = list_models()
CLASSES = 7
GLUONCV_NORM_LAYER_DEFECT = ('mobilenetv3_large', 'mobilenetv3_small')


def _net(name, **kwargs):
    net = get_model(name, classes=CLASSES, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    return net


def _batch(n, size, seed=0):
    return mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, (n, 3, size, size)))


def test_zoo_lists_every_width_of_every_family():
    for family in ('asymmnet_large', 'asymmnet_small', 'mobilenetv3_large', 'mobilenetv3_small',
                   'mobilenetv2_asymm', 'mobilenetv2'):
        assert ['%s_%s' % (family, w) for w in ('0.35', '0.5', '0.75', '1.0')] == \
            list_models(family + '_[0-9]*')
    assert {'mobilenetv3_large', 'mobilenetv3_small'} <= set(MODELS)


@pytest.mark.parametrize('name', MODELS)
def test_forward_shapes_at_224_and_32(name):
    net = _net(name)
    assert net(_batch(1, 224)).shape == (1, CLASSES)
    assert net(_batch(3, 32)).shape == (3, CLASSES)


@pytest.mark.parametrize('name', MODELS)
def test_backward_reaches_every_trainable_parameter_and_sgd_lowers_loss(name):
    net = _net(name)
    x, y = _batch(16, 32, seed=1), mx.nd.array(np.arange(16) % CLASSES)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9})
    losses = []
    for step in range(10):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        if step == 0:
            for param in net.collect_params().values():
                if param.grad_req != 'null':
                    assert np.abs(param.grad().asnumpy()).sum() > 0, param.name
        trainer.step(x.shape[0])
        losses.append(loss.mean().asscalar())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < losses[0]


@pytest.mark.parametrize('name', MODELS)
def test_hybridized_and_exported_outputs_equal_imperative(name, tmp_path):
    net = _net(name)
    x = _batch(2, 64)
    expected = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-4, atol=1e-5)
    prefix = str(tmp_path / 'model')
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_batchnorm_parameters_load_into_syncbatchnorm(name, tmp_path):
    net = _net(name)
    x = _batch(2, 32)
    with autograd.train_mode():  # move the running statistics away from their init
        for _ in range(2):
            net(x)
    path = str(tmp_path / 'bn.params')
    net.save_parameters(path)
    sync = get_model(name, classes=CLASSES, norm_layer=gluon.contrib.nn.SyncBatchNorm,
                     norm_kwargs={'num_devices': 1})
    norms = [isinstance(b, gluon.contrib.nn.SyncBatchNorm)
             for b in _blocks(sync) if isinstance(b, gluon.nn.BatchNorm)]
    if name in GLUONCV_NORM_LAYER_DEFECT:
        # GluonCV's _MobileNetV3 does not pass norm_layer to its bottlenecks.
        assert any(norms) and not all(norms)
    else:
        assert norms and all(norms)
    sync.load_parameters(path)
    np.testing.assert_allclose(sync(x).asnumpy(), net(x).asnumpy(), rtol=1e-4, atol=1e-5)


def _blocks(block):
    yield block
    for child in block._children.values():
        yield from _blocks(child)


def test_package_level_zoo_builds_what_it_lists():
    name = gluon_asymmnet.list_models('asymmnet_small_*')[0]
    net = gluon_asymmnet.get_model(name, classes=CLASSES)
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, CLASSES)
    assert gluon_asymmnet.get_model_config(name).input_size == 224
