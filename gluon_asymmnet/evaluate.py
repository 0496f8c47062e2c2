"""``eval.py``: accuracy of a model on validation data, top-5 of images, speed.

A model comes from the zoo (``--model`` with ``--params-file``), from an export
(``--model-prefix PREFIX`` of ``PREFIX-symbol.json``/``-0000.params``) or from an
ONNX file (``--onnx``). Data come from RecordIO (``--rec-val``/``--rec-val-idx``),
an ImageNet-style folder (``--data-dir`` with ``train/`` and ``val/``) or the
embedded digits (``--dataset digits``), with the standard validation
preprocessing (resize to ``ceil(input_size / crop_ratio)``, centre crop,
ImageNet mean/std). Reported: top-1, top-5, cross-entropy loss, images/s of the
model (data loading excluded) and, for at most 20 classes, the confusion matrix
(rows: true class, columns: prediction); ``--json OUT`` writes them.
``--image a.jpg ...`` prints the top-5 classes of each image; ``--benchmark``
measures speed without data (see :mod:`gluon_asymmnet.benchmark`).
"""
import argparse
import json
import math
import os
import time

import mxnet as mx
import numpy as np

from .data import (DataError, check_image_folder, check_record_file, image_folder_loaders,
                   imagenet_rec_iters, prepare_digits, record_labels, batches)
from .data.loaders import MEAN_RGB, STD_RGB
from .data.records import count_classes
from .export import add_zoo_model_flags, load_exported, load_onnx, make_info, zoo_model
from .train.errors import UsageError

__all__ = ['add_data_flags', 'Predictor', 'zoo_predictor', 'exported_predictor', 'onnx_predictor',
           'evaluate', 'predict_images', 'validation_data', 'CONFUSION_MAX_CLASSES', 'main']

