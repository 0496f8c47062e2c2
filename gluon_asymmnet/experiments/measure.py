"""MACs, parameters and batch-1 latency of the grid's variants, cached per output folder.

MACs and trainable parameters come from :func:`gluon_asymmnet.complexity.summary`;
latency is the median of :func:`gluon_asymmnet.speed.measure` (random
weights: speed does not depend on them) on two backends of
:mod:`gluon_asymmnet.speed`, each in a child process of its own, one after
the other, never while cells train:

``mxnet``        ``hybridized`` (static alloc/shape), OpenMP threads waiting actively
                 (``OMP_WAIT_POLICY=ACTIVE``, as ``bench/inference.py`` times MXNet)
``onnxruntime``  the model exported to ONNX, in ONNX Runtime

Results go to ``measurements.json`` keyed by model, options, classes, input size and
threads, so a rerun measures nothing it has measured before.

Child command (internal): ``python -m gluon_asymmnet.experiments.measure BACKEND
--input-size S --classes C --runs N --out FILE SPEC_JSON...``.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from ..fileio import atomic_write_json
from .runner import die_with_parent

__all__ = ['MEASUREMENTS_FILE', 'measurement_key', 'measure_variants']

MEASUREMENTS_FILE = 'measurements.json'
#: Timed batch-1 calls per model and backend (after the benchmark's warm-up).
RUNS = 100
_BACKEND = {'mxnet': 'hybridized', 'onnxruntime': 'onnxruntime'}
_ENV = {'mxnet': {'OMP_WAIT_POLICY': 'ACTIVE'}, 'onnxruntime': {}}


def measurement_key(model, kwargs, classes, input_size, threads):
    """The cache key of one variant's measurements."""
    options = ','.join('%s=%s' % item for item in sorted(kwargs.items()))
    return '%s[%s] classes=%d size=%d threads=%d' % (model, options, classes, input_size,
                                                       threads)


def _load(path):
    if not os.path.exists(path):
        return {}
    with open(path) as cache:
        return json.load(cache)


def measure_variants(variants, classes, input_size, threads, out, runs=RUNS, echo=print):
    """MACs, parameters and latencies of ``variants``, measuring only what is not cached.

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
        ``{key: {'macs', 'params', 'mxnet_ms', 'onnxruntime_ms'}}`` (a value is None
        where it could not be measured, with the reason under ``'<backend>_error'``).
    """
    path = os.path.join(out, MEASUREMENTS_FILE)
    cache = _load(path)
    keyed = {measurement_key(m, k, classes, input_size, threads): (m, k) for m, k in variants}
    for backend in ('mxnet', 'onnxruntime'):
        wanted = [backend + '_ms'] if runs else []
        wanted += ['macs'] if backend == 'mxnet' else []
        todo = [key for key in keyed if any(w not in cache.get(key, {}) for w in wanted)]
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
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent(os.getpid()))
        if done.returncode != 0:
            reason = done.stdout.decode('utf-8', 'replace').strip().splitlines()[-1:] or ['?']
            return [{backend + '_ms': None, backend + '_error': reason[0]} for _ in variants]
        with open(result) as answer:
            return json.load(answer)


def _measure_one(backend, model, kwargs, classes, input_size, runs):
    import mxnet as mx
    from .. import model_zoo
    from ..complexity import summary
    from ..speed import build_backend, measure
    shape = (1, 3, input_size, input_size)
    net = model_zoo.get_model(model, classes=classes, **kwargs)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros(shape))   # settle deferred shapes
    result = {}
    if backend == 'mxnet':
        stats = summary(net, shape)
        result.update(macs=stats.macs, params=stats.trainable_params)
    if runs:
        run = build_backend(_BACKEND[backend], net, shape)
        result[backend + '_ms'] = measure(run, shape, runs=runs)[0] * 1e3
    return result


def main(argv=None):
    """The child: measure the variants given as JSON ``[model, kwargs]`` on one backend."""
    parser = argparse.ArgumentParser(prog='python -m gluon_asymmnet.experiments.measure')
    parser.add_argument('backend', choices=sorted(_BACKEND))
    parser.add_argument('variants', nargs='+', type=json.loads)
    parser.add_argument('--input-size', type=int, required=True)
    parser.add_argument('--classes', type=int, required=True)
    parser.add_argument('--runs', type=int, default=RUNS)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    results = []
    for model, kwargs in args.variants:
        try:
            results.append(_measure_one(args.backend, model, kwargs, args.classes,
                                        args.input_size, args.runs))
        except Exception as error:   # one model that cannot run there does not stop the others
            results.append({args.backend + '_ms': None,
                            args.backend + '_error': '%s: %s' % (type(error).__name__, error)})
        print(model, kwargs, results[-1], flush=True)
    with open(args.out, 'w') as out:
        json.dump(results, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
