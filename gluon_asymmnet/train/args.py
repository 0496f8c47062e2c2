"""Command-line arguments of ``train_imagenet.py`` and what follows from them.

The flags are those of the original AsymmNet ``utils/args_helper.py`` and of
GluonCV's ``scripts/classification/imagenet/train_imagenet.py`` (same names; where
the meaning differs, ``docs/gluoncv-flags.md`` says how), plus ``--amp``,
``--kvstore``, ``--seed``, ``--resume``, ``--classes``, ``--lr-base`` and
``--optimizer``. GluonCV's flags for networks outside this zoo (``--batch-norm``,
``--use-gn``, ``--use_se``) and its DALI back ends are refused with one line
saying what to use instead (:data:`REFUSED_GLUONCV_FLAGS`).

Learning rate and batch size
----------------------------
``--batch-size`` is per device. The global batch is ``batch_size x devices x
workers`` (devices: ``max(1, --num-gpus)``; workers: ``kv.num_workers`` under a
distributed kvstore). ``--lr`` is the learning rate of that global batch as
given. ``--lr-base L`` instead sets ``lr = L x global_batch / 256`` (the linear
scaling rule of Goyal et al. 2017). The original AsymmNet recipe is lr 2.6 for
8 GPUs x 256 = 2048 images, i.e. ``--lr-base 0.325``; its log's first line::

    Namespace(batch_size=256, lr=2.6, lr_mode='cosine', num_epochs=360, num_gpus=8,
              warmup_epochs=5, warmup_lr=0.0, wd=3e-05, no_wd=True, label_smoothing=True,
              dropout=0.2, momentum=0.9, mode='hybrid', ...)

The schedule is per iteration: ``--warmup-epochs`` of linear warm-up from
``--warmup-lr`` to ``lr``, then ``--lr-mode`` (step/poly/cosine) down to 0.
"""
import dataclasses
import os

from ..cli import (MAX_BATCH_SIZE, MAX_DATA_WORKERS, MAX_INPUT_SIZE, OneLineParser,
                   check_batch_memory, check_ranges)
from ..data import DataSource, default_digits_root
from ..model_zoo import ModelConfig
from ..records import NetSpec, TrainRecipe

__all__ = ['build_parser', 'parse_args', 'data_source', 'net_spec', 'train_recipe', 'global_lr',
           'REFUSED_GLUONCV_FLAGS', 'DATA_BACKEND']

#: ``--lr-base`` is the learning rate of this many images per step.
LR_BASE_BATCH = 256
#: The one ``--data-backend`` of GluonCV's script that this trainer has (GluonCV's
#: ``dali-gpu``/``dali-cpu`` are refused).
DATA_BACKEND = 'mxnet'
#: GluonCV's flags that have no meaning for this zoo's networks: ``(flag, dest, why and
#: what to use instead)``; given, they stop the command with that line (exit status 2).
REFUSED_GLUONCV_FLAGS = (
    ('--batch-norm', 'batch_norm',
     "GluonCV's switch for VGG's BatchNorm; every network of this zoo has BatchNorm "
     'already: drop it'),
    ('--use-gn', 'use_gn',
     "GluonCV's GroupNorm in place of BatchNorm (ResNet); the networks of this zoo are built "
     'with BatchNorm only: drop it'),
    ('--use_se', 'use_se',
     "GluonCV's squeeze-excitation switch for ResNeXt; the networks of this zoo place their "
     'SE blocks as their papers do: drop it, or choose a model with --model'),
)