#: The confusion matrix is reported up to this many classes.
CONFUSION_MAX_CLASSES = 20
_DIGITS_ROOT = os.path.join(os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet')), 'datasets')


class Predictor:
    """Logits of normalised ``(N, 3, H, W)`` float32 numpy batches, whatever runs the model.

    Attributes
    ----------
    info : ExportInfo
        Input shape and layout, mean/std, number of classes and class names.
    name : str
        What the model is (for reports).
    """

    def __init__(self, run, info, name):
        self._run = run
        self.info = info
        self.name = name

    def __call__(self, batch):
        return self._run(self.info.to_graph_input(batch))


def zoo_predictor(model, params_file, classes=None, width_scale=None, asymmrate=None,
                  input_size=224, crop_ratio=0.875):
    """A hybridized (static alloc/shape) zoo model with the weights of ``params_file``."""
    net = zoo_model(model, params_file, classes, width_scale, asymmrate, input_size)
    net.hybridize(static_alloc=True, static_shape=True)
    classes = net(mx.nd.zeros((1, 3, input_size, input_size))).shape[1]
    info = make_info(net.model_name, input_size, classes, net.classes, crop_ratio=crop_ratio)
    return Predictor(lambda x: net(mx.nd.array(x)).asnumpy(), info, net.model_name)


def _exported_info(info, source, input_size, crop_ratio, outputs):
    """The recorded info, or (for an export without one) normalised CHW of ``input_size``."""
    if info is None:
        return make_info(None, input_size or 224, outputs, crop_ratio=crop_ratio)
    if input_size and input_size != info.input_size:
        raise UsageError('%s takes %dx%d images, not --input-size %d'
                         % (source, info.input_size, info.input_size, input_size))
    return info


def exported_predictor(prefix, input_size=None, crop_ratio=0.875):
    """``SymbolBlock.imports`` of an export (``PREFIX-info.json`` says what it takes)."""
    block, info = load_exported(prefix)
    block.hybridize(static_alloc=True, static_shape=True)
    run = lambda x: block(mx.nd.array(x)).asnumpy()   # noqa: E731
    if info is None:
        size = input_size or 224
        outputs = run(np.zeros((1, 3, size, size), np.float32)).shape[1]
    else:
        outputs = info['classes']
    return Predictor(run, _exported_info(info, prefix, input_size, crop_ratio, outputs), prefix)


def onnx_predictor(path, input_size=None, crop_ratio=0.875):
    """An ONNX Runtime session; its shape and classes come from the file."""
    session, info = load_onnx(path)
    graph_input = session.get_inputs()[0]
    outputs = session.get_outputs()[0].shape[-1]
    if info is None:
        shape = graph_input.shape
        if not (len(shape) == 4 and shape[1] == 3 and isinstance(shape[2], int)):
            raise UsageError('%s: input %s is not (N, 3, H, W)' % (path, shape))
        if input_size and shape[2] != input_size:
            raise UsageError('%s takes %dx%d images, not --input-size %d'
                             % (path, shape[2], shape[3], input_size))
        input_size = shape[2]
    info = _exported_info(info, path, input_size, crop_ratio, outputs)
    run = lambda x: session.run(None, {graph_input.name: x.astype(np.float32)})[0]  # noqa: E731
    return Predictor(run, info, path)


def _check_outputs(predictor, num_classes):
    outputs = predictor.info['classes']
    if outputs != num_classes:
        raise UsageError('%s has %d outputs but the data have %d classes: a model of other data?'
                         % (predictor.name, outputs, num_classes))


def validation_data(args, predictor=None):
    """``(source for batches(), number of classes, class names or None)`` of the data flags.

    With ``predictor``, a model whose outputs do not match the data's classes is
    refused before the data are opened.
    """
    size, crop = args.input_size, args.crop_ratio
    if args.dataset == 'digits':
        digits = prepare_digits(args.digits_root, size=32)
        rec, idx, classes = digits.val_rec, digits.val_idx, digits.classes
    elif args.rec_val:
        rec, idx = args.rec_val, args.rec_val_idx
        check_record_file(rec, idx)
        labels = record_labels(rec, idx)
        classes = None
        num_classes = count_classes(labels, rec)
    elif args.data_dir:
        classes = check_image_folder(args.data_dir)[0]
        if predictor is not None:
            _check_outputs(predictor, len(classes))
        loader = image_folder_loaders(args.data_dir, args.batch_size, size, crop,
                                      num_workers=args.num_workers)[1]
        return loader, len(classes), classes
    else:
        raise UsageError('no data: give --rec-val/--rec-val-idx, --data-dir or --dataset digits '
                         '(or --image, or --benchmark)')
    if classes is not None:
        num_classes = len(classes)
    if predictor is not None:
        _check_outputs(predictor, num_classes)
    source = imagenet_rec_iters(None, None, rec, idx, args.batch_size, size, crop,
                                num_workers=max(1, args.num_workers))[1]
    return source, num_classes, classes


def evaluate(predictor, source, num_classes):
    """Top-1, top-5, loss, images/s and (<= 20 classes) the confusion matrix.

    Parameters
    ----------
    predictor : Predictor
    source : mx.io.DataIter or gluon.data.DataLoader
        Read through :func:`gluon_asymmnet.data.batches`.
    num_classes : int
        Classes of the data.

    Returns
    -------
    dict
        ``top1``, ``top5``, ``loss``, ``images_per_sec``, ``num_images``, and
        ``confusion_matrix`` (list of rows) when ``num_classes <= 20``.
    """
    _check_outputs(predictor, num_classes)
    outputs = predictor.info['classes']
    k = min(5, outputs)
    top1 = topk = count = 0
    loss = seconds = 0.
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for data, label in batches(source):
        data, label = data.asnumpy(), label.asnumpy().astype(np.int64)
        start = time.perf_counter()
        logits = predictor(data).astype(np.float64)
        seconds += time.perf_counter() - start
        ranked = np.argsort(-logits, axis=1)[:, :k]
        top1 += int((ranked[:, 0] == label).sum())
        topk += int((ranked == label[:, None]).any(axis=1).sum())
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss -= float(log_probs[np.arange(len(label)), label].sum())
        np.add.at(confusion, (label, ranked[:, 0]), 1)
        count += len(label)
    if not count:
        raise UsageError('the validation data hold no images')
    result = {'model': predictor.name, 'num_images': count, 'top1': top1 / count,
              'top5': topk / count, 'top5_k': k, 'loss': loss / count,
              'images_per_sec': count / seconds}
    if num_classes <= CONFUSION_MAX_CLASSES:
        result['confusion_matrix'] = confusion.tolist()
    return result


def _class_names(predictor):
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
    names = _class_names(predictor)
    results = []
    for path in paths:
        if not os.path.isfile(path):
            raise UsageError('%s: no such image' % path)
        try:
            image = mx.image.imread(path)
        except mx.base.MXNetError:
            raise UsageError('%s: not an image (does not decode)' % path) from None
        batch = transform_eval(image, resize_short=int(math.ceil(size / crop)), crop_size=size,
                               mean=[m / 255. for m in MEAN_RGB], std=[s / 255. for s in STD_RGB])
        logits = predictor(batch.asnumpy())[0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:5]
        results.append([(names[i] if names else 'class %d' % i, float(probs[i])) for i in top])
    return results


def _print_metrics(result, classes):
    print('%s: top1=%.4f top5=%.4f loss=%.4f images=%d speed=%.1f images/s'
          % (result['model'], result['top1'], result['top5'], result['loss'],
             result['num_images'], result['images_per_sec']))
    matrix = result.get('confusion_matrix')
    if matrix:
        labels = classes or [str(i) for i in range(len(matrix))]
        width = max(5, max(len(str(v)) for row in matrix for v in row) + 1,
                    max(len(name) for name in labels) + 1)
        print('confusion matrix (rows: true class, columns: predicted)')
        print(' ' * width + ''.join(name[:width - 1].rjust(width) for name in labels))
        for name, row in zip(labels, matrix):
            print(name[:width - 1].rjust(width) + ''.join(str(v).rjust(width) for v in row))


def add_data_flags(parser):
    """Add the validation-data flags (``--dataset``, ``--rec-val``, ``--data-dir``,
    ``--input-size``...) shared by ``eval.py`` and the quantize command."""
    data = parser.add_argument_group('data')
    data.add_argument('--dataset', default='imagenet', choices=['imagenet', 'digits'])
    data.add_argument('--digits-root', default=_DIGITS_ROOT,
                      help='cache folder of the digits data set')
    data.add_argument('--rec-val', help='validation RecordIO (.rec)')
    data.add_argument('--rec-val-idx', help='its index (.idx)')
    data.add_argument('--data-dir', help='folder with train/ and val/ class folders')
    data.add_argument('--input-size', type=int, default=None,
                      help='input side (default: the export\'s, 32 for digits, else 224)')
    data.add_argument('--crop-ratio', type=float, default=0.875)
    data.add_argument('--batch-size', type=int, default=32)
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4)


