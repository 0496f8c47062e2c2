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
import dataclasses
import os
import subprocess
import sys
import typing

import mxnet as mx
from mxnet import gluon

from .. import model_zoo
from ..cli import EXIT_INTERRUPTED, StopFlag
from ..cli import run as run_command
from ..data import DataSource, check_data, image_folder_loaders, imagenet_rec_iters, prepare_digits
from ..deploy.export import export_model
from ..deploy.sources import run_dir_model
from ..errors import UsageError
from ..mxnet_private import init_trainer_now, trainer_optimizer
from ..params import (check_params_fit, copy_weights, param_shapes, seeded_initialize,
                      structured_params, structured_weights)
from ..records import (RESUMABLE_CHANGES, RUN_RECORD, InputSpec, NetSpec, RecordError, RunRecord,
                       TrainRecipe, read_run_record, recipe_changes, write_run_record)
from . import precision as precision_mod
from .args import data_source, global_lr, net_spec, parse_args, train_recipe
from .checkpoint import (RunLock, check_states_fit, checkpoint_problem, latest_checkpoint,
                         read_checkpoint)
from .devices import training_devices
from .loop import Job, train
from .run_dir import DETAIL_LINE, RunDir

__all__ = ['main', 'build_job', 'lr_schedule', 'server_lr_schedule']

PROG = 'train_imagenet.py'


def lr_schedule(recipe, lr, num_batches):
    """GluonCV's per-iteration schedule of a :class:`~gluon_asymmnet.records.TrainRecipe`:
    linear warm-up from ``warmup_lr``, then ``lr_mode``."""
    from gluoncv.utils import LRScheduler, LRSequential
    if recipe.lr_decay_period > 0:
        steps = list(range(recipe.lr_decay_period, recipe.num_epochs, recipe.lr_decay_period))
    else:
        steps = recipe.lr_decay_epochs
    return LRSequential([
        LRScheduler('linear', base_lr=recipe.warmup_lr, target_lr=lr,
                    nepochs=recipe.warmup_epochs, iters_per_epoch=num_batches),
        LRScheduler(recipe.lr_mode, base_lr=lr, target_lr=0,
                    nepochs=recipe.num_epochs - recipe.warmup_epochs, iters_per_epoch=num_batches,
                    step_epoch=[e - recipe.warmup_epochs for e in steps],
                    step_factor=recipe.lr_decay, power=2),
    ])


def server_lr_schedule(recipe, lr, updates_per_epoch):
    """The schedule of :func:`lr_schedule` from MXNet's own schedulers, for ``dist_async``.

    Under ``dist_async`` the optimizer runs on the parameter servers, which
    unpickle it with nothing but MXNet importable (GluonCV's schedulers cannot
    be loaded there). ``updates_per_epoch`` counts the updates of all workers.
    """
    total = recipe.num_epochs * updates_per_epoch
    common = dict(base_lr=lr, warmup_steps=recipe.warmup_epochs * updates_per_epoch,
                  warmup_begin_lr=recipe.warmup_lr)
    if recipe.lr_mode == 'cosine':
        return mx.lr_scheduler.CosineScheduler(total, final_lr=0, **common)
    if recipe.lr_mode == 'poly':
        return mx.lr_scheduler.PolyScheduler(total, pwr=2, final_lr=0, **common)
    if recipe.lr_decay_period > 0:
        epochs = range(recipe.lr_decay_period, recipe.num_epochs, recipe.lr_decay_period)
    else:
        epochs = [e for e in recipe.lr_decay_epochs if recipe.warmup_epochs < e < recipe.num_epochs]
    steps = sorted({e * updates_per_epoch for e in epochs}) or [total + 1]
    return mx.lr_scheduler.MultiFactorScheduler(steps, factor=recipe.lr_decay, **common)


def _kvstore(name):
    if 'dist' in name:
        if 'DMLC_ROLE' not in os.environ:
            raise UsageError('--kvstore %s needs the DMLC_* variables of a parameter-server job: '
                             'start it with python -m gluon_asymmnet.launch -n WORKERS -s SERVERS '
                             '-- python -m gluon_asymmnet.train ...' % name)
        return mx.kv.create(name)
    return None


