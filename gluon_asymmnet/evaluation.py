"""Accuracy of a model on validation data, and the top-5 classes of images.

Data come from RecordIO, an ImageNet-style folder or the embedded digits, with
the standard validation preprocessing (resize to ``ceil(input_size /
crop_ratio)``, centre crop, the model's mean/std), all taken from what the
model takes (its :class:`~gluon_asymmnet.deploy.info.ExportInfo`).
Top-1, top-5 and the loss are MXNet's own metrics; the confusion matrix (rows:
true class, columns: prediction) is kept up to :data:`CONFUSION_MAX_CLASSES`.
"""
import math
import os
import time

import mxnet as mx
import numpy as np

from .data import (batches, check_record_file, check_val_folder, imagenet_rec_iters,
                   record_labels, record_synset, val_folder_loader)
from .data.records import count_classes
from .errors import UsageError

__all__ = ['validation_data', 'evaluate', 'predict_images', 'class_names', 'top5_text',
           'CONFUSION_MAX_CLASSES']

#: The confusion matrix is reported up to this many classes.
CONFUSION_MAX_CLASSES = 20


def _check_outputs(predictor, num_classes):
    outputs = predictor.info['classes']
    if outputs != num_classes:
        raise UsageError('%s has %d outputs but the data have %d classes: a model of other data?'
                         % (predictor.name, outputs, num_classes))


def validation_data(predictor, source, batch_size=32, num_workers=4, class_names=None):
    """``(source for batches(), number of classes, class names or None)`` of validation data.

    Parameters
    ----------
    predictor : Predictor
        Its ``info`` gives the preprocessing (input size, crop ratio, mean/std);
        a model whose outputs do not match the data's classes is refused before
        the data are opened.
    source : gluon_asymmnet.data.DataSource
        ``rec_val``/``rec_val_idx`` (RecordIO), else ``data_dir`` (its ``val/``
        class folders; a ``train/`` beside it is not needed).
    batch_size, num_workers : int
    class_names : list of str, optional
        Of RecordIO data (default: the names beside the ``.rec``, see
        :func:`gluon_asymmnet.data.record_synset`).

    Raises
    ------
    UsageError, DataError
    """
    info = predictor.info
    size, crop = info.input_size, info['crop_ratio']
    norm = {'mean': tuple(info['mean']), 'std': tuple(info['std'])}
    if source.rec_val:
        rec, idx = source.rec_val, source.rec_val_idx
        check_record_file(rec, idx)
        num_classes = count_classes(record_labels(rec, idx), rec)
        classes = class_names or record_synset(rec)
        if classes is not None:
            num_classes = max(num_classes, len(classes))
    elif source.data_dir:
        classes = check_val_folder(source.data_dir)
        _check_outputs(predictor, len(classes))
        loader = val_folder_loader(source.data_dir, batch_size, size, crop,
                                   num_workers=num_workers, **norm)
        return loader, len(classes), classes
    else:
        raise UsageError('no validation data')
    _check_outputs(predictor, num_classes)
    data = imagenet_rec_iters(None, None, rec, idx, batch_size, size, crop,
                              num_workers=max(1, num_workers), **norm)[1]
    return data, num_classes, classes


def evaluate(predictor, source, num_classes):
    """Top-1, top-5, loss, images/s and (<= 20 classes) the confusion matrix.

    Parameters
    ----------
    predictor : gluon_asymmnet.deploy.runtime.Predictor
    source : mx.io.DataIter or gluon.data.DataLoader
        Read through :func:`gluon_asymmnet.data.batches`.
    num_classes : int
        Classes of the data.

    Returns
    -------
    dict
        ``top1``, ``top5`` (None for a model of 5 classes or fewer: it would always be 1),
        ``loss``, ``images_per_sec``, ``num_images``, and ``confusion_matrix`` (list of
        rows) when ``num_classes <= 20``.
    """
    _check_outputs(predictor, num_classes)
    top1_metric = mx.metric.Accuracy()
    topk_metric = mx.metric.TopKAccuracy(top_k=5) if predictor.info['classes'] > 5 else None
    loss_metric = mx.metric.CrossEntropy()
    count, seconds = 0, 0.
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for data, label in batches(source):
        start = time.perf_counter()
        logits = predictor(data.asnumpy())
        seconds += time.perf_counter() - start
        logits = mx.nd.array(logits, dtype='float64')
        label = mx.nd.array(label.asnumpy(), dtype='float64')
        top1_metric.update(label, logits)
        if topk_metric is not None:
            topk_metric.update(label, logits)
        loss_metric.update(label, mx.nd.softmax(logits))
        np.add.at(confusion, (label.asnumpy().astype(np.int64),
                              logits.argmax(axis=1).asnumpy().astype(np.int64)), 1)
        count += len(label)
    if not count:
        raise UsageError('the validation data hold no images')
    top1, top5, loss = (metric.get()[1] if metric is not None else None
                        for metric in (top1_metric, topk_metric, loss_metric))
    result = {'model': predictor.name, 'num_images': count, 'top1': top1,
              'top5': top5, 'loss': loss,
              'images_per_sec': count / seconds}
    if num_classes <= CONFUSION_MAX_CLASSES:
        result['confusion_matrix'] = confusion.tolist()
    return result


def top5_text(result):
    """`` top5=0.1234`` of an :func:`evaluate` result, or nothing where it has no top-5."""
    return '' if result['top5'] is None else ' top5=%.4f' % result['top5']


def class_names(predictor):
    """Class names of what ``predictor`` predicts (ImageNet's for 1000 outputs), or None."""
    synset = predictor.info.get('synset')
    if synset is None and predictor.info['classes'] == 1000:
        from gluoncv.data import ImageNet1kAttr
        synset = ImageNet1kAttr().classes
    return synset


def predict_images(predictor, paths):
    """Top-5 ``[(class name, probability), ...]`` per image, with the standard preprocessing.

    Raises
    ------
    UsageError
        A file that is missing or does not decode as an image.
    """
    from gluoncv.data.transforms.presets.imagenet import transform_eval
    size, crop = predictor.info.input_size, predictor.info['crop_ratio']
    names = class_names(predictor)
    results = []
    for path in paths:
        if not os.path.isfile(path):
            raise UsageError('%s: no such image' % path)
        try:
            image = mx.image.imread(path)
        except mx.base.MXNetError:
            raise UsageError('%s: not an image (does not decode)' % path) from None
        batch = transform_eval(image, resize_short=int(math.ceil(size / crop)), crop_size=size,
                               mean=[m / 255. for m in predictor.info['mean']],
                               std=[s / 255. for s in predictor.info['std']])
        logits = predictor(batch.asnumpy())[0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:5]
        results.append([(names[i] if names else 'class %d' % i, float(probs[i])) for i in top])
    return results
