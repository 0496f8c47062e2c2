"""Zoo look-up, GluonCV registration, the local model store and feature maps."""
import os
import shutil

import gluoncv
import mxnet as mx
import numpy as np
import pytest

from gluon_asymmnet import AsymmBottleneck, get_model, list_models
from gluon_asymmnet.model_zoo import file_sha1, list_aliases, model_file, model_store_root
from gluon_asymmnet.models.ghostnet import GHOSTNET


def test_list_models_filters_with_wildcards():
    assert list_models('asymmnet_large_*') == ['asymmnet_large_0.35', 'asymmnet_large_0.5',
                                               'asymmnet_large_0.75', 'asymmnet_large_1.0']
    assert list_models('nothing*') == []


def test_aliases_build_width_one():
    assert get_model('asymmnet_large').multiplier == 1.0
    assert get_model('asymmnet_small').multiplier == 1.0
    assert get_model('ghostnet').config == GHOSTNET
    assert list_aliases() == {'asymmnet_large': 'asymmnet_large_1.0',
                              'asymmnet_small': 'asymmnet_small_1.0', 'ghostnet': 'ghostnet_1.0'}


def test_unknown_name_names_the_closest_ones():
    with pytest.raises(ValueError, match="asymmnet_small_0.5"):
        get_model('asymmnet_smal_0.5')


def test_every_name_and_alias_resolves_in_gluoncv():
    names = list_models() + sorted(list_aliases())
    assert {'asymmnet_large', 'ghostnet', 'ghostnet_0.5', 'mobilenetv2_asymm_1.0'} <= set(names)
    for name in names:
        net = gluoncv.model_zoo.get_model(name, classes=3)
        assert repr(net) == repr(get_model(name, classes=3)), name   # the same network
    for name in list_models('asymmnet_*') + list_models('mobilenetv2_asymm_*'):
        net = gluoncv.model_zoo.get_model(name, classes=3)
        assert net.num_classes == 3 and net.asymmrate == 1
    assert gluoncv.model_zoo.get_model('mobilenetv3_large_0.5').asymmrate == 0
    assert gluoncv.model_zoo.get_model('ghostnet', classes=3).num_classes == 3


def _depthwise_widths(net):
    return [(block.expand.conv._channels if block.do_expand else block.num_in,
             block.dw_conv.conv._channels) for block in net.features
            if isinstance(block, AsymmBottleneck)]


def test_asymmrate_zero_is_mobilenetv3():
    """No input reuse: every depthwise convolution sees exactly what the expansion gives."""
    for net in (get_model('mobilenetv3_small_1.0'), get_model('asymmnet_small_1.0', asymmrate=0)):
        assert all(expanded == depthwise for expanded, depthwise in _depthwise_widths(net))
    reusing = _depthwise_widths(get_model('asymmnet_small_1.0'))
    assert any(expanded < depthwise for expanded, depthwise in reusing)


def _store_weights(root, name, classes=1000):
    net = get_model(name, classes=classes)
    net.initialize(mx.init.Xavier())
    tmp = os.path.join(str(root), 'tmp.params')
    os.makedirs(str(root), exist_ok=True)
    net.save_parameters(tmp)
    path = os.path.join(str(root), '%s-%s.params' % (name, file_sha1(tmp)[:8]))
    os.rename(tmp, path)
    return net, path


def test_pretrained_loads_from_the_local_store_and_attaches_imagenet_names(tmp_path):
    net, path = _store_weights(tmp_path, 'asymmnet_small_0.35')
    loaded = get_model('asymmnet_small_0.35', pretrained=True, root=str(tmp_path))
    x = mx.nd.ones((1, 3, 32, 32))
    np.testing.assert_allclose(loaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-6)
    assert len(loaded.classes) == 1000 and len(loaded.synset) == 1000
    tag = os.path.basename(path).split('-')[1][:8]
    assert model_file('asymmnet_small_0.35', tag, str(tmp_path)) == path


