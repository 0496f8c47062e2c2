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
  16x160x28x28): the squeeze is MXNet's ``mean`` there (:func:`squeeze`).

Inference graphs are unchanged; ``bench/train_step.py`` measures training
steps.  The mathematics is identical.  Blocks carry no parameters of their own beyond their
convolutions and normalisation layers, so structural parameter names follow the attribute
names (``conv``, ``bn``, ``conv1``, ``conv2``) of the original AsymmNet code.
"""
import contextlib
import math
import threading

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

__all__ = ['make_divisible', 'network_norm', 'squeeze', 'Activation', 'ConvBNAct',
           'SqueezeExcitation', 'ChannelShuffle', 'channel_concat', 'inference_graph', 'trainable_graph',
           'device_graph', 'graph_device', 'graph_shape', 'ModeCachedGraphs', 'ACTIVATIONS']


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
    if _no_gradient(F):
        x = F.reshape(x, shape=(0, 0, 0, 0))
    return x * F.hard_sigmoid(x, alpha=1. / 6, beta=0.5)


#: oneDNN's widest channel blocking on AVX-512 (``aBcd16b``).
_ONEDNN_BLOCK = 16


def _bn_input(F, x, channels):
    """``x`` as the input of a BatchNorm over ``channels``: in CPU training graphs
    an identity ``Reshape`` to the plain layout when ``channels`` is a multiple of
    oneDNN's block (see the module docstring), else ``x``."""
    if channels % _ONEDNN_BLOCK or _no_gradient(F) or graph_device(F, x).device_type != 'cpu':
        return x
    return F.reshape(x, shape=(0, 0, 0, 0))


def squeeze(F, x):
    """Global average of each channel, ``N x C x 1 x 1``: oneDNN's ``Pooling`` except
    in CPU training graphs, where its backward is a reference kernel (module docstring)."""
    if not _no_gradient(F) and graph_device(F, x).device_type == 'cpu':
        return F.mean(x, axis=(2, 3), keepdims=True)
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
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel_size, strides=strides,
                                  padding=kernel_size // 2, groups=groups,
                                  use_bias=False, in_channels=in_channels)
            self.bn = norm_layer(in_channels=channels, **(norm_kwargs or {}))
            self.act = Activation(act_func) if act_func else None

    def hybrid_forward(self, F, x):
        out = self.bn(_bn_input(F, self.conv(x), self.conv._channels))
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


_GRAPH_STATE = threading.local()


@contextlib.contextmanager
def _traced_graphs(trainable):
    previous = getattr(_GRAPH_STATE, 'trainable', False)
    _GRAPH_STATE.trainable = trainable
    try:
        yield
    finally:
        _GRAPH_STATE.trainable = previous


def trainable_graph():
    """Ask for graphs that can be differentiated (5-D channel concats, see :func:`channel_concat`).

    A graph traced symbolically outside ``autograd.record()`` is the inference
    graph: ``net(mx.sym.var('data'))``, ``net.export``, GluonCV's
    ``export_block``, or a hybridized block of your own building its cached
    graph.  Its oneDNN ``Concat`` has no working backward on AVX-512, so trace
    inside this context any symbol that will be trained.  GluonCV's
    ``FeatureExpander`` (hence ``SSD``) turns a network into a ``SymbolBlock``
    at construction; to train one::

        with trainable_graph():
            ssd = gluoncv.model_zoo.SSD('asymmnet_large_1.0', ...)

    The same holds for a hybridized block of your own that contains a network
    and is trained: call it under ``autograd.record()`` first, build it inside
    this context, or give it the :class:`ModeCachedGraphs` mixin.
    :class:`ModeCachedGraphs` enters this context by itself when it builds a
    graph under ``autograd.record()``.  A trainable graph computes the same
    values; :func:`gluon_asymmnet.deploy.graph.deploy_symbol` turns it into
    the inference graph.
    """
    return _traced_graphs(True)


def inference_graph():
    """Trace the inference graph even inside :func:`trainable_graph` (what exports use)."""
    return _traced_graphs(False)


def _trainable_now():
    """True when the graph traced now must be trainable."""
    return autograd.is_recording() or getattr(_GRAPH_STATE, 'trainable', False)


@contextlib.contextmanager
def device_graph(ctx, input_shape=None):
    """Trace blocks symbolically for device ``ctx`` and an input of ``input_shape``.

    :class:`ModeCachedGraphs` enters it with the context and shape of its input
    whenever it builds a graph; enter it by hand to trace a symbol for another
    device than ``mx.current_context()`` (see :func:`graph_device`,
    :func:`graph_shape`).

    Parameters
    ----------
    ctx : mx.Context
    input_shape : tuple, optional
        Shape of the network's input, the variable ``data``.
    """
    previous = getattr(_GRAPH_STATE, 'device', (None, None))
    _GRAPH_STATE.device = (ctx, input_shape)
    try:
        yield
    finally:
        _GRAPH_STATE.device = previous


def graph_device(F, x):
    """The device that operators issued now on ``x`` compute on: ``x``'s own when
    imperative, else the one of :func:`device_graph`, else ``mx.current_context()``."""
    if F is mx.nd:
        return x.context
    return getattr(_GRAPH_STATE, 'device', (None, None))[0] or mx.current_context()


def graph_shape(F, x):
    """The shape of ``x``, or None where a traced graph's input shape is unknown."""
    if F is mx.nd:
        return x.shape
    input_shape = getattr(_GRAPH_STATE, 'device', (None, None))[1]
    if input_shape is None:
        return None
    shapes = x.infer_shape_partial(data=input_shape)[1]
    return shapes[0] if shapes and shapes[0] and all(shapes[0]) else None


