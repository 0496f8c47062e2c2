"""Zoo models as detection backbones: GluonCV's FeatureExpander and SSD built by name."""
import gluoncv
import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo.ssd.ssd import SSD
from gluoncv.model_zoo.ssd.target import SSDTargetGenerator
from gluoncv.nn.feature import FeatureExpander
from mxnet import autograd, gluon

from gluon_asymmnet import get_model, list_models, trainable_graph
from gluon_asymmnet.backbones import ssd_features
from gluon_asymmnet.model_zoo import list_aliases

NAMES = list_models() + sorted(list_aliases())
# GluonCV's own MobileNetV3 has an empty prefix: its names hold in a fresh name scope
# (where SSD builds it), not at the top level of a process that built other networks.
EMPTY_PREFIX = ('mobilenetv3_large', 'mobilenetv3_small')


def _expander(name, outputs):
    return FeatureExpander(network=name, outputs=outputs, num_filters=[], pretrained=False)


@pytest.mark.parametrize('name', NAMES)
def test_ssd_features_name_the_stride_8_16_32_maps(name):
    names = ssd_features(name)
    get_model(name)   # another instance moves the global name counters on
    assert ssd_features(name) == names
    scope = gluon.Block(prefix='detector_')   # as SSD builds its FeatureExpander
    with scope.name_scope():
        expander = _expander(name, names)
    expander.initialize()
    outs = expander(mx.nd.zeros((1, 3, 64, 64)))
    assert [o.shape[2:] for o in outs] == [(8, 8), (4, 4), (2, 2)]
    info = getattr(get_model(name), 'feature_info', None)
    if info is not None:
        channels = {f['reduction']: f['channels'] for f in info}
        assert [o.shape[1] for o in outs] == [channels[8], channels[16], channels[32]]
    if name not in EMPTY_PREFIX:   # built at the top level too
        expander = _expander(name, names)
        expander.initialize()
        assert [o.shape[2] for o in expander(mx.nd.zeros((1, 3, 64, 64)))] == [8, 4, 2]


def test_ssd_features_of_chosen_strides_and_a_missing_one():
    assert ssd_features('asymmnet_large', strides=(16, 32)) == ssd_features('asymmnet_large')[1:]
    with pytest.raises(ValueError, match='stride 64'):
        ssd_features('asymmnet_small_0.35', strides=(64,))


def _ssd(name):
    """An SSD to train: SSD traces its backbone when built, so inside ``trainable_graph()``."""
    with trainable_graph():
        return SSD(name, 128, features=ssd_features(name), num_filters=[128],
                   sizes=[13, 26, 51, 77, 102], ratios=[[1, 2, 0.5]] * 4, steps=[8, 16, 32, 64],
                   classes=['cat', 'dog'], pretrained=False)


@pytest.mark.parametrize('name', ['asymmnet_large', 'asymmnet_small', 'ghostnet_0.5'])
def test_ssd_trains_exports_and_reloads(name, tmp_path):
    net = _ssd(name)
    net.initialize()
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 128, 128)))
    with autograd.train_mode():
        _, _, anchors = net(x[:1])
    gt_boxes = mx.nd.array([[[10, 20, 60, 90]], [[40, 30, 120, 100]]])
    gt_ids = mx.nd.array([[[0]], [[1]]])
    cls_targets, box_targets, _ = SSDTargetGenerator(negative_mining_ratio=-1)(
        anchors, None, gt_boxes, gt_ids)
    with autograd.record():
        cls_preds, box_preds, _ = net(x)
        loss, _, _ = gluoncv.loss.SSDMultiBoxLoss()([cls_preds], [box_preds], [cls_targets],
                                                    [box_targets])
    autograd.backward(loss)
    assert cls_preds.shape == (2, anchors.shape[1], 3) and box_preds.shape[2] == 4
    backbone = [p for p in net.features.collect_params().values()
                if 'expand_' not in p.name and p.grad_req != 'null']
    assert len(backbone) > 50
    for param in backbone:   # reading them runs the backward (a 4-D concat would fail here)
        grad = param.grad().asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, param.name

    ids, scores, boxes = net(x)   # inference: decoded, NMS'd detections
    assert ids.shape == scores.shape == (2, 100, 1) and boxes.shape == (2, 100, 4)
    net.hybridize(static_alloc=True, static_shape=True)
    expected = [o.asnumpy() for o in net(x)]
    prefix = str(tmp_path / 'ssd')
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    for got, want in zip(loaded(x), expected):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=0, atol=1e-6)
    assert (expected[1] > 0).any()   # detections survived the score threshold
