"""ONNX: export through MXNet's own exporter, check in ONNX Runtime, load.

Parameters are initializers, never graph inputs (the only input is ``data``),
so ONNX Runtime can fold constants. Each file is checked in ONNX Runtime
against MXNet (logits within :data:`ONNX_TOLERANCE` of the largest logit, same
top-1) before it counts as written.
"""
import json
import os

import mxnet as mx
import numpy as np

from ..errors import UsageError
from .graph import deploy_symbol, symbol_block
from .info import META_KEY, ExportInfo

__all__ = ['export_onnx', 'load_onnx', 'require_onnxruntime', 'ONNX_TOLERANCE']

#: Largest logit difference accepted between MXNet and ONNX Runtime, relative to
#: the largest logit (at least 1).
ONNX_TOLERANCE = 1e-4


def require_onnxruntime():
    """``import onnxruntime``, or a :class:`UsageError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError('onnxruntime is not installed; `pip install onnxruntime` '
                         '(see requirements.txt)') from None
    return onnxruntime


def export_onnx(mxnet_prefix, prefix, info):
    """Convert ``mxnet_prefix-symbol.json``/``-0000.params`` to checked ONNX files.

    Writes ``PREFIX.onnx`` (dynamic batch) and ``PREFIX-batch1.onnx``, with
    ``info`` in their metadata, and checks both in ONNX Runtime against MXNet.

    Returns
    -------
    list of str
    """
    import onnx
    symbol, args, aux = mx.model.load_checkpoint(mxnet_prefix, 0)
    reference = symbol_block(symbol, args, aux)
    symbol = deploy_symbol(symbol, for_onnx=True)
    params = dict(args, **aux)
    shape = tuple(info['input_shape'])
    written = []
    for path, dynamic in ((prefix + '.onnx', True), (prefix + '-batch1.onnx', False)):
        mx.onnx.export_model(symbol, params, in_shapes=[shape], in_types=[np.float32],
                             onnx_file_path=path, dynamic=dynamic,
                             dynamic_input_shapes=[(None,) + shape[1:]] if dynamic else None)
        model = onnx.load(path)
        initializers = {init.name for init in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(info)
        onnx.checker.check_model(model)
        onnx.save(model, path)
        _check_onnx(path, reference, shape, batch=2 if dynamic else 1)
        written.append(path)
    return written


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
        onnxruntime missing, no such file, or not a valid ONNX model.
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
    return session, ExportInfo(json.loads(meta)) if meta else None