def _no_gradient(F):
    """True when the operators issued now will never be differentiated."""
    return not autograd.is_recording() if F is mx.nd else not _trainable_now()


#: The private parts of MXNet's ``HybridBlock`` that :class:`ModeCachedGraphs`
#: overrides or swaps, as MXNet 1.9 names them: methods, then instance attributes.
HYBRIDBLOCK_INTERNALS = (('_get_graph', '_clear_cached_op', 'forward', 'export', '_build_cache'),
                         ('_cached_graph', '_cached_op', '_cached_op_args', '_active'))


def check_hybridblock_internals(block_class=HybridBlock, version=mx.__version__):
    """Fail clearly unless ``block_class`` has the internals :class:`ModeCachedGraphs`
    relies on (checked when this module is imported).

    Raises
    ------
    ImportError
        MXNet is not 1.9.x, or a method or attribute of
        :data:`HYBRIDBLOCK_INTERNALS` is missing.
    """
    methods, attributes = HYBRIDBLOCK_INTERNALS
    probe = block_class()
    missing = ([name for name in methods if not callable(getattr(block_class, name, None))]
               + [name for name in attributes if not hasattr(probe, name)])
    if not version.startswith('1.9.') or missing:
        raise ImportError(
            'gluon_asymmnet needs MXNet 1.9.x, whose HybridBlock internals it extends '
            '(ModeCachedGraphs); found MXNet %s%s' % (
                version, ' without HybridBlock.%s' % ', '.join(missing) if missing else ''))


check_hybridblock_internals()


class ModeCachedGraphs(object):
    """Mixin for a HybridBlock: one cached graph for training, one for inference.

    A hybridized Gluon block caches the first graph it builds and runs it for
    every later call.  With this mixin (listed before ``HybridBlock``), a call
    under ``autograd.record()`` (or inside :func:`trainable_graph`) builds (once,
    inside :func:`trainable_graph`) and runs the trainable graph; any other call
    builds (once) and runs the inference graph.  Inference, then training, then
    inference again each run their own graph.  ``export`` always saves the
    inference graph.
    It extends private parts of MXNet 1.9's ``HybridBlock``
    (:data:`HYBRIDBLOCK_INTERNALS`), checked at import by
    :func:`check_hybridblock_internals`.
    """

    def _get_graph(self, *args):
        if self._cached_graph:
            return super()._get_graph(*args)
        trainable = _trainable_now()
        data = args[0]   # symbols (no device, no shape) when export builds a graph
        device = ((data.context, data.shape) if isinstance(data, mx.nd.NDArray) else
                  (None, None))
        with _traced_graphs(trainable), device_graph(*device):
            graph = super()._get_graph(*args)
        self._graph_trainable = trainable
        return graph

    def _clear_cached_op(self):
        super()._clear_cached_op()
        self._graph_trainable = None
        self._other_graph = {}

    def forward(self, x, *args):
        if self._active and isinstance(x, mx.nd.NDArray):
            self._use_graph_for(_trainable_now())
        return super().forward(x, *args)

    def export(self, path, epoch=0, remove_amp_cast=True):
        """``HybridBlock.export`` of the inference graph, whichever graph the latest call ran.

        After training calls only, the inference graph is built here.  For the
        trainable graph, trace ``net(mx.sym.var('data'))`` inside
        :func:`trainable_graph`.
        """
        if self._cached_graph and self._graph_trainable:
            inputs = self._cached_graph[0]
            self._use_graph_for(False)
            if not self._cached_graph:
                with autograd.pause(), inference_graph():
                    self._build_cache(*inputs)
        super().export(path, epoch, remove_amp_cast)

    def _use_graph_for(self, trainable):
        built = getattr(self, '_graph_trainable', None)
        if built is None or built == trainable:
            return
        stash = self.__dict__.setdefault('_other_graph', {})
        stash[built] = (self._cached_graph, self._cached_op, self._cached_op_args)
        self._cached_graph, self._cached_op, self._cached_op_args = stash.pop(
            trainable, ((), None, []))
        self._graph_trainable = trainable if self._cached_graph else None


def channel_concat(F, *parts):
    """Concatenate NCHW tensors along the channel axis, trainable under oneDNN.

    MXNet 1.9.1's oneDNN ``Concat`` backward fails (``could not construct a
    sub-memory``, or SIGFPE) on AVX-512 when the parts are not multiples of 16
    channels.  oneDNN only takes 2-D and 4-D concats, so, when a gradient may be
    needed, the parts are viewed as 5-D ``(N, C, 1, H, W)``: MXNet's own concat
    kernel runs forward and backward, every other operator (convolutions,
    BatchNorm) stays on oneDNN.  Where no gradient can be needed (outside
    ``autograd.record()``, imperatively or in a graph traced outside
    :func:`trainable_graph`) the parts go straight to oneDNN's 4-D ``Concat``,
    which saves the layout reorders of the 5-D views.  The parts are first cast
    to their widest type (``amp_multicast``), a no-op in float32 and what keeps
    bfloat16/float16 AMP from feeding Concat mixed types.  A part repeated (the
    same object) is viewed once.
    """
    unique = []
    for part in parts:
        if not any(part is seen for seen in unique):
            unique.append(part)
    cast = F.amp_multicast(*unique, num_outputs=len(unique))
    cast = [cast] if len(unique) == 1 else list(cast)
    if not _no_gradient(F):
        cast = [F.expand_dims(p, axis=2) for p in cast]
    index = [next(i for i, seen in enumerate(unique) if seen is part) for part in parts]
    out = F.concat(*[cast[i] for i in index], dim=1)
    return out if _no_gradient(F) else F.reshape(out, shape=(0, 0, -3, -2))
