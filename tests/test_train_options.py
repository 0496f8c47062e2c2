"""The training options change what the step computes (not only that a run finishes).

Each test builds the job ``train_imagenet.py`` would run (``build_job``), takes
one batch of the digits and runs the real step (``loop._train_batch``), then
checks its outputs and loss against the option's definition.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluon_asymmnet.data import batches, prepare_digits
from gluon_asymmnet.train.args import parse_args
from gluon_asymmnet.train.loop import SMOOTHING_ETA, _train_batch
from gluon_asymmnet.train.main import build_job
from helpers import store_weights

MODEL = 'asymmnet_small_0.35'
CLASSES = 10


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('data')), size=32)


@pytest.fixture
def make_job(digits, tmp_path):
    locks = []

    def make(*flags):
        args = parse_args(['--rec-train', digits.train_rec, '--rec-train-idx', digits.train_idx,
                           '--model', MODEL, '--input-size', '32', '--batch-size', '8',
                           '--num-epochs', '2', '-j', '1', '--save-dir', str(tmp_path),
                           '--tag-name', 'job%d' % len(locks), '--lr', '0.1',
                           '--warmup-epochs', '0', '--dropout', '0', '--mode', 'imperative']
                          + list(flags))
        job, lock, _ = build_job(args)
        locks.append(lock)
        data, label = next(iter(batches(job.train_data)))
        return job, data, label
    yield make
    for lock in locks:
        lock.release()


def _cross_entropy(logits, targets):
    """Per-sample cross-entropy of logits against probability targets (numpy)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(targets * log_probs).sum(axis=1)


def _one_hot(label, eta=0.0):
    targets = np.full((len(label), CLASSES), eta / CLASSES)
    targets[np.arange(len(label)), label.astype(int)] += 1 - eta
    return targets


def _training_forward(net, data):
    with autograd.train_mode():
        return net(data).asnumpy()


def test_label_smoothing_trains_against_smoothed_targets(make_job):
    for flags, eta in (([], 0.0), (['--label-smoothing'], SMOOTHING_ETA)):
        job, data, label = make_job(*flags)
        outputs, _, loss_sum = _train_batch(job, data, label, epoch=0)
        expected = _cross_entropy(outputs[0].asnumpy(), _one_hot(label.asnumpy(), eta)).sum()
        assert loss_sum == pytest.approx(expected, rel=1e-4)


def test_mixup_mixes_images_and_targets(make_job):
    job, data, label = make_job('--mixup', '--mixup-off-epoch', '1')
    params = job.net.collect_params().values()
    weights = [p.data().copy() for p in params]
    np.random.seed(7)   # the step draws its mixing weight as GluonCV's recipe does
    lam = np.random.beta(job.recipe.mixup_alpha, job.recipe.mixup_alpha)
    np.random.seed(7)
    outputs, _, loss_sum = _train_batch(job, data, label, epoch=0)
    logits = outputs[0].asnumpy()
    for param, value in zip(params, weights):   # the weights before the step's update
        param.set_data(value)
    mixed = _training_forward(job.net, lam * data + (1 - lam) * data[::-1])
    np.testing.assert_allclose(logits, mixed, rtol=1e-4, atol=1e-5)
    assert not np.allclose(logits, _training_forward(job.net, data), atol=1e-3)
    targets = lam * _one_hot(label.asnumpy()) + (1 - lam) * _one_hot(label.asnumpy()[::-1])
    assert loss_sum == pytest.approx(_cross_entropy(logits, targets).sum(), rel=1e-4)


def test_mixup_stops_at_mixup_off_epoch(make_job):
    job, data, label = make_job('--mixup', '--mixup-off-epoch', '1')
    raw = _training_forward(job.net, data)
    outputs, _, loss_sum = _train_batch(job, data, label, epoch=1)   # the last epoch: no mixup
    np.testing.assert_allclose(outputs[0].asnumpy(), raw, rtol=1e-4, atol=1e-5)
    expected = _cross_entropy(raw, _one_hot(label.asnumpy())).sum()
    assert loss_sum == pytest.approx(expected, rel=1e-4)


def _zero_gradient_step(job, data):
    with autograd.record():
        loss = job.net(data).sum() * 0
    loss.backward()
    job.trainer.step(len(data))


def test_no_wd_takes_batchnorm_and_biases_out_of_weight_decay(make_job):
    """A step with zero gradients changes a parameter by its weight decay alone."""
    for flags, decays in (([], True), (['--no-wd'], False)):
        job, data, _ = make_job('--wd', '0.1', '--momentum', '0', *flags)
        params = job.net._collect_params_with_prefix()
        for name, param in params.items():   # zero-initialised: nothing to decay
            if name.endswith(('bias', 'beta')):
                param.set_data(mx.nd.ones(param.shape))
        before = {name: p.data().asnumpy() for name, p in params.items()}
        _zero_gradient_step(job, data)
        changed = {name: not np.array_equal(p.data().asnumpy(), before[name])
                   for name, p in params.items() if p.grad_req != 'null'}
        for suffix in ('gamma', 'beta', 'bias'):
            decayed = [changed[n] for n in changed if n.endswith(suffix)]
            assert decayed and all(decayed) == decays and any(decayed) == decays
        assert all(changed[n] for n in changed if n.endswith('conv.weight'))


def test_teacher_distils_its_softened_predictions(make_job):
    from gluoncv.loss import DistillationSoftmaxCrossEntropyLoss
    store_weights('asymmnet_small_0.5', CLASSES)
    job, data, label = make_job('--teacher', 'asymmnet_small_0.5', '--temperature', '4',
                                '--hard-weight', '0.25')
    soft = mx.nd.softmax(job.teacher(data) / 4)
    outputs, _, loss_sum = _train_batch(job, data, label, epoch=0)
    expected = DistillationSoftmaxCrossEntropyLoss(temperature=4, hard_weight=0.25)(
        outputs[0], label, soft).sum().asscalar()
    assert loss_sum == pytest.approx(float(expected), rel=1e-4)
    plain = _cross_entropy(outputs[0].asnumpy(), _one_hot(label.asnumpy())).sum()
    assert abs(loss_sum - plain) > 1e-3 * abs(plain)
