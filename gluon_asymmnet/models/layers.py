"""Building blocks shared by every network of the package.

Activations use MXNet's fused ``hard_sigmoid`` operator (one operator instead of
the ``+3 / clip / 6`` chain of the original code and of GluonCV) and ReLU is the
``Activation`` operator (which oneDNN runs in its blocked layouts, where the
``relu`` operator forces two layout reorders); in inference graphs hard swish
reorders its input to the plain layout once for its two operators.

Training graphs on a CPU avoid two of oneDNN's slow reference kernels (MXNet
1.9.1, oneDNN 2.x, AVX-512), which otherwise take most of a training step:

- BatchNorm backward falls back to ``bnorm_ref`` when its input and its
  incoming gradient are in different blocked layouts: a convolution over
  ``C`` channels (a multiple of 16) writes ``aBcd16b`` while the convolution
  after it, with a channel count that is not, sends its gradient as
  ``aBcd8b`` (0.5 s a call at 16x96x56x56, 100x the jit kernel).  So the
  input of a BatchNorm over a multiple of 16 channels is an identity
  ``Reshape`` (the plain layout), which MXNet reorders to the gradient's
  layout in the backward pass (:func:`_bn_input`).
- The backward of a global average ``Pooling`` whose gradient comes from a
  1x1 convolution (squeeze-excitation) runs ``pooling_v2:ref`` (0.1 s at
  16x160x28x28): the squeeze is MXNet's adaptive average pooling there
  (:func:`squeeze`).

Which graph is a training graph: :mod:`~gluon_asymmnet.models.graphs` (every
symbolic trace outside a plan is one, so that it can be trained).  Inference
graphs are unchanged; ``bench/train_step.py`` measures training steps.  The mathematics is identical.  Blocks carry no parameters of their own beyond their
convolutions and normalisation layers, so structural parameter names follow the attribute
names (``conv``, ``bn``, ``conv1``, ``conv2``) of the original AsymmNet code.
"""
import math

import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .graphs import graph_plan, is_training_graph

__all__ = ['make_divisible', 'network_norm', 'squeeze', 'Activation', 'ConvBNAct',
           'SqueezeExcitation', 'ChannelShuffle', 'channel_concat', 'ACTIVATIONS']


def make_divisible(x, divisible_by=8):
    """Round ``x`` up to a multiple of ``divisible_by`` (the original's rule)."""
    return int(math.ceil(x * 1. / divisible_by) * divisible_by)


def _relu(F, x):
    return F.Activation(x, act_type='relu')


def _relu6(F, x):
    return F.clip(x, 0., 6.)


def _hard_sigmoid(F, x):
    return F.hard_sigmoid(x, alpha=1. / 6, beta=0.5)


def _hard_swish(F, x):
    # Neither operator runs on oneDNN: each would reorder a oneDNN-blocked ``x`` to
    # the plain layout by itself.  In inference graphs the identity Reshape (NCHW)
    # does it once for both.
    if not is_training_graph(F, x):
        x = F.reshape(x, shape=(0, 0, 0, 0))
    return x * F.hard_sigmoid(x, alpha=1. / 6, beta=0.5)


#: oneDNN's widest channel blocking on AVX-512 (``aBcd16b``).
_ONEDNN_BLOCK = 16

#: The bounds of :func:`channel_concat`'s identity ``clip``.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _bn_input(F, x, channels):
    """``x`` as the input of a BatchNorm over ``channels``: in CPU training graphs
    an identity ``Reshape`` to the plain layout when ``channels`` is a multiple of
    oneDNN's block (see the module docstring), else ``x``."""
    plan = graph_plan(F, x)
    if channels % _ONEDNN_BLOCK or not plan.training or plan.ctx.device_type != 'cpu':
        return x
    return F.reshape(x, shape=(0, 0, 0, 0))


