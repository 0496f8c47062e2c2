"""A detection cell: GluonCV's SSD on a zoo backbone, trained on the digits detection set.

The runner's detection task (:data:`~.tasks.DETECTION`) runs each cell as
``python -m gluon_asymmnet.experiments.detection RECIPE --model M --seed S
--save-dir OUT/runs --tag-name TAG --resume auto``: the demo's recipe
(:mod:`~gluon_asymmnet.detection_recipe`) on :func:`digits set
<gluon_asymmnet.data.digits_voc.prepare_digits_voc>` of ``--num-train`` /
``--num-val`` canvases, in a run folder ``OUT/runs/<model>-<tag>`` like a
classification cell's:

- ``metrics.jsonl``: one record per epoch (``epoch``, ``train_loss``, ``lr``, ``time``);
  the last one also holds ``val_map``, the VOC07 mAP@0.5 (a fraction) and
  ``val_ap``, the AP of each class;
- ``checkpoint-<epoch>.params`` / ``.states``: the weights and Adam's states after
  the last recorded epoch (``--resume auto`` goes on from there, exactly: each
  epoch's data order and augmentation are drawn from ``(seed, epoch)``);
- ``<model>-symbol.json`` / ``<model>-0000.params``: the trained detector, exported.

The seed fixes the data order, the augmentation and the initial value of every
parameter (:func:`~gluon_asymmnet.detection_recipe.seeded_ssd_initialize`), so
an AsymmNet detector and its r=0 twin with one seed differ only in their
networks.  SIGINT/SIGTERM stop the cell after the current batch (the epoch is
trained again on resume), status 130.
"""
import hashlib
import json
import os
import random
import sys
import time

from ..cli import EXIT_INTERRUPTED, OneLineParser, StopFlag, run as run_command
from ..data.digits import default_digits_root
from ..data.digits_voc import DigitsVOCConfig
from ..detectors import BACKBONES
from ..errors import UsageError
from ..fileio import atomic_save, exclusive_lock
from ..run_metrics import METRICS_FILE, read_metrics
from .grid import Cell, split_width

__all__ = ['DETECTION_FAMILIES', 'build_parser', 'parse_recipe', 'check_cell', 'data_root',
           'prepare_data', 'train_cell', 'main']

PROG = 'python -m gluon_asymmnet.experiments.detection'
#: The zoo families with a detection config (:data:`gluon_asymmnet.detectors.BACKBONES`).
DETECTION_FAMILIES = tuple(sorted({split_width(zoo)[0] for zoo, _ in BACKBONES.values()}))
#: Most canvases of each split (the digits set draws them in one process).
MOST_IMAGES = 20000


def build_parser():
    """The flags of a detection cell: the recipe's, then those the runner sets."""
    parser = OneLineParser(prog=PROG, description='Train one detection cell of the experiment '
                                                  'runner (GluonCV SSD on the digits).')
    recipe = parser.add_argument_group('recipe')
    recipe.add_argument('--num-epochs', type=int, default=12, help='epochs to train')
    recipe.add_argument('--batch-size', type=int, default=16, help='canvases per batch')
    recipe.add_argument('--num-train', type=int, default=DigitsVOCConfig().num_train,
                        help='training canvases of the digits detection set')
    recipe.add_argument('--num-val', type=int, default=DigitsVOCConfig().num_val,
                        help='validation canvases')
    recipe.add_argument('--data-root', default=None,
                        help='where the set is built (default: under $MXNET_HOME/datasets, '
                             'named by its config)')
    cell = parser.add_argument_group('set by the runner')
    cell.add_argument('--model', required=True, help='zoo name of the backbone')
    cell.add_argument('--seed', type=int, default=0,
                      help='initialisation, data order and augmentation')
    cell.add_argument('--asymmrate', type=int, default=None,
                      help="the backbone's own (GluonCV builds it by name)")
    cell.add_argument('--shuffle-group', type=int, default=None,
                      help="the backbone's own (GluonCV builds it by name)")
    cell.add_argument('--save-dir', default='runs', help='where the run folder is made')
    cell.add_argument('--tag-name', default=None,
                      help="the run folder is <model>-<tag> (default: the cell's own tag)")
    cell.add_argument('--resume', choices=['auto'], default=None,
                      help='go on from the last recorded epoch')
    return parser