def _data(args, source, input_spec, num_parts, part_index, per_worker_batch):
    """``(train_data, val_data, num_batches available)`` for this worker, normalised with the
    mean and std of ``input_spec``."""
    common = dict(batch_size=per_worker_batch, input_size=args.input_size,
                  crop_ratio=args.crop_ratio, num_workers=args.num_workers,
                  min_random_area=args.min_random_area, mirror=args.mirror,
                  mean=input_spec.mean, std=input_spec.std)
    if source.rec_train:
        common['num_workers'] = max(1, args.num_workers)   # decoding threads: at least one
        train_data, _ = imagenet_rec_iters(source.rec_train, source.rec_train_idx, None, None,
                                           num_parts=num_parts, part_index=part_index,
                                           seed=args.seed + part_index, **common)
        val_data = None
        if source.rec_val:
            _, val_data = imagenet_rec_iters(None, None, source.rec_val, source.rec_val_idx,
                                             **common)
        return train_data, val_data, train_data.num_batches
    train_data, _ = image_folder_loaders(source.data_dir, num_parts=num_parts,
                                         part_index=part_index, **common)
    _, val_data = image_folder_loaders(source.data_dir, **common)
    return train_data, val_data, len(train_data)


def _teacher(args, classes):
    """The distillation teacher with its local weights, checked against ``classes``."""
    try:
        path = model_zoo.model_file(args.teacher)
        spec = NetSpec(model_zoo.resolve_name(args.teacher), classes)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError('--teacher %s: %s' % (args.teacher, error)) from None
    teacher = spec.build()
    check_params_fit(path, param_shapes(teacher, args.input_size),
                     '--teacher %s for the %d classes of the data' % (args.teacher, classes))
    return teacher, path


def _pretrained(args, name):
    """``(weights file, what the run records)`` of ``--pretrained``/``--use-pretrained``."""
    source = name if args.use_pretrained else args.pretrained
    if source is None:
        return None, None
    try:
        if os.path.isdir(source) or os.path.isfile(source):   # a run folder, a weights file
            path = model_zoo.pretrained_file(name, source)
        else:                                                   # a zoo name: the model store
            path = model_zoo.model_file(source)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError('--pretrained %s: %s' % (source, error)) from None
    return path, os.path.abspath(path)


#: How a resume refusal names a field of the records: its flag.
_FLAG_OF = {'name': '--model', 'class_names': "the data's class names", 'mean': '--rgb-mean',
            'std': '--rgb-std'}


def _flag(field):
    return _FLAG_OF.get(field, '--' + field.replace('_', '-'))


def _recipe_conflicts(stored, net, input_spec, recipe, classes_unknown, allow_recipe_change):
    """What resuming the run of ``stored`` with these settings would change and may not: the
    network and the input never, the optimisation recipe only with ``allow_recipe_change``."""
    conflicts = []
    for old_spec, new_spec in ((stored.net, net), (stored.input, input_spec)):
        for field in dataclasses.fields(old_spec):
            old, new = getattr(old_spec, field.name), getattr(new_spec, field.name)
            if old != new and not (classes_unknown and field.name == 'classes'):
                conflicts.append((field.name, old, new))
    if not allow_recipe_change:
        conflicts += [change for change in recipe_changes(stored.recipe, recipe)
                      if change[0] not in RESUMABLE_CHANGES]
    return ['%s %s -> %s' % (_flag(field), 'none' if old is None else old,
                             'none' if new is None else new)
            for field, old, new in conflicts]


class _ResumePoint(typing.NamedTuple):
    """Where a run continues from: weights, optimizer states, position, best score."""
    params: str
    states: typing.Optional[str]
    next_epoch: int
    next_batch: int = 0
    best_top1: float = 0.0
    best_epoch: int = -1


def _from_checkpoint(found):
    record = found.record
    return _ResumePoint(found.params, found.states, record.next_epoch, record.next_batch,
                        record.best_top1, record.best_epoch)


def _given_resume_point(args, model, shapes, state_shapes):
    """The :class:`_ResumePoint` of ``--resume FILE`` or ``--resume-params`` (None for
    ``--resume auto`` or a fresh start), its weights and states checked against ``model``
    (``(name, net)``): before the run folder is touched."""
    name, net = model
    if args.resume and args.resume != 'auto':
        found = read_checkpoint(args.resume)
        problem = checkpoint_problem(found, shapes, state_shapes)
        if problem:
            raise UsageError('--resume %s: %s' % (args.resume, problem))
        return _from_checkpoint(found)
    if args.resume_params:
        for flag, path in (('--resume-params', args.resume_params),
                           ('--resume-states', args.resume_states)):
            if path and not os.path.isfile(path):
                raise UsageError('%s %s: no such file' % (flag, path))
        check_params_fit(args.resume_params, shapes, name, net=net)
        if args.resume_states:
            check_states_fit(args.resume_states, state_shapes)
        return _ResumePoint(args.resume_params, args.resume_states or None, args.resume_epoch)
    if args.resume_states:
        raise UsageError('--resume-states needs --resume-params')
    return None


