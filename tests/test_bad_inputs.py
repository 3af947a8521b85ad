"""Bad input, grouped by where it comes in: the Python API's arguments, the command line's
arguments, damaged or edited run files, counts and sizes, and faults in a user's own space code.
Every case must end in an RlnasError (API) or one error line and a non-zero exit (CLI): never a
traceback, never an exit 0 with nonsense (issue 18, items 3, 4 and 5)."""
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the demo digits ship with scikit-learn

import rlnas  # noqa: E402
from conftest import NB201_ARCH, write_npz  # noqa: E402
from rlnas.cli import main  # noqa: E402
from rlnas.config import load_config  # noqa: E402
from rlnas.errors import RlnasError  # noqa: E402

TINY = {"epochs": 1, "model.channels": 4, "data.subset": 128}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained supernet run (NB201 on the demo digits), ranked once."""
    out = tmp_path_factory.mktemp("bad-inputs") / "run"
    trained = rlnas.train("demo-digits", out, overrides=TINY, progress=False)
    trained.rank()
    return trained


def copy_run(path, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


def files(folder):
    """Every file's bytes but the lock's (it names its last holder and when it started)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".rlnas.lock"}


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"rlnas {command}: error: "), err
    return err


# --- the Python API's arguments ----------------------------------------------------------------
API_CASES = {
    "open_run(123)": (lambda run: rlnas.open_run(123), "must be a path"),
    "open_run(None)": (lambda run: rlnas.open_run(None), "must be a path"),
    "train(out=123)": (lambda run: rlnas.train("demo-digits", out=123), "out must be a path"),
    "train(123)": (lambda run: rlnas.train(123), "config must be a path"),
    "train(overrides=5)": (lambda run: rlnas.train("demo-digits", out="x", overrides=5),
                           "overrides must be a mapping"),
    "load_config(None)": (lambda run: rlnas.load_config(None), "config must be a path"),
    "get_scorer(123, run)": (lambda run: rlnas.get_scorer(123, run), "scorer name must be"),
    "get_scorer(run=123)": (lambda run: rlnas.get_scorer("params", 123), "run must be a path"),
    "get_scorer(seed='x')": (lambda run: rlnas.get_scorer("params", seed="x"),
                             "seed must be an integer"),
    "search(seed='x')": (lambda run: run.search(seed="x"), "seed must be an integer"),
    "search(seed=-1)": (lambda run: run.search(seed=-1), r"seed must be an integer in \[0, "),
    "search(seed=1.5)": (lambda run: run.search(seed=1.5), "seed must be an integer"),
    "search(method=3)": (lambda run: run.search(method=3), "method must be"),
    "search(scorer=[])": (lambda run: run.search(scorer=[]), "scorer must be"),
    "rank(scorer=123)": (lambda run: run.rank(scorer=123), "scorer must be"),
    "rank(out=1)": (lambda run: run.rank(out=1), "out must be a path"),
    "ranking(scorer=1)": (lambda run: run.ranking(scorer=1), "scorer must be"),
    "result(1)": (lambda run: run.result(1), "name must be"),
    "evaluate(scorers=123)": (lambda run: rlnas.evaluate([run], "t.csv", scorers=123),
                              "scorers must be"),
    "evaluate(runs=123)": (lambda run: rlnas.evaluate(123, "t.csv"), "runs must be"),
    "evaluate(sample='x')": (lambda run: rlnas.evaluate(run, "t.csv", sample="x"),
                             "sample must be an integer"),
    "evaluate(out=5)": (lambda run: rlnas.evaluate(run, "t.csv", out=5), "out must be a path"),
    "scorer(short genome)": (lambda run: rlnas.get_scorer("params", space="nb201")([[0, 0, 0]]),
                             "genomes of 6 integers"),
    "cost(short genome)": (lambda run: rlnas.get_space("nb201").cost([[0, 0, 0]]),
                           "genomes of 6 integers"),
    "cost(gene out of range)": (lambda run: rlnas.get_space("nb201").cost([[9] * 6]),
                                "not a nb201 arch"),
    "cost(float genes)": (lambda run: rlnas.get_space("nb201").cost([[0.5] * 6]),
                          "genomes of 6 integers"),
    "darts cost(short genome)": (lambda run: rlnas.get_space("darts").cost([[0] * 27]),
                                 "genomes of 28 integers"),
    "cost(ragged rows)": (lambda run: rlnas.get_space("nb201").cost([[0] * 6, [0] * 5]),
                          "rows of different lengths"),
    "evaluate(columns=5)": (lambda run: rlnas.evaluate(run, "t.csv", columns=5),
                            "columns must be"),
    "evaluate(proxy=5)": (lambda run: rlnas.evaluate(run, "t.csv", proxy=5),
                          "proxy must be a dict"),
    "retrain(arch=5)": (lambda run: rlnas.retrain("retrain-nb201-cifar10", 5), "arch must be"),
    "retrain(out=5)": (lambda run: rlnas.retrain("retrain-nb201-cifar10", "x", out=5),
                       "out must be a path"),
    "export(None)": (lambda run: rlnas.export(None), "run must be a path"),
    "export(out=5)": (lambda run: rlnas.export(run.path, out=5), "out must be a path"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_api_argument_of_the_wrong_type_is_an_rlnas_error(case, run):
    call, message = API_CASES[case]
    with pytest.raises(RlnasError, match=message):
        call(run)


def test_api_arguments_of_the_right_types_still_work(run, tmp_path):
    assert rlnas.open_run(str(run.path)).path == run.path
    assert len(run.search(method="random", seed=np.int64(3))["top"]) > 0
    scores = rlnas.get_scorer("params", run)(run.ranking().arch[:2])
    assert scores.shape == (2,)
    costs = rlnas.get_space("nb201").cost(np.zeros((0, 6), dtype=np.int64))
    assert costs["params"].shape == (0,)


# --- the command line's arguments --------------------------------------------------------------
CLI_CASES = {
    "search --seed -1": ["search", "RUN", "--seed", "-1"],
    "search --seed 2**32": ["search", "RUN", "--seed", str(2**32)],
    "sample --seed -1": ["sample", "nb201", "--seed", "-1"],
    "check --seed -1": ["check", "RUN", "--seed", "-1"],
    "check --archs 0": ["check", "RUN", "--archs", "0"],
    "check --epochs 0": ["check", "RUN", "--epochs", "0"],
    "check --image-size -8": ["check", "RUN", "--image-size", "-8"],
    "evaluate --proxy-cells -1": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                  "--proxy-cells", "-1"],
    "evaluate --proxy-batch 0": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                 "--proxy-batch", "0"],
    "evaluate --recal-images -5": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                   "--recal-images", "-5"],
    "evaluate --eval-images -5": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                  "--eval-images", "-5"],
    "evaluate --sample 0": ["evaluate", "RUN", "--nasbench201", "t.csv", "--sample", "0"],
    "retrain --random -1": ["retrain", "RUN", "--top", "1", "--random", "-1"],
    "bench --steps -1": ["bench", "--steps", "-1"],
    "bench --batch 0": ["bench", "--batch", "0"],
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_integer_flag_out_of_range_is_refused(case, run, capsys):
    argv = [str(run.path) if a == "RUN" else a for a in CLI_CASES[case]]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]  # argparse: the usage, then one error line
    assert last.startswith(f"rlnas {argv[0]}: error: argument ") and "must be a" in last, err