def build_parser(prog='train_imagenet.py'):
    """The ``argparse`` parser of the training command."""
    parser = OneLineParser(
        prog=prog, description='Train an AsymmNet (or any zoo model) on ImageNet-style data '
                               '(RecordIO or class folders), GluonCV style.')
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', default='imagenet', choices=['imagenet', 'digits'],
                      help="'digits': the embedded scikit-learn digits set (built once under "
                           "--digits-root, no download); 'imagenet': the files given below")
    data.add_argument('--digits-root', default=default_digits_root(),
                      help='cache folder of the digits set, shared with eval.py and quantize '
                           '(default: %(default)s)')
    data.add_argument('--rec-train', default=None, help='the training data (.rec)')
    data.add_argument('--rec-train-idx', default=None, help='the index of the training data')
    data.add_argument('--rec-val', default=None, help='the validation data (.rec)')
    data.add_argument('--rec-val-idx', default=None, help='the index of the validation data')
    data.add_argument('--use-rec', action='store_true',
                      help="GluonCV's switch to the RecordIO files: accepted, they are read "
                           'whenever --rec-train is given (needs --rec-train)')
    data.add_argument('--data-dir', default=None,
                      help='folder with train/ and val/ class folders (instead of RecordIO)')
    data.add_argument('--data-backend', default=DATA_BACKEND,
                      help="GluonCV's data back end: only 'mxnet' (MXNet's own pipelines); "
                           "DALI ('dali-gpu', 'dali-cpu') is refused")
    data.add_argument('--rgb-mean', default=None, metavar='R,G,B',
                      help="input mean per channel on 0-255 pixels, GluonCV's format "
                           "'123.68,116.779,103.939' (default: the model's, as the zoo "
                           'records it); recorded in run.json, so eval and export use it')
    data.add_argument('--rgb-std', default=None, metavar='R,G,B',
                      help="input standard deviation per channel on 0-255 pixels, "
                           "'58.393,57.12,57.375' (default: the model's, as the zoo records "
                           'it); recorded in run.json like --rgb-mean')
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4,
                      help='number of preprocessing threads/processes')
    data.add_argument('--input-size', type=int, default=None,
                      help='side of the square input, at least 16 (default 224; 32 with '
                           '--dataset digits)')
    data.add_argument('--crop-ratio', type=float, default=ModelConfig().crop_ratio,
                      help='validation centre-crop ratio (default: %(default)s, as the zoo\'s '
                           'records)')
    data.add_argument('--min-random-area', type=float, default=None,
                      help='smallest area fraction of the random training crops (default 0.08, '
                           'the ImageNet recipe; 1 with --dataset digits)')
    data.add_argument('--mirror', dest='mirror', action='store_true', default=None,
                      help='random horizontal flips in training (the default, except with '
                           '--dataset digits: digits are not mirror-symmetric)')
    data.add_argument('--no-mirror', dest='mirror', action='store_false', default=None,
                      help='no random horizontal flips')
    data.add_argument('--classes', type=int, default=None,
                      help='number of classes (default: from the data; checked against it)')
    data.add_argument('--num-training-samples', type=int, default=None,
                      help='use at most this many training samples per epoch '
                           "(default: all of the data; GluonCV's flag gives the data's size, "
                           'which changes nothing here)')

    model = parser.add_argument_group('model')
    model.add_argument('--model', required=True,
                       help='a zoo name (asymmnet_small_0.5) or a family with --width-scale '
                            '(asymmnet_small --width-scale 0.5)')
    model.add_argument('--width-scale', type=float, default=None, help='width multiplier')
    model.add_argument('--dropout', type=float, default=None,
                       help='dropout before the classifier (model default 0.2)')
    model.add_argument('--asymmrate', type=int, default=None,
                       help='asymmetrical feature reuse rate (1: AsymmNet, 0: MobileNetV3)')
    model.add_argument('--shuffle-group', type=int, default=None,
                       help='channel-shuffle groups after each concat (default none)')
    model.add_argument('--doshuffle', action='store_true',
                       help='(original flag) channel shuffle, --shuffle-group groups (default 2)')
    model.add_argument('--last-gamma', action='store_true',
                       help='zero-initialise the last BatchNorm gamma of every residual block')
    model.add_argument('--mode', default='hybrid', choices=['hybrid', 'symbolic', 'imperative'],
                       help='hybrid: hybridize with static_alloc/static_shape (a symbolic '
                            "graph; 'symbolic' is the same); imperative: run op by op")
    model.add_argument('--pretrained', default=None, metavar='NAME|FILE|RUN_DIR',
                       help='start from these weights (fine-tuning): a zoo name (its weights '
                            'in the local model store), a .params file of any kind this package '
                            'writes, or a training run folder (its best weights); every tensor '
                            'that fits is loaded, the classifier is new for the data\'s classes')
    model.add_argument('--use-pretrained', action='store_true',
                       help="GluonCV's spelling of --pretrained MODEL: the model store's weights "
                            'of --model')
    model.add_argument('--backbone-lr-mult', type=float, default=1.0,
                       help='learning-rate multiplier of everything but the classifier '
                            '(fine-tuning; 1: the same rate)')
    model.add_argument('--freeze-epochs', type=int, default=0,
                       help='train only the classifier for this many epochs first '
                            '(fine-tuning; the backbone\'s BatchNorm statistics still adapt)')

    optim = parser.add_argument_group('optimisation')
    optim.add_argument('--batch-size', type=int, default=32, help='batch size per device')
    optim.add_argument('--num-epochs', type=int, default=120, help='number of epochs')
    optim.add_argument('--optimizer', default='nag', choices=['nag', 'sgd'],
                       help='Nesterov momentum SGD (the original recipe) or plain momentum SGD')
    optim.add_argument('--lr', type=float, default=0.1, help='learning rate of the global batch')
    optim.add_argument('--lr-base', type=float, default=None,
                       help='learning rate per %d images: lr = LR_BASE x global batch / %d '
                            '(overrides --lr; the original recipe is 0.325)'
                            % (LR_BASE_BATCH, LR_BASE_BATCH))
    optim.add_argument('--momentum', type=float, default=0.9, help='optimizer momentum')
    optim.add_argument('--wd', type=float, default=0.0001, help='weight decay')
    optim.add_argument('--no-wd', action='store_true',
                       help='no weight decay on BatchNorm beta/gamma and biases')
    optim.add_argument('--lr-mode', default='step', choices=['step', 'poly', 'cosine'],
                       help='schedule after warm-up, per iteration (GluonCV\'s LRScheduler)')
    optim.add_argument('--lr-decay', type=float, default=0.1, help='step decay factor')
    optim.add_argument('--lr-decay-period', type=int, default=0,
                       help='decay every this many epochs (0: use --lr-decay-epoch)')
    optim.add_argument('--lr-decay-epoch', default='40,60', help='epochs of the step decays')
    optim.add_argument('--warmup-lr', type=float, default=0.0, help='learning rate at step 0')
    optim.add_argument('--warmup-epochs', type=int, default=0, help='linear warm-up epochs')
    optim.add_argument('--label-smoothing', action='store_true', help='label smoothing 0.1')
    optim.add_argument('--mixup', action='store_true', help='mixup training')
    optim.add_argument('--mixup-alpha', type=float, default=0.2, help='mixup Beta parameter')
    optim.add_argument('--mixup-off-epoch', type=int, default=0,
                       help='train the last this many epochs without mixup')
    optim.add_argument('--teacher', default=None,
                       help='zoo name of a distillation teacher (weights from the local store)')
    optim.add_argument('--temperature', type=float, default=20, help='distillation temperature')
    optim.add_argument('--hard-weight', type=float, default=0.5,
                       help='weight of the hard-label loss in distillation')
    optim.add_argument('--seed', type=int, default=0, help='random seed')

    system = parser.add_argument_group('precision and devices')
    system.add_argument('--dtype', default='float32', choices=['float32', 'float16'],
                        help='float16: cast the model, multi-precision optimizer (GPUs only)')
    system.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: bfloat16 on CPUs, float16 with '
                             'dynamic loss scaling on GPUs')
    system.add_argument('--num-gpus', type=int, default=0, help='GPUs to use (0: the CPU)')
    system.add_argument('--kvstore', default='device',
                        choices=['local', 'device', 'nccl', 'dist_sync', 'dist_device_sync',
                                 'dist_async'],
                        help='how the GPUs of one machine sum gradients (device, local, nccl); '
                             'dist_*: parameter-server training, roles from DMLC_* variables')

    output = parser.add_argument_group('outputs and resuming')
    output.add_argument('--save-dir', default='checkpoints',
                        help='root of the run folders <save-dir>/<model>-<tag-name>')
    output.add_argument('--tag-name', default='baseline', help='name of this run')
    output.add_argument('--save-frequency', type=int, default=10,
                        help='keep a checkpoint every this many epochs (0: only best and last)')
    output.add_argument('--verbose', action='store_true',
                        help='print the arguments and the network on the console too '
                             '(the log file always has them)')
    output.add_argument('--log-interval', type=int, default=50,
                        help='batches between training log lines')
    output.add_argument('--logging-file', default='log.txt',
                        help='name of the log file in the run folder (not a path, as in GluonCV)')
    output.add_argument('--tensorboard', action='store_true',
                        help='write mxboard scalars to <run folder>/tensorboard')
    output.add_argument('--resume', default=None,
                        help="'auto': continue the run folder from its newest complete "
                             "checkpoint; or a checkpoint .json file")
    output.add_argument('--allow-recipe-change', action='store_true',
                        help='let --resume change the optimisation recipe (learning rate, '
                             'schedule, weight decay, momentum, mixup...): the changes are '
                             'recorded as a new phase in run.json. Network, input and classes '
                             'can never change on resume')
    output.add_argument('--resume-epoch', type=int, default=0,
                        help='epoch to start from (with --resume-params/--resume-states)')
    output.add_argument('--resume-params', default='', help='parameters to start from')
    output.add_argument('--resume-states', default='', help='trainer states to start from')
    refused = parser.add_argument_group(
        "GluonCV's flags for networks outside this zoo (refused, exit status 2)")
    for flag, dest, why in REFUSED_GLUONCV_FLAGS:
        refused.add_argument(flag, dest=dest, action='store_true', help=why)
    return parser


