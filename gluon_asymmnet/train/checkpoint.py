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
import shutil
import tempfile

import mxnet as mx

from .errors import UsageError

__all__ = ['atomic_save', 'atomic_link', 'RunLock', 'save_checkpoint', 'mark_best',
           'latest_checkpoint', 'read_checkpoint', 'prune_checkpoints', 'param_shapes',
           'saved_param_shapes', 'check_params_fit']

_BEST = 'best'


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(path, write):
    """Create ``path`` through ``write(temporary_path)``, then fsync and rename it into place.

    Readers see either the old file or the complete new one, never a partial one.

    Raises
    ------
    OSError
        ``cannot write PATH: reason`` (read-only folder, full disk, file size
        limit...); ``path`` is then as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=folder)
        os.close(fd)
        write(tmp)
        with open(tmp, 'rb+') as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except (OSError, mx.base.MXNetError) as error:
        reason = (error.strerror or str(error) if isinstance(error, OSError)
                  else 'the write was incomplete (disk full or file size limit?)')
        raise OSError('cannot write %s: %s' % (path, reason)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def atomic_link(source, path):
    """Make ``path`` the same file as ``source`` (a hard link, else a copy), atomically."""
    def link(tmp):
        os.remove(tmp)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    atomic_save(path, link)


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


def _write_meta(path, meta):
    def write(tmp):
        with open(tmp, 'w') as out:
            json.dump(meta, out, indent=1)
    atomic_save(path, write)


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
    _write_meta(stem + '.json', meta)
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
    _write_meta(stem + '.json', dict(meta, params=os.path.basename(stem + '.params'),
                                     states=meta['states'] and os.path.basename(stem + '.states')))


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
    """``{name: shape}`` of a parameter file (``arg:``/``aux:`` prefixes dropped).

    Raises
    ------
    UsageError
        The file is not a readable MXNet file of named parameters.
    """
    try:
        saved = mx.nd.load(path)
    except (OSError, UnicodeDecodeError, mx.base.MXNetError):
        raise UsageError('%s: not a readable MXNet parameter file' % path) from None
    if not isinstance(saved, dict):
        raise UsageError('%s: holds no named parameters' % path)
    return {name.split(':', 1)[-1]: tuple(array.shape) for name, array in saved.items()}


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
