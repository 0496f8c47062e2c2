"""Named detectors and pose models on the zoo's backbones, in GluonCV's zoo.

Built with GluonCV's own classes and builders (``get_ssd``, ``get_yolov3``,
``get_mobile_pose``), named in GluonCV's pattern, and registered in GluonCV's
zoo when :mod:`gluon_asymmnet` is imported::

    import gluon_asymmnet, gluoncv
    net = gluoncv.model_zoo.get_model('ssd_512_asymmnet_large_voc')
    net = gluoncv.model_zoo.get_model('yolo3_asymmnet_small_custom', classes=['a', 'b'])
    net = gluoncv.model_zoo.get_model('mobile_pose_ghostnet')

Names
-----
For each backbone of :data:`BACKBONES` (x1.0 networks: ``asymmnet_large``,
``asymmnet_small``, our MobileNetV3 ``mobilenetv3_large_1.0`` and
``mobilenetv3_small_1.0``, i.e. ``asymmrate=0``, and ``ghostnet``):

``ssd_<size>_<backbone>_{voc,coco,custom}``
    SSD on the backbone's stride-8, 16 and 32 maps and three extra layers
    (strides 64, 128, 256): 512x512 on the large backbones, 320x320 on the small
    ones, as GluonCV pairs 512 with MobileNet 1.0 and 300 with MobileNet 0.25
    (320: a multiple of 32, so every map's step is exact).  Filters, anchor
    ratios and sizes are GluonCV's for those models (:data:`SSD_CONFIGS`).
``yolo3_<backbone>_{voc,coco,custom}``
    YOLOv3 on the three stages that end at strides 8, 16 and 32, GluonCV's
    anchors, its MobileNet 1.0 filters (large) or 0.25 filters (small).
``mobile_pose_<backbone>``
    GluonCV's MobilePose on the backbone's features up to its stride-32 map.

``*_voc`` and ``*_coco`` have the dataset's classes (``reset_class`` changes
them, as on GluonCV's models); ``*_custom`` take ``classes``.
``pretrained_base`` loads the backbone from the local model store
(:func:`~gluon_asymmnet.model_zoo.model_file`; nothing is downloaded).  There
are no hosted detector weights: ``pretrained`` is False or a weights file.
"""
import fnmatch
import functools
import math
import os
import typing

from mxnet.context import cpu
from mxnet.gluon import nn

from .backbones import ssd_features
from .model_zoo import get_model

__all__ = ['SSDConfig', 'SSD_CONFIGS', 'SIZES_512', 'SIZES_300', 'BACKBONES', 'YOLO_FILTERS',
           'YOLO_ANCHORS', 'detector_names', 'ssd_config', 'get_asymm_ssd', 'get_asymm_yolov3',
           'get_asymm_mobile_pose']


class SSDConfig(typing.NamedTuple):
    """The layers and anchors of an SSD on a backbone's stride-8/16/32 maps."""
    base_size: int        #: input side the anchors are laid out for (a multiple of 32)
    filters: tuple        #: channels of the extra layers (strides 64, 128, 256)
    sizes: tuple          #: anchor sizes in pixels, one more than layers
    ratios: tuple         #: anchor aspect ratios per layer
    steps: tuple          #: anchor spacing in pixels per layer


_RATIOS = ((1, 2, 0.5),) + ((1, 2, 0.5, 3, 1.0 / 3),) * 3 + ((1, 2, 0.5),) * 2


def ssd_config(base_size, filters, size_fractions):
    """An :class:`SSDConfig` whose steps are exact at ``base_size``.

    Parameters
    ----------
    base_size : int
        A multiple of 32.
    filters : sequence of int
        Channels of the three extra layers.
    size_fractions : sequence of float
        Anchor sizes as fractions of ``base_size`` (seven).

    Raises
    ------
    ValueError
        ``base_size`` not a positive multiple of 32.
    """
    if base_size <= 0 or base_size % 32:
        raise ValueError('SSD input size %r is not a positive multiple of 32' % (base_size,))
    maps = [base_size // 8, base_size // 16, base_size // 32]
    for _ in filters:   # GluonCV's extra layers: 3x3 convolutions of stride 2, padding 1
        maps.append(math.ceil(maps[-1] / 2))
    return SSDConfig(base_size, tuple(filters),
                     tuple(round(f * base_size, 2) for f in size_fractions), _RATIOS,
                     tuple(base_size / m for m in maps))


#: Anchor sizes / input side: GluonCV's ``ssd_512_vgg16_atrous`` (its 512 model with a
#: stride-8 first map) and ``ssd_300_mobilenet0.25`` (its 300 MobileNet).
SIZES_512 = (0.1, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)
SIZES_300 = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)

