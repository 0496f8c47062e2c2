"""The child-process protocol of ``bench/timing.py`` (what it reports, not how fast)."""
import os
import sys
import textwrap

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bench')
sys.path.insert(0, BENCH)

from timing import medians_in_child  # noqa: E402

CHILD = '''
import os, sys
sys.path.insert(0, %r)
import mxnet as mx
from timing import serve_rounds

def broken():
    raise ValueError('no such backend: %%s' %% os.environ['WHAT'])

serve_rounds({'ones': lambda: (lambda: mx.nd.ones((4, 4)) * 2),
              'broken': broken}, warmup=1, number=2)
''' % BENCH


def write_child(tmp_path, text):
    path = tmp_path / 'child.py'
    path.write_text(textwrap.dedent(text))
    return [sys.executable, str(path)]


def test_medians_of_the_callables_that_built_and_the_failures_of_the_others(tmp_path):
    medians, failures = medians_in_child(write_child(tmp_path, CHILD), {'WHAT': 'tpu'},
                                         repeats=3)
    assert list(medians) == ['ones'] and medians['ones'] > 0
    assert failures == {'broken': 'no such backend: tpu'}


def test_a_child_that_builds_nothing_or_dies_is_an_error(tmp_path):
    nothing = CHILD.replace("'ones': lambda: (lambda: mx.nd.ones((4, 4)) * 2),", '')
    with pytest.raises(RuntimeError, match='no such backend: cpu'):
        medians_in_child(write_child(tmp_path, nothing), {'WHAT': 'cpu'})
    with pytest.raises(RuntimeError, match='exited with status 3'):
        medians_in_child(write_child(tmp_path, 'import sys; sys.exit(3)'))


def test_a_figure_whose_processes_disagree_is_unstable_not_summarised():
    import report
    from timing import across_processes, describe_spread
    steady = across_processes([1.25, 1.33, 1.28, 1.30], tolerance=0.10)
    assert steady['stable'] and steady['median'] == pytest.approx(1.29)
    assert describe_spread(steady) == '1.29x (1.25-1.33, 4 processes)'
    # a bimodal mix: two processes in the slow OpenMP mode
    bimodal = across_processes([0.58, 1.05, 1.09, 0.60], tolerance=0.10)
    assert not bimodal['stable'] and bimodal['median'] is None
    assert describe_spread(bimodal) == 'unstable (0.58-1.09, 4 processes)'
    # one process says nothing about the spread; nothing measured is empty
    assert across_processes([1.2])['median'] is None
    assert describe_spread(across_processes([])) == ''
    # the tolerance is a bound on highest / lowest - 1
    assert across_processes([1.0, 1.1], tolerance=0.1)['stable']
    assert not across_processes([1.0, 1.11], tolerance=0.1)['stable']
    table = report._by_width({'tolerance': 0.1, 'bound_margin': 0.05, 'by_width': [
        dict(arch='small', width='1.0', traffic=1.0, traffic_fused=1.09, traffic_concat=1.13,
             hybridized_b1=bimodal, hybridized_b32=0.97, outside_bound=[],
             unstable=['hybridized_b1']),
        dict(arch='large', width='1.0', traffic=1.0, traffic_fused=1.14, traffic_concat=1.17,
             hybridized_b1=steady, outside_bound=['hybridized_b1'], unstable=[])]})
    small, large = table.splitlines()[2:]
    assert '| 1.00x / 1.09x (1.13x) |' in small
    assert 'unstable (0.58-1.09, 4 processes)' in small and '0.83' not in small
    assert small.endswith('| unstable: hybridized_b1 |') and '0.97x' in small
    assert '1.29x (1.25-1.33' in large and large.endswith('| fail: hybridized_b1 |')


def test_each_backend_is_held_to_the_traffic_bound_of_how_it_runs():
    from inference import by_width
    from traffic import traffic_ratios
    bound = traffic_ratios('large', '1.0')
    assert bound['inference_fused'] > bound['inference'] * 1.05   # fusing removes what r=0 pays
    between = bound['inference'] * 1.05 + 0.01
    rows = {(backend, 32, 'large', '1.0'): dict(asymm_vs_r0=between)
            for backend in ('hybridized', 'onnxruntime')}
    row = by_width(rows, [], ['1.0'])[0]   # large, then small
    # MXNet runs every operator: held to the unfused bound; ONNX Runtime fuses: to the fused one
    assert row['outside_bound'] == ['hybridized_b32']
    assert (row['traffic'], row['traffic_fused']) == (bound['inference'], bound['inference_fused'])


def test_a_batch_32_ratio_whose_rounds_disagree_is_unstable():
    from inference import by_width
    from timing import across_processes, describe_spread
    rounds = across_processes([1.02, 1.31, 0.95, 1.10, 1.20], tolerance=0.10, unit='round')
    assert describe_spread(rounds) == 'unstable (0.95-1.31, 5 rounds)'
    steady = across_processes([1.02, 1.04, 1.03], tolerance=0.10, unit='round')
    assert describe_spread(steady) == '1.03x (1.02-1.04, 3 rounds)'
    rows = {('hybridized', 32, 'large', '1.0'): dict(asymm_vs_r0=1.1, asymm_vs_r0_rounds=rounds),
            ('onnxruntime', 32, 'large', '1.0'): dict(asymm_vs_r0=1.03,
                                                      asymm_vs_r0_rounds=steady)}
    row = by_width(rows, [], ['1.0'])[0]
    # the median of disagreeing rounds is no result: neither pass nor fail
    assert row['unstable'] == ['hybridized_b32'] and row['outside_bound'] == []
    assert row['onnxruntime_b32']['median'] == 1.03
