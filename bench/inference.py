"""Inference speed: AsymmNet against MobileNetV3 at equal width, per backend.

For every width, AsymmNet-L/S, our MobileNetV3-L/S (the same code with
``asymmrate=0``) and, at width 1.0, GluonCV's MobileNetV3 run interleaved at
batch 1 (latency) on every backend of ``gluon_asymmnet.benchmark`` (imperative,
hybridized, oneDNN-fused, exported SymbolBlock, ONNX Runtime, INT8 in MXNet
and in ONNX Runtime) at width 1.0, and hybridized at every width and at batch 32
(throughput).  Then every zoo model's hybridized batch-1 latency is plotted
against its MACs (``bench/results/latency_vs_macs.png``).

    OMP_NUM_THREADS=2 python bench/inference.py            # ~5 min on 2 cores
    python bench/inference.py --widths 1.0 --backends hybridized --no-plot
"""
import argparse
import os
import sys

import mxnet as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gluon_asymmnet import get_model, list_models  # noqa: E402
from gluon_asymmnet.benchmark import BACKENDS, build_backend  # noqa: E402
from gluon_asymmnet.utils.summary import summary  # noqa: E402
from timing import (RESULTS_DIR, common_arguments, interleaved_medians,  # noqa: E402
                    print_table, write_result)

def _runner(backend, name, batch, size):
    net = get_model(name)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, size, size)))   # settle GluonCV's deferred shapes
    shape = (batch, 3, size, size)
    run = build_backend(backend, net, shape)
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    return lambda: run(x)


def compare(backend, names, batch, size, repeats, warmup):
    """Median seconds per batch of each zoo model in ``names``, interleaved."""
    number = 5 if batch == 1 else 1
    runners = {name: _runner(backend, name, batch, size) for name in names}
    return interleaved_medians(runners, repeats=repeats, warmup=warmup, number=number)


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
                        help='widths timed on every backend (the others: hybridized only)')
    parser.add_argument('--size', type=int, default=224, help='input side in pixels')
    parser.add_argument('--batch-32-backends', nargs='+', default=['hybridized'],
                        choices=BACKENDS, help='backends also timed at batch 32 (slow)')
    parser.add_argument('--no-plot', action='store_true', help='skip the zoo latency plot')
    common_arguments(parser, repeats=5, warmup=2)
    args = parser.parse_args(argv)
    chosen = list(dict.fromkeys(['hybridized'] + args.backends))
    rows, failures = [], {}
    for backend in chosen:
        for batch in (1, 32):
            if batch == 32 and backend not in args.batch_32_backends:
                continue
            for arch, width, names in _pairs(args.widths):
                if backend != 'hybridized' and width not in args.backend_widths:
                    continue
                try:
                    times = compare(backend, names, batch, args.size, args.repeats,
                                    args.warmup)
                except Exception as error:   # a backend that cannot run a model is reported
                    failures['%s/%s' % (backend, names[0])] = str(error).splitlines()[0][:200]
                    continue
                row = dict(backend=backend, batch=batch, arch=arch, width=width,
                           asymmnet_ms=1e3 * times[names[0]], mobilenetv3_ms=1e3 * times[names[1]],
                           asymm_vs_r0=times[names[0]] / times[names[1]])
                if len(names) == 3:
                    row['gluoncv_ms'] = 1e3 * times[names[2]]
                    row['asymm_vs_gluoncv'] = times[names[0]] / times[names[2]]
                rows.append(row)
    print_table(rows, ['backend', 'batch', 'arch', 'width', 'asymmnet_ms', 'mobilenetv3_ms',
                       'gluoncv_ms', 'asymm_vs_r0', 'asymm_vs_gluoncv'])
    result = dict(rows=rows, failures=failures, size=args.size, repeats=args.repeats,
                  note='ms per batch; ratios < 1 mean AsymmNet is faster (latency); '
                       'throughput ratio = 1 / latency ratio')
    ours = {(r['backend'], r['batch'], r['arch'], r['width']): r for r in rows}
    large_b1 = ours.get(('hybridized', 1, 'large', '1.0'))
    large_b32 = ours.get(('hybridized', 32, 'large', '1.0'))
    if large_b1 and large_b32:
        result['targets'] = dict(
            large_1_0_batch1_latency_vs_gluoncv=large_b1['asymm_vs_gluoncv'],
            large_1_0_batch32_throughput_vs_gluoncv=1. / large_b32['asymm_vs_gluoncv'])
        fastest = min((r for r in rows if r['batch'] == 1 and r['arch'] == 'large'
                       and r['width'] == '1.0'), key=lambda r: r['asymmnet_ms'])
        result['targets']['fastest_backend'] = fastest['backend']
        result['targets']['fastest_vs_hybridized_batch1'] = (
            fastest['asymmnet_ms'] / large_b1['asymmnet_ms'])
    if not args.no_plot:
        names = list_models()
        times = compare('hybridized', names, 1, args.size, max(3, args.repeats // 2), 1)
        points = [dict(model=name, latency_ms=1e3 * times[name],
                       macs=summary(_built(name), (1, 3, args.size, args.size)).macs)
                  for name in names]
        os.makedirs(RESULTS_DIR, exist_ok=True)
        plot = os.path.join(RESULTS_DIR, 'latency_vs_macs.png')
        plot_latency_vs_macs(points, plot)
        result['zoo'] = points
        result['plot'] = plot
        print_table(sorted(points, key=lambda p: p['macs']), ['model', 'macs', 'latency_ms'])
    write_result('inference', result)


def _built(name):
    net = get_model(name)
    net.initialize()
    return net


if __name__ == '__main__':
    main()
