"""ONNX: export through MXNet's own exporter, check in ONNX Runtime, load.

Parameters are initializers, never graph inputs (the only input is ``data``),
so ONNX Runtime can fold constants. Each file is checked in ONNX Runtime
against MXNet (logits within :data:`ONNX_TOLERANCE` of the largest logit, same
top-1) before it counts as written.

The files also run in OpenCV DNN (``cv2.dnn.readNetFromONNX``, 4.8 to 5.0):
:func:`fold_gate_hard_sigmoids` keeps OpenCV from taking the squeeze-excitation
gates for hard swishes.  :func:`fold_constants` computes, at export, every
operator whose inputs are all parameters (the BatchNorm folded into the slices
of a depthwise weight that the feature reuse without the concatenated map
computes in its graph), so that each convolution's weight is an initializer:
what quantizers (one scale per output channel) and OpenCV need;
:func:`fold_summed_batchnorms` folds the BatchNorm that ends each such block
into its convolutions (ONNX Runtime would run it alone).
"""
import json
import os

import mxnet as mx
import numpy as np

from ..errors import UsageError
from ..models.graphs import graph_key
from .graph import deploy_symbol, symbol_block
from .info import META_KEY, parse_info

__all__ = ['export_onnx', 'fold_constants', 'fold_summed_batchnorms',
           'fold_gate_hard_sigmoids', 'load_onnx',
           'require_onnxruntime', 'ONNX_TOLERANCE', 'ONNX_EXTRA']

#: Largest logit difference accepted between MXNet and ONNX Runtime, relative to
#: the largest logit (at least 1).
ONNX_TOLERANCE = 1e-4


#: How to install ONNX and ONNX Runtime: the ``onnx`` extra of ``setup.py``.
ONNX_EXTRA = ("pip install 'gluon-asymmnet[onnx]' (from the repository: "
              "pip install -c constraints.txt '.[onnx]')")


def require_onnxruntime():
    """``import onnxruntime`` after checking that ``onnx`` imports too (every ONNX path needs
    both), or a :class:`UsageError` naming the one missing and the extra that brings it.

    Returns
    -------
    module
        ``onnxruntime``.
    """
    import importlib
    modules = []
    for name in ('onnx', 'onnxruntime'):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            raise UsageError('%s is not installed: ONNX export, ONNX Runtime and its INT8 need '
                             'the onnx extra: %s' % (name, ONNX_EXTRA)) from None
    return modules[-1]


def export_onnx(mxnet_prefix, prefix, info, batch1_prefix=None):
    """Convert ``mxnet_prefix-symbol.json``/``-0000.params`` to checked ONNX files.

    Writes ``PREFIX.onnx`` (dynamic batch) and ``PREFIX-batch1.onnx`` (batch 1),
    with ``info`` in their metadata, and checks both in ONNX Runtime against MXNet.

    Parameters
    ----------
    mxnet_prefix : str
        The graph of ``PREFIX.onnx``.
    prefix : str
    info : ExportInfo
    batch1_prefix : str, optional
        The graph of ``PREFIX-batch1.onnx`` (default: ``mxnet_prefix``'s).  Where
        both graphs are equal, it is converted once and the batch fixed after.

    Returns
    -------
    list of str

    Raises
    ------
    UsageError
        ``onnx`` or ``onnxruntime`` is not installed (:func:`require_onnxruntime`).
    """
    require_onnxruntime()
    import onnx
    shape = tuple(info['input_shape'])
    model, reference = _convert(mxnet_prefix, prefix + '.onnx', shape, info, dynamic=True)
    single, single_reference = _batch_of_one(model), reference
    if batch1_prefix is not None and (graph_key(mx.sym.load(batch1_prefix + '-symbol.json'))
                                      != graph_key(mx.sym.load(mxnet_prefix + '-symbol.json'))):
        single, single_reference = _convert(batch1_prefix, prefix + '-batch1.onnx', shape, info,
                                            dynamic=False)
    written = []
    for path, graph, block, batch in ((prefix + '.onnx', model, reference, 2),
                                      (prefix + '-batch1.onnx', single, single_reference, 1)):
        onnx.checker.check_model(graph)
        onnx.save(graph, path)
        _check_onnx(path, block, shape, batch=batch)
        written.append(path)
    return written


