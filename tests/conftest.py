"""Shared test set-up: no test touches the user's model store; the two tiers of the suite.

``make test`` runs the fast tier, ``pytest -m "not slow and not fault"``: every test
but those marked ``slow`` (trainings, grids, distributed jobs: tens of seconds each)
and the fault suite (``tests/faults``, marked ``fault`` here). ``make test-all`` (and
CI) runs everything. Each test has a time limit (pytest-timeout): ``timeout`` in
setup.cfg for the fast tier, :data:`SLOW_TIMEOUT` seconds for slow and fault tests
unless one sets its own; a test past it fails with the stacks of its threads.
"""
import os

import pytest

#: Seconds a slow or fault test may take (some try a fault a dozen times on 2 loaded cores).
SLOW_TIMEOUT = 1200
_FAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'faults') + os.sep


def pytest_collection_modifyitems(items):
    """Mark the fault suite ``fault``; give slow and fault tests their longer time limit."""
    for item in items:
        if str(item.fspath).startswith(_FAULTS):
            item.add_marker(pytest.mark.fault)
        if (item.get_closest_marker('slow') or item.get_closest_marker('fault')) and \
                not item.get_closest_marker('timeout'):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def _private_model_store(tmp_path, monkeypatch):
    """Point MXNET_HOME at a fresh directory for every test."""
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    yield
