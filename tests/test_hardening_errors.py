"""Damaged run files are a one-line error naming the file, not a traceback (issue 18, item 4)."""
import json
import shutil

import pytest

from conftest import write_npz
from rlnas.cli import main

TINY = ["channels=4", "cells=1", "epochs=1", "batch=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "train_1.npz", 64, seed=0)
    run = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["train", "nb201-cifar10", f"root={root}", *TINY, "data.nb201_half=false",
                 "search.num_samples=20", "--out", str(run), "-q"]) == 0
    return run


@pytest.mark.parametrize("name,content", [
    ("config.yaml", b"\xac\x94\x00\xffjunk"),
    ("run.json", b"\x83\x91\x00\xffjunk"),
    ("run.json", b"[1, 2]"),
    ("run.json", b"{}"),
    ("run.json", json.dumps({"num_classes": "ten"}).encode()),
])
@pytest.mark.parametrize("command", ["rank", "search"])
def test_damaged_run_file_is_one_line(trained, tmp_path, capsys, name, content, command):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / name).write_bytes(content)
    capsys.readouterr()
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and name in err and err.startswith(f"rlnas {command}: error:")
