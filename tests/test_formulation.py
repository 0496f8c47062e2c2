"""The fast formulations compute exactly what the plain concat does.

Inference on a CPU runs the ``split`` formulation (no concatenated feature
map) on large maps, training ``onednn_concat`` (``channel_concat``: oneDNN's
4-D ``Concat``, followed by an identity ``clip`` in training graphs), a GPU
the original ``concat``; a hybridized ``AsymmNet`` runs the graph of each
call's plan.  These tests check the values and gradients against numpy and
against the original plain 4-D concat run with oneDNN off (in a subprocess),
which formulation each device, mode and size gets, and that a hybridized
network can infer, train and infer again (which graph a symbolic trace gives,
and the graph per batch size: ``test_traced_graphs.py``).
"""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluon_asymmnet import AsymmBottleneck, get_model
from gluon_asymmnet.models.feature_reuse import SPLIT_MIN_ELEMENTS, choose_formulation
from gluon_asymmnet.models.graphs import traced_for
from gluon_asymmnet.models.layers import channel_concat
from gluon_asymmnet.mxnet_private import structured_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL, SHAPE = 'asymmnet_small_0.35', (2, 3, 64, 64)


def _net(seed=0, hybridize=True, formulation='split'):
    mx.random.seed(seed)
    net = get_model(MODEL, classes=10, dropout=0., formulation=formulation)
    net.initialize(mx.init.MSRAPrelu())
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def _input(seed=1):
    return mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, SHAPE).astype('float32'))


@pytest.mark.parametrize('record', [False, True])
def test_channel_concat_values_and_gradients_match_numpy(record):
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.randn(2, 8, 5, 5))   # 8 and 24 channels: not multiples of 16
    e = mx.nd.array(rng.randn(2, 24, 5, 5))
    w = rng.randn(2, 40, 5, 5).astype('float32')
    x.attach_grad()
    e.attach_grad()
    with autograd.record() if record else autograd.pause():
        out = channel_concat(mx.nd, x, e, x)
        loss = (out * mx.nd.array(w)).sum()
    expected = np.concatenate([x.asnumpy(), e.asnumpy(), x.asnumpy()], axis=1)
    assert np.array_equal(out.asnumpy(), expected)
    if record:
        loss.backward()
        assert np.allclose(x.grad.asnumpy(), w[:, :8] + w[:, 32:], atol=1e-6)
        assert np.allclose(e.grad.asnumpy(), w[:, 8:32], atol=1e-6)


def _graph(net, ctx, shape=None, inference=True):
    """Operator names of ``net``'s graph traced for ``ctx``, and the operators
    feeding each concat (built only, never run)."""
    with traced_for(ctx, shape, training=not inference):
        nodes = json.loads(net(mx.sym.var('data')).tojson())['nodes']
    ops = {node['op'] for node in nodes}
    concat_inputs = {nodes[i[0]]['op'] for node in nodes if node['op'] == 'Concat'
                     for i in node['inputs']}
    return ops, concat_inputs


def test_cpu_inference_splits_training_clips_its_concat_gpu_the_plain_concat():
    net = _net(hybridize=False)
    ops, concat_inputs = _graph(net, mx.cpu())
    assert 'slice_axis' in ops and 'clip' not in ops
    assert concat_inputs == {'Pooling'}   # only the squeeze-excitation vectors
    ops, concat_inputs = _graph(net, mx.cpu(), inference=False)
    assert 'clip' in ops and 'slice_axis' not in ops and 'expand_dims' not in ops
    for inference in (True, False):
        ops, concat_inputs = _graph(_net(hybridize=False, formulation='auto'), mx.gpu(0),
                                    inference=inference)
        assert 'Concat' in ops and 'clip' not in ops and 'slice_axis' not in ops
        assert 'Pooling' not in concat_inputs
    ops, _ = _graph(_net(hybridize=False, formulation='onednn_concat'), mx.cpu())
    assert 'Concat' in ops and 'slice_axis' not in ops and 'clip' not in ops


def test_auto_splits_only_feature_maps_worth_it():
    assert choose_formulation(mx.gpu(0), False) == 'concat'
    assert choose_formulation(mx.gpu(0), True) == 'concat'
    assert choose_formulation(mx.cpu(), True) == 'onednn_concat'
    assert choose_formulation(mx.cpu(), False) == 'onednn_concat'   # size unknown
    assert choose_formulation(mx.cpu(), False, SPLIT_MIN_ELEMENTS) == 'split'
    assert choose_formulation(mx.cpu(), False, SPLIT_MIN_ELEMENTS - 1) == 'onednn_concat'
    net = _net(hybridize=False, formulation='auto')
    small, _ = _graph(net, mx.cpu(), (1, 3, 64, 64))
    large, _ = _graph(net, mx.cpu(), (256, 3, 64, 64))
    assert 'slice_axis' not in small and 'slice_axis' in large


def test_formulation_is_checked():
    with pytest.raises(ValueError, match='formulation'):
        AsymmBottleneck(16, 48, 16, formulation='fast')