# --- damaged run files: ranking.csv and metrics.csv --------------------------------------------
@pytest.fixture(scope="module")
def half_done(tmp_path_factory):
    """A run of 3 epochs of 2 steps stopped after step 3 (mid-epoch 2; a checkpoint a step)."""
    from rlnas.config import load_config
    from rlnas.pipeline.train import train_supernet
    out = tmp_path_factory.mktemp("bad-inputs") / "half"
    cfg = load_config("demo-digits", ["epochs=3", "model.channels=4", "data.subset=128",
                                      "train.ckpt_every_steps=1"])
    with pytest.raises(KeyboardInterrupt):
        train_supernet(cfg, out, progress=False, stop_at_step=3)
    return out


def _cut_row(text: str) -> str:
    """The text cut in the middle of its third line."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[:2]) + lines[2][: len(lines[2]) // 2]


def _nan_field(text: str, column: str) -> str:
    lines = text.splitlines(keepends=True)
    header = lines[0].strip().split(",")
    row = lines[1].rstrip("\n").split(",")
    row[header.index(column)] = "nan"
    return "".join([lines[0], ",".join(row) + "\n"] + lines[2:])


RANKING_DAMAGE = {
    "garbled": lambda text: b"\xff\xfe\x00\x81junk".decode("latin-1"),
    "nul bytes": lambda text: text[:40] + "\0\0\0" + text[40:],
    "cut row": _cut_row,
    "wrong header": lambda text: "rank,arch,score\n" + text.split("\n", 1)[1],
    "header only": lambda text: text.split("\n", 1)[0] + "\n",
    "nan params": lambda text: _nan_field(text, "params_m"),
    "text score": lambda text: text.replace("\n1,", "\n1,", 1).replace(",0.", ",abc0.", 1),
    "ranks shuffled": lambda text: text.replace("\n2,", "\n7,", 1),
    "an arch twice": lambda text: _repeat_arch(text),
    "no finite score": lambda text: _all_scores(text, "nan"),
}


def _repeat_arch(text: str) -> str:
    """The second row's arch replaced by the first's."""
    lines = text.splitlines(keepends=True)
    first, second = (line.split(",") for line in lines[1:3])
    second[1] = first[1]
    return "".join(lines[:2] + [",".join(second)] + lines[3:])


def _all_scores(text: str, value: str) -> str:
    lines = text.splitlines(keepends=True)
    rows = [line.split(",") for line in lines[1:]]
    return lines[0] + "".join(",".join(r[:2] + [value] + r[3:]) for r in rows)


def _damage(path, how, table):
    text = path.read_bytes().decode("utf-8")
    damaged = table[how](text)
    path.write_bytes(damaged.encode("latin-1" if how == "garbled" else "utf-8"))


@pytest.mark.parametrize("how", sorted(RANKING_DAMAGE))
@pytest.mark.parametrize("reader", ["Run.ranking", "Ranking.read", "check"])
def test_damaged_ranking_is_one_line_naming_it(how, reader, run, tmp_path, capsys):
    path = copy_run(run.path, tmp_path)
    _damage(path / "ranking.csv", how, RANKING_DAMAGE)
    if reader == "check":
        assert main(["check", str(path), "--archs", "1", "--epochs", "1", "-q"]) == 2
        assert "ranking.csv" in one_line_error(capsys, "check")
        assert not (path / "check").exists() or not list((path / "check").glob("*.json"))
        return
    with pytest.raises(RlnasError, match="ranking.csv"):
        if reader == "Run.ranking":
            rlnas.open_run(path).ranking()
        else:
            rlnas.Ranking.read(path / "ranking.csv")


def test_a_search_s_visited_file_with_latencies_reads_as_a_ranking(tmp_path):
    """Ranking.read reads every file ranking_csv writes: a search's visited-<name>.csv has a
    latency_ms column after the costs."""
    from rlnas.pipeline.rank import ranking_csv
    path = tmp_path / "visited.csv"
    path.write_text(ranking_csv("angle", ["a", "b"], [2.0, float("nan")], [0.1, 0.2],
                                [1.0, 2.0], latency_ms=[0.5, float("nan")]))
    ranking = rlnas.Ranking.read(path)
    assert ranking.scorer == "angle" and ranking.arch == ["a", "b"]
    assert ranking.score[0] == 2.0 and np.isnan(ranking.score[1])
    assert ranking.params_m.tolist() == [0.1, 0.2] and ranking.flops_m.tolist() == [1.0, 2.0]


METRICS_DAMAGE = {
    "garbled": lambda text: b"\xff\xfe\x00\x81junk".decode("latin-1"),
    "cut row": lambda text: text + "2,8,0.02",
    "wrong header": lambda text: "foo,bar\n1,2\n",
    "nan loss": lambda text: _nan_field(text, "loss"),
    "text lr": lambda text: text.replace(",0.025,", ",fast,", 1),
    "epochs out of order": lambda text: text.replace("\n1,", "\n5,", 1),
}


@pytest.mark.parametrize("how", sorted(METRICS_DAMAGE))
def test_damaged_metrics_refuse_a_resume(how, half_done, tmp_path, capsys):
    path = copy_run(half_done, tmp_path)
    _damage(path / "metrics.csv", how, METRICS_DAMAGE)
    before = (path / "ckpt" / "last.pt").read_bytes()
    assert main(["train", str(path), "-q"]) == 2
    err = one_line_error(capsys, "train")
    assert f"{path / 'metrics.csv'} is damaged" in err and "move it aside" in err
    assert (path / "ckpt" / "last.pt").read_bytes() == before  # nothing trained


@pytest.mark.parametrize("how", sorted(METRICS_DAMAGE))
def test_damaged_metrics_are_said_by_search(how, run, tmp_path, capsys):
    """search (and evaluate, through the same note) read metrics.csv for one note only: the
    search is done and the note says the file is damaged, instead of dropping the note."""
    path = copy_run(run.path, tmp_path)
    _damage(path / "metrics.csv", how, METRICS_DAMAGE)
    assert main(["search", str(path), "--method", "random", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert f"fit to its labels is unknown ({path / 'metrics.csv'} is damaged" in out


# --- damaged run files: a config.yaml cut short ------------------------------------------------
def _cut_before(text: str, marker: str) -> str:
    assert marker in text
    return text[:text.index(marker)]


TRUNCATIONS = {
    # each leaves keys whose defaults are the run's values: completed with the schema's
    # defaults, the file would read as the run's own config
    "in the search section": lambda text: _cut_before(text, "  generations:"),
    "evaluate section lost": lambda text: _cut_before(text, "evaluate:"),
    "after 300 bytes": lambda text: text[:300],
}


@pytest.mark.parametrize("cut", sorted(TRUNCATIONS))
@pytest.mark.parametrize("command", ["train", "rank", "search"])
def test_truncated_config_is_refused(cut, command, run, half_done, tmp_path, capsys):
    path = copy_run(half_done if command == "train" else run.path, tmp_path)
    config = path / "config.yaml"
    config.write_text(TRUNCATIONS[cut](config.read_text()))
    before = files(path)
    assert main([command, str(path), "-q"]) == 2
    err = one_line_error(capsys, command)
    assert f"{config} is damaged: it lacks " in err and "restore it" in err, err
    assert files(path) == before


# --- damaged run files: an edited config.yaml of a retraining ---------------------------------
RETRAIN = ["channels=4", "cells=1", "epochs=2", "batch=32"]


def retrain_argv(root, out, *extra):
    return ["retrain", "retrain-nb201-cifar10", NB201_ARCH, f"root={root}", *RETRAIN, *extra,
            "--out", str(out), "-q"]


@pytest.fixture(scope="module")
def half_retrained(npz_root, tmp_path_factory):
    """A retraining of 2 epochs of 2 steps stopped after its first epoch."""
    from rlnas.config import load_config
    from rlnas.pipeline.retrain import train_network
    out = tmp_path_factory.mktemp("retrain") / "half"
    cfg = load_config("retrain-nb201-cifar10", [f"root={npz_root}", *RETRAIN])
    with pytest.raises(KeyboardInterrupt):
        train_network(cfg, NB201_ARCH, out, progress=False, stop_at_step=2)
    return out


def test_edited_retraining_config_does_not_resume_another_schedule(half_retrained, npz_root,
                                                                   tmp_path, capsys):
    """config.yaml says 3 epochs, run.json records the 2 the checkpoints were trained with: the
    command asking for 3 is refused, as for a supernet run (check_recorded_config)."""
    path = copy_run(half_retrained, tmp_path)
    config = path / "config.yaml"
    config.write_text(config.read_text().replace("  epochs: 2\n", "  epochs: 3\n", 1))
    before = (path / "ckpt" / "last.pt").read_bytes()
    assert main(retrain_argv(npz_root, path, "epochs=3")) == 2
    err = one_line_error(capsys, "retrain")
    assert "extending train.epochs from 2 to 3" in err and "restore config.yaml" in err
    assert (path / "ckpt" / "last.pt").read_bytes() == before


def test_edited_retraining_config_is_not_taken_for_what_was_trained(half_retrained, npz_root,
                                                                    tmp_path):
    """The command of the recorded config resumes (config.yaml is rlnas's copy of it, written
    again) and ends with the uninterrupted retraining's weights."""
    import torch

    from rlnas.checkpoint import load_checkpoint
    path = copy_run(half_retrained, tmp_path)
    config = path / "config.yaml"
    config.write_text(config.read_text().replace("  epochs: 2\n", "  epochs: 3\n", 1))
    assert main(retrain_argv(npz_root, path)) == 0
    assert "  epochs: 2\n" in config.read_text()
    reference = tmp_path / "reference"
    assert main(retrain_argv(npz_root, reference)) == 0
    got, want = (load_checkpoint(p / "ckpt" / "last.pt")["model"] for p in (path, reference))
    assert all(torch.equal(got[k], want[k]) for k in want)


