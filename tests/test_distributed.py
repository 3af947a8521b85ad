"""torchrun with 2 gloo processes on CPU: same paths on every rank, same weights as one process
with the same global batch, resume across process counts."""
import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import write_npz
from rlnas.checkpoint import load_checkpoint
from rlnas.data import DeviceLoader

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed not available")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddpdata")
    write_npz(root / "train_1.npz", 80, seed=1)
    return root


def _args(root, out, *extra):
    return ["train", "nb201-cifar10", f"root={root}", "channels=4", "cells=1", "epochs=2",
            "batch=32", "data.nb201_half=false", "train.keep_every_epochs=1", *extra,
            "--out", str(out), "-q"]


def _run(args, nproc=1, script=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    target = [script] if script else ["-m", "rlnas"]
    if nproc == 1:
        cmd = [sys.executable, *target, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", *target, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _params(path):
    ck = load_checkpoint(path)
    names = {n for n, _ in _named_params()}
    return {k: v for k, v in ck["model"].items() if k in names}


def _named_params():
    from rlnas.spaces import get_space
    return get_space("nb201").supernet(channels=4, cells=1).named_parameters()


def _digests(run):
    return [r["path_digest"] for r in csv.DictReader(open(run / "metrics.csv"))]


def _close(a, b):
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize("grad_sync", ["coalesced", "ddp"])
def test_two_processes_match_one_process(tiny_data, tmp_path, grad_sync):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    _run(_args(tiny_data, ddp, f"train.grad_sync={grad_sync}"), nproc=2)
    # one process, same global batch, split into the same two parts by accumulation
    _run(_args(tiny_data, single, "train.accumulate=2"))
    # (a) same sequence of paths (the engine also checks across ranks every epoch)
    assert _digests(ddp) == _digests(single)
    # (b) same weights (BN running statistics are per process, as in the official DDP code)
    _close(_params(ddp / "ckpt" / "last.pt"), _params(single / "ckpt" / "last.pt"))
    losses = [float(r["loss"]) for r in csv.DictReader(open(ddp / "metrics.csv"))]
    ref = [float(r["loss"]) for r in csv.DictReader(open(single / "metrics.csv"))]
    np.testing.assert_allclose(losses, ref, rtol=1e-4)


def test_resume_with_a_different_number_of_processes(tiny_data, tmp_path):
    full = tmp_path / "full"
    _run(_args(tiny_data, full), nproc=2)
    # stop after epoch 1 (its kept checkpoint), then resume with ONE process
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.copy(cut / "ckpt" / "epoch_1.pt", cut / "ckpt" / "last.pt")
    _run(_args(tiny_data, cut, "train.accumulate=2"))
    _close(_params(full / "ckpt" / "last.pt"), _params(cut / "ckpt" / "last.pt"))
    # and the other way round: one process to epoch 1, then two processes
    one = tmp_path / "one"
    _run(_args(tiny_data, one, "train.accumulate=2"))
    shutil.copy(one / "ckpt" / "epoch_1.pt", one / "ckpt" / "last.pt")
    _run(_args(tiny_data, one, "train.accumulate=1"), nproc=2)
    _close(_params(full / "ckpt" / "last.pt"), _params(one / "ckpt" / "last.pt"))


def test_parts_partition_the_global_batch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (70, 8, 8, 3), dtype=np.uint8)
    loader = DeviceLoader(x, np.arange(70), 32, (0.5,) * 3, (0.2,) * 3, pad=2)
    for step in (0, 2):  # step 2 is the short last batch (6 images)
        xb, yb = loader.batch(step)
        parts = [loader.batch(step, p, 3) for p in range(3)]
        assert torch.equal(torch.cat([p[0] for p in parts]), xb)
        assert torch.equal(torch.cat([p[1] for p in parts]), yb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_a_cuda_process_of_a_torchrun_job_takes_its_local_gpu(monkeypatch):
    """Under torchrun with CUDA, rank r's device is cuda:LOCAL_RANK (the CUDA calls stubbed, the
    process group taken as joined): no GPU is needed to follow the path."""
    import rlnas.distributed as distributed
    picked = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "set_device", picked.append)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    dist, device = distributed.init_distributed("cuda")
    assert (dist.rank, dist.world) == (1, 2)
    assert device == torch.device("cuda", 1) and picked == [device]


def test_run_under_torchrun_and_a_clean_exit(tiny_data, tmp_path):
    # `rlnas run`: every process trains, rank 0 alone ranks and searches; and the gloo threads
    # are gone before exit (surviving ones intermittently aborted the interpreter's exit)
    script = tmp_path / "probe.py"
    script.write_text(
        "import glob, sys\n"
        "from rlnas.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "names = [open(f).read().strip() for f in glob.glob('/proc/self/task/*/comm')]\n"
        "print('gloo threads:', sum('gloo' in n for n in names))\n"
        "sys.exit(rc)\n")
    args = _args(tiny_data, tmp_path / "run", "epochs=1", "search.generations=2")
    res = _run(["run", *args[1:]], nproc=2, script=str(script))
    assert res.stdout.count("gloo threads: 0") == 2, res.stdout
    assert res.stdout.count("trained 1 epochs") == 1 and res.stdout.count("archs ranked") == 1
    assert (tmp_path / "run" / "ranking.csv").exists()
    assert (tmp_path / "run" / "result.json").exists()
