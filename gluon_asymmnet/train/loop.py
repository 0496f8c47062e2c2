"""The epoch loop: forward/backward over the devices, metrics, validation, checkpoints.

What the loop needs comes ready-built in a :class:`Job` (see ``main.build_job``).
Stopping: SIGINT/SIGTERM set a flag; the current batch finishes, a checkpoint
is written and :func:`train` returns. A non-finite loss stops the run before
the step that would spoil the weights (:class:`~.errors.NonFiniteLoss`): the
last good checkpoint stays the newest.
"""
import collections
import itertools
import math
import random
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data import batches, split_batch
from ..records import CheckpointRecord
from . import precision as precision_mod
from .checkpoint import mark_best, prune_checkpoints, save_checkpoint
from .errors import NonFiniteLoss
from .progress import RunProgress
from .run_dir import BATCH_LINE

__all__ = ['Job', 'Validation', 'train', 'validate', 'soft_targets']

#: Label smoothing: the true class gets ``1 - eta + eta / classes``.
SMOOTHING_ETA = 0.1

#: Everything :func:`train` uses. ``recipe``: the run's
#: :class:`~gluon_asymmnet.records.TrainRecipe`; ``net_spec``/``input_spec``: what
#: the checkpoints record; ``train_data``/``val_data``: DataIters or DataLoaders
#: (``val_data`` may be None); ``num_batches``: training batches per epoch;
#: ``step_size``: the ``batch_size`` of ``trainer.step``; ``teacher``: a network or
#: None; ``start``: ``(epoch, batch)`` to begin at; ``best``: ``(top1, epoch)`` so
#: far; ``rank``: kvstore rank; ``writes``: whether this process writes checkpoints;
#: ``backbone``: the parameters outside the classifier (``recipe.backbone_lr_mult``,
#: frozen for ``recipe.freeze_epochs``).
Job = collections.namedtuple(
    'Job', 'recipe net_spec input_spec model net trainer loss_fn precision ctx train_data '
           'val_data num_batches batch_size step_size classes teacher start best rank writes '
           'run_dir backbone log_interval save_frequency')


def soft_targets(label, classes, eta=0.0, lam=1.0):
    """One-hot targets, smoothed by ``eta`` and mixed (mixup) with the reversed batch by ``lam``."""
    def smooth(labels):
        return mx.nd.one_hot(labels, classes, on_value=1 - eta + eta / classes,
                             off_value=eta / classes)
    if lam >= 1:
        return smooth(label)
    return lam * smooth(label) + (1 - lam) * smooth(label[::-1])


def _seed(seed):
    seed %= 2 ** 31
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


#: What :func:`validate` measures: top-1 and top-5 accuracy (top5 None for 5 classes or
#: fewer: it would always be 1) and the mean cross-entropy of the true labels (infinite
#: where a logit overflowed: the log shows it, ``metrics.jsonl`` records null).
Validation = collections.namedtuple('Validation', 'top1 top5 loss')


def validate(job):
    """The :class:`Validation` of ``job.net`` on ``job.val_data``.

    The loss is the plain softmax cross-entropy of the true labels, whatever the
    training loss (label smoothing, mixup and distillation change only that one), so
    that runs compare.
    """
    top1 = mx.metric.Accuracy()
    top5 = mx.metric.TopKAccuracy(5) if job.classes > 5 else None
    cross_entropy = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_sum, samples = 0.0, 0
    for data, label in batches(job.val_data):
        parts, labels = split_batch(data, job.ctx), split_batch(label, job.ctx)
        outputs = [job.net(x.astype(job.precision.dtype, copy=False)).astype('float32')
                   for x in parts]
        top1.update(labels, outputs)
        if top5 is not None:
            top5.update(labels, outputs)
        for output, truth in zip(outputs, labels):
            loss_sum += float(cross_entropy(output, truth).sum().asscalar())
            samples += output.shape[0]
    return Validation(top1.get()[1], top5.get()[1] if top5 is not None else None,
                      loss_sum / samples if samples else None)


