"""The paper's GPU recipe, checked on the CPU: AMP on several devices, float16 weights and
optimizer states, the export after AMP, validation and devices of several workers.

Two CPU contexts stand in for two GPUs, bfloat16 AMP for float16 AMP (MXNet has
no float16 GEMM on CPUs). AMP patches MXNet for the whole process, so the tests
that initialise it run in a fresh interpreter. ``make gpu-check`` runs the
recipe itself on GPUs.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_asymmnet import get_model
from gluon_asymmnet.data import prepare_digits
from gluon_asymmnet.deploy.runtime import zoo_predictor
from gluon_asymmnet.deploy.sources import run_dir_model, zoo_model
from gluon_asymmnet.errors import UsageError
from gluon_asymmnet.model_zoo import file_sha1, model_store_root
from gluon_asymmnet.train import main
from gluon_asymmnet.train.args import parse_args
from gluon_asymmnet.train.devices import LOCAL_RANK, LOCAL_WORKERS, training_devices
from gluon_asymmnet.train.loop import Job, validate
from gluon_asymmnet.train.main import build_job
from gluon_asymmnet.train.precision import Precision, make_trainer, match_optimizer_states

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = 'asymmnet_small_0.35'
TWO_DEVICES = [mx.cpu(0), mx.cpu(1)]


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('data')), size=32)


def train_argv(digits, save_dir, *extra):
    return ['--dataset', 'digits', '--digits-root', os.path.dirname(digits.train_rec),
            '--model', MODEL, '--batch-size', '16', '--num-epochs', '1',
            '--num-training-samples', '32', '-j', '1', '--save-dir', str(save_dir),
            '--log-interval', '1', '--lr', '0.05'] + list(extra)


def run_python(script, *args):
    """``script`` in a fresh interpreter; returns ``(exit status, stdout + stderr)``."""
    done = subprocess.run([sys.executable, '-c', textwrap.dedent(script)] + list(args),
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1'))
    return done.returncode, done.stdout + done.stderr


def test_amp_on_two_devices_skips_a_step_whose_gradients_overflow():
    """The trainer of train_imagenet.py, two devices, AMP: an inf on one device leaves the
    weights as they were (the kvstore would have applied it before AMP's check)."""
    status, out = run_python('''
        import mxnet as mx, numpy as np
        from mxnet import autograd, gluon
        from gluon_asymmnet.train import precision
        mode = precision.choose_precision('float32', True, on_gpu=False)
        precision.init_amp(mode)
        ctx = [mx.cpu(0), mx.cpu(1)]
        net = gluon.nn.Dense(4, in_units=8)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        trainer = precision.make_trainer(list(net.collect_params().values()), 'nag',
                                         {'learning_rate': 0.0, 'momentum': 0.9}, mode, 'device')
        before = net.weight.data(ctx[0]).asnumpy()
        parts = gluon.utils.split_and_load(mx.nd.ones((4, 8)), ctx)
        with autograd.record():
            losses = [net(x).sum() for x in parts]
            losses[1] = losses[1] * float('inf')      # this device's gradients overflow
            precision.backward(losses, trainer, mode)
        trainer.step(4)
        for device in ctx:
            assert np.array_equal(net.weight.data(device).asnumpy(), before), device
        with autograd.record():                       # the next, finite step is taken
            losses = [net(x).sum() for x in parts]
            precision.backward(losses, trainer, mode)
        trainer.set_learning_rate(0.1)
        trainer.step(4)
        after = net.weight.data(ctx[1]).asnumpy()
        assert np.isfinite(after).all() and not np.array_equal(after, before)
        print('update_on_kvstore', trainer._update_on_kvstore, trainer._kvstore.type)
    ''')
    assert status == 0, out
    assert 'update_on_kvstore False device' in out


def test_export_after_float16_amp_init(digits, tmp_path):
    """amp.init('float16') patches every convolution of the process; the run's export
    (rerunning a finished run re-exports it) must not run through them."""
    assert main(train_argv(digits, tmp_path)) == 0
    folder = os.path.join(str(tmp_path), MODEL + '-baseline')
    for suffix in ('-symbol.json', '-0000.params', '-info.json'):
        os.remove(os.path.join(folder, MODEL + suffix))
    status, out = run_python('''
        import sys
        from mxnet.contrib import amp
        amp.init('float16')
        from gluon_asymmnet.train import main
        sys.exit(main(sys.argv[1:]))
    ''', *train_argv(digits, tmp_path, '--resume', 'auto'))
    assert status == 0, out
    exported = mx.gluon.SymbolBlock.imports(os.path.join(folder, MODEL + '-symbol.json'),
                                            ['data'], os.path.join(folder, MODEL + '-0000.params'))
    assert exported(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 10)
    assert 'amp_cast' not in open(os.path.join(folder, MODEL + '-symbol.json')).read()


def _float16_file(path):
    """Save a network cast to float16, as a --dtype float16 run saves its weights."""
    net = get_model(MODEL, classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.cast('float16')
    net.save_parameters(str(path))
    saved = mx.nd.load(str(path))
    assert {array.dtype for array in saved.values()} == {np.float16, np.float32}
    return net


def _dtypes(net):
    return {param.data().dtype for param in net.collect_params().values()}


def test_float16_weights_load_as_float32_in_every_loader(digits, tmp_path):
    half = str(tmp_path / 'half.params')
    _float16_file(half)
    assert _dtypes(zoo_model(MODEL, half, input_size=32)[0]) == {np.float32}
    predictor = zoo_predictor(MODEL, half, input_size=32)              # eval.py --model
    assert predictor(np.zeros((1, 3, 32, 32), np.float32)).dtype == np.float32
    root = model_store_root()                              # get_model(pretrained=True)
    os.makedirs(root, exist_ok=True)
    shutil.copy(half, os.path.join(root, '%s-%s.params' % (MODEL, file_sha1(half)[:8])))
    assert _dtypes(get_model(MODEL, classes=10, pretrained=True)) == {np.float32}

    assert main(train_argv(digits, tmp_path)) == 0         # a run folder, export --run-dir
    folder = os.path.join(str(tmp_path), MODEL + '-baseline')
    shutil.copy(half, os.path.join(folder, MODEL + '-best.params'))
    assert _dtypes(run_dir_model(folder)[0]) == {np.float32}
    job, lock, _ = build_job(parse_args(train_argv(digits, tmp_path, '--tag-name', 'student',
                                                '--teacher', MODEL)))   # a teacher
    try:
        assert _dtypes(job.teacher) == {np.float32}
    finally:
        lock.release()
        job.run_dir.close()


def test_validation_of_a_batch_smaller_than_the_devices():
    net = get_model(MODEL, classes=10)
    net.initialize(mx.init.MSRAPrelu(), ctx=TWO_DEVICES)
    net.hybridize(static_alloc=True, static_shape=True)
    image = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    label = net(image).argmax(axis=1)
    batches = [(mx.nd.concat(image, image, image, dim=0), mx.nd.concat(label, label, label, dim=0)),
               (image, label)]                             # 3 images, then the last one
    job = Job(recipe=None, net_spec=None, input_spec=None, model=MODEL, net=net, trainer=None,
              loss_fn=None, precision=Precision('float32', None), ctx=TWO_DEVICES,
              train_data=None, val_data=batches, num_batches=0, batch_size=2, step_size=2,
              classes=10, teacher=None, start=(0, 0), best=(0.0, -1), rank=0, writes=True,
              run_dir=None, backbone=[], log_interval=1, save_frequency=0)
    top1, top5, loss = validate(job)
    assert (top1, top5) == (1.0, 1.0)
    logits = net(image).asnumpy()[0]       # every sample is this image: the mean is its loss
    expected = np.log(np.exp(logits - logits.max()).sum()) - (logits - logits.max())[
        int(label.asscalar())]
    assert loss == pytest.approx(float(expected), rel=1e-4)


def test_float16_network_and_trainer_and_amp_before_the_network(digits, tmp_path):
    """--dtype float16: convolutions in float16, BatchNorm in float32, float32 master weights;
    --amp: AMP is on before train_imagenet.py builds its network."""
    net = get_model(MODEL, classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.cast('float16')
    params = net.collect_params()
    convs = [p for name, p in params.items() if name.endswith('weight') and len(p.shape) == 4]
    norms = [p for name, p in params.items()
             if name.endswith(('gamma', 'beta', 'running_mean', 'running_var'))]
    assert convs and {p.data().dtype for p in convs} == {np.float16}
    assert norms and {p.data().dtype for p in norms} == {np.float32}
    trainer = make_trainer(list(params.values()), 'nag', {'learning_rate': 0.1},
                           Precision('float16', None), 'device')
    assert trainer._optimizer.multi_precision
    assert not make_trainer(list(params.values()), 'nag', {'learning_rate': 0.1},
                            Precision('float32', None), 'device')._optimizer.multi_precision

    status, out = run_python('''
        import sys
        from gluon_asymmnet import records
        from gluon_asymmnet.train import precision
        from gluon_asymmnet.train.args import parse_args
        from gluon_asymmnet.train.main import build_job
        build = records.get_model           # what NetSpec.build calls
        def get_model(*args, **kwargs):
            print('AMP on when the network is built:', precision.amp_patched())
            return build(*args, **kwargs)
        records.get_model = get_model
        job, lock, _ = build_job(parse_args(sys.argv[1:]))
        lock.release()
        print(job.precision, job.trainer._kvstore_params['update_on_kvstore'])
    ''', *train_argv(digits, tmp_path, '--amp'))
    assert status == 0, out
    assert 'AMP on when the network is built: True' in out
    assert "Precision(dtype='float32', amp='bfloat16') False" in out


class _Scale(gluon.HybridBlock):
    """``x * weight``: elementwise, so it trains in float16 on a CPU too."""

    def __init__(self, **kwargs):
        super(_Scale, self).__init__(**kwargs)
        self.weight = self.params.get('weight', shape=(1, 4), init=mx.init.Uniform(1))

    def hybrid_forward(self, F, x, weight):
        return F.broadcast_mul(x, weight)


def _trained_states(tmp_path, dtype):
    """A states file after two NAG steps in ``dtype``, and the weight then."""
    net = _Scale()
    net.initialize()
    net.cast(dtype)
    trainer = make_trainer(list(net.collect_params().values()), 'nag',
                           {'learning_rate': 0.1, 'momentum': 0.9}, Precision(dtype, None),
                           'device')
    for _ in range(2):
        with autograd.record():
            loss = net(mx.nd.ones((2, 4), dtype=dtype)).sum()
        loss.backward()
        trainer.step(2)
    path = str(tmp_path / ('%s.states' % dtype))
    trainer.save_states(path)
    return path, net.weight.data().copy()


def _resumed(states, weight, dtype):
    """The trainer of a run resumed in ``dtype`` from ``states`` after one more step, and its
    state as resumed."""
    net = _Scale()
    net.initialize()
    net.cast(dtype)
    net.weight.set_data(weight.astype(dtype))
    precision = Precision(dtype, None)
    trainer = make_trainer(list(net.collect_params().values()), 'nag',
                           {'learning_rate': 0.1, 'momentum': 0.9}, precision, 'device')
    trainer.load_states(states)
    match_optimizer_states(trainer, precision)
    (state,) = trainer._updaters[0].states.values()
    state = tuple(s.copy() for s in state) if isinstance(state, tuple) else state.copy()
    with autograd.record():
        loss = net(mx.nd.ones((2, 4), dtype=dtype)).sum()
    loss.backward()
    trainer.step(2)
    assert np.isfinite(net.weight.data().asnumpy()).all()
    return trainer, state


def test_resumed_optimizer_states_follow_the_dtype(tmp_path):
    states, weight = _trained_states(tmp_path, 'float32')
    trainer, (master, momentum) = _resumed(states, weight, 'float16')
    assert trainer._optimizer.multi_precision
    assert master.dtype == momentum.dtype == np.float32
    np.testing.assert_allclose(master.asnumpy(), weight.asnumpy(), rtol=1e-3)
    assert np.abs(momentum.asnumpy()).min() > 0          # the saved momentum, kept

    states, weight = _trained_states(tmp_path, 'float16')
    trainer, momentum = _resumed(states, weight, 'float32')
    assert not trainer._optimizer.multi_precision
    assert isinstance(momentum, mx.nd.NDArray) and momentum.dtype == np.float32


def test_local_workers_take_gpus_of_their_own():
    def worker(rank, workers=2):
        return {LOCAL_RANK: str(rank), LOCAL_WORKERS: str(workers)}
    assert training_devices(4, 'device', 8, worker(0)) == [mx.gpu(i) for i in range(4)]
    assert training_devices(4, 'device', 8, worker(1)) == [mx.gpu(i) for i in range(4, 8)]
    assert training_devices(0, 'device', 8, worker(1)) == [mx.cpu()]
    assert training_devices(2, 'nccl', 2, {}) == [mx.gpu(0), mx.gpu(1)]
    with pytest.raises(UsageError, match='for each of the 2 workers on this machine needs 8 '
                                         'GPUs, but MXNet sees 4: give --num-gpus 2'):
        training_devices(4, 'device', 4, worker(1))
    with pytest.raises(UsageError, match='--num-gpus 1, but MXNet sees 0 GPU'):
        training_devices(1, 'device', 0, {})


@pytest.mark.parametrize('command, args', [
    ('eval', ['--model', MODEL, '--dataset', 'digits']),
    ('export', ['--model', MODEL, '--params-file', 'x.params', '--prefix', 'out/m']),
    ('quantize', ['--model-prefix', 'm', '--out', 'q', '--dataset', 'digits']),
])
def test_gpus_without_a_gpu_is_one_line(capsys, monkeypatch, tmp_path, command, args):
    from gluon_asymmnet import evaluate, export, quantize
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'x.params').write_bytes(b'')
    entry = {'eval': evaluate.main, 'export': export.main, 'quantize': quantize.main}[command]
    for gpus, message in (('0', '--gpus 0, but MXNet sees 0 GPU(s) here'),
                          ('a', "--gpus must be distinct GPU ids such as 0 or 0,1, not 'a'")):
        if mx.context.num_gpus() and gpus == '0':
            continue   # a GPU machine: checked by make gpu-check
        with pytest.raises(SystemExit) as stop:
            entry(args + ['--gpus', gpus])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert message in err


def test_a_predictor_splits_its_batches_over_the_devices(tmp_path):
    path = str(tmp_path / 'net.params')
    net = get_model(MODEL, classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.save_parameters(path)
    batch = np.random.RandomState(0).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    one = zoo_predictor(MODEL, path, input_size=32)(batch)
    two = zoo_predictor(MODEL, path, input_size=32, ctx=TWO_DEVICES)
    np.testing.assert_allclose(two(batch), one, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(two(batch[:1]), one[:1], rtol=1e-4, atol=1e-5)
