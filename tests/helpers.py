"""Helpers shared by the test modules: random networks and running the commands."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from gluon_asymmnet import get_model
from gluon_asymmnet.deploy.sources import zoo_model
from gluon_asymmnet.model_zoo import file_sha1, model_store_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def randomized(name, classes=1000, seed=0, input_size=32):
    """A zoo net with random weights and random BatchNorm statistics (logits of order 1)."""
    mx.random.seed(seed)
    net = zoo_model(name, classes=classes, input_size=input_size)[0]
    rng = np.random.RandomState(seed)
    for param_name, param in net.collect_params().items():
        if param_name.endswith('running_var'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif param_name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.2, param.shape)))
    return net


def run_cli(module_or_script, *args):
    """Run a command of the package; return ``(exit status, stdout, stderr)``."""
    command = [sys.executable] + (['-m', module_or_script] if not module_or_script.endswith('.py')
                                  else [os.path.join(ROOT, module_or_script)])
    done = subprocess.run(command + [str(a) for a in args], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return done.returncode, done.stdout, done.stderr


def assert_one_line_error(status, stderr, *fragments):
    """Exit status 2, one ``error:`` line (MXNet's own log lines aside), no traceback."""
    assert status == 2, stderr
    assert 'Traceback' not in stderr
    lines = [line for line in stderr.strip().splitlines() if 'error:' in line]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def store_weights(name, classes):
    """Put weights of ``name`` for ``classes`` into the local model store; returns the net."""
    net = get_model(name, classes=classes)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    root = model_store_root()
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, 'tmp.params')
    net.save_parameters(tmp)
    os.rename(tmp, os.path.join(root, '%s-%s.params' % (name, file_sha1(tmp)[:8])))
    return net


def assert_backbone_gradients(params):
    """Every trainable parameter of ``params`` got a finite, non-zero gradient."""
    params = [param for param in params if param.grad_req != 'null']
    assert len(params) > 30
    for param in params:   # reading them runs the backward (a plain 4-D concat fails here)
        grad = param.grad().asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, param.name


def export_and_reload(net, inputs, tmp_path):
    """Export the hybridized ``net`` after a call on ``inputs``; the reloaded graph's outputs."""
    expected = [o.asnumpy() for o in net(inputs)]
    prefix = str(tmp_path / 'detector')
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    for got, want in zip(loaded(inputs), expected):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=0, atol=1e-6)
    return expected


def random_images(size, count=2, seed=0):
    """``count`` random NCHW images of ``size`` pixels, uniform in [-1, 1]."""
    return mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, (count, 3, size, size)))


def ssd_train_step(net, images, gt_boxes, gt_ids, every_negative=False):
    """A training step's forward and backward of GluonCV's SSD ``net``, hybridized as
    ``train_ssd.py`` hybridizes it, with its ``SSDTargetGenerator`` and ``SSDMultiBoxLoss``;
    ``every_negative``: every negative anchor counts in the loss (not the hardest three per
    positive), so every layer's anchors get a gradient. Returns ``(cls_preds, box_preds,
    anchors)``."""
    import gluoncv
    from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
    net.hybridize(static_alloc=True, static_shape=True)
    with autograd.train_mode():
        _, _, anchors = net(images)
    cls_targets, box_targets, _ = SSDTargetGenerator(negative_mining_ratio=-1)(
        anchors, None, gt_boxes, gt_ids)
    loss_fn = gluoncv.loss.SSDMultiBoxLoss(
        **({'min_hard_negatives': anchors.shape[1]} if every_negative else {}))
    with autograd.record():
        cls_preds, box_preds, _ = net(images)
        loss, _, _ = loss_fn([cls_preds], [box_preds], [cls_targets], [box_targets])
    autograd.backward(loss)
    return cls_preds, box_preds, anchors


def yolo_train_step(net, images, gt_boxes, gt_ids):
    """A training step's forward and backward of GluonCV's YOLOV3 ``net`` (one box per
    image): the targets of ``YOLOV3PrefetchTargetGenerator`` (what
    ``YOLO3DefaultTrainTransform`` computes), hybridized as ``train_yolo3.py``, the sum of
    ``YOLOV3Loss``'s parts (objectness, center, scale, class), which is returned; asserts
    the loss is finite."""
    from gluoncv.model_zoo.yolo.yolo_target import YOLOV3PrefetchTargetGenerator
    with autograd.train_mode():   # what YOLO3DefaultTrainTransform asks the network
        _, anchors, offsets, feat_maps, _, _, _, _ = net(images[:1])
    generate = YOLOV3PrefetchTargetGenerator(num_class=len(net.classes))
    targets = [generate(images[:1], feat_maps, anchors, offsets, gt_boxes[i:i + 1],
                        gt_ids[i:i + 1], None) for i in range(len(images))]
    targets = [mx.nd.concat(*parts, dim=0) for parts in zip(*targets)]
    net.hybridize()
    with autograd.record():
        losses = net(images, gt_boxes, *targets)
        loss = sum(part.sum() for part in losses)
    autograd.backward(loss)
    assert np.isfinite(loss.asscalar())
    return losses
