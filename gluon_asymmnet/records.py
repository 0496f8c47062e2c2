"""Typed, versioned records that pass between the tools: a run's recipe and a checkpoint.

A training run folder holds one :class:`RunRecord` (``run.json``): the network
(:class:`NetSpec`), what it takes as input (:class:`InputSpec`: size, crop,
mean/std, classes and their names) and the training recipe
(:class:`TrainRecipe`), plus one :class:`Phase` per start or resume (the
changes a resume made, so the recipe of every epoch stays recoverable). Each
checkpoint has a :class:`CheckpointRecord` (``STEM.json``): where training
stands and the network and input it needs to be evaluated, so that a
checkpoint alone evaluates and exports with the run's own preprocessing.

Each record has one writer (:func:`write_run_record`,
:func:`write_checkpoint_record`) and one reader (:func:`read_run_record`,
:func:`read_checkpoint_record`); the readers validate every field and raise
:class:`RecordError`, one line naming the file and the field. ``version``
is :data:`VERSION`; a newer one is refused, an older format is read (the
``args.json`` and checkpoint ``.json`` files of gluon-asymmnet 0.1).

:meth:`NetSpec.get_model_kwargs` is the one mapping from a network's record to
:func:`gluon_asymmnet.get_model` arguments; training, evaluation, export and the
experiment runner all build networks through it.
"""
import dataclasses
import json
import math
import os
import time
import typing

from .errors import UsageError
from .fileio import atomic_write_json
from .model_zoo import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, get_model, resolve_name

__all__ = ['VERSION', 'RecordError', 'NetSpec', 'InputSpec', 'TrainRecipe', 'Phase',
           'RunRecord', 'CheckpointRecord', 'RUN_RECORD', 'LEGACY_RUN_RECORD',
           'read_run_record', 'write_run_record', 'read_checkpoint_record',
           'write_checkpoint_record', 'recipe_changes', 'RESUMABLE_CHANGES']

#: Format version written by this package.
VERSION = 1
#: The run record's file name in a run folder.
RUN_RECORD = 'run.json'
#: What gluon-asymmnet 0.1 wrote instead (the parsed flags); read, never written.
LEGACY_RUN_RECORD = 'args.json'


