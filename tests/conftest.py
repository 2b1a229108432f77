import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
