"""Inference speed: AsymmNet against MobileNetV3 at equal width, per backend.

For every width, AsymmNet-L/S, our MobileNetV3-L/S (the same code with
``asymmrate=0``) and, at width 1.0, GluonCV's MobileNetV3 run interleaved at
batch 1 (latency) on every backend of ``gluon_asymmnet.speed`` (imperative,
hybridized, oneDNN-fused, exported SymbolBlock, ONNX Runtime, INT8 in MXNet
and in ONNX Runtime) at width 1.0, hybridized and in ONNX Runtime (fp32, INT8)
at every width, and hybridized at batch 32 (throughput).  The hybridized
batch-1 ratios are medians over ``--trials`` more fresh processes.  Then every
zoo model's hybridized batch-1 latency is plotted against its MACs
(``bench/results/latency_vs_macs.png``).

The MXNet backends run interleaved in one child process (with actively
waiting OpenMP threads, see :func:`family_env`), the ONNX Runtime backends in
another, so that ratios between models and between MXNet backends come from one
interleaved run; ratios of ONNX Runtime to MXNet backends come from two
processes run back to back.

    OMP_NUM_THREADS=2 python bench/inference.py            # ~5 min on 2 cores
    python bench/inference.py --widths 1.0 --backends hybridized --no-plot
"""
import argparse
import os
import statistics
import sys

import mxnet as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gluon_asymmnet import get_model, list_models  # noqa: E402
from gluon_asymmnet.speed import BACKENDS, build_backend  # noqa: E402
from gluon_asymmnet.complexity import summary  # noqa: E402
from timing import (RESULTS_DIR, common_arguments, medians_in_child,  # noqa: E402
                    print_table, serve_rounds, write_result)

#: Backends that run in ONNX Runtime; the others run in MXNet.
ORT_BACKENDS = ('onnxruntime', 'int8-onnxruntime')


def _runner(backend, name, batch, size):
    net = get_model(name)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, size, size)))   # settle GluonCV's deferred shapes
    shape = (batch, 3, size, size)
    run = build_backend(backend, net, shape)
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    return lambda: run(x)


def family_env(family):
    """Environment of the child process timing the ``mxnet`` or ``onnxruntime`` backends.

    MXNet's OpenMP threads wait actively (``OMP_WAIT_POLICY=ACTIVE``, unless
    set otherwise).  With libgomp's default policy a process ran batch-1
    AsymmNet-L at either ~13 ms or ~21 ms on this 2-core machine, decided at
    start-up, and the slow mode weighs most on the network with the most
    operators.  Actively waiting threads would take a core from ONNX Runtime,
    hence the two families' separate processes.
    """
    if family == 'onnxruntime':
        return {}
    return {'OMP_WAIT_POLICY': os.environ.get('OMP_WAIT_POLICY', 'ACTIVE')}


def compare(runs, batch, size, repeats, warmup):
    """Median seconds per batch of zoo models on backends.

    ``runs`` maps each backend to the zoo names to time on it.

    The MXNet backends run interleaved in one child process, the ONNX Runtime
    backends in another (:func:`family_env`), one after the other.

    Returns
    -------
    (dict, dict)
        ``{backend: {name: seconds}}``, and ``{"backend/name": error}`` for
        what could not run.
    """
    times, failures = {}, {}
    for family in ('mxnet', 'onnxruntime'):
        chosen = [b for b in runs if runs[b] and (b in ORT_BACKENDS) == (family == 'onnxruntime')]
        if not chosen:
            continue
        argv = [sys.executable, os.path.abspath(__file__), '--serve-batch', str(batch),
                '--size', str(size), '--warmup', str(warmup),
                '--serve'] + ['%s/%s' % (backend, name)
                              for backend in chosen for name in runs[backend]]
        try:
            medians, failed = medians_in_child(argv, family_env(family), repeats)
        except RuntimeError as error:
            failures.update(('%s/*' % backend, str(error)) for backend in chosen)
            continue
        failures.update(failed)
        for key, seconds in medians.items():
            backend, name = key.split('/')
            times.setdefault(backend, {})[name] = seconds
    return times, failures


def _serve(args):
    """Child mode: time each ``backend/model`` of ``--serve`` for the parent."""
    number = 5 if args.serve_batch == 1 else 1
    build = {}
    for key in args.serve:
        backend, name = key.split('/')
        build[key] = (lambda backend=backend, name=name:
                      _runner(backend, name, args.serve_batch, args.size))
    serve_rounds(build, warmup=args.warmup, number=number)


