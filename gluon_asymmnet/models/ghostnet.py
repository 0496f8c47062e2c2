"""GhostNet, the baseline of the AsymmNet paper.

Han, Wang, Tian, Guo, Xu, Xu, "GhostNet: More Features from Cheap Operations",
CVPR 2020 (arXiv 1911.11907).

The module follows ``models/ghostnet.py`` of the original AsymmNet release
(github.com/Spark001/AsymmNet): the same layers, channel rounding and child
names, so the structural parameter names of ``save_parameters``
(``features.0.conv.weight``, ``features.3.0.body.exp_conv.main_conv.bn.gamma``,
``features.3.0.body.se.conv1.weight``, ``features.3.0.identity_conv.dw_conv.conv.weight``,
``output.0.conv1.conv.weight``, ``output.0.conv2.bias``) are the original's and
its files load unchanged.  Two differences, neither of which changes the
mathematics at 224x224: global average pooling instead of the original's 7x7
pooling (any input size works), and the ghost concatenation goes through
:func:`~gluon_asymmnet.models.layers.channel_concat` (trainable under oneDNN;
hybridized, the network runs the inference or the training graph per call,
:class:`~gluon_asymmnet.models.graphs.GraphPerInput`).
"""
import collections
import math

from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .features import record_stage
from .graphs import GraphPerInput
from .layers import Activation, ConvBNAct, SqueezeExcitation, channel_concat, network_norm

__all__ = ['GhostConvBlock', 'GhostExpBlock', 'DepthwiseSeparableConv', 'GhostUnit',
           'GhostClassifier', 'GhostNet', 'GhostUnitConfig', 'GhostNetConfig', 'GHOSTNET',
           'ghostnet_config', 'get_ghostnet', 'round_channels']


