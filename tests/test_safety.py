"""Failures a hostile user provokes get a one-line error, exit status 2, and leave earlier results
as they were (issue 11): OS errors per command, the run lock, a diverged supernet, training on
the test set, and the smaller ones (export of a supernet run, a file given as a run, checkpoint
names that are paths, negative sizes, --trust-pickle)."""
import errno
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rlnas.cli
from conftest import NB201_ARCH, write_npz, write_params_table
from rlnas.cli import main
from rlnas.config import load_config
from rlnas.data import load_dataset, prepare_training_data
from rlnas.errors import RlnasError
from rlnas.files import LOCK_NAME
from rlnas.pipeline.retrain import check_test_data

TINY = ["channels=4", "cells=1", "epochs=1", "batch=32"]


# --- fixtures: one tiny supernet run (ranked, searched, evaluated) and one retraining (exported)
@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_params_table(tmp_path_factory.mktemp("table") / "nb201.csv")


@pytest.fixture(scope="module")
def supernet(npz_root, table, tmp_path_factory):
    run = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["train", "nb201-cifar10", f"root={npz_root}", *TINY, "data.nb201_half=false",
                 "search.num_samples=20", "search.report_top=3", "--out", str(run), "-q"]) == 0
    assert main(["rank", str(run)]) == 0
    assert main(["search", str(run), "--method", "random"]) == 0
    assert main(["evaluate", str(run), "--nasbench201", str(table), "--scorers", "params",
                 "-q"]) == 0
    return run


def retrain_argv(root, *extra):
    return ["retrain", "retrain-nb201-cifar10", NB201_ARCH, f"root={root}", *TINY, *extra, "-q"]