def _ran(net):
    """Operators of the graph that ran ``net``'s latest call."""
    return {node['op'] for node in json.loads(net.planned_symbol(
        net.latest_plan).tojson())['nodes']}


def test_hybridized_net_infers_trains_and_infers_again(tmp_path):
    net = _net()
    x, y = _input(), mx.nd.array([1, 7])
    net.save_parameters(str(tmp_path / 'p.params'))
    imperative = _net(hybridize=False)
    imperative.load_parameters(str(tmp_path / 'p.params'))
    first = net(x)
    assert np.allclose(first.asnumpy(), imperative(x).asnumpy(), atol=1e-5)
    assert 'clip' not in _ran(net)
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(2):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()   # the 4-D oneDNN concat backward would fail here
        trainer.step(2)
    assert 'clip' in _ran(net)
    grad = net.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    again = net(x)
    assert 'clip' not in _ran(net)
    assert not np.allclose(again.asnumpy(), first.asnumpy())   # the step changed weights
    with autograd.record(train_mode=False):
        predicted_by_training_graph = net(x)
    assert np.allclose(again.asnumpy(), predicted_by_training_graph.asnumpy(), atol=1e-5)


_RUN = r'''
import sys
import mxnet as mx, numpy as np
from mxnet import autograd
from gluon_asymmnet import get_model
from gluon_asymmnet.mxnet_private import structured_params


def run(formulation, hybridize, out):
    net = get_model(%(model)r, classes=10, dropout=0., formulation=formulation)
    net.initialize()
    net.load_parameters(sys.argv[1])
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(np.load(sys.argv[2]))
    x.attach_grad()
    w = mx.nd.array(np.random.RandomState(2).randn(x.shape[0], 10))
    results = {'inference': net(x).asnumpy()}
    with autograd.record():
        loss = (net(x) * w).sum()
    loss.backward()
    results.update({k: v.grad().asnumpy() for k, v in structured_params(net).items()
                    if v.grad_req != 'null'}, data=x.grad.asnumpy())
    np.savez(out, **results)


for spec in sys.argv[3:]:
    formulation, hybridize, out = spec.split(',')
    run(formulation, hybridize == '1', out)
'''


def _run(tmp_path, specs, onednn):
    """Inference outputs, and the gradients of a training step, of each
    ``(formulation, hybridize)`` in a subprocess (oneDNN on or off), on the
    weights and input of ``_net``/``_input``."""
    net = _net(hybridize=False)
    x = _input()
    net(x)
    rng = np.random.RandomState(3)
    for name, param in structured_params(net).items():   # BatchNorm that acts
        low, high = {'gamma': (0.5, 1.5), 'beta': (-0.2, 0.2), 'running_mean': (-0.2, 0.2),
                     'running_var': (0.5, 2.)}.get(name.rsplit('.', 1)[-1], (None, None))
        if low is not None:
            param.set_data(mx.nd.array(rng.uniform(low, high, param.shape)))
    params, data = str(tmp_path / 'p.params'), str(tmp_path / 'x.npy')
    net.save_parameters(params)
    np.save(data, x.asnumpy())
    outs = [str(tmp_path / ('%s-%d.npz' % spec)) for spec in specs]
    env = dict(os.environ, MXNET_MKLDNN_ENABLED='1' if onednn else '0',
               MXNET_STORAGE_FALLBACK_LOG_VERBOSE='0',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run([sys.executable, '-c', _RUN % dict(model=MODEL), params, data]
                   + ['%s,%d,%s' % (spec + (out,)) for spec, out in zip(specs, outs)],
                   check=True, env=env, cwd=ROOT)
    return [dict(np.load(out)) for out in outs]


@pytest.mark.slow
def test_every_graph_matches_the_plain_concat_without_onednn(tmp_path):
    """With the same kernels (oneDNN off), the inference graph (``split``) and the
    training graph (5-D views) give the plain concat's outputs and gradients."""
    reference, *ours = _run(tmp_path, [('concat', 0), ('split', 0), ('split', 1),
                                       ('onednn_concat', 1), ('auto', 1)], onednn=False)
    for result in ours:
        assert sorted(result) == sorted(reference)
        for key, expected in reference.items():
            np.testing.assert_allclose(result[key], expected, rtol=1e-5,
                                       atol=1e-5 * np.abs(expected).max(), err_msg=key)
    assert np.abs(reference['inference']).std() > 1e-2   # the comparison is not of zeros


@pytest.mark.slow
def test_training_gradients_with_onednn_match_plain_concat_without(tmp_path):
    reference, = _run(tmp_path, [('concat', 0)], onednn=False)
    ours, = _run(tmp_path, [('auto', 1)], onednn=True)
    assert sorted(ours) == sorted(reference)
    # oneDNN and MXNet's own kernels sum in different orders: float32 rounding only
    # (a misplaced or missing part would differ by the size of the gradients).
    excess = {k: float((np.abs(ours[k] - reference[k]) - 1e-6).max() / np.abs(reference[k]).max())
              for k in ours if np.abs(reference[k]).max() > 0}
    assert max(excess.values()) < 2e-3, sorted(excess.items(), key=lambda i: -i[1])[:3]
