"""The grid of an experiment: zoo models x widths x ``asymmrate`` x ``shuffle_group`` x seeds.

A grid is a list of :class:`Arm` (one cartesian product each) and a number of
seeds; :func:`expand` checks it against the zoo and turns it into
:class:`Cell` records, one training run each.  Everything a user can get
wrong (an unknown model, a width its family lacks, ``asymmrate`` or
``shuffle_group`` on a model without asymmetrical bottlenecks) raises
:class:`~gluon_asymmnet.train.errors.UsageError` before anything trains.
"""
import collections
import functools

from .. import model_zoo
from ..errors import UsageError

__all__ = ['Arm', 'Cell', 'expand', 'model_options', 'split_width', 'SAME_NETWORK_AT_R0']

#: Zoo families that are another family's network at ``asymmrate=0`` (the r=0 twin of a row
#: of the key family may be a row of the value family).
SAME_NETWORK_AT_R0 = {'asymmnet_large': 'mobilenetv3_large',
                      'asymmnet_small': 'mobilenetv3_small'}


class Arm(collections.namedtuple('Arm', 'models widths asymmrates shuffle_groups optional')):
    """One cartesian product of a grid.

    Parameters
    ----------
    models : tuple of str
        Zoo names (``asymmnet_small_0.5``), or families (``asymmnet_small``) when
        ``widths`` is given.
    widths : tuple of str, or None
        Width multipliers of the families; ``'all'`` alone: every width the zoo
        has for each family; None: ``models`` are zoo names.
    asymmrates : tuple of int, or None
        None: each model's default.
    shuffle_groups : tuple of int, or None
        None: each model's default.
    optional : bool
        Families that are not in the zoo are left out (with a note) instead of
        being an error: presets name models that other branches add.
    """

    def __new__(cls, models, widths=None, asymmrates=None, shuffle_groups=None, optional=False):
        return super().__new__(cls, tuple(models), widths, asymmrates, shuffle_groups, optional)


class Cell(collections.namedtuple('Cell', 'model family width asymmrate shuffle_group seed')):
    """One training run: a zoo model with its options and a seed.

    ``asymmrate``/``shuffle_group`` are None for a model that does not take them;
    ``width`` is None for a model without a width in its name.
    """

    @property
    def variant(self):
        """The row of the report this cell is a seed of."""
        return self[:5]

    @property
    def tag(self):
        """``--tag-name`` of the run: ``r<asymmrate>-g<shuffle>-seed<seed>``."""
        parts = [] if self.asymmrate is None else ['r%d' % self.asymmrate]
        parts += [] if self.shuffle_group is None else ['g%d' % self.shuffle_group]
        return '-'.join(parts + ['seed%d' % self.seed])

    @property
    def run_name(self):
        """The run folder's name, ``<model>-<tag>`` (as ``train_imagenet.py`` names it)."""
        return '%s-%s' % (self.model, self.tag)

    def model_kwargs(self):
        """``get_model`` keyword arguments of the cell's options."""
        kwargs = {}
        if self.asymmrate is not None:
            kwargs['asymmrate'] = self.asymmrate
        if self.shuffle_group is not None:
            kwargs['shuffle_group'] = self.shuffle_group
        return kwargs

    def train_flags(self):
        """The flags of ``train_imagenet.py`` that pick this cell's model and seed."""
        flags = ['--model', self.model, '--seed', str(self.seed)]
        for name, value in sorted(self.model_kwargs().items()):
            flags += ['--' + name.replace('_', '-'), str(value)]
        return flags


def split_width(name):
    """``(family, width)`` of a zoo name (``('asymmnet_small', '0.5')``), else ``(name, None)``."""
    family, _, width = name.rpartition('_')
    try:
        float(width)
    except ValueError:
        return name, None
    return (family, width) if family else (name, None)


@functools.lru_cache(maxsize=None)
def model_options(name):
    """``(default asymmrate or None, takes asymmrate, takes shuffle_group)`` of a zoo model.

    Found by building the (uninitialised) network: a model without asymmetrical
    bottlenecks rejects the keyword with ``TypeError``.
    """
    def takes(**kwargs):
        try:
            return model_zoo.get_model(name, classes=10, **kwargs)
        except TypeError:
            return None
    with_rate = takes(asymmrate=0)
    default = getattr(takes(), 'asymmrate', None) if with_rate is not None else None
    return default, with_rate is not None, takes(shuffle_group=0) is not None


