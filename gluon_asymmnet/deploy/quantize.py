"""Post-training INT8 quantization: MXNet oneDNN and ONNX Runtime.

MXNet (oneDNN)
--------------
On MXNet 1.9.1 a plain ``quantize_net(net, calib_mode='naive', calib_data=...)``
fails on AsymmNet in several ways; the working configuration (:data:`MXNET_CONFIG`):

* calibration needs an ``mx.io.DataIter`` whose arrays live on ``cpu(0)``
  (``ImageRecordIter`` gives ``cpu_pinned`` arrays, which the CachedOp rejects)
  and that has no label: :func:`calibration_iter` copies N images into an
  ``NDArrayIter``;
* the Gluon result of ``quantize_net``/``quantize_net_v2`` exports an empty
  parameter file, so the symbolic ``quantize_model_mkldnn`` is used, then
  ``optimize_for('MKLDNN_QUANTIZE')``: its graph and parameters save and load
  with ``SymbolBlock.imports``;
* ``quantized_dtype='auto'`` (and ``'uint8'``) stops at run time with
  ``data type do not match ... unsigned char v.s. given char``: the reused input
  copies of the concat are signed, the expansion's relu output unsigned. Use
  ``'int8'``;
* the channel ``Concat`` stays in float32 (``excluded_op_names=['Concat']``), and
  so do (excluded by name, :func:`_float_layers`) the squeeze-excitation layers
  (they act on 1x1 maps: no speed to gain), the depthwise convolutions and the
  classifier. oneDNN gives a depthwise convolution one weight scale for all its
  channels, whose ranges differ by orders of magnitude once batch
  normalisation is folded in; the classifier's logits are where a coarse scale
  flips the most predictions. Quantizing either cost 6-16 points of top-1 on
  two of four seeds (below); the pointwise convolutions, where the MACs are,
  stay INT8.

Naive calibration (min/max) is the one that works (the only one offered):
entropy calibration makes a
convolution receive ``uint8`` data with a negative calibrated minimum
(``Expect int8 when data_min < 0.0``) and fails at the first forward. Per-tensor
scales (``'tensor-wise'``) keep more accuracy than ``'channel-wise'`` here.
The graph is first made plain (:func:`gluon_asymmnet.deploy.graph.deploy_symbol`).

ONNX Runtime
------------
``onnxruntime.quantization.quantize_static`` of our ONNX file (QDQ format,
signed int8 weights with one scale per output channel, unsigned int8
activations with one scale per tensor, min/max calibration), after
``quant_pre_process`` (needs the ``ml_dtypes`` package). One weight scale per
tensor is not enough for the depthwise convolutions once batch normalisation
is folded into them: their channels' ranges differ by orders of magnitude, and
on one of four seeds it sent top-1 to chance. Measured on AsymmNet-S x0.5
trained on the digits as ``tests/test_quantize.py`` does (10 epochs, seeds
0-3, 320 calibration images, 360 validation images; float32 top-1 94.17,
91.39, 92.78, 94.72%): per-channel weights 95.56, 89.72, 92.78, 94.17%;
per-tensor 94.44, 10.00, 91.94%; int8 activations or percentile/entropy
calibration no better. The same seeds on the MXNet path: 94.72, 90.83, 91.94,
93.89%; with the depthwise convolutions and the classifier quantized too,
94.72, 85.00, 77.78, 94.44%.

ONNX Runtime has no integer hard sigmoid: after ``quantize_static`` each hard
swish ``x * HardSigmoid(x)`` ran in float32 between a ``DequantizeLinear`` and
a ``QuantizeLinear``. :func:`integer_hard_sigmoids` rewrites them into an
addition that ONNX Runtime runs as ``QLinearAdd`` (AsymmNet-L x1.0, batch 32,
kernel time in one profile: 155 to 137 ms; float32 about 230 ms).
The command is ``python -m gluon_asymmnet.quantize``.
"""
import json
import logging
import os
import shutil
import tempfile

import mxnet as mx
import numpy as np

from ..data import batches
from ..errors import DataError
from .graph import net_symbol, symbol_block
from .info import ExportInfo
from .onnx import drop_unused_initializers, graph_index, load_onnx, require_onnxruntime

__all__ = ['MXNET_CONFIG', 'calibration_iter', 'quantize_symbol', 'quantize_mxnet',
           'quantize_onnx', 'integer_hard_sigmoids']

