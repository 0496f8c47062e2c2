"""Every symbolic trace is one graph that trains and exports; a hybridized network
runs, at each call, the graph of that call's shape and mode.

``net(mx.sym.var('data'))``, GluonCV's ``export_block`` and ``FeatureExpander``
(hence ``SSD``; ``YOLOV3``: ``test_backbones.py``) get the universal graph: a
training step runs forward and backward with oneDNN, and it converts to ONNX
(ONNX Runtime, OpenCV DNN), with no context manager.  A hybridized network
called at batch 1, 32, 1, 32 runs at each batch the graph a fresh network
would, and ``net.export`` writes the inference graph of the latest batch.
"""
import json

import cv2
import mxnet as mx
import numpy as np
import onnxruntime as ort
from mxnet import autograd, gluon

from gluon_asymmnet import get_model
from gluon_asymmnet.deploy.info import make_info
from gluon_asymmnet.deploy.onnx import export_onnx
from gluon_asymmnet.model_zoo import ModelConfig
from gluon_asymmnet.models.graphs import GraphPlan, graph_key
from helpers import randomized

MODEL, SIZE = 'asymmnet_small_0.35', 64
#: What GluonCV's ``export_block(preprocess=True)`` folds in (0-255 RGB, NHWC).
GLUONCV_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
GLUONCV_STD = np.array([58.395, 57.12, 57.375], np.float32)


def _ops(symbol):
    return [node['op'] for node in json.loads(symbol.tojson())['nodes']]


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