# --- damaged run files: a crafted training state in ckpt/last.pt -------------------------------
def _first(mapping):
    return next(iter(mapping))


def _state(ckpt):
    return ckpt["optimizer"]["state"][_first(ckpt["optimizer"]["state"])]


def _group(ckpt):
    return ckpt["optimizer"]["param_groups"][0]


CRAFTED = {
    "an extra param group": lambda c: c["optimizer"]["param_groups"].append(
        dict(_group(c), params=[])),
    "no param groups": lambda c: c["optimizer"].update(param_groups=[]),
    "a group short of params": lambda c: _group(c).update(params=_group(c)["params"][:-3]),
    "momentum buffer of another shape": lambda c: _state(c).update(
        momentum_buffer=__import__("torch").zeros(3)),
    "momentum buffer a list": lambda c: _state(c).update(momentum_buffer=[1.0, 2.0]),
    "momentum buffer a string": lambda c: _state(c).update(momentum_buffer="x"),
    "state of a parameter that is not there": lambda c: c["optimizer"]["state"].update(
        {9999: {"momentum_buffer": __import__("torch").zeros(1)}}),
    "another momentum": lambda c: _group(c).update(momentum=5.0),
    "no optimizer": lambda c: c.pop("optimizer"),
    "no optimizer state": lambda c: c["optimizer"].pop("state"),
    "no param_groups key": lambda c: c["optimizer"].pop("param_groups"),
    "optimizer a list": lambda c: c.update(optimizer=[1, 2]),
    "no step": lambda c: c.pop("step"),
    "step a string": lambda c: c.update(step="x"),
    "step negative": lambda c: c.update(step=-4),
    "step beyond the run": lambda c: c.update(step=10**9),
    "epoch stats garbled": lambda c: c.update(epoch_stats=["a"]),
    "path digest garbled": lambda c: c.update(path_digest="zz"),
    "a weight of another shape": lambda c: c["model"].update(
        {_first(c["model"]): __import__("torch").zeros(1)}),
    "a weight missing": lambda c: c["model"].pop(_first(c["model"])),
    "model a list": lambda c: c.update(model=[1]),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_training_state_refuses_a_resume(case, half_done, tmp_path, capsys):
    from rlnas.checkpoint import load_checkpoint, save_checkpoint
    path = copy_run(half_done, tmp_path)
    last = path / "ckpt" / "last.pt"
    ckpt = load_checkpoint(last)
    CRAFTED[case](ckpt)
    save_checkpoint(last, ckpt)
    before = last.read_bytes()
    assert main(["train", str(path), "-q"]) == 2
    err = one_line_error(capsys, "train")
    assert f"{last} " in err and ("is damaged" in err or "does not match" in err), err
    assert last.read_bytes() == before


# --- a user's own space: edited after training, another input size, errors in its code ---------
USER_SPACE = '''
import torch.nn as nn
from rlnas.spaces import space_factory
from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip

C = 8


def conv(c_in, c_out, stride, k=3):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def stem():
    return nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU())


def pooled_head(num_classes, dropout):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, num_classes))


def flat_head(num_classes, dropout):  # fixed to 32 px: 8 x 8 after two stride-2 blocks
    return nn.Sequential(nn.Flatten(), nn.Linear(C * 8 * 8, num_classes))


OPS = [Op("k3", conv), Op("k5", lambda c_in, c_out, stride: conv(c_in, c_out, stride, 5))]


def make(ops=OPS, head=pooled_head, stem=stem):
    return ChoiceSpace("tiny", stem=stem, head=head, input_size=32, num_classes=10,
                       blocks=[Choice(ops, C, stride=2), Choice(OPS + [skip()], C),
                               Choice(OPS, C, stride=2)])


SPACE = make()
FLAT = make(head=flat_head)


def broken_op(c_in, c_out, stride):
    return {}["no such key"]


def broken_stem():
    raise AttributeError("the stem is not there")


def broken_head(num_classes, dropout):
    raise ZeroDivisionError("the head divides by zero")


@space_factory
def op_raises():
    return make(ops=OPS + [Op("broken", broken_op)])


@space_factory
def stem_raises():
    return make(stem=broken_stem)


@space_factory
def head_raises():
    return make(head=broken_head)


@space_factory
def factory_raises():
    raise LookupError("the factory looks up nothing")
'''


@pytest.fixture
def user_space(tmp_path, monkeypatch):
    """A working folder holding tinyspace.py (and two broken modules), the user's own spaces;
    a process in which no user space is named yet."""
    import sys

    import rlnas.spaces.registry
    work = tmp_path / "work"
    work.mkdir()
    (work / "tinyspace.py").write_text(USER_SPACE)
    (work / "importfails.py").write_text("raise KeyError('a failure at import')\n")
    # the working folder is not on sys.path: a module of the user's imports no sibling
    (work / "declfails.py").write_text(USER_SPACE + "\nBROKEN = make(ops=[Op('broken', "
                                                    "broken_op)])\n")
    monkeypatch.chdir(work)
    monkeypatch.setattr(rlnas.spaces.registry, "_NAMED_BY_USER", set())
    yield work
    for name in ("tinyspace", "importfails", "declfails"):
        sys.modules.pop(name, None)


def _user_config(tmp_path, root, kind="nb201-cifar10", space="tinyspace:SPACE", *extra):
    """A YAML config of the user's (their space, their data): the preset's keys, model {}."""
    from rlnas.config import dump, load_config
    cfg = load_config(kind, [f"root={root}", "epochs=2", "batch=32", *extra])
    cfg["space"], cfg["model"] = space, {}
    if "data" in cfg and "nb201_half" in cfg["data"]:
        cfg["data"]["nb201_half"] = False
    path = tmp_path / f"{kind}-{space.replace(':', '_')}.yaml"
    path.write_text(dump(cfg))
    return path


def _edit_space(work):
    import sys
    text = (work / "tinyspace.py").read_text()
    (work / "tinyspace.py").write_text(text.replace("\nC = 8\n", "\nC = 12\n"))
    sys.modules.pop("tinyspace", None)


@pytest.mark.parametrize("command", ["train", "rank", "search", "export"])
def test_user_space_edited_after_training_is_one_line(command, user_space, npz_root, tmp_path,
                                                      capsys):
    """The README's promise: a state-dict mismatch is one line naming the space and the
    mismatch (here the space's channels, 8 -> 12)."""
    from rlnas.config import load_config
    from rlnas.pipeline.retrain import train_network
    from rlnas.pipeline.train import train_supernet
    spec = "tinyspace:SPACE"
    rlnas.get_space(spec)  # the user names their space (as a config file of theirs does)
    if command == "export":
        run = tmp_path / "rt"
        cfg = load_config(str(_user_config(tmp_path, npz_root, "retrain-nb201-cifar10")))
        train_network(cfg, "k3 k3 k3", run, progress=False)
        argv = ["export", str(run), "--space", spec]
    else:
        run = tmp_path / "run"
        cfg = load_config(str(_user_config(tmp_path, npz_root)), ["train.ckpt_every_steps=1"])
        with pytest.raises(KeyboardInterrupt):  # half-trained, so that train resumes it
            train_supernet(cfg, run, progress=False, stop_at_step=1)
        argv = [command, str(run), "--space", spec] + (["-q"] if command != "rank" else [])
    _edit_space(user_space)
    before = files(run)
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert f"space {spec}" in err and "(8, 3, 3, 3) there, (12, 3, 3, 3) here" in err, err
    assert files(run) == before


@pytest.mark.parametrize("command", ["train", "retrain"])
def test_space_declared_for_32px_refuses_16px_data_before_training(command, user_space, npz_root,
                                                                   tmp_path, capsys):
    """The CIFAR images resized to 16 px (data.resolution) for a space whose head is fixed to
    32 px: refused before the run folder is written, naming both sizes (it was a traceback
    at the first step)."""
    kind = "nb201-cifar10" if command == "train" else "retrain-nb201-cifar10"
    config = _user_config(tmp_path, npz_root, kind, "tinyspace:FLAT", "data.resolution=16")
    out = tmp_path / "out"
    argv = ([command, str(config), "--out", str(out), "-q"] if command == "train" else
            [command, str(config), "k3 k3 k3", "--out", str(out), "-q"])
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert "declared for 32x32 px images" in err and "train on 16 px ones" in err, err
    assert "data.resolution=32" in err
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".rlnas.lock"]


