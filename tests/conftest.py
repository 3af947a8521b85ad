import os
from pathlib import Path

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
