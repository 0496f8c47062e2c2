"""MACs, parameters and batch-1 latency of the grid's variants, cached per output folder.

MACs and trainable parameters come from :func:`gluon_asymmnet.complexity.summary`;
latency is timed on two backends of :mod:`gluon_asymmnet.speed` (random weights:
speed does not depend on them), each in a child process of its own, one after
the other, never while cells train, every model once per round
(:func:`interleaved_latency`: the lowest decile and the median of the rounds):

``mxnet``        ``hybridized`` (static alloc/shape), OpenMP threads waiting actively
                 (``OMP_WAIT_POLICY=ACTIVE``, as ``bench/inference.py`` times MXNet)
``onnxruntime``  the model exported to ONNX, in ONNX Runtime

Each latency is stored with the load it was timed under: the cores that other
processes kept busy meanwhile (:class:`~.provenance.CpuLoad`).  Results go to
``measurements.json`` keyed by model, options, classes, input size and threads,
so a rerun measures nothing it has measured before, except latencies timed under
load (:func:`loaded`), which it times again.

Child command (internal): ``python -m gluon_asymmnet.experiments.measure BACKEND
--input-size S --classes C --runs N --out FILE SPEC_JSON...``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from ..cli import OneLineParser
from ..fileio import atomic_write_json
from .provenance import CpuLoad
from .runner import die_with_parent

__all__ = ['MEASUREMENTS_FILE', 'measurement_key', 'measure_variants', 'interleaved_latency',
           'unmeasured', 'loaded', 'QUIET_LOAD']

MEASUREMENTS_FILE = 'measurements.json'
#: Timed batch-1 calls per model and backend, interleaved (:func:`interleaved_latency`).
RUNS = 200
#: Untimed calls of each model first.
WARMUP = 10
#: Busy cores of other processes up to which a latency counts as timed on a quiet machine.
QUIET_LOAD = 0.25
_BACKEND = {'mxnet': 'hybridized', 'onnxruntime': 'onnxruntime'}
_ENV = {'mxnet': {'OMP_WAIT_POLICY': 'ACTIVE'}, 'onnxruntime': {}}


def measurement_key(model, kwargs, classes, input_size, threads):
    """The cache key of one variant's measurements."""
    options = ','.join('%s=%s' % item for item in sorted(kwargs.items()))
    return '%s[%s] classes=%d size=%d threads=%d' % (model, options, classes, input_size,
                                                       threads)


def loaded(load):
    """Whether a latency timed while other processes kept ``load`` cores busy (None:
    not known) counts as timed under load."""
    return load is None or load > QUIET_LOAD


def _stale(cached, backend, runs):
    """Whether ``backend``'s measurements of a variant are missing or timed under load."""
    if backend == 'mxnet' and 'macs' not in cached:
        return True
    if not runs:
        return False
    if backend + '_ms' not in cached:
        return True
    return cached[backend + '_ms'] is not None and loaded(cached.get(backend + '_load'))


def _load(path):
    if not os.path.exists(path):
        return {}
    with open(path) as cache:
        return json.load(cache)


def unmeasured(variants, classes, input_size, threads, out):
    """How many of ``variants`` (``(model, kwargs)``) ``out`` has no measurements of."""
    cache = _load(os.path.join(out, MEASUREMENTS_FILE))
    return sum(1 for model, kwargs in variants
               if measurement_key(model, kwargs, classes, input_size, threads) not in cache)


def measure_variants(variants, classes, input_size, threads, out, runs=RUNS, echo=print):
    """MACs, parameters and latencies of ``variants``, measuring what is not cached (or was
    timed under load).

    Parameters
    ----------
    variants : list of (str, dict)
        Zoo names and their ``get_model`` options.
    classes, input_size, threads : int
        Classifier outputs, input side, ``OMP_NUM_THREADS`` of the measurement.
    runs : int
        Timed calls per latency; 0: count MACs and parameters only.
    out : str
        Folder of ``measurements.json``.
    echo : callable

    Returns
    -------
    dict
        ``{key: {'macs', 'params', 'mxnet_ms', 'onnxruntime_ms', 'mxnet_load',
        'onnxruntime_load', ...}}`` (a value is None where it could not be measured, with
        the reason under ``'<backend>_error'``; ``*_load``: busy cores of other processes
        while timing).
    """
    path = os.path.join(out, MEASUREMENTS_FILE)
    cache = _load(path)
    keyed = {measurement_key(m, k, classes, input_size, threads): (m, k) for m, k in variants}
    for backend in ('mxnet', 'onnxruntime'):
        todo = [key for key in keyed if _stale(cache.get(key, {}), backend, runs)]
        if not todo:
            continue
        echo('measuring %d model(s) at batch 1, %dx%d, %d thread(s) in %s'
             % (len(todo), input_size, input_size, threads, backend))
        results = _in_child(backend, [keyed[key] for key in todo], classes, input_size,
                            threads, runs)
        for key, result in zip(todo, results):
            cache.setdefault(key, {}).update(result)
        atomic_write_json(cache, path, sort_keys=True)
    return {key: cache[key] for key in keyed}