def test_a_space_with_global_pooling_runs_on_any_size(user_space):
    """nasbench-macro-fast trains its 32 px space on 16 px images: accepted."""
    rlnas.get_space("tinyspace:SPACE").check_image_size((32, 32), 16, 10)
    rlnas.get_space("nasbench-macro").check_image_size((32, 32), 16, 10)
    with pytest.raises(RlnasError, match="declared for 32x32 px"):
        rlnas.get_space("tinyspace:FLAT").check_image_size((32, 32), 16, 10)


USER_CODE_FAULTS = {
    # spec: (what the first line says, a line of the user's traceback)
    "tinyspace:op_raises": ("its factory: space 'tiny' block 0 op 'broken' failed: KeyError",
                            "return {}[\"no such key\"]"),
    "tinyspace:stem_raises": ("space 'tiny' stem() failed: AttributeError: the stem is not there",
                              "in broken_stem"),
    "tinyspace:head_raises": ("space 'tiny' head() failed: ZeroDivisionError",
                              "in broken_head"),
    "tinyspace:factory_raises": ("its factory failed: LookupError: the factory looks up nothing",
                                 "in factory_raises"),
    "importfails:SPACE": ("importing 'importfails' failed: KeyError: 'a failure at import'",
                          "importfails.py"),
    "declfails:BROKEN": ("importing 'declfails': space 'tiny' block 0 op 'broken' failed: "
                         "KeyError", "in broken_op"),
}


