"""GluonCV's SSD recipe on the digits detection set: what the demo and the detection
experiments both train.

The detector is GluonCV's SSD (:func:`~gluon_asymmnet.detectors.get_asymm_ssd`) on a
zoo backbone's stride-8/16/32 maps at :data:`SIZE` pixels, with the anchor sizes of
GluonCV's 300 MobileNet (:data:`SIZES`) and small extra layers (:data:`FILTERS`).
Training uses GluonCV's pieces: ``SSDDefaultTrainTransform`` with its target
generator, ``SSDMultiBoxLoss``, Adam with a step decay at 3/4 of the epochs
(:func:`learning_rate`); evaluation is VOC07 mAP@0.5 per class (``VOC07MApMetric``).
"""
import mxnet as mx
from mxnet import autograd, gluon

from .data.digits_voc import DIGIT_CLASSES
from .detectors import SIZES_300, get_asymm_ssd, ssd_config
from .mxnet_private import structured_params
from .params import seeded_initialize

__all__ = ['SIZE', 'SIZES', 'FILTERS', 'LEARNING_RATE', 'WEIGHT_DECAY', 'digits_ssd',
           'seeded_ssd_initialize', 'train_loader', 'val_loader', 'evaluate', 'learning_rate',
           'trainer', 'train_epoch']

#: Input side of the detector (the canvases of the digits detection set).
SIZE = 128
#: GluonCV's 300 MobileNet anchor sizes, as fractions of the input side.
SIZES = SIZES_300
#: Channels of the three extra layers (strides 64, 128, 256 at 128 pixels: 2x2, 1x1, 1x1).
FILTERS = (128, 128, 64)
#: Adam's learning rate before the step decay (x0.1 at 3/4 of the epochs).
LEARNING_RATE = 2e-3
#: Adam's weight decay.
WEIGHT_DECAY = 5e-4


def digits_ssd(backbone):
    """GluonCV's SSD on zoo model ``backbone`` for the ten digit classes, uninitialised."""
    return get_asymm_ssd(backbone, ssd_config(SIZE, FILTERS, SIZES), list(DIGIT_CLASSES))


def seeded_ssd_initialize(net, seed):
    """Initialise an SSD from ``(seed, structural name)`` of each parameter
    (:func:`~gluon_asymmnet.params.seeded_initialize`, with MXNet's default initializer,
    which the demo's ``initialize()`` uses): an AsymmNet detector and its r=0 twin start
    from the same values of every parameter they share."""
    with autograd.train_mode():
        out = mx.sym.Group(list(net(mx.sym.var('data'))))
    args, _, aux = out.infer_shape(data=(1, 3, SIZE, SIZE))
    inferred = dict(zip(out.list_arguments(), args))
    inferred.update(zip(out.list_auxiliary_states(), aux))
    for param in structured_params(net).values():
        param.shape = tuple(inferred[param.name])
    seeded_initialize(net, mx.init.Uniform(), seed)


def train_loader(net, dataset, batch_size):
    """Shuffled training batches ``(images, class targets, box targets)`` through GluonCV's
    ``SSDDefaultTrainTransform`` (augmentation and the anchors' targets), in this process
    (its random draws follow Python's and NumPy's generators)."""
    from gluoncv.data.batchify import Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultTrainTransform
    with autograd.train_mode():
        _, _, anchors = net(mx.nd.zeros((1, 3, SIZE, SIZE)))
    transform = SSDDefaultTrainTransform(SIZE, SIZE, anchors)
    return gluon.data.DataLoader(dataset.transform(transform), batch_size, shuffle=True,
                                 batchify_fn=Tuple(Stack(), Stack(), Stack()),
                                 last_batch='rollover', num_workers=0)


def val_loader(dataset):
    """Validation batches ``(images, padded labels)`` through ``SSDDefaultValTransform``."""
    from gluoncv.data.batchify import Pad, Stack, Tuple
    from gluoncv.data.transforms.presets.ssd import SSDDefaultValTransform
    return gluon.data.DataLoader(dataset.transform(SSDDefaultValTransform(SIZE, SIZE)), 50,
                                 shuffle=False, batchify_fn=Tuple(Stack(), Pad(pad_val=-1)))


def evaluate(net, loader):
    """VOC07 mAP@0.5: ``{'mAP': %, '<class>': %, ...}`` (percent, two decimals)."""
    from gluoncv.utils.metrics.voc_detection import VOC07MApMetric
    metric = VOC07MApMetric(iou_thresh=0.5, class_names=DIGIT_CLASSES)
    for images, labels in loader:   # GluonCV's batches live in shared memory
        ids, scores, boxes = net(images.as_in_context(mx.cpu()))
        metric.update(boxes, ids, scores, labels[:, :, :4], labels[:, :, 4:5],
                      labels[:, :, 5:6])
    names, values = metric.get()
    return {name: round(float(value) * 100, 2) for name, value in zip(names, values)}


def learning_rate(epoch, epochs):
    """The learning rate of ``epoch`` (from 0) of ``epochs``: a step decay at 3/4."""
    return LEARNING_RATE if epoch < int(0.75 * epochs) else LEARNING_RATE / 10


def trainer(net):
    """Adam over every parameter of ``net``."""
    return gluon.Trainer(net.collect_params(), 'adam',
                         {'learning_rate': LEARNING_RATE, 'wd': WEIGHT_DECAY})


def train_epoch(net, loader, optimizer, stop=None):
    """One pass over ``loader`` with GluonCV's ``SSDMultiBoxLoss``; the mean loss, or None
    when ``stop()`` turned true before the end (the epoch is then incomplete)."""
    import gluoncv
    loss_fn = gluoncv.loss.SSDMultiBoxLoss()
    total, batches = 0.0, 0
    for images, cls_targets, box_targets in loader:
        if stop is not None and stop():
            return None
        cls_targets, box_targets = (t.as_in_context(mx.cpu()) for t in (cls_targets,
                                                                         box_targets))
        with autograd.record():
            cls_preds, box_preds, _ = net(images.as_in_context(mx.cpu()))
            loss, _, _ = loss_fn([cls_preds], [box_preds], [cls_targets], [box_targets])
        autograd.backward(loss)
        optimizer.step(1)
        total += float(loss[0].mean().asscalar())
        batches += 1
    return total / batches
