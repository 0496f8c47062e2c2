"""Checkpoints that survive crashes: atomic files, a run-folder lock, resuming.

A checkpoint is three files with one stem in the run folder: ``STEM.params``
(``net.save_parameters``), ``STEM.states`` (``trainer.save_states``: optimizer
state, its update count and so the learning-rate position) and ``STEM.json``
(where training stands: ``next_epoch``, ``next_batch``, ``best_top1``,
``best_epoch``, ``seed``, file names). Every file is written to a temporary
name, flushed to disk (fsync) and renamed over its target, and the ``.json``
comes last, so a checkpoint whose ``.json`` exists is complete.

Stems: ``<model>-epoch<epoch:04d>`` after an epoch (the finished epoch, as
GluonCV numbers them), ``<model>-epoch<epoch:04d>-batch<k>`` after an
interruption inside an epoch (``k`` batches of it done), ``<model>-best`` for
the best validation top-1.
"""
import fcntl
import glob
import json
import os

from ..errors import UsageError
from ..fileio import atomic_link, atomic_save, atomic_write_json

__all__ = ['RunLock', 'save_checkpoint', 'mark_best', 'latest_checkpoint', 'read_checkpoint',
           'prune_checkpoints']

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


def _stem(run_dir, model, next_epoch, next_batch):
    if next_batch:
        name = '%s-epoch%04d-batch%d' % (model, next_epoch, next_batch)
    else:
        name = '%s-epoch%04d' % (model, next_epoch - 1)
    return os.path.join(run_dir, name)


def save_checkpoint(run_dir, model, net, trainer, state):
    """Write a complete checkpoint and return its ``.json`` path.

    Parameters
    ----------
    run_dir : str
    model : str
        Zoo name (the stem's prefix).
    net : gluon.Block
    trainer : gluon.Trainer or None
        ``None`` or a trainer that cannot save its states (parameters kept on
        a distributed kvstore's servers): only the parameters are saved.
    state : dict
        JSON-able training position; must hold ``next_epoch`` and ``next_batch``.
    """
    stem = _stem(run_dir, model, state['next_epoch'], state['next_batch'])
    atomic_save(stem + '.params', net.save_parameters)
    states = None
    if trainer is not None and _can_save_states(trainer):
        atomic_save(stem + '.states', trainer.save_states)
        states = os.path.basename(stem + '.states')
    meta = dict(state, model=model, params=os.path.basename(stem + '.params'), states=states)
    atomic_write_json(meta, stem + '.json')
    return stem + '.json'


def mark_best(checkpoint):
    """Make the complete checkpoint ``checkpoint`` (``.json``) the ``<model>-best`` one.

    Its files are hard-linked (no extra space, nothing rewritten), so a failure
    leaves the previous best checkpoint's files as they were.
    """
    meta = read_checkpoint(checkpoint)
    stem = os.path.join(os.path.dirname(checkpoint), '%s-%s' % (meta['model'], _BEST))
    atomic_link(meta['params'], stem + '.params')
    if meta['states']:
        atomic_link(meta['states'], stem + '.states')
    best = dict(meta, params=os.path.basename(stem + '.params'),
                states=meta['states'] and os.path.basename(stem + '.states'))
    atomic_write_json(best, stem + '.json')


def _can_save_states(trainer):
    kvstore = getattr(trainer, '_kvstore', None)
    return not (trainer._update_on_kvstore and kvstore is not None and 'dist' in kvstore.type)


def read_checkpoint(path):
    """The state of the checkpoint ``path`` (``.json``), with absolute ``params``/``states``.

    Raises
    ------
    UsageError
        Not a complete checkpoint (unreadable, or its files are missing).
    """
    try:
        with open(path) as meta_file:
            meta = json.load(meta_file)
        folder = os.path.dirname(os.path.abspath(path))
        for key in ('params', 'states'):
            if meta.get(key):
                meta[key] = os.path.join(folder, meta[key])
                if not os.path.isfile(meta[key]):
                    raise UsageError('%s: checkpoint file %s is missing' % (path, meta[key]))
        if 'next_epoch' not in meta or 'next_batch' not in meta:
            raise ValueError('no training position')
    except (OSError, ValueError, KeyError, TypeError) as error:
        if isinstance(error, UsageError):
            raise
        raise UsageError('%s: not a checkpoint of train_imagenet.py (%s)' % (path, error)) \
            from None
    return meta


def _checkpoints(run_dir):
    """``[((next_epoch, next_batch), meta)]`` of the complete checkpoints, oldest first.

    The best-score checkpoint is left out: training continues from where it
    stopped, not from its best epoch.
    """
    found = []
    for path in glob.glob(os.path.join(run_dir, '*.json')):
        if path.endswith('-%s.json' % _BEST) or os.path.basename(path) == 'args.json':
            continue
        try:
            meta = read_checkpoint(path)
        except UsageError:
            continue
        found.append(((meta['next_epoch'], meta['next_batch']), meta))
    return sorted(found, key=lambda item: item[0])


def latest_checkpoint(run_dir):
    """The newest complete checkpoint of ``run_dir`` (see :func:`read_checkpoint`), or None."""
    found = _checkpoints(run_dir)
    return found[-1][1] if found else None


def prune_checkpoints(run_dir, frequency):
    """Delete all but the newest checkpoint and those after every ``frequency``-th epoch.

    A checkpoint's ``.json`` goes first, so a listed file is never missing.
    """
    for (next_epoch, next_batch), meta in _checkpoints(run_dir)[:-1]:
        if next_batch == 0 and frequency > 0 and next_epoch % frequency == 0:
            continue
        stem = os.path.splitext(meta['params'])[0]
        for suffix in ('.json', '.params', '.states'):
            if os.path.exists(stem + suffix):
                os.remove(stem + suffix)
