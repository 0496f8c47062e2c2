"""``python -m gluon_asymmnet.export``: export a zoo model or a training run for deployment.

Console script ``asymmnet-export``. Takes a zoo model and a parameter file, or a
training run folder (its best weights, input size and crop ratio), and writes
``PREFIX-symbol.json`` + ``PREFIX-0000.params`` (``--format mxnet``) or
``PREFIX.onnx`` + ``PREFIX-batch1.onnx`` (``--format onnx``, each checked in
ONNX Runtime), with ``PREFIX-info.json``; ``--gpus 0`` traces and checks the
graph on a GPU (the graph for that device). The library is
:mod:`gluon_asymmnet.deploy`.
"""
import os
import sys

from .cli import OneLineParser, add_gpus_flag, add_zoo_model_flags, check_ranges, DATA_RANGES, \
    gpu_devices, run
from .deploy.export import export_model
from .deploy.onnx import require_onnxruntime
from .deploy.sources import run_dir_model, zoo_model
from .errors import UsageError

__all__ = ['build_parser', 'main']


def build_parser():
    """The ``argparse`` parser of ``python -m gluon_asymmnet.export``."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.export',
        description='Export a zoo model with its parameters, or the best weights of a training '
                    'run, to PREFIX-symbol.json + PREFIX-0000.params or ONNX, with '
                    'PREFIX-info.json.')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--model', help='zoo name (see gluon_asymmnet.list_models()); not '
                                        'needed for a training checkpoint\'s --params-file')
    source.add_argument('--run-dir', help='a train_imagenet.py run folder')
    add_zoo_model_flags(parser)
    parser.add_argument('--input-size', type=int, default=None,
                        help="input side (default: the run's, else the model's)")
    parser.add_argument('--crop-ratio', type=float, default=None,
                        help="evaluation crop ratio recorded (default: the run's, else the "
                             "model's)")
    parser.add_argument('--prefix', required=True, help='output path prefix')
    parser.add_argument('--format', dest='fmt', default='mxnet', choices=['mxnet', 'onnx'],
                        help='MXNet symbol/params, or ONNX (a dynamic-batch and a batch-1 file, '
                             'checked in ONNX Runtime)')
    parser.add_argument('--preprocess', action='store_true',
                        help='fold mean/std normalisation in: the graph takes 0-255 RGB')
    parser.add_argument('--layout', default='CHW', choices=['CHW', 'HWC'],
                        help='input layout with --preprocess')
    add_gpus_flag(parser, 'to trace and check the graph on (one)')
    return parser


def _export(args):
    if not os.path.basename(args.prefix):
        raise UsageError('--prefix %s names a folder; give a path prefix such as %smodel'
                         % (args.prefix, args.prefix))
    if not (args.model or args.run_dir or args.params_file):
        raise UsageError('give --run-dir, --params-file of a training checkpoint, or --model '
                         'with --params-file')
    if args.model and not args.params_file:
        raise UsageError('--model needs --params-file (the weights to export)')
    if args.fmt == 'onnx':
        require_onnxruntime()    # before any work
    ctx = gpu_devices(args.gpus)
    if len(ctx) > 1:
        raise UsageError('--gpus %s: an export runs on one device, e.g. --gpus %s'
                         % (args.gpus, args.gpus.split(',')[0]))
    if args.run_dir:
        net, config = run_dir_model(args.run_dir, ctx[0])
    else:
        net, config = zoo_model(args.model, args.params_file, args.classes, args.width_scale,
                                args.asymmrate, args.input_size, ctx[0])
    config = config._replace(input_size=args.input_size or config.input_size,
                             crop_ratio=args.crop_ratio or config.crop_ratio)
    for path in export_model(net, args.prefix, None, args.preprocess, args.layout, args.fmt,
                             config):
        print(path)


def main(argv=None):
    """Entry point; returns the exit status (2 with a one-line error for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_ranges(parser, args, DATA_RANGES)
    return run(parser, _export, args)


if __name__ == '__main__':
    sys.exit(main())
