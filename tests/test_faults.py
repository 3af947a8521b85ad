"""Fault injection: kill -9 at random moments, a full disk, a read-only run, a diverged run; and
the logs (metrics.csv, a retraining's eval.csv) consistent with the checkpoints through them.

Runs on its own (``pytest tests/test_faults.py``, about half a minute on 2 cores; add
``-m slow`` for the same kills of real ``python -m rlnas`` processes, under a minute more). Every
run is `rlnas train demo-digits` on the CPU, shrunk to 128 images, C=4 and 3 epochs of 4 steps,
checkpointed every step. The promise checked: whatever happens, ``ckpt/last.pt`` is a whole,
loadable, finite checkpoint, the error is one line, and running the same command again ends with
exactly the weights, optimizer state and metrics of a run that was never interrupted.
"""
import csv
import errno
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest
import torch

import rlnas.loop as loop
from conftest import NB201_ARCH
from rlnas.checkpoint import load_checkpoint
from rlnas.cli import main
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.train import train_supernet

TINY = ["device=cpu", "channels=4", "subset=128", "batch=32", "epochs=3",
        "train.ckpt_every_steps=1"]
STEPS = 12  # 3 epochs x 128 / 32


def train(run, *extra) -> int:
    """`rlnas train demo-digits` with the tiny settings; the exit code."""
    return main(["train", "demo-digits", *TINY, *extra, "--out", str(run), "-q"])


def temps(run) -> list:
    """Temp files of interrupted atomic writes (``.NAME.xxxx.tmp``)."""
    return sorted(p.name for p in Path(run).rglob(".*.tmp"))


def metrics(run) -> list:
    rows = list(csv.DictReader(open(Path(run) / "metrics.csv")))
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")} for r in rows]


def assert_same_run(a, b):
    """Bitwise the same last checkpoint (weights, optimizer state, step) and metrics rows."""
    ca, cb = (load_checkpoint(Path(r) / "ckpt" / "last.pt") for r in (a, b))
    assert (ca["step"], ca["epoch"]) == (cb["step"], cb["epoch"])
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    for k in sa:
        assert torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]), k
    assert ca["optimizer"]["param_groups"] == cb["optimizer"]["param_groups"]
    assert metrics(a) == metrics(b)


def all_finite(ckpt) -> bool:
    tensors = list(ckpt["model"].values()) + [v for s in ckpt["optimizer"]["state"].values()
                                              for v in s.values() if torch.is_tensor(v)]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("faults") / "reference"
    assert train(run) == 0
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == STEPS
    return run


# ----------------------------------------------------------------------------------------------
# (a) kill -9
# ----------------------------------------------------------------------------------------------
SLOW_FSYNC = 0.02  # seconds added to each fsync of the child: a wider window inside each write