def _pairs(widths):
    for arch in ('large', 'small'):
        for width in widths:
            names = ['asymmnet_%s_%s' % (arch, width), 'mobilenetv3_%s_%s' % (arch, width)]
            if width == '1.0':
                names.append('mobilenetv3_' + arch)   # GluonCV's
            yield arch, width, names


def plot_latency_vs_macs(points, path):
    """Scatter of batch-1 latency (ms) against GMACs, one labelled point per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 6))
    families = {'asymmnet': 'tab:red', 'mobilenetv3': 'tab:blue', 'mobilenetv2': 'tab:green'}
    for point in points:
        family = next((f for f in families if point['model'].startswith(f)), None)
        ax.scatter(point['macs'] / 1e6, point['latency_ms'], color=families.get(family, 'k'))
        ax.annotate(point['model'], (point['macs'] / 1e6, point['latency_ms']), fontsize=6,
                    xytext=(2, 2), textcoords='offset points')
    ax.set_xlabel('MACs (millions, 224x224)')
    ax.set_ylabel('batch-1 latency (ms), hybridized')
    ax.set_title('gluon-asymmnet zoo on %s' % os.uname().nodename)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--widths', nargs='+', default=['1.0', '0.75', '0.5', '0.35'],
                        choices=['1.0', '0.75', '0.5', '0.35'])
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS), choices=BACKENDS,
                        help='backends timed at batch 1 at --backend-widths')
    parser.add_argument('--backend-widths', nargs='+', default=['1.0'],
                        help='widths timed on every backend (the others: hybridized and '
                             'ONNX Runtime fp32/INT8 only)')
    parser.add_argument('--size', type=int, default=224, help='input side in pixels')
    parser.add_argument('--batch-32-backends', nargs='+', default=['hybridized'],
                        choices=BACKENDS, help='backends also timed at batch 32 (slow)')
    parser.add_argument('--no-plot', action='store_true', help='skip the zoo latency plot')
    parser.add_argument('--trials', type=int, default=3,
                        help='fresh processes that time the batch-1 hybridized comparisons '
                             'again (every AsymmNet against r=0, AsymmNet-L x1.0 against '
                             'GluonCV\'s MobileNetV3-L): their ratios are medians over processes')
    parser.add_argument('--serve', nargs='+', help=argparse.SUPPRESS)   # child mode
    parser.add_argument('--serve-batch', type=int, default=1, help=argparse.SUPPRESS)
    common_arguments(parser, repeats=5, warmup=2)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args)
    chosen = list(dict.fromkeys(['hybridized'] + args.backends))
    rows, failures = [], {}
    for batch, backends in ((1, chosen), (32, args.batch_32_backends)):
        plan = {backend: [pair for pair in _pairs(args.widths)
                          if backend in ('hybridized',) + ORT_BACKENDS
                          or pair[1] in args.backend_widths]
                for backend in backends}
        times, failed = compare(
            {backend: [name for _, _, names in pairs for name in names]
             for backend, pairs in plan.items()},
            batch, args.size, args.repeats, args.warmup)
        failures.update(('batch %d: %s' % (batch, key), error) for key, error in failed.items())
        for backend in times:
            for arch, width, names in plan[backend]:
                if any(name not in times[backend] for name in names):
                    continue
                ms = [1e3 * times[backend][name] for name in names]
                row = dict(backend=backend, batch=batch, arch=arch, width=width,
                           asymmnet_ms=ms[0], mobilenetv3_ms=ms[1], asymm_vs_r0=ms[0] / ms[1])
                if len(names) == 3:
                    row.update(gluoncv_ms=ms[2], asymm_vs_gluoncv=ms[0] / ms[2])
                rows.append(row)
    print_table(rows, ['backend', 'batch', 'arch', 'width', 'asymmnet_ms', 'mobilenetv3_ms',
                       'gluoncv_ms', 'asymm_vs_r0', 'asymm_vs_gluoncv'])
    result = dict(rows=rows, failures=failures, size=args.size, repeats=args.repeats,
                  note='ms per batch; ratios < 1 mean AsymmNet is faster (latency); '
                       'throughput ratio = 1 / latency ratio; MXNet and ONNX Runtime backends each '
                       'timed interleaved in a child process of their own, back to back',
                  child_env={family: family_env(family) for family in ('mxnet', 'onnxruntime')})
    ours = {(r['backend'], r['batch'], r['arch'], r['width']): r for r in rows}
    trials = [{key: row['asymm_vs_r0'] for key, row in ours.items()
               if key[:2] == ('hybridized', 1)}] + trial_ratios(args)
    result['batch1_asymm_vs_r0_trials'] = [{'%s %s' % key[2:]: ratio for key, ratio in t.items()
                                            if isinstance(key, tuple)} for t in trials]
    result['by_width'] = by_width(ours, trials, args.widths)
    print_table(result['by_width'], ['arch', 'width', 'hybridized_b1', 'hybridized_b32',
                                     'onnxruntime_b1', 'int8_onnxruntime_b1'])
    large_b1 = ours.get(('hybridized', 1, 'large', '1.0'))
    large_b32 = ours.get(('hybridized', 32, 'large', '1.0'))
    if large_b1 and large_b32:
        ratios = [large_b1['asymm_vs_gluoncv']] + [t['gluoncv'] for t in trials[1:]
                                                   if 'gluoncv' in t]
        result['batch1_latency_vs_gluoncv_trials'] = ratios
        print('AsymmNet-L x1.0 / GluonCV MobileNetV3-L, hybridized batch-1 latency, %d processes: '
              'median %.3f, range %.3f-%.3f' % (len(ratios), statistics.median(ratios),
                                                min(ratios), max(ratios)))
        result['targets'] = dict(
            large_1_0_batch1_latency_vs_gluoncv=statistics.median(ratios),
            large_1_0_batch32_throughput_vs_gluoncv=1. / large_b32['asymm_vs_gluoncv'])
        fastest = min((r for r in rows if r['batch'] == 1 and r['arch'] == 'large'
                       and r['width'] == '1.0'), key=lambda r: r['asymmnet_ms'])
        result['targets']['fastest_backend'] = fastest['backend']
        result['targets']['fastest_vs_hybridized_batch1'] = (
            fastest['asymmnet_ms'] / large_b1['asymmnet_ms'])
    if not args.no_plot:
        times, failed = compare({'hybridized': list_models()}, 1, args.size,
                                max(3, args.repeats // 2), 1)
        failures.update(('zoo: %s' % key, error) for key, error in failed.items())
        points = [dict(model=name, latency_ms=1e3 * seconds,
                       macs=summary(_built(name), (1, 3, args.size, args.size)).macs)
                  for name, seconds in times.get('hybridized', {}).items()]
        os.makedirs(RESULTS_DIR, exist_ok=True)
        plot = os.path.join(RESULTS_DIR, 'latency_vs_macs.png')
        plot_latency_vs_macs(points, plot)
        result['zoo'] = points
        result['plot'] = plot
        print_table(sorted(points, key=lambda p: p['macs']), ['model', 'macs', 'latency_ms'])
    write_result('inference', result)


def trial_ratios(args):
    """Hybridized batch-1 latency ratios, once per ``--trials`` fresh child process
    (a process can run in a slow mode, see :func:`family_env`): AsymmNet / r=0 under
    ``('hybridized', 1, arch, width)`` and AsymmNet-L x1.0 / GluonCV's
    MobileNetV3-L under ``'gluoncv'``."""
    pairs = list(_pairs(args.widths))
    names = [name for _, _, pair in pairs for name in pair]
    ratios = []
    for _ in range(args.trials):
        times = compare({'hybridized': names}, 1, args.size, args.repeats, args.warmup)[0]
        times = times.get('hybridized', {})
        trial = {('hybridized', 1, arch, width): times[pair[0]] / times[pair[1]]
                 for arch, width, pair in pairs if pair[0] in times and pair[1] in times}
        if 'asymmnet_large_1.0' in times and 'mobilenetv3_large' in times:
            trial['gluoncv'] = times['asymmnet_large_1.0'] / times['mobilenetv3_large']
        ratios.append(trial)
    return ratios


def by_width(rows, trials, widths):
    """AsymmNet / r=0 per architecture and width: hybridized batch 1 (median over
    the processes of ``trials``), hybridized batch 32, ONNX Runtime fp32 and INT8
    at batch 1."""
    table = []
    for arch, width, _ in _pairs(widths):
        b1 = [t[('hybridized', 1, arch, width)] for t in trials
              if ('hybridized', 1, arch, width) in t]
        row = dict(arch=arch, width=width, hybridized_b1_processes=b1)
        if b1:
            row['hybridized_b1'] = statistics.median(b1)
        for column, key in (('hybridized_b32', ('hybridized', 32)),
                            ('onnxruntime_b1', ('onnxruntime', 1)),
                            ('int8_onnxruntime_b1', ('int8-onnxruntime', 1))):
            if key + (arch, width) in rows:
                row[column] = rows[key + (arch, width)]['asymm_vs_r0']
        table.append(row)
    return table


def _built(name):
    net = get_model(name)
    net.initialize()
    return net


if __name__ == '__main__':
    main()
