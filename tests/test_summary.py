"""MAC and parameter counts against the original release."""
import os
import subprocess
import sys

import pytest

from gluon_asymmnet import get_model
from gluon_asymmnet.complexity import summary

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')

# (model, asymmrate) -> (MACs in millions, trainable parameters) at 224x224, 1000 classes.
EXPECTED = {
    ('asymmnet_large_1.0', 1): (216.92, 6076608), ('asymmnet_large_0.75', 1): (142.08, 4290672),
    ('asymmnet_large_0.5', 1): (67.24, 2844976), ('asymmnet_large_0.35', 1): (42.62, 2207376),
    ('asymmnet_small_1.0', 1): (57.67, 3131896), ('asymmnet_small_0.75', 1): (40.82, 2495128),
    ('asymmnet_small_0.5', 1): (20.59, 1964472), ('asymmnet_small_0.35', 1): (15.24, 1735032),
    ('asymmnet_large_1.0', 0): (216.59, None), ('asymmnet_small_1.0', 0): (56.91, None),
}


@pytest.mark.parametrize('name,rate', sorted(EXPECTED))
def test_counts_match_the_original(name, rate):
    net = get_model(name, asymmrate=rate)
    net.initialize()
    stats = summary(net)
    macs, trainable = EXPECTED[name, rate]
    assert round(stats.macs / 1e6, 2) == macs
    if trainable is not None:
        assert stats.trainable_params == trainable
    assert stats.params > stats.trainable_params  # BatchNorm running statistics

# GhostNet: trainable parameters counted by the original models/ghostnet.py at 224x224,
# 1000 classes (5,179,560 at x1.0); MACs ours (the GhostNet paper: 141M FLOPs at x1.0).
GHOSTNET_EXPECTED = {'ghostnet_1.3': (225.90, 7332401), 'ghostnet_1.0': (140.76, 5179560),
                     'ghostnet_0.75': (88.54, 4061312), 'ghostnet_0.5': (44.63, 3239624)}


@pytest.mark.parametrize('name', sorted(GHOSTNET_EXPECTED))
def test_ghostnet_counts_match_the_original(name):
    net = get_model(name)
    net.initialize()
    stats = summary(net)
    assert (round(stats.macs / 1e6, 2), stats.trainable_params) == GHOSTNET_EXPECTED[name]


def _reference_macs():
    """Non-zero MACs of every layer of the original tool's table (column 73-81)."""
    with open(os.path.join(FIXTURES, 'official-asymmnet-large-macc.txt')) as f:
        cells = [line[72:81].strip() for line in f if len(line) > 81]
    return sorted(float(c) for c in cells if 'E+' in c)


def test_layer_by_layer_macs_match_the_reference_table():
    net = get_model('asymmnet_large_1.0')
    net.initialize()
    ours = sorted(float('%.2E' % layer.macs) for layer in summary(net).layers if layer.macs)
    reference = _reference_macs()
    assert len(reference) == 64
    assert ours == reference
    kinds = {k: round(v / 1e6, 2) for k, v in summary(net).macs_by_kind().items()}
    assert kinds == {'pointwise': 188.58, 'depthwise': 22.92, 'vanilla': 5.42}  # the table's


def test_table_and_input_size():
    net = get_model('asymmnet_small_0.5', classes=10)
    net.initialize()
    small = summary(net, (1, 3, 32, 32))
    assert small.macs < summary(net).macs / 20  # about (224 / 32) ** 2, less the head
    text = small.table()
    assert 'Convolution' in text and 'Total MACs' in text and 'Trainable params' in text


def test_cli_prints_totals_and_the_papers_figure():
    out = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.summary',
                          'asymmnet_large_1.0', '--totals-only'],
                         capture_output=True, text=True, check=True).stdout
    assert '216.92M MACs, 6,076,608 trainable params' in out
    assert 'paper: 75.4% top-1' in out


def test_cli_rejects_unknown_model_in_one_line():
    proc = subprocess.run([sys.executable, '-m', 'gluon_asymmnet.summary', 'asymmnet_xl'],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0 and 'unknown model' in proc.stderr
