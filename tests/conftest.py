import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# an NB201 cell of every op kind (and a none edge): the arch the retraining tests train
NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+"
              "|skip_connect~0|none~1|avg_pool_3x3~2|")


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


@pytest.fixture(scope="module")
def npz_root(tmp_path_factory):
    """A CIFAR-style data folder of random images: 64 train (train_1.npz), 40 test (test_1.npz)."""
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "train_1.npz", 64, seed=0)
    write_npz(root / "test_1.npz", 40, seed=1)
    return root


def pytest_collection_modifyitems(config, items):
    """``needs_shared_data`` on every test that reads ../shared/data (through the ``shared_data``
    fixture, directly or not), so that ``-m "not slow and not needs_shared_data"`` runs the
    rest."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_shared_data)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests use tiny tensors: one intra-op thread is faster than two, and far faster when the
    2-core machine is shared (oversubscribed threads make tiny convolutions 30-100x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def benchmark_script(name):
    """The module of ``benchmarks/<name>.py`` (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_npz(path, n, seed=0, size=32, classes=10):
    """``n`` random CIFAR-style images (uint8 NHWC ``x``, int ``y``) as one .npz file."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
             y=rng.integers(0, classes, n))
    return path


def write_params_table(path, offsets=(("cifar10_test", 80),)):
    """An NB201 ground truth that is a function of the params count (``offset + 10 x M params``
    per column): no scorer can beat the params baseline on it."""
    from rlnas.spaces import get_space
    space = get_space("nb201")
    archs = space.enumerate()
    params = space.cost(archs)["params"]
    path.write_text("arch," + ",".join(c for c, _ in offsets) + "\n" + "".join(
        f"{space.to_str(tuple(a))}," + ",".join(f"{o + 10 * p:.4f}" for _, o in offsets) + "\n"
        for a, p in zip(archs, params)))
    return path


def reference_variants(parts):
    """Slow, explicit reference for every angle variant (``rlnas.angle.VARIANTS``).

    ``parts`` lists an arch's vector path by path as the official code builds it: tuples
    (label, cell, v0, vT), label ``"fixed"`` for the fixed tensors and a piece label such as
    ``(edge, op)`` otherwise; an arch with no valid path has no parts. A piece's own vector is
    its tensors concatenated over the cells that hold it (one copy per cell); its multiplicity is
    how often it occurs in one such cell."""
    from rlnas.angle import angle_between

    def cat(items, k):
        return torch.cat([p[k].reshape(-1).double() for p in items]) if items else \
            torch.zeros(0, dtype=torch.float64)

    cells = [p for p in parts if p[0] != "fixed"]
    pieces = {}
    for label, cell, v0, vT in cells:
        per_cell = pieces.setdefault(label, {})
        per_cell.setdefault(cell, []).append((label, cell, v0, vT))
    theta, count, moved = {}, {}, {}
    for label, per_cell in pieces.items():
        first = [occ[0] for occ in per_cell.values()]
        theta[label] = angle_between(cat(first, 2), cat(first, 3))
        moved[label] = float(torch.linalg.vector_norm(cat(first, 3) - cat(first, 2)))
        count[label] = len(next(iter(per_cell.values())))
    n_occ = sum(count.values())
    return {
        "angle": angle_between(cat(parts, 2), cat(parts, 3)),
        "angle_cell": angle_between(cat(cells, 2), cat(cells, 3)),
        "angle_mean": (sum(theta[k] * count[k] for k in theta) / n_occ) if n_occ else 0.0,
        "angle_sum": (sum(theta.values()) / np.sqrt(len(theta))) if theta else 0.0,
        "distance": float(np.sqrt(sum(d * d for d in moved.values()))),
        "distance_sum": (sum(moved.values()) / np.sqrt(len(moved))) if moved else 0.0,
    }
