"""Fixtures shared by several test files."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors and networks: one torch thread is as fast, and far faster than two on a
    CPU shared with other jobs (oversubscription). Restored at the end of the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