def parse_recipe(flags):
    """The checked recipe of ``flags`` (argparse exits 2 on bad ones): an
    ``argparse.Namespace`` with ``input_size`` and ``num_gpus`` added, as the runner
    reads a classification recipe."""
    from ..detection_recipe import SIZE
    args = build_parser().parse_args(list(flags) + ['--model', '<set by the runner>'])
    _check_ranges(args)
    args.input_size, args.num_gpus = SIZE, 0
    return args


def _check_ranges(args):
    for name, low, high in (('num_epochs', 1, 1000), ('batch_size', 1, 1024),
                            ('num_train', 1, MOST_IMAGES), ('num_val', 1, MOST_IMAGES)):
        if not low <= getattr(args, name) <= high:
            raise UsageError('--%s must be between %d and %d, not %d'
                             % (name.replace('_', '-'), low, high, getattr(args, name)))


def check_cell(cell):
    """Raise :class:`~gluon_asymmnet.errors.UsageError` unless ``cell`` (a
    :class:`~.grid.Cell`) can be a detection cell: its family has a detection config and
    its options are its zoo name's own (GluonCV's SSD builds the backbone by name; None:
    not given, the model's own)."""
    from ..backbones import ssd_features
    from .grid import model_options
    if cell.family not in DETECTION_FAMILIES:
        raise UsageError('%s has no detection config (detection backbones: %s)'
                         % (cell.model, ', '.join(DETECTION_FAMILIES)))
    default, _, _ = model_options(cell.model)
    if cell.asymmrate not in (None, default) or cell.shuffle_group not in (None, 0):
        raise UsageError("%s: a detector's backbone is built by its zoo name, with its own "
                         "asymmrate (%s) and no shuffle: give its r=0 twin by name "
                         "(mobilenetv3_small_0.5 is asymmnet_small_0.5 at r=0)"
                         % (cell.run_name, default))
    try:
        ssd_features(cell.model)
    except ValueError as error:
        raise UsageError('%s has no detection config: %s' % (cell.model, error)) from None


def _data_config(recipe):
    from ..detection_recipe import SIZE
    return DigitsVOCConfig(size=SIZE, num_train=recipe.num_train, num_val=recipe.num_val)


def data_root(recipe):
    """Where the recipe's digits detection set is (built): ``--data-root``, else a folder
    of ``$MXNET_HOME/datasets`` named by the set's config."""
    if recipe.data_root:
        return recipe.data_root
    config = json.dumps(_data_config(recipe)._asdict(), sort_keys=True)
    return os.path.join(os.path.expanduser(default_digits_root()),
                        'digits_voc-%s' % hashlib.sha1(config.encode()).hexdigest()[:10])


def prepare_data(recipe):
    """Build the recipe's detection set once (before the cells, which then only read it)."""
    from ..data.digits_voc import prepare_digits_voc
    try:
        prepare_digits_voc(data_root(recipe), _data_config(recipe))
    except ValueError as error:
        raise UsageError(str(error)) from None


def _epoch_seed(seed, epoch):
    digest = hashlib.sha256(('detection:%d:%d' % (seed, epoch)).encode()).digest()
    return int.from_bytes(digest[:4], 'little') % 2 ** 31


def _seed_epoch(seed, epoch):
    """Seed every generator the data order and augmentation draw from."""
    import mxnet as mx
    import numpy as np
    value = _epoch_seed(seed, epoch)
    random.seed(value)
    np.random.seed(value)
    mx.random.seed(value)


def _lock(folder):
    handle = exclusive_lock(os.path.join(folder, '.lock'))
    if handle is None:
        raise UsageError('%s is being trained by another process' % folder)
    return handle


