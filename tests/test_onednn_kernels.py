"""Training on a CPU runs none of oneDNN's slow reference kernels.

MXNet 1.9.1's oneDNN falls back to ``bnorm_ref`` (BatchNorm backward whose
input and gradient come in different blocked layouts) and ``pooling_v2:ref``
(the squeeze-excitation's global pooling backward), ~100x slower than their
jit kernels, in AsymmNet and MobileNetV3 training steps on AVX-512; the
training graphs avoid both (``gluon_asymmnet.models.layers``). oneDNN's own
log (``DNNL_VERBOSE=1``) names every kernel a step runs. (On a CPU without
AVX-512 the layouts agree anyway and the test passes trivially.)
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STEP = '''
import sys
import mxnet as mx
from mxnet import autograd, gluon
from gluon_asymmnet import get_model
net = get_model(sys.argv[1], classes=10)
net.initialize(mx.init.MSRAPrelu())
net.hybridize(static_alloc=True, static_shape=True)
trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01})
x, y = mx.nd.random.uniform(shape=(2, 3, 64, 64)), mx.nd.array([0, 1])
for _ in range(2):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    trainer.step(2)
    loss.wait_to_read()
'''

#: oneDNN reference kernels that dominated a training step before.
SLOW = ('bnorm_ref', 'pooling_v2,ref')


@pytest.mark.parametrize('name', ['asymmnet_large_1.0', 'mobilenetv3_large_1.0',
                                  'asymmnet_small_1.0', 'mobilenetv3_small_1.0'])
def test_training_step_runs_no_reference_kernel(name):
    env = dict(os.environ, PYTHONPATH=ROOT, DNNL_VERBOSE='1', OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', STEP, name], env=env, cwd=ROOT, timeout=300,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    executed = [line for line in out.splitlines() if line.startswith('dnnl_verbose,exec')]
    assert len(executed) > 100, out[-2000:]          # the log is there: the test can see
    slow = [line for line in executed if any(kernel in line for kernel in SLOW)]
    assert slow == [], '\n'.join(slow)
