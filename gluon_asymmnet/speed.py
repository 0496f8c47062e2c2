"""Inference speed on the CPU: backends, their latency and throughput (``eval.py --benchmark``).

Backends (:data:`BACKENDS`), each built by :func:`build_backend` into a function
``run(numpy batch) -> numpy logits`` that blocks until the result is there:

``imperative``    the Gluon network, not hybridized
``hybridized``    ``hybridize(static_alloc=True, static_shape=True)``: the baseline,
                  what a network you hybridize runs
``mkldnn``        the network hybridized for serving: each graph fused by oneDNN
                  (:func:`~gluon_asymmnet.deploy.runtime.serving_flags`), what
                  ``eval.py`` runs on a CPU
``symbolblock``   exported ``-symbol.json``/``-0000.params`` through ``SymbolBlock.imports``
``onnxruntime``   the exported ONNX files in ONNX Runtime (all graph optimisations):
                  ``PREFIX-batch1.onnx`` for batches of 1, ``PREFIX.onnx`` for others
``int8``          MXNet oneDNN INT8 (:func:`gluon_asymmnet.deploy.quantize.quantize_mxnet`)
``int8-onnxruntime``  ONNX Runtime static INT8
                  (:func:`gluon_asymmnet.deploy.quantize.quantize_onnx`)

ONNX Runtime sessions run without spinning threads: the backends are timed in
turns in one process, and spinning threads left behind by an ONNX Runtime run
slowed the next MXNet run about 5x here.  INT8 backends built here are
calibrated on random images: right for speed, not for accuracy
(``python -m gluon_asymmnet.quantize`` calibrates on data).
:func:`run_benchmark` prints batch-1 latency (median and p90 after warm-up) and
batch-N throughput with ratios to ``hybridized``, measured in one run.
"""
import os
import shutil
import tempfile
import time

import mxnet as mx
import numpy as np

from .deploy.export import export_model
from .deploy.onnx import load_onnx
from .deploy.quantize import calibration_iter, quantize_mxnet, quantize_onnx
from .deploy.runtime import load_exported, mxnet_runner, onnx_runner, serving_flags
from .deploy.sources import zoo_model
from .errors import UsageError
from .model_zoo import ModelConfig

__all__ = ['BACKENDS', 'build_backend', 'measure', 'run_benchmark']

BACKENDS = ('imperative', 'hybridized', 'mkldnn', 'symbolblock', 'onnxruntime', 'int8',
            'int8-onnxruntime')
_WARMUP = 10


def _random_calibration(input_shape):
    images = np.random.RandomState(0).normal(size=(64,) + tuple(input_shape[1:]))
    return calibration_iter(images.astype(np.float32), 64, batch_size=32)


def _exported(net, input_shape, fmt, work):
    prefix = os.path.join(work, 'net')
    export_model(net, prefix, input_shape[-1], fmt=fmt, config=ModelConfig())
    return prefix