#: SSD of the large backbones (GluonCV's MobileNet 1.0 512 extra filters) and of the small
#: ones (its MobileNet 0.25 300 filters).
SSD_CONFIGS = {'large': ssd_config(512, (512, 512, 256), SIZES_512),
               'small': ssd_config(320, (256, 256, 128), SIZES_300)}
#: YOLOv3 filters of GluonCV's MobileNet 1.0 (large) and 0.25 (small) models.
YOLO_FILTERS = {'large': (512, 256, 128), 'small': (256, 128, 128)}
#: GluonCV's YOLOv3 anchors (pixels at 416) for strides 8, 16, 32.
YOLO_ANCHORS = ([10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                [116, 90, 156, 198, 373, 326])
#: Backbone of each detector name -> (zoo model, size class).  Our MobileNetV3 keeps its
#: width in the name, as in the zoo: ``mobilenetv3_large`` is GluonCV's network (and
#: ``mobile_pose_mobilenetv3_large`` GluonCV's pose model).
BACKBONES = {'asymmnet_large': ('asymmnet_large_1.0', 'large'),
             'asymmnet_small': ('asymmnet_small_1.0', 'small'),
             'mobilenetv3_large_1.0': ('mobilenetv3_large_1.0', 'large'),
             'mobilenetv3_small_1.0': ('mobilenetv3_small_1.0', 'small'),
             'ghostnet': ('ghostnet_1.0', 'large')}
_DATASETS = ('voc', 'coco', 'custom')


def _dataset_classes(dataset):
    if dataset == 'voc':
        from gluoncv.data import VOCDetection
        return VOCDetection.CLASSES
    from gluoncv.data import COCODetection
    return COCODetection.CLASSES


def _load_detector_weights(net, pretrained, ctx):
    if pretrained is False or pretrained is None:
        return net
    if not (isinstance(pretrained, str) and os.path.isfile(pretrained)):
        raise ValueError('there are no hosted detector weights: pretrained must be a weights '
                         'file, not %r' % (pretrained,))
    net.load_parameters(pretrained, ctx=ctx)
    return net


def _stage_ends(backbone):
    return {info['reduction']: info['index'] + 1 for info in backbone.feature_info}


def get_asymm_ssd(backbone, config, classes, pretrained=False, pretrained_base=False,
                  ctx=cpu(), root=None, **kwargs):
    """GluonCV's SSD (``get_ssd``) on the stride-8/16/32 maps of a zoo model.

    Parameters
    ----------
    backbone : str
        Any zoo name (:func:`~gluon_asymmnet.model_zoo.list_models`).
    config : SSDConfig
    classes : sequence of str
    pretrained : False or str
        A weights file of the whole detector.
    pretrained_base : bool or str
        The backbone's weights from the local model store (see
        :func:`~gluon_asymmnet.model_zoo.get_model`).
    ctx : Context
    root : str, optional
        Model store.
    **kwargs
        Passed to GluonCV's ``SSD`` (``norm_layer``, ``nms_thresh``...).

    Returns
    -------
    gluoncv.model_zoo.ssd.SSD
    """
    from gluoncv.model_zoo.ssd.ssd import get_ssd
    from .model_zoo import model_store_root
    net = get_ssd(backbone, config.base_size, features=ssd_features(backbone),
                  filters=list(config.filters), sizes=list(config.sizes),
                  ratios=[list(r) for r in config.ratios], steps=list(config.steps),
                  classes=classes, dataset='', pretrained=False, pretrained_base=pretrained_base,
                  ctx=ctx, root=model_store_root(root), **kwargs)
    return _load_detector_weights(net, pretrained, ctx)


def get_asymm_yolov3(backbone, filters, classes, pretrained=False, pretrained_base=False,
                     ctx=cpu(), root=None, **kwargs):
    """GluonCV's YOLOv3 (``get_yolov3``) on the stages of a zoo model ending at strides
    8, 16 and 32, as GluonCV slices its MobileNet.

    Parameters
    ----------
    backbone : str
        A zoo name of a network with ``feature_info`` (AsymmNet, MobileNetV3, GhostNet).
    filters : sequence of int
        Channels of the three YOLO detection blocks (stride 32 first).
    classes : sequence of str
    pretrained, pretrained_base, ctx, root
        As :func:`get_asymm_ssd`.
    **kwargs
        Passed to GluonCV's ``YOLOV3`` (``norm_layer``, ``nms_thresh``...).

    Returns
    -------
    gluoncv.model_zoo.yolo.yolo3.YOLOV3
    """
    from gluoncv.model_zoo.yolo.yolo3 import get_yolov3
    base = get_model(backbone, pretrained=pretrained_base, ctx=ctx, root=root)
    ends = _stage_ends(base)
    stages = [base.features[:ends[8]], base.features[ends[8]:ends[16]],
              base.features[ends[16]:ends[32]]]
    net = get_yolov3(backbone, stages, list(filters), [list(a) for a in YOLO_ANCHORS],
                     [8, 16, 32], classes, '', pretrained=False, ctx=ctx, **kwargs)
    return _load_detector_weights(net, pretrained, ctx)


def get_asymm_mobile_pose(backbone, num_joints=17, pretrained=False, pretrained_base=False,
                          ctx=cpu(), root=None, **kwargs):
    """GluonCV's MobilePose (``get_mobile_pose``) on a zoo model's features up to its
    stride-32 map (GluonCV keeps the same part of its MobileNetV3).

    Parameters
    ----------
    backbone : str
        A zoo name of a network with ``feature_info``.
    num_joints : int, default 17
        Heatmaps (COCO's keypoints).
    pretrained, pretrained_base, ctx, root
        As :func:`get_asymm_ssd`.
    **kwargs
        Passed to GluonCV's ``MobilePose``.

    Returns
    -------
    gluoncv.model_zoo.simple_pose.mobile_pose.MobilePose
    """
    from gluoncv.model_zoo.simple_pose.mobile_pose import get_mobile_pose
    # GluonCV slices the backbones whose names it knows; any other gets its ``base_attrs``
    # whole: none here, then the features up to stride 32 in the same place.
    net = get_mobile_pose(backbone, base_attrs=(), num_joints=num_joints, **kwargs)
    with net.name_scope():
        base = get_model(backbone, pretrained=pretrained_base, ctx=ctx, root=root)
        features = nn.HybridSequential()
    features.add(base.features[:_stage_ends(base)[32]])
    net.features = features
    return _load_detector_weights(net, pretrained, ctx)


def _named(family, key, dataset, pretrained=False, pretrained_base=False, classes=None,
           **kwargs):
    backbone, size = BACKBONES[key]
    if dataset != 'custom':
        if classes is not None:
            raise ValueError('a %s detector has its dataset\'s classes: build the custom one '
                             'with classes, or call reset_class' % dataset)
        classes = _dataset_classes(dataset)
    elif classes is None:
        raise ValueError('a custom detector needs its classes')
    if family == 'ssd':
        return get_asymm_ssd(backbone, SSD_CONFIGS[size], classes, pretrained, pretrained_base,
                             **kwargs)
    return get_asymm_yolov3(backbone, YOLO_FILTERS[size], classes, pretrained, pretrained_base,
                            **kwargs)


def _name_parts(family, key):
    if family == 'ssd':
        return ['ssd', str(SSD_CONFIGS[BACKBONES[key][1]].base_size), key]
    return ['yolo3', key]


_REGISTERED = {}


def detector_names(pattern=None):
    """Sorted names of the detectors and pose models, optionally filtered by an fnmatch
    ``pattern``."""
    names = sorted(_REGISTERED)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _register():
    import gluoncv.model_zoo.model_zoo as gluoncv_zoo
    for key, (backbone, _) in BACKBONES.items():
        for family in ('ssd', 'yolo3'):
            for dataset in _DATASETS:
                _REGISTERED['_'.join(_name_parts(family, key) + [dataset])] = functools.partial(
                    _named, family, key, dataset)
        _REGISTERED['mobile_pose_' + key] = functools.partial(get_asymm_mobile_pose, backbone)
    shadowed = sorted(set(_REGISTERED) & set(gluoncv_zoo._models))
    if shadowed:   # registered twice would be harmless; GluonCV's own never are replaced
        raise RuntimeError('GluonCV has its own %s' % ', '.join(shadowed))
    gluoncv_zoo._models.update(_REGISTERED)


_register()
