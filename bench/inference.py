"""Inference speed: AsymmNet against MobileNetV3 at equal width, per backend.

For every width, AsymmNet-L/S, our MobileNetV3-L/S (the same code with
``asymmrate=0``) and, at width 1.0, GluonCV's MobileNetV3 run interleaved at
batch 1 (latency) on every backend of ``gluon_asymmnet.speed`` (imperative,
hybridized, oneDNN-fused, exported SymbolBlock, ONNX Runtime, INT8 in MXNet
and in ONNX Runtime) at width 1.0, hybridized and in ONNX Runtime (fp32, INT8;
fp32 also on the export of the concatenated map, ``onnxruntime-concat``)
at every width, and hybridized and ONNX Runtime fp32 (both exports) at batch 32
(throughput).  The batch-1 ratios
of the width table (hybridized, ONNX Runtime fp32 and INT8) come from this run
and ``--trials`` more fresh processes: a ratio whose processes disagree by more
than ``--tolerance`` is marked unstable, with its range and no median
(``timing.across_processes``); a batch-32 ratio, from one process, is unstable
when the ratios of its interleaved rounds disagree as much.  Each ratio stands
next to its memory-traffic
bound (``bench/traffic.py``: AsymmNet / r=0 in bytes of activations of the
inference graph without the concatenated map; unfused for MXNet's hybridized
graph, fused for ONNX Runtime, see :data:`FUSED_COLUMNS`) and passes when it is
at most the bound + 5%.  Then every
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the package before MXNet: it gives MXNet every core unless OMP_NUM_THREADS is set
from gluon_asymmnet import get_model, list_models  # noqa: E402
import mxnet as mx  # noqa: E402
from gluon_asymmnet.speed import BACKENDS, build_backend  # noqa: E402
from gluon_asymmnet.complexity import summary  # noqa: E402
from timing import (RESULTS_DIR, SPREAD_TOLERANCE, across_processes,  # noqa: E402
                    common_arguments, describe_spread, print_table, rounds_in_child,
                    serve_rounds, write_result)
from traffic import BOUND_MARGIN, traffic_ratios  # noqa: E402

#: ``onnxruntime`` on the ONNX export of AsymmNet built with ``formulation='concat'``
#: (the concatenated feature map that the export wrote before it split large maps):
#: a reference column, what the export's choice saves; not held to the bound.
CONCAT_BACKEND = 'onnxruntime-concat'
#: Backends that run in ONNX Runtime; the others run in MXNet.
ORT_BACKENDS = ('onnxruntime', 'int8-onnxruntime', CONCAT_BACKEND)
#: The batch-1 columns of the width table: each measured in several processes.
WIDTH_TABLE = (('hybridized_b1', 'hybridized'), ('onnxruntime_b1', 'onnxruntime'),
               ('onnxruntime_concat_b1', CONCAT_BACKEND),
               ('int8_onnxruntime_b1', 'int8-onnxruntime'))
#: The batch-32 columns of the width table (one process).
BATCH_32_TABLE = (('hybridized_b32', 'hybridized'), ('onnxruntime_b32', 'onnxruntime'),
                  ('onnxruntime_concat_b32', CONCAT_BACKEND))
#: The columns of the concatenated export: shown, not held to the bound.
REFERENCE_COLUMNS = ('onnxruntime_concat_b1', 'onnxruntime_concat_b32')
#: The columns of runtimes that fuse BatchNorm and activations into the
#: convolutions (held to the fused traffic bound; the others to the unfused one).
FUSED_COLUMNS = ('onnxruntime_b1', 'int8_onnxruntime_b1', 'onnxruntime_b32')


def model_runner(backend, name, batch, size):
    """A callable running zoo model ``name`` on ``backend`` (of :data:`BACKENDS` or
    :data:`CONCAT_BACKEND`) on one random batch of ``(batch, 3, size, size)``."""
    if backend == CONCAT_BACKEND:
        backend = 'onnxruntime'
        net = get_model(name, formulation='concat') if name.startswith('asymmnet') else get_model(
            name)
    else:
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
    (dict, dict, dict)
        ``{backend: {name: seconds}}`` (medians), ``{"backend/name": error}`` for
        what could not run, and ``{backend: {name: [seconds per round]}}``.
    """
    times, failures, rounds = {}, {}, {}
    for family in ('mxnet', 'onnxruntime'):
        chosen = [b for b in runs if runs[b] and (b in ORT_BACKENDS) == (family == 'onnxruntime')]
        if not chosen:
            continue
        argv = [sys.executable, os.path.abspath(__file__), '--serve-batch', str(batch),
                '--size', str(size), '--warmup', str(warmup),
                '--serve'] + ['%s/%s' % (backend, name)
                              for backend in chosen for name in runs[backend]]
        try:
            timed, failed = rounds_in_child(argv, family_env(family), repeats)
        except RuntimeError as error:
            failures.update(('%s/*' % backend, str(error)) for backend in chosen)
            continue
        failures.update(failed)
        for key, seconds in timed.items():
            backend, name = key.split('/')
            times.setdefault(backend, {})[name] = statistics.median(seconds)
            rounds.setdefault(backend, {})[name] = seconds
    return times, failures, rounds