def squeeze(F, x):
    """Global average of each channel, ``N x C x 1 x 1``: oneDNN's ``Pooling`` except
    in CPU training graphs, where its backward is a reference kernel (module
    docstring): MXNet's adaptive average pooling there (``mean`` would do as
    well, but MXNet's ONNX exporter writes it in a form that ONNX 1.16 rejects)."""
    plan = graph_plan(F, x)
    if plan.training and plan.ctx.device_type == 'cpu':
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=1)
    return F.Pooling(x, kernel=(1, 1), global_pool=True, pool_type='avg')


def _swish(F, x):
    return x * F.sigmoid(x)


def _sigmoid(F, x):
    return F.sigmoid(x)


def _leaky(F, x):
    return F.LeakyReLU(x, act_type='leaky', slope=0.375)


#: Activation name -> function of ``(F, x)``.
ACTIVATIONS = {
    'relu': _relu,
    'relu6': _relu6,
    'hard_sigmoid': _hard_sigmoid,
    'hard_swish': _hard_swish,
    'swish': _swish,
    'sigmoid': _sigmoid,
    'leaky': _leaky,
}


class Activation(HybridBlock):
    """Activation by name: one of :data:`ACTIVATIONS`, on NCHW feature maps.

    Parameters
    ----------
    act_func : str
        ``relu``, ``relu6``, ``hard_sigmoid``, ``hard_swish``, ``swish``,
        ``sigmoid`` or ``leaky``.
    """

    def __init__(self, act_func, **kwargs):
        super(Activation, self).__init__(**kwargs)
        if act_func not in ACTIVATIONS:
            raise ValueError('unknown activation %r; choose one of %s'
                             % (act_func, ', '.join(sorted(ACTIVATIONS))))
        self.act_func = act_func
        self._fn = ACTIVATIONS[act_func]

    def hybrid_forward(self, F, x):
        return self._fn(F, x)

    def __repr__(self):
        return '%s(%s)' % (self.__class__.__name__, self.act_func)


class ConvBNAct(HybridBlock):
    """Convolution without bias, normalisation, optional activation.

    Children are named ``conv``, ``bn`` (and ``act``), as ``_Unit`` in the
    original code, so parameter files are interchangeable.

    Parameters
    ----------
    channels : int
        Output channels.
    kernel_size, strides, groups : int
        Convolution geometry; padding keeps the spatial size at stride 1.
    act_func : str or None
        Activation name, or None for a linear unit.
    norm_layer : type
        ``BatchNorm`` or ``SyncBatchNorm`` (any Gluon normalisation block).
    norm_kwargs : dict or None
        Extra arguments for ``norm_layer`` (e.g. ``use_global_stats``).
    in_channels : int
        Input channels (0 to infer at first forward).
    """

    def __init__(self, channels, kernel_size=1, strides=1, groups=1, act_func='relu',
                 norm_layer=nn.BatchNorm, norm_kwargs=None, in_channels=0, **kwargs):
        super(ConvBNAct, self).__init__(**kwargs)
        self.channels = channels
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel_size, strides=strides,
                                  padding=kernel_size // 2, groups=groups,
                                  use_bias=False, in_channels=in_channels)
            self.bn = norm_layer(in_channels=channels, **(norm_kwargs or {}))
            self.act = Activation(act_func) if act_func else None

    def hybrid_forward(self, F, x):
        out = self.bn(_bn_input(F, self.conv(x), self.channels))
        return self.act(out) if self.act is not None else out


