"""``train_imagenet.py``: check every input, build the job, train, export.

Everything a user can get wrong (arguments, data, model name, teacher, resume
file, a run folder in use) is checked before any network is initialised and
reported as one line with exit status 2. See :mod:`gluon_asymmnet.train.args`
for the flags and the learning-rate rule, :mod:`.run_dir` for the outputs and
:mod:`.checkpoint` for resuming.

Distributed training (``--kvstore dist_*``, roles from the ``DMLC_*``
variables): every worker reads its part of the training data
(``num_parts=kv.num_workers, part_index=kv.rank``) and validates on all of the
validation data; the first worker (rank 0) alone writes the run folder. The
parameters start from rank 0's (the kvstore broadcasts them). ``dist_sync``
and ``dist_device_sync`` update on the workers after summing the gradients, so
``trainer.step`` divides by the global batch; ``dist_async`` updates on the
servers, whose optimizer states cannot be saved: its checkpoints hold the
parameters only.
"""
import os
import sys

import mxnet as mx
from mxnet import gluon

from .. import model_zoo
from ..data import check_data_args, image_folder_loaders, imagenet_rec_iters, prepare_digits
from ..deploy.export import export_model
from ..deploy.sources import run_dir_model
from ..errors import DataError, UsageError
from ..params import check_params_fit, param_shapes, seeded_initialize
from . import precision as precision_mod
from .args import global_lr, model_kwargs, parse_args
from .checkpoint import RunLock, latest_checkpoint, read_checkpoint
from .errors import EXIT_DIVERGED, NonFiniteLoss
from .loop import Job, StopFlag, train
from .run_dir import DETAIL_LINE, RunDir

__all__ = ['main', 'build_job', 'lr_schedule', 'server_lr_schedule']

PROG = 'train_imagenet.py'


def lr_schedule(args, lr, num_batches):
    """GluonCV's per-iteration schedule: linear warm-up from ``--warmup-lr``, then ``--lr-mode``."""
    from gluoncv.utils import LRScheduler, LRSequential
    if args.lr_decay_period > 0:
        steps = list(range(args.lr_decay_period, args.num_epochs, args.lr_decay_period))
    else:
        steps = args.lr_decay_epochs
    return LRSequential([
        LRScheduler('linear', base_lr=args.warmup_lr, target_lr=lr,
                    nepochs=args.warmup_epochs, iters_per_epoch=num_batches),
        LRScheduler(args.lr_mode, base_lr=lr, target_lr=0,
                    nepochs=args.num_epochs - args.warmup_epochs, iters_per_epoch=num_batches,
                    step_epoch=[e - args.warmup_epochs for e in steps],
                    step_factor=args.lr_decay, power=2),
    ])


def server_lr_schedule(args, lr, updates_per_epoch):
    """The schedule of :func:`lr_schedule` from MXNet's own schedulers, for ``dist_async``.

    Under ``dist_async`` the optimizer runs on the parameter servers, which
    unpickle it with nothing but MXNet importable (GluonCV's schedulers cannot
    be loaded there). ``updates_per_epoch`` counts the updates of all workers.
    """
    total = args.num_epochs * updates_per_epoch
    common = dict(base_lr=lr, warmup_steps=args.warmup_epochs * updates_per_epoch,
                  warmup_begin_lr=args.warmup_lr)
    if args.lr_mode == 'cosine':
        return mx.lr_scheduler.CosineScheduler(total, final_lr=0, **common)
    if args.lr_mode == 'poly':
        return mx.lr_scheduler.PolyScheduler(total, pwr=2, final_lr=0, **common)
    if args.lr_decay_period > 0:
        epochs = range(args.lr_decay_period, args.num_epochs, args.lr_decay_period)
    else:
        epochs = [e for e in args.lr_decay_epochs if args.warmup_epochs < e < args.num_epochs]
    steps = sorted({e * updates_per_epoch for e in epochs}) or [total + 1]
    return mx.lr_scheduler.MultiFactorScheduler(steps, factor=args.lr_decay, **common)


def _kvstore(name):
    if 'dist' in name:
        if 'DMLC_ROLE' not in os.environ:
            raise UsageError('--kvstore %s needs the DMLC_* variables of a parameter-server job: '
                             'start it with python -m gluon_asymmnet.launch -n WORKERS -s SERVERS '
                             '-- python train_imagenet.py ...' % name)
        return mx.kv.create(name)
    return None