@pytest.mark.parametrize("spec", sorted(USER_CODE_FAULTS))
def test_an_error_in_the_users_space_code_says_where_first(spec, user_space, capsys):
    first, frame = USER_CODE_FAULTS[spec]
    assert main(["sample", spec]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and lines[0].startswith(f"rlnas sample: error: search space {spec!r}: ")
    assert first in lines[0], lines[0]
    assert lines[1].startswith("Traceback of the space's code")  # then the user's own frames
    assert any(frame in line for line in lines[2:]), err
    assert not any("/rlnas/" in line for line in lines[1:]), err
    with pytest.raises(rlnas.errors.UserCodeError) as exc:
        rlnas.get_space(spec)
    assert first in str(exc.value) and exc.value.__cause__ is not None


@pytest.mark.parametrize("command", ["train", "retrain"])
def test_model_option_the_space_refuses_fails_before_the_run_is_written(command, user_space,
                                                                        npz_root, tmp_path,
                                                                        capsys):
    """model.channels given to a space that takes none: refused before config.yaml, run.json
    and labels are written, so the corrected config can start in the same folder."""
    kind = "nb201-cifar10" if command == "train" else "retrain-nb201-cifar10"
    config = _user_config(tmp_path, npz_root, kind)
    text = config.read_text()
    config.write_text(text.replace("model: {}", "model:\n  channels: 4"))
    out = tmp_path / "out"
    argv = [command, str(config)] + (["k3 k3 k3"] if command == "retrain" else []) + [
        "--out", str(out), "-q"]
    assert main(argv) == 2
    assert "takes no model option channels" in one_line_error(capsys, command)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".rlnas.lock"]
    config.write_text(text)
    assert main(argv) == 0