#: The ``quantize_model_mkldnn`` arguments that work for AsymmNet on MXNet 1.9.1
#: (plus the layers of :func:`_float_layers`, excluded by name).
MXNET_CONFIG = dict(quantized_dtype='int8', quantize_mode='full',
                    quantize_granularity='tensor-wise', excluded_op_names=['Concat'])
_SQUEEZE_EXCITATION = 'squeezeexcitation'
#: The names of what :func:`integer_hard_sigmoids` adds to a graph start with this.
_PREFIX = 'integer_hard_sigmoid_'


def _float_layers(symbol):
    """The names of the layers of ``symbol`` that stay float32 (see the module's docstring):
    squeeze-excitation, depthwise convolutions and the classifier (the last convolution or
    fully connected layer)."""
    layers = [node for node in json.loads(symbol.tojson())['nodes']
              if node['op'] in ('Convolution', 'FullyConnected')]
    kept = [node['name'] for node in layers
            if _SQUEEZE_EXCITATION in node['name'] or node['attrs'].get('num_group', '1') != '1']
    return kept + [layers[-1]['name']] if layers else kept


def calibration_iter(source, num_images, batch_size=32):
    """An ``NDArrayIter`` on ``cpu(0)`` over the first ``num_images`` images of ``source``.

    Parameters
    ----------
    source : mx.io.DataIter or gluon.data.DataLoader, or a numpy array
        Normalised ``(N, 3, H, W)`` images (read with :func:`gluon_asymmnet.data.batches`).
    num_images : int
    batch_size : int
    """
    if isinstance(source, np.ndarray):
        images = source[:num_images]
    else:
        parts, count = [], 0
        for data, _ in batches(source):
            parts.append(data.asnumpy())
            count += len(parts[-1])
            if count >= num_images:
                break
        if not parts:
            raise DataError('no calibration images')
        images = np.concatenate(parts)[:num_images]
    return mx.io.NDArrayIter(images.astype(np.float32), None,
                             batch_size=min(batch_size, len(images)), last_batch_handle='discard')


def quantize_symbol(net, calib, num_calib_images=None):
    """INT8 oneDNN graph of ``net`` (a HybridBlock or SymbolBlock), with :data:`MXNET_CONFIG`.

    Parameters
    ----------
    net : HybridBlock
        Float32, initialised, taking normalised NCHW input named ``data``.
    calib : mx.io.DataIter
        From :func:`calibration_iter`.
    num_calib_images : int, optional
        Default: every image of ``calib``.

    Returns
    -------
    (mx.sym.Symbol, dict, dict)
        The quantized graph (fused by ``MKLDNN_QUANTIZE``) and its arg/aux
        parameters: save them with ``mx.model.save_checkpoint(prefix, 0, ...)``
        for ``SymbolBlock.imports``.
    """
    from mxnet.contrib.quantization import quantize_model_mkldnn
    symbol, args, aux = net_symbol(net)
    calib.reset()
    qsym, qargs, qaux = quantize_model_mkldnn(
        symbol, args, aux, ctx=mx.cpu(), label_names=(),
        excluded_sym_names=_float_layers(symbol),
        calib_mode='naive', calib_data=calib, num_calib_examples=num_calib_images,
        **MXNET_CONFIG)
    return qsym.optimize_for('MKLDNN_QUANTIZE'), qargs, qaux


def quantize_mxnet(net, calib, num_calib_images=None):
    """:func:`quantize_symbol` as a ``SymbolBlock``, hybridized with static alloc/shape."""
    block = symbol_block(*quantize_symbol(net, calib, num_calib_images))
    block.hybridize(static_alloc=True, static_shape=True)
    return block


class _Reader:
    """ONNX Runtime calibration reader over an ``NDArrayIter``; a graph input of a fixed
    batch size (``PREFIX-batch1.onnx``) gets the images in pieces of that size."""

    def __init__(self, calib, graph_input, info):
        calib.reset()
        size = graph_input.shape[0]
        batches = [info.to_graph_input(batch.data[0].asnumpy()) for batch in calib]
        if isinstance(size, int):
            batches = [batch[i:i + size] for batch in batches
                       for i in range(0, len(batch) - size + 1, size)]
        self._batches = iter(batches)
        self._input_name = graph_input.name

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