def _data(args, num_parts, part_index, per_worker_batch):
    """``(train_data, val_data, num_batches available)`` for this worker."""
    common = dict(batch_size=per_worker_batch, input_size=args.input_size,
                  crop_ratio=args.crop_ratio, num_workers=args.num_workers,
                  min_random_area=args.min_random_area, mirror=args.mirror)
    if args.rec_train:
        common['num_workers'] = max(1, args.num_workers)   # decoding threads: at least one
        train_data, _ = imagenet_rec_iters(args.rec_train, args.rec_train_idx, None, None,
                                           num_parts=num_parts, part_index=part_index,
                                           seed=args.seed + part_index, **common)
        val_data = None
        if args.rec_val:
            _, val_data = imagenet_rec_iters(None, None, args.rec_val, args.rec_val_idx,
                                             **common)
        return train_data, val_data, train_data.num_batches
    train_data, _ = image_folder_loaders(args.data_dir, num_parts=num_parts,
                                         part_index=part_index, **common)
    _, val_data = image_folder_loaders(args.data_dir, **common)
    return train_data, val_data, len(train_data)


def _build_net(name, kwargs, what):
    try:
        return model_zoo.get_model(name, **kwargs)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except TypeError as error:
        raise UsageError('%s does not take these options (%s): %s'
                         % (what, ', '.join(sorted(kwargs)), error)) from None


def _teacher(args, classes):
    """The distillation teacher with its local weights, checked against ``classes``."""
    try:
        path = model_zoo.model_file(args.teacher)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError('--teacher %s: %s' % (args.teacher, error)) from None
    teacher = _build_net(args.teacher, {'classes': classes}, '--teacher ' + args.teacher)
    check_params_fit(path, param_shapes(teacher, args.input_size),
                     '--teacher %s for the %d classes of the data' % (args.teacher, classes))
    return teacher, path


def _resume_point(args, run_dir, shapes, what):
    """``(meta or None)``: the checkpoint to continue from, checked against the model."""
    if args.resume == 'auto':
        meta = latest_checkpoint(run_dir.path)
    elif args.resume:
        meta = read_checkpoint(args.resume)
    elif args.resume_params:
        meta = {'next_epoch': args.resume_epoch, 'next_batch': 0, 'best_top1': 0.0,
                'best_epoch': -1, 'params': args.resume_params,
                'states': args.resume_states or None}
        for key in ('params', 'states'):
            if meta[key] and not os.path.isfile(meta[key]):
                raise UsageError('--resume-%s %s: no such file' % (key, meta[key]))
    else:
        if args.resume_states:
            raise UsageError('--resume-states needs --resume-params')
        return None
    if meta is not None:
        check_params_fit(meta['params'], shapes, what)
    return meta


def build_job(args):
    """Check all inputs and build the :class:`~.loop.Job` of ``args``.

    Returns ``(job, lock)``; ``lock`` is None on the workers that write nothing.

    Raises
    ------
    UsageError, DataError
        One-line explanations of bad input.
    """
    on_gpu = args.num_gpus > 0
    if args.num_gpus > mx.context.num_gpus():
        raise UsageError('--num-gpus %d, but MXNet sees %d GPU(s) here'
                         % (args.num_gpus, mx.context.num_gpus()))
    ctx = [mx.gpu(i) for i in range(args.num_gpus)] if on_gpu else [mx.cpu()]
    precision = precision_mod.choose_precision(args.dtype, args.amp, on_gpu)
    kv = _kvstore(args.kvstore)
    num_workers, rank = (kv.num_workers, kv.rank) if kv is not None else (1, 0)
    try:
        name = model_zoo.resolve_name(model_zoo.zoo_name(args.model, args.width_scale))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.dataset == 'digits':
        digits = prepare_digits(args.digits_root, size=args.input_size)
        args.rec_train, args.rec_train_idx = digits.train_rec, digits.train_idx
        args.rec_val, args.rec_val_idx = digits.val_rec, digits.val_idx
    info = check_data_args(args, num_parts=num_workers)
    classes = args.classes or info.num_classes
    precision_mod.init_amp(precision)
    net = _build_net(name, model_kwargs(args, classes), '--model ' + name)
    shapes = param_shapes(net, args.input_size)
    teacher = _teacher(args, classes) if args.teacher else None

    writes = rank == 0
    run_dir = RunDir(os.path.join(args.save_dir, '%s-%s' % (name, args.tag_name)), writes,
                     args.logging_file, progress_bar=writes and sys.stderr.isatty(),
                     verbose=args.verbose)
    lock = RunLock(run_dir.path).acquire() if writes else None
    try:
        if writes and run_dir.has_run() and not (args.resume or args.resume_params):
            raise UsageError('%s already holds a run: continue it with --resume auto, or '
                             'choose another --tag-name or --save-dir' % run_dir.path)
        meta = _resume_point(args, run_dir, shapes, '--model ' + name)
        _log_start(args, run_dir, meta)
        job = _assemble(args, ctx, precision, kv, classes, (name, net, shapes), teacher, run_dir,
                        meta)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return job, lock