def _channels(parser, flag, text):
    """The three numbers of ``--rgb-mean``/``--rgb-std`` (``'R,G,B'``), or ``parser.error``."""
    try:
        values = tuple(float(part) for part in text.split(','))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= value <= 255 for value in values):
        parser.error("%s must be three numbers between 0 and 255 (R,G,B of 0-255 pixels, as "
                     "GluonCV's '123.68,116.779,103.939'), not %r" % (flag, text))
    if flag == '--rgb-std' and min(values) <= 0:
        parser.error('--rgb-std must be positive, not %r' % text)
    return values


#: ``(flag, lowest, highest, lowest allowed, highest allowed)`` of the numeric flags;
#: ``None``: unbounded. Unset optional flags (``None``) are not checked.
_RANGES = (
    ('batch_size', 1, MAX_BATCH_SIZE, True, True), ('num_epochs', 1, None, True, True),
    ('log_interval', 1, None, True, True), ('input_size', 16, MAX_INPUT_SIZE, True, True),
    ('num_workers', 0, MAX_DATA_WORKERS, True, True), ('classes', 1, None, True, True),
    ('num_training_samples', 1, None, True, True), ('num_gpus', 0, None, True, True),
    ('save_frequency', 0, None, True, True), ('warmup_epochs', 0, None, True, True),
    ('lr_decay_period', 0, None, True, True), ('resume_epoch', 0, None, True, True),
    ('seed', 0, 2 ** 30, True, True), ('asymmrate', 0, None, True, True),
    ('shuffle_group', 0, None, True, True),
    ('lr', 0, None, True, True), ('lr_base', 0, None, False, True),
    ('momentum', 0, 1, True, False), ('wd', 0, None, True, True),
    ('warmup_lr', 0, None, True, True), ('lr_decay', 0, None, False, True),
    ('crop_ratio', 0, 1, False, True), ('min_random_area', 0, 1, False, True),
    ('mixup_alpha', 0, None, False, True), ('temperature', 0, None, False, True),
    ('hard_weight', 0, 1, True, True), ('dropout', 0, 1, True, False),
    ('width_scale', 0, None, False, True), ('backbone_lr_mult', 0, None, True, True),
    ('freeze_epochs', 0, None, True, True),
)


