"""Export a network for deployment (MXNet symbol/params or ONNX) and load it back.

``python -m gluon_asymmnet.export`` (console script ``asymmnet-export``) takes a
zoo model and a parameter file, or a training run folder, and writes::

    PREFIX-symbol.json PREFIX-0000.params   # --format mxnet (SymbolBlock.imports)
    PREFIX.onnx PREFIX-batch1.onnx          # --format onnx: dynamic batch, batch 1
    PREFIX-info.json                        # input shape, layout, mean/std, synset

The preprocessing (mean/std normalisation and, for ``--layout HWC``, the
transpose of ``(N, H, W, 3)`` RGB images of 0-255 values) can be folded into the
graph with GluonCV's ``export_block``. ``PREFIX-info.json`` records what the
graph expects, which GluonCV's export forgets; ONNX files carry the same record
in their metadata (key ``gluon_asymmnet``).

Deploy graph
------------
Graphs are traced inside :func:`gluon_asymmnet.models.layers.inference_graph`
(plain 4-D ``Concat``), then :func:`deploy_symbol` removes ``amp_multicast``
(an identity in float32 that ONNX lacks) and turns any 5-D training concat
(``expand_dims``, ``Concat``, ``Reshape(0, 0, -3, -2)``, as in a graph
exported by a training run) into a plain ``Concat``: neither ONNX nor the INT8
quantizer accepts those, and the values are identical.

ONNX
----
Through MXNet's own exporter (``mx.onnx.export_model``). Parameters are
initializers, never graph inputs (the only input is ``data``), so ONNX Runtime
can fold constants. Each file is checked in ONNX Runtime against MXNet (logits
within 1e-4, same top-1) before the command succeeds.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings

import mxnet as mx
import numpy as np

from .data.loaders import MEAN_RGB, STD_RGB
from .model_zoo import get_model, list_models
from .models.layers import inference_graph
from .train.args import model_kwargs, model_name
from .train.checkpoint import check_params_fit, param_shapes, saved_param_shapes
from .train.errors import UsageError

__all__ = ['ExportInfo', 'deploy_symbol', 'net_symbol', 'symbol_block', 'zoo_model',
           'run_dir_model', 'export_model', 'export_onnx', 'load_exported', 'load_onnx',
           'require_onnxruntime', 'read_info', 'add_zoo_model_flags', 'ONNX_TOLERANCE', 'main']

#: Largest absolute logit difference accepted between MXNet and ONNX Runtime.
ONNX_TOLERANCE = 1e-4
_META_KEY = 'gluon_asymmnet'


class ExportInfo(dict):
    """What an exported graph expects and gives (the ``PREFIX-info.json`` record).

    Keys: ``model`` (zoo name or ``null``), ``input_shape`` (batch 1, in
    ``layout``), ``layout`` (``'CHW'``: normalised NCHW; ``'HWC'``: NHWC),
    ``preprocess`` (mean/std folded into the graph: the input is 0-255 RGB),
    ``mean``/``std`` (0-255 RGB), ``crop_ratio``, ``classes`` (number of
    outputs) and ``synset`` (class names, or ``null``).
    """

    @property
    def input_size(self):
        """Side of the square input image."""
        shape = self['input_shape']
        return shape[2] if self['layout'] == 'CHW' else shape[1]

    def to_graph_input(self, batch):
        """Turn normalised ``(N, 3, H, W)`` data (numpy) into what the graph takes."""
        if not self['preprocess']:
            return batch
        mean = np.asarray(self['mean'], np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self['std'], np.float32).reshape(1, 3, 1, 1)
        raw = batch * std + mean
        return raw.transpose(0, 2, 3, 1) if self['layout'] == 'HWC' else raw


def make_info(model, input_size, classes, synset=None, preprocess=False, layout='CHW',
              crop_ratio=0.875, mean=MEAN_RGB, std=STD_RGB):
    """An :class:`ExportInfo` for a network of ``classes`` outputs."""
    shape = (1, input_size, input_size, 3) if layout == 'HWC' else (1, 3, input_size, input_size)
    return ExportInfo(model=model, input_shape=list(shape), layout=layout,
                      preprocess=bool(preprocess), mean=list(mean), std=list(std),
                      crop_ratio=crop_ratio, classes=int(classes),
                      synset=list(synset) if synset is not None else None)


def _net_synset(net, classes):
    synset = getattr(net, 'classes', None)
    if synset is None and classes == 1000:
        from gluoncv.data import ImageNet1kAttr
        synset = ImageNet1kAttr().classes
    return list(synset) if synset is not None and len(synset) == classes else None


def _is_concat_view(nodes, node):
    """A ``Reshape(0, 0, -3, -2)`` of a ``Concat`` of ``expand_dims(axis=2)`` parts."""
    if node['op'] != 'Reshape' or node['attrs'].get('shape') != '(0, 0, -3, -2)':
        return False
    concat = nodes[node['inputs'][0][0]]
    return concat['op'] == 'Concat' and all(
        nodes[i]['op'] == 'expand_dims' and nodes[i]['attrs'].get('axis') == '2'
        for i, _, _ in concat['inputs'])


def deploy_symbol(symbol, for_onnx=False):
    """``symbol`` with the training-only 5-D channel concats made plain 4-D ``Concat`` s.

    Removes ``amp_multicast`` (an identity in float32) and replaces each
    ``Reshape(Concat(expand_dims(x_i, axis=2)), (0, 0, -3, -2))`` by
    ``Concat(x_i, dim=1)``; anything else is left as it is.

    Parameters
    ----------
    symbol : mx.sym.Symbol
    for_onnx : bool
        Also drop the identity ``Reshape`` s (shape ``(0, 0, 0, 0)``) that make
        oneDNN's layout plain once before hard swish in MXNet: in ONNX Runtime
        they stop the layout optimiser, which then wraps every hard swish in
        ``Transpose`` s (58 in the INT8 AsymmNet-L graph).

    Returns
    -------
    mx.sym.Symbol
    """
    graph = json.loads(symbol.tojson())
    nodes = graph['nodes']
    redirect = {}   # (node, output) -> (node, output)
    for index, node in enumerate(nodes):
        if node['op'] == 'amp_multicast':
            for output, source in enumerate(node['inputs']):
                redirect[(index, output)] = tuple(source[:2])
        elif _is_concat_view(nodes, node):
            concat_index = node['inputs'][0][0]
            concat = nodes[concat_index]
            concat['inputs'] = [nodes[i]['inputs'][0] for i, _, _ in concat['inputs']]
            redirect[(index, 0)] = (concat_index, 0)
        elif for_onnx and _is_identity_reshape(node):
            redirect[(index, 0)] = tuple(node['inputs'][0][:2])

    def follow(entry):
        key = tuple(entry[:2])
        while key in redirect:
            key = redirect[key]
        return [key[0], key[1], 0]

    for node in nodes:
        node['inputs'] = [follow(entry) for entry in node['inputs']]
    graph['heads'] = [follow(entry) for entry in graph['heads']]
    # loading keeps only what the heads reach
    return mx.sym.load_json(mx.sym.load_json(json.dumps(graph)).tojson())


def _is_identity_reshape(node):
    if node['op'] != 'Reshape':
        return False
    shape = node.get('attrs', {}).get('shape', '').strip('()[] ').replace(' ', '')
    return bool(shape) and all(dim == '0' for dim in shape.split(','))


def symbol_block(symbol, args, aux, ctx=mx.cpu()):
    """A ``SymbolBlock`` of ``symbol`` with these parameter values."""
    block = mx.gluon.SymbolBlock(symbol, mx.sym.var('data'))
    block.collect_params().load_dict(dict(args, **aux), ctx=ctx, ignore_extra=True)
    return block


def net_symbol(net):
    """``(deploy symbol, arg_params, aux_params)`` of an initialised HybridBlock."""
    with inference_graph():
        symbol = deploy_symbol(net(mx.sym.var('data')))
    params = {param.name: param.data() for param in net.collect_params().values()}
    args = {name: params[name] for name in symbol.list_arguments() if name in params}
    aux = {name: params[name] for name in symbol.list_auxiliary_states()}
    return symbol, args, aux


def _saved_classes(params_file):
    """Number of outputs of a saved classifier (``output.0.bias``), or None."""
    bias = saved_param_shapes(params_file).get('output.0.bias')
    return int(bias[0]) if bias is not None else None


def zoo_model(model, params_file=None, classes=None, width_scale=None, asymmrate=None,
              input_size=224, ctx=mx.cpu()):
    """A zoo network with checked weights.

    Parameters
    ----------
    model : str
        Zoo name; with ``width_scale``, a family name such as ``asymmnet_small``
        is completed (as in ``train_imagenet.py``).
    params_file : str, optional
        ``save_parameters`` file. Without it the network gets random weights
        (for speed measurements only).
    classes : int, optional
        Outputs; default: read from ``params_file`` (``output.0.bias``), else 1000.
    asymmrate : int, optional
    input_size : int
        Used to infer the shapes that ``params_file`` is checked against.
    ctx : mx.Context

    Returns
    -------
    HybridBlock
        With ``classes`` (class names: ImageNet's for 1000 classes, else None).

    Raises
    ------
    UsageError
        Unknown model or width, or a parameter file that does not fit
        (naming the first parameter that differs).
    """
    name = model_name(argparse.Namespace(model=model, width_scale=width_scale), list_models())
    if params_file and not os.path.isfile(params_file):
        raise UsageError('%s: no such parameter file' % params_file)
    saved_classes = _saved_classes(params_file) if params_file else None
    classes = classes or saved_classes or 1000
    flags = argparse.Namespace(dropout=None, asymmrate=asymmrate, shuffle_group=None,
                               last_gamma=False)
    try:
        net = get_model(name, **model_kwargs(flags, classes))
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    if params_file:
        check_params_fit(params_file, param_shapes(net, input_size),
                         '--model %s (%d classes)' % (name, classes))
        net.load_parameters(params_file, ctx=ctx)
    else:
        net.initialize(mx.init.Xavier(), ctx=ctx)
    net.model_name = name
    net.classes = _net_synset(net, classes)
    return net


def run_dir_model(run_dir, ctx=mx.cpu()):
    """The best network of a ``train_imagenet.py`` run folder, and its input size.

    Reads ``args.json`` and ``<model>-best.params`` (else the newest epoch
    checkpoint). Class names: the digits for ``--dataset digits``, the class
    folders for ``--data-dir``, none otherwise.

    Returns
    -------
    (HybridBlock, int)
    """
    args_file = os.path.join(run_dir, 'args.json')
    if not os.path.isfile(args_file):
        raise UsageError('%s: not a training run folder (no args.json)' % run_dir)
    with open(args_file) as f:
        args = argparse.Namespace(**json.load(f))
    name = model_name(args, list_models())
    candidates = [os.path.join(run_dir, '%s-best.params' % name)] + sorted(
        (os.path.join(run_dir, f) for f in os.listdir(run_dir)
         if f.startswith(name + '-') and f[len(name) + 1:-len('.params')].isdigit()
         and f.endswith('.params') and not f.endswith('-0000.params')), reverse=True)
    found = [path for path in candidates if os.path.isfile(path)]
    if not found:
        raise UsageError('%s: no %s-best.params or epoch checkpoint' % (run_dir, name))
    classes = _saved_classes(found[0])
    flags = argparse.Namespace(**{**vars(args), 'classes': classes})
    net = get_model(name, **model_kwargs(flags, classes))
    check_params_fit(found[0], param_shapes(net, args.input_size), 'the model of ' + run_dir)
    net.load_parameters(found[0], ctx=ctx)
    net.model_name = name
    if args.dataset == 'digits':
        net.classes = [str(digit) for digit in range(10)]
    elif getattr(args, 'data_dir', None) and os.path.isdir(os.path.join(args.data_dir, 'train')):
        net.classes = sorted(os.listdir(os.path.join(args.data_dir, 'train')))
    else:
        net.classes = _net_synset(net, classes)
    return net, args.input_size


class _Normalize(mx.gluon.HybridBlock):
    """0-255 RGB in ``layout`` to normalised NCHW: the data pipeline's mean/std, folded."""

    def __init__(self, mean, std, layout, **kwargs):
        super(_Normalize, self).__init__(**kwargs)
        shape = (1, 1, 1, 3) if layout == 'HWC' else (1, 3, 1, 1)
        self.layout = layout
        with self.name_scope():
            self.mean = self.params.get_constant('mean', mx.nd.array(mean).reshape(shape))
            self.std = self.params.get_constant('std', mx.nd.array(std).reshape(shape))

    def hybrid_forward(self, F, x, mean, std):
        x = F.broadcast_div(F.broadcast_minus(x, mean), std)
        return F.transpose(x, axes=(0, 3, 1, 2)) if self.layout == 'HWC' else x


def _write_json(obj, path):
    with open(path, 'w') as out:
        json.dump(obj, out, indent=1)


def export_model(net, prefix, input_size, preprocess=False, layout='CHW', crop_ratio=0.875,
                 fmt='mxnet'):
    """Export ``net`` to ``PREFIX-symbol.json``/``-0000.params`` or ONNX, with ``PREFIX-info.json``.

    Parameters
    ----------
    net : HybridBlock
        Initialised; its ``classes`` attribute (class names), if any, is recorded.
    prefix : str
        Output path prefix (folders are created).
    input_size : int
        Side of the square input.
    preprocess : bool
        Fold the mean/std normalisation into the graph (GluonCV ``export_block``):
        the graph then takes 0-255 RGB images.
    layout : {'CHW', 'HWC'}
        Input layout with ``preprocess`` (``HWC``: ``(N, H, W, 3)``, as decoded
        images are); without it always ``CHW``.
    crop_ratio : float
        Recorded for the evaluation preprocessing.
    fmt : {'mxnet', 'onnx'}
        ``onnx`` writes ``PREFIX.onnx`` (dynamic batch) and ``PREFIX-batch1.onnx``
        instead of the MXNet files, each checked in ONNX Runtime.

    Returns
    -------
    list of str
        The files written.
    """
    from gluoncv.utils import export_block
    layout = layout.upper() if preprocess else 'CHW'
    if layout not in ('CHW', 'HWC'):
        raise UsageError('--layout must be CHW or HWC, not %s' % layout)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    classes = net(mx.nd.zeros((1, 3, input_size, input_size))).shape[1]
    synset = getattr(net, 'classes', None)
    info = make_info(getattr(net, 'model_name', None), input_size, classes, synset,
                     preprocess, layout, crop_ratio)
    shape = tuple(info['input_shape'][1:])
    work = prefix if fmt == 'mxnet' else os.path.join(tempfile.mkdtemp(dir=folder), 'net')
    try:
        normalize = _Normalize(info['mean'], info['std'], layout) if preprocess else None
        with inference_graph():
            export_block(work, net, data_shape=shape, preprocess=normalize, layout=layout)
        symbol_file = work + '-symbol.json'
        deploy_symbol(mx.sym.load(symbol_file)).save(symbol_file)
        info_file = prefix + '-info.json'
        _write_json(info, info_file)
        if fmt == 'mxnet':
            return [symbol_file, work + '-0000.params', info_file]
        return export_onnx(work, prefix, info) + [info_file]
    finally:
        if fmt != 'mxnet':
            shutil.rmtree(os.path.dirname(work), ignore_errors=True)


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
        entry.key, entry.value = _META_KEY, json.dumps(info)
        onnx.checker.check_model(model)
        onnx.save(model, path)
        _check_onnx(path, reference, shape, batch=2 if dynamic else 1)
        written.append(path)
    return written


def _check_onnx(path, block, shape, batch):
    """Raise unless ONNX Runtime matches MXNet ``block`` on random input (1e-4, same top-1)."""
    session = load_onnx(path)[0]
    data = np.random.RandomState(0).uniform(-2, 2, (batch,) + shape[1:]).astype(np.float32)
    if shape[1] != 3:   # HWC raw pixels
        data = (data + 2) * 60
    expected = block(mx.nd.array(data)).asnumpy()
    got = session.run(None, {session.get_inputs()[0].name: data})[0]
    error = float(np.abs(got - expected).max())
    if error > ONNX_TOLERANCE or (got.argmax(1) != expected.argmax(1)).any():
        raise UsageError('%s: ONNX Runtime differs from MXNet by %.3g (limit %g)'
                         % (path, error, ONNX_TOLERANCE))


def read_info(prefix):
    """The :class:`ExportInfo` of ``PREFIX-info.json``, or None if there is none."""
    path = prefix + '-info.json'
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return ExportInfo(json.load(f))
    except ValueError:
        raise UsageError('%s: not a valid JSON file' % path) from None


def load_exported(prefix, ctx=mx.cpu()):
    """``SymbolBlock.imports`` of ``PREFIX-symbol.json`` + ``PREFIX-0000.params``, and its info.

    Returns
    -------
    (mx.gluon.SymbolBlock, ExportInfo or None)

    Raises
    ------
    UsageError
        A missing or corrupted file, or parameters that do not fit the symbol.
    """
    symbol_file, params_file = prefix + '-symbol.json', prefix + '-0000.params'
    for path, what in ((symbol_file, 'symbol'), (params_file, 'parameters')):
        if not os.path.isfile(path):
            raise UsageError('%s: no such file (the %s of --model-prefix %s)'
                             % (path, what, prefix))
    try:
        with open(symbol_file) as f:
            symbol = mx.sym.load_json(json.dumps(json.load(f)))
    except (ValueError, mx.base.MXNetError):   # UnicodeDecodeError is a ValueError
        raise UsageError('%s: not an MXNet symbol file' % symbol_file) from None
    try:
        saved = mx.nd.load(params_file)
    except (mx.base.MXNetError, UnicodeDecodeError):
        raise UsageError('%s: not a readable MXNet parameter file' % params_file) from None
    saved = {name.split(':', 1)[-1]: value for name, value in saved.items()}
    needed = [n for n in symbol.list_arguments() if n != 'data'] + symbol.list_auxiliary_states()
    missing = [name for name in needed if name not in saved]
    if missing:
        raise UsageError('%s does not fit %s: parameter %s is missing'
                         % (params_file, symbol_file, missing[0]))
    info = read_info(prefix)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Cannot decide type')
            block = mx.gluon.SymbolBlock(symbol, mx.sym.var('data'))
        block.collect_params().load_dict(saved, ctx=ctx, ignore_extra=True)
        shape = info['input_shape'] if info else None
        if shape:
            block(mx.nd.zeros(shape, ctx=ctx))
    except mx.base.MXNetError as error:
        message = str(error).strip().splitlines()
        raise UsageError('%s does not fit %s: %s' % (params_file, symbol_file,
                                                      message[0][:200])) from None
    return block, info


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
    meta = session.get_modelmeta().custom_metadata_map.get(_META_KEY)
    return session, ExportInfo(json.loads(meta)) if meta else None


def add_zoo_model_flags(group):
    """``--params-file --classes --width-scale --asymmrate``: what :func:`zoo_model` takes."""
    group.add_argument('--params-file', help='weights of --model (save_parameters)')
    group.add_argument('--classes', type=int, default=None,
                       help='outputs of --model (default: from --params-file)')
    group.add_argument('--width-scale', type=float, default=None, help='width multiplier')
    group.add_argument('--asymmrate', type=int, default=None, help='reused input copies per side')


def build_parser():
    """The ``argparse`` parser of ``python -m gluon_asymmnet.export``."""
    parser = argparse.ArgumentParser(
        prog='python -m gluon_asymmnet.export',
        description='Export a zoo model with its parameters, or the best weights of a training '
                    'run, to PREFIX-symbol.json + PREFIX-0000.params or ONNX, with '
                    'PREFIX-info.json.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='zoo name (see gluon_asymmnet.list_models())')
    source.add_argument('--run-dir', help='a train_imagenet.py run folder')
    add_zoo_model_flags(parser)
    parser.add_argument('--input-size', type=int, default=None,
                        help='input side (default: 224, or the run\'s)')
    parser.add_argument('--crop-ratio', type=float, default=0.875)
    parser.add_argument('--prefix', required=True, help='output path prefix')
    parser.add_argument('--format', dest='fmt', default='mxnet', choices=['mxnet', 'onnx'])
    parser.add_argument('--preprocess', action='store_true',
                        help='fold mean/std normalisation in: the graph takes 0-255 RGB')
    parser.add_argument('--layout', default='CHW', choices=['CHW', 'HWC'],
                        help='input layout with --preprocess')
    return parser


def main(argv=None):
    """Entry point; returns the exit status (2 with a one-line error for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.input_size is not None and args.input_size < 1:
        parser.error('--input-size must be at least 1, not %d' % args.input_size)
    if not 0 < args.crop_ratio <= 1:
        parser.error('--crop-ratio must be in (0, 1], not %s' % args.crop_ratio)
    try:
        if args.model and not args.params_file:
            raise UsageError('--model needs --params-file (the weights to export)')
        if args.run_dir:
            net, input_size = run_dir_model(args.run_dir)
            input_size = args.input_size or input_size
        else:
            input_size = args.input_size or 224
            net = zoo_model(args.model, args.params_file, args.classes, args.width_scale,
                            args.asymmrate, input_size)
        if args.fmt == 'onnx':
            require_onnxruntime()
        files = export_model(net, args.prefix, input_size, args.preprocess, args.layout,
                             args.crop_ratio, args.fmt)
    except UsageError as error:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, error))
    for path in files:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