def _convert(mxnet_prefix, path, shape, info, dynamic):
    """MXNet's exporter on ``mxnet_prefix``: the ONNX model (parameters as
    initializers, constants and gates folded, ``info`` in its metadata) and the
    ``SymbolBlock`` it is checked against."""
    import onnx
    symbol, args, aux = mx.model.load_checkpoint(mxnet_prefix, 0)
    reference = symbol_block(symbol, args, aux)
    symbol = deploy_symbol(symbol, for_onnx=True)
    extra = dict(dynamic=True, dynamic_input_shapes=[(None,) + shape[1:]]) if dynamic else {}
    mx.onnx.export_model(symbol, dict(args, **aux), in_shapes=[shape], in_types=[np.float32],
                         onnx_file_path=path, **extra)
    model = onnx.load(path)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    fold_constants(model)
    fold_summed_batchnorms(model)
    fold_gate_hard_sigmoids(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(info)
    return model, reference


def _batch_of_one(model):
    """A copy of the dynamic-batch ``model`` whose input and outputs have batch 1.

    MXNet's exporter writes the same nodes with ``dynamic=False``; converting
    once and fixing the shapes here halves the export time.
    """
    from onnx import ModelProto, shape_inference
    fixed = ModelProto()
    fixed.CopyFrom(model)
    for value in list(fixed.graph.input) + list(fixed.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(fixed).graph.output
    del fixed.graph.output[:]
    fixed.graph.output.extend(inferred)
    return fixed


def fold_constants(model):
    """Replace every operator whose inputs are all initializers by its output, computed.

    Operators fed only by initializers and by operators so replaced are
    evaluated with ONNX's reference implementation
    (``onnx.reference.ReferenceEvaluator``) at the model's opset; initializers
    that nothing uses any more are removed.

    Parameters
    ----------
    model : onnx.ModelProto
        Changed in place.

    Returns
    -------
    int
        The number of operators folded.
    """
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator
    graph = model.graph
    opset = {entry.domain or '': entry.version for entry in model.opset_import}
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    outputs = {value.name for value in graph.output}
    kept, computed = [], []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if (node.domain not in ('', 'ai.onnx') or not inputs or not all(
                name in values for name in inputs) or any(name in outputs for name in node.output)):
            kept.append(node)
            continue
        results = ReferenceEvaluator(node, opsets=opset).run(
            None, {name: values[name] for name in inputs})
        for name, result in zip(node.output, results):
            values[name] = np.asarray(result)
            computed.append(name)
    if len(kept) == len(graph.node):
        return 0
    folded = len(graph.node) - len(kept)
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(values[name], name) for name in computed)
    drop_unused_initializers(graph)
    return folded


def graph_index(graph):
    """``(producers, uses, initializers)`` of ``graph``: the node writing each value,
    the nodes reading it (None for a graph output), the initializers by name."""
    producers = {name: node for node in graph.node for name in node.output}
    uses = {}
    for node in graph.node:
        for name in node.input:
            uses.setdefault(name, []).append(node)
    for output in graph.output:
        uses.setdefault(output.name, []).append(None)
    return producers, uses, {init.name: init for init in graph.initializer}


def drop_unused_initializers(graph):
    """Remove the initializers of ``graph`` that no node reads."""
    used = {name for node in graph.node for name in node.input}
    survivors = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(survivors)


def fold_gate_hard_sigmoids(model):
    """Fold the scale and offset of gating ``HardSigmoid`` s into the ``Conv`` before them.

    OpenCV's ONNX importer (4.8 to 5.0 at least) fuses any ``Mul(a, HardSigmoid(b))``
    with ``alpha=1/6, beta=0.5`` into ``HardSwish(b)`` without checking that ``a``
    is ``b``: the squeeze-excitation gate ``x * HardSigmoid(conv(pool(x)))``
    becomes ``HardSwish(conv(pool(x)))``, an ``(N, C, 1, 1)`` tensor, and the
    logits come out wrong.  Each ``HardSigmoid`` that gates another tensor (a
    ``Mul`` whose other input is not the ``HardSigmoid`` 's own input) and is
    fed by a ``Conv`` used by nothing else becomes ``HardSigmoid(alpha=1,
    beta=0)`` of that ``Conv`` with weight ``alpha * W`` and bias
    ``alpha * b + beta``: the same values and the same number of operators, which
    no importer can take for a hard swish.  Hard swishes (``Mul(x,
    HardSigmoid(x))``) are left as they are.

    Parameters
    ----------
    model : onnx.ModelProto
        Changed in place.

    Returns
    -------
    int
        The number of gates folded.
    """
    from onnx import helper
    graph = model.graph
    producers, uses, initializers = graph_index(graph)
    folded = 0
    for node in graph.node:
        if node.op_type != 'HardSigmoid' or not any(
                user is not None and user.op_type == 'Mul' and node.input[0] not in user.input
                for user in uses.get(node.output[0], [])):
            continue
        conv = producers.get(node.input[0])
        if conv is None or conv.op_type != 'Conv' or len(uses[node.input[0]]) != 1:
            continue
        if not _owns_parameters(conv, uses, initializers):
            continue
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        alpha, beta = attrs.get('alpha', 0.2), attrs.get('beta', 0.5)
        if (alpha, beta) == (1., 0.):   # folded already
            continue
        _scale_convolution(graph, initializers, conv, alpha, beta)
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute('alpha', 1.0),
                               helper.make_attribute('beta', 0.0)])
        folded += 1
    return folded


