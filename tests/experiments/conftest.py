"""This area's tests run on one torch thread (see ``one_intra_op_thread`` in tests/conftest.py)."""
import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_intra_op_thread):
    yield
