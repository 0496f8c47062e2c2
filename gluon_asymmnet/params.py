"""Parameter files: their shapes, and whether one fits a network; seeded initialisation.

The one reader of ``.params`` files for the package (training, export,
evaluation, conversion): every failure is a one-line :class:`UsageError` that
names the file and, for a misfit, the first parameter that differs.
:func:`seeded_initialize` draws each parameter from its own seed, so that two
networks that share a parameter (same structural name and shape) start from
the same values of it.
"""
import hashlib

import mxnet as mx

from .errors import UsageError

__all__ = ['load_param_file', 'param_shapes', 'saved_param_shapes', 'check_params_fit',
           'classifier_outputs', 'parameter_seed', 'seeded_initialize']


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
    return {name: tuple(inferred[param.name])
            for name, param in net._collect_params_with_prefix().items()}


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


def check_params_fit(path, shapes, what):
    """Check that the parameter file ``path`` fits a network with these ``shapes``.

    Parameters
    ----------
    path : str
    shapes : dict
        From :func:`param_shapes`.
    what : str
        The network, for the message (e.g. ``'--model asymmnet_small_0.5'``).

    Raises
    ------
    UsageError
        Naming the file and the first parameter that is missing, extra, or of another shape.
    """
    saved = saved_param_shapes(path)
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
    for name, param in net._collect_params_with_prefix().items():
        if not param.shape or not all(d > 0 for d in param.shape):
            raise ValueError('parameter %s has no shape yet (%s): set or infer the shapes '
                             'before seeded_initialize' % (name, param.shape))
        mx.random.seed(parameter_seed(seed, name))
        param.initialize(None, ctx, init)