def parse_args(argv=None):
    """Parse and check ``argv``; bad values exit with status 2 (argparse's ``error``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, dest, why in REFUSED_GLUONCV_FLAGS:
        if getattr(args, dest):
            parser.error('%s: %s' % (flag, why))
    if args.data_backend != DATA_BACKEND:
        parser.error("--data-backend %s: DALI is not supported; the data go through MXNet's own "
                     'pipelines: drop the flag (or give --data-backend %s)'
                     % (args.data_backend, DATA_BACKEND))
    if args.use_rec and not args.rec_train and args.dataset != 'digits':
        parser.error('--use-rec reads the RecordIO files given by --rec-train/--rec-val: '
                     'give --rec-train (and --rec-train-idx)')
    if args.mode == 'symbolic':
        args.mode = 'hybrid'
    args.rgb_mean = _channels(parser, '--rgb-mean', args.rgb_mean) if args.rgb_mean else None
    args.rgb_std = _channels(parser, '--rgb-std', args.rgb_std) if args.rgb_std else None
    digits = args.dataset == 'digits'
    if args.input_size is None:
        args.input_size = 32 if digits else 224
    if args.min_random_area is None:
        args.min_random_area = 1.0 if digits else 0.08
    if args.mirror is None:
        args.mirror = not digits
    check_ranges(parser, args, _RANGES)
    if not args.num_gpus:
        check_batch_memory(parser, args.batch_size, args.input_size, 'training')
    if not args.tag_name or os.sep in args.tag_name or args.tag_name in ('.', '..'):
        parser.error('--tag-name must name a folder inside --save-dir, not %r' % args.tag_name)
    if args.data_dir and (args.rec_train or args.rec_val):
        parser.error('give --data-dir or --rec-train/--rec-val, not both')
    if args.dataset == 'digits' and (args.data_dir or args.rec_train or args.rec_val):
        parser.error('--dataset digits brings its own data: drop --data-dir/--rec-train/--rec-val')
    if not args.logging_file or os.sep in args.logging_file or args.logging_file in ('.', '..'):
        parser.error('--logging-file must be a file name (it goes in the run folder), not %r'
                     % args.logging_file)
    if args.warmup_epochs >= args.num_epochs:
        parser.error('--warmup-epochs %d leaves no epoch of --num-epochs %d after warm-up'
                     % (args.warmup_epochs, args.num_epochs))
    if args.mixup_off_epoch < 0 or args.mixup_off_epoch > args.num_epochs:
        parser.error('--mixup-off-epoch must be between 0 and --num-epochs')
    if args.resume and (args.resume_params or args.resume_states):
        parser.error('--resume cannot be combined with --resume-params/--resume-states')
    if args.use_pretrained and args.pretrained:
        parser.error('give --pretrained or --use-pretrained, not both')
    if args.freeze_epochs >= args.num_epochs:
        parser.error('--freeze-epochs %d leaves no epoch of --num-epochs %d to train the whole '
                     'network' % (args.freeze_epochs, args.num_epochs))
    if args.resume_epoch and not args.resume_params:
        parser.error('--resume-epoch needs --resume-params (the weights of that epoch)')
    if (args.pretrained or args.use_pretrained) and (args.resume or args.resume_params):
        parser.error('--pretrained starts a new run; --resume continues one: give one of them')
    if args.doshuffle and args.shuffle_group is None:
        args.shuffle_group = 2
    try:
        args.lr_decay_epochs = [int(e) for e in args.lr_decay_epoch.split(',') if e.strip()]
    except ValueError:
        args.lr_decay_epochs = [-1]
    if any(epoch < 0 for epoch in args.lr_decay_epochs):
        parser.error('--lr-decay-epoch must be comma-separated epochs (integers >= 0), not %r'
                     % args.lr_decay_epoch)
    return args


def data_source(args):
    """The :class:`~gluon_asymmnet.data.DataSource` of the data flags (after digits are set)."""
    return DataSource(args.rec_train, args.rec_train_idx, args.rec_val, args.rec_val_idx,
                      args.data_dir)


def net_spec(args, name, classes):
    """The :class:`~gluon_asymmnet.records.NetSpec` of the model flags."""
    return NetSpec(name=name, classes=classes, dropout=args.dropout, asymmrate=args.asymmrate,
                   shuffle_group=args.shuffle_group, last_gamma=args.last_gamma)


def train_recipe(args, data, pretrained=None):
    """The :class:`~gluon_asymmnet.records.TrainRecipe` of the flags: each field is the flag
    of the same name; ``data`` names the training data, ``pretrained`` the initial weights."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainRecipe)
              if field.name not in ('data', 'pretrained', 'lr_decay_epochs')}
    return TrainRecipe(data=data, pretrained=pretrained,
                       lr_decay_epochs=tuple(args.lr_decay_epochs), **values)


def global_lr(recipe, global_batch):
    """The learning rate of a :class:`~gluon_asymmnet.records.TrainRecipe`: ``lr``, or
    ``lr_base x global_batch / 256``."""
    if recipe.lr_base is None:
        return recipe.lr
    return recipe.lr_base * global_batch / LR_BASE_BATCH
