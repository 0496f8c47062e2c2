"""Named grids that mirror the paper's ablations, and the small one for the digits.

The ImageNet presets carry no recipe: the data and training flags come from the
command line (after ``--``), as for ``train_imagenet.py``.  ``digits`` carries
its recipe (the embedded digits set, a few epochs on part of the training set,
so that the families are not all at 100%); flags after ``--`` are appended to it
(the last one given wins).  The same recipe trains every model: nothing is tuned
per family.  Its learning rate is the paper's, ``--lr-base 0.325`` (0.081 for a
batch of 64): ``make demo``'s 0.2 left MobileNetV2 (r=0) at chance level in 8 epochs.

Its seeds and resolution come from a pilot of 4 seeds of its 10 paired variants:
the per-seed differences between an AsymmNet-S cell and its r=0 twin spread by
0.7 to 2.5 pp (1.65 pooled), so ±1 pp would take about 45 seeds (some 90 minutes
on 2 cores); 10 seeds fit in about 22 minutes (its 120 cells took 2,570 CPU
seconds) and resolve about ±2.4 pp: the verdicts are at ±2.5 pp.  MobileNetV2
x0.5's differences spread by 4.9 pp in the pilot, but some of its r=0 cells stall
(17% and 54% top-1 in seeds 4 and 6): over 10 seeds they spread by 24 pp.

``detection`` (task ``detection``: :mod:`.detection`) trains GluonCV's SSD with the
detection demo's recipe (Adam 2e-3, x0.1 for the last quarter, batches of 16; nothing
changed for either family) on AsymmNet-S x0.5 and MobileNetV3-S x0.5, shortened to
10 epochs of 480 canvases so that 4 seed pairs fit in 35 minutes on 2 loaded cores;
recipe, seeds and the ±3 pp resolution were fixed before any cell ran.  Its runs took
22 and 25 minutes (8 cells of 160 CPU seconds, 2 side by side, other processes keeping
a core busy) with identical results; the per-seed mAP differences spread by 3.1 pp, so
4 seeds resolve about ±10 pp and ±3 pp would take about 19 (docs/detection.md).
"""
import collections

from .grid import Arm

__all__ = ['Preset', 'PRESETS']


class Preset(collections.namedtuple('Preset', 'name description arms seeds recipe cell_seconds '
                                              'cell_threads resolution task',
                                    defaults=(None, 1.0, 'classification'))):
    """A named grid.

    Parameters
    ----------
    name, description : str
    arms : tuple of Arm
    seeds : int
        Default number of seeds (``--seeds`` overrides it).
    recipe : tuple of str
        ``train_imagenet.py`` flags of the preset (ImageNet presets: none).
    cell_seconds : float or None
        Measured CPU seconds of one cell (its wall time at one thread on a quiet
        machine), for ``--dry-run``'s estimate before any cell of the run is timed.
    cell_threads : int or None
        Cores of each cell (``--cell-threads``); None: the cores split between the jobs.
        A preset whose report is committed fixes it: the augmentation depends on it.
    resolution : float
        The difference of the score (percentage points of top-1, or of mAP) its verdicts
        resolve (``--resolution``).
    task : str
        What its cells train (a key of :data:`~.tasks.TASKS`): its recipe's flags are
        that task's.
    """


_LARGE_SMALL = ('asymmnet_large', 'asymmnet_small')

PRESETS = collections.OrderedDict((preset.name, preset) for preset in (
    Preset('asymmrate',
           'asymmrate r = 0 (MobileNetV3), 1, 2 and channel shuffle on AsymmNet-L/S x1.0',
           (Arm(_LARGE_SMALL, ('1.0',), (0, 1, 2), (0,)),
            Arm(_LARGE_SMALL, ('1.0',), (1, 2), (2,))),
           seeds=3, recipe=(), cell_seconds=None),
    Preset('mobilenetv2',
           'MobileNetV2 with asymmetrical bottlenecks (r=1) against r=0, every width',
           (Arm(('mobilenetv2_asymm',), ('all',), (0, 1)),),
           seeds=3, recipe=(), cell_seconds=None),
    Preset('matched-madds',
           'AsymmNet-L/S against MobileNetV3-L/S (the same MAdds at equal width) and '
           'GhostNet, every width',
           (Arm(_LARGE_SMALL, ('all',)),
            Arm(('mobilenetv3_large', 'mobilenetv3_small'), ('all',)),
            Arm(('ghostnet',), ('all',), optional=True)),
           seeds=3, recipe=(), cell_seconds=None),
    Preset('digits',
           'the three ablations in small on the embedded digits (32x32, 10 epochs of 640 '
           'samples): AsymmNet-S x0.35/0.5/0.75 at r = 0 (MobileNetV3-S) and 1, r = 2 and '
           'shuffle at x0.5, MobileNetV2 x0.5 at r = 0/1, GhostNet x0.5/1.0',
           (Arm(('asymmnet_small',), ('0.35', '0.5', '0.75'), (0, 1)),
            Arm(('asymmnet_small',), ('0.5',), (2,)),
            Arm(('asymmnet_small',), ('0.5',), (1,), (2,)),
            Arm(('mobilenetv2_asymm',), ('0.5',), (0, 1)),
            Arm(('ghostnet',), ('0.5', '1.0'), optional=True)),
           seeds=10,
           recipe=('--dataset', 'digits', '--input-size', '32', '--crop-ratio', '1',
                   '--batch-size', '64', '--num-training-samples', '640', '--num-epochs', '10',
                   '--lr-base', '0.325', '--lr-mode', 'cosine', '--warmup-epochs', '1',
                   '--wd', '5e-5', '--no-wd', '--save-frequency', '0', '--log-interval', '100'),
           cell_seconds=19.0,   # mean CPU seconds of its cells (15.6 to 22.2 by model)
           cell_threads=1, resolution=2.5),
    Preset('detection',
           "the paper's claim on detection: GluonCV's SSD with the detection demo's recipe "
           '(128x128 digits canvases, 10 epochs of 480) on AsymmNet-S x0.5 and on its r=0 twin '
           'MobileNetV3-S x0.5 (the same network at asymmrate 0, equal MACs)',
           (Arm(('asymmnet_small_0.5', 'mobilenetv3_small_0.5')),),
           seeds=4,
           recipe=('--num-epochs', '10', '--num-train', '480', '--num-val', '150',
                   '--batch-size', '16'),
           cell_seconds=160.0, cell_threads=1, resolution=3.0, task='detection'),
))
