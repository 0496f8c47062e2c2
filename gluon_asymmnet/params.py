"""Parameter files: their shapes, whether one fits a network, loading them; seeded
initialisation.

The one reader of ``.params`` files for the package (training, export,
evaluation, conversion, fine-tuning): every failure is a one-line
:class:`UsageError` that names the file and, for a misfit, the first parameter
that differs.

Every weights file the package writes loads wherever weights are accepted
(:func:`structured_weights`): ``save_parameters`` files (checkpoints, the model
store; structural names such as ``features.4.dw_conv.conv.weight``), the
parameters of an export (``arg:``/``aux:`` and Gluon's global names such as
``asymmnet0_asymmbottleneck3_conv1_weight``), and the original release's
names (``features.4.conv1.conv.weight``, see :data:`RELEASED_RENAMES`).

:func:`seeded_initialize` draws each parameter from its own seed, so that two
networks that share a parameter (same structural name and shape) start from
the same values of it.
"""
import hashlib
import os
import re

import mxnet as mx

from .errors import UsageError
from .mxnet_private import structured_params

__all__ = ['load_param_file', 'param_shapes', 'saved_param_shapes', 'check_params_fit',
           'classifier_outputs', 'structured_weights', 'load_weights', 'load_matching',
           'RELEASED_RENAMES', 'released_to_ours', 'ours_to_released', 'structured_params',
           'copy_weights', 'parameter_seed', 'seeded_initialize']

#: ``(released child, our child)``: the released AsymmNet weights' bottlenecks name their
#: depthwise and linear convolutions ``conv1``/``conv2``.
_RENAMED_CHILDREN = (('conv1', 'dw_conv'), ('conv2', 'pw_conv_linear'))
#: ``(released pattern, our replacement)`` for the structural names of the released weights.
RELEASED_RENAMES = tuple((r'^(features\.\d+)\.%s\.' % old, r'\1.%s.' % new)
                         for old, new in _RENAMED_CHILDREN)


def _rename(name, children):
    for old, new in children:
        name = re.sub(r'^(features\.\d+)\.%s\.' % old, r'\1.%s.' % new, name)
    return name


def released_to_ours(name):
    """Our structural name for a released (or already converted) parameter name."""
    return _rename(name, _RENAMED_CHILDREN)


def ours_to_released(name):
    """The released weights' name for one of our structural parameter names."""
    return _rename(name, [(new, old) for old, new in _RENAMED_CHILDREN])


def load_param_file(path):
    """``{name: NDArray}`` of a parameter file, ``arg:``/``aux:`` prefixes dropped.

    Raises
    ------
    UsageError
        The file is missing or is not a readable MXNet file of named parameters.
    """
    try:
        saved = mx.nd.load(path)
    except (OSError, UnicodeDecodeError, mx.base.MXNetError):
        raise UsageError('%s: not a readable MXNet parameter file' % path) from None
    if not isinstance(saved, dict):
        raise UsageError('%s: holds no named parameters' % path)
    return {name.split(':', 1)[-1]: array for name, array in saved.items()}


def param_shapes(net, input_size):
    """``{structured name: shape}`` of ``net``'s parameters, by shape inference only.

    Nothing is allocated or computed; the names are those of ``save_parameters``.

    Raises
    ------
    UsageError
        ``input_size`` is too small (or not positive) for the network.
    """
    out = net(mx.sym.var('data'))
    try:
        args, _, aux = out.infer_shape(data=(1, 3, input_size, input_size))
    except mx.base.MXNetError:
        raise UsageError('an input of %sx%s pixels does not fit this network'
                         % (input_size, input_size)) from None
    inferred = dict(zip(out.list_arguments(), args))
    inferred.update(zip(out.list_auxiliary_states(), aux))
    return {name: tuple(inferred[param.name]) for name, param in structured_params(net).items()}


def saved_param_shapes(path):
    """``{name: shape}`` of a parameter file (see :func:`load_param_file`)."""
    return {name: tuple(array.shape) for name, array in load_param_file(path).items()}


def classifier_outputs(shapes):
    """Number of classes of a network's saved parameters, or None.

    The first dimension of the last weight of the head (``output.``), "last"
    in structural order (``output.1`` after ``output.0``, ``conv2`` after
    ``conv1``): AsymmNet's and MobileNetV2's ``output.0.weight``, GhostNet's
    ``output.0.conv2.weight``.

    Parameters
    ----------
    shapes : dict
        ``{structured name: shape}`` (e.g. from :func:`saved_param_shapes`).
    """
    def structural(name):
        return [(0, int(part), '') if part.isdigit() else (1, 0, part)
                for part in name.split('.')]

    heads = sorted((name for name in shapes
                    if name.startswith('output.') and name.endswith('weight')), key=structural)
    return int(shapes[heads[-1]][0]) if heads else None


def check_params_fit(path, shapes, what, net=None):
    """Check that the parameter file ``path`` fits a network with these ``shapes``.

    Parameters
    ----------
    path : str
    shapes : dict
        From :func:`param_shapes`.
    what : str
        The network, for the message (e.g. ``'asymmnet_small_0.5'``).
    net : HybridBlock, optional
        The network of ``shapes``: with it, every format of :func:`structured_weights`
        is read (without, the names must be structural).

    Raises
    ------
    UsageError
        Naming the file and the first parameter that is missing, extra, or of another shape.
    """
    saved = (saved_param_shapes(path) if net is None else
             {name: tuple(value.shape) for name, value in structured_weights(path, net).items()})
    _check_fit(path, saved, shapes, what)


