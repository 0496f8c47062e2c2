"""Model zoo: every network of the package by name, GluonCV style.

``get_model(name, pretrained=False, ctx=cpu(), root=..., **kwargs)`` and
``list_models(pattern)``.  Importing :mod:`gluon_asymmnet` also registers every
name in GluonCV's zoo, so ``gluoncv.model_zoo.get_model('asymmnet_large_0.5')``
works.

Names
-----
``asymmnet_{large,small}_{1.0,0.75,0.5,0.35}`` (aliases ``asymmnet_large`` and
``asymmnet_small`` for x1.0); ``mobilenetv3_{large,small}_<width>``: the same
networks with ``asymmrate=0``; ``mobilenetv2_asymm_<width>``: MobileNetV2 with
asymmetrical bottlenecks; ``ghostnet_{1.3,1.0,0.75,0.5}`` (alias ``ghostnet``),
the paper's GhostNet baseline; and GluonCV's own ``mobilenetv3_large``,
``mobilenetv3_small`` and ``mobilenetv2_<width>`` for side-by-side comparisons.
Aliases resolve in GluonCV's zoo too (:func:`list_aliases`).

Pretrained weights
------------------
There are no hosted weights and nothing is ever downloaded.  ``pretrained=True``
loads ``<root>/<name>-<first 8 hex digits of its sha1>.params`` from the local
model store (``root`` defaults to ``$MXNET_HOME/models``, else
``~/.mxnet/models``) after checking the sha1; ``pretrained='<8 hex>'`` picks
that file.  ``python -m gluon_asymmnet.convert`` puts files there.

Model records
-------------
Every name has one :class:`ModelConfig` (``get_model_config(name)``, as timm's
``pretrained_cfg``): input size, evaluation crop ratio, mean/std of the input
normalisation, and the paper's ImageNet figures where the paper gives them.
Training, evaluation, export and the export's ``-info.json`` all read it.
"""
import difflib
import fnmatch
import functools
import glob
import hashlib
import numbers
import os
import re
import typing

from mxnet.context import cpu

from .models.asymmnet import AsymmNet, get_asymmnet_cfgs
from .models.features import FeatureExtractor
from .models.ghostnet import get_ghostnet
from .models.mobilenetv2 import MobileNetV2Asymm
from .params import classifier_outputs, load_matching, load_weights, structured_weights

__all__ = ['get_model', 'list_models', 'list_aliases', 'resolve_name', 'zoo_name',
           'register_model', 'register_alias', 'get_model_config', 'ModelConfig', 'PaperResult',
           'IMAGENET_MEAN_RGB', 'IMAGENET_STD_RGB', 'model_store_root', 'model_file', 'file_sha1',
           'WIDTHS', 'GHOSTNET_WIDTHS', 'pretrained_file', 'run_weights_file']

#: The width multipliers of the zoo.
WIDTHS = ('1.0', '0.75', '0.5', '0.35')
#: GhostNet's widths: those the original release builds and tries.
GHOSTNET_WIDTHS = ('1.3', '1.0', '0.75', '0.5')
#: ImageNet's per-channel mean and standard deviation of 0-255 RGB pixels.
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
IMAGENET_STD_RGB = (58.393, 57.12, 57.375)


class PaperResult(typing.NamedTuple):
    """An ImageNet result as the paper prints it."""
    top1: float      #: top-1 accuracy, %
    madds: float     #: multiply-adds, millions
    params: str      #: parameters, as printed (the original counter's figure)


class ModelConfig(typing.NamedTuple):
    """What a model expects of its input, and what the paper reports for it."""
    input_size: int = 224
    crop_ratio: float = 0.875            #: evaluation: resize to size / ratio, centre crop
    mean: tuple = IMAGENET_MEAN_RGB      #: of 0-255 RGB
    std: tuple = IMAGENET_STD_RGB
    paper: typing.Optional[PaperResult] = None


_MODELS = {}
_CONFIGS = {}
_ALIASES = {}
_PAPER = {
    'asymmnet_large_1.0': PaperResult(75.4, 216.9, '5.99M'),
    'asymmnet_large_0.5': PaperResult(69.2, 67.2, '2.8M'),
    'asymmnet_small_1.0': PaperResult(68.4, 57.7, '3.1M'),
}


