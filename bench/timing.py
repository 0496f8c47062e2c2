"""Timing shared by every benchmark of ``bench/``.

The machines these benchmarks run on are shared and noisy, so absolute times are
not comparable between runs.  Every comparison is therefore made between
callables timed *interleaved* in the same process: after a warm-up, each repeat
times every callable once, in turn, and the reported figure is the median over
the repeats.  Ratios of such medians are what the benchmarks assert about.

Each benchmark writes ``bench/results/<name>.json`` and prints it as one JSON
line after its human-readable table.
"""
import json
import os
import platform
import statistics
import subprocess
import time

import mxnet as mx

__all__ = ['RESULTS_DIR', 'interleaved_medians', 'machine', 'print_table', 'write_result',
           'common_arguments', 'sync']

#: Where every benchmark writes its ``<name>.json``.
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


def sync(outputs):
    """Wait for MXNet's asynchronous engine to finish computing ``outputs``.

    Parameters
    ----------
    outputs : NDArray, or list/tuple of them, or anything else (ignored)
    """
    if isinstance(outputs, mx.nd.NDArray):
        outputs.wait_to_read()
    elif isinstance(outputs, (list, tuple)):
        for out in outputs:
            sync(out)


def interleaved_medians(callables, repeats=5, warmup=2, number=1):
    """Median seconds per call of each callable, timed interleaved.

    Parameters
    ----------
    callables : dict of str -> callable
        Each takes no argument and returns what :func:`sync` must wait for.
    repeats : int
        Timed rounds; every round times every callable once (``number`` calls).
    warmup : int
        Untimed calls of each callable first (graph building, oneDNN primitive
        creation, memory planning).
    number : int
        Calls per timing (the time is divided by it).

    Returns
    -------
    dict of str -> float
        Median over the repeats of the seconds per call.
    """
    for fn in callables.values():
        for _ in range(warmup):
            sync(fn())
    mx.nd.waitall()
    times = {name: [] for name in callables}
    for _ in range(repeats):
        for name, fn in callables.items():
            start = time.perf_counter()
            for _ in range(number):
                sync(fn())
            mx.nd.waitall()
            times[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in times.items()}


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def machine():
    """Where the numbers come from: CPU, cores, MXNet version and threading knobs."""
    flags = ''
    try:
        flags = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError:
        pass
    isa = [f for f in ('avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile') if f in flags]
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), isa=isa, mxnet=mx.__version__,
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                mkldnn=os.environ.get('MXNET_MKLDNN_ENABLED', '1'),
                python=platform.python_version())


def print_table(rows, columns):
    """Print ``rows`` (list of dict) as an aligned text table of ``columns``."""
    def cell(value):
        if isinstance(value, float):
            return '%.3g' % value if abs(value) < 100 else '%.1f' % value
        return str(value)
    cells = [[cell(row.get(col, '')) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(c[i]) for c in cells]) for i, col in enumerate(columns)]
    print('  '.join(col.ljust(w) for col, w in zip(columns, widths)))
    for line in cells:
        print('  '.join(c.ljust(w) for c, w in zip(line, widths)))


def write_result(name, payload):
    """Write ``bench/results/<name>.json`` (with :func:`machine` added) and print it
    as one JSON line.

    Returns
    -------
    str
        The path written.
    """
    os.makedirs(RESULTS_DIR, exist_ok=True)
    payload = dict(payload, benchmark=name, machine=machine(),
                   time=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    path = os.path.join(RESULTS_DIR, name + '.json')
    with open(path, 'w') as out:
        json.dump(payload, out, indent=1, sort_keys=True)
    print(json.dumps(payload, sort_keys=True))
    return path


def common_arguments(parser, repeats=5, warmup=2):
    """Add ``--repeats`` and ``--warmup`` (positive ints) to an argparse parser."""
    def positive(text):
        import argparse
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError('%r is not an integer' % text) from None
        if value < 1:
            raise argparse.ArgumentTypeError('must be >= 1, got %d' % value)
        return value
    parser.add_argument('--repeats', type=positive, default=repeats,
                        help='timed rounds, each timing every variant once (median reported)')
    parser.add_argument('--warmup', type=positive, default=warmup,
                        help='untimed calls of each variant first')
    return parser