def _auto_resume_point(run_dir, shapes, state_shapes):
    """The :class:`_ResumePoint` of ``--resume auto``: the newest whole checkpoint of the run
    folder (those passed over said on stderr), None for a folder without one, refused
    where epochs were trained but no checkpoint is whole."""
    found, skipped = latest_checkpoint(run_dir.path, shapes, state_shapes)
    if found is None and run_dir.read_metrics():
        reasons = '; '.join(why for _, why in skipped) or 'none found'
        raise UsageError('%s has trained epochs but no whole checkpoint to resume from '
                         '(%s); nothing was changed: restore a checkpoint, or start a new '
                         'run with another --tag-name' % (run_dir.path, reasons))
    for _, why in skipped:
        print('%s: passing over a damaged checkpoint: %s' % (PROG, why), file=sys.stderr)
    return _from_checkpoint(found) if found is not None else None


class _Setup(typing.NamedTuple):
    """What the flags decided before anything is built: the run's record and its pieces."""
    name: str
    source: DataSource
    classes: int
    net: NetSpec
    input: InputSpec
    recipe: TrainRecipe
    pretrained: typing.Optional[str]    #: weights file to start from


def _setup(args, ctx, num_workers):
    """Check the data and the model flags; the typed configs of the run."""
    try:
        name = model_zoo.resolve_name(model_zoo.zoo_name(args.model, args.width_scale))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.dataset == 'digits':
        digits = prepare_digits(args.digits_root, size=args.input_size)
        source = DataSource(digits.train_rec, digits.train_idx, digits.val_rec, digits.val_idx)
    else:
        source = data_source(args)
    info = check_data(source, args.batch_size * len(ctx), args.classes, num_parts=num_workers)
    class_names = digits.classes if args.dataset == 'digits' else info.class_names
    classes = args.classes or info.num_classes
    config = model_zoo.get_model_config(name)
    input_spec = InputSpec(input_size=args.input_size, crop_ratio=args.crop_ratio,
                           mean=tuple(args.rgb_mean or config.mean),
                           std=tuple(args.rgb_std or config.std),
                           class_names=tuple(class_names) if class_names else None)
    weights, origin = _pretrained(args, name)
    recipe = train_recipe(args, 'digits' if args.dataset == 'digits' else source.describe(),
                          origin)
    return _Setup(name, source, classes, net_spec(args, name, classes), input_spec, recipe,
                  weights)


def _state_shapes(net, shapes):
    """The parameter shapes in the trainer's order (``collect_params``)."""
    structured = {param.name: name for name, param in structured_params(net).items()}
    return [shapes[structured[param.name]] for param in net.collect_params().values()]


def build_job(args):
    """Check all inputs and build the :class:`~.loop.Job` of ``args``.

    Returns ``(job, lock, record)``: ``lock`` is None on the workers that write
    nothing; ``record`` is the run's :class:`~gluon_asymmnet.records.RunRecord`
    to write once training starts.

    Raises
    ------
    UsageError, DataError
        One-line explanations of bad input, among them a resume that would
        change the network, the data or the recipe of the run.
    """
    ctx = training_devices(args.num_gpus, args.kvstore, mx.context.num_gpus())
    precision = precision_mod.choose_precision(args.dtype, args.amp, args.num_gpus > 0,
                                               args.kvstore)
    kv = _kvstore(args.kvstore)
    num_workers, rank = (kv.num_workers, kv.rank) if kv is not None else (1, 0)
    setup = _setup(args, ctx, num_workers)
    precision_mod.init_amp(precision)
    net = setup.net.build()
    shapes = param_shapes(net, args.input_size)
    teacher = _teacher(args, setup.classes) if args.teacher else None

    state_shapes = _state_shapes(net, shapes)
    point = _given_resume_point(args, (setup.name, net), shapes, state_shapes)

    writes = rank == 0
    run_dir = RunDir(os.path.join(args.save_dir, '%s-%s' % (setup.name, args.tag_name)), writes,
                     args.logging_file, progress_bar=writes and sys.stderr.isatty(),
                     verbose=args.verbose)
    lock = RunLock(run_dir.path).acquire() if writes else None
    try:
        resuming = args.resume or args.resume_params
        if writes and run_dir.has_run() and not resuming:
            raise UsageError('%s already holds a run: continue it with --resume auto, or '
                             'choose another --tag-name or --save-dir' % run_dir.path)
        stored, recipe = _checked_recipe(args, run_dir, setup)
        if args.resume == 'auto':
            point = _auto_resume_point(run_dir, shapes, state_shapes)
        start_epoch = point.next_epoch if point is not None else 0
        record = (stored.resumed(recipe, start_epoch) if stored is not None
                  else RunRecord.start(setup.net, setup.input, recipe, start_epoch))
        _log_start(args, run_dir, point)
        job = _assemble(args, ctx, precision, kv, setup, (net, shapes), teacher, run_dir,
                        point)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return job, lock, record