def _in_child(backend, variants, classes, input_size, threads, runs):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **_ENV[backend])
    with tempfile.TemporaryDirectory(prefix='asymmnet-measure-') as work:
        result = os.path.join(work, 'result.json')
        command = [sys.executable, '-m', __name__, backend, '--input-size', str(input_size),
                   '--classes', str(classes), '--runs', str(runs), '--out', result]
        command += [json.dumps([model, kwargs]) for model, kwargs in variants]
        load = CpuLoad().start()
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent(os.getpid()))
        if done.returncode != 0:
            reason = done.stdout.decode('utf-8', 'replace').strip().splitlines()[-1:] or ['?']
            return [{backend + '_ms': None, backend + '_error': reason[0]} for _ in variants]
        others = load.others()
        with open(result) as answer:
            results = json.load(answer)
        for measured in results:
            if runs and measured.get(backend + '_ms') is not None:
                measured[backend + '_load'] = None if others is None else round(others, 3)
        return results


def _build(backend, model, kwargs, classes, input_size, runs):
    """``(counts, run or None)``: MACs/parameters (``mxnet``) and the batch-1 runner."""
    import mxnet as mx
    from .. import model_zoo
    from ..complexity import summary
    from ..speed import build_backend
    shape = (1, 3, input_size, input_size)
    net = model_zoo.get_model(model, classes=classes, **kwargs)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros(shape))   # settle deferred shapes
    counts = {}
    if backend == 'mxnet':
        stats = summary(net, shape)
        counts.update(macs=stats.macs, params=stats.trainable_params)
    return counts, build_backend(_BACKEND[backend], net, shape) if runs else None


def interleaved_latency(runners, data, runs, warmup=WARMUP):
    """Seconds per call of each runner: ``(lowest decile, median)`` over ``runs`` rounds.

    Every round times every runner once, so a change in the machine's load
    weighs on all of them alike; the lowest decile is the time of a call that the
    scheduler did not interrupt, which stays comparable on a shared machine.
    """
    import numpy as np
    for run in runners:
        for _ in range(warmup):
            run(data)
    times = [[] for _ in runners]
    for _ in range(runs):
        for run, spent in zip(runners, times):
            start = time.perf_counter()
            run(data)
            spent.append(time.perf_counter() - start)
    return [(float(np.percentile(t, 10)), float(np.median(t))) for t in times]


def main(argv=None):
    """The child: measure the variants given as JSON ``[model, kwargs]`` on one backend."""
    parser = OneLineParser(prog='python -m gluon_asymmnet.experiments.measure',
                           description='The child process of the speed measurements of '
                                       'python -m gluon_asymmnet.experiments (not for use by hand)')
    parser.add_argument('backend', choices=sorted(_BACKEND), help='what runs the networks')
    parser.add_argument('variants', nargs='+', type=json.loads,
                        help='the networks, each as JSON [model, {get_model keyword: value}]')
    parser.add_argument('--input-size', type=int, required=True, help='side of the square input')
    parser.add_argument('--classes', type=int, required=True, help='outputs of the classifier')
    parser.add_argument('--runs', type=int, default=RUNS, help='timed runs of each network')
    parser.add_argument('--out', required=True, help='JSON file of the results')
    args = parser.parse_args(argv)
    results, runners = [], []
    for model, kwargs in args.variants:
        try:
            counts, run = _build(args.backend, model, kwargs, args.classes, args.input_size,
                                 args.runs)
        except Exception as error:   # one model that cannot run there does not stop the others
            counts, run = {args.backend + '_ms': None,
                           args.backend + '_error': '%s: %s' % (type(error).__name__, error)}, None
        results.append(counts)
        runners.append(run)
    timed = [i for i, run in enumerate(runners) if run is not None]
    if timed:
        import numpy as np
        data = np.random.RandomState(1).normal(
            size=(1, 3, args.input_size, args.input_size)).astype(np.float32)
        latencies = interleaved_latency([runners[i] for i in timed], data, args.runs)
        for i, (low, median) in zip(timed, latencies):
            results[i].update({args.backend + '_ms': low * 1e3,
                               args.backend + '_median_ms': median * 1e3})
    with open(args.out, 'w') as out:
        json.dump(results, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