def build_backend(name, net, input_shape):
    """A function running ``net`` with backend ``name`` on numpy batches.

    Parameters
    ----------
    name : str
        One of :data:`BACKENDS`.
    net : HybridBlock
        Initialised, float32, normalised NCHW input. ``imperative`` and
        ``hybridized`` run ``net`` itself (and set its hybridization); the
        others run a copy of its graph and weights.
    input_shape : tuple
        ``(N, 3, H, W)``; the batch size may change between calls.

    Returns
    -------
    callable
        ``run(np.ndarray) -> np.ndarray``.
    """
    if name == 'imperative':
        net.hybridize(active=False)
        return mxnet_runner(net)
    if name == 'hybridized':
        net.hybridize(static_alloc=True, static_shape=True)
        return mxnet_runner(net)
    if name == 'mkldnn':
        flags = serving_flags([mx.cpu()])
        if 'backend' not in flags:
            raise UsageError('the mkldnn backend needs oneDNN (MXNET_MKLDNN_ENABLED=0 turns it off)')
        net.hybridize(**flags)
        return mxnet_runner(net)
    if name == 'int8':
        return mxnet_runner(quantize_mxnet(net, _random_calibration(input_shape)))
    if name not in BACKENDS:
        raise UsageError('unknown backend %r; choose from %s' % (name, ', '.join(BACKENDS)))
    work = tempfile.mkdtemp(prefix='asymmnet-bench-')
    try:
        if name == 'symbolblock':
            block = load_exported(_exported(net, input_shape, 'mxnet', work))[0]
            block.hybridize(static_alloc=True, static_shape=True)
            return mxnet_runner(block)
        prefix = _exported(net, input_shape, 'onnx', work)
        runners = []
        for suffix in ('-batch1.onnx', '.onnx'):   # each batch runs the file of its graph
            path = prefix + suffix
            if name == 'int8-onnxruntime':
                path = quantize_onnx(path, os.path.join(work, 'int8' + suffix),
                                     _random_calibration(input_shape))
            # it shares the process with MXNet: no spinning threads
            runners.append(onnx_runner(load_onnx(path, spinning=False)[0]))
        single, any_batch = runners
        return lambda x: single(x) if len(x) == 1 else any_batch(x)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(run, input_shape, runs=50, warmup=_WARMUP):
    """Seconds per call of ``run`` on random data: ``(median, p90)`` after ``warmup`` calls."""
    data = np.random.RandomState(1).normal(size=input_shape).astype(np.float32)
    for _ in range(warmup):
        run(data)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(data)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.percentile(times, 90))


def run_benchmark(models, backends=None, input_size=224, batch_size=32, runs=50, echo=print):
    """Measure every backend on every model and print a table; return the rows.

    Parameters
    ----------
    models : list of str
        Zoo names (random weights: speed does not depend on them).
    backends : list of str, optional
        Default: all of :data:`BACKENDS`; ``hybridized`` is always measured (the baseline).
    input_size, batch_size, runs : int
        Input side, batch of the throughput measurement, timed calls per measurement.
    echo : callable
        Where lines go.

    Returns
    -------
    list of dict
        ``model, backend, latency_ms, latency_p90_ms, images_per_sec,
        latency_ratio, throughput_ratio`` (ratios to ``hybridized`` of the same model).
    """
    backends = list(backends or BACKENDS)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UsageError('unknown backend %s; choose from %s' % (unknown[0], ', '.join(BACKENDS)))
    if 'hybridized' in backends:
        backends.remove('hybridized')
    backends.insert(0, 'hybridized')
    rows = []
    echo('%-22s %-17s %10s %10s %8s %12s %8s' % ('model', 'backend', 'b1 ms', 'b1 p90', 'ratio',
                                                 'b%d img/s' % batch_size, 'ratio'))
    for model in models:
        net = zoo_model(model, input_size=input_size)[0]
        baseline = None
        for backend in backends:
            run = build_backend(backend, net, (1, 3, input_size, input_size))
            median, p90 = measure(run, (1, 3, input_size, input_size), runs)
            batch_time = measure(run, (batch_size, 3, input_size, input_size),
                                 max(3, runs // 5), warmup=2)[0]
            row = {'model': model, 'backend': backend, 'latency_ms': median * 1e3,
                   'latency_p90_ms': p90 * 1e3, 'images_per_sec': batch_size / batch_time}
            baseline = baseline or row
            row['latency_ratio'] = row['latency_ms'] / baseline['latency_ms']
            row['throughput_ratio'] = row['images_per_sec'] / baseline['images_per_sec']
            rows.append(row)
            echo('%-22s %-17s %10.2f %10.2f %7.2fx %12.1f %7.2fx'
                 % (model, backend, row['latency_ms'], row['latency_p90_ms'],
                    row['latency_ratio'], row['images_per_sec'], row['throughput_ratio']))
    return rows
