"""The named detectors and pose models, through GluonCV's zoo: each builds, trains one
step with GluonCV's loss (every backbone parameter gets a gradient), runs hybridized
and exports and reloads identically; the layers and anchors are GluonCV's choices."""
import gluoncv
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_asymmnet.detectors import BACKBONES, SSD_CONFIGS, detector_names, ssd_config
from helpers import (assert_backbone_gradients, export_and_reload, random_images,
                     ssd_train_step, yolo_train_step)

#: One name per network: the ``_coco``/``_custom`` names differ only in their classes.
NETWORKS = detector_names('*_voc') + detector_names('mobile_pose_*')
SIZE = 64
GT_BOXES = mx.nd.array([[[5, 10, 30, 45]], [[20, 15, 60, 50]]])
GT_IDS = mx.nd.array([[[0]], [[14]]])


def test_the_names_in_gluoncvs_pattern():
    assert len(detector_names()) == 7 * len(BACKBONES)
    for key, (_, size_class) in BACKBONES.items():
        size = {'large': 512, 'small': 320}[size_class]
        for dataset in ('voc', 'coco', 'custom'):
            assert 'ssd_%d_%s_%s' % (size, key, dataset) in detector_names()
            assert 'yolo3_%s_%s' % (key, dataset) in detector_names()
        assert 'mobile_pose_' + key in detector_names()
    assert set(detector_names()) <= set(gluoncv.model_zoo.get_model_list())
    assert 'ssd_512_mobilenetv3_large_1.0_voc' in detector_names()   # ours: r=0
    for name in ('mobile_pose_mobilenetv3_large', 'mobile_pose_mobilenetv3_small'):   # GluonCV's
        assert name not in detector_names()
        builder = gluoncv.model_zoo.model_zoo._models[name]
        assert builder.__module__ == 'gluoncv.model_zoo.simple_pose.mobile_pose'


def test_ssd_anchors_step_exactly_over_the_maps():
    assert SSD_CONFIGS['large'].steps == (8, 16, 32, 64, 128, 256)
    assert SSD_CONFIGS['large'].sizes[0] == 51.2   # GluonCV's 512 VGG16, stride 8 first
    assert SSD_CONFIGS['small'].steps[:4] == (8, 16, 32, 64)
    assert SSD_CONFIGS['small'].steps[4:] == (320 / 3, 160)   # maps of 3 and 2
    with pytest.raises(ValueError, match='multiple of 32'):
        ssd_config(300, (256, 256, 128), SSD_CONFIGS['small'].sizes)


def test_classes_as_on_gluoncvs_models():
    net = gluoncv.model_zoo.get_model('ssd_320_asymmnet_small_custom', classes=['a', 'b'])
    assert net.classes == ['a', 'b'] and net.num_classes == 2
    voc = gluoncv.model_zoo.get_model('yolo3_asymmnet_small_voc')
    assert len(voc.classes) == 20
    voc.initialize()
    voc(mx.nd.zeros((1, 3, SIZE, SIZE)))   # GluonCV's YOLO resets initialized predictors
    voc.reset_class(['cat', 'dog'], reuse_weights=['cat', 'dog'])
    assert voc.classes == ['cat', 'dog'] and len(voc(mx.nd.zeros((1, 3, SIZE, SIZE)))) == 3
    with pytest.raises(ValueError, match='reset_class'):
        gluoncv.model_zoo.get_model('ssd_320_asymmnet_small_voc', classes=['a'])
    with pytest.raises(ValueError, match='custom detector needs its classes'):
        gluoncv.model_zoo.get_model('yolo3_ghostnet_custom')
    with pytest.raises(ValueError, match='no hosted detector weights'):
        gluoncv.model_zoo.get_model('mobile_pose_ghostnet', pretrained=True)


def test_pretrained_base_reads_the_local_store(tmp_path):
    with pytest.raises(FileNotFoundError, match='no weights for asymmnet_small_1.0'):
        gluoncv.model_zoo.get_model('ssd_320_asymmnet_small_voc', pretrained_base=True,
                                    root=str(tmp_path))


def _ssd_step(net, x):
    ssd_train_step(net, x, GT_BOXES, GT_IDS, every_negative=True)
    return [p for p in net.features.collect_params().values() if 'expand_' not in p.name]


def _yolo_step(net, x):
    yolo_train_step(net, x, GT_BOXES, GT_IDS)
    return [p for stage in net.stages for p in stage.collect_params().values()]


def _pose_step(net, x):
    net.hybridize()   # as GluonCV's train_simple_pose.py
    heatmaps = mx.nd.array(np.random.RandomState(1).uniform(0, 1, (2, 17, SIZE // 4, SIZE // 4)))
    with autograd.record():   # GluonCV's train_simple_pose.py: L2 loss, weighted per joint
        loss = gluon.loss.L2Loss()(net(x), heatmaps, mx.nd.ones((2, 17, 1, 1)))
    autograd.backward(loss)
    return list(net.features.collect_params().values())


@pytest.mark.slow
@pytest.mark.parametrize('name', NETWORKS)
def test_named_model_trains_runs_hybridized_exports_and_reloads(name, tmp_path):
    mx.random.seed(0)
    net = gluoncv.model_zoo.get_model(name)
    net.initialize()
    x = random_images(SIZE)
    step = {'ssd': _ssd_step, 'yolo3': _yolo_step, 'mobile': _pose_step}[name.split('_')[0]]
    assert_backbone_gradients(step(net, x))
    net.hybridize(static_alloc=True, static_shape=True)   # a new graph: inference
    outputs = export_and_reload(net, x, tmp_path)
    if name.startswith('mobile_pose'):
        assert np.shape(outputs) == (2, 17, SIZE // 4, SIZE // 4)
    else:
        ids, scores, boxes = outputs   # decoded, NMS'd detections
        assert ids.shape[:2] == scores.shape[:2] == boxes.shape[:2] and boxes.shape[2] == 4


@pytest.mark.slow
@pytest.mark.parametrize('name', detector_names('*_coco') + detector_names('*_custom'))
def test_other_datasets_build_with_their_classes(name):
    kwargs = {'classes': ['digit']} if name.endswith('custom') else {}
    net = gluoncv.model_zoo.get_model(name, **kwargs)
    assert len(net.classes) == (1 if kwargs else 80)