def _register_in_gluoncv(name):
    # GluonCV's get_model looks names up in this dict; its own names keep their builders.
    import gluoncv.model_zoo.model_zoo as gluoncv_zoo
    gluoncv_zoo._models.setdefault(name, lambda **kwargs: get_model(name, **kwargs))


def register_model(name, builder, config=None):
    """Add ``builder(**kwargs) -> HybridBlock`` to the zoo under ``name``.

    Parameters
    ----------
    name : str
    builder : callable
    config : ModelConfig, optional
        Default: ImageNet's 224x224 preprocessing.

    The name is also registered in GluonCV's zoo.
    """
    _MODELS[name] = builder
    _CONFIGS[name] = config or ModelConfig(paper=_PAPER.get(name))
    _register_in_gluoncv(name)


def register_alias(alias, name):
    """Make ``alias`` another name of the zoo model ``name``, here and in GluonCV's zoo."""
    if name not in _MODELS:
        raise ValueError('cannot alias %r to %r, which is not a zoo model' % (alias, name))
    _ALIASES[alias] = name
    _register_in_gluoncv(alias)


def get_model_config(name):
    """The :class:`ModelConfig` of a zoo name (aliases allowed)."""
    return _CONFIGS[resolve_name(name)]


def _asymmnet(arch, multiplier, default_asymmrate, dropout=0.2, **kwargs):
    kwargs.setdefault('asymmrate', default_asymmrate)
    # Gluon's own prefix ('asymmnet0_'), not the original's '': a block with an empty
    # prefix names its children from the enclosing (or global) counters, so their
    # symbol names would change from one instance to the next (see backbones.py).
    kwargs.setdefault('name_prefix', None)
    return AsymmNet(*get_asymmnet_cfgs(arch), multiplier=multiplier, final_drop=dropout, **kwargs)


def _gluoncv(name, **kwargs):
    import gluoncv.model_zoo as gluoncv_zoo
    return gluoncv_zoo.get_model(name, pretrained=False, **kwargs)


def _gluoncv_mobilenetv2(multiplier, **kwargs):
    from gluoncv.model_zoo.mobilenet import get_mobilenet_v2
    return get_mobilenet_v2(multiplier, pretrained=False, **kwargs)


for _width in WIDTHS:
    for _arch in ('large', 'small'):
        register_model('asymmnet_%s_%s' % (_arch, _width),
                       functools.partial(_asymmnet, 'asymmnet_' + _arch, float(_width), 1))
        register_model('mobilenetv3_%s_%s' % (_arch, _width),
                       functools.partial(_asymmnet, 'asymmnet_' + _arch, float(_width), 0))
    register_model('mobilenetv2_asymm_' + _width,
                   functools.partial(MobileNetV2Asymm, float(_width)))
    register_model('mobilenetv2_' + _width, functools.partial(_gluoncv_mobilenetv2, float(_width)))
for _width in GHOSTNET_WIDTHS:
    register_model('ghostnet_' + _width, functools.partial(get_ghostnet, float(_width)))
for _name in ('mobilenetv3_large', 'mobilenetv3_small'):
    _MODELS[_name] = functools.partial(_gluoncv, _name)
    _CONFIGS[_name] = ModelConfig()
for _name in ('asymmnet_large', 'asymmnet_small', 'ghostnet'):
    register_alias(_name, _name + '_1.0')
del _width, _arch, _name


def list_models(pattern=None):
    """Sorted names of the zoo, optionally filtered by an fnmatch ``pattern``.

    Aliases (``asymmnet_large``, ``asymmnet_small``, ``ghostnet``) are not
    listed: see :func:`list_aliases`.
    """
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def list_aliases():
    """Every alias of the zoo and the name it stands for.

    ``{'asymmnet_large': 'asymmnet_large_1.0', ..., 'ghostnet': 'ghostnet_1.0'}``.
    """
    return dict(_ALIASES)