def _checked_recipe(args, run_dir, setup):
    """``(stored record or None, recipe)``: the record already in the run folder, and the
    recipe of this start, refused if it would change what the run learns."""
    stored = None
    if run_dir.has_run():
        try:
            stored, classes_unknown = read_run_record(run_dir.path)
        except RecordError:
            if not args.resume_params:    # explicit weights need no record
                raise
    if stored is None:
        return None, setup.recipe
    recipe = dataclasses.replace(setup.recipe, pretrained=stored.recipe.pretrained)
    conflicts = _recipe_conflicts(stored, setup.net, setup.input, recipe, classes_unknown,
                                  args.allow_recipe_change)
    if conflicts:
        raise UsageError('resuming %s would change what it learns: %s. Resume with the '
                         'recorded settings (%s; a new learning rate or schedule with '
                         '--allow-recipe-change), or start a new run from its weights with '
                         '--pretrained %s --tag-name NEW'
                         % (run_dir.path, ', '.join(conflicts),
                            os.path.join(run_dir.path, RUN_RECORD), run_dir.path))
    return stored, recipe


def _assemble(args, ctx, precision, kv, setup, model, teacher, run_dir, point):
    """Data iterators, initialised network, trainer and loss: the :class:`~.loop.Job`.

    ``model`` is ``(net, {structured name: shape})``.
    """
    net, shapes = model
    recipe = setup.recipe
    num_workers, rank = (kv.num_workers, kv.rank) if kv is not None else (1, 0)
    per_worker_batch = args.batch_size * len(ctx)
    train_data, val_data, available = _data(args, setup.source, setup.input, num_workers, rank,
                                            per_worker_batch)
    num_batches = available
    if args.num_training_samples:
        num_batches = min(available, max(1, args.num_training_samples
                                         // (per_worker_batch * num_workers)))
    sync = kv is not None and 'async' not in kv.type
    lr = global_lr(recipe, per_worker_batch * num_workers)

    structured = structured_params(net)
    for structured_name, param in structured.items():
        param.shape = shapes[structured_name]     # allocated now, not at the first forward
    seeded_initialize(net, mx.init.MSRAPrelu(), args.seed, ctx)
    if precision.dtype == 'float16':
        net.cast('float16')
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    if point is not None:
        copy_weights(net, structured_weights(point.params, net))
    elif setup.pretrained:
        loaded, fresh = copy_weights(net, structured_weights(setup.pretrained, net))
        run_dir.logger.info('started from %s: %d tensors loaded, %d new (%s)', setup.pretrained,
                            len(loaded), len(fresh), ', '.join(fresh[:4]) or 'none')
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    if teacher is not None:
        teacher_net, teacher_path = teacher
        teacher_net.load_parameters(teacher_path, ctx=ctx, cast_dtype=True,
                                    dtype_source='current')
        teacher_net.cast(precision.dtype)
        if args.mode == 'hybrid':
            teacher_net.hybridize(static_alloc=True, static_shape=True)
        teacher = teacher_net

    if sync or kv is None:
        schedule = lr_schedule(recipe, lr, num_batches)
    else:
        schedule = server_lr_schedule(recipe, lr, num_batches * num_workers)
    optimizer_params = {'wd': args.wd, 'momentum': args.momentum, 'lr_scheduler': schedule}
    # A list, in the network's structural order: given a dict, Trainer sorts the
    # parameters by their global names ('conv12_weight'), whose counters depend
    # on what the process built before, and saved states would not fit on resume.
    trainer = precision_mod.make_trainer(list(net.collect_params().values()), args.optimizer,
                                         optimizer_params, precision,
                                         kv if kv is not None else args.kvstore)
    if point is not None and point.states:
        trainer.load_states(point.states)
        # load_states brings back the saved optimizer: keep its position (update
        # count) and momentum buffers, but follow this command's schedule and
        # hyper-parameters
        optimizer = trainer_optimizer(trainer)
        optimizer.lr_scheduler = schedule
        optimizer.wd = args.wd
        optimizer.momentum = args.momentum
        precision_mod.match_optimizer_states(trainer, precision)   # another --dtype
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
    if point is not None:
        start = (point.next_epoch, point.next_batch)
        best = (point.best_top1, point.best_epoch)
    backbone = [param for name, param in structured.items() if not name.startswith('output.')]
    return Job(recipe=recipe, net_spec=setup.net, input_spec=setup.input, model=setup.name,
               net=net, trainer=trainer, loss_fn=loss_fn, precision=precision, ctx=ctx,
               train_data=train_data, val_data=val_data, num_batches=num_batches,
               batch_size=per_worker_batch,
               step_size=per_worker_batch * (num_workers if sync else 1), classes=setup.classes,
               teacher=teacher, start=start, best=best, rank=rank, writes=rank == 0,
               run_dir=run_dir, backbone=backbone, log_interval=args.log_interval,
               save_frequency=args.save_frequency)


def _log_start(args, run_dir, point):
    """The first lines: the arguments on a fresh start, else where the run resumes."""
    log = run_dir.logger
    if point is None:
        if args.resume == 'auto':
            log.info('no checkpoint in %s: starting at epoch 0', run_dir.path)
        log.info('%s', args, extra=DETAIL_LINE)
    else:
        log.info('resuming %s at epoch %d batch %d (best top1=%f)', run_dir.path,
                 point.next_epoch, point.next_batch, point.best_top1)


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
    run before its first step, later after the current batch (see ``loop``);
    the status is then :data:`~gluon_asymmnet.cli.EXIT_INTERRUPTED`.
    """
    with StopFlag() as stop:
        job, lock, record = build_job(args)
        try:
            if job.writes:
                job.run_dir.keep_metrics_before(job.start[0])
                write_run_record(record, job.run_dir.path)
                if args.tensorboard:
                    job.run_dir.open_tensorboard()
            job.run_dir.logger.info('%s', job.net, extra=DETAIL_LINE)
            job.run_dir.logger.info(
                '%s: %d classes, %d batches of %d per epoch and worker, step size %d, %s',
                job.model, job.classes, job.num_batches, job.batch_size, job.step_size,
                'AMP ' + job.precision.amp if job.precision.amp else job.precision.dtype)
            if stop.signal_name:
                _stopped_before_training(job, stop)
                return EXIT_INTERRUPTED
            train(job, stop)
            if not stop.signal_name:
                _finish(job)
            return EXIT_INTERRUPTED if stop.signal_name else 0
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
    init_trainer_now(trainer)
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
    prefix = job.run_dir.file(job.model)
    if precision_mod.amp_patched():
        # AMP's casts stay in this process's MXNet (float16 convolutions cannot run on a CPU)
        _export_in_fresh_process(job.run_dir.path, prefix)
    else:
        net, config = run_dir_model(job.run_dir.path)
        export_model(net, prefix, config=config)
    job.run_dir.logger.info('exported %s-symbol.json, -0000.params and -info.json', prefix)


def _export_in_fresh_process(run_dir, prefix):
    """``python -m gluon_asymmnet.export --run-dir RUN_DIR --prefix PREFIX``, in a process of
    its own (without the ``DMLC_*`` roles of a distributed job).

    Raises
    ------
    OSError
        The export failed (its error line).
    """
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {name: value for name, value in os.environ.items() if not name.startswith('DMLC_')}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [package_root, env.get('PYTHONPATH')]))
    done = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.export', '--run-dir', run_dir,
                           '--prefix', prefix], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ['exit status %d' % done.returncode]
        raise OSError('cannot export %s: %s' % (prefix, lines[-1]))


def main(argv=None):
    """Entry point of ``train_imagenet.py`` / ``asymmnet-train``; returns the exit status
    (2 with one line for bad input or a file that cannot be written, 3 for a diverged run,
    130 after SIGINT/SIGTERM: :func:`gluon_asymmnet.cli.run`), also when called from Python."""
    args = parse_args(argv)
    try:
        return run_command(PROG, run, args)
    except SystemExit as ended:   # the one line is printed
        return ended.code
