"""Parameter files saved by the original code load unchanged and give its logits."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_asymmnet import get_asymm_net, get_asymmnet_cfgs, get_model
from gluon_asymmnet.model_zoo import GHOSTNET_WIDTHS
from gluon_asymmnet.mxnet_private import structured_params
from gluon_asymmnet.models.ghostnet import GhostNet, ghostnet_config

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')

PARITY = os.path.join(FIXTURES, 'parity')
MANIFEST = json.load(open(os.path.join(PARITY, 'manifest.json')))


@pytest.mark.parametrize('case', MANIFEST['cases'], ids=lambda c: c['params_file'])
@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('formulation', ['auto', 'split', 'concat'])
def test_original_params_give_original_logits(case, hybridize, formulation):
    x = mx.nd.array(np.load(os.path.join(PARITY, MANIFEST['input_file'])))
    expected = np.load(os.path.join(PARITY, case['logits_file']))
    net = get_asymm_net(get_asymmnet_cfgs(case['model']), case['multiplier'],
                        asymmrate=case['asymmrate'], classes=case['classes'],
                        formulation=formulation)
    net.load_parameters(os.path.join(PARITY, case['params_file']))  # strict: every name matches
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    assert np.abs(net(x).asnumpy() - expected).max() <= 1e-6


def test_get_asymm_net_leaves_weights_to_the_zoo():
    with pytest.raises(TypeError):
        get_asymm_net(get_asymmnet_cfgs('asymmnet_small'), 0.5, pretrained=True)


@pytest.mark.parametrize('case', MANIFEST['cases'], ids=lambda c: c['params_file'])
def test_zoo_names_build_the_original_structure(case):
    name = '%s_%s' % (case['model'], case['multiplier'])
    net = get_model(name, classes=case['classes'])
    saved = mx.nd.load(os.path.join(PARITY, case['params_file']))
    ours = structured_params(net)
    assert sorted(ours) == sorted(saved)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in saved.items()}


@pytest.mark.parametrize('case', MANIFEST['ghostnet_cases'], ids=lambda c: c['params_file'])
@pytest.mark.parametrize('hybridize', [False, True])
def test_original_ghostnet_params_give_original_logits(case, hybridize):
    x = mx.nd.array(np.load(os.path.join(PARITY, case['input_file'])).astype(np.float32))
    expected = np.load(os.path.join(PARITY, case['logits_file']))
    config = ghostnet_config(case['width_scale'])._replace(
        final=case['final_block_channels'], classifier_mid=case['classifier_mid_channels'])
    net = GhostNet(config, classes=case['classes'], dropout=case['dropout'])
    net.load_parameters(os.path.join(PARITY, case['params_file']))  # strict: every name matches
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    assert np.abs(net(x).asnumpy() - expected).max() <= 1e-5


@pytest.mark.parametrize('width', GHOSTNET_WIDTHS)
def test_ghostnet_zoo_names_build_the_original_structure(width):
    with open(os.path.join(PARITY, MANIFEST['ghostnet_param_shapes_file'])) as f:
        original = {name: tuple(shape) for name, shape in json.load(f)[width].items()}
    net = get_model('ghostnet_' + width)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    assert {k: v.shape for k, v in structured_params(net).items()} == original
