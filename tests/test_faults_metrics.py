"""metrics.csv and the checkpoints agree (issue 18, item 6), and a retraining's eval.csv by the
same rule: an epoch's row is logged only once its checkpoint is on disk, a resume removes rows
past its checkpoint saying so (one line on stderr), and a kill between a checkpoint and its row
loses no row. Faults are injected as in tests/test_faults.py, whose tiny run (3 epochs of 4
steps) and uninterrupted reference are reused: every faulty run, continued by the same
command, ends as the reference."""
import errno
import os
from pathlib import Path

import pytest
import torch

import rlnas.loop as loop
from conftest import NB201_ARCH
from rlnas.checkpoint import load_checkpoint
from rlnas.cli import main
from rlnas.pipeline.train import train_supernet
from test_faults import assert_same_run, metrics, reference, train  # noqa: F401 (a fixture)


def _full_disk_at(monkeypatch, run: Path, step: int):
    """torch.save of the run's checkpoint of ``step`` fails as on a full disk."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if Path(f).parent == run / "ckpt" and isinstance(obj, dict) and obj.get("step") == step:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def _epochs_logged(run: Path) -> list:
    path = run / "metrics.csv"
    return [int(r["epoch"]) for r in metrics(run)] if path.exists() else []


def _killed_before_row(monkeypatch, log: str, epoch: int):
    """A kill once the checkpoint of ``epoch`` is on disk, before its row of ``log``."""
    real_append = loop.append_csv_row

    def append(path, header, row):
        row = dict(zip(header, row))
        if Path(path).name == log and row["epoch"] == str(epoch):
            raise KeyboardInterrupt(f"killed after the checkpoint of epoch {epoch}")
        real_append(path, row, row.values())

    monkeypatch.setattr(loop, "append_csv_row", append)


@pytest.mark.parametrize("leftover", [False, True])
def test_a_full_disk_in_the_first_epoch_logs_no_row_without_its_checkpoint(
        leftover, reference, tmp_path, monkeypatch, capsys):
    """The issue's case: no checkpoint before the end of epoch 1, whose checkpoint write
    fails: no row of epoch 1 is left. A row an older rlnas left there is removed by the next
    (fresh) start, which says so."""
    run = tmp_path / "run"
    _full_disk_at(monkeypatch, run, 4)
    assert train(run, "train.ckpt_every_steps=0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no checkpoint was kept" in err, err
    assert _epochs_logged(run) == [] and not (run / "ckpt" / "last.pt").exists()
    monkeypatch.undo()
    if leftover:  # what the old order left: the row of an epoch no checkpoint holds
        (run / "metrics.csv").write_text((reference / "metrics.csv").read_text()
                                         .splitlines(keepends=True)[0] + (
            reference / "metrics.csv").read_text().splitlines(keepends=True)[1])
    assert train(run) == 0
    err = capsys.readouterr().err.strip()
    if leftover:
        assert err == (f"note: {run / 'metrics.csv'} logged 1 row(s) for which no checkpoint "
                       f"was kept: removed (training starts again from step 0)")
    else:
        assert err == ""
    assert_same_run(reference, run)


def test_a_full_disk_at_an_epoch_end_logs_only_the_epochs_checkpointed(reference, tmp_path,
                                                                        monkeypatch, capsys):
    run = tmp_path / "run"
    _full_disk_at(monkeypatch, run, 8)  # the end of epoch 2; last.pt holds step 7
    assert train(run) == 2
    capsys.readouterr()
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 7
    assert _epochs_logged(run) == [1]
    monkeypatch.undo()
    assert train(run) == 0
    assert capsys.readouterr().err == ""
    assert_same_run(reference, run)


def test_rows_past_the_checkpoint_are_removed_saying_so(reference, tmp_path, capsys):
    """A row logged before its checkpoint was safe (an older rlnas, then a kill or full disk):
    the resume removes it in one line on stderr and logs the epoch again."""
    from rlnas.config import load_config
    from test_faults import TINY
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_supernet(load_config("demo-digits", TINY), run, progress=False, stop_at_step=6)
    rows = (reference / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(rows[:3]))  # epochs 1 and 2; last.pt: step 6
    assert train(run) == 0
    assert capsys.readouterr().err.strip() == (
        f"note: {run / 'metrics.csv'} logged epoch 2, past the 1 epoch(s) of the checkpoint the "
        f"run continues from: removed (logged again as the run trains it)")
    assert_same_run(reference, run)


def test_a_kill_between_a_checkpoint_and_its_row_loses_no_row(reference, tmp_path, monkeypatch,
                                                              capsys):
    """The row of epoch 2 travels in its checkpoint: the resume logs it."""
    run = tmp_path / "run"
    _killed_before_row(monkeypatch, "metrics.csv", 2)
    with pytest.raises(KeyboardInterrupt):
        from rlnas.config import load_config
        from test_faults import TINY
        train_supernet(load_config("demo-digits", TINY), run, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 8
    assert _epochs_logged(run) == [1]
    assert train(run) == 0
    assert capsys.readouterr().err == ""
    assert_same_run(reference, run)


def _half_run(run: Path, stop_at_step: int):
    from rlnas.config import load_config
    from test_faults import TINY
    with pytest.raises(KeyboardInterrupt):
        train_supernet(load_config("demo-digits", TINY), run, progress=False,
                       stop_at_step=stop_at_step)


def test_a_log_moved_aside_lets_the_run_resume_and_reads_again(tmp_path, capsys):
    """The remedy a damaged log's error gives: move metrics.csv aside. The resumed run logs
    the epochs it trains, and that log reads as sound afterwards (a later resume, the notes)."""
    run = tmp_path / "run"
    _half_run(run, 6)  # epoch 1 done, last.pt mid-epoch 2
    (run / "metrics.csv").rename(tmp_path / "aside.csv")
    assert train(run) == 0
    assert _epochs_logged(run) == [2, 3]
    assert train(run) == 0  # the run is complete; its resume reads the log again
    assert capsys.readouterr().err == ""
    assert [r["epoch"] for r in loop.read_epoch_log(run / "metrics.csv", 3)[1]] == ["2", "3"]


def test_a_log_missing_an_epoch_the_checkpoint_holds_refuses_the_resume(tmp_path, capsys):
    """Appended to, a log without the row of an epoch the checkpoint completed would skip
    that epoch for good: refused, saying how to go on."""
    run = tmp_path / "run"
    _half_run(run, 10)  # epochs 1 and 2 done, last.pt mid-epoch 3 (it carries no row)
    rows = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(rows[:2]))  # the row of epoch 2 lost
    before = (run / "ckpt" / "last.pt").read_bytes()
    assert train(run) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"rlnas train: error: {run / 'metrics.csv'} is damaged: it logs epochs up "
                   f"to 1, but the checkpoint the run continues from completed 2; restore it, "
                   f"or move it aside to resume (the run then logs only the epochs it trains "
                   f"from here)")
    assert (run / "ckpt" / "last.pt").read_bytes() == before


# --- a retraining's eval.csv ------------------------------------------------------------------
RETRAIN = ["channels=4", "cells=1", "epochs=2", "batch=32", "eval.every_epochs=1",
           "train.ckpt_every_steps=1"]  # 2 epochs of 2 steps, a test evaluation after each


def retrain(root, out) -> int:
    return main(["retrain", "retrain-nb201-cifar10", NB201_ARCH, f"root={root}", *RETRAIN,
                 "--out", str(out), "-q"])


@pytest.fixture(scope="module")
def retrained(npz_root, tmp_path_factory):
    """The uninterrupted retraining."""
    out = tmp_path_factory.mktemp("retrain") / "reference"
    assert retrain(npz_root, out) == 0
    return out


def assert_same_retraining(a: Path, b: Path):
    """The same weights, eval.csv and summary as the uninterrupted retraining."""
    ca, cb = (load_checkpoint(p / "ckpt" / "last.pt")["model"] for p in (a, b))
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
    for name in ("eval.csv", "retrain.json"):
        assert (a / name).read_text() == (b / name).read_text(), name


def test_a_kill_between_a_checkpoint_and_its_evaluation_row_loses_no_row(
        retrained, npz_root, tmp_path, monkeypatch, capsys):
    """The test evaluation of epoch 1 travels in its checkpoint: the resume logs it (it was
    logged before the checkpoint, and a kill between them logged it twice)."""
    run = tmp_path / "run"
    _killed_before_row(monkeypatch, "eval.csv", 1)
    assert retrain(npz_root, run) == 130  # the CLI's exit on an interrupt
    monkeypatch.undo()
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 2
    assert not (run / "eval.csv").exists()
    capsys.readouterr()
    assert retrain(npz_root, run) == 0
    assert capsys.readouterr().err == ""
    assert_same_retraining(retrained, run)


def test_evaluation_rows_past_the_checkpoint_are_removed_saying_so(retrained, npz_root,
                                                                   tmp_path, capsys):
    """A row an older rlnas logged before its checkpoint was safe: the resume removes it in one
    line on stderr and evaluates the epoch again."""
    from rlnas.config import load_config
    from rlnas.pipeline.retrain import train_network
    run = tmp_path / "run"
    cfg = load_config("retrain-nb201-cifar10", [f"root={npz_root}", *RETRAIN])
    with pytest.raises(KeyboardInterrupt):
        train_network(cfg, NB201_ARCH, run, progress=False, stop_at_step=3)  # mid-epoch 2
    rows = (retrained / "eval.csv").read_text().splitlines(keepends=True)
    assert (run / "eval.csv").read_text() == "".join(rows[:2])
    (run / "eval.csv").write_text("".join(rows[:2]) + "2,99.0000,99.0000\n")
    assert retrain(npz_root, run) == 0
    assert capsys.readouterr().err.strip() == (
        f"note: {run / 'eval.csv'} logged epoch 2, past the 1 epoch(s) of the checkpoint the "
        f"run continues from: removed (logged again as the run trains it)")
    assert_same_retraining(retrained, run)


def test_a_fresh_retraining_removes_evaluations_no_checkpoint_holds(retrained, npz_root,
                                                                    tmp_path, monkeypatch,
                                                                    capsys):
    """A full disk at the first checkpoint: no evaluation row without it; rows an older rlnas
    left there are removed by the next (fresh) start, which says so."""
    run = tmp_path / "run"
    _full_disk_at(monkeypatch, run, 1)
    assert retrain(npz_root, run) == 2
    capsys.readouterr()
    assert not (run / "ckpt" / "last.pt").exists() and not (run / "eval.csv").exists()
    monkeypatch.undo()
    (run / "eval.csv").write_text("epoch,top1,top5\n1,10.0000,50.0000\n")
    assert retrain(npz_root, run) == 0
    err = capsys.readouterr().err.strip()
    assert f"note: {run / 'eval.csv'} logged 1 row(s) for which no checkpoint was kept" in err
    assert_same_retraining(retrained, run)


@pytest.mark.parametrize("damage", ["epoch,top1\n1,3.0\n", "epoch,top1,top5\n1,x,2\n",
                                    "epoch,top1,top5\n3,1.0,2.0\n"])
def test_a_damaged_evaluation_log_refuses_the_resume(damage, npz_root, tmp_path, capsys):
    from rlnas.config import load_config
    from rlnas.pipeline.retrain import train_network
    run = tmp_path / "run"
    cfg = load_config("retrain-nb201-cifar10", [f"root={npz_root}", *RETRAIN])
    with pytest.raises(KeyboardInterrupt):
        train_network(cfg, NB201_ARCH, run, progress=False, stop_at_step=3)
    (run / "eval.csv").write_text(damage)
    before = (run / "ckpt" / "last.pt").read_bytes()
    assert retrain(npz_root, run) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlnas retrain: error: {run / 'eval.csv'} is damaged") and \
        len(err.splitlines()) == 1, err
    assert (run / "ckpt" / "last.pt").read_bytes() == before