def _record(job, epoch, batch, best):
    """The :class:`~gluon_asymmnet.records.CheckpointRecord` of a checkpoint at this point."""
    return CheckpointRecord(next_epoch=epoch, next_batch=batch, params='-', model=job.model,
                            best_top1=best[0], best_epoch=best[1], seed=job.recipe.seed,
                            dtype=job.precision.dtype, net=job.net_spec, input=job.input_spec)


def _set_backbone_lr(job, epoch):
    """The backbone's learning-rate multiplier for ``epoch``: 0 while it is frozen."""
    frozen = epoch < job.recipe.freeze_epochs
    for param in job.backbone:
        param.lr_mult = 0.0 if frozen else job.recipe.backbone_lr_mult


def _train_batch(job, data, label, epoch):
    """One step; returns ``(outputs, labels, loss sum)``; no update if the loss is not finite."""
    recipe = job.recipe
    parts = gluon.utils.split_and_load(data, job.ctx)
    labels = gluon.utils.split_and_load(label, job.ctx)
    mixing = recipe.mixup and epoch < recipe.num_epochs - recipe.mixup_off_epoch
    lam = np.random.beta(recipe.mixup_alpha, recipe.mixup_alpha) if mixing else 1.0
    if mixing:
        parts = [lam * x + (1 - lam) * x[::-1] for x in parts]
    if recipe.mixup or recipe.label_smoothing:
        eta = SMOOTHING_ETA if recipe.label_smoothing else 0.0
        targets = [soft_targets(y, job.classes, eta, lam) for y in labels]
    else:
        targets = labels
    parts = [x.astype(job.precision.dtype, copy=False) for x in parts]
    if job.teacher is not None:
        soft = [mx.nd.softmax(job.teacher(x).astype('float32') / recipe.temperature)
                for x in parts]
    with autograd.record():
        outputs = [job.net(x).astype('float32') for x in parts]
        if job.teacher is not None:
            losses = [job.loss_fn(o, t, s) for o, t, s in zip(outputs, targets, soft)]
        else:
            losses = [job.loss_fn(o, t) for o, t in zip(outputs, targets)]
        # Backward is issued without waiting for the loss: only the update below
        # changes the weights, and it is skipped for a non-finite loss.
        precision_mod.backward(losses, job.trainer, job.precision)
    loss_sum = sum(float(loss.sum().asscalar()) for loss in losses)
    if math.isfinite(loss_sum):
        job.trainer.step(job.step_size)
    return outputs, labels, loss_sum


def _save_epoch(job, epoch, best, improved):
    """This epoch's checkpoint, which also becomes the best one if ``improved``."""
    path = save_checkpoint(job.run_dir.path, job.net, job.trainer,
                           _record(job, epoch + 1, 0, best))
    if improved:
        mark_best(path)
    prune_checkpoints(job.run_dir.path, job.save_frequency)


def train(job, stop):
    """Run the epochs of ``job`` (until done or stopped by ``stop``).

    Raises
    ------
    NonFiniteLoss
        The loss became NaN or infinite.

    Parameters
    ----------
    job : Job
    stop : gluon_asymmnet.cli.StopFlag
    """
    start_epoch, skip = job.start
    progress = RunProgress((job.recipe.num_epochs - start_epoch) * job.num_batches - skip,
                           bar=job.writes and sys.stderr.isatty())
    try:
        _train_epochs(job, stop, progress)
    finally:
        progress.close()