def test_a_symbolic_trace_trains_with_onednn_and_converts_to_onnx(tmp_path):
    net = randomized(MODEL, classes=10, input_size=SIZE)
    symbol = net(mx.sym.var('data'))   # as a user, or any tool, traces a network
    ops = _ops(symbol)
    assert 'clip' in ops and 'expand_dims' not in ops and 'slice_axis' not in ops
    block = gluon.SymbolBlock(symbol, mx.sym.var('data'), params=net.collect_params())
    block.hybridize(static_alloc=True, static_shape=True)
    x = _normalized(_images(4))
    expected = net(x).asnumpy()   # imperative inference
    np.testing.assert_allclose(block(x).asnumpy(), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    params = {param.name: param.data() for param in net.collect_params().values()}
    path = mx.onnx.export_model(symbol, params, in_shapes=[x.shape], in_types=[np.float32],
                                onnx_file_path=str(tmp_path / 'traced.onnx'))
    options = ort.SessionOptions()
    options.log_severity_level = 3   # parameters listed as inputs: a warning each
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(block(x), mx.nd.arange(4))
    loss.backward()   # oneDNN's concat backward fails here without the clip
    for param in net.collect_params().values():
        if param.grad_req != 'null':
            grad = param.grad().asnumpy()
            assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, param.name


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


def test_export_block_graph_converts_and_runs_in_opencv_as_the_zoo_exports(tmp_path):
    """GluonCV's ``export_block`` (the universal graph) through the package's ONNX
    conversion: ONNX Runtime (checked inside) and OpenCV DNN give MXNet's logits."""
    from gluoncv.utils import export_block
    net = randomized(MODEL, classes=10, input_size=SIZE)
    prefix = str(tmp_path / 'block')
    export_block(prefix, net, data_shape=(SIZE, SIZE, 3), preprocess=True, layout='HWC')
    assert 'clip' in _ops(mx.sym.load(prefix + '-symbol.json'))
    info = make_info(None, 10, None, ModelConfig(input_size=SIZE), True, 'HWC')   # its mean/std
    onnx_path, _ = export_onnx(prefix, prefix, info)
    images = _images(2)
    expected = net(_normalized(images)).asnumpy()
    opencv = cv2.dnn.readNetFromONNX(onnx_path)
    opencv.setInput(images)
    got = opencv.forward()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_net_export_saves_the_inference_graph_of_the_latest_batch(tmp_path):
    net = randomized(MODEL, classes=10, input_size=SIZE)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    images = _images()
    # after training calls only, then after inference and training calls
    for prefix in ('trained', 'inferred_then_trained'):
        _train_step(net, trainer, images)
        net.export(str(tmp_path / prefix))
        symbol = mx.sym.load(str(tmp_path / (prefix + '-symbol.json')))
        assert 'clip' not in _ops(symbol)   # the inference graph
        block = gluon.SymbolBlock.imports(str(tmp_path / (prefix + '-symbol.json')), ['data'],
                                          str(tmp_path / (prefix + '-0000.params')))
        expected = net(_normalized(images)).asnumpy()
        got = block(_normalized(images)).asnumpy()
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_feature_expander_built_as_gluoncv_builds_it_trains():
    """GluonCV's SSD backbones: the network becomes a SymbolBlock at construction."""
    from gluoncv.nn.feature import FeatureExpander
    net = get_model(MODEL, classes=10)
    stage = [name[len(net.prefix):-len('_output')] for name in net(mx.sym.var('data'))
             .get_internals().list_outputs() if name.endswith('__plus0_output')][-1]
    expander = FeatureExpander(net, outputs=[stage], num_filters=[32], min_depth=16)
    expander.initialize()
    expander.hybridize(static_alloc=True, static_shape=True)
    with autograd.record():
        loss = sum(feature_map.sum() for feature_map in expander(_normalized(_images(8))))
    loss.backward()   # oneDNN: could not construct a sub-memory, with a plain 4-D concat
    grad = net.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_hybridized_features_only_backbone_runs_the_graph_of_each_mode():
    backbone = get_model(MODEL, features_only=True)
    backbone.initialize()
    backbone.hybridize()
    x = _normalized(_images())
    inferred = backbone(x)
    assert isinstance(inferred, tuple) and len(inferred) == 4
    assert 'clip' not in _ops(backbone.planned_symbol(backbone.latest_plan))
    with autograd.record():
        loss = sum(feature_map.sum() for feature_map in backbone(x))
    assert 'clip' in _ops(backbone.planned_symbol(backbone.latest_plan))
    loss.backward()
    grad = backbone.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    backbone(x)
    assert not backbone.latest_plan.training


def test_each_batch_runs_the_graph_a_fresh_network_runs_for_it():
    """Batch 1, 32, 1, 32 on one hybridized network: each call runs the graph that
    network would build if that batch came first (at 224x224 batch 32 splits the
    feature reuse on a CPU, batch 1 concatenates)."""
    net = randomized(MODEL, classes=10, input_size=224)
    batches = {n: mx.nd.array(np.random.RandomState(n).uniform(-1, 1, (n, 3, 224, 224)))
               for n in (1, 32)}
    fresh = {}
    for n, x in batches.items():
        net.hybridize(static_alloc=True, static_shape=True)   # forgets every graph
        out = net(x).asnumpy()
        fresh[n] = (graph_key(net.planned_symbol(net.latest_plan)), out)
    assert 'slice_axis' in fresh[32][0] and 'slice_axis' not in fresh[1][0]
    net.hybridize(static_alloc=True, static_shape=True)
    graphs = {}
    for n in (1, 32, 1, 32):
        out = net(batches[n]).asnumpy()
        plan = net.latest_plan
        assert plan == GraphPlan(mx.cpu(), (n, 3, 224, 224), False)
        assert graph_key(net.planned_symbol(plan)) == fresh[n][0]
        graphs.setdefault(n, net.graph_for(plan))
        assert net.graph_for(plan) is graphs[n]   # built once, run again
        np.testing.assert_allclose(out, fresh[n][1], rtol=0, atol=1e-5 * np.abs(out).max())
    assert graphs[1] is not graphs[32]


def test_export_after_a_large_batch_writes_its_split_graph_which_converts_to_onnx(tmp_path):
    net = randomized(MODEL, classes=10, input_size=SIZE)
    net.hybridize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (256, 3, SIZE, SIZE)))
    expected = net(x).asnumpy()
    prefix = str(tmp_path / 'large')
    net.export(prefix)
    assert 'slice_axis' in _ops(mx.sym.load(prefix + '-symbol.json'))   # fastest at batch 256
    path = mx.onnx.export_model(prefix + '-symbol.json', prefix + '-0000.params',
                                in_shapes=[x.shape], in_types=[np.float32],
                                onnx_file_path=prefix + '.onnx')
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
