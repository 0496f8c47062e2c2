"""AsymmNet: ultralight CNNs built from asymmetrical bottlenecks.

Yang, Shen, Zhao, "AsymmNet: Towards ultralight convolution neural networks
using asymmetrical bottlenecks", CVPR Workshops 2021 (arXiv 2104.07770).

The module mirrors ``models/asymmnet.py`` of the original release
(github.com/Spark001/AsymmNet): class and argument names, and the structural
parameter names of ``save_parameters`` (``features.4.expand.conv.weight``,
``features.4.dw_conv.bn.gamma``, ``features.6.se.conv1.weight``,
``features.4.pw_conv_linear.conv.weight``, ``output.0.weight``), so that files
saved by the original load unchanged.  With ``asymmrate=0`` the networks are
MobileNetV3-Large/Small.
"""
import collections
import math

from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .feature_reuse import FORMULATIONS, choose_formulation, split_forward
from .features import record_stage
from .graphs import GraphPerInput, graph_plan, graph_shape
from .layers import (Activation, ChannelShuffle, ConvBNAct, SqueezeExcitation, channel_concat,
                     make_divisible, network_norm)

__all__ = ['AsymmBottleneck', 'AsymmNet', 'BlockConfig', 'ArchConfig',
           'ASYMMNET_CFGS', 'get_asymmnet_cfgs', 'get_asymm_net', 'effective_asymmrate']


def effective_asymmrate(num_in, num_mid, asymmrate):
    """Number of reused input copies a bottleneck really concatenates per side.

    The first 1x1 convolution produces ``num_mid - r * num_in`` channels, so it
    must keep at least one: ``r`` is lowered to the largest value with
    ``num_mid > r * num_in`` (the original code instead builds a depthwise
    convolution of the wrong width and fails).  A block without expansion
    (``num_mid <= num_in``) reuses nothing.

    Parameters
    ----------
    num_in, num_mid : int
        Input and expansion channels.
    asymmrate : int
        Requested number of copies per side (>= 0).

    Returns
    -------
    int
    """
    if num_mid <= num_in:
        return 0
    return min(asymmrate, int(math.ceil(num_mid / num_in)) - 1)