def quantize_onnx(src, dst, calib, info=None):
    """ONNX Runtime static INT8 quantization of ``src`` into ``dst``.

    Parameters
    ----------
    src : str
        Float32 ONNX file (dynamic batch, or a fixed one: see :class:`_Reader`).
    dst : str
    calib : mx.io.DataIter
        Normalised NCHW images (:func:`calibration_iter`).
    info : ExportInfo, optional
        How the graph takes its input (default: the record in ``src``).
    """
    require_onnxruntime()
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    session, recorded = load_onnx(src)
    info = info or recorded or ExportInfo(preprocess=False, layout='CHW')
    folder = tempfile.mkdtemp()
    try:
        prepared = os.path.join(folder, 'prepared.onnx')
        # quant_pre_process logs a traceback for an optimisation it then skips (it goes
        # on unoptimised); what fails for good fails later, as one error
        pre_process_log = logging.getLogger('onnxruntime.quantization.shape_inference')
        pre_process_log.disabled = True
        try:
            quant_pre_process(src, prepared, skip_symbolic_shape=True)
        finally:
            pre_process_log.disabled = False
        quantize_static(prepared, dst, _Reader(calib, session.get_inputs()[0], info),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    model = onnx.load(src)
    quantized = onnx.load(dst)
    integer_hard_sigmoids(quantized)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, dst)
    return dst


def integer_hard_sigmoids(model):
    """Rewrite each quantized ``HardSigmoid`` as an addition that runs on integers.

    ``HardSigmoid(x) = clip(alpha * x + beta, 0, 1)`` is ``clip(x + beta / alpha, 0,
    1 / alpha)`` scaled by ``alpha``.  Where a ``HardSigmoid`` (``alpha > 0``,
    ``beta > 0``) reads a ``DequantizeLinear`` and only a ``QuantizeLinear`` to
    ``uint8`` reads it, that ``QuantizeLinear`` now takes ``x + beta / alpha``
    with scale ``1 / (255 alpha)`` and zero point 0: its saturation to [0, 255] is
    the clip.  The ``DequantizeLinear`` s after it read those bytes with scale
    1/255: the hard sigmoid's values, on the 256 levels that a ``uint8`` in [0, 1]
    has.  ONNX Runtime runs ``DequantizeLinear``, ``Add`` and ``QuantizeLinear`` as
    one ``QLinearAdd`` (the constant is quantized exactly); any other runtime of
    the Quantize-DeQuantize format computes the same values in float.  The
    constant has one dimension: OpenCV's importer (4.8) rejects a scalar there.

    Parameters
    ----------
    model : onnx.ModelProto
        A Quantize-DeQuantize graph (``quantize_static``), changed in place.

    Returns
    -------
    int
        The number of ``HardSigmoid`` s rewritten.
    """
    from onnx import TensorProto, helper, numpy_helper
    graph = model.graph
    producers, uses, initializers = graph_index(graph)

    def constant(name, value, dtype):
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(np.array(value, dtype), name)
            graph.initializer.append(initializers[name])
        return name

    def uint8_quantize(node):
        if node is None or node.op_type != 'QuantizeLinear' or len(node.input) < 3:
            return False
        zero = initializers.get(node.input[2])
        return zero is not None and zero.data_type == TensorProto.UINT8 and not zero.dims

    nodes, rewritten = [], 0
    for node in graph.node:
        if node.op_type != 'HardSigmoid':
            nodes.append(node)
            continue
        readers = uses.get(node.output[0], [])
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        alpha, beta = attrs.get('alpha', 0.2), attrs.get('beta', 0.5)
        source = producers.get(node.input[0])
        if (source is None or source.op_type != 'DequantizeLinear' or alpha <= 0
                or beta <= 0 or len(readers) != 1 or not uint8_quantize(readers[0])
                or not all(user is not None and user.op_type == 'DequantizeLinear'
                           for user in uses.get(readers[0].output[0], [None]))):
            nodes.append(node)
            continue
        zero = constant(_PREFIX + 'zero', 0, np.uint8)
        offset = np.float32(beta / alpha)
        tag = _PREFIX + ('%g' % offset).replace('.', '_')
        shift = tag + '_offset'
        if shift not in producers:
            nodes.append(helper.make_node(
                'DequantizeLinear', [constant(shift + '_quantized', [255], np.uint8),
                                     constant(shift + '_scale', offset / 255, np.float32),
                                     zero],
                [shift], name=shift))
            producers[shift] = nodes[-1]
        nodes.append(helper.make_node('Add', [node.input[0], shift], list(node.output),
                                      name=node.name + '_offset'))
        readers[0].input[1:] = [constant('%s_range_scale_%g' % (tag, alpha),
                                         1 / (255 * alpha), np.float32), zero]
        for user in uses[readers[0].output[0]]:
            user.input[1:] = [constant(_PREFIX + 'unit_scale', 1 / 255, np.float32), zero]
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        drop_unused_initializers(graph)
    return rewritten
