"""Shared test set-up: no test touches the user's model store."""
import pytest


@pytest.fixture(autouse=True)
def _private_model_store(tmp_path, monkeypatch):
    """Point MXNET_HOME at a fresh directory for every test."""
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mxnet_home'))
    yield