class AsymmBottleneck(HybridBlock):
    """Asymmetrical bottleneck (an inverted residual with feature reuse).

    ``x -> expand (1x1, num_mid - r*num_in channels) -> concat[x]*r + [e] + [x]*r
    -> depthwise kxk -> [SE] -> linear 1x1 (num_out) [+ x]``.
    The depthwise convolution sees ``num_mid + r*num_in`` channels.

    Parameters
    ----------
    num_in, num_mid, num_out : int
        Input, expansion and output channels.
    kernel_size : int
        Depthwise kernel size: 3, 5 or 7.
    asymmrate : int, default 1
        Copies of the input concatenated on each side of the expanded features.
        0 gives the plain MobileNetV3 inverted residual.  When the copies would
        fill the expansion (``r * num_in >= num_mid``) the block uses the largest
        rate that leaves the expansion at least one channel (see
        :func:`effective_asymmrate`; stored as ``self.asymmrate``); a block with
        ``num_mid == num_in`` has no expansion and reuses nothing.
    act_type : str, default 'relu'
        Activation after the expansion and the depthwise convolution.
    shuffle_group : int, default 0
        If > 1 and features are reused, a channel shuffle with this many groups
        follows the concat (the depthwise width must be divisible by it).
    use_se : bool, default False
        Squeeze-and-excitation after the depthwise convolution.
    strides : int, default 1
        Stride of the depthwise convolution.  The residual add is used when
        ``strides == 1 and num_in == num_out``.
    norm_layer : type, default BatchNorm
        Normalisation block (``BatchNorm`` or ``SyncBatchNorm``).
    norm_kwargs : dict, optional
        Extra arguments for every normalisation layer of the block.
    last_gamma : bool, default False
        Zero-initialise the gamma of the last BatchNorm when the block is
        residual (the block then starts as the identity).
    formulation : str, default 'auto'
        How the reused copies are computed: ``concat`` (the original 4-D
        concat), ``onednn_concat`` (the concat, trainable under oneDNN) or
        ``auto``: chosen per device, mode and feature-map size by
        :func:`~gluon_asymmnet.models.feature_reuse.choose_formulation` (on a
        CPU, inference on large maps computes without the concatenated map).  All
        compute the same function with the same parameters
        (:mod:`gluon_asymmnet.models.feature_reuse`).  A block with a channel
        shuffle always concatenates.
    """

    def __init__(self, num_in, num_mid, num_out, kernel_size=3, asymmrate=1,
                 act_type='relu', shuffle_group=0, use_se=False, strides=1,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, last_gamma=False,
                 formulation='auto', **kwargs):
        super(AsymmBottleneck, self).__init__(**kwargs)
        if kernel_size not in (3, 5, 7):
            raise ValueError('kernel_size must be 3, 5 or 7, got %r' % (kernel_size,))
        if formulation not in FORMULATIONS:
            raise ValueError('formulation must be one of %s, got %r'
                             % (', '.join(FORMULATIONS), formulation))
        if not isinstance(asymmrate, int) or asymmrate < 0:
            raise ValueError('asymmrate must be an int >= 0, got %r' % (asymmrate,))
        if strides not in (1, 2):
            raise ValueError('strides must be 1 or 2, got %r' % (strides,))
        self.num_in, self.num_mid, self.num_out = num_in, num_mid, num_out
        self.asymmrate = effective_asymmrate(num_in, num_mid, asymmrate)
        self.use_se = use_se
        self.use_short_cut_conv = num_in == num_out and strides == 1
        self.do_expand = num_mid != num_in
        self.dw_channels = num_mid + self.asymmrate * num_in if self.do_expand else num_in
        self.do_shuffle = shuffle_group > 1 and self.asymmrate > 0
        self.formulation = formulation
        if self.do_shuffle and self.dw_channels % shuffle_group:
            raise ValueError('shuffle_group=%d does not divide the %d depthwise channels'
                             % (shuffle_group, self.dw_channels))
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        last_norm_kwargs = dict(norm_kwargs or {})
        if last_gamma and self.use_short_cut_conv:
            last_norm_kwargs['gamma_initializer'] = 'zeros'
        with self.name_scope():
            if self.do_expand:
                self.expand = ConvBNAct(num_mid - self.asymmrate * num_in, 1, act_func=act_type,
                                        in_channels=num_in, **norm)
            if self.do_shuffle:
                self.shuffle = ChannelShuffle(shuffle_group, self.dw_channels)
            self.dw_conv = ConvBNAct(self.dw_channels, kernel_size, strides=strides,
                                     groups=self.dw_channels, act_func=act_type,
                                     in_channels=self.dw_channels, **norm)
            if use_se:
                self.se = SqueezeExcitation(self.dw_channels)
            self.pw_conv_linear = ConvBNAct(num_out, 1, act_func=None, in_channels=self.dw_channels,
                                            norm_layer=norm_layer, norm_kwargs=last_norm_kwargs)

    def formulation_for(self, ctx, gradient, input_shape=None):
        """The formulation of the feature reuse on device ``ctx``, for a graph that
        may be differentiated (``gradient``) or not, and an input of
        ``input_shape`` (NCHW, None if unknown)."""
        if self.formulation == 'split' and not self.do_shuffle:
            return 'onednn_concat' if gradient else 'split'
        if self.formulation not in ('auto', 'split'):
            return self.formulation
        if self.do_shuffle:   # the shuffle needs the concatenated map
            return 'concat' if ctx.device_type == 'gpu' else 'onednn_concat'
        elements = None
        if input_shape is not None:
            n, _, h, w = input_shape
            elements = n * h * w * self.dw_channels
        return choose_formulation(ctx, gradient, elements)

    def hybrid_forward(self, F, x):
        if not self.do_expand:
            out = self.pw_conv_linear(self._dw_se(x))
            return x + out if self.use_short_cut_conv else out
        plan = graph_plan(F, x)
        formulation = self.formulation_for(plan.ctx, plan.training, graph_shape(F, x))
        expanded = self.expand(x)
        if formulation == 'split':
            out = split_forward(F, self, x, expanded)
        else:
            parts = [x] * self.asymmrate + [expanded] + [x] * self.asymmrate
            if len(parts) > 1:
                expanded = (channel_concat(F, *parts) if formulation == 'onednn_concat' else
                            F.concat(*parts, dim=1))
            if self.do_shuffle:
                expanded = self.shuffle(expanded)
            out = self.pw_conv_linear(self._dw_se(expanded))
        return x + out if self.use_short_cut_conv else out

    def _dw_se(self, x):
        out = self.dw_conv(x)
        return self.se(out) if self.use_se else out


