"""Checkpoints that survive crashes: atomic files, a run-folder lock, resuming.

A checkpoint is three files with one stem in the run folder: ``STEM.params``
(``net.save_parameters``), ``STEM.states`` (``trainer.save_states``: optimizer
state, its update count and so the learning-rate position) and ``STEM.json``, a
:class:`~gluon_asymmnet.records.CheckpointRecord` (where training stands, and the
network and input the weights need, so that a checkpoint alone evaluates and
exports as its run would). Every file is written to a temporary name, flushed to
disk (fsync) and renamed over its target, and the ``.json`` comes last, so a
checkpoint whose ``.json`` exists was complete when written; resuming still
checks every file (:func:`checkpoint_problem`) and passes over damaged ones.

Stems: ``<model>-epoch<epoch:04d>`` after an epoch (the finished epoch, as
GluonCV numbers them), ``<model>-epoch<epoch:04d>-batch<k>`` after an
interruption inside an epoch (``k`` batches of it done), ``<model>-best`` for
the best validation top-1.
"""
import dataclasses
import fcntl
import glob
import os
import pickle
import re
import typing

import mxnet as mx

from ..errors import UsageError
from ..fileio import atomic_link, atomic_save
from ..mxnet_private import trainer_kvstore
from ..params import check_params_fit
from ..records import CheckpointRecord, read_checkpoint_record, write_checkpoint_record

__all__ = ['RunLock', 'Checkpoint', 'save_checkpoint', 'mark_best', 'latest_checkpoint',
           'read_checkpoint', 'checkpoint_problem', 'check_states_fit', 'prune_checkpoints']

_BEST = 'best'


class RunLock:
    """An exclusive lock on a run folder, held while a training writes to it.

    The lock (``flock`` on ``<run_dir>/.lock``) is released when the process
    ends, however it ends. A second training on the same folder gets a
    :class:`UsageError` naming the process that holds it.
    """

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, '.lock')
        self._file = None

    def acquire(self):
        """Take the lock or raise :class:`UsageError`."""
        handle = open(self.path, 'a+')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or 'another process'
            handle.close()
            raise UsageError('%s is in use by another training (pid %s); wait for it or use '
                             'another --tag-name' % (os.path.dirname(self.path), owner)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        self._remove_stale_temporaries()
        return self

    def _remove_stale_temporaries(self):
        """Delete what killed :func:`atomic_save` calls left (``.NAME.xxxx``): only
        the lock holder writes here, so no other writer can own them."""
        folder = os.path.dirname(self.path)
        for name in os.listdir(folder):
            if name.startswith('.') and name != '.lock' and os.path.isfile(
                    os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))

    def release(self):
        """Let go of the lock."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class Checkpoint(typing.NamedTuple):
    """A checkpoint's record and where its files are."""
    record: CheckpointRecord
    path: str     #: its ``.json``

    @property
    def params(self):
        """Absolute path of the parameters."""
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), self.record.params)

    @property
    def states(self):
        """Absolute path of the optimizer states, or None."""
        if self.record.states is None:
            return None
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), self.record.states)

    @property
    def position(self):
        """``(next_epoch, next_batch)``."""
        return self.record.next_epoch, self.record.next_batch


def _stem(run_dir, model, next_epoch, next_batch):
    if next_batch:
        name = '%s-epoch%04d-batch%d' % (model, next_epoch, next_batch)
    else:
        name = '%s-epoch%04d' % (model, next_epoch - 1)
    return os.path.join(run_dir, name)


def save_checkpoint(run_dir, net, trainer, record):
    """Write a complete checkpoint and return its ``.json`` path.

    Parameters
    ----------
    run_dir : str
    net : gluon.Block
    trainer : gluon.Trainer or None
        ``None`` or a trainer that cannot save its states (parameters kept on
        a distributed kvstore's servers): only the parameters are saved.
    record : CheckpointRecord
        Its ``params``/``states`` are replaced by the files written here.
    """
    stem = _stem(run_dir, record.model, record.next_epoch, record.next_batch)
    atomic_save(stem + '.params', net.save_parameters)
    states = None
    if trainer is not None and _can_save_states(trainer):
        atomic_save(stem + '.states', trainer.save_states)
        states = os.path.basename(stem + '.states')
    record = dataclasses.replace(record, params=os.path.basename(stem + '.params'),
                                 states=states)
    write_checkpoint_record(record, stem + '.json')
    return stem + '.json'


def mark_best(checkpoint):
    """Make the complete checkpoint ``checkpoint`` (``.json``) the ``<model>-best`` one.

    Its files are hard-linked (no extra space, nothing rewritten), so a failure
    leaves the previous best checkpoint's files as they were.
    """
    found = read_checkpoint(checkpoint)
    stem = os.path.join(os.path.dirname(checkpoint), '%s-%s' % (found.record.model, _BEST))
    atomic_link(found.params, stem + '.params')
    if found.states:
        atomic_link(found.states, stem + '.states')
    best = dataclasses.replace(found.record, params=os.path.basename(stem + '.params'),
                               states=found.states and os.path.basename(stem + '.states'))
    write_checkpoint_record(best, stem + '.json')