@pytest.fixture(scope="module")
def retrained(npz_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("retrained") / "run"
    assert main(retrain_argv(npz_root, "--out", str(run))) == 0
    assert main(["export", str(run)]) == 0
    return run


def copy_run(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def command_on_copy(command, supernet, retrained, npz_root, table, tmp_path):
    """(argv, run): ``command`` on a copy of the run it writes (the supernet run, or the
    retraining for export and retrain)."""
    run = copy_run(retrained if command in ("export", "retrain") else supernet, tmp_path)
    argv = {
        "rank": ["rank", str(run)],
        "search": ["search", str(run), "--method", "random"],
        "evaluate": ["evaluate", str(run), "--nasbench201", str(table), "--scorers", "params",
                     "-q"],
        "export": ["export", str(run)],
        "retrain": retrain_argv(npz_root, "--out", str(run)),
    }[command]
    return argv, run


def snapshot(folder: Path):
    """Every file's bytes (but the lock file's, which names its last holder)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rlnas {command}: error: "), err
    return err


# --- 1. OS errors: one line naming the path, exit 2, earlier results intact -------------------
def _raise_under(root: Path, exc_fn, original):
    """A replacement for ``original`` that fails for paths under ``root`` only."""
    def fake(*args, **kwargs):
        target = kwargs.get("dir", args[0] if args else "")
        if str(target).startswith(str(root)):
            raise exc_fn(str(target))
        return original(*args, **kwargs)
    return fake


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


FAULTS = {
    # mkstemp in a read-only folder, and on a full disk
    "read-only": lambda mp, root: mp.setattr(tempfile, "mkstemp", _raise_under(
        root, lambda p: PermissionError(errno.EACCES, "Permission denied", p), tempfile.mkstemp)),
    "disk-full": lambda mp, root: mp.setattr(tempfile, "mkstemp", _raise_under(
        root, lambda p: OSError(errno.ENOSPC, "No space left on device"), tempfile.mkstemp)),
    "rename": lambda mp, root: mp.setattr(os, "replace", _raise_under(
        root, lambda p: PermissionError(errno.EACCES, "Permission denied", p), os.replace)),
    "mkdir": lambda mp, root: mp.setattr(Path, "mkdir", _raise_under(
        root, lambda p: PermissionError(errno.EACCES, "Permission denied", p), Path.mkdir)),
    # the disk fills while the data is written (fsync is the last call that can say so; only
    # rlnas's atomic writes call it)
    "disk-full-on-write": lambda mp, root: mp.setattr(os, "fsync", _disk_full),
}


RUN_FAULTS = [(c, f) for c in ("rank", "search", "evaluate", "export", "retrain")
              for f in ("read-only", "disk-full", "disk-full-on-write", "rename")] + \
             [(c, "mkdir") for c in ("search", "evaluate", "export", "retrain")]


@pytest.mark.parametrize("command, fault", RUN_FAULTS)
def test_run_that_cannot_be_written(command, fault, supernet, retrained, npz_root, table,
                                    tmp_path, monkeypatch, capsys):
    argv, run = command_on_copy(command, supernet, retrained, npz_root, table, tmp_path)
    before = snapshot(run)
    FAULTS[fault](monkeypatch, run)
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert str(run) in err
    monkeypatch.undo()
    assert snapshot(run) == before


@pytest.mark.parametrize("command", ["evaluate", "export", "retrain"])
@pytest.mark.parametrize("out", ["file", "under-a-file", "read-only-parent"])
def test_bad_out(command, out, supernet, retrained, npz_root, table, tmp_path, monkeypatch,
                 capsys):
    argv, run = command_on_copy(command, supernet, retrained, npz_root, table, tmp_path)
    if command == "retrain":  # its --out is the run; here it is the bad folder
        argv = argv[:argv.index("--out")] + argv[argv.index("--out") + 2:]
    (tmp_path / "a_file").write_text("not a folder\n")
    target = {"file": tmp_path / "a_file", "under-a-file": tmp_path / "a_file" / "sub",
              "read-only-parent": tmp_path / "ro" / "out"}[out]
    if out == "read-only-parent":
        FAULTS["mkdir"](monkeypatch, tmp_path / "ro")
    before = snapshot(run)
    assert main(argv + ["--out", str(target)]) == 2
    err = one_line_error(capsys, command)
    assert str(target) in err and "Traceback" not in err
    assert snapshot(run) == before
    assert (tmp_path / "a_file").read_text() == "not a folder\n"
    assert not (tmp_path / "ro").exists()


def test_cli_turns_environment_errors_into_one_line(monkeypatch, capsys):
    """Whatever raises it (here `rlnas train`, whose modules are not tested here), an OS error or
    an out-of-memory error is one line with status 2; any other exception stays a traceback."""
    import rlnas.pipeline.train

    def fail(exc):
        def train_supernet(*a, **k):
            raise exc
        monkeypatch.setattr(rlnas.pipeline.train, "train_supernet", train_supernet)

    fail(PermissionError(errno.EACCES, "Permission denied", "/runs/x/metrics.csv"))
    assert main(["train", "demo-digits", "--out", "/runs/x"]) == 2
    assert one_line_error(capsys, "train") == \
        "rlnas train: error: /runs/x/metrics.csv: Permission denied"
    fail(MemoryError())
    assert main(["train", "demo-digits", "--out", "/runs/x"]) == 2
    assert "out of memory" in one_line_error(capsys, "train")
    fail(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert main(["train", "demo-digits", "--out", "/runs/x"]) == 2
    assert "CUDA out of memory" in one_line_error(capsys, "train")
    fail(ValueError("a bug"))
    with pytest.raises(ValueError):
        main(["train", "demo-digits", "--out", "/runs/x"])


# --- 2. one writer per run ---------------------------------------------------------------------
HOLDER = ("import sys, time\nfrom rlnas.files import run_lock\n"
          "with run_lock(sys.argv[1], 'train'):\n    print('locked', flush=True)\n"
          "    time.sleep(120)\n")


@pytest.mark.parametrize("command", ["rank", "search", "evaluate", "export", "retrain"])
def test_locked_run_is_refused_until_its_holder_dies(command, supernet, retrained, npz_root,
                                                     table, tmp_path, capsys):
    argv, run = command_on_copy(command, supernet, retrained, npz_root, table, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run)
        assert main(argv) == 2
        err = one_line_error(capsys, command)
        assert f"pid {holder.pid}" in err and "rlnas train" in err and str(run) in err
        assert snapshot(run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the flock with its holder: the lock file left behind is no obstacle
    assert (run / LOCK_NAME).exists()
    assert main(argv) == 0


# --- 3. a diverged supernet never replaces earlier results --------------------------------------
@pytest.mark.parametrize("command", ["rank", "search", "evaluate"])
def test_non_finite_weights_leave_results_intact(command, supernet, table, tmp_path, capsys):
    run = copy_run(supernet, tmp_path)
    last = run / "ckpt" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point() and v.numel() > 1)
    ckpt["model"][name][0] = float("nan")
    torch.save(ckpt, last)
    before = snapshot(run)
    argv = {"rank": ["rank", str(run)], "search": ["search", str(run), "--method", "random"],
            "evaluate": ["evaluate", str(run), "--nasbench201", str(table), "-q"]}[command]
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert "non-finite weights" in err and name in err
    assert snapshot(run) == before
    for f in ("ranking.csv", "result.json", "visited.csv", "evaluation.json"):
        assert f in before


# --- 4. no training on the test set -------------------------------------------------------------
def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.fixture
def overlap_root(tmp_path):
    """train_1.npz (64 images); test_1.npz holds 10 of them among 40."""
    x, y = _images(64, 0)
    np.savez(tmp_path / "train_1.npz", x=x, y=y)
    xt, yt = _images(40, 1)
    xt[::4], yt[::4] = x[:10], y[:10]
    np.savez(tmp_path / "test_1.npz", x=xt, y=yt)
    return tmp_path


@pytest.mark.parametrize("case", ["same-file", "overlap"])
def test_test_set_overlap_is_refused(case, overlap_root, tmp_path, capsys):
    if case == "same-file":  # the case: root= the test file, trained and tested on it
        args = [f"root={overlap_root / 'test_1.npz'}"]
        expect = [f"{overlap_root / 'test_1.npz'}", "data.root", "data.test_root"]
    else:
        args = [f"root={overlap_root}"]
        expect = ["10 of 40 test images (25.0%)", "train_1.npz", "test_1.npz", "data.test_root"]
    out = tmp_path / "rt"
    assert main(["retrain", "retrain-nb201-cifar10", NB201_ARCH, *args, *TINY,
                 "--out", str(out), "-q"]) == 2
    err = one_line_error(capsys, "retrain")
    for text in expect + ["data.allow_test_overlap=true"]:
        assert text in err
    assert not out.exists()  # refused before anything is written


def test_test_set_overlap_accepted_when_asked(overlap_root, tmp_path, capsys):
    import json
    out = tmp_path / "rt"
    assert main(["retrain", "retrain-nb201-cifar10", NB201_ARCH, f"root={overlap_root}", *TINY,
                 "data.allow_test_overlap=true", "--out", str(out), "-q"]) == 0
    assert "warning: 10 of 40 test images" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["test_images_in_training"] == 10


@pytest.mark.parametrize("subset, refused", [(50, False), (None, True)])
def test_darts_fast_layout(subset, refused, tmp_path):
    """benchmarks/darts_fast.sh trains on the first 10,000 images (train_1) of a CIFAR folder and
    tests on train_5 of the same folder: disjoint, accepted; all of train_* overlaps it."""
    for i in range(1, 6):
        write_npz(tmp_path / f"train_{i}.npz", 50, seed=10 + i)
    cfg = load_config("retrain-darts-cifar10", [f"root={tmp_path}", f"subset={subset or 'null'}",
                                                f"test_root={tmp_path / 'train_5.npz'}"])
    data, desc = prepare_training_data(cfg)
    test = load_dataset("cifar10", tmp_path / "train_5.npz", split="test")
    if refused:
        with pytest.raises(RlnasError, match=r"50 of 50 test images \(100.0%\)"):
            check_test_data(cfg["data"], data, desc, test)
    else:
        assert check_test_data(cfg["data"], data, desc, test) == 0


def test_every_retrain_preset_refuses_overlap_by_default():
    from rlnas.config import list_presets
    for name in (n for n in list_presets() if n.startswith("retrain-")):
        assert load_config(name)["data"]["allow_test_overlap"] is False, name
    example = Path(__file__).resolve().parents[1] / "examples" / "retrain-my_space.yaml"
    assert "allow_test_overlap: false" in example.read_text()


# --- 5. the smaller ones -----------------------------------------------------------------------
@pytest.mark.parametrize("with_arch_json", [False, True])
def test_export_of_a_supernet_run(with_arch_json, supernet, tmp_path, capsys):
    run = copy_run(supernet, tmp_path)
    if with_arch_json:  # an arch.json beside a supernet checkpoint (no 'arch' key in it)
        (run / "arch.json").write_text('{"arch": "%s"}\n' % NB201_ARCH)
    assert main(["export", str(run)]) == 2
    assert one_line_error(capsys, "export") == (
        f"rlnas export: error: {run} is a supernet run; export takes a retraining directory "
        f"(rlnas retrain PRESET {run} --out DIR makes one)")
    assert not (run / "export").exists()


@pytest.mark.parametrize("command", ["rank", "search", "evaluate", "export"])
def test_a_file_given_as_run(command, table, tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    argv = [command, str(f)] + (["--nasbench201", str(table)] if command == "evaluate" else [])
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert f"{f} is a file" in err and "not found" not in err


@pytest.mark.parametrize("command", ["rank", "search"])
@pytest.mark.parametrize("name", ["/etc/passwd", "../run/ckpt/last.pt", "ckpt/last.pt", "..",
                                  "sub\\last.pt", ""])
def test_checkpoint_must_be_a_file_name_in_ckpt(command, name, supernet, capsys):
    assert main([command, str(supernet), "--checkpoint", name]) == 2
    err = one_line_error(capsys, command)
    assert f"checkpoint {name!r} must be the name of a file in the run's ckpt/ folder" in err


def test_checkpoint_by_name_still_works(supernet, tmp_path):
    run = copy_run(supernet, tmp_path)
    assert main(["rank", str(run), "--checkpoint", "last.pt"]) == 0


@pytest.mark.parametrize("flag", ["--channels", "--cells", "--num-classes", "--image-size"])
def test_cost_refuses_non_positive_sizes(flag, capsys):
    assert main(["cost", NB201_ARCH, flag, "-3"]) == 2
    assert one_line_error(capsys, "cost") == f"rlnas cost: error: {flag} must be a positive integer"


def test_no_broken_symlinks_in_the_repository():
    root = Path(__file__).resolve().parents[1]
    broken = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("runs", "node_modules")]
        broken += [os.path.join(folder, n) for n in dirs + files
                   if os.path.islink(os.path.join(folder, n))
                   and not os.path.exists(os.path.join(folder, n))]
    assert not broken


# --- 6. nasbench201 convert --trust-pickle ------------------------------------------------------
@pytest.mark.parametrize("flag, expect", [([], False), (["--trust-pickle"], True)])
def test_convert_passes_trust_pickle(flag, expect, monkeypatch, tmp_path):
    import rlnas.nb201convert
    seen = {}

    def convert(source, out, **kwargs):
        seen.update(kwargs, source=source, out=out)
        return {"out": out, "rows": 0, "columns": [], "seconds": 0.0, "meta": out + ".meta.json"}

    monkeypatch.setattr(rlnas.nb201convert, "convert", convert)
    out = str(tmp_path / "t.csv")
    assert main(["nasbench201", "convert", "NAS-Bench-201-v1_1-096897.pth", "--out", out,
                 *flag]) == 0
    assert seen["trust_pickle"] is expect and seen["source"] == "NAS-Bench-201-v1_1-096897.pth"


def test_trust_pickle_is_documented(capsys):
    with pytest.raises(SystemExit):
        rlnas.cli.build_parser().parse_args(["nasbench201", "convert", "--help"])
    assert "arbitrary code execution" in " ".join(capsys.readouterr().out.split())


def test_converter_takes_trust_pickle():
    from rlnas.nb201convert import convert
    if "trust_pickle" not in inspect.signature(convert).parameters:
        pytest.skip("rlnas.nb201convert.convert has no trust_pickle yet (another change)")
    assert inspect.signature(convert).parameters["trust_pickle"].default is False


# --- issue 18, item 1: nothing read from a run file imports code ------------------------------
PAYLOAD = ("from pathlib import Path\n"
           "Path(__file__).with_name('payload-ran').write_text('ran')\n"
           "from rlnas.spaces import get_space\n"
           "SPACE = get_space('nb201')\n")


@pytest.fixture
def no_named_spaces(monkeypatch):
    """A process in which the user has named no user space yet."""
    import rlnas.spaces.registry
    monkeypatch.setattr(rlnas.spaces.registry, "_NAMED_BY_USER", set())
    for name in ("payload", "myspace"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def _payload_folder(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "payload.py").write_text(PAYLOAD)
    monkeypatch.chdir(work)
    return work


def _name_payload_in_config(run: Path):
    cfg = (run / "config.yaml").read_text().replace("space: nb201", "space: payload:SPACE")
    assert "payload:SPACE" in cfg
    (run / "config.yaml").write_text(cfg)


@pytest.mark.parametrize("command", ["rank", "search", "evaluate", "train"])
def test_run_config_naming_a_module_does_not_import_it(command, supernet, table, tmp_path,
                                                       monkeypatch, capsys, no_named_spaces):
    run = copy_run(supernet, tmp_path)
    work = _payload_folder(tmp_path, monkeypatch)
    _name_payload_in_config(run)
    argv = {"rank": ["rank", str(run)], "search": ["search", str(run)],
            "evaluate": ["evaluate", str(run), "--nasbench201", str(table)],
            "train": ["train", str(run), "-q"]}[command]
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert "'payload:SPACE'" in err and "--space payload:SPACE" in err
    assert not (work / "payload-ran").exists()


def test_retraining_checkpoint_naming_a_module_is_not_imported(retrained, tmp_path,
                                                               monkeypatch, capsys,
                                                               no_named_spaces):
    from rlnas.checkpoint import load_checkpoint, save_checkpoint
    run = copy_run(retrained, tmp_path)
    shutil.rmtree(run / "export")
    work = _payload_folder(tmp_path, monkeypatch)
    ckpt = load_checkpoint(run / "ckpt" / "last.pt")
    save_checkpoint(run / "ckpt" / "last.pt", dict(ckpt, space="payload:SPACE"))
    assert main(["export", str(run)]) == 2
    assert "--space payload:SPACE" in one_line_error(capsys, "export")
    assert not (work / "payload-ran").exists() and not (run / "export").exists()
    # named again by the user, the same space is imported and the export works
    assert main(["export", str(run), "--space", "payload:SPACE"]) == 0
    assert (work / "payload-ran").exists() and (run / "export" / "export.json").exists()


def test_exported_model_naming_a_module_is_not_imported(retrained, tmp_path, monkeypatch,
                                                         no_named_spaces):
    from rlnas.pipeline.export import load_exported_state
    work = _payload_folder(tmp_path, monkeypatch)
    saved = torch.load(retrained / "export" / "model.pt", weights_only=True)
    torch.save(dict(saved, space="payload:SPACE"), tmp_path / "model.pt")
    with pytest.raises(RlnasError, match=r"rlnas.allow_space\('payload:SPACE'\)"):
        load_exported_state(tmp_path / "model.pt")
    assert not (work / "payload-ran").exists()
    import rlnas
    rlnas.allow_space("payload:SPACE")
    assert isinstance(load_exported_state(tmp_path / "model.pt"), torch.nn.Module)


@pytest.mark.parametrize("spec", ["builtins:exit", "sys:exit", "builtins:breakpoint",
                                  "pdb:set_trace", "time:sleep", "builtins:print",
                                  "shutil:rmtree", "json:loads"])
def test_a_callable_that_is_not_a_space_is_never_called(spec, capsys, monkeypatch):
    monkeypatch.setattr(sys, "breakpointhook", lambda *a, **k: print("debugger"))
    assert main(["sample", spec]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert err.startswith("rlnas sample: error: ") and "is not a SearchSpace" in err


def test_a_declared_factory_and_a_space_class_are_called(tmp_path, monkeypatch, no_named_spaces):
    from rlnas.spaces import get_space
    (tmp_path / "myspace.py").write_text(
        "from rlnas.spaces import get_space, space_factory\n"
        "from rlnas.spaces.nb201 import NB201Space as SpaceClass\n"
        "@space_factory\ndef make():\n    return get_space('nb201')\n"
        "def undeclared():\n    raise SystemExit('called')\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    assert get_space("myspace:make").name == "myspace:make"
    assert sys.path == path_before  # the working folder is not put on the import path
    assert get_space("myspace:SpaceClass").name == "myspace:SpaceClass"
    with pytest.raises(RlnasError, match="marked @space_factory"):
        get_space("myspace:undeclared")


SHADOWS = ("json", "matplotlib", "yaml", "numpy")


def test_a_user_space_does_not_let_the_working_folder_shadow_modules(tmp_path):
    for name in SHADOWS:  # each would leave a marker file if it were imported
        (tmp_path / f"{name}.py").write_text(
            f"open({str(tmp_path / ('shadowed-' + name))!r}, 'w').write('x')\n"
            "raise SystemExit('shadowed')\n")
    (tmp_path / "myspace.py").write_text(
        "import json, matplotlib, yaml\nfrom rlnas.spaces import get_space\n"
        "SPACE = get_space('nb201')\n")
    code = ("from rlnas.cli import main\nimport sys\n"
            "rc = main(['sample', 'myspace:SPACE', '-n', '2'])\n"
            "import matplotlib.pyplot, json\nsys.exit(rc)\n")
    # -P: the interpreter itself puts no working folder on the path (as the `rlnas` script)
    proc = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert not [p.name for p in tmp_path.glob("shadowed-*")]
    assert str(tmp_path) not in proc.stdout


# --- issue 18, item 2: a refused folder is left as it was found ------------------------------
USER_FILES = {".env.local.tmp": "SECRET=1", ".my.backup.csv": "a,b\n", ".plot.v2.png": "png",
              "ckpt/.old.weights.tmp": "weights", "notes.txt": "mine"}


def user_folder(folder: Path, with_config: bool = False) -> Path:
    for name, text in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    if with_config:
        (folder / "config.yaml").write_text("space: nb201\nmine: true\n")
    return folder


def assert_untouched(folder: Path, before):
    assert snapshot(folder) == before
    assert not (folder / LOCK_NAME).exists()


@pytest.mark.parametrize("with_config", [False, True])
@pytest.mark.parametrize("command", ["train", "train-dot", "retrain"])
def test_refused_out_leaves_the_users_folder_as_it_was(command, with_config, npz_root, tmp_path,
                                                       monkeypatch, capsys):
    (tmp_path / "mine").mkdir()
    folder = user_folder(tmp_path / "mine", with_config)
    before = snapshot(folder)
    out = str(folder)
    if command == "train-dot":
        monkeypatch.chdir(folder)
        out = "."
    argv = (retrain_argv(npz_root, "--out", out) if command == "retrain" else
            ["train", "nb201-cifar10", f"root={npz_root}", *TINY, "--out", out, "-q"])
    assert main(argv) == 2
    assert "not an rlnas run" in one_line_error(capsys, argv[0])
    assert_untouched(folder, before)


@pytest.mark.parametrize("with_config", [False, True])
def test_evaluate_out_refuses_a_folder_of_other_files(with_config, supernet, table, tmp_path,
                                                      capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    user_folder(folder, with_config)
    before = snapshot(folder)
    assert main(["evaluate", str(supernet), "--nasbench201", str(table), "--scorers", "params",
                 "--out", str(folder), "-q"]) == 2
    assert "holds files rlnas did not write" in one_line_error(capsys, "evaluate")
    assert_untouched(folder, before)


def test_evaluate_out_reuses_its_own_folder(supernet, table, tmp_path):
    folder = tmp_path / "report"
    argv = ["evaluate", str(supernet), "--nasbench201", str(table), "--scorers", "params",
            "--out", str(folder), "-q"]
    assert main(argv) == 0 and main(argv) == 0
    assert (folder / "evaluation.json").exists()


def test_export_out_refuses_a_folder_of_other_files(retrained, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    user_folder(folder)
    (folder / "export.json").write_text('{"mine": true}')  # a user's file of that name
    before = snapshot(folder)
    assert main(["export", str(retrained), "--out", str(folder)]) == 2
    assert "holds files rlnas did not write" in one_line_error(capsys, "export")
    assert snapshot(folder) == before
    again = tmp_path / "again"
    assert main(["export", str(retrained), "--out", str(again)]) == 0
    assert main(["export", str(retrained), "--out", str(again)]) == 0  # its own: updated


def test_stale_temps_removed_only_when_rlnas_named_them(supernet, tmp_path):
    from rlnas.files import TEMP_PREFIX
    run = copy_run(supernet, tmp_path)
    stale = [run / f"{TEMP_PREFIX}ranking.csv.ab_c1234.csv", run / "ckpt" /
             f"{TEMP_PREFIX}last.pt.zz99zz99.tmp"]
    for p in stale:
        p.write_text("half-written")
    user_files = [run / ".my.backup.csv", run / ".env.local.tmp", run / "ckpt" / ".old.weights.tmp",
                  run / ".plot.v2.png"]
    for p in user_files:
        p.write_text("mine")
    assert main(["rank", str(run)]) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "mine" for p in user_files)


def test_atomic_write_temp_names_are_recognisable(tmp_path, monkeypatch):
    from rlnas.files import atomic_write, is_temp_name
    seen = []
    atomic_write(tmp_path / "metrics.csv", lambda tmp: (seen.append(Path(tmp).name),
                                                        Path(tmp).write_text("x")), suffix=".csv")
    assert len(seen) == 1 and is_temp_name(seen[0]), seen
    for name in USER_FILES:
        assert not is_temp_name(Path(name).name)


def test_two_threads_on_one_run_refused_as_two_processes(tmp_path):
    import threading

    from rlnas.files import run_lock
    inside, release = threading.Event(), threading.Event()

    def hold():
        with run_lock(tmp_path, "train"):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(10)
    try:
        with pytest.raises(RlnasError, match="is in use by"):
            with run_lock(tmp_path, "rank"):
                pass
    finally:
        release.set()
        t.join(10)
    with run_lock(tmp_path, "rank"):  # free again once the first thread is done
        pass
