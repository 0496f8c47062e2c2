"""Where ONNX Runtime spends its time: operator kernel times from its profiler.

AsymmNet-L x1.0 as the export writes it (each batch from its file:
``PREFIX-batch1.onnx`` at batch 1, ``PREFIX.onnx``, the graph of a batch of 32,
otherwise), AsymmNet-L x1.0 exported with the concatenated map in every block
(the ``concat`` formulation) and MobileNetV3-L x1.0
(``asymmrate=0``), in float32 and INT8 (``gluon_asymmnet.deploy.quantize``,
calibrated on random images), at batch 1 and 32, each in an ONNX Runtime session
of one thread with its profiler on.  The profiler times each operator's kernel,
so the sums do not count the thread pool's waits or the machine's other tenants:
on a shared machine they are steadier than wall-clock times.  Printed per model:
the total per run, its ratio to r=0 (and INT8's to float32), and the operator
types that take the time.  Each ratio is from kernel times of one process.

    python bench/ort_profile.py                 # ~3 min on 2 cores
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

#: What is profiled: label -> (zoo name, network keywords).
MODELS = collections.OrderedDict([
    ('asymmnet', ('asymmnet_large_1.0', {})),
    ('asymmnet-concat', ('asymmnet_large_1.0', dict(formulation='concat'))),
    ('r=0', ('mobilenetv3_large_1.0', {})),
])
#: Operator types listed by name in the table (the rest are summed as ``other``).
SHOWN = 6


def export_all(work, size):
    """``{label: prefix}`` of the float32 and INT8 ONNX files of :data:`MODELS`
    (``prefix + '.onnx'`` and ``prefix + '-batch1.onnx'`` each)."""
    prefixes = {}
    calibration = np.random.RandomState(0).normal(size=(32, 3, size, size)).astype(np.float32)
    for label, (name, kwargs) in MODELS.items():
        net = get_model(name, **kwargs)
        net.initialize(mx.init.MSRAPrelu())
        prefix = os.path.join(work, label.replace('=', ''))
        export_model(net, prefix, size, fmt='onnx', config=ModelConfig())
        prefixes[label] = prefix
        for suffix in ('.onnx', '-batch1.onnx'):
            quantize_onnx(prefix + suffix, prefix + '-int8' + suffix,
                          calibration_iter(calibration, 32, batch_size=32))
        prefixes[label + ' int8'] = prefix + '-int8'
    return prefixes


def onnx_file(prefix, batch):
    """The file of an export that runs ``batch``."""
    return prefix + ('-batch1.onnx' if batch == 1 else '.onnx')


def kernel_times(path, batch, size, repeats, warmup):
    """Seconds per run by operator type, from ONNX Runtime's profiler (one thread);
    the first ``warmup`` runs (memory planning, caches) are not counted."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(path), 'profile')
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    x = np.random.RandomState(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(warmup + repeats):
        session.run(None, {'data': x})
    with open(session.end_profiling()) as log:
        events = json.load(log)
    runs = sorted((e for e in events if e.get('name') == 'model_run'), key=lambda e: e['ts'])
    counted_from = runs[warmup - 1]['ts'] + runs[warmup - 1]['dur'] if warmup else 0
    by_type = collections.Counter()
    for event in events:
        if (event.get('cat') == 'Node' and event['name'].endswith('_kernel_time')
                and event['ts'] >= counted_from):
            by_type[event['args']['op_name']] += event['dur'] * 1e-6 / repeats
    return dict(by_type)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    common_arguments(parser, repeats=5, warmup=2)
    args = parser.parse_args(argv)
    if args.size < 32 or min(args.batches) < 1:
        parser.error('need --size >= 32 and batches >= 1')
    work = tempfile.mkdtemp(prefix='asymmnet-ort-profile-')
    try:
        paths = export_all(work, args.size)
        rows = []
        for batch in args.batches:
            profiles = {label: kernel_times(onnx_file(prefix, batch), batch, args.size,
                                            args.repeats, args.warmup)
                        for label, prefix in paths.items()}
            for label, profile in profiles.items():
                total = sum(profile.values())
                base = 'r=0 int8' if label.endswith('int8') else 'r=0'
                row = dict(model=label, batch=batch, total_ms=1e3 * total,
                           vs_r0=total / sum(profiles[base].values()),
                           by_type_ms={op: 1e3 * t for op, t in profile.items()})
                if label.endswith('int8'):
                    row['vs_fp32'] = total / sum(profiles[label[:-len(' int8')]].values())
                ranked = sorted(profile.items(), key=lambda item: -item[1])
                row['top'] = ', '.join('%s %.1f' % (op, 1e3 * t) for op, t in ranked[:SHOWN])
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, ['model', 'batch', 'total_ms', 'vs_r0', 'vs_fp32', 'top'])
    write_result('ort_profile', dict(
        size=args.size, repeats=args.repeats, rows=rows,
        note='ONNX Runtime profiler, one intra-op thread: kernel ms per run by operator '
             'type; vs_r0: total / MobileNetV3-L x1.0 (asymmrate=0) of the same precision; '
             'vs_fp32: INT8 total / float32 total of the same model'))


if __name__ == '__main__':
    main()