def _serve(args):
    """Child mode: time each ``backend/model`` of ``--serve`` for the parent."""
    number = 5 if args.serve_batch == 1 else 1
    build = {}
    for key in args.serve:
        backend, name = key.split('/')
        build[key] = (lambda backend=backend, name=name:
                      model_runner(backend, name, args.serve_batch, args.size))
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
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS) + [CONCAT_BACKEND],
                        choices=BACKENDS + (CONCAT_BACKEND,),
                        help='backends timed at batch 1 at --backend-widths')
    parser.add_argument('--backend-widths', nargs='+', default=['1.0'],
                        help='widths timed on every backend (the others: hybridized and '
                             'ONNX Runtime fp32/INT8 only)')
    parser.add_argument('--size', type=int, default=224, help='input side in pixels')
    parser.add_argument('--batch-32-backends', nargs='+',
                        default=[backend for _, backend in BATCH_32_TABLE],
                        choices=BACKENDS + (CONCAT_BACKEND,),
                        help='backends also timed at batch 32 (slow)')
    parser.add_argument('--no-plot', action='store_true', help='skip the zoo latency plot')
    parser.add_argument('--trials', type=int, default=3,
                        help='fresh processes that time the batch-1 comparisons of the width '
                             'table again (every AsymmNet against r=0 hybridized and in ONNX '
                             'Runtime, AsymmNet-L x1.0 against GluonCV\'s MobileNetV3-L)')
    parser.add_argument('--tolerance', type=float, default=SPREAD_TOLERANCE,
                        help='a batch-1 ratio whose processes disagree by more than this '
                             '(highest / lowest - 1) is unstable: range, no median')
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
        times, failed, rounds = compare(
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
                           asymmnet_ms=ms[0], mobilenetv3_ms=ms[1], asymm_vs_r0=ms[0] / ms[1],
                           asymm_vs_r0_rounds=across_processes(
                               [a / b for a, b in zip(rounds[backend][names[0]],
                                                      rounds[backend][names[1]])],
                               args.tolerance, unit='round'))
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
    trial_backends = [backend for _, backend in WIDTH_TABLE if backend in chosen]
    trials = [{key: row['asymm_vs_r0'] for key, row in ours.items()
               if key[0] in trial_backends and key[1] == 1}] + trial_ratios(args, trial_backends)
    result['batch1_asymm_vs_r0_trials'] = [{'%s %s %s' % ((key[0],) + key[2:]): ratio
                                            for key, ratio in t.items() if isinstance(key, tuple)}
                                           for t in trials]
    result['tolerance'], result['bound_margin'] = args.tolerance, BOUND_MARGIN
    result['by_width'] = by_width(ours, trials, args.widths, args.tolerance, args.size)
    print_table([printable(row) for row in result['by_width']],
                ['arch', 'width', 'traffic', 'traffic_fused', 'traffic_concat']
                + [column for column, _ in WIDTH_TABLE + BATCH_32_TABLE]
                + ['outside_bound', 'unstable'])
    large_b1 = ours.get(('hybridized', 1, 'large', '1.0'))
    large_b32 = ours.get(('hybridized', 32, 'large', '1.0'))
    if large_b1 and large_b32:
        spread = across_processes([large_b1['asymm_vs_gluoncv']] + [
            t['gluoncv'] for t in trials[1:] if 'gluoncv' in t], args.tolerance)
        result['batch1_latency_vs_gluoncv_trials'] = spread['processes']
        print('AsymmNet-L x1.0 / GluonCV MobileNetV3-L, hybridized batch-1 latency: %s'
              % describe_spread(spread))
        result['targets'] = dict(
            large_1_0_batch1_latency_vs_gluoncv=spread['median'],
            large_1_0_batch1_latency_vs_gluoncv_spread=spread,
            large_1_0_batch32_throughput_vs_gluoncv=1. / large_b32['asymm_vs_gluoncv'])
        fastest = min((r for r in rows if r['batch'] == 1 and r['arch'] == 'large'
                       and r['width'] == '1.0'), key=lambda r: r['asymmnet_ms'])
        result['targets']['fastest_backend'] = fastest['backend']
        result['targets']['fastest_vs_hybridized_batch1'] = (
            fastest['asymmnet_ms'] / large_b1['asymmnet_ms'])
    if not args.no_plot:
        times, failed, _ = compare({'hybridized': list_models()}, 1, args.size,
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


def trial_ratios(args, backends):
    """Batch-1 latency ratios of ``backends``, once per ``--trials`` fresh child
    processes (a process can run in a slow mode, see :func:`family_env`): AsymmNet /
    r=0 under ``(backend, 1, arch, width)`` and AsymmNet-L x1.0 / GluonCV's
    MobileNetV3-L (hybridized) under ``'gluoncv'``."""
    pairs = list(_pairs(args.widths))
    names = [name for _, _, pair in pairs for name in pair]
    ratios = []
    for _ in range(args.trials):
        times = compare({backend: names for backend in backends}, 1, args.size, args.repeats,
                        args.warmup)[0]
        trial = {}
        for backend, timed in times.items():
            trial.update(((backend, 1, arch, width), timed[pair[0]] / timed[pair[1]])
                         for arch, width, pair in pairs if pair[0] in timed and pair[1] in timed)
        timed = times.get('hybridized', {})
        if 'asymmnet_large_1.0' in timed and 'mobilenetv3_large' in timed:
            trial['gluoncv'] = timed['asymmnet_large_1.0'] / timed['mobilenetv3_large']
        ratios.append(trial)
    return ratios


def by_width(rows, trials, widths, tolerance=SPREAD_TOLERANCE, size=224):
    """AsymmNet / r=0 per architecture and width against its memory-traffic bound.

    Parameters
    ----------
    rows : dict
        ``(backend, batch, arch, width) -> row`` of this run.
    trials : list of dict
        One per process: ``(backend, 1, arch, width) -> ratio``.
    widths : list of str
    tolerance : float
        See :func:`timing.across_processes`.
    size : int
        Input side (of the traffic count).

    Returns
    -------
    list of dict
        ``arch, width, traffic, traffic_fused, traffic_concat`` (bytes ratios of
        the inference graph without the concat, unfused and fused, and with the
        concat), the batch-1 columns of :data:`WIDTH_TABLE` as
        :func:`timing.across_processes` summaries, those of
        :data:`BATCH_32_TABLE` (one process) as summaries of its interleaved
        rounds' ratios where the rows have them, ``outside_bound``: the columns
        whose ratio (the median of a stable one) exceeds their bound
        (``traffic_fused`` for :data:`FUSED_COLUMNS`, ``traffic`` otherwise)
        times ``1 + BOUND_MARGIN``, and ``unstable``: the columns whose
        processes (rounds) disagree (neither pass nor fail).
    """
    table = []
    for arch, width, _ in _pairs(widths):
        bound = traffic_ratios(arch, width, size)
        row = dict(arch=arch, width=width, traffic=bound['inference'],
                   traffic_fused=bound['inference_fused'],
                   traffic_concat=bound['inference_concat'], outside_bound=[], unstable=[])
        for column, backend in WIDTH_TABLE:
            values = [t[(backend, 1, arch, width)] for t in trials
                      if (backend, 1, arch, width) in t]
            if values:
                row[column] = across_processes(values, tolerance)
        for column, backend in BATCH_32_TABLE:
            timed = rows.get((backend, 32, arch, width))
            if timed:
                row[column] = timed.get('asymm_vs_r0_rounds') or timed['asymm_vs_r0']
        for column, _ in WIDTH_TABLE + BATCH_32_TABLE:
            ratio = row.get(column)
            if isinstance(ratio, dict):
                if not ratio['stable']:
                    row['unstable'].append(column)
                ratio = ratio['median']
            if column in REFERENCE_COLUMNS:
                continue
            limit = row['traffic_fused' if column in FUSED_COLUMNS else 'traffic']
            if ratio is not None and ratio > limit * (1 + BOUND_MARGIN):
                row['outside_bound'].append(column)
        table.append(row)
    return table


def printable(row):
    """A width-table row with its process summaries as text."""
    return {key: describe_spread(value) if isinstance(value, dict) else
            ' '.join(value) if isinstance(value, list) else value for key, value in row.items()}


def _built(name):
    net = get_model(name)
    net.initialize()
    return net


if __name__ == '__main__':
    main()