def round_channels(channels, divisor=8):
    """The original's width rounding: the nearest multiple of ``divisor`` (at
    least ``divisor``), one step up if that loses more than 10%."""
    rounded = max(int(channels + divisor / 2.0) // divisor * divisor, divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


class GhostConvBlock(HybridBlock):
    """Ghost module: a 1x1 convolution makes half of the channels (rounded up),
    a 3x3 depthwise convolution of those makes the rest; both are concatenated.

    Parameters
    ----------
    in_channels, out_channels : int
    act_func : str or None, default 'relu'
        Activation of both convolutions (None: linear).
    norm_layer : type, default BatchNorm
    norm_kwargs : dict, optional

    Raises
    ------
    ValueError
        ``out_channels`` whose two halves give no valid grouped convolution
        (an odd count whose halves do not divide, e.g. 65: the original fails
        there too).
    """

    def __init__(self, in_channels, out_channels, act_func='relu', norm_layer=nn.BatchNorm,
                 norm_kwargs=None, **kwargs):
        super(GhostConvBlock, self).__init__(**kwargs)
        main = int(math.ceil(0.5 * out_channels))
        cheap = out_channels - main
        if cheap < 1 or main % cheap:
            raise ValueError('a ghost module cannot make %d channels: its cheap depthwise '
                             'convolution would map %d channels to %d' % (out_channels, main,
                                                                          cheap))
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        with self.name_scope():
            self.main_conv = ConvBNAct(main, 1, act_func=act_func, in_channels=in_channels,
                                       **norm)
            self.cheap_conv = ConvBNAct(cheap, 3, groups=cheap, act_func=act_func,
                                        in_channels=main, **norm)

    def hybrid_forward(self, F, x):
        x = self.main_conv(x)
        return channel_concat(F, x, self.cheap_conv(x))


class GhostExpBlock(HybridBlock):
    """Residual branch of a ghost bottleneck: ghost module (expansion, ReLU),
    strided depthwise convolution (only when ``strides > 1``), optional
    squeeze-excitation, linear ghost module.

    Parameters
    ----------
    in_channels, out_channels : int
    strides : int
    kernel_size : int
        Depthwise kernel (3 or 5).
    exp_factor : float
        Expansion: ``ceil(exp_factor * in_channels)`` channels.
    use_se : bool
        Squeeze-excitation with hidden width ``channels // 4``.
    norm_layer : type, default BatchNorm
    norm_kwargs : dict, optional
    """

    def __init__(self, in_channels, out_channels, strides, kernel_size, exp_factor, use_se,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super(GhostExpBlock, self).__init__(**kwargs)
        mid = int(math.ceil(exp_factor * in_channels))
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        self.use_dw_conv, self.use_se = strides != 1, use_se
        with self.name_scope():
            self.exp_conv = GhostConvBlock(in_channels, mid, **norm)
            if self.use_dw_conv:
                self.dw_conv = ConvBNAct(mid, kernel_size, strides=strides, groups=mid,
                                         act_func=None, in_channels=mid, **norm)
            if use_se:
                self.se = SqueezeExcitation(mid, ratio=4, divisible_by=1)
            self.pw_conv = GhostConvBlock(mid, out_channels, act_func=None, **norm)

    def hybrid_forward(self, F, x):
        x = self.exp_conv(x)
        if self.use_dw_conv:
            x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class DepthwiseSeparableConv(HybridBlock):
    """3x3 depthwise convolution (BN, ReLU) then a linear 1x1 convolution (BN):
    the shortcut of a ghost bottleneck that changes shape."""

    def __init__(self, in_channels, out_channels, strides, norm_layer=nn.BatchNorm,
                 norm_kwargs=None, **kwargs):
        super(DepthwiseSeparableConv, self).__init__(**kwargs)
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        with self.name_scope():
            self.dw_conv = ConvBNAct(in_channels, 3, strides=strides, groups=in_channels,
                                     in_channels=in_channels, **norm)
            self.pw_conv = ConvBNAct(out_channels, 1, act_func=None, in_channels=in_channels,
                                     **norm)

    def hybrid_forward(self, F, x):
        return self.pw_conv(self.dw_conv(x))


class GhostUnit(HybridBlock):
    """Ghost bottleneck: :class:`GhostExpBlock` plus the input, or plus a
    :class:`DepthwiseSeparableConv` of it when the stride or width changes.

    Parameters are those of :class:`GhostExpBlock`.
    """

    def __init__(self, in_channels, out_channels, strides, kernel_size, exp_factor, use_se,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super(GhostUnit, self).__init__(**kwargs)
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        self.resize_identity = in_channels != out_channels or strides != 1
        with self.name_scope():
            self.body = GhostExpBlock(in_channels, out_channels, strides, kernel_size,
                                      exp_factor, use_se, **norm)
            if self.resize_identity:
                self.identity_conv = DepthwiseSeparableConv(in_channels, out_channels, strides,
                                                            **norm)

    def hybrid_forward(self, F, x):
        identity = self.identity_conv(x) if self.resize_identity else x
        return self.body(x) + identity


class _BiasedConvReLU(HybridBlock):
    """1x1 convolution with bias, then ReLU (child ``conv``, as the original's
    ``ConvBlock`` without normalisation)."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super(_BiasedConvReLU, self).__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(out_channels, 1, in_channels=in_channels)
            self.act = Activation('relu')

    def hybrid_forward(self, F, x):
        return self.act(self.conv(x))


class GhostClassifier(HybridBlock):
    """Head on the pooled features: 1x1 conv (bias, ReLU), dropout, 1x1 conv.

    Parameters
    ----------
    in_channels, out_channels, mid_channels : int
    dropout : float, default 0.2
    """

    def __init__(self, in_channels, out_channels, mid_channels, dropout=0.2, **kwargs):
        super(GhostClassifier, self).__init__(**kwargs)
        self.dropout = dropout
        with self.name_scope():
            self.conv1 = _BiasedConvReLU(in_channels, mid_channels)
            if dropout > 0:
                self.drop = nn.Dropout(dropout)
            self.conv2 = nn.Conv2D(out_channels, 1, in_channels=mid_channels)

    def hybrid_forward(self, F, x):
        x = self.conv1(x)
        if self.dropout > 0:
            x = self.drop(x)
        return self.conv2(x)


#: One ghost bottleneck: depthwise kernel, expansion factor, output channels,
#: squeeze-excitation.
GhostUnitConfig = collections.namedtuple('GhostUnitConfig', 'kernel exp_factor out se')

#: A whole GhostNet: stem channels, the units of each stage (the first unit of
#: every stage but the first, or of every stage with ``first_stride``, has
#: stride 2), the 1x1 convolution before the pooling, the classifier's hidden width.
GhostNetConfig = collections.namedtuple(
    'GhostNetConfig', 'stem stages final classifier_mid first_stride')

_U = GhostUnitConfig
#: GhostNet x1.0 (the original's ``get_ghostnet`` lists).
GHOSTNET = GhostNetConfig(16, (
    (_U(3, 1, 16, False),),
    (_U(3, 3, 24, False), _U(3, 3, 24, False)),
    (_U(5, 3, 40, True), _U(5, 3, 40, True)),
    (_U(3, 6, 80, False), _U(3, 2.5, 80, False), _U(3, 2.3, 80, False), _U(3, 2.3, 80, False),
     _U(3, 6, 112, True), _U(3, 6, 112, True)),
    (_U(5, 6, 160, True), _U(5, 6, 160, False), _U(5, 6, 160, True), _U(5, 6, 160, False),
     _U(5, 6, 160, True)),
), 960, 1280, False)
del _U


def ghostnet_config(width_scale=1.0):
    """:data:`GHOSTNET` at ``width_scale``, rounded as the original does.

    Stem and unit widths are rounded to multiples of 4 (:func:`round_channels`);
    the last convolution only grows (``width_scale > 1``); the classifier keeps
    1280 channels.
    """
    if width_scale <= 0:
        raise ValueError('width_scale must be > 0, got %r' % (width_scale,))
    if width_scale == 1.0:
        return GHOSTNET

    def scale(channels):
        return round_channels(channels * width_scale, divisor=4)

    stages = tuple(tuple(unit._replace(out=scale(unit.out)) for unit in stage)
                   for stage in GHOSTNET.stages)
    final = scale(GHOSTNET.final) if width_scale > 1.0 else GHOSTNET.final
    return GHOSTNET._replace(stem=scale(GHOSTNET.stem), stages=stages, final=final)


class GhostNet(GraphPerInput, HybridBlock):
    """GhostNet: stem, five stages of ghost bottlenecks, 1x1 convolution,
    global pooling, classifier.

    Parameters
    ----------
    config : GhostNetConfig
        From :func:`ghostnet_config`.
    classes : int, default 1000
    dropout : float, default 0.2
        Dropout inside the classifier.
    in_channels : int, default 3
    use_global_stats : bool, default False
        Freeze BatchNorm statistics (sets ``use_global_stats`` in ``norm_kwargs``).
    norm_layer : type, default BatchNorm
    norm_kwargs : dict, optional

    Attributes
    ----------
    config : GhostNetConfig
    num_classes : int
    feature_info : list of dict
        As :attr:`~gluon_asymmnet.models.asymmnet.AsymmNet.feature_info`.
    """

    def __init__(self, config, classes=1000, dropout=0.2, in_channels=3, use_global_stats=False,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super(GhostNet, self).__init__(**kwargs)
        norm = network_norm(classes, dropout, norm_layer, norm_kwargs, use_global_stats)
        self.config, self.num_classes = config, classes
        self.feature_info = []
        with self.name_scope():
            self.features = nn.HybridSequential()
            self.features.add(ConvBNAct(config.stem, 3, strides=2, in_channels=in_channels,
                                        **norm))
            channels, reduction = config.stem, 2
            record_stage(self.feature_info, 0, reduction, channels)
            for i, units in enumerate(config.stages):
                stage = nn.HybridSequential(prefix='stage%d_' % (i + 1))
                with stage.name_scope():
                    for j, unit in enumerate(units):
                        strides = 2 if j == 0 and (i > 0 or config.first_stride) else 1
                        stage.add(GhostUnit(channels, unit.out, strides, unit.kernel,
                                            unit.exp_factor, unit.se, **norm))
                        channels, reduction = unit.out, reduction * strides
                self.features.add(stage)
                record_stage(self.feature_info, len(self.features) - 1, reduction, channels)
            self.features.add(ConvBNAct(config.final, 1, in_channels=channels, **norm))
            record_stage(self.feature_info, len(self.features) - 1, reduction, config.final)
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential()
            self.output.add(GhostClassifier(config.final, classes, config.classifier_mid,
                                            dropout),
                            nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_ghostnet(width_scale=1.0, dropout=0.2, **kwargs):
    """GhostNet at ``width_scale`` (the original's entry point).

    Parameters
    ----------
    width_scale : float, default 1.0
        Width multiplier (the original was tried at 1.3, 1.0, 0.75 and 0.5;
        some widths, e.g. 0.35, give a ghost module of an odd width that the
        original cannot build either: ``ValueError``).
    dropout : float, default 0.2
    **kwargs
        ``classes``, ``in_channels``, ``use_global_stats``, ``norm_layer``,
        ``norm_kwargs``.

    Returns
    -------
    GhostNet
        Not initialised (call ``initialize``).
    """
    return GhostNet(ghostnet_config(width_scale), dropout=dropout, **kwargs)
