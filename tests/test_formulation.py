"""The fast forward formulation computes exactly what the plain one does.

``channel_concat`` uses 5-D views when a gradient may be needed and oneDNN's
4-D ``Concat`` otherwise; ``AsymmNet`` keeps one cached graph per mode.  These
tests check the values and gradients against numpy and against the original
plain 4-D concat run with oneDNN off (in a subprocess), and that a hybridized
network can infer, train and infer again (which graph a symbolic trace gives:
``test_traced_graphs.py``).
"""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluon_asymmnet import get_model
from gluon_asymmnet.models.layers import channel_concat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL, SHAPE = 'asymmnet_small_0.35', (2, 3, 64, 64)


def _net(seed=0, hybridize=True):
    mx.random.seed(seed)
    net = get_model(MODEL, classes=10, dropout=0.)
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


def test_hybridized_net_infers_trains_and_infers_again(tmp_path):
    net = _net()
    x, y = _input(), mx.nd.array([1, 7])
    net.save_parameters(str(tmp_path / 'p.params'))
    imperative = _net(hybridize=False)
    imperative.load_parameters(str(tmp_path / 'p.params'))
    first = net(x)
    assert np.allclose(first.asnumpy(), imperative(x).asnumpy(), atol=1e-5)
    assert 'expand_dims' not in net._cached_graph[1].tojson()
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(2):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()   # the 4-D oneDNN concat backward would fail here
        trainer.step(2)
    assert 'expand_dims' in net._cached_graph[1].tojson()
    grad = net.features[0].weight.grad().asnumpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    again = net(x)
    assert 'expand_dims' not in net._cached_graph[1].tojson()
    assert not np.allclose(again.asnumpy(), first.asnumpy())   # the step changed weights
    with autograd.record(train_mode=False):
        predicted_by_training_graph = net(x)
    assert np.allclose(again.asnumpy(), predicted_by_training_graph.asnumpy(), atol=1e-5)


_REFERENCE = r'''
import sys
import mxnet as mx, numpy as np
from mxnet import autograd
import gluon_asymmnet.models.asymmnet as asymmnet
from gluon_asymmnet import get_model
asymmnet.channel_concat = lambda F, *parts: F.concat(*parts, dim=1)   # the original's concat
net = get_model(%(model)r, classes=10, dropout=0.)
net.initialize()
net.load_parameters(sys.argv[1])
net.hybridize()
x = mx.nd.array(np.load(sys.argv[2]))
w = mx.nd.array(np.random.RandomState(2).randn(x.shape[0], 10))
with autograd.record():
    loss = (net(x) * w).sum()
loss.backward()
np.savez(sys.argv[3], **{k: v.grad().asnumpy() for k, v in
                         net._collect_params_with_prefix().items() if v.grad_req != 'null'})
'''


def test_training_gradients_match_plain_concat_without_onednn(tmp_path):
    net = _net()
    x = _input()
    with autograd.record():
        net(x)   # settle deferred shapes, then save the very weights used below
    params, data, out = (str(tmp_path / name) for name in ('p.params', 'x.npy', 'g.npz'))
    net.save_parameters(params)
    np.save(data, x.asnumpy())
    env = dict(os.environ, MXNET_MKLDNN_ENABLED='0', MXNET_STORAGE_FALLBACK_LOG_VERBOSE='0',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run([sys.executable, '-c', _REFERENCE % dict(model=MODEL), params, data, out],
                   check=True, env=env, cwd=ROOT)
    expected = np.load(out)
    net.load_parameters(params)
    w = mx.nd.array(np.random.RandomState(2).randn(x.shape[0], 10))
    with autograd.record():
        loss = (net(x) * w).sum()
    loss.backward()
    ours = {k: v.grad().asnumpy() for k, v in net._collect_params_with_prefix().items()
            if v.grad_req != 'null'}
    assert sorted(ours) == sorted(expected.files)
    # oneDNN and MXNet's own kernels sum in different orders: float32 rounding only
    # (a misplaced or missing part would differ by the size of the gradients).
    excess = {k: float((np.abs(ours[k] - expected[k]) - 1e-6).max() / np.abs(expected[k]).max())
              for k in ours if np.abs(expected[k]).max() > 0}
    assert max(excess.values()) < 2e-3, sorted(excess.items(), key=lambda i: -i[1])[:3]