def _train_epochs(job, stop, progress):
    """The epochs of :func:`train`, counted by ``progress``."""
    recipe, log = job.recipe, job.run_dir.logger
    start_epoch, skip = job.start
    best_top1, best_epoch = job.best
    for epoch in range(start_epoch, recipe.num_epochs):
        _seed(recipe.seed * 100003 + epoch)
        _set_backbone_lr(job, epoch)
        accuracy = mx.metric.Accuracy()
        loss_total, samples, tic = 0.0, 0, time.time()
        interval_tic, interval_samples = tic, 0
        first = skip if epoch == start_epoch else 0
        stream = itertools.islice(batches(job.train_data), job.num_batches)
        for i, (data, label) in enumerate(stream):
            if i < first:
                continue   # trained before the interruption this run resumes from
            outputs, labels, loss_sum = _train_batch(job, data, label, epoch)
            progress.step(epoch)
            if not math.isfinite(loss_sum):
                message = ('Epoch[%d] Batch [%d]: the loss is %s; stopping without saving these '
                           'weights. The newest good checkpoint stays in %s: resume with '
                           '--resume auto, perhaps with --allow-recipe-change and a lower --lr'
                           % (epoch, i, loss_sum, job.run_dir.path))
                progress.clear()
                log.error('%s', message)
                raise NonFiniteLoss(message)
            accuracy.update(labels, outputs)
            loss_total += loss_sum
            samples += data.shape[0]
            interval_samples += data.shape[0]
            if (i + 1) % job.log_interval == 0:
                now = time.time()
                log.info('Epoch[%d] Batch [%d]\tSpeed: %f samples/sec\taccuracy=%f\tlr=%f'
                         '\tETA %s', epoch, i, interval_samples / max(now - interval_tic, 1e-9),
                         accuracy.get()[1], job.trainer.learning_rate, progress.eta(),
                         extra=BATCH_LINE)
                interval_tic, interval_samples = now, 0
            if stop.signal_name and i + 1 < job.num_batches:
                if job.writes:
                    save_checkpoint(job.run_dir.path, job.net, job.trainer,
                                    _record(job, epoch, i + 1, (best_top1, best_epoch)))
                progress.clear()
                log.info('%s: stopped after Epoch[%d] Batch [%d]; checkpoint written to %s; '
                         'continue with --resume auto', stop.signal_name, epoch, i,
                         job.run_dir.path)
                return
        elapsed = time.time() - tic
        train_acc = accuracy.get()[1]
        progress.clear()     # the epoch's lines below the bar, which the next batch redraws
        log.info('[Epoch %d] training: accuracy=%f', epoch, train_acc)
        log.info('[Epoch %d] speed: %d samples/sec\ttime cost: %f\tETA %s',
                 epoch, samples / max(elapsed, 1e-9), elapsed, progress.eta())
        top1 = top5 = val_loss = None
        if job.val_data is not None:
            top1, top5, val_loss = validate(job)
            log.info('[Epoch %d] validation: top1=%f%s%s', epoch, top1,
                     '' if top5 is None else ' top5=%f' % top5,
                     '' if val_loss is None else ' loss=%f' % val_loss)
        score = top1 if top1 is not None else train_acc
        improved = score > best_top1 or best_epoch < 0
        if improved:
            best_top1, best_epoch = score, epoch
        if job.writes:
            job.run_dir.add_metrics({
                'epoch': epoch, 'train_loss': loss_total / max(samples, 1),
                'train_acc': train_acc, 'val_top1': top1, 'val_top5': top5,
                'val_loss': val_loss if val_loss is not None and math.isfinite(val_loss) else None,
                'lr': job.trainer.learning_rate, 'samples_per_sec': samples / max(elapsed, 1e-9),
                'time': elapsed})
            _save_epoch(job, epoch, (best_top1, best_epoch), improved)
        if stop.signal_name and epoch + 1 < recipe.num_epochs:
            log.info('%s: stopped after epoch %d; checkpoint written to %s; continue with '
                     '--resume auto', stop.signal_name, epoch, job.run_dir.path)
            return
    if best_epoch >= 0:
        log.info('best validation top1=%f at epoch %d', best_top1, best_epoch)
