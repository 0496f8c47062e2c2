"""Fuzzing ``get_model``: random names and keyword arguments give a model or a clear error.

The contract: ``get_model`` either returns a network whose output has
``classes`` logits, or raises ``ValueError``/``TypeError`` (``FileNotFoundError``
for ``pretrained`` weights that are not in the store) with a message. Never
another exception type (an ``AssertionError``, ``MXNetError``, ``ZeroDivisionError``,
``KeyError``...), which a caller cannot tell from a bug.
"""
import mxnet as mx
from hypothesis import example, given, settings
from hypothesis import strategies as st

import faultlib
import gluon_asymmnet
from gluon_asymmnet import get_model

FAULT_NAME = 'get_model with random names and arguments'
NAMES = gluon_asymmnet.list_models() + ['asymmnet_large', 'asymmnet_small']
# near misses and junk
BAD_NAMES = st.one_of(
    st.sampled_from(NAMES).map(lambda name: name.replace('_', '-')),
    st.sampled_from(NAMES).map(lambda name: name + '_2'),
    st.sampled_from(NAMES).map(str.upper),
    st.text(max_size=20),
)
# MXNet's operator parameters are float32: subnormal values are out of scope
FLOATS = st.floats(width=32, allow_subnormal=False)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2000), FLOATS, st.text(max_size=5),
                   st.lists(st.integers(-1, 5), max_size=3))
KWARGS = st.fixed_dictionaries({}, optional={
    'classes': st.one_of(st.integers(-2, 20), VALUES),
    'dropout': st.one_of(st.floats(-1, 2, width=32, allow_subnormal=False), VALUES),
    'asymmrate': st.one_of(st.integers(-2, 4), VALUES),
    'last_gamma': VALUES,
    'shuffle_group': st.one_of(st.integers(-1, 8), VALUES),
    'pretrained': st.one_of(st.booleans(), st.text('0123456789abcdef', max_size=8)),
    'features_only': st.booleans(),
    'out_indices': st.one_of(st.lists(st.integers(-1, 6), max_size=4), VALUES),
    'no_such_argument': VALUES,
})
ALLOWED = (ValueError, TypeError, FileNotFoundError)
OUTCOMES = {'model': 'a working model with the classes asked for',
            'error': 'ValueError/TypeError/FileNotFoundError with a message',
            'unknown name': 'ValueError naming the closest models'}


def _call(name, kwargs):
    try:
        net = get_model(name, **kwargs)
    except ALLOWED as error:
        assert str(error).strip(), '%s(%r, %r) raised an empty %s' % (
            'get_model', name, kwargs, type(error).__name__)
        if kwargs.get('pretrained') and isinstance(error, FileNotFoundError):
            assert 'no weights' in str(error)
        return 'error'
    except Exception as error:   # noqa: BLE001 - the point of the test
        raise AssertionError('get_model(%r, **%r) raised %s: %s'
                             % (name, kwargs, type(error).__name__, error)) from error
    # a model came back: it must work, and have the classes asked for
    net.initialize(mx.init.Xavier())
    out = net(mx.nd.random.uniform(shape=(1, 3, 32, 32)))
    if not kwargs.get('features_only'):
        assert out.shape == (1, kwargs.get('classes', 1000)), (name, kwargs, out.shape)
    return 'model'


@settings(faultlib.FUZZ)
@given(name=st.sampled_from(NAMES), kwargs=KWARGS)
@example(name='asymmnet_small_0.35', kwargs={'classes': 0})
@example(name='asymmnet_small_0.35', kwargs={'classes': 3.5})
@example(name='asymmnet_small_0.35', kwargs={'dropout': float('nan')})
@example(name='asymmnet_large_0.35', kwargs={'asymmrate': True})
@example(name='mobilenetv2_asymm_0.35', kwargs={'shuffle_group': 0})
@example(name='asymmnet_small_0.35', kwargs={'features_only': True, 'out_indices': []})
@example(name='asymmnet_small_0.35', kwargs={'pretrained': True})
def test_get_model_random_arguments(trials, name, kwargs):
    trials.record(FAULT_NAME, OUTCOMES[_call(name, kwargs)], tool='get_model')


@settings(faultlib.FUZZ)
@given(name=BAD_NAMES, kwargs=KWARGS)
def test_get_model_random_names(trials, name, kwargs):
    if name in NAMES:
        return
    try:
        get_model(name, **kwargs)
    except ValueError as error:
        assert 'unknown model' in str(error) and repr(name) in str(error)
        trials.record(FAULT_NAME, OUTCOMES['unknown name'], tool='get_model')
        return
    raise AssertionError('get_model(%r) did not raise ValueError' % name)

