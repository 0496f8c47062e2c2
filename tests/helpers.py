"""Helpers shared by the test modules: random networks and running the commands."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import gluon

from gluon_asymmnet import get_model
from gluon_asymmnet.deploy.sources import zoo_model
from gluon_asymmnet.model_zoo import file_sha1, model_store_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def randomized(name, classes=1000, seed=0, input_size=32):
    """A zoo net with random weights and random BatchNorm statistics (logits of order 1)."""
    mx.random.seed(seed)
    net = zoo_model(name, classes=classes, input_size=input_size)[0]
    rng = np.random.RandomState(seed)
    for param_name, param in net.collect_params().items():
        if param_name.endswith('running_var'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif param_name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.2, param.shape)))
    return net


def run_cli(module_or_script, *args):
    """Run a command of the package; return ``(exit status, stdout, stderr)``."""
    command = [sys.executable] + (['-m', module_or_script] if not module_or_script.endswith('.py')
                                  else [os.path.join(ROOT, module_or_script)])
    done = subprocess.run(command + [str(a) for a in args], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return done.returncode, done.stdout, done.stderr


def assert_one_line_error(status, stderr, *fragments):
    """Exit status 2, one ``error:`` line (MXNet's own log lines aside), no traceback."""
    assert status == 2, stderr
    assert 'Traceback' not in stderr
    lines = [line for line in stderr.strip().splitlines() if 'error:' in line]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def store_weights(name, classes):
    """Put weights of ``name`` for ``classes`` into the local model store; returns the net."""
    net = get_model(name, classes=classes)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    root = model_store_root()
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, 'tmp.params')
    net.save_parameters(tmp)
    os.rename(tmp, os.path.join(root, '%s-%s.params' % (name, file_sha1(tmp)[:8])))
    return net


def assert_backbone_gradients(params):
    """Every trainable parameter of ``params`` got a finite, non-zero gradient."""
    params = [param for param in params if param.grad_req != 'null']
    assert len(params) > 30
    for param in params:   # reading them runs the backward (a plain 4-D concat fails here)
        grad = param.grad().asnumpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, param.name


def export_and_reload(net, inputs, tmp_path):
    """Export the hybridized ``net`` after a call on ``inputs``; the reloaded graph's outputs."""
    expected = [o.asnumpy() for o in net(inputs)]
    prefix = str(tmp_path / 'detector')
    net.export(prefix)
    loaded = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    for got, want in zip(loaded(inputs), expected):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=0, atol=1e-6)
    return expected
