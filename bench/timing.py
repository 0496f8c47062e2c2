"""Timing shared by every benchmark of ``bench/``.

The machines these benchmarks run on are shared and noisy, so absolute times are
not comparable between runs.  Every comparison is therefore made between
callables timed *interleaved* in the same process: after a warm-up, each repeat
times every callable once, in turn, and the reported figure is the median over
the repeats.  Ratios of such medians are what the benchmarks assert about.

Callables that need a process of their own (another threading setting, a
runtime whose idle threads would disturb the others) are timed the same way in
a child process (:func:`serve_rounds` there, :func:`medians_in_child` or
:func:`rounds_in_child` here).

A process can also run in a mode of its own for its whole life (libgomp's
wait policy on a 2-core VM: ~13 or ~21 ms for one network), so a figure that
matters is measured in several processes (:func:`across_processes`): where they
disagree beyond :data:`SPREAD_TOLERANCE` the figure is *unstable*, reported with
its range and no median, since the median of a bimodal mix is no result.

Each benchmark writes ``bench/results/<name>.json`` and prints it as one JSON
line after its human-readable table.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import mxnet as mx

__all__ = ['RESULTS_DIR', 'SPREAD_TOLERANCE', 'across_processes', 'describe_spread',
           'interleaved_medians', 'medians_in_child', 'rounds_in_child', 'serve_rounds',
           'machine', 'print_table', 'write_result', 'common_arguments', 'sync']

#: Where every benchmark writes its ``<name>.json``.
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


#: How far the processes measuring one figure may disagree (highest / lowest - 1) for
#: their median to be a result.
SPREAD_TOLERANCE = 0.10


def across_processes(values, tolerance=SPREAD_TOLERANCE, unit='process'):
    """One figure (a ratio, a time) measured once in each of several processes
    (or each of several interleaved rounds of one process: ``unit='round'``).

    Parameters
    ----------
    values : list of float
        One positive value per process (round).
    tolerance : float
        The largest ``highest / lowest - 1`` of a stable figure.
    unit : {'process', 'round'}
        What one value comes from (for :func:`describe_spread`).

    Returns
    -------
    dict
        ``processes`` (the values), ``lowest``, ``highest``, ``stable`` (at least
        two values, agreeing within ``tolerance``), ``median``: None unless
        stable, and ``unit``.
    """
    values = [float(value) for value in values]
    if not values:
        return dict(processes=[], lowest=None, highest=None, stable=False, median=None,
                    unit=unit)
    lowest, highest = min(values), max(values)
    stable = len(values) >= 2 and highest <= lowest * (1 + tolerance)
    return dict(processes=values, lowest=lowest, highest=highest, stable=stable,
                median=statistics.median(values) if stable else None, unit=unit)


def describe_spread(spread):
    """An :func:`across_processes` summary of a ratio as text: ``1.27x (1.25-1.33, 4
    processes)``, or ``unstable (0.58-1.09, 4 processes)``."""
    if not spread['processes']:
        return ''
    count, unit = len(spread['processes']), spread.get('unit', 'process')
    detail = '(%.2f-%.2f, %d %s)' % (spread['lowest'], spread['highest'], count,
                                     unit + ('es' if unit.endswith('s') else 's')
                                     if count > 1 else unit)
    return ('%.2fx %s' % (spread['median'], detail) if spread['stable'] else
            'unstable ' + detail)


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
        for name, seconds in _time_round(callables, number).items():
            times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def _time_round(callables, number):
    times = {}
    for name, fn in callables.items():
        start = time.perf_counter()
        for _ in range(number):
            sync(fn())
        mx.nd.waitall()
        times[name] = (time.perf_counter() - start) / number
    return times


def serve_rounds(build, warmup=2, number=1):
    """The child side of :func:`medians_in_child` (call it from the child's main).

    Builds the callables and warms them up, then prints one JSON line:
    ``{"failures": {name: message}}`` (callables that could not be built or
    run), or ``{"error": message}`` when nothing could be.  Then every line
    ``round`` read from stdin times each callable once (``number`` calls) and
    prints the seconds per call as one JSON line; end of input ends it.

    Parameters
    ----------
    build : dict of str -> callable
        For each name, a function that returns the callable to time.
    warmup, number : int
        As in :func:`interleaved_medians`.
    """
    out = sys.stdout
    sys.stdout = sys.stderr   # whatever the callables print must not reach the parent's pipe
    callables, failures = {}, {}
    for name, make in build.items():
        try:
            fn = make()
            for _ in range(warmup):
                sync(fn())
            mx.nd.waitall()
            callables[name] = fn
        except Exception as error:   # reported to the parent, which records the failure
            failures[name] = str(error).strip().splitlines()[0][:200] if str(error) else repr(error)
    out.write(json.dumps({'failures': failures} if callables else
                         {'error': '; '.join(sorted(set(failures.values()))) or 'nothing to time'})
              + '\n')
    out.flush()
    for line in sys.stdin:
        if line.strip() == 'round':
            out.write(json.dumps(_time_round(callables, number)) + '\n')
            out.flush()


def medians_in_child(argv, env=None, repeats=5):
    """Median seconds per call of callables timed interleaved in a child process.

    :func:`rounds_in_child`, each callable's rounds summarised by their median.

    Returns
    -------
    (dict of str -> float, dict of str -> str)
        The medians, and the callables that failed with their messages.
    """
    rounds, failures = rounds_in_child(argv, env, repeats)
    return {name: statistics.median(values) for name, values in rounds.items()}, failures


def rounds_in_child(argv, env=None, repeats=5):
    """Seconds per call of callables timed interleaved in a child process, per round.

    Parameters
    ----------
    argv : list of str
        The child's command line: a program that calls :func:`serve_rounds`.
    env : dict, optional
        Environment variables the child gets on top of this process's.
    repeats : int
        Timed rounds, each timing every callable of the child once.

    Returns
    -------
    (dict of str -> list of float, dict of str -> str)
        Each callable's seconds per call in each round (round ``i`` of every
        callable ran in one pass), and the callables that failed with their
        messages.

    Raises
    ------
    RuntimeError
        The child could build nothing, or died.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})), text=True)
    try:
        reply = proc.stdout.readline()
        status = json.loads(reply) if reply.startswith('{') else {
            'error': 'the child exited with status %s' % proc.wait()}
        if 'error' in status:
            raise RuntimeError(status['error'])
        times = {}
        for _ in range(repeats):
            proc.stdin.write('round\n')
            proc.stdin.flush()
            reply = proc.stdout.readline()
            if not reply:
                raise RuntimeError('the child exited with status %s' % proc.wait())
            for name, seconds in json.loads(reply).items():
                times.setdefault(name, []).append(seconds)
        return times, status['failures']
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait()


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
