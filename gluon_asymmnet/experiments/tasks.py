"""What a grid's cells train: classification (``train_imagenet.py``) or detection
(GluonCV's SSD on the digits, :mod:`.detection`).

The runner, its resume and signals, the measurements and the report are the same
for both; a task says which program trains a cell and with which flags, how its
recipe is checked, which zoo models it takes, what its cells are scored by (the
key of the last epoch's record in ``metrics.jsonl``) and which source files decide
what a cell computes (:mod:`.provenance`).
"""
import sys

from ..errors import UsageError
from .provenance import TRAINING_CODE
from .report import TOP1, Score

__all__ = ['Task', 'ClassificationTask', 'DetectionTask', 'TASKS', 'OWNED', 'TRAIN_COMMAND']

#: The training command of a classification cell: the package's own (``gluon_asymmnet/train``),
#: so that an installed package needs no repository.
TRAIN_COMMAND = (sys.executable, '-m', 'gluon_asymmnet.train')

#: ``train_imagenet.py`` options the runner sets for every cell (``dest`` names).
OWNED = ('model', 'width_scale', 'asymmrate', 'shuffle_group', 'doshuffle', 'seed', 'save_dir',
         'tag_name', 'resume', 'resume_epoch', 'resume_params', 'resume_states', 'num_workers')


class Task:
    """What the cells of a grid train.

    Attributes
    ----------
    name : str
    program : str
        How the report names the program of a cell.
    metric : str
        The score of a cell: its key in the last epoch's metrics record (a fraction).
    second : str or None
        The key of a second score shown beside it (top-5), or None.
    score : Score
        The report's names of the scores.
    description : str
        What the scores are, for the report.
    measured : str
        What the report's MACs, parameters and latencies are of (``''``: the cells'
        networks), followed by a space.
    code : tuple of str
        The files (folders: their ``*.py``) that decide what a cell computes.
    """
    name = program = metric = second = score = description = None
    measured = ''
    code = TRAINING_CODE

    def recipe(self, flags, cell):
        """The checked recipe of ``flags`` (with ``num_epochs``, ``input_size``, ``num_gpus``);
        raises :class:`UsageError` (or exits 2 from argparse) on a bad one."""
        raise NotImplementedError

    def classes(self, recipe):
        """The number of classes; builds the data where the cells will find it."""
        raise NotImplementedError

    def check(self, cells):
        """Raise :class:`UsageError` for a cell this task cannot train."""

    def command(self, cell, flags, runs_dir, threads):
        """The argv of the child that trains ``cell``."""
        raise NotImplementedError


class ClassificationTask(Task):
    """Cells of ``train_imagenet.py`` (:data:`TRAIN_COMMAND`), scored by validation top-1
    (and top-5)."""
    name, program = 'classification', 'train_imagenet.py'
    metric, second, score = 'val_top1', 'val_top5', TOP1
    description = 'validation accuracy'

    @staticmethod
    def _owned_given(flags):
        """The runner-owned ``train_imagenet.py`` options among ``flags``, as the command
        line spells them (``-j/--num-data-workers``)."""
        from ..train.args import build_parser as train_parser
        parser = train_parser()
        unset, placeholder = object(), '<set by the runner>'
        parser.set_defaults(**{dest: unset for dest in OWNED})
        parsed = parser.parse_args(['--model', placeholder] + list(flags))
        spelled = {action.dest: '/'.join(action.option_strings) for action in parser._actions}
        return [spelled[dest] for dest in OWNED
                if getattr(parsed, dest) not in (unset, placeholder)]

    def recipe(self, flags, cell):
        from ..train.args import parse_args
        owned = self._owned_given(flags)
        if owned:
            raise UsageError('the runner sets %s for every cell: leave them out of the training '
                             'flags' % ', '.join(owned))
        return parse_args(list(flags) + cell.train_flags())

    def classes(self, recipe):
        """The number of classes of the data (checked as ``train_imagenet.py`` checks it)."""
        from ..data import DataSource, check_data, prepare_digits
        if recipe.classes:
            return recipe.classes
        if recipe.dataset == 'digits':   # built once, where the cells' trainings will find it
            digits = prepare_digits(recipe.digits_root, size=recipe.input_size)
            return len(digits.classes)
        source = DataSource(recipe.rec_train, recipe.rec_train_idx, recipe.rec_val,
                            recipe.rec_val_idx, recipe.data_dir)
        return check_data(source, recipe.batch_size).num_classes

    def command(self, cell, flags, runs_dir, threads):
        return list(TRAIN_COMMAND) + list(flags) + cell.train_flags() + [
            '--save-dir', runs_dir, '--tag-name', cell.tag, '--resume', 'auto',
            '-j', str(threads)]


class DetectionTask(Task):
    """Detection cells (:mod:`.detection`), scored by VOC07 mAP@0.5."""
    name, program = 'detection', 'python -m gluon_asymmnet.experiments.detection'
    metric, score = 'val_map', Score('mAP', column='map')
    description = 'VOC07 mAP@0.5 of the validation canvases (11-point AP, mean over the classes)'
    measured = 'of the backbone (the zoo classifier of the same name) '
    code = TRAINING_CODE + ('gluon_asymmnet/detection_recipe.py', 'gluon_asymmnet/detectors.py',
                            'gluon_asymmnet/backbones.py',
                            'gluon_asymmnet/experiments/detection.py')
    _OWNED = ('--model', '--seed', '--asymmrate', '--shuffle-group', '--save-dir', '--tag-name',
              '--resume')

    def recipe(self, flags, cell):
        from .detection import parse_recipe
        owned = [flag for flag in self._OWNED
                 if any(f == flag or f.startswith(flag + '=') for f in flags)]
        if owned:
            raise UsageError('the runner sets %s for every cell: leave them out of the training '
                             'flags' % ', '.join(owned))
        return parse_recipe(flags)

    def classes(self, recipe):
        from ..data.digits_voc import DIGIT_CLASSES
        from .detection import prepare_data
        prepare_data(recipe)
        return len(DIGIT_CLASSES)

    def check(self, cells):
        from .detection import check_cell
        for cell in cells:
            check_cell(cell)

    def command(self, cell, flags, runs_dir, threads):
        return [sys.executable, '-m', 'gluon_asymmnet.experiments.detection'] + list(flags) + \
            cell.train_flags() + ['--save-dir', runs_dir, '--tag-name', cell.tag,
                                  '--resume', 'auto']


#: The tasks by name.
TASKS = {task.name: task for task in (ClassificationTask(), DetectionTask())}
