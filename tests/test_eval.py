"""eval.py: accuracy on RecordIO/folders/digits, top-5 of images, benchmark, bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from gluoncv.data import ImageNet1kAttr
from PIL import Image

from gluon_asymmnet.data import prepare_digits
from gluon_asymmnet.deploy.export import export_model
from gluon_asymmnet.deploy.runtime import serving_flags, zoo_predictor
from gluon_asymmnet.run_metrics import read_metrics
from helpers import assert_one_line_error, randomized, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return prepare_digits(str(tmp_path_factory.mktemp('digits')))


@pytest.fixture(scope='module')
def digits_params(tmp_path_factory):
    """A 10-class AsymmNet-S x0.35 saved with ``save_parameters``."""
    path = str(tmp_path_factory.mktemp('params') / 'digits.params')
    randomized('asymmnet_small_0.35', classes=10).save_parameters(path)
    return path


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    """A real photo (scikit-learn's sample image of a Chinese temple) as a JPEG."""
    from sklearn.datasets import load_sample_image
    path = str(tmp_path_factory.mktemp('photo') / 'china.jpg')
    Image.fromarray(load_sample_image('china.jpg')).save(path, quality=90)
    return path


@pytest.mark.parametrize('batch', [1, 32])
def test_evaluation_runs_the_fused_graph_with_the_unfused_logits(tmp_path, batch):
    """What eval.py runs on a CPU (the network hybridized for serving) is oneDNN's fused
    graph, and its logits are the plain hybridized network's to 1e-5 (of the largest),
    at batch 1 (the concatenated feature reuse) and 32 (split)."""
    import mxnet as mx
    path = str(tmp_path / 'net.params')
    plain = randomized('asymmnet_large_0.35', input_size=224)
    plain.save_parameters(path)
    plain.hybridize(static_alloc=True, static_shape=True)
    predictor = zoo_predictor('asymmnet_large_0.35', path, input_size=224)
    x = np.random.RandomState(0).uniform(-2, 2, (batch, 3, 224, 224)).astype(np.float32)
    expected = plain(mx.nd.array(x)).asnumpy()
    got = predictor(x)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert serving_flags([mx.cpu()])['backend'] == 'MKLDNN'
    assert serving_flags([mx.cpu(), mx.gpu(0)]).get('backend') is None   # not on a GPU


def evaluate_json(tmp_path, *args):
    out = tmp_path / 'result.json'
    status, stdout, err = run_cli('eval.py', *args, '--json', out)
    assert status == 0, err
    return json.load(open(out)), stdout


def test_recordio_and_folder_give_the_same_top1(tmp_path, digits, digits_params):
    model = ('--model', 'asymmnet_small_0.35', '--params-file', digits_params,
             '--input-size', 32, '--crop-ratio', 1.0, '-j', 1)
    from_rec, printed = evaluate_json(tmp_path, *model, '--rec-val', digits.val_rec,
                                      '--rec-val-idx', digits.val_idx)
    from_folder, _ = evaluate_json(tmp_path, *model, '--data-dir',
                                   digits.val_dir.rsplit('/', 1)[0])
    assert from_rec['num_images'] == from_folder['num_images'] == digits.num_val
    assert from_rec['top1'] == from_folder['top1']
    assert from_rec['confusion_matrix'] == from_folder['confusion_matrix']
    # the loss depends on every logit of every image: the two pipelines feed the same pixels
    assert from_rec['loss'] == pytest.approx(from_folder['loss'], rel=1e-6)
    assert 'top1=%.4f' % from_rec['top1'] in printed and 'confusion matrix' in printed


def test_json_report(tmp_path, digits, digits_params):
    result, _ = evaluate_json(tmp_path, '--model', 'asymmnet_small_0.35', '--params-file',
                              digits_params, '--dataset', 'digits', '--digits-root',
                              digits.val_dir.rsplit('/', 2)[0], '-j', 1)
    matrix = np.array(result['confusion_matrix'])
    assert matrix.shape == (10, 10) and matrix.sum() == digits.num_val
    assert result['top1'] == pytest.approx(np.trace(matrix) / digits.num_val)
    assert result['top1'] <= result['top5'] <= 1 and result['loss'] > 0
    assert result['images_per_sec'] > 0


@pytest.mark.slow
def test_image_of_a_real_photo_prints_five_imagenet_names(tmp_path, photo):
    params = str(tmp_path / 'imagenet.params')
    randomized('asymmnet_small_0.35').save_parameters(params)
    status, out, err = run_cli('eval.py', '--model', 'asymmnet_small_0.35', '--params-file',
                               params, '--image', photo)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == photo and len(lines) == 6
    names = set(ImageNet1kAttr().classes)
    for rank, line in enumerate(lines[1:], 1):
        label = line.strip().split(' ', 1)[1].rsplit(' (', 1)[0]
        assert line.strip().startswith('%d. ' % rank) and label in names


def test_image_names_come_from_the_exported_synset(tmp_path, photo):
    net = randomized('asymmnet_small_0.35', classes=10)
    net.classes = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
    export_model(net, str(tmp_path / 'digits'), 32)
    status, out, err = run_cli('eval.py', '--model-prefix', tmp_path / 'digits', '--image', photo)
    assert status == 0, err
    labels = [line.strip().split(' ')[1] for line in out.strip().splitlines()[1:]]
    assert len(labels) == 5 and set(labels) <= set(net.classes)


@pytest.mark.slow
def test_benchmark_prints_every_backend_with_ratios():
    status, out, err = run_cli('eval.py', '--benchmark', '--model', 'asymmnet_small_0.35',
                               '--compare', 'mobilenetv3_small', '--input-size', 32,
                               '--batch-size', 2, '--runs', 2)
    assert status == 0, err
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    backends = ['hybridized', 'imperative', 'mkldnn', 'symbolblock', 'onnxruntime', 'int8',
                'int8-onnxruntime']
    assert [row[1] for row in rows] == backends * 2
    assert [row[0] for row in rows] == ['asymmnet_small_0.35'] * 7 + ['mobilenetv3_small'] * 7
    assert rows[0][4] == rows[7][4] == '1.00x'


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors(tmp_path, digits, digits_params, photo):
    data = ('--dataset', 'digits', '--digits-root', digits.val_dir.rsplit('/', 2)[0], '-j', 1)
    half = str(tmp_path / 'half.params')
    randomized('asymmnet_small_0.5', classes=10).save_parameters(half)
    status, _, err = run_cli('eval.py', '--model', 'asymmnet_small_0.35', '--params-file', half,
                             *data)
    assert_one_line_error(status, err, 'does not fit asymmnet_small_0.35',
                          'parameter features.4.expand.conv.weight')
    status, _, err = run_cli('eval.py', '--model', 'asymmnet_large_0.35', '--params-file',
                             digits_params, *data)
    assert_one_line_error(status, err, 'does not fit asymmnet_large_0.35')

    prefix = str(tmp_path / 'exported')
    export_model(randomized('asymmnet_small_0.35', classes=10), prefix, 32)
    params = open(prefix + '-0000.params', 'rb').read()
    (tmp_path / 'exported-0000.params').unlink()
    status, _, err = run_cli('eval.py', '--model-prefix', prefix, *data)
    assert_one_line_error(status, err, 'exported-0000.params: no such file')
    (tmp_path / 'exported-0000.params').write_bytes(params[:len(params) // 2])
    status, _, err = run_cli('eval.py', '--model-prefix', prefix, *data)
    assert_one_line_error(status, err, 'not a readable MXNet parameter file')
    (tmp_path / 'exported-0000.params').write_bytes(params)
    (tmp_path / 'exported-symbol.json').write_text('{"nodes": [')
    status, _, err = run_cli('eval.py', '--model-prefix', prefix, *data)
    assert_one_line_error(status, err, 'not an MXNet symbol file')

    (tmp_path / 'broken.params').write_bytes(b'\x00' * 64)
    status, _, err = run_cli('eval.py', '--model', 'asymmnet_small_0.35', '--params-file',
                             tmp_path / 'broken.params', *data)
    assert_one_line_error(status, err, 'not a readable MXNet parameter file')

    (tmp_path / 'text.jpg').write_text('this is not an image')
    status, _, err = run_cli('eval.py', '--model', 'asymmnet_small_0.35', '--params-file',
                             digits_params, '--image', photo, tmp_path / 'text.jpg')
    assert_one_line_error(status, err, 'text.jpg: not an image')


@pytest.mark.slow
def test_eval_of_a_runs_own_export_reports_the_runs_accuracy(tmp_path):
    """No preprocessing flags: the run's export records its crop ratio (1, not the default
    0.875), input size and class names, and eval.py reads them."""
    status, _, err = run_cli('train_imagenet.py', '--dataset', 'digits', '--digits-root', tmp_path,
                             '--model', 'asymmnet_small_0.35', '--num-epochs', 2, '--batch-size',
                             64, '--lr', 0.2, '-j', 1, '--crop-ratio', 1, '--save-dir', tmp_path,
                             '--tag-name', 'run')
    assert status == 0, err
    run = os.path.join(str(tmp_path), 'asymmnet_small_0.35-run')
    with open(os.path.join(run, 'asymmnet_small_0.35-info.json')) as f:
        info = json.load(f)
    assert info['crop_ratio'] == 1 and info['input_shape'] == [1, 3, 32, 32]
    assert info['synset'] == [str(digit) for digit in range(10)]
    best = max(record['val_top1'] for record in read_metrics(os.path.join(run, 'metrics.jsonl')))
    prefix = os.path.join(run, 'asymmnet_small_0.35')
    status, out, err = run_cli('eval.py', '--model-prefix', prefix, '--dataset', 'digits',
                               '--digits-root', tmp_path, '-j', 1)
    assert status == 0, err
    assert 'top1=%.4f' % best in out


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_mxnet_loads_is_one_line(signum):
    """The package's __init__ hears signals before MXNet's seconds of importing."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'eval.py'), '--help'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(0.5)                     # the interpreter is up; MXNet is still importing
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130 and out == '', (process.returncode, out, err)
    assert err == 'eval.py: interrupted while loading; nothing was read or written\n', err
