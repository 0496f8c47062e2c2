"""Detection backbones: the zoo's networks inside GluonCV's SSD.

GluonCV builds a detector's feature extractor from a model *name* and the names
of internal outputs of the symbol it traces from that model
(``FeatureExpander(network=name, outputs=[...])``, which
``SSD(network=name, features=[...])`` uses), written without the network's
prefix: ``['relu22_fwd', 'relu26_fwd']`` for its MobileNet 1.0.
:func:`ssd_features` gives those names for every model of the zoo::

    from gluoncv.model_zoo.ssd.ssd import SSD
    net = SSD('asymmnet_large_1.0', 512, features=ssd_features('asymmnet_large_1.0'),
              num_filters=[512, 256, 256], sizes=[...], ratios=[[1, 2, 0.5]] * 6,
              steps=[8, 16, 32, 64, 128, 256], classes=names, pretrained=False)

The names depend only on the network's structure (each block names its children
from counters of its own), so they hold for every instance, wherever it is
built (inside the SSD's name scope, its prefix is the SSD's).  GluonCV traces
the network symbolically, which gives the universal graph
(:mod:`~gluon_asymmnet.models.graphs`): the detector trains with oneDNN and
exports, with no context manager around its construction.
"""
import mxnet as mx

from .model_zoo import get_model

__all__ = ['ssd_features']

#: Input side used to measure each block's stride (a multiple of 32).
_PROBE_SIZE = 256


def ssd_features(name, strides=(8, 16, 32)):
    """Internal output names of the feature maps of zoo model ``name`` at ``strides``.

    For each stride, the output of the last block of ``net.features`` at that
    resolution (for AsymmNet x1.0 at 8, 16, 32: 40, 112 and 960 channels, the
    maps of ``features_only=True``), named as in the symbol that GluonCV's
    ``FeatureExpander`` traces, without the network's prefix.

    Parameters
    ----------
    name : str
        A zoo name or alias (see :func:`~gluon_asymmnet.model_zoo.list_models`).
    strides : sequence of int, default (8, 16, 32)
        Strides of the wanted maps (powers of two up to 32).

    Returns
    -------
    list of str
        One name per stride, for ``SSD(network=name, features=...)`` or
        ``FeatureExpander(network=name, outputs=...)``.

    Raises
    ------
    ValueError
        Unknown model, or a stride the network has no feature map at.
    """
    # Built as GluonCV's SSD builds it: first thing in a fresh name scope (that
    # matters only to networks with an empty prefix, e.g. GluonCV's MobileNetV3).
    scope = mx.gluon.Block(prefix='ssd_features_')
    with scope.name_scope():
        net = get_model(name)
    maps = []
    for block in net.features:
        block.register_forward_hook(lambda _block, _inputs, out: maps.append(out))
    net(mx.sym.var('data'))
    _, shapes, _ = mx.sym.Group(maps).infer_shape(data=(1, 3, _PROBE_SIZE, _PROBE_SIZE))
    names = []
    for stride in strides:
        at_stride = [i for i, shape in enumerate(shapes)
                     if len(shape) == 4 and shape[2] * stride == _PROBE_SIZE]
        if not at_stride:
            raise ValueError('%s has no feature map at stride %r' % (name, stride))
        names.append(maps[at_stride[-1]].name[len(net.prefix):])
    return names