class RecordError(UsageError):
    """A record file that is missing, unreadable or invalid: ``PATH: field F: reason``."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_field(path, name, value, kind):
    """``value`` converted to ``kind`` (a type annotation of the records), or RecordError."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union:            # Optional[X]
        if value is None:
            return None
        return _check_field(path, name, value, args[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecordError('%s: field %s: expected a list, got %r' % (path, name, value))
        return tuple(_check_field(path, name, item, args[0]) for item in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise RecordError('%s: field %s: expected true or false, got %r' % (path, name, value))
        return value
    if kind is int:
        if not (_is_number(value) and float(value).is_integer()):
            raise RecordError('%s: field %s: expected an integer, got %r' % (path, name, value))
        return int(value)
    if kind is float:
        if not _is_number(value) or not math.isfinite(value):
            raise RecordError('%s: field %s: expected a finite number, got %r'
                              % (path, name, value))
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise RecordError('%s: field %s: expected a string, got %r' % (path, name, value))
        return value
    if dataclasses.is_dataclass(kind):
        return kind.from_dict(value, path, prefix=name + '.')
    raise TypeError('no check for %r' % (kind,))


def _from_dict(cls, obj, path, prefix=''):
    """Build the dataclass ``cls`` from the JSON object ``obj``, checking every field."""
    if not isinstance(obj, dict):
        raise RecordError('%s: %s: expected a JSON object, got %s'
                          % (path, prefix.rstrip('.') or 'the record', type(obj).__name__))
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        if field.name not in obj:
            if (field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING):
                raise RecordError('%s: field %s is missing' % (path, name))
            continue
        values[field.name] = _check_field(path, name, obj[field.name], hints[field.name])
    record = cls(**values)
    problem = record.problem()
    if problem:
        field, reason = problem
        raise RecordError('%s: field %s%s: %s' % (path, prefix, field, reason))
    return record


class _Record:
    """What every record does: from/to JSON-able dicts, with validation."""

    @classmethod
    def from_dict(cls, obj, path='<record>', prefix=''):
        """The record of the JSON object ``obj`` (read from ``path``), validated.

        Raises
        ------
        RecordError
        """
        return _from_dict(cls, obj, path, prefix)

    def to_dict(self):
        """A JSON-able dict (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def problem(self):
        """``(field, reason)`` of the first invalid value, or None."""
        return None


@dataclasses.dataclass(frozen=True)
class NetSpec(_Record):
    """A network of the zoo: name and the options it was built with.

    Parameters
    ----------
    name : str
        Canonical zoo name (``asymmnet_small_0.5``).
    classes : int
    dropout, asymmrate, shuffle_group : optional
        None: the model's default.
    last_gamma : bool
    """
    name: str
    classes: int
    dropout: typing.Optional[float] = None
    asymmrate: typing.Optional[int] = None
    shuffle_group: typing.Optional[int] = None
    last_gamma: bool = False

    def problem(self):
        try:
            resolve_name(self.name)
        except ValueError as error:
            return 'name', str(error)
        if self.classes < 1:
            return 'classes', 'must be at least 1, got %d' % self.classes
        if self.dropout is not None and not 0 <= self.dropout < 1:
            return 'dropout', 'must be in [0, 1), got %g' % self.dropout
        for field in ('asymmrate', 'shuffle_group'):
            if (getattr(self, field) or 0) < 0:
                return field, 'must be at least 0, got %d' % getattr(self, field)
        return None

    def get_model_kwargs(self):
        """Keyword arguments of :func:`gluon_asymmnet.get_model` (options left unset are not
        passed, so the model's defaults apply)."""
        kwargs = {'classes': self.classes}
        for field in ('dropout', 'asymmrate', 'shuffle_group'):
            if getattr(self, field) is not None:
                kwargs[field] = getattr(self, field)
        if self.last_gamma:
            kwargs['last_gamma'] = True
        return kwargs

    def build(self, **kwargs):
        """The network (not initialised), as :func:`gluon_asymmnet.get_model` builds it.

        Raises
        ------
        UsageError
            The model does not take one of the options (naming the option).
        """
        options = dict(self.get_model_kwargs(), **kwargs)
        try:
            return get_model(self.name, **options)
        except ValueError as error:   # an unknown name, a bad value
            raise UsageError(str(error)) from None
        except TypeError:
            pass
        for option in sorted(options):      # find the one the family refuses
            if option == 'classes':
                continue
            try:
                get_model(self.name, **{option: options[option]})
            except TypeError:
                raise UsageError('%s does not take the option %s' % (self.name, option)) \
                    from None
        raise UsageError('%s cannot be built with %s' % (self.name, options))


@dataclasses.dataclass(frozen=True)
class InputSpec(_Record):
    """What a network takes and gives: preprocessing and classes.

    Parameters
    ----------
    input_size : int
        Side of the square input.
    crop_ratio : float
        Evaluation: resize the shorter side to ``input_size / crop_ratio``, centre crop.
    mean, std : tuple of float
        Of 0-255 RGB.
    class_names : tuple of str, optional
        One name per output, when known.
    """
    input_size: int = 224
    crop_ratio: float = 0.875
    mean: typing.Tuple[float, ...] = IMAGENET_MEAN_RGB
    std: typing.Tuple[float, ...] = IMAGENET_STD_RGB
    class_names: typing.Optional[typing.Tuple[str, ...]] = None

    def problem(self):
        if not 16 <= self.input_size <= 4096:
            return 'input_size', 'must be in [16, 4096], got %d' % self.input_size
        if not 0 < self.crop_ratio <= 1:
            return 'crop_ratio', 'must be in (0, 1], got %g' % self.crop_ratio
        if len(self.mean) != 3:
            return 'mean', 'must hold 3 values (R, G, B), got %d' % len(self.mean)
        if len(self.std) != 3 or min(self.std) <= 0:
            return 'std', 'must hold 3 positive values (R, G, B), got %s' % (list(self.std),)
        return None


@dataclasses.dataclass(frozen=True)
class TrainRecipe(_Record):
    """Everything that decides what a training run learns (besides network and input).

    The fields are ``train_imagenet.py``'s settings of the same names (see its
    ``--help``); ``data`` names the training data (``digits``, a RecordIO file or a
    class folder), ``pretrained`` where the initial weights came from (None:
    random).
    """
    data: str
    num_epochs: int
    batch_size: int
    optimizer: str = 'nag'
    lr: float = 0.1
    lr_base: typing.Optional[float] = None
    momentum: float = 0.9
    wd: float = 0.0001
    no_wd: bool = False
    lr_mode: str = 'step'
    lr_decay: float = 0.1
    lr_decay_period: int = 0
    lr_decay_epochs: typing.Tuple[int, ...] = (40, 60)
    warmup_lr: float = 0.0
    warmup_epochs: int = 0
    label_smoothing: bool = False
    mixup: bool = False
    mixup_alpha: float = 0.2
    mixup_off_epoch: int = 0
    teacher: typing.Optional[str] = None
    temperature: float = 20.0
    hard_weight: float = 0.5
    seed: int = 0
    num_training_samples: typing.Optional[int] = None
    min_random_area: float = 0.08
    mirror: bool = True
    dtype: str = 'float32'
    amp: bool = False
    pretrained: typing.Optional[str] = None
    backbone_lr_mult: float = 1.0
    freeze_epochs: int = 0

    def problem(self):
        if self.num_epochs < 1:
            return 'num_epochs', 'must be at least 1, got %d' % self.num_epochs
        if self.batch_size < 1:
            return 'batch_size', 'must be at least 1, got %d' % self.batch_size
        if self.optimizer not in ('nag', 'sgd'):
            return 'optimizer', "must be 'nag' or 'sgd', got %r" % self.optimizer
        if self.lr_mode not in ('step', 'poly', 'cosine'):
            return 'lr_mode', "must be 'step', 'poly' or 'cosine', got %r" % self.lr_mode
        if self.dtype not in ('float32', 'float16'):
            return 'dtype', "must be 'float32' or 'float16', got %r" % self.dtype
        return None


#: Recipe fields a resume may change: they decide how long or how the run is computed,
#: not what the epochs already done learned (the change is recorded as a phase);
#: ``data`` is where the data are (their classes and names are part of the input).
RESUMABLE_CHANGES = ('num_epochs', 'dtype', 'amp', 'data')


@dataclasses.dataclass(frozen=True)
class Phase(_Record):
    """One start of a run: from which epoch, and what it changed (``{field: [old, new]}``)."""
    start_epoch: int
    started: str
    changes: typing.Optional[typing.Tuple[typing.Tuple[str, ...], ...]] = None


@dataclasses.dataclass(frozen=True)
class RunRecord(_Record):
    """A training run: its network, input and recipe, and the phases it ran in.

    The recipe is that of the latest phase; each phase's ``changes`` hold
    ``(field, old, new)`` triples (as strings) against the phase before it.
    """
    net: NetSpec
    input: InputSpec
    recipe: TrainRecipe
    phases: typing.Tuple[Phase, ...] = ()
    version: int = VERSION

    def problem(self):
        if self.version > VERSION:
            return 'version', ('written by a newer gluon-asymmnet (format %d; this one reads '
                               'up to %d)' % (self.version, VERSION))
        if self.input.class_names is not None and len(self.input.class_names) != self.net.classes:
            return 'input.class_names', ('%d names for %d classes'
                                         % (len(self.input.class_names), self.net.classes))
        return None

    @classmethod
    def start(cls, net, input_spec, recipe, start_epoch=0):
        """The record of a run that starts now (at ``start_epoch``: from given weights)."""
        return cls(net=net, input=input_spec, recipe=recipe,
                   phases=(Phase(start_epoch=start_epoch, started=_now()),))

    def resumed(self, recipe, start_epoch):
        """This record with ``recipe`` as a new phase starting at ``start_epoch``."""
        changes = tuple((field, json.dumps(old), json.dumps(new))
                        for field, old, new in recipe_changes(self.recipe, recipe))
        phase = Phase(start_epoch=start_epoch, started=_now(), changes=changes or None)
        return dataclasses.replace(self, recipe=recipe, phases=self.phases + (phase,))


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%S%z')


def recipe_changes(old, new):
    """``[(field, old value, new value)]`` where two recipes differ, in field order."""
    return [(field.name, getattr(old, field.name), getattr(new, field.name))
            for field in dataclasses.fields(old)
            if getattr(old, field.name) != getattr(new, field.name)]


@dataclasses.dataclass(frozen=True)
class CheckpointRecord(_Record):
    """Where a training stands after a checkpoint, and what its weights need.

    ``params``/``states`` are file names in the checkpoint's folder (``states``
    None: parameters only). ``net`` and ``input`` are None only in checkpoints of
    gluon-asymmnet 0.1.
    """
    next_epoch: int
    next_batch: int
    params: str
    model: str
    best_top1: float = 0.0
    best_epoch: int = -1
    seed: int = 0
    states: typing.Optional[str] = None
    dtype: str = 'float32'
    net: typing.Optional[NetSpec] = None
    input: typing.Optional[InputSpec] = None
    version: int = VERSION

    def problem(self):
        if self.version > VERSION:
            return 'version', ('written by a newer gluon-asymmnet (format %d; this one reads '
                               'up to %d)' % (self.version, VERSION))
        if self.next_epoch < 0 or self.next_batch < 0:
            return 'next_epoch', 'the training position cannot be negative'
        if not 0 <= self.best_top1 <= 1:
            return 'best_top1', 'must be in [0, 1], got %g' % self.best_top1
        for field in ('params', 'states'):
            name = getattr(self, field)
            if name is not None and (not name or os.sep in name or name in ('.', '..')):
                return field, 'must be a file name in the checkpoint\'s folder, got %r' % name
        return None


def _read_json(path, what):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise RecordError('%s: no such %s' % (path, what)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError('%s: cannot read the %s (%s)'
                          % (path, what, getattr(error, 'strerror', None) or error)) from None
    except ValueError as error:
        raise RecordError('%s: the %s is not valid JSON (%s)' % (path, what, error)) from None


def _legacy_run_record(flags, path):
    """The :class:`RunRecord` of an ``args.json`` of gluon-asymmnet 0.1 (the parsed flags)."""
    if not isinstance(flags, dict):
        raise RecordError('%s: the run record: expected a JSON object' % path)
    from .model_zoo import zoo_name
    try:
        name = resolve_name(zoo_name(flags['model'], flags.get('width_scale')))
    except (KeyError, TypeError, ValueError) as error:
        raise RecordError('%s: field model: %s' % (path, error)) from None
    classes = flags.get('classes')
    net = {'name': name}
    for field in ('dropout', 'asymmrate', 'shuffle_group', 'last_gamma'):
        if flags.get(field) is not None:
            net[field] = flags[field]
    recipe = {field.name: flags[field.name] for field in dataclasses.fields(TrainRecipe)
              if flags.get(field.name) is not None}
    recipe['data'] = ('digits' if flags.get('dataset') == 'digits'
                      else flags.get('rec_train') or flags.get('data_dir') or '')
    inputs = {key: flags[key] for key in ('input_size', 'crop_ratio') if flags.get(key)}
    if flags.get('dataset') == 'digits':
        inputs['class_names'] = [str(digit) for digit in range(10)]
        classes = 10
    elif flags.get('data_dir') and os.path.isdir(os.path.join(flags['data_dir'], 'train')):
        inputs['class_names'] = sorted(os.listdir(os.path.join(flags['data_dir'], 'train')))
        classes = len(inputs['class_names'])
    net['classes'] = classes or 1
    record = RunRecord.from_dict({'net': net, 'input': inputs, 'recipe': recipe}, path)
    return record, classes is None


def read_run_record(run_dir):
    """The :class:`RunRecord` of a run folder (``run.json``, else 0.1's ``args.json``).

    Returns
    -------
    (RunRecord, bool)
        The record, and whether its class count still has to be read from the
        weights (0.1 records without ``--classes``).

    Raises
    ------
    RecordError
        No record, or a record that does not validate (naming the file and field).
    """
    path = os.path.join(run_dir, RUN_RECORD)
    if os.path.isfile(path):
        return RunRecord.from_dict(_read_json(path, 'run record'), path), False
    legacy = os.path.join(run_dir, LEGACY_RUN_RECORD)
    if os.path.isfile(legacy):
        return _legacy_run_record(_read_json(legacy, 'run record'), legacy)
    raise RecordError('%s: not a training run folder (no %s)' % (run_dir, RUN_RECORD))


def write_run_record(record, run_dir):
    """Write ``run.json`` of ``run_dir`` atomically; returns its path."""
    path = os.path.join(run_dir, RUN_RECORD)
    atomic_write_json(record.to_dict(), path, sort_keys=True)
    return path


def read_checkpoint_record(path):
    """The :class:`CheckpointRecord` of a checkpoint's ``.json``, validated.

    Raises
    ------
    RecordError
    """
    return CheckpointRecord.from_dict(_read_json(path, 'checkpoint record'), path)


def write_checkpoint_record(record, path):
    """Write a checkpoint's ``.json`` atomically."""
    atomic_write_json(record.to_dict(), path, sort_keys=True)