#: One bottleneck: kernel size, expansion and output channels (at width 1.0),
#: squeeze-excitation, activation, stride.
BlockConfig = collections.namedtuple('BlockConfig', 'kernel exp out se act stride')

#: A whole network: stem channels, the bottlenecks, the last 1x1 conv before the
#: pooling (``cls_ch_squeeze``; 0 for none) and the 1x1 conv after it (``cls_ch_expand``).
ArchConfig = collections.namedtuple('ArchConfig', 'inplanes blocks cls_ch_squeeze cls_ch_expand')

_B = BlockConfig
ASYMMNET_CFGS = {
    'asymmnet_large': ArchConfig(16, (
        _B(3, 16, 16, False, 'relu', 1),
        _B(3, 64, 24, False, 'relu', 2),
        _B(3, 72, 24, False, 'relu', 1),
        _B(5, 72, 40, True, 'relu', 2),
        _B(5, 120, 40, True, 'relu', 1),
        _B(5, 120, 40, True, 'relu', 1),
        _B(3, 240, 80, False, 'hard_swish', 2),
        _B(3, 200, 80, False, 'hard_swish', 1),
        _B(3, 184, 80, False, 'hard_swish', 1),
        _B(3, 184, 80, False, 'hard_swish', 1),
        _B(3, 480, 112, True, 'hard_swish', 1),
        _B(3, 672, 112, True, 'hard_swish', 1),
        _B(5, 672, 160, True, 'hard_swish', 2),
        _B(5, 960, 160, True, 'hard_swish', 1),
        _B(5, 960, 160, True, 'hard_swish', 1),
    ), 960, 1280),
    'asymmnet_small': ArchConfig(16, (
        _B(3, 16, 16, True, 'relu', 2),
        _B(3, 72, 24, False, 'relu', 2),
        _B(3, 88, 24, False, 'relu', 1),
        _B(5, 96, 40, True, 'hard_swish', 2),
        _B(5, 240, 40, True, 'hard_swish', 1),
        _B(5, 240, 40, True, 'hard_swish', 1),
        _B(5, 120, 48, True, 'hard_swish', 1),
        _B(5, 144, 48, True, 'hard_swish', 1),
        _B(5, 288, 96, True, 'hard_swish', 2),
        _B(5, 576, 96, True, 'hard_swish', 1),
        _B(5, 576, 96, True, 'hard_swish', 1),
    ), 576, 1280),
}
del _B


def get_asymmnet_cfgs(model_name):
    """The :class:`ArchConfig` of ``'asymmnet_large'`` or ``'asymmnet_small'``."""
    if model_name not in ASYMMNET_CFGS:
        raise ValueError('%r is not an AsymmNet architecture; choose one of %s'
                         % (model_name, ', '.join(sorted(ASYMMNET_CFGS))))
    return ASYMMNET_CFGS[model_name]