def _checkpoint(folder, epoch):
    return os.path.join(folder, 'checkpoint-%04d.params' % epoch)


def _save(net, optimizer, folder, epoch, record):
    """Weights and states of ``epoch``, then its metrics line (the checkpoint a resume
    needs is on disk before the epoch counts as recorded), then the older checkpoints go."""
    path = _checkpoint(folder, epoch)
    atomic_save(path, lambda tmp: net.save_parameters(tmp))
    atomic_save(path[:-len('.params')] + '.states', lambda tmp: optimizer.save_states(tmp))
    with open(os.path.join(folder, METRICS_FILE), 'a') as metrics:
        metrics.write(json.dumps(record, sort_keys=True) + '\n')
        metrics.flush()
        os.fsync(metrics.fileno())
    for name in os.listdir(folder):
        if name.startswith('checkpoint-') and not name.startswith(os.path.basename(path)[:-7]):
            os.remove(os.path.join(folder, name))


def train_cell(args):
    """Train (or resume) one cell, evaluate it and export it; returns the exit status."""
    import mxnet as mx
    from ..data.digits_voc import digits_voc_dataset
    from ..detection_recipe import (digits_ssd, evaluate, learning_rate, seeded_ssd_initialize,
                                    train_epoch, train_loader, trainer, val_loader)
    family, width = split_width(args.model)
    cell = Cell(args.model, family, width, args.asymmrate, args.shuffle_group, args.seed)
    check_cell(cell)
    folder = os.path.join(args.save_dir, '%s-%s' % (args.model, args.tag_name or cell.tag))
    os.makedirs(folder, exist_ok=True)
    lock = _lock(folder)
    try:
        metrics = os.path.join(folder, METRICS_FILE)
        done = read_metrics(metrics) if args.resume and os.path.exists(metrics) else []
        if os.path.exists(metrics) and not args.resume:
            raise UsageError('%s holds a run: resume it (--resume auto) or delete it' % folder)
        prepare_data(args)
        root = data_root(args)
        train_set, val_set = (digits_voc_dataset(root, s) for s in ('train', 'val'))
        net = digits_ssd(args.model)
        seeded_ssd_initialize(net, args.seed)
        net.hybridize(static_alloc=True, static_shape=True)
        optimizer = trainer(net)
        if done:
            last = _checkpoint(folder, done[-1]['epoch'])
            net.load_parameters(last)
            optimizer.load_states(last[:-len('.params')] + '.states')
        batches = train_loader(net, train_set, args.batch_size)
        with StopFlag() as stop:
            for epoch in range(len(done), args.num_epochs):
                start = time.time()
                _seed_epoch(args.seed, epoch)
                optimizer.set_learning_rate(learning_rate(epoch, args.num_epochs))
                loss = train_epoch(net, batches, optimizer, lambda: stop.signal_name)
                if loss is None:
                    print('%s: stopped in epoch %d (resume trains it again)'
                          % (stop.signal_name, epoch), flush=True)
                    return EXIT_INTERRUPTED
                record = {'epoch': epoch, 'train_loss': loss, 'lr': optimizer.learning_rate,
                          'time': time.time() - start}
                if epoch == args.num_epochs - 1:
                    net.hybridize(static_alloc=True, static_shape=True)   # inference graph
                    ap = evaluate(net, val_loader(val_set))
                    record.update(val_map=ap.pop('mAP') / 100, val_ap=ap)
                print('[Epoch %d] %s' % (epoch, json.dumps(record, sort_keys=True)), flush=True)
                _save(net, optimizer, folder, epoch, record)
        net.export(os.path.join(folder, args.model))
        mx.nd.waitall()
    finally:
        lock.close()
    return 0


def main(argv=None):
    """Entry point of a detection cell (the runner's child)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command(parser, _checked_train, args)


def _checked_train(args):
    _check_ranges(args)
    return train_cell(args)


if __name__ == '__main__':
    sys.exit(main())