def test_default_store_follows_mxnet_home(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    assert model_store_root() == str(tmp_path / 'home' / 'models')
    _store_weights(tmp_path / 'home' / 'models', 'asymmnet_small_0.35')
    assert get_model('asymmnet_small_0.35', pretrained=True) is not None


def test_missing_weights_say_which_file_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        get_model('asymmnet_large_1.0', pretrained=True, root=str(tmp_path))
    message = str(err.value)
    assert 'asymmnet_large_1.0-<sha1[:8]>.params' in message and str(tmp_path) in message
    assert 'gluon_asymmnet.convert' in message


def test_corrupt_weights_are_refused(tmp_path):
    _, path = _store_weights(tmp_path, 'asymmnet_small_0.35')
    with open(path, 'r+b') as f:
        f.seek(100)
        f.write(b'garbage')
    with pytest.raises(ValueError, match='corrupt'):
        get_model('asymmnet_small_0.35', pretrained=True, root=str(tmp_path))


def test_renamed_weights_of_another_width_are_refused(tmp_path):
    _, path = _store_weights(tmp_path, 'asymmnet_small_0.35')
    wrong = path.replace('small_0.35', 'small_0.5')
    shutil.copy(path, wrong)
    with pytest.raises(Exception, match='shape|Shape'):
        get_model('asymmnet_small_0.5', pretrained=True, root=str(tmp_path))


@pytest.mark.parametrize('name', list_models('asymmnet_*') + list_models('mobilenetv2_asymm_*')
                         + list_models('ghostnet_*'))
def test_features_only_gives_strides_4_to_32(name):
    net = get_model(name, features_only=True)
    net.initialize()
    net.hybridize()
    outs = net(mx.nd.ones((1, 3, 224, 224)))
    assert [o.shape[2] for o in outs] == [56, 28, 14, 7]
    assert [o.shape[1] for o in outs] == [f['channels'] for f in net.feature_info]
    assert [f['reduction'] for f in net.feature_info] == [4, 8, 16, 32]


def test_feature_channels_of_asymmnet_large():
    net = get_model('asymmnet_large_1.0', features_only=True, out_indices=(0, 2, 4))
    assert [(f['reduction'], f['channels']) for f in net.feature_info] == \
        [(2, 16), (8, 40), (32, 960)]
    with pytest.raises(ValueError, match='out_indices'):
        get_model('asymmnet_large_1.0', features_only=True, out_indices=(5,))


def test_feature_channels_of_ghostnet():
    net = get_model('ghostnet_1.0', features_only=True, out_indices=(0, 1, 2, 3, 4))
    assert [(f['reduction'], f['channels']) for f in net.feature_info] == \
        [(2, 16), (4, 24), (8, 40), (16, 112), (32, 960)]
    net.initialize()
    outs = net(mx.nd.ones((1, 3, 96, 128)))   # any size: global pooling, no 7x7 window
    assert [o.shape[1:] for o in outs] == [(16, 48, 64), (24, 24, 32), (40, 12, 16),
                                          (112, 6, 8), (960, 3, 4)]


@pytest.mark.parametrize('kwargs, named', [
    ({'width_scale': 0.5}, 'width_scale= '), ({'width_mult': 0.5}, 'width_mult= '),
    ({'multiplier': 0.5}, 'multiplier= ')])
def test_a_width_keyword_says_the_width_is_in_the_name(kwargs, named):
    with pytest.raises(TypeError) as error:
        get_model('asymmnet_small_0.5', **kwargs)
    message = str(error.value)
    assert named.strip() in message and 'asymmnet_small_<width>' in message, message


def test_keywords_and_names_a_model_does_not_take_are_named():
    with pytest.raises(TypeError, match='ghostnet_0.5 does not take asymmrate='):
        get_model('ghostnet_0.5', asymmrate=1)
    with pytest.raises(ValueError, match='shuffle_group must be >= 0'):
        get_model('asymmnet_small_0.5', shuffle_group=-2)
    with pytest.raises(ValueError, match='a model name is a str'):
        get_model(None)