class AsymmNet(GraphPerInput, HybridBlock):
    """AsymmNet (MobileNetV3 when ``asymmrate=0``).

    Hybridized, each call runs the graph of its input's shape and mode
    (:class:`~gluon_asymmnet.models.graphs.GraphPerInput`): on a CPU, inference
    on large batches computes the feature reuse without the concatenated map.

    Parameters
    ----------
    inplanes, cfg, cls_ch_squeeze, cls_ch_expand
        The fields of an :class:`ArchConfig` (``AsymmNet(*cfgs, ...)`` as in the
        original code).
    multiplier : float, default 1.0
        Width multiplier; every channel count except ``cls_ch_expand`` is scaled
        and rounded up to a multiple of 8.
    classes : int, default 1000
    norm_kwargs : dict, optional
        Extra arguments for every normalisation layer.
    last_gamma : bool, default False
        Zero-initialise the last BatchNorm gamma of every residual block.
    asymmrate : int, default 1
        Reused input copies per side in every bottleneck (see :class:`AsymmBottleneck`).
    final_drop : float, default 0
        Dropout before the classifier.
    use_global_stats : bool, default False
        Freeze BatchNorm statistics (sets ``use_global_stats`` in ``norm_kwargs``).
    norm_layer : type, default BatchNorm
    shuffle_group : int, default 0
        Channel-shuffle groups after each concat (0: none).
    formulation : str, default 'auto'
        How every bottleneck computes its feature reuse (see
        :class:`AsymmBottleneck`; ``concat`` is the original code's).

    Attributes
    ----------
    feature_info : list of dict
        For each resolution of the network (strides 2, 4, 8, 16, 32): the index
        in ``features`` of its last block, its ``reduction`` and ``channels``.
    """

    def __init__(self, inplanes, cfg, cls_ch_squeeze, cls_ch_expand, multiplier=1.,
                 classes=1000, norm_kwargs=None, last_gamma=False, asymmrate=1,
                 final_drop=0., use_global_stats=False, name_prefix='',
                 norm_layer=nn.BatchNorm, shuffle_group=0, formulation='auto', **kwargs):
        super(AsymmNet, self).__init__(prefix=name_prefix, **kwargs)
        if multiplier <= 0:
            raise ValueError('multiplier must be > 0, got %r' % (multiplier,))
        norm = network_norm(classes, final_drop, norm_layer, norm_kwargs, use_global_stats)
        self.multiplier, self.asymmrate, self.num_classes = multiplier, asymmrate, classes
        self.feature_info = []
        with self.name_scope():
            self.features = nn.HybridSequential()
            channels = make_divisible(multiplier * inplanes)
            self.features.add(nn.Conv2D(channels, 3, strides=2, padding=1, use_bias=False,
                                        in_channels=3),
                              norm_layer(in_channels=channels, **norm['norm_kwargs']),
                              Activation('hard_swish'))
            record_stage(self.feature_info, len(self.features) - 1, 2, channels)
            reduction = 2
            for block in cfg:
                out = make_divisible(multiplier * block.out)
                reduction *= block.stride
                self.features.add(AsymmBottleneck(
                    channels, make_divisible(multiplier * block.exp), out, block.kernel,
                    asymmrate=asymmrate, act_type=block.act, shuffle_group=shuffle_group,
                    use_se=block.se, strides=block.stride, last_gamma=last_gamma,
                    formulation=formulation, **norm))
                channels = out
                record_stage(self.feature_info, len(self.features) - 1, reduction, channels)
            if cls_ch_squeeze:
                squeeze = make_divisible(multiplier * cls_ch_squeeze)
                self.features.add(nn.Conv2D(squeeze, 1, use_bias=False, in_channels=channels),
                                  norm_layer(in_channels=squeeze, **norm['norm_kwargs']),
                                  Activation('hard_swish'))
                channels = squeeze
                record_stage(self.feature_info, len(self.features) - 1, reduction, channels)
            self.features.add(nn.GlobalAvgPool2D(),
                              nn.Conv2D(cls_ch_expand, 1, use_bias=False, in_channels=channels),
                              Activation('hard_swish'))
            if final_drop > 0:
                self.features.add(nn.Dropout(final_drop))
            self.output = nn.HybridSequential()
            self.output.add(nn.Conv2D(classes, 1, in_channels=cls_ch_expand), nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_asymm_net(cfgs, multiplier=1., asymmrate=1, norm_layer=nn.BatchNorm,
                  norm_kwargs=None, dropout=0.2, **kwargs):
    """Build an AsymmNet from an :class:`ArchConfig` (the original's entry point).

    Parameters
    ----------
    cfgs : ArchConfig
        From :func:`get_asymmnet_cfgs`.
    multiplier : float
        Width multiplier.
    asymmrate : int
        Reused input copies per side (0: MobileNetV3).
    dropout : float, default 0.2
        Dropout before the classifier.
    **kwargs
        ``classes``, ``last_gamma``, ``use_global_stats``, ``shuffle_group``,
        ``formulation``.

    Returns
    -------
    AsymmNet
        Not initialised (call ``initialize``), as in the original; for weights
        use :func:`gluon_asymmnet.get_model` (``pretrained=True``).
    """
    return AsymmNet(*cfgs, multiplier=multiplier, asymmrate=asymmrate, final_drop=dropout,
                    norm_layer=norm_layer, norm_kwargs=norm_kwargs, **kwargs)