def fold_summed_batchnorms(model):
    """Fold each ``BatchNormalization`` of a sum of ``Conv`` s into those convolutions.

    The feature reuse without the concatenated map ends each block with
    ``BatchNorm(Conv(part_1) + ... + Conv(part_k))``: ONNX Runtime folds a
    BatchNorm into a ``Conv`` right before it only, and runs this one on its own
    (a pass over the block's output).  Scaling every weight by the BatchNorm's
    ``gamma / sqrt(var + eps)`` and giving the first convolution its shift
    removes it.  A sum qualifies when each of its outputs and each convolution's
    output, weight and bias is used by nothing else and the BatchNorm's
    statistics are initializers.

    Parameters
    ----------
    model : onnx.ModelProto
        Changed in place.

    Returns
    -------
    int
        The number of BatchNorms folded.
    """
    from onnx import helper, numpy_helper
    graph = model.graph
    producers, uses, initializers = graph_index(graph)

    def summed_convs(name):
        """The ``Conv`` nodes whose outputs ``name`` sums, or None."""
        node = producers.get(name)
        if node is None or len(uses.get(name, [])) != 1:
            return None
        if node.op_type == 'Conv':
            return [node] if _owns_parameters(node, uses, initializers) else None
        if node.op_type != 'Add':
            return None
        parts = [summed_convs(part) for part in node.input]
        return None if None in parts else [conv for part in parts for conv in part]

    folded = []
    for node in graph.node:
        if node.op_type != 'BatchNormalization' or len(node.output) != 1:
            continue
        source = producers.get(node.input[0])
        convs = summed_convs(node.input[0]) if source is not None and source.op_type == 'Add' \
            else None
        if not convs or not all(name in initializers for name in node.input[1:5]):
            continue
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
        gamma, beta, mean, var = (numpy_helper.to_array(initializers[name])
                                  for name in node.input[1:5])
        scale = gamma / np.sqrt(var + attrs.get('epsilon', 1e-5))
        for index, conv in enumerate(convs):
            _scale_convolution(graph, initializers, conv, scale,
                               beta - mean * scale if index == 0 else 0.)
        source.output[0] = node.output[0]
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    drop_unused_initializers(graph)
    return len(folded)


