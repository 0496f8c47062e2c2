"""OpenCV DNN (``cv2.dnn.readNetFromONNX``) runs the exported ONNX files as MXNet does."""
import mxnet as mx
import numpy as np
import onnx
import pytest
from mxnet.gluon import nn
from onnx import TensorProto, helper, numpy_helper

import gluon_asymmnet
from gluon_asymmnet.deploy.export import export_model
from gluon_asymmnet.deploy.onnx import fold_gate_hard_sigmoids
from gluon_asymmnet.deploy.sources import zoo_model

cv2 = pytest.importorskip('cv2')

#: Largest logit difference accepted between OpenCV and MXNet, relative to the largest logit.
OPENCV_TOLERANCE = 1e-4


def _batch_norms(block):
    if isinstance(block, nn.BatchNorm):
        yield block
    for child in block._children.values():
        yield from _batch_norms(child)


def _set_running_stats(norm, inputs):
    """Forward pre-hook: the statistics of this batch become the running statistics."""
    x = inputs[0]
    mean = x.mean(axis=(0, 2, 3))
    norm.running_mean.set_data(mean)
    norm.running_var.set_data(((x - mean.reshape((1, -1, 1, 1))) ** 2).mean(axis=(0, 2, 3)))


def calibrated(name, size=224, seed=0):
    """A zoo net with random weights whose logits look trained-sized, and its test images.

    Every BatchNorm gets the statistics of its own input on two random images (so
    activations stay of order 1 through the network) and the classifier is
    scaled to give them logits of magnitude 10, where float32 rounding and wrong
    operators both show.

    Returns
    -------
    (HybridBlock, numpy.ndarray)
        The network and the ``(2, 3, size, size)`` images.
    """
    mx.random.seed(seed)
    net = zoo_model(name, input_size=size)[0]
    net(mx.nd.zeros((1, 3, 32, 32)))   # initialise deferred parameters
    images = np.random.RandomState(seed).normal(size=(2, 3, size, size)).astype(np.float32)
    hooks = [norm.register_forward_pre_hook(_set_running_stats) for norm in _batch_norms(net)]
    net(mx.nd.array(images))
    for hook in hooks:
        hook.detach()
    classifier = [param for name, param in net.output.collect_params().items()
                  if name.endswith('weight')][-1]   # the last layer of the head
    logits = net(mx.nd.array(images)).asnumpy()
    classifier.set_data(classifier.data() * (10 / np.abs(logits).max()))
    return net, images


def _opencv_logits(path, batch):
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(batch)
    return net.forward()


#: The models of the fast tier (one per family); the rest are slow (tests/conftest.py).
FAST_MODELS = ('asymmnet_small_0.35', 'mobilenetv2_asymm_0.35', 'ghostnet_0.5')


@pytest.mark.parametrize('name', [
    pytest.param(name, marks=() if name in FAST_MODELS else pytest.mark.slow)
    for name in gluon_asymmnet.list_models()])
def test_opencv_matches_mxnet(tmp_path, name):
    net, batch = calibrated(name)
    prefix = str(tmp_path / name)
    export_model(net, prefix, 224, fmt='onnx')
    expected = net(mx.nd.array(batch)).asnumpy()
    scale = np.abs(expected).max()
    assert 9 < scale < 11   # trained-sized logits
    for path, inputs in ((prefix + '.onnx', batch), (prefix + '-batch1.onnx', batch[:1])):
        got = _opencv_logits(path, inputs)
        assert got.shape == expected[:len(inputs)].shape
        assert np.abs(got - expected[:len(inputs)]).max() <= OPENCV_TOLERANCE * scale, path


def _gate_and_hard_swish_graph():
    """``y = hard_swish(x * hard_sigmoid(conv(pool(x))))``: a squeeze-excitation gate, then
    a hard swish, both with MXNet's ``HardSigmoid(alpha=1/6, beta=0.5)``."""
    rng = np.random.RandomState(0)
    node = helper.make_node
    nodes = [node('GlobalAveragePool', ['x'], ['pooled']),
             node('Conv', ['pooled', 'w'], ['logit'], kernel_shape=[1, 1]),
             node('HardSigmoid', ['logit'], ['gate'], alpha=1 / 6., beta=0.5),
             node('Mul', ['x', 'gate'], ['gated']),
             node('HardSigmoid', ['gated'], ['hs'], alpha=1 / 6., beta=0.5),
             node('Mul', ['gated', 'hs'], ['y'])]
    shape = [1, 8, 14, 14]
    graph = helper.make_graph(
        nodes, 'gate', [helper.make_tensor_value_info('x', TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(rng.normal(size=(8, 8, 1, 1)).astype(np.float32), 'w')])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])


def test_gate_folding_keeps_values_and_hard_swishes(tmp_path):
    model = _gate_and_hard_swish_graph()
    x = np.random.RandomState(1).normal(size=(1, 8, 14, 14)).astype(np.float32)
    pooled = x.mean(axis=(2, 3), keepdims=True)
    weight = numpy_helper.to_array(model.graph.initializer[0])[:, :, 0, 0]
    gated = x * np.clip(np.einsum('oi,nihw->nohw', weight, pooled) / 6 + 0.5, 0, 1)
    expected = gated * np.clip(gated / 6 + 0.5, 0, 1)

    assert fold_gate_hard_sigmoids(model) == 1
    onnx.checker.check_model(model)
    alphas = [node.attribute[0].f for node in model.graph.node if node.op_type == 'HardSigmoid']
    assert alphas == [1.0, pytest.approx(1 / 6.)]   # the gate folded, the hard swish kept
    path = str(tmp_path / 'gate.onnx')
    onnx.save(model, path)
    got = _opencv_logits(path, x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5
    assert fold_gate_hard_sigmoids(model) == 0   # nothing left to fold
