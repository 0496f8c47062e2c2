"""``python -m gluon_asymmnet.quantize``: INT8 post-training quantization, top-1 before/after.

Console script ``asymmnet-quantize``. Quantizes an export (``--model-prefix``,
MXNet oneDNN) or an ONNX file (``--onnx``, ONNX Runtime), calibrating on the
validation data (on the digits: the training split), and prints top-1/top-5
in float32 and INT8. The library, and what works on MXNet 1.9.1 and why, is
:mod:`gluon_asymmnet.deploy.quantize`.
"""
import os
import sys

import mxnet as mx

from .cli import (DATA_RANGES, OneLineParser, add_data_flags, add_gpus_flag, check_batch_memory,
                  check_ranges, gpu_devices, run, validation_source)
from .data import default_digits_root, imagenet_rec_iters, prepare_digits
from .deploy.export import save_export
from .deploy.info import export_of
from .deploy.quantize import calibration_iter, quantize_onnx, quantize_symbol
from .deploy.runtime import exported_predictor, load_exported, onnx_predictor
from .errors import UsageError
from .evaluation import evaluate, top5_text, validation_data
from .fileio import atomic_save, writable_target

__all__ = ['build_parser', 'main']


def build_parser():
    """The ``argparse`` parser of ``python -m gluon_asymmnet.quantize``."""
    parser = OneLineParser(
        prog='python -m gluon_asymmnet.quantize',
        description='INT8 post-training quantization of an export (--model-prefix, MXNet oneDNN) '
                    'or an ONNX file (--onnx, ONNX Runtime); prints top-1 before and after.')
    model = parser.add_argument_group('model')
    model.add_argument('--model-prefix', help='exported PREFIX-symbol.json + PREFIX-0000.params')
    model.add_argument('--onnx', help='an ONNX file')
    add_gpus_flag(model, 'that the float32 --model-prefix is evaluated on (INT8 runs on the CPU: '
                         'oneDNN)')
    add_data_flags(parser, default_digits_root())
    parser.add_argument('--out', required=True, help='output prefix (MXNet) or .onnx file')
    parser.add_argument('--num-calib', type=int, default=320, help='calibration images')
    parser.add_argument('--calib-mode', default='naive', choices=['naive'],
                        help="min/max calibration ('entropy' fails on MXNet 1.9.1 for AsymmNet)")
    return parser


def _calibration(args, source, info):
    if args.dataset != 'digits':
        return calibration_iter(source, args.num_calib, args.batch_size)
    # the digits: calibrate on the training split, with the validation preprocessing
    digits = prepare_digits(args.digits_root)
    train = imagenet_rec_iters(None, None, digits.train_rec, digits.train_idx, args.batch_size,
                               info.input_size, info['crop_ratio'], num_workers=1,
                               mean=tuple(info['mean']), std=tuple(info['std']))[1]
    return calibration_iter(train, args.num_calib, args.batch_size)


def _quantize(args):
    if bool(args.model_prefix) == bool(args.onnx):
        raise UsageError('give one of --model-prefix (MXNet) and --onnx (ONNX Runtime)')
    source_path = args.onnx or args.model_prefix + '-symbol.json'
    out_path = args.out if args.onnx else args.out + '-symbol.json'
    if all(map(os.path.exists, (out_path, source_path))) and os.path.samefile(out_path,
                                                                              source_path):
        raise UsageError('--out %s would overwrite the model it quantizes' % args.out)
    outputs = [args.out] if args.onnx else [args.out + '-symbol.json', args.out + '-0000.params']
    for path in outputs:
        owner = export_of(path)
        # a file of another export: replacing it would leave that export's record naming
        # other files (an MXNet --out replaces its own export whole, record included)
        if owner is not None and (args.onnx or owner != os.path.abspath(args.out)):
            raise UsageError('--out %s: %s is a file of the export %s; write the INT8 model '
                             'elsewhere' % (args.out, path, owner))
        writable_target(path)
    if args.onnx:
        if args.gpus is not None:
            raise UsageError('--gpus is for --model-prefix; --onnx runs in ONNX Runtime on '
                             'the CPU')
        before = onnx_predictor(args.onnx, args.input_size, args.crop_ratio)
    else:
        before = exported_predictor(args.model_prefix, args.input_size, args.crop_ratio,
                                    gpu_devices(args.gpus))
    data, class_names = validation_source(args)
    source, num_classes, _ = validation_data(before, data, args.batch_size, args.num_workers,
                                             class_names)
    calib = _calibration(args, source, before.info)
    if args.onnx:
        atomic_save(args.out, lambda tmp: quantize_onnx(args.onnx, tmp, calib, before.info))
        after = onnx_predictor(args.out, args.input_size, args.crop_ratio)
    else:
        block, info = load_exported(args.model_prefix)
        symbol, qargs, qaux = quantize_symbol(block, calib)
        saved = dict([('arg:' + k, v) for k, v in qargs.items()]
                     + [('aux:' + k, v) for k, v in qaux.items()])   # as save_checkpoint

        def write(work):
            symbol.save(work + '-symbol.json')
            mx.nd.save(work + '-0000.params', saved)
        # one unit, as an export: the info records the sha1 of these files, not the source's
        save_export(args.out, write, ['-symbol.json', '-0000.params'], info)
        after = exported_predictor(args.out, args.input_size, args.crop_ratio)
    for name, predictor in (('float32', before), ('int8', after)):
        result = evaluate(predictor, source, num_classes)
        print('%s: top1=%.4f%s images/s=%.1f'
              % (name, result['top1'], top5_text(result), result['images_per_sec']))
    for path in outputs + ([] if args.onnx or not os.path.exists(args.out + '-info.json')
                           else [args.out + '-info.json']):
        print(path)


def main(argv=None):
    """Entry point; returns the exit status (2 with a one-line error for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_ranges(parser, args, DATA_RANGES + (('num_calib', 1, None, True, True),))
    if args.input_size:
        check_batch_memory(parser, args.batch_size, args.input_size, 'inference')
    return run(parser, _quantize, args)


if __name__ == '__main__':
    sys.exit(main())