def resolve_name(name):
    """The zoo name behind ``name`` (an alias gives its target).

    Raises
    ------
    ValueError
        Unknown name (the message lists the closest names), or not a str.
    """
    if not isinstance(name, str):
        raise ValueError('a model name is a str (list_models() lists them), not %r' % (name,))
    name = _ALIASES.get(name, name)
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS) + list(_ALIASES), n=4, cutoff=0.5)
        hint = ('; closest: %s' % ', '.join(close)) if close else ''
        raise ValueError('unknown model %r%s (list_models() lists all %d)'
                         % (name, hint, len(_MODELS)))
    return name


def zoo_name(model, width_scale=None):
    """The zoo name of a model given, as in the original ``train.py``, with a separate width.

    ``zoo_name('asymmnet_small', 0.5)`` and ``zoo_name('asymmnet_small_0.5')``
    give ``asymmnet_small_0.5``.

    Raises
    ------
    ValueError
        The width does not exist for that model, or contradicts the name.
    """
    if width_scale is None:
        return model
    scaled = '%s_%s' % (model, float(width_scale))
    if scaled in _MODELS:
        return scaled
    family, _, width = model.rpartition('_')
    if model in _MODELS and family and _is_float(width):
        if float(width) == width_scale:
            return model
        raise ValueError('%s has width %s but the width asked for is %s'
                         % (model, width, width_scale))
    raise ValueError('%s has no width %s; zoo names with a width: %s'
                     % (model, width_scale,
                        ', '.join(n for n in sorted(_MODELS) if n.startswith(model + '_'))
                        or 'none for this model'))


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def model_store_root(root=None):
    """The local model store: ``root``, else ``$MXNET_HOME/models``, else ``~/.mxnet/models``."""
    if root is None:
        root = os.path.join(os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet')), 'models')
    return os.path.expanduser(root)


def file_sha1(path):
    """Hex sha1 of a file."""
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def model_file(name, tag=None, root=None):
    """Path of the verified weights of ``name`` in the local model store.

    Parameters
    ----------
    name : str
        A zoo name (aliases allowed).
    tag : str, optional
        First hex digits of the sha1 of the wanted file; default: the only (or
        newest) file of that model.
    root : str, optional
        Model store (see :func:`model_store_root`).

    Raises
    ------
    FileNotFoundError
        No such file, saying which file was expected where and how to add one.
    ValueError
        The file's sha1 does not match its name (a corrupt or renamed file).
    """
    name = resolve_name(name)
    root = model_store_root(root)
    pattern = os.path.join(root, '%s-%s.params' % (name, (tag or '') + '*'))
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        raise FileNotFoundError(
            'no weights for %s: expected %s-<sha1[:8]>.params in %s. There are no hosted '
            'weights; convert or copy a params file there with '
            '`python -m gluon_asymmnet.convert SRC.params --model %s`'
            % (name, name, root, name))
    path = found[-1]
    expected = os.path.basename(path)[len(name) + 1:-len('.params')]
    actual = file_sha1(path)
    if not actual.startswith(expected):
        raise ValueError('%s is corrupt: its sha1 is %s, the name says %s; delete it and '
                         'convert it again' % (path, actual[:8], expected))
    return path


#: Keywords of other libraries for a width: the zoo has the width in the name.
_WIDTH_KEYWORDS = ('width_scale', 'width_mult', 'multiplier')


def _unknown_keyword(name, error):
    """A TypeError saying which keyword ``name`` does not take (``error``: the builder's)."""
    match = re.search(r"(?:unexpected keyword argument|multiple values for argument) '(\w+)'",
                      str(error))
    if match is None:
        return error
    keyword = match.group(1)
    if keyword in _WIDTH_KEYWORDS:
        family = name.rpartition('_')[0] or name
        widths = sorted({n.rpartition('_')[2] for n in _MODELS if n.rpartition('_')[0] == family})
        hint = ('the width is part of the name: %s_<width>%s'
                % (family, ', width one of ' + ', '.join(widths) if widths else ''))
    elif keyword in ('asymmrate', 'shuffle_group'):
        hint = 'it has no asymmetrical bottleneck'
    else:
        hint = 'not a keyword of its network'
    return TypeError('%s does not take %s=: %s' % (name, keyword, hint))


def run_weights_file(run_dir):
    """The weights of a ``train_imagenet.py`` run folder: ``<model>-best.params``, else the
    newest epoch checkpoint.

    Raises
    ------
    FileNotFoundError
    """
    folder = glob.escape(run_dir)
    found = sorted(glob.glob(os.path.join(folder, '*-best.params')))
    found = found or sorted(glob.glob(os.path.join(folder, '*-epoch[0-9][0-9][0-9][0-9].params')))
    if not found:
        raise FileNotFoundError('%s: no <model>-best.params or epoch checkpoint' % run_dir)
    return found[-1]


def pretrained_file(name, pretrained, root=None):
    """The weights file that ``get_model(name, pretrained=...)`` loads.

    ``True``: the model store's file of ``name``; a folder: a training run's
    best weights; an existing file: that file; another string: the store's file
    whose sha1 starts with it.

    Raises
    ------
    FileNotFoundError, ValueError
        See :func:`model_file`.
    """
    if isinstance(pretrained, str) and os.path.isdir(pretrained):
        return run_weights_file(pretrained)
    if isinstance(pretrained, str) and os.path.isfile(pretrained):
        return pretrained
    return model_file(name, pretrained if isinstance(pretrained, str) else None, root)


def get_model(name, pretrained=False, ctx=cpu(), root=None, features_only=False,
              out_indices=(1, 2, 3, 4), **kwargs):
    """Build a model of the zoo.

    Parameters
    ----------
    name : str
        See :func:`list_models`; an unknown name raises ``ValueError`` naming
        the closest ones.
    pretrained : bool or str
        Load weights (never downloads): ``True``, the local model store's; a
        string: a weights file (any the package writes: checkpoint, export, store
        entry, or the original release's), a training run folder (its best
        weights), or the sha1 prefix of a store file. With ``classes`` other than
        the weights', every tensor that fits is loaded and the classifier is new
        (Xavier): fine-tuning, as timm's ``num_classes``. ImageNet weights attach
        ``classes``/``synset`` names.
    ctx : Context or list of Context
        Where parameters live.
    root : str, optional
        Model store (see :func:`model_store_root`).
    features_only : bool
        Return a :class:`FeatureExtractor` giving the maps at ``out_indices``.
    out_indices : sequence of int
        With ``features_only``: indices into the strides (2, 4, 8, 16, 32).
    **kwargs
        Passed to the network: ``classes``, ``dropout``, ``asymmrate``,
        ``last_gamma``, ``norm_layer``, ``norm_kwargs``, ``shuffle_group``...

    Returns
    -------
    HybridBlock
        With ``pretrained``, loaded on ``ctx``; otherwise not initialised (call
        ``initialize``), as in GluonCV.

    Raises
    ------
    ValueError
        Unknown name (or not a str), bad ``classes``, a negative ``asymmrate`` or
        ``shuffle_group``, weights that do not fit (naming the tensor).
    TypeError
        A keyword the network does not take, named (a width keyword: the width is
        part of the name).
    FileNotFoundError
        No such weights.
    """
    canonical = resolve_name(name)
    classes = kwargs.get('classes', 1000)
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ValueError('classes must be an int >= 1, got %r' % (classes,))
    for key in ('asymmrate', 'shuffle_group'):
        if kwargs.get(key) is not None and kwargs[key] < 0:
            raise ValueError('%s must be >= 0, not %r' % (key, kwargs[key]))
    try:
        net = _MODELS[canonical](**kwargs)
    except TypeError as error:
        raise _unknown_keyword(canonical, error) from None
    if pretrained:
        path = pretrained_file(canonical, pretrained, root)
        size = _CONFIGS[canonical].input_size
        weights = structured_weights(path, net)
        saved_classes = classifier_outputs({n: v.shape for n, v in weights.items()})
        if saved_classes is not None and saved_classes != classes:
            load_matching(net, path, size, ctx=ctx)
        else:
            load_weights(net, path, size, ctx=ctx, what=canonical)
            if classes == 1000:
                from gluoncv.data import ImageNet1kAttr
                attrib = ImageNet1kAttr()
                net.synset, net.classes, net.classes_long = (attrib.synset, attrib.classes,
                                                             attrib.classes_long)
    if features_only:
        net = FeatureExtractor(net, out_indices)
    return net
