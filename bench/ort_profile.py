"""Where ONNX Runtime spends its time: operator kernel times from its profiler.

AsymmNet-L x1.0 as the export writes it (each batch from its file:
``PREFIX-batch1.onnx`` at batch 1, ``PREFIX.onnx``, the graph of a batch of 32,
otherwise), AsymmNet-L x1.0 exported with the concatenated map in every block
(the ``concat`` formulation) and MobileNetV3-L x1.0
(``asymmrate=0``), in float32 and INT8 (``gluon_asymmnet.deploy.quantize``,
calibrated on random images), at batch 1 and 32; then AsymmNet-L/S against
MobileNetV3-L/S at every width, float32 at batch 32, next to the fused
memory-traffic bound (``bench/traffic.py``) with the operator classes that
make the difference (depthwise and pointwise convolutions apart).

The files compared run interleaved, one run of each in turn, each in an ONNX
Runtime session of one thread with its profiler on.  The profiler times each
operator's kernel, so the sums do not count the thread pool's waits; the
machine's other tenants only add time, so each file's figure is its fastest
run, the least disturbed.  On a shared machine these ratios are steadier than
wall-clock ones.  Printed per model: the total per run, its ratio to r=0 (and
INT8's to float32), and the operator types that take the time.

    python bench/ort_profile.py                 # ~8 min on 2 cores
"""
import argparse
import collections
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model  # noqa: E402
import mxnet as mx  # noqa: E402
from gluon_asymmnet.deploy.export import export_model  # noqa: E402
from gluon_asymmnet.deploy.quantize import calibration_iter, quantize_onnx  # noqa: E402
from gluon_asymmnet.model_zoo import ModelConfig  # noqa: E402
from timing import common_arguments, print_table, write_result  # noqa: E402
from traffic import BOUND_MARGIN, traffic_ratios  # noqa: E402

#: What is profiled: label -> (zoo name, network keywords).
MODELS = collections.OrderedDict([
    ('asymmnet', ('asymmnet_large_1.0', {})),
    ('asymmnet-concat', ('asymmnet_large_1.0', dict(formulation='concat'))),
    ('r=0', ('mobilenetv3_large_1.0', {})),
])
#: Operator types listed by name in the table (the rest are summed as ``other``).
SHOWN = 6
#: The widths of the AsymmNet / r=0 table.
WIDTHS = ('1.0', '0.75', '0.5', '0.35')


def export_all(work, size):
    """``{label: prefix}`` of the float32 and INT8 ONNX files of :data:`MODELS`
    (``prefix + '.onnx'`` and ``prefix + '-batch1.onnx'`` each)."""
    prefixes = {}
    calibration = np.random.RandomState(0).normal(size=(32, 3, size, size)).astype(np.float32)
    for label, (name, kwargs) in MODELS.items():
        prefix = _export(work, label, name, size, **kwargs)
        prefixes[label] = prefix
        for suffix in ('.onnx', '-batch1.onnx'):
            quantize_onnx(prefix + suffix, prefix + '-int8' + suffix,
                          calibration_iter(calibration, 32, batch_size=32))
        prefixes[label + ' int8'] = prefix + '-int8'
    return prefixes


def _export(work, label, name, size, **kwargs):
    net = get_model(name, **kwargs)
    net.initialize(mx.init.MSRAPrelu())
    prefix = os.path.join(work, label.replace('=', ''))
    export_model(net, prefix, size, fmt='onnx', config=ModelConfig())
    return prefix


def onnx_file(prefix, batch):
    """The file of an export that runs ``batch``."""
    return prefix + ('-batch1.onnx' if batch == 1 else '.onnx')


def operator_class(args, weights=None):
    """The operator type of a profiled kernel, convolutions told apart by their
    weight: ``Conv (depthwise)``, ``Conv (pointwise)`` (any other group or
    kernel), ``Conv (BatchNorm)`` (a BatchNorm ONNX Runtime could not fold,
    run as a 1x1 depthwise convolution); ``QLinearConv`` likewise, its weight
    (packed by ONNX Runtime, so not in the profile) looked up by node name in
    ``weights`` (:func:`_weight_shapes`)."""
    op = args['op_name']
    if op == 'Conv':
        weight = list(args['input_type_shape'][1].values())[0]
    elif op == 'QLinearConv' and weights is not None:
        weight = weights.get(args['node_name'])
    else:
        return op
    if weight is None:
        return op
    if weight[1:] == [1, 1, 1]:
        return op + ' (BatchNorm)'
    return op + (' (depthwise)' if weight[1] == 1 else ' (pointwise)')


def _weight_shapes(optimized_path):
    """``{node name: weight shape}`` of the ``QLinearConv`` s of ONNX Runtime's
    optimized graph (``SessionOptions.optimized_model_filepath``)."""
    import onnx
    graph = onnx.load(optimized_path).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    return {node.name: shapes.get(node.input[3]) for node in graph.node
            if node.op_type == 'QLinearConv'}


