"""Fixtures shared by this area's tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Small convolutions on a shared 2-core machine run many times faster on one thread than on
    two that contend with other processes; restore the setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
