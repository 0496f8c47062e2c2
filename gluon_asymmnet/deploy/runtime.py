"""Running a model on numpy batches, whatever holds it: Gluon, an export, ONNX Runtime.

A :class:`Predictor` maps normalised ``(N, 3, H, W)`` float32 batches to
logits and carries the :class:`~gluon_asymmnet.deploy.info.ExportInfo` of what
the model takes; evaluation, quantization and the speed measurements all run
models through it.

MXNet predictors run on a CPU the graph fused by oneDNN (:func:`serving_flags`).
"""
import json
import os

import mxnet as mx
import numpy as np

from ..data import split_batch
from ..errors import UsageError
from ..model_zoo import ModelConfig
from ..params import load_param_file
from .graph import symbol_block
from .info import check_files, make_info, read_info
from .onnx import load_onnx
from .sources import zoo_model

__all__ = ['load_exported', 'mxnet_runner', 'onnx_runner', 'Predictor', 'serving_flags',
           'zoo_predictor',
           'exported_predictor', 'onnx_predictor']


def serving_flags(ctx):
    """``hybridize`` keywords for a block that runs inference only, with fixed weights.

    Static memory and shapes; where every device is a CPU and oneDNN is on, also
    ``backend='MKLDNN'``: MXNet partitions each graph at its first call into
    oneDNN's fused operators (a convolution with its BatchNorm folded in, its
    activation and residual add).  For AsymmNet-L x1.0 at 224 that takes
    0.70-0.88x the time of the unfused graph at batch 1 and 32, with logits
    equal to 5e-7 of the largest (``tests/test_eval.py``).  The fused
    convolutions fold the weights once, at their first call, and do not see
    later changes: a block whose weights change (training, ``set_data``,
    ``load_parameters``) must be hybridized again, which is why a network you
    hybridize yourself does not get this backend by default.

    Parameters
    ----------
    ctx : sequence of mx.Context

    Returns
    -------
    dict
    """
    flags = dict(static_alloc=True, static_shape=True)
    onednn = (mx.runtime.Features().is_enabled('MKLDNN')
              and os.environ.get('MXNET_MKLDNN_ENABLED', '1') != '0')
    if onednn and all(c.device_type in ('cpu', 'cpu_pinned', 'cpu_shared') for c in ctx):
        flags['backend'] = 'MKLDNN'
    return flags


def load_exported(prefix, ctx=(mx.cpu(),)):
    """``SymbolBlock.imports`` of ``PREFIX-symbol.json`` + ``PREFIX-0000.params``, and its info.

    Parameters
    ----------
    prefix : str
    ctx : sequence of mx.Context
        Where the parameters are loaded (the check runs on the first).

    Returns
    -------
    (mx.gluon.SymbolBlock, ExportInfo or None)

    Raises
    ------
    UsageError
        A missing or corrupted file, parameters that do not fit the symbol, or
        files that are not those ``PREFIX-info.json`` was written with.
    """
    symbol_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'
    for path, what in ((symbol_file, 'symbol'), (params_file, 'parameters')):
        if not os.path.isfile(path):
            raise UsageError('%s: no such file (the %s of the export %s)'
                             % (path, what, prefix))
    try:
        with open(symbol_file) as f:
            symbol = mx.sym.load_json(json.dumps(json.load(f)))
    except (ValueError, mx.base.MXNetError):   # UnicodeDecodeError is a ValueError
        raise UsageError('%s: not an MXNet symbol file' % symbol_file) from None
    saved = load_param_file(params_file)
    needed = [n for n in symbol.list_arguments() if n != 'data'] + symbol.list_auxiliary_states()
    missing = [name for name in needed if name not in saved]
    if missing:
        raise UsageError('%s does not fit %s: parameter %s is missing'
                         % (params_file, symbol_file, missing[0]))
    info = read_info(prefix)
    if info is not None:
        check_files(info, prefix)
    try:
        block = symbol_block(symbol, saved, {}, list(ctx))
        shape = info['input_shape'] if info else None
        if shape:
            block(mx.nd.zeros(shape, ctx=ctx[0]))
    except mx.base.MXNetError as error:
        message = str(error).strip().splitlines()
        raise UsageError('%s does not fit %s: %s' % (params_file, symbol_file,
                                                      message[0][:200])) from None
    return block, info


def mxnet_runner(block, ctx=(mx.cpu(),)):
    """``run(numpy batch) -> numpy logits`` of a Gluon block (waits for the result).

    The batch is split over the devices ``ctx``, where the block's parameters are.
    """
    def run(x):
        outputs = [block(part) for part in split_batch(mx.nd.array(x), list(ctx))]
        return np.concatenate([output.asnumpy() for output in outputs])
    return run