def kernel_times(paths, batch, size, repeats, warmup):
    """Seconds by operator class (:func:`operator_class`) of each file's fastest run.

    The files run interleaved, one run each in turn, in sessions of one thread
    with the profiler on; the first ``warmup`` runs (memory planning, caches)
    are not counted.

    Returns
    -------
    list of dict
        One per path.
    """
    import onnxruntime as ort
    sessions = []
    for index, path in enumerate(paths):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(os.path.dirname(path), 'profile%d' % index)
        options.optimized_model_filepath = path + '.optimized'
        options.log_severity_level = 3   # not the warning that the file is for this machine only
        sessions.append(ort.InferenceSession(path, options,
                                             providers=['CPUExecutionProvider']))
    weights = [_weight_shapes(path + '.optimized') for path in paths]
    x = np.random.RandomState(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(warmup + repeats):
        for session in sessions:
            session.run(None, {'data': x})
    fastest = []
    for session, shapes in zip(sessions, weights):
        with open(session.end_profiling()) as log:
            events = json.load(log)
        runs = sorted((e for e in events if e.get('name') == 'model_run'),
                      key=lambda e: e['ts'])[warmup:]
        kernels = [e for e in events
                   if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time')]
        by_run = [collections.Counter() for _ in runs]
        for event in kernels:
            for index, run in enumerate(runs):
                if run['ts'] <= event['ts'] <= run['ts'] + run['dur']:
                    args = dict(event['args'], node_name=event['name'][:-len('_kernel_time')])
                    by_run[index][operator_class(args, shapes)] += event['dur'] * 1e-6
                    break
        fastest.append(dict(min(by_run, key=lambda times: sum(times.values()))))
    return fastest


def _top(profile, count=SHOWN):
    ranked = sorted(profile.items(), key=lambda item: -item[1])
    return ', '.join('%s %.1f' % (op, 1e3 * t) for op, t in ranked[:count])


def profile_formulations(work, args):
    """Rows of AsymmNet-L x1.0 (export, concat export) and r=0, fp32 and INT8."""
    paths = export_all(work, args.size)
    rows = []
    for batch in args.batches:
        labels = list(paths)
        profiles = dict(zip(labels, kernel_times([onnx_file(paths[label], batch)
                                                  for label in labels],
                                                 batch, args.size, args.repeats, args.warmup)))
        for label, profile in profiles.items():
            total = sum(profile.values())
            base = 'r=0 int8' if label.endswith('int8') else 'r=0'
            row = dict(model=label, batch=batch, total_ms=1e3 * total,
                       vs_r0=total / sum(profiles[base].values()),
                       by_type_ms={op: 1e3 * t for op, t in profile.items()},
                       top=_top(profile))
            if label.endswith('int8'):
                row['vs_fp32'] = total / sum(profiles[label[:-len(' int8')]].values())
            rows.append(row)
    return rows


def profile_widths(work, args):
    """Rows of AsymmNet / r=0 at every width of :data:`WIDTHS`, fp32, batch 32,
    against the fused memory-traffic bound."""
    rows = []
    for arch in ('large', 'small'):
        for width in args.widths:
            names = ['%s_%s_%s' % (family, arch, width) for family in ('asymmnet', 'mobilenetv3')]
            prefixes = [_export(work, name, name, args.size) for name in names]
            asymm, r0 = kernel_times([onnx_file(prefix, 32) for prefix in prefixes], 32,
                                     args.size, args.repeats, args.warmup)
            ratio = sum(asymm.values()) / sum(r0.values())
            bound = traffic_ratios(arch, width, args.size)['inference_fused']
            extra = {op: asymm.get(op, 0.) - r0.get(op, 0.) for op in set(asymm) | set(r0)}
            rows.append(dict(arch=arch, width=width, asymmnet_ms=1e3 * sum(asymm.values()),
                             mobilenetv3_ms=1e3 * sum(r0.values()), ratio=ratio,
                             traffic_fused=bound,
                             within_bound=ratio <= bound * (1 + BOUND_MARGIN),
                             extra=', '.join('%s %+.1f' % (op, 1e3 * t) for op, t in sorted(
                                 extra.items(), key=lambda item: -item[1])[:4]),
                             asymmnet_by_type_ms={op: 1e3 * t for op, t in asymm.items()},
                             mobilenetv3_by_type_ms={op: 1e3 * t for op, t in r0.items()}))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--widths', nargs='*', default=list(WIDTHS), choices=WIDTHS,
                        help='widths of the AsymmNet / r=0 table (none: no table)')
    common_arguments(parser, repeats=8, warmup=2)
    args = parser.parse_args(argv)
    if args.size < 32 or min(args.batches) < 1 or args.repeats < 1:
        parser.error('need --size >= 32, batches >= 1 and --repeats >= 1')
    work = tempfile.mkdtemp(prefix='asymmnet-ort-profile-')
    try:
        rows = profile_formulations(work, args)
        width_rows = profile_widths(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ['model', 'batch', 'total_ms', 'vs_r0', 'vs_fp32', 'top'])
    print_table(width_rows, ['arch', 'width', 'asymmnet_ms', 'mobilenetv3_ms', 'ratio',
                             'traffic_fused', 'within_bound', 'extra'])
    write_result('ort_profile', dict(
        size=args.size, repeats=args.repeats, rows=rows, widths=width_rows,
        bound_margin=BOUND_MARGIN,
        note='ONNX Runtime profiler, one intra-op thread, files interleaved: kernel ms of each '
             'file\'s fastest run by operator class; vs_r0: total / MobileNetV3-L x1.0 '
             '(asymmrate=0) of the same precision; vs_fp32: INT8 total / float32 total of the '
             'same model; widths: AsymmNet / r=0 at batch 32 against the fused traffic bound '
             '(within_bound: ratio <= bound * (1 + bound_margin)), extra: the operator classes '
             'that AsymmNet spends more on'))


if __name__ == '__main__':
    main()