# --- `rlnas run`: what the search would refuse is refused before training ----------------------
DARTS = ["darts-cifar10-fast", "dataset=digits", "data.root=null", "data.resolution=null",
         "epochs=1", "channels=4", "layers=2", "subset=128", "search.population=5",
         "search.topk=2", "search.mutations=1", "search.crossovers=1", "search.num_samples=5"]
NB201 = ["demo-digits", "epochs=1", "model.channels=4", "data.subset=128"]
REFUSED_BEFORE_TRAINING = {
    "unknown method": (NB201 + ["search.method=foo"], "unknown search method 'foo'"),
    "unknown scorer": (NB201 + ["search.scorer=foo"], "unknown scorer 'foo'"),
    "impossible max_flops": (NB201 + ["search.max_flops=0.001"],
                             "no architecture of space nb201 satisfies max_flops=0.001 M"),
    "impossible max_params": (NB201 + ["search.max_params=0.0001"],
                              "no architecture of space nb201 satisfies max_params=0.0001 M"),
    "topk above population": (NB201 + ["search.topk=200"], "topk=200 exceeds population=100"),
    "children above population": (NB201 + ["search.mutations=80"],
                                  "mutations + crossovers = 130 exceed population=100"),
    "missing NB201 table": (NB201 + ["evaluate.nasbench201=missing.csv"],
                            "missing.csv does not exist"),
    "NB201 table for another space": (DARTS + ["evaluate.nasbench201=t.csv"],
                                      "NAS-Bench-201 evaluation needs an nb201 run"),
    "exhaustive search of a space too large": (DARTS + ["search.method=exhaustive"],
                                               "space darts is too large for exhaustive search"),
    "impossible limit, evolution's draws": (DARTS + ["search.max_flops=0.0001"],
                                            "no random architectures of space darts satisfy "
                                            "max_flops=0.0001 M after 5000 tries"),
    "impossible limit, random search's draws": (DARTS + ["search.method=random",
                                                         "search.max_flops=0.0001"],
                                                "after 50 tries; the limit seems impossible"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BEFORE_TRAINING))
