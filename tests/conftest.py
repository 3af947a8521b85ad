import os
from pathlib import Path

import numpy as np
import pytest
import torch


def _shared_data() -> Path:
    env = os.environ.get("RLNAS_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (or $RLNAS_SHARED_DATA); skips when absent."""
    path = _shared_data()
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not found (set RLNAS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def nb201_table_path(shared_data) -> Path:
    path = shared_data / "nasbench201.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests use tiny tensors: one intra-op thread is faster than two, and far faster when the
    2-core machine is shared (oversubscribed threads make tiny convolutions 30-100x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_npz(path, n, seed=0, size=32, classes=10):
    """``n`` random CIFAR-style images (uint8 NHWC ``x``, int ``y``) as one .npz file."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
             y=rng.integers(0, classes, n))
    return path