def _assemble(args, ctx, precision, kv, classes, model, teacher, run_dir, meta):
    """Data iterators, initialised network, trainer and loss: the :class:`~.loop.Job`.

    ``model`` is ``(name, net, {structured name: shape})``.
    """
    name, net, shapes = model
    num_workers, rank = (kv.num_workers, kv.rank) if kv is not None else (1, 0)
    per_worker_batch = args.batch_size * len(ctx)
    train_data, val_data, available = _data(args, num_workers, rank, per_worker_batch)
    num_batches = available
    if args.num_training_samples:
        num_batches = min(available, max(1, args.num_training_samples
                                         // (per_worker_batch * num_workers)))
    sync = kv is not None and 'async' not in kv.type
    lr = global_lr(args, per_worker_batch * num_workers)

    for structured_name, param in net._collect_params_with_prefix().items():
        param.shape = shapes[structured_name]     # allocated now, not at the first forward
    seeded_initialize(net, mx.init.MSRAPrelu(), args.seed, ctx)
    if precision.dtype == 'float16':
        net.cast('float16')
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    if meta is not None:
        net.load_parameters(meta['params'], ctx=ctx, cast_dtype=True)
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    if teacher is not None:
        teacher_net, teacher_path = teacher
        teacher_net.load_parameters(teacher_path, ctx=ctx)
        teacher_net.cast(precision.dtype)
        if args.mode == 'hybrid':
            teacher_net.hybridize(static_alloc=True, static_shape=True)
        teacher = teacher_net

    if sync or kv is None:
        schedule = lr_schedule(args, lr, num_batches)
    else:
        schedule = server_lr_schedule(args, lr, num_batches * num_workers)
    optimizer_params = {'wd': args.wd, 'momentum': args.momentum, 'lr_scheduler': schedule}
    if precision.dtype == 'float16':
        optimizer_params['multi_precision'] = True
    # A list, in the network's structural order: given a dict, Trainer sorts the
    # parameters by their global names ('conv12_weight'), whose counters depend
    # on what the process built before, and saved states would not fit on resume.
    trainer = gluon.Trainer(list(net.collect_params().values()), args.optimizer, optimizer_params,
                            kvstore=kv if kv is not None else args.kvstore,
                            update_on_kvstore=(not sync) if kv is not None else None)
    if meta is not None and meta.get('states'):
        trainer.load_states(meta['states'])
        # load_states brings back the saved optimizer: keep its position (update
        # count) and momentum buffers, but follow this command's schedule and
        # hyper-parameters
        trainer._optimizer.lr_scheduler = schedule
        trainer._optimizer.wd = args.wd
        trainer._optimizer.momentum = args.momentum
    precision_mod.init_trainer(trainer, precision)
    if sync:
        _pull_initial_parameters(trainer)

    sparse = not (args.mixup or args.label_smoothing)
    if teacher is not None:
        from gluoncv.loss import DistillationSoftmaxCrossEntropyLoss
        loss_fn = DistillationSoftmaxCrossEntropyLoss(
            temperature=args.temperature, hard_weight=args.hard_weight, sparse_label=sparse)
    else:
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)

    start, best = (0, 0), (0.0, -1)
    if meta is not None:
        start = (meta['next_epoch'], meta['next_batch'])
        best = (meta.get('best_top1', 0.0), meta.get('best_epoch', -1))
    return Job(args=args, model=name, net=net, trainer=trainer, loss_fn=loss_fn,
              precision=precision, ctx=ctx, train_data=train_data, val_data=val_data,
              num_batches=num_batches, batch_size=per_worker_batch,
              step_size=per_worker_batch * (num_workers if sync else 1), classes=classes,
              teacher=teacher, start=start, best=best, rank=rank, writes=rank == 0,
              run_dir=run_dir)


def _log_start(args, run_dir, meta):
    """The first lines: the arguments on a fresh start, else where the run resumes."""
    log = run_dir.logger
    if meta is None:
        if args.resume == 'auto':
            log.info('no checkpoint in %s: starting at epoch 0', run_dir.path)
        log.info('%s', args, extra=DETAIL_LINE)
    else:
        log.info('resuming %s at epoch %d batch %d (best top1=%f)', run_dir.path,
                 meta['next_epoch'], meta['next_batch'], meta.get('best_top1', 0.0))


def _stopped_before_training(job, stop):
    """Where a run stopped by a signal during start-up stands (its newest checkpoint)."""
    epoch, batch = job.start
    if batch:
        where = 'after Epoch[%d] Batch [%d]' % (epoch, batch - 1)
    elif epoch:
        where = 'after epoch %d' % (epoch - 1)
    else:
        where = 'before the first batch; nothing to save'
    job.run_dir.logger.info('%s during start-up: stopped %s, as the newest checkpoint in %s; '
                            'continue with --resume auto', stop.signal_name, where,
                            job.run_dir.path)


def run(args):
    """Train as ``args`` say; returns the exit status.

    SIGINT/SIGTERM are caught from the start: during start-up they stop the
    run before its first step, later after the current batch (see ``loop``).
    """
    with StopFlag() as stop:
        job, lock = build_job(args)
        try:
            if job.writes:
                job.run_dir.keep_metrics_before(job.start[0])
                job.run_dir.write_args(args)
                if args.tensorboard:
                    job.run_dir.open_tensorboard()
            job.run_dir.logger.info('%s', job.net, extra=DETAIL_LINE)
            job.run_dir.logger.info(
                '%s: %d classes, %d batches of %d per epoch and worker, step size %d, %s',
                job.model, job.classes, job.num_batches, job.batch_size, job.step_size,
                'AMP ' + job.precision.amp if job.precision.amp else job.precision.dtype)
            if stop.signal_name:
                _stopped_before_training(job, stop)
                return 0
            train(job, stop)
            if not stop.signal_name:
                _finish(job)
            return 0
        finally:
            job.run_dir.close()
            if lock is not None:
                lock.release()


def _pull_initial_parameters(trainer):
    """Give every worker rank 0's parameters before any gradient is pushed.

    Gluon's Trainer does this broadcast lazily, inside the first ``step``, where
    a worker's pull of a parameter races with its push of that parameter's
    gradient (different arrays, so MXNet's engine does not order them). Under
    ``dist_sync`` with local updates, a server that has already summed both
    workers' gradients answers a late pull with the summed gradient, and that
    worker trains from wrong weights ever after (seen on ``output.0.bias``, the
    last key, in about one run in ten). Initialising the kvstore here and
    waiting for the pulls closes the race. (Under ``dist_async`` the servers
    hold the weights and update them, so there is nothing to race with; and
    the optimizer sent to them must first learn the step size from ``step``.)
    """
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()


def _finish(job):
    """Export the best weights (rank 0); other workers save their parameters to compare."""
    if not job.writes:
        job.net.save_parameters(job.run_dir.file('worker%d-final.params' % job.rank))
        return
    if not os.path.exists(job.run_dir.file('%s-best.params' % job.model)):
        return   # no epoch finished in this run folder
    # a fresh float32 copy with the run's class names, input size and crop ratio, exported
    # as `python -m gluon_asymmnet.export --run-dir` would (one export path)
    net, config = run_dir_model(job.run_dir.path)
    prefix = job.run_dir.file(job.model)
    export_model(net, prefix, config=config)
    job.run_dir.logger.info('exported %s-symbol.json, -0000.params and -info.json', prefix)


def main(argv=None):
    """Entry point of ``train_imagenet.py`` / ``asymmnet-train``; returns the exit status."""
    args = parse_args(argv)
    try:
        return run(args)
    except (UsageError, DataError) as error:
        print('%s: error: %s' % (PROG, error), file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print('%s: error: %s' % (PROG, error), file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as error:   # what could not be written, e.g. a full disk
        print('%s: error: %s' % (PROG, error), file=sys.stderr)
        return 1