def build_parser(prog='eval.py'):
    """The ``argparse`` parser of ``eval.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description='Evaluate a zoo, exported or ONNX model on validation data, '
                               'classify images, or benchmark backends.')
    model = parser.add_argument_group('model')
    model.add_argument('--model', help='zoo name (with --params-file)')
    add_zoo_model_flags(model)
    model.add_argument('--model-prefix', help='exported PREFIX-symbol.json + PREFIX-0000.params')
    model.add_argument('--onnx', help='an ONNX file')
    add_data_flags(parser)
    action = parser.add_argument_group('what to do (default: evaluate)')
    action.add_argument('--json', help='write the results to this JSON file')
    action.add_argument('--image', nargs='+', help='print the top-5 classes of these images')
    action.add_argument('--benchmark', action='store_true',
                        help='latency and throughput per backend, no data')
    action.add_argument('--backends', nargs='+', default=None,
                        help='benchmark backends (default: all)')
    action.add_argument('--compare', nargs='*', default=['mobilenetv3_large'],
                        help='zoo models benchmarked in the same run')
    action.add_argument('--runs', type=int, default=50, help='timed runs per measurement')
    return parser


def _predictor(args):
    if sum(bool(x) for x in (args.model, args.model_prefix, args.onnx)) != 1:
        raise UsageError('give exactly one of --model, --model-prefix and --onnx')
    if args.model_prefix:
        return exported_predictor(args.model_prefix, args.input_size, args.crop_ratio)
    if args.onnx:
        return onnx_predictor(args.onnx, args.input_size, args.crop_ratio)
    if not args.params_file:
        raise UsageError('--model needs --params-file (or use --benchmark)')
    return zoo_predictor(args.model, args.params_file, args.classes, args.width_scale,
                         args.asymmrate, args.input_size or 224, args.crop_ratio)


def _run(args):
    if args.benchmark:
        from .benchmark import run_benchmark
        models = [args.model or 'asymmnet_large_1.0'] + list(args.compare or [])
        run_benchmark(models, args.backends, args.input_size or 224, args.batch_size, args.runs)
        return
    zoo = not (args.model_prefix or args.onnx)
    if args.input_size is None and args.dataset == 'digits' and zoo:
        args.input_size = 32
    predictor = _predictor(args)
    args.input_size = predictor.info.input_size
    if args.image:
        for path, top in zip(args.image, predict_images(predictor, args.image)):
            print(path)
            for rank, (name, prob) in enumerate(top, 1):
                print('  %d. %s (%.4f)' % (rank, name, prob))
        return
    source, num_classes, classes = validation_data(args, predictor)
    result = evaluate(predictor, source, num_classes)
    _print_metrics(result, classes or predictor.info.get('synset'))
    if args.json:
        try:
            with open(args.json, 'w') as out:
                json.dump(result, out, indent=1)
        except OSError as error:
            raise UsageError('--json %s: cannot write it (%s)' % (args.json, error.strerror)) \
                from None


def main(argv=None, prog='eval.py'):
    """Entry point of ``eval.py``; returns the exit status (2 with one line for bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    for name in ('batch_size', 'runs'):
        if getattr(args, name) < 1:
            parser.error('--%s must be at least 1' % name.replace('_', '-'))
    if args.input_size is not None and args.input_size < 1:
        parser.error('--input-size must be at least 1, not %d' % args.input_size)
    if not 0 < args.crop_ratio <= 1:
        parser.error('--crop-ratio must be in (0, 1], not %s' % args.crop_ratio)
    try:
        _run(args)
    except (UsageError, DataError) as error:
        parser.exit(2, '%s: error: %s\n' % (parser.prog, error))
    return 0