def test_run_refuses_before_training_what_the_search_would_refuse(case, tmp_path, capsys):
    argv, message = REFUSED_BEFORE_TRAINING[case]
    out = tmp_path / "out"
    assert main(["run", *argv, "--out", str(out), "-q"]) == 2
    assert message in one_line_error(capsys, "run")
    assert not out.exists()  # nothing trained, no folder left


def test_run_and_search_refuse_with_one_check(run, tmp_path, capsys):
    """The same limit, refused by `rlnas search` on a trained run and by `rlnas run` before
    training, in the same words (stages.search_plan)."""
    path = copy_run(run.path, tmp_path)
    assert main(["search", str(path), "--max-flops", "0.001", "-q"]) == 2
    searched = one_line_error(capsys, "search").split("error: ", 1)[1]
    assert main(["run", *NB201, "search.max_flops=0.001", "--out", str(tmp_path / "r"),
                 "-q"]) == 2
    assert one_line_error(capsys, "run").split("error: ", 1)[1] == searched


# === damaged run files: config.yaml and run.json of a supernet run ================================
# Damaged run files are a one-line error naming the file, not a traceback (issue 18, item 4).
NB201_TINY = ["channels=4", "cells=1", "epochs=1", "batch=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "train_1.npz", 64, seed=0)
    run = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["train", "nb201-cifar10", f"root={root}", *NB201_TINY, "data.nb201_half=false",
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


# === edited run files, counts and sizes: no exit 0 with nonsense ==================================
# Issue 18 item 3: no exit 0 with nonsense. An edited config.yaml cannot resume or rank a run
# trained with another; a run without its W0 is not resumed; counts of 0 or below are refused;
# absurd sizes are refused with their bound; the API refuses genomes outside the space and files
# that are not search results.
@pytest.fixture(scope="module")
def unranked_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("h18c") / "run"
    return rlnas.train("demo-digits", out, overrides=TINY, progress=False)


def _copy(run, tmp_path):
    import shutil
    dst = tmp_path / "copy"
    shutil.copytree(run.path, dst)
    return dst


def _edit(path, old, new):
    text = (path / "config.yaml").read_text()
    assert old in text
    (path / "config.yaml").write_text(text.replace(old, new, 1))


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_edited_config_does_not_resume(unranked_run, tmp_path, capsys):
    path = _copy(unranked_run, tmp_path)
    _edit(path, "epochs: 1", "epochs: 2")
    assert main(["train", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "train.epochs", "restore config.yaml", "--out")


def test_deleted_init_pt_is_not_resumed(unranked_run, tmp_path, capsys):
    path = _copy(unranked_run, tmp_path)
    (path / "ckpt" / "init.pt").unlink()
    assert main(["train", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "init.pt", "--out")


def test_edited_scorer_does_not_rank(unranked_run, tmp_path, capsys):
    path = _copy(unranked_run, tmp_path)
    text = (path / "config.yaml").read_text()
    scorer = load_config("demo-digits")["search"]["scorer"]
    other = "params" if scorer != "params" else "flops"
    (path / "config.yaml").write_text(text.replace(f"scorer: {scorer}", f"scorer: {other}", 1))
    assert main(["rank", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "search.scorer", "restore config.yaml")
    assert not (path / "ranking.csv").exists() or \
        (path / "ranking.csv").read_text() == (unranked_run.path / "ranking.csv").read_text()


def test_old_run_without_record_keeps_resuming(unranked_run, tmp_path):
    path = _copy(unranked_run, tmp_path)
    info = json.loads((path / "run.json").read_text())
    assert info["config"]["train"]["epochs"] == 1
    del info["config"]
    (path / "run.json").write_text(json.dumps(info))
    rlnas.open_run(path)  # no record: today's behaviour, no refusal


@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["sample", "nb201", "-n", "-5"],
                                  ["sample", "nb201", "-n", "0"],
                                  ["evaluate", "x", "--nasbench201", "t.csv",
                                   "--proxy-channels", "0"]])
def test_counts_below_one_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("override,bound", [("epochs=1e9", "100000"),
                                            ("batch_size=1e9", "1000000"),
                                            ("subset=1e12", "1000000000"),
                                            ("search.population=1e9", "10000000"),
                                            ("model.channels=1e9", "100000")])
def test_absurd_sizes_state_their_bound(override, bound):
    with pytest.raises(RlnasError, match=f"out of range.*{bound}"):
        load_config("demo-digits", [override])


@pytest.mark.parametrize("genome", [[99] * 6, [0, 0, 0], [0.5] * 6, [[0] * 7]])
def test_scorer_refuses_genomes_outside_the_space(genome):
    scorer = rlnas.get_scorer("params", space="nb201")
    with pytest.raises(RlnasError, match="genome|genomes"):
        scorer(genome)


def test_scorer_scores_valid_genomes():
    scores = rlnas.get_scorer("params", space="nb201")([[0] * 6, [1] * 6])
    assert scores.shape == (2,)


@pytest.mark.parametrize("name", ["run.json", "config.yaml", "metrics.csv"])
def test_result_refuses_files_that_are_not_results(unranked_run, name):
    with pytest.raises(RlnasError, match="not a search result"):
        unranked_run.result(name)


@pytest.mark.parametrize("stop_at_step,complete", [(2, False), (None, True)])
def test_export_of_a_half_done_retraining_says_so(stop_at_step, complete, tmp_path, capsys):
    from conftest import write_npz
    from rlnas.pipeline.export import export
    from rlnas.pipeline.retrain import train_network
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "train_1.npz", 64, seed=0)
    write_npz(tmp_path / "data" / "test_1.npz", 40, seed=1)
    cfg = load_config("retrain-nb201-cifar10", [f"root={tmp_path / 'data'}", "channels=4",
                                                "cells=1", "epochs=2", "batch=32"])
    run_dir = tmp_path / "retrain"
    try:
        train_network(cfg, NB201_ARCH, run_dir, progress=False, stop_at_step=stop_at_step)
    except KeyboardInterrupt:  # how stop_at_step simulates a Ctrl-C
        assert stop_at_step is not None
    capsys.readouterr()
    export(run_dir)
    err = capsys.readouterr().err
    manifest = json.loads((run_dir / "export" / "export.json").read_text())
    assert manifest["complete"] is complete
    assert manifest["epochs"] == 2 and manifest["epochs_done"] == (1 if stop_at_step else 2)
    assert ("1 of its 2 epochs" in err) is not complete
