"""How an asymmetrical bottleneck computes its feature reuse: the formulations.

The bottleneck's depthwise convolution, its BatchNorm, activation and the
squeeze-excitation scale all act per channel, and the last 1x1 convolution over
a concatenation is the sum of 1x1 convolutions over its parts.  So the reused
copies of the input need not be materialised in one concatenated feature map:

``split`` (inference)
    Each part (every copy of the input, the expanded features) runs its own
    depthwise convolution, with the block's BatchNorm folded into the slice of
    the weight that belongs to its channels and a bias (``slice_axis`` inside
    the graph: parameter names and shapes are those of the concat
    formulation), and its activation; the last 1x1 convolution is the sum of
    one convolution per part.  Nothing is concatenated but the pooled
    squeeze-excitation vectors (``N x C x 1 x 1``).  A gradient cannot use it:
    BatchNorm updates its running statistics in place, which an operator on a
    slice of them cannot do (MXNet graphs only mutate variables).
``concat``
    The original code: one 4-D channel ``concat`` of ``[x]*r + [e] + [x]*r``.
    What a GPU runs, and the reference the other formulations are tested
    against (with oneDNN off).  It cannot be trained on a CPU with oneDNN on
    (see :func:`~gluon_asymmnet.models.layers.channel_concat`).
``onednn_concat``
    The concat through :func:`~gluon_asymmnet.models.layers.channel_concat`:
    oneDNN's 4-D concat, followed in training graphs by an identity ``clip``
    that hands its backward a plain-layout gradient, since MXNet 1.9.1's
    oneDNN concat backward fails on parts that are not multiples of 16
    channels otherwise.

A network's ``formulation`` argument is one of :data:`FORMULATIONS`: ``split``
(``onednn_concat`` where a gradient is needed), ``concat``, ``onednn_concat`` or
``auto`` (the default), resolved per block and graph by :func:`choose_formulation`
from the graph's plan (:mod:`~gluon_asymmnet.models.graphs`: device, input
shape, mode).  A symbolic trace that knows no input shape (the universal graph,
``net(mx.sym.var('data'))``) never splits.
"""
import mxnet as mx

from .layers import squeeze

__all__ = ['FORMULATIONS', 'SPLIT_MIN_ELEMENTS', 'choose_formulation', 'split_forward',
           'operator_attrs']

#: The values of a network's ``formulation`` argument.
FORMULATIONS = ('auto', 'split', 'concat', 'onednn_concat')


#: The smallest concatenated feature map (elements: batch x channels x height x
#: width) that ``auto`` computes with ``split``: below it, the concat's memory
#: traffic costs less than the operators ``split`` adds (on a 2-core AVX-512 CPU:
#: at batch 1 and 224x224, whose largest map has 1.0M elements, the concat is
#: faster; at batch 32, whose smallest has 1.8M, ``split`` is; see ``bench/README.md``).
SPLIT_MIN_ELEMENTS = 1500000


def choose_formulation(ctx, gradient, concat_elements=None):
    """The formulation ``auto`` means for a graph on device ``ctx``.

    Parameters
    ----------
    ctx : mx.Context
        ``cpu`` (or ``cpu_pinned``/``cpu_shared``) or ``gpu``.
    gradient : bool
        Whether the graph may be differentiated (traced under ``autograd.record()``).
    concat_elements : int, optional
        Elements of the concatenated feature map, if known (a hybridized
        network's graphs know it; a symbol traced from ``mx.sym.var`` does not).

    Returns
    -------
    str
        ``concat`` on a GPU (cuDNN has none of oneDNN's concat problems and
        runs the concat as one kernel); on a CPU ``split`` for inference on maps
        known to have at least :data:`SPLIT_MIN_ELEMENTS` elements, otherwise
        ``onednn_concat``.
    """
    if ctx.device_type == 'gpu':
        return 'concat'
    if gradient or concat_elements is None or concat_elements < SPLIT_MIN_ELEMENTS:
        return 'onednn_concat'
    return 'split'


def _value(F, param, like):
    """``param`` as an operand of ``F``: its symbol, or its data on ``like``'s device."""
    return param.var() if F is mx.sym else param.data(like.context)


def _slice(F, value, axis, begin, width):
    return F.slice_axis(value, axis=axis, begin=begin, end=begin + width)


def split_forward(F, block, x, expanded):
    """The bottleneck from the expansion to the last BatchNorm, without the concat.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    block : AsymmBottleneck
        The block whose parameters are used (``dw_conv``, ``se``, ``pw_conv_linear``).
    x, expanded : NDArray or Symbol
        The block's input and its expanded features.

    Returns
    -------
    NDArray or Symbol
        ``pw_conv_linear`` of the block, before the residual add.
    """
    r, num_in = block.asymmrate, block.num_in
    parts = [x] * r + [expanded] + [x] * r
    widths = [num_in] * r + [block.num_mid - r * num_in] + [num_in] * r
    starts = [sum(widths[:i]) for i in range(len(widths))]
    weight, bias = _folded_depthwise(F, block.dw_conv, x)
    dw_attrs = operator_attrs(block.dw_conv.conv)
    outs = []
    for part, start, width in zip(parts, starts, widths):
        out = F.Convolution(part, _slice(F, weight, 0, start, width),
                            _slice(F, bias, 0, start, width),
                            **dict(dw_attrs, num_filter=width, num_group=width, no_bias=False))
        outs.append(block.dw_conv.act(out))
    if block.use_se:
        pooled = [squeeze(F, out) for out in outs]
        gate = block.se.gate(F, F.concat(*pooled, dim=1))
        outs = [F.broadcast_mul(out, _slice(F, gate, 1, start, width))
                for out, start, width in zip(outs, starts, widths)]
    pw = block.pw_conv_linear.conv
    pw_weight = _value(F, pw.weight, x)
    pw_attrs = operator_attrs(pw)
    total = None
    for out, start, width in zip(outs, starts, widths):
        term = F.Convolution(out, _slice(F, pw_weight, 1, start, width), **pw_attrs)
        total = term if total is None else total + term
    return block.pw_conv_linear.bn(total)


def operator_attrs(layer):
    """The attributes of the operator a Gluon layer runs (``Convolution`` of a
    ``Conv2D``, ``BatchNorm``), as strings: read from its symbol, since the layer
    keeps its own copy private (traced by ``forward``: its hooks do not see the probe)."""
    attrs = layer.forward(mx.sym.var('data')).list_attr()
    return {key: value for key, value in attrs.items() if not key.startswith('__')}


def _folded_depthwise(F, unit, like):
    """Weight and bias of ``unit``'s depthwise convolution with its BatchNorm folded
    in (inference: the running statistics normalise)."""
    bn = unit.bn
    gamma, beta, mean, var = (_value(F, getattr(bn, name), like)
                              for name in ('gamma', 'beta', 'running_mean', 'running_var'))
    attrs = operator_attrs(bn)
    std = F.sqrt(var + float(attrs['eps']))
    scale = F.reciprocal(std) if attrs['fix_gamma'] == 'True' else gamma / std
    weight = F.broadcast_mul(_value(F, unit.conv.weight, like),
                             F.reshape(scale, shape=(-1, 1, 1, 1)))
    return weight, beta - mean * scale
