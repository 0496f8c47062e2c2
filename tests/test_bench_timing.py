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