class SqueezeExcitation(HybridBlock):
    """Squeeze-and-excitation of MobileNetV3: pool, 1x1 conv, relu, 1x1 conv,
    hard sigmoid, channel-wise scale.

    Parameters
    ----------
    channels : int
        Channels of the input (and output).
    ratio : int
        Reduction ratio; the hidden width is
        ``make_divisible(channels // ratio, divisible_by)``.
    divisible_by : int, default 8
        Rounding of the hidden width (1: ``channels // ratio``, as GhostNet).
    """

    def __init__(self, channels, ratio=4, divisible_by=8, **kwargs):
        super(SqueezeExcitation, self).__init__(**kwargs)
        hidden = make_divisible(channels // ratio, divisible_by)
        with self.name_scope():
            self.conv1 = nn.Conv2D(hidden, 1, in_channels=channels)
            self.conv2 = nn.Conv2D(channels, 1, in_channels=hidden)

    def gate(self, F, pooled):
        """The per-channel scale (``N x C x 1 x 1``) of pooled features."""
        return _hard_sigmoid(F, self.conv2(_relu(F, self.conv1(pooled))))

    def hybrid_forward(self, F, x):
        return F.broadcast_mul(x, self.gate(F, squeeze(F, x)))


def network_norm(classes, dropout, norm_layer, norm_kwargs, use_global_stats):
    """Check a classifier network's ``classes``/``dropout``; its normalisation arguments.

    Returns
    -------
    dict
        ``norm_layer`` and ``norm_kwargs`` (with ``use_global_stats`` merged in)
        for :class:`ConvBNAct` and the other blocks.

    Raises
    ------
    ValueError
        ``classes < 1`` or ``dropout`` outside ``[0, 1)``.
    """
    if classes < 1:
        raise ValueError('classes must be >= 1, got %r' % (classes,))
    if not 0 <= dropout < 1:
        raise ValueError('dropout must be in [0, 1), got %r' % (dropout,))
    norm_kwargs = dict(norm_kwargs or {})
    if use_global_stats:
        norm_kwargs['use_global_stats'] = True
    return dict(norm_layer=norm_layer, norm_kwargs=norm_kwargs)


class ChannelShuffle(HybridBlock):
    """ShuffleNet channel shuffle with ``groups`` groups of an NCHW map of ``channels``.

    Written with plain reshapes, a swap of two axes and ``reshape_like`` (no
    ``-4``/``-3`` reshape codes, which MXNet's ONNX exporter cannot convert), so
    the graph exports to ONNX and runs in ONNX Runtime and OpenCV DNN. (A
    ``transpose`` there makes the backward pass of a hybridized network fail in
    MXNet 1.9.1's oneDNN: "could not create a primitive descriptor for a reorder
    primitive"; ``swapaxes`` does the same without oneDNN.)
    """

    def __init__(self, groups, channels, **kwargs):
        super(ChannelShuffle, self).__init__(**kwargs)
        if channels % groups:
            raise ValueError('%d groups do not divide %d channels' % (groups, channels))
        self.groups, self.channels = groups, channels

    def hybrid_forward(self, F, x):
        y = F.reshape(x, shape=(0, self.groups, self.channels // self.groups, -1))
        y = F.swapaxes(y, 1, 2)
        return F.reshape_like(y, x)


def channel_concat(F, *parts):
    """Concatenate NCHW tensors along the channel axis, trainable under oneDNN.

    MXNet 1.9.1's oneDNN ``Concat`` backward fails (``could not construct a
    sub-memory``, or SIGFPE) on AVX-512 when the parts are not multiples of 16
    channels and the incoming gradient is in a blocked layout.  So in training
    graphs the concat's output passes an identity ``clip`` (to the float32
    range), which oneDNN does not run: its backward hands the concat a gradient
    in the plain layout, from which oneDNN slices the parts' gradients (an
    identity ``Reshape`` or ``identity`` does not: their oneDNN copies keep the
    blocked layout).  Inference graphs concatenate only.  Both are one 4-D
    ``Concat`` (and an ONNX ``Clip``), which MXNet's ONNX exporter converts.
    The parts are first cast to their widest type (``amp_multicast``), a no-op
    in float32 and what keeps bfloat16/float16 AMP from feeding Concat mixed
    types.  A part repeated (the same object) is cast once.
    """
    unique = []
    for part in parts:
        if not any(part is seen for seen in unique):
            unique.append(part)
    cast = F.amp_multicast(*unique, num_outputs=len(unique))
    cast = [cast] if len(unique) == 1 else list(cast)
    index = [next(i for i, seen in enumerate(unique) if seen is part) for part in parts]
    out = F.concat(*[cast[i] for i in index], dim=1)
    if is_training_graph(F, parts[0]):
        out = F.clip(out, -_FLOAT32_MAX, _FLOAT32_MAX)
    return out
