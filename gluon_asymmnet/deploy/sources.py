"""Networks with their weights: a zoo model and a weights file, or a training run folder.

Both check the weights against the network before loading them
(:func:`gluon_asymmnet.params.load_weights`), so a misfit is one line naming the
first parameter that differs, both give float32 networks whatever type the file
holds (``train_imagenet.py --dtype float16`` saves float16 weights), and both
give the input the weights were trained for: a training checkpoint's record
(``STEM.json`` beside ``STEM.params``) or a run's record carries its input size,
crop ratio, mean/std and class names, so a checkpoint evaluates and exports with
no preprocessing options.
"""
import os

import mxnet as mx

from ..errors import UsageError
from ..model_zoo import get_model_config, resolve_name, run_weights_file, zoo_name
from ..params import classifier_outputs, load_weights, saved_param_shapes, structured_weights
from ..records import NetSpec, read_checkpoint_record, read_run_record
from .info import net_synset

__all__ = ['zoo_model', 'run_dir_model', 'checkpoint_record_of']


def checkpoint_record_of(params_file):
    """The :class:`~gluon_asymmnet.records.CheckpointRecord` of a training checkpoint's
    weights (``STEM.json`` beside ``STEM.params``), or None for other weights files.

    Raises
    ------
    RecordError
        A record that is there but does not validate.
    """
    stem = os.path.splitext(params_file)[0]
    if not os.path.isfile(stem + '.json'):
        return None
    record = read_checkpoint_record(stem + '.json')
    if record.params != os.path.basename(params_file):
        return None    # a .json of something else
    return record


def _config(name, input_spec):
    """The model's record with the input a run trained for."""
    config = get_model_config(name)
    if input_spec is None:
        return config
    return config._replace(input_size=input_spec.input_size, crop_ratio=input_spec.crop_ratio,
                           mean=tuple(input_spec.mean), std=tuple(input_spec.std))


def _load(spec, params_file, input_size, ctx):
    net = spec.build()
    load_weights(net, params_file, input_size, ctx=ctx, what='%s (%d classes)'
                 % (spec.name, spec.classes))
    net.model_name = spec.name
    return net


def zoo_model(model, params_file=None, classes=None, width_scale=None, asymmrate=None,
              input_size=None, ctx=mx.cpu()):
    """A zoo network with checked weights, and the input it takes.

    Parameters
    ----------
    model : str or None
        Zoo name; with ``width_scale``, a family name such as ``asymmnet_small``
        is completed. None: the network of the checkpoint ``params_file``.
    params_file : str, optional
        Any weights file the package writes (see
        :func:`gluon_asymmnet.params.structured_weights`). A training
        checkpoint brings its network options, input and class names. Without
        a file the network gets random weights (for speed measurements only).
    classes : int, optional
        Outputs; default: those of the weights, else 1000.
    asymmrate : int, optional
    input_size : int, optional
        Used to infer the shapes the weights are checked against (default: the
        checkpoint's, else the model's record).
    ctx : mx.Context or list of mx.Context

    Returns
    -------
    (HybridBlock, ModelConfig)
        The network (``model_name`` and ``classes``, its class names or None,
        set) and the model's record with the input it was trained for.

    Raises
    ------
    UsageError
        Unknown model or width, a checkpoint of another model, or weights
        that do not fit (naming the first parameter that differs).
    """
    if params_file and not os.path.isfile(params_file):
        raise UsageError('%s: no such weights file' % params_file)
    record = checkpoint_record_of(params_file) if params_file else None
    try:   # a width the family lacks is an unknown name (the message lists the closest)
        name = resolve_name(zoo_name(model, width_scale)) if model else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if record is not None and record.net is not None:
        spec = record.net
        if name and resolve_name(name) != spec.name:
            raise UsageError('%s is a checkpoint of %s, not of %s' % (params_file, spec.name,
                                                                       name))
        if asymmrate is not None and asymmrate != (spec.asymmrate or asymmrate):
            raise UsageError('%s was trained with asymmrate %s, not %d'
                             % (params_file, spec.asymmrate, asymmrate))
        input_spec = record.input
        size = input_size or input_spec.input_size
        net = _load(spec, params_file, size, ctx)
        names = input_spec.class_names
        net.classes = list(names) if names else net_synset(net, spec.classes)
        return net, _config(spec.name, input_spec)
    if name is None:
        raise UsageError('%s is not a training checkpoint: name its model' % params_file)
    size = input_size or get_model_config(name).input_size
    if params_file:
        probe = NetSpec(name, 1000).build()
        saved = structured_weights(params_file, probe)
        saved_classes = classifier_outputs({n: v.shape for n, v in saved.items()})
        spec = NetSpec(name, classes or saved_classes or 1000, asymmrate=asymmrate)
        net = _load(spec, params_file, size, ctx)
    else:
        spec = NetSpec(name, classes or 1000, asymmrate=asymmrate)
        net = spec.build()
        net.initialize(mx.init.Xavier(), ctx=ctx)
        net.model_name = name
    net.classes = net_synset(net, spec.classes)
    return net, get_model_config(name)


def run_dir_model(run_dir, ctx=mx.cpu()):
    """The best network of a ``train_imagenet.py`` run folder, and how it takes its input.

    Reads the run's record (:func:`gluon_asymmnet.records.read_run_record`) and
    ``<model>-best.params`` (else the newest epoch checkpoint).

    Returns
    -------
    (HybridBlock, ModelConfig)
        The network (float32 whatever the run trained in; ``model_name`` and
        ``classes`` set) and the model's record with the run's input.

    Raises
    ------
    UsageError
        Not a run folder, an invalid record, no weights, or weights that do not fit.
    """
    if not os.path.isdir(run_dir):
        raise UsageError('%s: no such run folder' % run_dir)
    record, classes_unknown = read_run_record(run_dir)
    try:
        weights = run_weights_file(run_dir)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    spec = record.net
    if classes_unknown:
        spec = NetSpec(**dict(spec.__dict__, classes=classifier_outputs(
            saved_param_shapes(weights)) or spec.classes))
    net = _load(spec, weights, record.input.input_size, ctx)
    names = record.input.class_names
    net.classes = list(names) if names else net_synset(net, spec.classes)
    return net, _config(spec.name, record.input)