def _owns_parameters(conv, uses, initializers):
    """Whether every parameter of ``conv`` is an initializer that nothing else reads
    (so that rewriting it changes ``conv`` alone)."""
    return all(name in initializers and len(uses[name]) == 1 for name in conv.input[1:] if name)


def _scale_convolution(graph, initializers, conv, scale, shift):
    """Make ``conv`` compute ``scale * conv(x) + shift`` (per output channel, or one
    number) in its weight and bias, adding a bias if it had none."""
    from onnx import numpy_helper
    weight = initializers[conv.input[1]]
    values = numpy_helper.to_array(weight)
    scale = np.broadcast_to(np.asarray(scale, np.float32), values.shape[:1])
    weight.CopyFrom(numpy_helper.from_array(
        (values * scale.reshape(-1, 1, 1, 1)).astype(np.float32), weight.name))
    if len(conv.input) > 2 and conv.input[2]:
        bias = initializers[conv.input[2]]
        offset = numpy_helper.to_array(bias) * scale + shift
    else:
        bias = graph.initializer.add()
        del conv.input[2:]
        conv.input.append(conv.output[0] + '_bias')
        offset = np.zeros_like(scale) + shift
    bias.CopyFrom(numpy_helper.from_array(offset.astype(np.float32), conv.input[2]))


def _check_onnx(path, block, shape, batch):
    """Raise unless ONNX Runtime matches MXNet ``block`` on random input (same top-1, logits
    within :data:`ONNX_TOLERANCE` of the largest one)."""
    session = load_onnx(path)[0]
    data = np.random.RandomState(0).uniform(-2, 2, (batch,) + shape[1:]).astype(np.float32)
    if shape[1] != 3:   # HWC raw pixels
        data = (data + 2) * 60
    expected = block(mx.nd.array(data)).asnumpy()
    got = session.run(None, {session.get_inputs()[0].name: data})[0]
    error = float(np.abs(got - expected).max())
    limit = ONNX_TOLERANCE * max(1., float(np.abs(expected).max()))
    if error > limit or (got.argmax(1) != expected.argmax(1)).any():
        raise UsageError('%s: ONNX Runtime differs from MXNet by %.3g (limit %.3g)'
                         % (path, error, limit))


def load_onnx(path, threads=0, spinning=True):
    """An ONNX Runtime session of ``path`` and the :class:`ExportInfo` it carries.

    Parameters
    ----------
    path : str
        The ONNX file.
    threads : int
        Intra-op threads (0: ONNX Runtime's default).
    spinning : bool
        Let idle intra-op threads spin (ONNX Runtime's default: lowest latency
        when it has the cores to itself).  Turn it off when another runtime
        shares the process: spinning threads keep the cores busy after each run
        and slow MXNet down several times over.

    Returns
    -------
    (onnxruntime.InferenceSession, ExportInfo or None)

    Raises
    ------
    UsageError
        onnxruntime missing, no such file, not a valid ONNX model, or a record in its
        metadata that is not sound (:func:`~gluon_asymmnet.deploy.info.parse_info`).
    """
    ort = require_onnxruntime()
    if not os.path.isfile(path):
        raise UsageError('%s: no such ONNX file' % path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    try:
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    except Exception as error:   # onnxruntime raises its own Fail/InvalidGraph types
        raise UsageError('%s: not a valid ONNX model (%s)'
                         % (path, str(error).strip().splitlines()[0][:200])) from None
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if not meta:
        return session, None
    where = '%s (its %s metadata)' % (path, META_KEY)
    try:
        record = json.loads(meta)
    except ValueError:
        raise UsageError('%s: not valid JSON' % where) from None
    return session, parse_info(record, where)