def _family_widths(family):
    return sorted((w for f, w in map(split_width, model_zoo.list_models())
                   if f == family and w is not None),
                  key=float)


def _models(arm, notes):
    """The zoo names of an arm."""
    if arm.widths is None:
        names = []
        for name in arm.models:
            try:
                names.append(model_zoo.resolve_name(name))
            except ValueError as error:
                if not arm.optional:
                    raise UsageError(str(error)) from None
                notes.append('%s is not in this zoo: left out' % name)
        return names
    names = []
    for family in arm.models:
        have = _family_widths(family)
        if not have:
            if arm.optional:
                notes.append('%s is not in this zoo: left out' % family)
                continue
            raise UsageError('%s is not a model family of the zoo (a family has names '
                             '<family>_<width>, e.g. asymmnet_small_0.5)' % family)
        widths = have if tuple(arm.widths) == ('all',) else arm.widths
        for width in widths:
            canonical = _width_text(width)
            if canonical not in have and arm.optional:
                notes.append('%s has no width %s in this zoo: left out' % (family, width))
            elif canonical not in have:
                raise UsageError('%s has no width %s (it has %s)'
                                 % (family, width, ', '.join(have)))
            else:
                names.append('%s_%s' % (family, canonical))
    return names


def _width_text(width):
    try:
        value = float(width)
    except ValueError:
        raise UsageError('width %r is not a number' % (width,)) from None
    if not value > 0:
        raise UsageError('widths must be > 0, not %s' % width)
    return str(value)


def _options(name, asymmrates, shuffle_groups):
    """The ``(asymmrate, shuffle_group)`` pairs of ``name``, checked against the model."""
    default, takes_rate, takes_shuffle = model_options(name)
    if asymmrates is not None and not takes_rate:
        raise UsageError('%s has no asymmetrical bottleneck: --asymmrate does not apply to it '
                         '(leave it out of the grid, or give it in an arm of its own)' % name)
    if shuffle_groups is not None and not takes_shuffle:
        raise UsageError('%s has no channel shuffle: --shuffle-group does not apply to it' % name)
    rates = asymmrates if asymmrates is not None else [default]
    groups = shuffle_groups if shuffle_groups is not None else [0 if takes_shuffle else None]
    for value in list(rates) + list(groups):
        if value is not None and value < 0:
            raise UsageError('asymmrate and shuffle_group must be >= 0, not %d' % value)
    # shuffling needs reused input copies: at r=0 every group count is the same network
    pairs = list(dict.fromkeys((r, 0 if r == 0 and g is not None else g)
                               for r in rates for g in groups))
    for rate, group in pairs:
        _check_build(name, rate, group)
    return pairs


@functools.lru_cache(maxsize=None)
def _check_build(name, rate, group):
    """Build the cell's (uninitialised) network, so that a grid fails before its first
    cell trains, not when a later cell's network cannot be built."""
    kwargs = Cell(name, None, None, rate, group, 0).model_kwargs()
    try:
        model_zoo.get_model(name, classes=10, **kwargs)
    except (ValueError, TypeError) as error:
        raise UsageError('%s with %s: %s' % (name, ', '.join(
            '%s=%s' % item for item in sorted(kwargs.items())) or 'its defaults', error)) from None


def expand(arms, seeds):
    """Check a grid and list its cells.

    Parameters
    ----------
    arms : list of Arm
    seeds : int
        Seeds ``0 .. seeds-1`` of every variant.

    Returns
    -------
    (list of Cell, list of str)
        The cells (each once, in grid order) and notes on what was left out.

    Raises
    ------
    UsageError
        Unknown model, a width a family lacks, ``asymmrate``/``shuffle_group`` on
        a model that does not take them, a cell whose network cannot be built (each is
        built, uninitialised, here), ``seeds < 1``, an empty grid.
    """
    if seeds < 1:
        raise UsageError('--seeds must be >= 1, not %d' % seeds)
    cells, notes = [], []
    for arm in arms:
        for name in _models(arm, notes):
            family, width = split_width(name)
            for rate, group in _options(name, arm.asymmrates, arm.shuffle_groups):
                cells += [Cell(name, family, width, rate, group, seed) for seed in range(seeds)]
    unique = list(dict.fromkeys(cells))
    if not unique:
        raise UsageError('the grid has no cells')
    return unique, notes