def _spawn_train(run, log) -> int:
    """Fork a process that runs `rlnas train` (a fork: no second interpreter start, and the
    same numerics as this process) and exits with its code."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)
        real_fsync = os.fsync

        def slow_fsync(f):  # between the temp file's last byte and its rename
            time.sleep(SLOW_FSYNC)
            real_fsync(f)

        os.fsync = slow_fsync
        code = train(run)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_9_at_random_moments_then_resume_is_the_uninterrupted_run(reference, tmp_path):
    run, log = tmp_path / "run", tmp_path / "child.log"
    ckpt = run / "ckpt"
    rng = random.Random(2024)
    kills, killed_in_write = 0, 0
    for attempt in range(12):
        left = set(temps(ckpt))  # by earlier kills, until a resume takes the lock
        pid = _spawn_train(run, log)
        # even attempts: inside this process's n-th checkpoint write, once its temp file exists;
        # odd ones: a random delay after its n-th write (n = 0: from its start), which lands in
        # startup, data loading, a step or a write
        in_write = attempt % 2 == 0
        nth, seen = rng.randint(1 if in_write else 0, 4), set()
        delay = 0.0 if in_write else rng.uniform(0.0, 0.3 if nth == 0 else 0.05)
        started, deadline, status = time.monotonic(), None, None
        while status is None and (deadline is None or time.monotonic() < deadline) \
                and time.monotonic() - started < 60:
            if deadline is None:
                seen.update(set(temps(ckpt)) - left)
                if len(seen) >= nth:
                    deadline = time.monotonic() + delay
            done, st = os.waitpid(pid, os.WNOHANG)
            status = st if done else None
            time.sleep(0.001)
        if status is not None:  # it finished: never refused by a dead process's lock
            assert os.waitstatus_to_exitcode(status) == 0, log.read_text()
            break
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert deadline is not None, f"no checkpoint write in 60 s\n{log.read_text()}"
        assert os.WIFSIGNALED(status), log.read_text()
        kills += 1
        killed_in_write += bool(set(temps(ckpt)) - left)
    else:
        _, status = os.waitpid(_spawn_train(run, log), 0)  # the last resume, left alone
        assert os.waitstatus_to_exitcode(status) == 0, log.read_text()
    assert kills >= 4 and killed_in_write >= 2, (kills, killed_in_write)
    assert_same_run(reference, run)
    assert temps(run) == []  # the resumes removed what the kills left half-written


@pytest.mark.slow
def test_kill_9_of_the_real_command_then_resume_is_the_uninterrupted_run(reference, tmp_path):
    """The same with `python -m rlnas train` processes (an interpreter start each: slow), each
    killed at a random moment after its first step."""
    run = tmp_path / "run"
    last = run / "ckpt" / "last.pt"
    cmd = [sys.executable, "-m", "rlnas", "train", "demo-digits", *TINY, "--out", str(run), "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        before = last.stat().st_mtime_ns if last.exists() else None
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        while proc.poll() is None and (last.stat().st_mtime_ns if last.exists() else None) \
                == before and time.monotonic() - started < 120:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err
        kills += proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert kills >= 3
    assert_same_run(reference, run)
    assert temps(run) == []


# ----------------------------------------------------------------------------------------------
# (b) a full disk, (c) a read-only run directory
# ----------------------------------------------------------------------------------------------
FAIL_AT_STEP = 6  # mid-epoch 2: last.pt holds step 5 when the write of step 6 fails


def _check_failed_write(run, code, err, before, reason):
    """One line naming the file and the reason; last.pt untouched and loadable; no temp file."""
    last = run / "ckpt" / "last.pt"
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.strip() == (f"rlnas train: error: cannot write {last}: {reason}; training stopped "
                           f"at step {FAIL_AT_STEP}: {last} (step {FAIL_AT_STEP - 1}) is intact "
                           f"and the same command resumes from it")
    assert last.read_bytes() == before
    assert load_checkpoint(last)["step"] == FAIL_AT_STEP - 1
    assert temps(run) == []


DISK_FULL = ("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing "
             "file data/0: file write failed")


# what torch 2.x really raised when a 600 KB tmpfs filled up during a checkpoint
DISK_FULL_AT_END = "[enforce fail at inline_container.cc:672] . unexpected pos 194752 vs 194640"


@pytest.mark.parametrize("error, reason", [
    (RuntimeError(DISK_FULL), DISK_FULL),
    (RuntimeError(DISK_FULL_AT_END), DISK_FULL_AT_END),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), os.strerror(errno.ENOSPC)),
], ids=["torch-runtime-error", "torch-unexpected-pos", "enospc"])
def test_a_full_disk_stops_cleanly_and_keeps_the_previous_checkpoint(error, reason, reference,
                                                                     tmp_path, monkeypatch,
                                                                     capsys):
    run = tmp_path / "run"
    last = run / "ckpt" / "last.pt"
    real_save, before = torch.save, []

    def full_disk(obj, f, *args, **kwargs):
        if Path(f).parent == last.parent and obj.get("step") == FAIL_AT_STEP:
            before.append(last.read_bytes())
            with open(f, "wb") as out:  # a few bytes get out, then the disk is full
                out.write(b"PK\x03\x04")
            raise error
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    code = train(run)
    _check_failed_write(run, code, capsys.readouterr().err, before[0], reason)
    monkeypatch.undo()
    assert train(run) == 0  # space freed: the same command resumes
    assert_same_run(reference, run)


@pytest.mark.parametrize("call", ["tempfile.mkstemp", "os.replace"])
def test_a_read_only_run_stops_cleanly_and_keeps_the_previous_checkpoint(call, reference,
                                                                         tmp_path, monkeypatch,
                                                                         capsys):
    """Tests run as root, whom chmod does not stop: here the run turns read-only (creating or
    renaming a file fails with EACCES) just before the checkpoint of step FAIL_AT_STEP."""
    run = tmp_path / "run"
    last = run / "ckpt" / "last.pt"
    module, name = call.split(".")
    target = {"tempfile": tempfile, "os": os}[module]
    real, real_save, before = getattr(target, name), loop.save_checkpoint, []

    def denied(*args, **kwargs):
        if before:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(*args, **kwargs)

    def save_checkpoint(path, payload):
        if Path(path) == last and payload["step"] == FAIL_AT_STEP:
            before.append(last.read_bytes())  # from here on the folder is read-only
        return real_save(path, payload)

    monkeypatch.setattr(target, name, denied)
    monkeypatch.setattr(loop, "save_checkpoint", save_checkpoint)
    code = train(run)
    _check_failed_write(run, code, capsys.readouterr().err, before[0], "Permission denied")
    monkeypatch.undo()
    assert train(run) == 0  # write access back: the same command resumes
    assert_same_run(reference, run)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders; the monkeypatched test covers it")
@pytest.mark.parametrize("folder", ["run", "ckpt"])
def test_a_really_read_only_run_is_a_clean_error(folder, reference, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_supernet(load_config("demo-digits", TINY), run, progress=False,
                       stop_at_step=FAIL_AT_STEP - 1)
    last = run / "ckpt" / "last.pt"
    before = last.read_bytes()
    locked = run if folder == "run" else run / "ckpt"
    locked.chmod(0o555)
    try:
        code = train(run)
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.fullmatch(rf"rlnas train: error: cannot write {re.escape(str(locked))}/\S+: "
                        rf"Permission denied.*", err), err
    assert last.read_bytes() == before
    assert train(run) == 0
    assert_same_run(reference, run)


# ----------------------------------------------------------------------------------------------
# (d) divergence
# ----------------------------------------------------------------------------------------------
DIVERGED = re.compile(r"rlnas train: error: training diverged at epoch (\d+), step (\d+): "
                      r"(.+) \(lr ([^)]+)\); kept the last finite checkpoint (\S+) \(step (\d+)\); "
                      r"lower train\.lr and use a new run directory")


def diverge(run, capsys, *extra):
    """Train with ``extra`` (a huge lr): exit code 2 and one line; its parsed fields."""
    assert train(run, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    m = DIVERGED.fullmatch(err)
    assert m, err
    return {"epoch": int(m[1]), "step": int(m[2]), "what": m[3], "lr": float(m[4]),
            "path": m[5], "kept": int(m[6]), "message": err}


@pytest.mark.parametrize("lr, every, what", [
    ("1000000.0", 1, r"\S+ is not finite"),  # the issue's run: a BatchNorm variance overflows
    ("300.0", 2, r"loss is nan"),
])
def test_a_diverged_run_stops_with_the_last_finite_checkpoint(lr, every, what, tmp_path,
                                                               capsys):
    """Exit code 2 and one line; last.pt is finite and is the state of the last checkpoint
    due before the bad step (not an older one); the diverged epoch is not logged."""
    run = tmp_path / "run"
    extra = [f"lr={lr}", f"train.ckpt_every_steps={every}"]
    d = diverge(run, capsys, *extra)
    last = run / "ckpt" / "last.pt"
    assert re.fullmatch(what, d["what"]) and d["path"] == str(last) and d["lr"] > 100
    assert d["kept"] == d["step"] - d["step"] % every > 0
    ckpt = load_checkpoint(last)
    assert ckpt["step"] == d["kept"] and all_finite(ckpt)
    ref = tmp_path / "ref"  # the same run interrupted right after that checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_supernet(load_config("demo-digits", TINY + extra), ref, progress=False,
                       stop_at_step=d["kept"])
    same = load_checkpoint(ref / "ckpt" / "last.pt")
    assert same["step"] == d["kept"]
    assert all(torch.equal(same["model"][k], ckpt["model"][k]) for k in ckpt["model"])
    rows = metrics(run) if (run / "metrics.csv").exists() else []
    assert [int(r["epoch"]) for r in rows] == list(range(1, d["epoch"]))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert temps(run) == []


def test_the_issues_diverged_run_stops_before_any_checkpoint(tmp_path, capsys):
    """`rlnas train demo-digits epochs=2 lr=1000000.0` exited 0 logging `loss nan`."""
    run = tmp_path / "run"
    assert train(run, "epochs=2", "lr=1000000.0", "train.ckpt_every_steps=0") == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"rlnas train: error: training diverged at epoch 1, step \d+: loss is "
                        r"nan \(lr 1e\+06\); no checkpoint was written before it; lower "
                        r"train\.lr and use a new run directory", err), err
    assert not (run / "ckpt" / "last.pt").exists() and not (run / "metrics.csv").exists()
    assert (run / "ckpt" / "init.pt").exists()


def test_reading_losses_back_every_few_steps_finds_the_same_step(tmp_path, capsys, monkeypatch):
    """CUDA reads the losses back every CUDA_CHECK_EVERY steps, not every step: on CPU with the
    same buffering (3: some reads before an epoch end; 5: only at epoch ends, 4 steps in the
    buffer), the same first non-finite step is named and the same checkpoint kept."""
    found = []
    for every in (1, 3, 5):
        monkeypatch.setattr(loop, "CPU_CHECK_EVERY", every)
        run = tmp_path / f"every{every}"
        d = diverge(run, capsys, "lr=300.0", "train.ckpt_every_steps=0")
        found.append((d["message"].replace(str(run), "RUN"),
                      load_checkpoint(run / "ckpt" / "last.pt")["model"]))
    assert "loss is nan" in found[0][0] and found[0][0].endswith("(step 4); lower train.lr and "
                                                                  "use a new run directory")
    for message, model in found[1:]:
        assert message == found[0][0]
        assert all(torch.equal(model[k], found[0][1][k]) for k in model)


def test_a_diverged_run_without_checkpoints_says_so():
    """run_loop as `rlnas demo` retrains cells with it: no checkpoint folder at all."""
    from rlnas.data import DeviceLoader
    from rlnas.loop import LoopSpec, run_loop
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.ReLU(), nn.Linear(16, 4))
    spec = LoopSpec(model=model, loader=DeviceLoader(x, y, 16, (0.5,) * 3, (0.25,) * 3, pad=0),
                    epochs=2, lr=1e10, lr_min=0.0, momentum=0.9, nesterov=True,
                    weight_decay=0.0, device=torch.device("cpu"), precision="fp32",
                    progress=False)
    with pytest.raises(RlnasError, match=r"^training diverged at epoch 1, step [1-3]: loss is "
                                         r"(nan|inf) \(lr 1e\+10\); lower the learning rate$"):
        run_loop(spec)


# === metrics.csv and eval.csv agree with the checkpoints ==========================================
# metrics.csv and the checkpoints agree (issue 18, item 6), and a retraining's eval.csv by the
# same rule: an epoch's row is logged only once its checkpoint is on disk, a resume removes rows
# past its checkpoint saying so (one line on stderr), and a kill between a checkpoint and its row
# loses no row. Faults are injected as above, and the tiny run (3 epochs of 4 steps) and its
# uninterrupted reference are reused: every faulty run, continued by the same command, ends as the
# reference.


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
        train_supernet(load_config("demo-digits", TINY), run, progress=False)
    monkeypatch.undo()
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 8
    assert _epochs_logged(run) == [1]
    assert train(run) == 0
    assert capsys.readouterr().err == ""
    assert_same_run(reference, run)


def _half_run(run: Path, stop_at_step: int):
    from rlnas.config import load_config
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