def onnx_runner(session):
    """``run(numpy batch) -> numpy logits`` of an ONNX Runtime session.

    A graph of a fixed batch size (``PREFIX-batch1.onnx``) runs a larger batch
    in pieces of that size.
    """
    graph_input = session.get_inputs()[0]
    name, fixed = graph_input.name, graph_input.shape[0]

    def run(x):
        x = np.asarray(x, np.float32)
        if not isinstance(fixed, int) or len(x) == fixed:
            return session.run(None, {name: x})[0]
        if len(x) % fixed:
            raise UsageError('%s takes batches of %d, not %d images' % (name, fixed, len(x)))
        return np.concatenate([session.run(None, {name: x[i:i + fixed]})[0]
                               for i in range(0, len(x), fixed)])
    return run


class Predictor:
    """Logits of normalised ``(N, 3, H, W)`` float32 numpy batches, whatever runs the model.

    Parameters
    ----------
    run : callable
        ``run(batch as the graph takes it) -> logits``.
    info : ExportInfo
        Input shape and layout, mean/std, crop ratio, classes and class names.
    name : str
        What the model is (for reports).
    """

    def __init__(self, run, info, name):
        self._run = run
        self.info = info
        self.name = name

    def __call__(self, batch):
        return self._run(self.info.to_graph_input(batch))


def zoo_predictor(model, params_file, classes=None, width_scale=None, asymmrate=None,
                  input_size=None, crop_ratio=None, ctx=(mx.cpu(),)):
    """A zoo model with the weights of ``params_file``, hybridized for serving
    (:func:`serving_flags`).

    ``input_size``/``crop_ratio`` default to what a training checkpoint records,
    else to the model's record (see :func:`~gluon_asymmnet.deploy.sources.zoo_model`);
    ``ctx``: the devices the batches are split over.
    """
    ctx = list(ctx)
    net, config = zoo_model(model, params_file, classes, width_scale, asymmrate, input_size,
                            ctx)
    config = config._replace(input_size=input_size or config.input_size,
                             crop_ratio=crop_ratio or config.crop_ratio)
    net.hybridize(**serving_flags(ctx))
    size = config.input_size
    classes = net(mx.nd.zeros((1, 3, size, size), ctx=ctx[0])).shape[1]
    return Predictor(mxnet_runner(net, ctx),
                     make_info(net.model_name, classes, net.classes, config), net.model_name)


def _recorded_info(info, source, input_size, crop_ratio, outputs):
    """The recorded info (checked against the flags), or, for a file without one,
    normalised CHW of ``input_size`` with ImageNet's statistics."""
    if info is None:
        default = ModelConfig()
        config = default._replace(input_size=input_size or default.input_size,
                                  crop_ratio=crop_ratio or default.crop_ratio)
        return make_info(None, outputs, config=config)
    if input_size and input_size != info.input_size:
        raise UsageError('%s takes %dx%d images, not %dx%d'
                         % (source, info.input_size, info.input_size, input_size, input_size))
    if crop_ratio and crop_ratio != info['crop_ratio']:
        info = type(info)(info, crop_ratio=crop_ratio)
    return info


def exported_predictor(prefix, input_size=None, crop_ratio=None, ctx=(mx.cpu(),)):
    """``SymbolBlock.imports`` of an export, hybridized for serving (:func:`serving_flags`);
    ``PREFIX-info.json`` says what it takes.

    ``ctx``: the devices the batches are split over.
    """
    block, info = load_exported(prefix, ctx)
    block.hybridize(**serving_flags(ctx))
    run = mxnet_runner(block, ctx)
    if info is None:
        size = input_size or 224
        outputs = run(np.zeros((1, 3, size, size), np.float32)).shape[1]
    else:
        outputs = info['classes']
    return Predictor(run, _recorded_info(info, prefix, input_size, crop_ratio, outputs), prefix)


def onnx_predictor(path, input_size=None, crop_ratio=None):
    """An ONNX Runtime session; its shape and classes come from the file (``input_size``
    gives the side of a graph whose input is ``(N, 3, H, W)`` with symbolic ``H``, ``W``)."""
    session, info = load_onnx(path)
    graph_input = session.get_inputs()[0]
    outputs = session.get_outputs()[0].shape[-1]
    if info is None:
        shape = graph_input.shape
        if not (len(shape) == 4 and shape[1] == 3):
            raise UsageError('%s: input %s is not (N, 3, H, W)' % (path, shape))
        if isinstance(shape[2], int):
            if input_size and shape[2] != input_size:
                raise UsageError('%s takes %dx%d images, not %dx%d'
                                 % (path, shape[2], shape[3], input_size, input_size))
            input_size = shape[2]
        elif not input_size:   # symbolic height and width ('H', 'W'): any size runs
            raise UsageError('%s: input %s has symbolic sides; give the image size it takes'
                             % (path, shape))
    info = _recorded_info(info, path, input_size, crop_ratio, outputs)
    return Predictor(onnx_runner(session), info, path)