def _can_save_states(trainer):
    on_kvstore, kvstore = trainer_kvstore(trainer)
    return not (on_kvstore and kvstore is not None and 'dist' in kvstore.type)


def read_checkpoint(path):
    """The :class:`Checkpoint` of ``path`` (its ``.json``), its files present.

    Raises
    ------
    UsageError
        Not a checkpoint record (naming the field), or one of its files is missing.
    """
    record = read_checkpoint_record(path)
    found = Checkpoint(record, path)
    for file in (found.params, found.states):
        if file and not os.path.isfile(file):
            raise UsageError('%s: checkpoint file %s is missing' % (path, file))
    return found


def check_states_fit(path, shapes):
    """Check that optimizer states saved by ``trainer.save_states`` fit the parameters.

    Parameters
    ----------
    path : str
    shapes : list of tuple
        The shapes of the trainer's parameters, in its order.

    Raises
    ------
    UsageError
        Unreadable (empty, truncated, not MXNet's), or a state of another shape
        or for a parameter the network does not have.
    """
    try:
        with open(path, 'rb') as handle:
            saved = pickle.loads(handle.read())
        states = saved[0] if isinstance(saved, tuple) else saved
        if not isinstance(states, dict):
            raise ValueError('no states')
    except Exception as error:   # pickle raises anything its input makes it raise
        raise UsageError('%s: not readable optimizer states (%s)'
                         % (path, type(error).__name__)) from None
    for index, state in states.items():
        if not isinstance(index, int) or not 0 <= index < len(shapes):
            raise UsageError('%s: holds states of a parameter %r that the model lacks '
                             '(it has %d)' % (path, index, len(shapes)))
        arrays = state if isinstance(state, (tuple, list)) else [state]
        for array in arrays:
            if isinstance(array, mx.nd.NDArray) and tuple(array.shape) != tuple(shapes[index]):
                raise UsageError('%s does not fit the model: the state of parameter %d has '
                                 'shape %s, the parameter %s' % (path, index, array.shape,
                                                                 tuple(shapes[index])))


def checkpoint_problem(found, shapes, state_shapes):
    """Why the checkpoint ``found`` cannot be resumed from, or None if it is whole.

    Parameters
    ----------
    found : Checkpoint
    shapes : dict
        ``{structured name: shape}`` of the network.
    state_shapes : list of tuple
        The parameter shapes in the trainer's order (see :func:`check_states_fit`).
    """
    try:
        check_params_fit(found.params, shapes, 'the model')
        if found.states:
            check_states_fit(found.states, state_shapes)
    except UsageError as error:
        return str(error)
    return None


#: Names of the checkpoint records of a run folder (``-best`` included).
_RECORD_NAME = re.compile(r'.+-(epoch\d{4}(-batch\d+)?|%s)\.json$' % _BEST)


def _checkpoints(run_dir, best=False):
    """``([Checkpoint], [(path, reason)])``: the checkpoints of ``run_dir`` whose record
    reads, oldest first (the best-score one last among equals), and the records that do not.

    The best-score checkpoint is left out unless ``best``: training continues from
    where it stopped, not from its best epoch.
    """
    found, damaged = [], []
    for path in glob.glob(os.path.join(glob.escape(run_dir), '*.json')):
        name = os.path.basename(path)
        if not _RECORD_NAME.match(name) or (name.endswith('-%s.json' % _BEST) and not best):
            continue
        try:
            found.append(read_checkpoint(path))
        except UsageError as error:
            damaged.append((path, str(error)))
    return (sorted(found, key=lambda item: (item.position, not item.path.endswith(
        '-%s.json' % _BEST))), sorted(damaged))


def latest_checkpoint(run_dir, shapes=None, state_shapes=None):
    """The newest whole checkpoint of ``run_dir``, and those passed over as damaged.

    The best-score checkpoint counts only where every newer one is damaged.

    Parameters
    ----------
    run_dir : str
    shapes, state_shapes : optional
        Check the files against the network (see :func:`checkpoint_problem`);
        None: only that the record reads and its files exist.

    Returns
    -------
    (Checkpoint or None, list of (str, str))
        The checkpoint, and ``(file, why it was passed over)`` of every newer
        (or unreadable) one.
    """
    found, damaged = _checkpoints(run_dir, best=True)
    skipped = list(damaged)
    for candidate in reversed(found):
        problem = None if shapes is None else checkpoint_problem(candidate, shapes,
                                                                 state_shapes)
        if problem is None:
            return candidate, skipped
        skipped.append((candidate.path, problem))
    return None, skipped


def prune_checkpoints(run_dir, frequency):
    """Delete all but the newest checkpoint and those after every ``frequency``-th epoch.

    A checkpoint's ``.json`` goes first, so a listed file is never missing.
    """
    for found in _checkpoints(run_dir)[0][:-1]:
        next_epoch, next_batch = found.position
        if next_batch == 0 and frequency > 0 and next_epoch % frequency == 0:
            continue
        stem = os.path.splitext(found.params)[0]
        for suffix in ('.json', '.params', '.states'):
            if os.path.exists(stem + suffix):
                os.remove(stem + suffix)
