"""Export to PREFIX-symbol.json/-0000.params (+ PREFIX-info.json) and reload."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_asymmnet.deploy.export import export_model
from gluon_asymmnet.deploy.runtime import load_exported
from gluon_asymmnet.model_zoo import IMAGENET_MEAN_RGB as MEAN_RGB, IMAGENET_STD_RGB as STD_RGB

from helpers import assert_one_line_error, randomized, run_cli


@pytest.mark.parametrize('name', ['asymmnet_large_1.0', 'asymmnet_small_0.35', 'ghostnet_0.5'])
def test_symbolblock_imports_gives_identical_logits(tmp_path, name):
    net = randomized(name, input_size=64)
    x = mx.nd.random.normal(shape=(2, 3, 64, 64))
    expected = net(x).asnumpy()
    prefix = str(tmp_path / 'net')
    files = export_model(net, prefix, 64)
    assert files == [prefix + '-symbol.json', prefix + '-0000.params', prefix + '-info.json']
    block = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                         prefix + '-0000.params')
    np.testing.assert_array_equal(block(x).asnumpy(), expected)
    graph = json.load(open(prefix + '-symbol.json'))
    ops = {node['op'] for node in graph['nodes']}
    assert 'Concat' in ops and not ops & {'amp_multicast', 'expand_dims'}   # plain 4-D concats
    assert all('-' not in node['attrs']['shape'] for node in graph['nodes']
               if node['op'] == 'Reshape')   # only shapes that ONNX can express
    info = json.load(open(prefix + '-info.json'))
    assert info['input_shape'] == [1, 3, 64, 64] and info['layout'] == 'CHW'
    assert info['classes'] == 1000 and len(info['synset']) == 1000
    assert info['mean'] == list(MEAN_RGB) and info['std'] == list(STD_RGB)
    assert not info['preprocess'] and info['model'] == name


def test_folded_preprocessing_takes_raw_hwc_images(tmp_path):
    net = randomized('asymmnet_small_0.35', classes=10)
    raw = np.random.RandomState(1).randint(0, 256, (2, 32, 32, 3)).astype(np.float32)
    normalised = (raw - np.array(MEAN_RGB)) / np.array(STD_RGB)
    expected = net(mx.nd.array(normalised.transpose(0, 3, 1, 2))).asnumpy()
    prefix = str(tmp_path / 'pre')
    export_model(net, prefix, 32, preprocess=True, layout='HWC')
    block, info = load_exported(prefix)
    assert info['input_shape'] == [1, 32, 32, 3] and info['preprocess']
    np.testing.assert_allclose(block(mx.nd.array(raw)).asnumpy(), expected, atol=1e-4)
    np.testing.assert_allclose(info.to_graph_input(normalised.transpose(0, 3, 1, 2)), raw,
                               atol=1e-3)


def fake_run_dir(folder, name='asymmnet_small_0.35', classes=10, input_size=32):
    """A run folder of gluon-asymmnet 0.1: ``args.json`` (the flags; read as the run's record)
    and ``<model>-best.params``."""
    os.makedirs(folder)
    net = randomized(name, classes=classes)
    net.save_parameters(os.path.join(folder, '%s-best.params' % name))
    args = dict(model=name, width_scale=None, dataset='digits', input_size=input_size,
                dropout=None, asymmrate=None, shuffle_group=None, last_gamma=False,
                data_dir=None, num_epochs=1, batch_size=32)   # as gluon-asymmnet 0.1 wrote it
    with open(os.path.join(folder, 'args.json'), 'w') as out:
        json.dump(args, out)
    return net


# the classes come from the head's last weight: output.0.weight (no bias in MobileNetV2),
# output.0.conv2.weight in GhostNet
@pytest.mark.slow
@pytest.mark.parametrize('name', ['asymmnet_small_0.35', 'mobilenetv2_asymm_0.35',
                                  'ghostnet_0.5'])
def test_cli_exports_a_training_run(tmp_path, name):
    net = fake_run_dir(str(tmp_path / 'run'), name)
    prefix = str(tmp_path / 'out' / 'digits')
    status, out, err = run_cli('gluon_asymmnet.export', '--run-dir', tmp_path / 'run',
                               '--prefix', prefix)
    assert status == 0, err
    assert out.split() == [prefix + '-symbol.json', prefix + '-0000.params', prefix + '-info.json']
    block, info = load_exported(prefix)
    assert info['synset'] == [str(d) for d in range(10)] and info['input_shape'] == [1, 3, 32, 32]
    x = mx.nd.random.normal(shape=(3, 3, 32, 32))
    np.testing.assert_allclose(block(x).asnumpy(), net(x).asnumpy(), atol=1e-6)


def test_cli_refuses_params_of_another_width(tmp_path):
    net = randomized('asymmnet_small_0.5', classes=10)
    params = str(tmp_path / 'half.params')
    net.save_parameters(params)
    status, _, err = run_cli('gluon_asymmnet.export', '--model', 'asymmnet_small_0.35',
                             '--params-file', params, '--prefix', tmp_path / 'x')
    assert_one_line_error(status, err, 'does not fit asymmnet_small_0.35',
                          'parameter features.4.expand.conv.weight has shape (32, 8, 1, 1)')
    assert not os.path.exists(str(tmp_path / 'x-symbol.json'))
