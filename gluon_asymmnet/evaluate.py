"""``eval.py``: accuracy of a model on validation data, top-5 of images, speed.

Console script ``asymmnet-eval``. A model comes from the zoo (``--model`` with
``--params-file``), from an export (``--model-prefix PREFIX`` of
``PREFIX-symbol.json``/``-0000.params``) or from an ONNX file (``--onnx``).
Data come from RecordIO (``--rec-val``/``--rec-val-idx``), an ImageNet-style
folder (``--data-dir`` with ``train/`` and ``val/``) or the embedded digits
(``--dataset digits``), preprocessed as the model takes them (the export's
``-info.json``, else the model's record; ``--input-size``/``--crop-ratio``
override). Reported: top-1, top-5, cross-entropy loss, images/s of the model
(data loading excluded) and, for at most 20 classes, the confusion matrix;
``--json OUT`` writes them. ``--image a.jpg ...`` prints the top-5 classes of
each image; ``--benchmark`` measures speed without data
(:mod:`gluon_asymmnet.speed`). ``--gpus 0,1`` runs MXNet models on GPUs, each
batch split over them. The library is :mod:`gluon_asymmnet.evaluation`.
"""
import sys

from .cli import DATA_RANGES, OneLineParser, add_data_flags, add_force_flag, add_gpus_flag, \
    add_zoo_model_flags, check_batch_memory, check_output, check_ranges, gpu_devices, run, \
    validation_source
from .data import default_digits_root
from .deploy.runtime import exported_predictor, onnx_predictor, zoo_predictor
from .errors import UsageError
from .evaluation import evaluate, predict_images, top5_text, validation_data
from .fileio import atomic_write_json, writable_target
from .model_zoo import model_file, zoo_name
from .speed import run_benchmark

__all__ = ['build_parser', 'main']


def _print_metrics(result, classes):
    print('%s: top1=%.4f%s loss=%.4f images=%d speed=%.1f images/s'
          % (result['model'], result['top1'], top5_text(result), result['loss'],
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


def build_parser(prog='eval.py'):
    """The ``argparse`` parser of ``eval.py``."""
    parser = OneLineParser(
        prog=prog, description='Evaluate a zoo, exported or ONNX model on validation data, '
                               'classify images, or benchmark backends.')
    model = parser.add_argument_group('model')
    model.add_argument('--model', help='zoo name (weights: --params-file, else the model store)')
    add_zoo_model_flags(model)
    model.add_argument('--model-prefix', help='exported PREFIX-symbol.json + PREFIX-0000.params')
    model.add_argument('--onnx', help='an ONNX file')
    add_gpus_flag(model, 'that --model and --model-prefix run on (each batch split over them)')
    add_data_flags(parser, default_digits_root())
    action = parser.add_argument_group('what to do (default: evaluate)')
    action.add_argument('--json', help='write the results to this JSON file')
    add_force_flag(action)
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
    if sum(bool(x) for x in (args.model or args.params_file, args.model_prefix, args.onnx)) != 1:
        raise UsageError('give exactly one of --model (or a training checkpoint\'s '
                         '--params-file), --model-prefix and --onnx')
    if args.onnx:
        if args.gpus is not None:
            raise UsageError('--gpus runs MXNet models; --onnx runs in ONNX Runtime on the CPU')
        return onnx_predictor(args.onnx, args.input_size, args.crop_ratio)
    ctx = gpu_devices(args.gpus)
    if args.model_prefix:
        return exported_predictor(args.model_prefix, args.input_size, args.crop_ratio, ctx)
    params_file = args.params_file or _stored_weights(args.model, args.width_scale)
    return zoo_predictor(args.model, params_file, args.classes, args.width_scale,
                         args.asymmrate, args.input_size, args.crop_ratio, ctx)


def _stored_weights(model, width_scale):
    """The model store's weights of ``model``, as ``get_model(pretrained=True)`` finds them."""
    try:
        return model_file(zoo_name(model, width_scale))
    except FileNotFoundError as error:
        raise UsageError('--model %s needs --params-file, or %s' % (model, error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None


def _run(args):
    if args.json:   # before hours of evaluation, not after
        check_output(args.json, 'eval-json', args.force)
        writable_target(args.json)
    if args.benchmark:
        if args.gpus is not None:
            raise UsageError('--benchmark measures the CPU backends; --gpus is for evaluation')
        models = [args.model or 'asymmnet_large_1.0'] + list(args.compare or [])
        run_benchmark(models, args.backends, args.input_size or 224, args.batch_size, args.runs)
        return
    zoo = not (args.model_prefix or args.onnx)
    if args.input_size is None and args.dataset == 'digits' and zoo and not args.params_file:
        args.input_size = 32
    predictor = _predictor(args)
    args.input_size = predictor.info.input_size
    if args.image:
        for path, top in zip(args.image, predict_images(predictor, args.image)):
            print(path)
            for rank, (name, prob) in enumerate(top, 1):
                print('  %d. %s (%.4f)' % (rank, name, prob))
        return
    data, class_names = validation_source(args)
    source, num_classes, classes = validation_data(predictor, data, args.batch_size,
                                                   args.num_workers, class_names)
    result = evaluate(predictor, source, num_classes)
    _print_metrics(result, classes or predictor.info.get('synset'))
    if args.json:
        atomic_write_json(result, args.json)


def main(argv=None, prog='eval.py'):
    """Entry point of ``eval.py``; returns the exit status (2 with one line for bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    check_ranges(parser, args, DATA_RANGES + (('runs', 1, 100000, True, True),))
    if args.input_size:
        check_batch_memory(parser, args.batch_size, args.input_size, 'inference')
    return run(parser, _run, args)


if __name__ == '__main__':
    sys.exit(main())