def _check_fit(path, saved, shapes, what):
    for name, shape in shapes.items():
        if name not in saved:
            raise UsageError('%s does not fit %s: parameter %s is missing' % (path, what, name))
        if saved[name] != shape:
            raise UsageError('%s does not fit %s: parameter %s has shape %s, the model needs %s'
                             % (path, what, name, saved[name], shape))
    extra = sorted(set(saved) - set(shapes))
    if extra:
        raise UsageError('%s does not fit %s: it has parameter %s that the model lacks'
                         % (path, what, extra[0]))


def _common_prefix(names):
    """The longest prefix of all ``names`` that ends with ``_`` ('' if none)."""
    prefix = os.path.commonprefix(list(names))
    return prefix[:prefix.rfind('_') + 1]


def structured_weights(path, net):
    """``{structured name: NDArray}`` of a weights file in any of the package's formats.

    Parameters
    ----------
    path : str
    net : HybridBlock
        The network the file is for (its names translate an export's global names).

    Raises
    ------
    UsageError
        Unreadable, or not a file of named parameters.
    """
    saved = {}
    for name, value in load_param_file(path).items():
        ours = released_to_ours(name)
        if ours in saved:
            raise UsageError('%s: both %s and another tensor map to %s' % (path, name, ours))
        saved[ours] = value
    structured = structured_params(net)
    if not saved or set(saved) & set(structured):
        return saved
    # an export: global names, whose top-level prefix depends on the process that built it
    saved_prefix = _common_prefix(saved)
    net_prefix = _common_prefix(param.name for param in structured.values())
    by_global = {param.name[len(net_prefix):]: name for name, param in structured.items()}
    return {by_global.get(name[len(saved_prefix):], name): value for name, value in saved.items()}


def copy_weights(net, weights):
    """Set the tensors of the initialised ``net`` that ``weights`` holds with their shape
    (cast to the parameter's dtype).

    Parameters
    ----------
    net : HybridBlock
    weights : dict
        ``{structured name: NDArray}`` (see :func:`structured_weights`).

    Returns
    -------
    (list of str, list of str)
        The structured names set, and those of ``net`` left as they were.
    """
    loaded, kept = [], []
    for name, param in structured_params(net).items():
        value = weights.get(name)
        if value is not None and tuple(value.shape) == tuple(param.shape):
            param.set_data(value.astype(param.dtype, copy=False))
            loaded.append(name)
        else:
            kept.append(name)
    return loaded, kept


def _initialize(net, shapes, ctx, init):
    for name, param in structured_params(net).items():
        param.shape = shapes[name]
    net.initialize(init, ctx=ctx, force_reinit=True)


def load_weights(net, path, input_size, ctx=mx.cpu(), what='the model'):
    """Load a weights file (any of :func:`structured_weights`' formats) into ``net``.

    Every tensor must fit (see :func:`check_params_fit`); float16 weights load into a
    float32 network.

    Raises
    ------
    UsageError
    """
    weights = structured_weights(path, net)
    shapes = param_shapes(net, input_size)
    _check_fit(path, {name: tuple(value.shape) for name, value in weights.items()}, shapes,
               what)
    _initialize(net, shapes, ctx, mx.init.Zero())   # every tensor is set below
    copy_weights(net, weights)


def load_matching(net, path, input_size, ctx=mx.cpu(), init=None):
    """Fine-tuning: load every tensor of ``path`` that fits ``net`` by name and shape.

    The rest (a classifier for another number of classes) is initialised with
    ``init`` (default: Xavier).

    Returns
    -------
    (list of str, list of str)
        The structured names loaded, and those of ``net`` left to their initialisation.

    Raises
    ------
    UsageError
        Unreadable, or nothing in it fits ``net``.
    """
    weights = structured_weights(path, net)
    _initialize(net, param_shapes(net, input_size), ctx, init or mx.init.Xavier())
    loaded, fresh = copy_weights(net, weights)
    if not loaded:
        raise UsageError('%s: none of its tensors fits the model' % path)
    return loaded, fresh
def parameter_seed(seed, name):
    """The seed of parameter ``name`` (structural, e.g. ``features.4.expand.conv.weight``)
    of a run seeded with ``seed``: the same in every process and for every network."""
    digest = hashlib.sha256(('%d:%s' % (seed, name)).encode()).digest()
    return int.from_bytes(digest[:4], 'little') % 2 ** 31


def seeded_initialize(net, init, seed, ctx=None):
    """Initialise every parameter of ``net`` from ``(seed, its structural name)``.

    Gluon's ``initialize`` draws the parameters one after the other from one
    random stream, so a parameter's values depend on every parameter created
    before it: an AsymmNet and its ``asymmrate=0`` twin would start from other
    values even where they have the same parameter.  Here each parameter is
    drawn after seeding MXNet's generator with :func:`parameter_seed`: networks
    initialised with the same ``seed`` agree on every parameter they share (same
    structural name and shape), and ``seed`` varies the initialisation.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Its parameters' shapes known (set or inferred), not yet initialised.
    init : mxnet.initializer.Initializer
        The default initializer (a parameter's own ``init``, e.g. BatchNorm's, wins).
    seed : int
    ctx : Context or list of Context, optional

    Raises
    ------
    ValueError
        A parameter's shape is not known yet (its values would be drawn later,
        from another seed).
    """
    for name, param in structured_params(net).items():
        if not param.shape or not all(d > 0 for d in param.shape):
            raise ValueError('parameter %s has no shape yet (%s): set or infer the shapes '
                             'before seeded_initialize' % (name, param.shape))
        mx.random.seed(parameter_seed(seed, name))
        param.initialize(None, ctx, init)
