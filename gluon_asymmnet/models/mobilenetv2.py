"""MobileNetV2 built from asymmetrical bottlenecks: the paper's ablation.

With ``asymmrate=0`` this is MobileNetV2; the plain baseline of the zoo is
GluonCV's own ``mobilenetv2_*`` (not re-implemented here).  Channel counts
follow the original ``models/mobilenetv2.py`` (``int(c * multiplier)``).
"""
import collections

from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .asymmnet import AsymmBottleneck
from .features import record_stage
from .graphs import GraphPerInput
from .layers import ConvBNAct

__all__ = ['MobileNetV2Asymm', 'InvertedResidual', 'MOBILENETV2_BLOCKS']

#: One MobileNetV2 inverted residual: expansion factor, output channels (width
#: 1.0), stride.
InvertedResidual = collections.namedtuple('InvertedResidual', 't out stride')

#: MobileNetV2's 17 bottlenecks.
MOBILENETV2_BLOCKS = tuple(InvertedResidual(*b) for b in (
    (1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)))


class MobileNetV2Asymm(GraphPerInput, HybridBlock):
    """MobileNetV2 whose inverted residuals are :class:`AsymmBottleneck` blocks.

    Parameters
    ----------
    multiplier : float, default 1.0
        Width multiplier (``int(c * multiplier)``, as MobileNetV2 does).
    classes : int, default 1000
    asymmrate : int, default 1
        Reused input copies per side (0: MobileNetV2).
    norm_layer : type, default BatchNorm
    norm_kwargs : dict, optional
    last_gamma : bool, default False
        Zero-initialise the last BatchNorm gamma of every residual block.
    dropout : float, default 0
        Dropout before the classifier.
    formulation : str, default 'auto'
        How the bottlenecks compute their feature reuse (see :class:`AsymmBottleneck`).

    Attributes
    ----------
    feature_info : list of dict
        As :attr:`AsymmNet.feature_info`.
    """

    def __init__(self, multiplier=1.0, classes=1000, asymmrate=1, norm_layer=nn.BatchNorm,
                 norm_kwargs=None, last_gamma=False, dropout=0., formulation='auto', **kwargs):
        super(MobileNetV2Asymm, self).__init__(**kwargs)
        if multiplier <= 0 or classes < 1 or not 0 <= dropout < 1:
            raise ValueError('need multiplier > 0, classes >= 1 and 0 <= dropout < 1')
        self.multiplier, self.asymmrate, self.num_classes = multiplier, asymmrate, classes
        norm = dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        last = int(1280 * multiplier) if multiplier > 1.0 else 1280
        self.feature_info = []
        with self.name_scope():
            self.features = nn.HybridSequential()
            channels = int(32 * multiplier)
            self.features.add(ConvBNAct(channels, 3, strides=2, act_func='relu6',
                                        in_channels=3, **norm))
            reduction = 2
            self.feature_info.append(dict(index=0, reduction=2, channels=channels))
            for block in MOBILENETV2_BLOCKS:
                out = int(block.out * multiplier)
                self.features.add(AsymmBottleneck(
                    channels, channels * block.t, out, 3, asymmrate=asymmrate, act_type='relu6',
                    strides=block.stride, last_gamma=last_gamma, formulation=formulation,
                    **norm))
                channels = out
                reduction *= block.stride
                record_stage(self.feature_info, len(self.features) - 1, reduction, channels)
            self.features.add(ConvBNAct(last, 1, act_func='relu6', in_channels=channels, **norm))
            record_stage(self.feature_info, len(self.features) - 1, reduction, last)
            self.features.add(nn.GlobalAvgPool2D())
            if dropout > 0:
                self.features.add(nn.Dropout(dropout))
            self.output = nn.HybridSequential()
            self.output.add(nn.Conv2D(classes, 1, use_bias=False, in_channels=last), nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))
