"""Symbolic traces give the inference graph unless the trainable one is asked for.

GluonCV's ``export_block``, ``net(mx.sym.var('data'))`` and ``net.export`` (also
after a training step) give plain 4-D ``Concat`` s, which MXNet's ONNX exporter
takes; ``trainable_graph()`` gives the 5-D concat views that oneDNN can
back-propagate, as GluonCV's ``FeatureExpander`` (SSD) backbones need.
"""
import json

import mxnet as mx
import numpy as np
import onnxruntime as ort
from mxnet import autograd, gluon

from gluon_asymmnet import get_model
from gluon_asymmnet.models.layers import inference_graph, trainable_graph
from helpers import randomized

MODEL, SIZE = 'asymmnet_small_0.35', 64
#: What GluonCV's ``export_block(preprocess=True)`` folds in (0-255 RGB, NHWC).
GLUONCV_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
GLUONCV_STD = np.array([58.395, 57.12, 57.375], np.float32)


def _concat_views(symbol):
    """The ``expand_dims`` and ``Reshape(0, 0, -3, -2)`` nodes of 5-D channel concats."""
    return [node for node in json.loads(symbol.tojson())['nodes']
            if node['op'] == 'expand_dims'
            or node['op'] == 'Reshape' and node['attrs'].get('shape') == '(0, 0, -3, -2)']


def _images(batch=2, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, (batch, SIZE, SIZE, 3)).astype(np.float32)


def _normalized(images):
    return mx.nd.array(((images - GLUONCV_MEAN) / GLUONCV_STD).transpose(0, 3, 1, 2))


def _train_step(net, trainer, images):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(_normalized(images)),
                                                    mx.nd.arange(len(images)))
    loss.backward()
    trainer.step(len(images))


def _gluoncv_onnx_logits(net, prefix, images):
    """``gluoncv.utils.export_block``, then ``mx.onnx.export_model``, run in ONNX Runtime."""
    from gluoncv.utils import export_block
    export_block(prefix, net, data_shape=(SIZE, SIZE, 3), preprocess=True, layout='HWC')
    path = mx.onnx.export_model(prefix + '-symbol.json', prefix + '-0000.params',
                                in_shapes=[images.shape], in_types=[np.float32],
                                onnx_file_path=prefix + '.onnx')
    options = ort.SessionOptions()
    options.log_severity_level = 3   # parameters listed as inputs: a warning each
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_symbolic_trace_is_the_inference_graph_unless_the_trainable_one_is_asked_for():
    net = randomized(MODEL, classes=10)
    data = mx.sym.var('data')
    plain = net(data)
    assert not _concat_views(plain) and '"Concat"' in plain.tojson()
    with trainable_graph():
        assert _concat_views(net(data))
        with inference_graph():
            assert not _concat_views(net(data))
    with autograd.record():
        assert _concat_views(net(data))


def test_gluoncv_export_block_gives_onnx_that_matches_mxnet_before_and_after_training(
        tmp_path):
    net = randomized(MODEL, classes=10, input_size=SIZE)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    images = _images()
    before = None
    for step in range(2):   # the same network object, then after a training step
        expected = net(_normalized(images)).asnumpy()
        assert np.abs(expected).max() > 0.1
        got = _gluoncv_onnx_logits(net, str(tmp_path / ('step%d' % step)), images)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
        if before is not None:
            assert not np.allclose(expected, before, atol=1e-3)   # the step changed weights
        before = expected
        _train_step(net, trainer, images)


def test_net_export_saves_the_inference_graph_whatever_ran_last(tmp_path):
    net = randomized(MODEL, classes=10, input_size=SIZE)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    images = _images()
    # first after training calls only (the inference graph is built by export), then
    # after inference and training calls (it is the one kept aside)
    for prefix in ('trained', 'inferred_then_trained'):
        _train_step(net, trainer, images)
        net.export(str(tmp_path / prefix))
        symbol = mx.sym.load(str(tmp_path / (prefix + '-symbol.json')))
        assert not _concat_views(symbol)
        block = gluon.SymbolBlock.imports(str(tmp_path / (prefix + '-symbol.json')), ['data'],
                                          str(tmp_path / (prefix + '-0000.params')))
        expected = net(_normalized(images)).asnumpy()
        got = block(_normalized(images)).asnumpy()
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_feature_expander_built_in_trainable_graph_trains():
    """GluonCV's SSD backbones: the network becomes a SymbolBlock at construction."""
    from gluoncv.nn.feature import FeatureExpander
    net = get_model(MODEL, classes=10)
    stage = [name[len(net.prefix):-len('_output')] for name in net(mx.sym.var('data'))
             .get_internals().list_outputs() if name.endswith('__plus0_output')][-1]
    with trainable_graph():
        expander = FeatureExpander(net, outputs=[stage], num_filters=[32], min_depth=16)
    assert _concat_views(expander._cached_graph[1])
    expander.initialize()
    # built outside trainable_graph(), this backward fails in oneDNN (could not
    # construct a sub-memory) on AVX-512
    expander.hybridize(static_alloc=True, static_shape=True)
    with autograd.record():
        loss = sum(feature_map.sum() for feature_map in expander(_normalized(_images(8))))
    loss.backward()
    grad = net.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_hybridized_features_only_backbone_keeps_a_graph_per_mode():
    backbone = get_model(MODEL, features_only=True)
    backbone.initialize()
    backbone.hybridize()
    x = _normalized(_images())
    backbone(x)
    assert not _concat_views(backbone._cached_graph[1])
    with autograd.record():
        loss = sum(feature_map.sum() for feature_map in backbone(x))
    assert _concat_views(backbone._cached_graph[1])
    loss.backward()
    grad = backbone.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    backbone(x)
    assert not _concat_views(backbone._cached_graph[1])
