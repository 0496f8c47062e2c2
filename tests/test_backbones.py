"""Zoo models as detection backbones: GluonCV's FeatureExpander, SSD and YOLOV3 built
as GluonCV's documentation builds them (no context manager): they train with
GluonCV's losses (oneDNN on), export and reload."""
import mxnet as mx
import pytest
from gluoncv.model_zoo.ssd.ssd import SSD
from gluoncv.model_zoo.yolo.yolo3 import YOLOV3
from gluoncv.nn.feature import FeatureExpander
from mxnet import gluon

from gluon_asymmnet import get_model, list_models
from helpers import (assert_backbone_gradients, export_and_reload, random_images,
                     ssd_train_step, yolo_train_step)
from gluon_asymmnet.backbones import ssd_features
from gluon_asymmnet.model_zoo import list_aliases

NAMES = list_models() + sorted(list_aliases())
# GluonCV's own MobileNetV3 has an empty prefix: its names hold in a fresh name scope
# (where SSD builds it), not at the top level of a process that built other networks.
EMPTY_PREFIX = ('mobilenetv3_large', 'mobilenetv3_small')
#: AsymmNet-L/S, our MobileNetV3 (asymmrate=0), GhostNet: small widths, for speed.
DETECTION_BACKBONES = ['asymmnet_large_0.35', 'asymmnet_small_0.35', 'mobilenetv3_large_0.35',
                       'ghostnet_0.5']


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
    return SSD(name, 128, features=ssd_features(name), num_filters=[128],
               sizes=[13, 26, 51, 77, 102], ratios=[[1, 2, 0.5]] * 4, steps=[8, 16, 32, 64],
               classes=['cat', 'dog'], pretrained=False)


GT_BOXES = mx.nd.array([[[10, 20, 60, 90]], [[40, 30, 120, 100]]])
GT_IDS = mx.nd.array([[[0]], [[1]]])


@pytest.mark.parametrize('name', DETECTION_BACKBONES)
def test_ssd_trains_exports_and_reloads(name, tmp_path):
    mx.random.seed(0)   # random weights where no squeeze-excitation gate saturates
    net = _ssd(name)
    net.initialize()
    x = random_images(128)
    cls_preds, box_preds, anchors = ssd_train_step(net, x, GT_BOXES, GT_IDS)
    assert cls_preds.shape == (2, anchors.shape[1], 3) and box_preds.shape[2] == 4
    assert_backbone_gradients([p for p in net.features.collect_params().values()
                                if 'expand_' not in p.name])   # not SSD's extra layers

    net.hybridize(static_alloc=True, static_shape=True)
    expected = export_and_reload(net, x, tmp_path)
    ids, scores, boxes = expected   # inference: decoded, NMS'd detections
    assert ids.shape == scores.shape == (2, 100, 1) and boxes.shape == (2, 100, 4)
    assert (scores > 0).any()   # detections survived the score threshold


def _yolo(name):
    """YOLOV3 on the stride 8, 16 and 32 stages of zoo model ``name``, as GluonCV's
    ``yolo3_mobilenet1.0_voc`` slices its MobileNet."""
    backbone = get_model(name)
    ends = {info['reduction']: info['index'] + 1 for info in backbone.feature_info}
    features = backbone.features
    stages = [features[:ends[8]], features[ends[8]:ends[16]], features[ends[16]:ends[32]]]
    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    return YOLOV3(stages, [128, 64, 32], anchors, [8, 16, 32], classes=['cat', 'dog']), stages


@pytest.mark.parametrize('name', DETECTION_BACKBONES)
def test_yolov3_trains_exports_and_reloads(name, tmp_path):
    mx.random.seed(0)   # random weights where no squeeze-excitation gate saturates
    net, stages = _yolo(name)
    net.initialize()
    x = random_images(128)
    assert len(yolo_train_step(net, x, GT_BOXES, GT_IDS)) == 4
    assert_backbone_gradients([p for stage in stages for p in stage.collect_params().values()])

    net.hybridize()
    ids, scores, boxes = export_and_reload(net, x, tmp_path)
    assert ids.shape[:2] == scores.shape[:2] == boxes.shape[:2] and boxes.shape[2] == 4
