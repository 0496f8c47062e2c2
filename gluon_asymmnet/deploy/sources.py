"""Networks with their weights: a zoo model and a parameter file, or a training run folder.

Both check the parameter file against the network before loading it
(:func:`gluon_asymmnet.params.check_params_fit`), so a misfit is one line
naming the first parameter that differs, and both give float32 networks, whatever
type the file holds (``train_imagenet.py --dtype float16`` saves float16
weights).
"""
import glob
import json
import os

import mxnet as mx

from ..errors import UsageError
from ..model_zoo import get_model, get_model_config, zoo_name
from ..params import (check_params_fit, classifier_outputs, param_shapes,
                      saved_param_shapes)
from .info import net_synset

__all__ = ['zoo_model', 'run_dir_model']


def _build(name, what, **kwargs):
    try:
        return get_model(name, **kwargs)
    except (ValueError, TypeError) as error:
        raise UsageError('%s: %s' % (what, error)) from None


def zoo_model(model, params_file=None, classes=None, width_scale=None, asymmrate=None,
              input_size=None, ctx=mx.cpu()):
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
        Outputs; default: read from ``params_file`` (the head's last weight), else 1000.
    asymmrate : int, optional
    input_size : int, optional
        Used to infer the shapes that ``params_file`` is checked against
        (default: the model's record).
    ctx : mx.Context or list of mx.Context

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
    try:
        name = zoo_name(model, width_scale)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if params_file and not os.path.isfile(params_file):
        raise UsageError('%s: no such parameter file' % params_file)
    saved_classes = classifier_outputs(saved_param_shapes(params_file)) if params_file else None
    classes = classes or saved_classes or 1000
    kwargs = {} if asymmrate is None else {'asymmrate': asymmrate}
    net = _build(name, '--model %s' % model, classes=classes, **kwargs)
    if params_file:
        size = input_size or get_model_config(name).input_size
        check_params_fit(params_file, param_shapes(net, size),
                         '--model %s (%d classes)' % (name, classes))
        # float32, whatever the file holds (a --dtype float16 run saves float16 weights)
        net.load_parameters(params_file, ctx=ctx, cast_dtype=True, dtype_source='current')
    else:
        net.initialize(mx.init.Xavier(), ctx=ctx)
    net.model_name = name
    net.classes = net_synset(net, classes)
    return net


def run_dir_model(run_dir, ctx=mx.cpu()):
    """The best network of a ``train_imagenet.py`` run folder, and how it takes its input.

    Reads ``args.json`` and ``<model>-best.params`` (else the newest epoch
    checkpoint ``<model>-epochNNNN.params``). Class names: the digits for
    ``--dataset digits``, the class folders for ``--data-dir``, none otherwise.

    Returns
    -------
    (HybridBlock, ModelConfig)
        The network (``model_name`` and ``classes`` set) and the model's record
        with the run's ``--input-size`` and ``--crop-ratio``.
    """
    args_file = os.path.join(run_dir, 'args.json')
    if not os.path.isfile(args_file):
        raise UsageError('%s: not a training run folder (no args.json)' % run_dir)
    try:
        with open(args_file) as f:
            args = json.load(f)
        name = zoo_name(args['model'], args.get('width_scale'))
    except (ValueError, KeyError, TypeError):
        raise UsageError('%s: not a valid args.json of train_imagenet.py' % args_file) from None
    epochs = sorted(glob.glob(os.path.join(glob.escape(run_dir), '%s-epoch[0-9][0-9][0-9][0-9]'
                                           '.params' % glob.escape(name))))
    found = [path for path in [os.path.join(run_dir, '%s-best.params' % name)] + epochs[::-1]
             if os.path.isfile(path)]
    if not found:
        raise UsageError('%s: no %s-best.params or epoch checkpoint' % (run_dir, name))
    classes = classifier_outputs(saved_param_shapes(found[0]))
    kwargs = {key: args[key] for key in ('dropout', 'asymmrate', 'shuffle_group')
              if args.get(key) is not None}
    if args.get('last_gamma'):
        kwargs['last_gamma'] = True
    net = _build(name, 'the model of ' + run_dir, classes=classes, **kwargs)
    config = get_model_config(name)
    config = config._replace(input_size=args.get('input_size') or config.input_size,
                             crop_ratio=args.get('crop_ratio') or config.crop_ratio)
    check_params_fit(found[0], param_shapes(net, config.input_size), 'the model of ' + run_dir)
    # float32, whatever the run trained in (--dtype float16 saves float16 weights)
    net.load_parameters(found[0], ctx=ctx, cast_dtype=True, dtype_source='current')
    net.model_name = name
    data_dir = args.get('data_dir')
    if args.get('dataset') == 'digits':
        net.classes = [str(digit) for digit in range(10)]
    elif data_dir and os.path.isdir(os.path.join(data_dir, 'train')):
        net.classes = sorted(os.listdir(os.path.join(data_dir, 'train')))
    else:
        net.classes = net_synset(net, classes)
    return net, config
