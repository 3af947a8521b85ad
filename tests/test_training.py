"""Supernet training, exact resume, checkpoints, run directories and the CLI end to end."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import write_npz
from rlnas.checkpoint import load_checkpoint, save_checkpoint
from rlnas.cli import main
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.train import train_supernet
from rlnas.rundir import open_run
from rlnas.spaces import get_space


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """96 random 32x32 CIFAR-style images as an .npz folder."""
    root = tmp_path_factory.mktemp("tinycifar")
    write_npz(root / "train_1.npz", 96)
    return root


def tiny_cfg(root, *extra):
    return load_config("nb201-cifar10", [f"root={root}", "channels=4", "cells=1", "epochs=2",
                                         "batch=32", "data.nb201_half=false",
                                         "train.keep_every_epochs=1", *extra])


def _states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_train_saves_w0_before_first_step_and_moves(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data)
    train_supernet(cfg, tmp_path / "run", progress=False)
    init = load_checkpoint(tmp_path / "run" / "ckpt" / "init.pt")
    last = load_checkpoint(tmp_path / "run" / "ckpt" / "last.pt")
    assert init["step"] == 0 and last["step"] == 6 and last["epoch"] == 2
    torch.manual_seed(cfg["seed"])
    fresh = get_space("nb201").supernet(channels=4, cells=1, num_classes=10).state_dict()
    _states_equal(init["model"], fresh)  # W0 is the untouched initialisation
    assert not torch.equal(init["model"]["stem.0.weight"], last["model"]["stem.0.weight"])
    assert (tmp_path / "run" / "ckpt" / "epoch_1.pt").exists()
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    labels = np.load(tmp_path / "run" / "labels.npz")["labels"]
    assert np.array_equal(labels, np.random.RandomState(0).randint(0, 10, 96))


def test_resume_after_kill_is_bit_identical(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, "train.ckpt_every_steps=2", "epochs=3")
    train_supernet(cfg, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed at step 5: last checkpoint is step 4
        train_supernet(cfg, tmp_path / "b", progress=False, stop_at_step=5)
    assert load_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")["step"] == 4
    res = train_supernet(cfg, tmp_path / "b", progress=False)
    assert res["resumed"]
    a = load_checkpoint(tmp_path / "a" / "ckpt" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "ckpt" / "last.pt")
    _states_equal(a["model"], b["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa)
    # every logged number but the timings, path_digest of the resumed epoch 2 included
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    # a finished run is not retrained
    assert train_supernet(cfg, tmp_path / "b", progress=False)["already_done"]


def _metrics(run):
    """metrics.csv without its timing columns."""
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")} for r in rows]


def test_a_checkpoint_without_path_digest_still_resumes(tiny_data, tmp_path):
    """Checkpoints written before path_digest was saved resume exactly; only the digest logged
    for the resumed epoch restarts from that step."""
    cfg = tiny_cfg(tiny_data, "train.ckpt_every_steps=2", "epochs=3")
    train_supernet(cfg, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(cfg, tmp_path / "b", progress=False, stop_at_step=5)
    last = tmp_path / "b" / "ckpt" / "last.pt"
    old = load_checkpoint(last)
    assert old["step"] == 4 and old["path_digest"] != 0  # mid-epoch 2: the digest so far
    del old["path_digest"]
    save_checkpoint(last, old)
    train_supernet(cfg, tmp_path / "b", progress=False)
    a, b = (load_checkpoint(tmp_path / r / "ckpt" / "last.pt") for r in "ab")
    _states_equal(a["model"], b["model"])
    ma, mb = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert [r["path_digest"] for r in ma] != [r["path_digest"] for r in mb]
    for r in ma + mb:
        del r["path_digest"]
    assert ma == mb


def _hold_lock(run):
    """A process that holds ``run``'s lock as `rlnas train` does, until it is killed."""
    code = ("import sys, time; from rlnas.files import run_lock\n"
            "with run_lock(sys.argv[1], 'train'):\n"
            "    print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_run_is_refused_naming_its_holder_and_a_stale_lock_is_not(tiny_data, tmp_path,
                                                                           capsys):
    run = tmp_path / "run"
    args = ["train", "nb201-cifar10", f"root={tiny_data}", "channels=4", "cells=1", "epochs=1",
            "batch=48", "data.nb201_half=false", "--out", str(run), "-q"]
    holder = _hold_lock(run)
    try:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"run {run} is in use by `rlnas train` (pid {holder.pid} " in err
        assert not (run / "config.yaml").exists()  # refused before writing anything
    finally:
        holder.kill()  # SIGKILL: the holder cannot release its lock itself
        holder.wait()
    assert main(args) == 0  # the kernel dropped the dead holder's lock; its file is no run data
    assert load_checkpoint(run / "ckpt" / "last.pt")["step"] == 2


@pytest.mark.parametrize("where, match", [
    ("file", "cannot use run directory {out}: it is a file, not a folder"),
    ("file/run", "cannot create run directory {out}: Not a directory"),
])
def test_a_run_directory_that_cannot_be_made_is_a_one_line_error(where, match, tiny_data,
                                                                 tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder\n")
    out = tmp_path / where
    assert main(["train", "nb201-cifar10", f"root={tiny_data}", "channels=4", "cells=1",
                 "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rlnas train: error: {match.format(out=out)}"
    assert (tmp_path / "file").read_text() == "not a folder\n"


def test_resume_refuses_a_different_model(tiny_data, tmp_path):
    train_supernet(tiny_cfg(tiny_data), tmp_path / "run", progress=False)
    with pytest.raises(RlnasError, match="model.channels"):
        train_supernet(tiny_cfg(tiny_data, "channels=8"), tmp_path / "run", progress=False)


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tiny_data, tmp_path):
    train_supernet(tiny_cfg(tiny_data), tmp_path / "run", progress=False)
    last = tmp_path / "run" / "ckpt" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(RlnasError, match="corrupt"):
        load_checkpoint(last)
    torch.save({"hello": torch.zeros(1)}, last)
    with pytest.raises(RlnasError, match="not an rlnas checkpoint"):
        load_checkpoint(last)
    # a checkpoint of another model size in this run directory
    other = tmp_path / "other"
    train_supernet(tiny_cfg(tiny_data, "channels=8"), other, progress=False)
    (tmp_path / "run" / "ckpt" / "last.pt").write_bytes((other / "ckpt" / "last.pt").read_bytes())
    run = open_run(tmp_path / "run")
    with pytest.raises(RlnasError, match="channels"):
        run.checkpoint_state("last.pt")


@pytest.mark.parametrize("overrides, match", [
    (["nope=1"], "unknown config key"), (["epochs"], "key=value"), (["epochs=abc"], "expected"),
    (["labels=noisy"], "labels.kind"), (["epochs=0"], "positive"),
    (["space=darts9"], "unknown search space")])
def test_bad_overrides(overrides, match):
    with pytest.raises(RlnasError, match=match):
        load_config("nb201-cifar10", overrides)


def test_unknown_preset():
    with pytest.raises(RlnasError, match="presets"):
        load_config("nb201-mnist")


def _synthetic_table(path):
    space = get_space("nb201")
    archs = space.enumerate()
    rng = np.random.default_rng(0)
    params = space.cost(archs)["params"]
    with open(path, "w") as f:
        f.write("arch,cifar10_valid,cifar10_test\n")
        for a, p in zip(archs, params):
            acc = 80 + 10 * p + rng.normal()
            f.write(f"{space.to_str(tuple(a))},{acc - 3:.4f},{acc:.4f}\n")


def test_cli_end_to_end(tiny_data, tmp_path, capsys):
    table = tmp_path / "nb201.csv"
    _synthetic_table(table)
    run = tmp_path / "run"
    args = [f"root={tiny_data}", "channels=4", "cells=1", "epochs=1", "batch=48",
            "data.nb201_half=false", f"nasbench201={table}", "search.generations=3"]
    assert main(["run", "nb201-cifar10", *args, "--out", str(run), "-q"]) == 0
    rows = list(csv.DictReader(open(run / "ranking.csv")))
    assert len(rows) == 15625
    angles = [float(r["angle"]) for r in rows]
    assert angles == sorted(angles, reverse=True) and angles[0] > 0
    res = json.loads((run / "result.json").read_text())
    assert res["method"] == "evolution" and len(res["top"]) == 10
    assert res["top"][0]["angle"] <= angles[0] + 1e-12
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["columns"] == ["cifar10_valid", "cifar10_test"] and ev["num_archs"] == 15625
    corr = ev["per_run"][0]["correlation"]["angle"]["columns"]["cifar10_test"]
    assert -1 <= corr["kendall_tau"] <= 1 and corr["n"] == 15625
    assert ev["search"]["found"][0]["arch"] == res["top"][0]["arch"]
    assert [o["epoch"] for o in ev["per_run"][0]["over_training"]] == [1]
    assert (run / "plots" / "angle_vs_cifar10_test.png").stat().st_size > 1000
    assert "| angle |" in (run / "evaluation.md").read_text()
    # exhaustive search under a params limit returns the best-angle cell under it
    assert main(["search", str(run), "--method", "exhaustive", "--max-params", "0.5"]) == 0
    res = json.loads((run / "result.json").read_text())
    assert all(t["params_m"] <= 0.5 for t in res["top"])
    ok = [float(r["angle"]) for r in rows if float(r["params_m"]) <= 0.5]
    assert res["top"][0]["angle"] == pytest.approx(max(ok))


@pytest.mark.parametrize("argv, match", [
    (["rank", "/nonexistent/run"], "not found"),
    (["train", "nb201-cifar10", "root=/nonexistent/cifar", "-q", "--out", "{tmp}/x"],
     "does not exist"),
    (["cost", "|bad|"], "malformed"),
    (["train", "nope-preset"], "unknown preset"),
    (["search", "{run}", "--max-params", "0.01"], "no architecture"),
    (["evaluate", "{run}", "--nasbench201", "/nonexistent.csv"], "does not exist"),
])
def test_cli_errors_are_one_line(argv, match, tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    if any("{run}" in a for a in argv):
        train_supernet(tiny_cfg(tiny_data, "epochs=1"), run, progress=False)
        main(["rank", str(run)])
        capsys.readouterr()
    code = main([a.format(run=run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and match in err, err
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written outputs


def test_cost_command(capsys):
    assert main(["cost", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                         "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params_m"] == pytest.approx(1.288506) and out["flops_m"] == pytest.approx(184.73025)


def test_stop_when_the_angle_ranking_is_stable(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, "epochs=6", "train.stop_when_stable=0.5",
                   "train.stability_every=1")
    res = train_supernet(cfg, tmp_path / "run", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "stability.csv")))
    assert rows[0]["tau_previous"] == ""  # nothing to compare with at the first check
    stopped = [int(r["epoch"]) for r in rows if r["stop"] == "1"]
    last = load_checkpoint(tmp_path / "run" / "ckpt" / "last.pt")
    if stopped:  # tau >= 0.5 between consecutive rankings: stop there, keep that checkpoint
        assert res.get("stopped_early") and last["finished"] and last["epoch"] == stopped[0] < 6
        assert float(rows[stopped[0] - 1]["tau_previous"]) >= 0.5
        assert (tmp_path / "run" / "ckpt" / f"epoch_{stopped[0]}.pt").exists()
    else:
        assert last["epoch"] == 6
    assert all(float(r["tau_previous"]) < 0.5 for r in rows[1:] if r["stop"] == "0")
    assert train_supernet(cfg, tmp_path / "run", progress=False)["already_done"]


def test_progress_bar_counts_one_epoch_where_training_may_stop_early(tiny_data, tmp_path, capsys):
    """With train.stop_when_stable the bar's total is the current epoch's steps (3 here), not
    the whole schedule's (9), whose ETA would be a promise of steps that may never run; it says
    which epoch it counts and that it may be the last. Without it the bar spans the schedule."""
    cfg = tiny_cfg(tiny_data, "epochs=3", "train.stop_when_stable=0.0")
    train_supernet(cfg, tmp_path / "stable", progress=True)
    err = capsys.readouterr().err
    assert "supernet epoch 1 (up to 3, may stop early when stable)" in err
    assert "epoch 3 (up to 3" in err and " 0/3 " in err and "/9 " not in err
    train_supernet(tiny_cfg(tiny_data, "epochs=3"), tmp_path / "plain", progress=True)
    err = capsys.readouterr().err
    assert " 0/9 " in err and "may stop early" not in err


def test_stable_at_the_last_epoch_is_not_an_early_stop(tiny_data, tmp_path, capsys):
    """A ranking found stable at the schedule's last epoch ran the whole schedule: `rlnas train`
    says "stopped early" only when epochs were left."""
    common = ["nb201-cifar10", f"root={tiny_data}", "channels=4", "cells=1", "batch=32",
              "data.nb201_half=false", "train.stop_when_stable=0.999", "train.stability_every=1"]
    assert main(["train", *common, "epochs=2", "--out", str(tmp_path / "full"), "-q"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "full" / "stability.csv")))
    assert [r["stop"] for r in rows] == ["0", "1"]  # stable at epoch 2 of 2
    assert "trained 2 epochs;" in out and "stopped" not in out
    assert main(["train", *common, "epochs=3", "--out", str(tmp_path / "early"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "trained 2 epochs of 3 (stopped early: the angle ranking is stable" in out


def test_string_overrides_keep_words():
    cfg = load_config("nb201-cifar10", ["labels=true", "device=cpu"])
    assert cfg["labels"]["kind"] == "true" and cfg["device"] == "cpu"


def test_bench_command(capsys):
    assert main(["bench", "--spaces", "nb201", "--steps", "1", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "| nb201 | angle scoring (archs/s) |" in out and "supernet train" in out
    assert main(["bench", "--spaces", "nope"]) == 2


def test_darts_run_end_to_end(tiny_data, tmp_path):
    """`rlnas run` on the DARTS space: train, evolution under a FLOPs limit, visited archs."""
    out = tmp_path / "darts"
    assert main(["run", "darts-cifar10", f"root={tiny_data}", "channels=4", "model.layers=3",
                 "epochs=1", "batch=48", "search.generations=2", "max_flops=600",
                 "--out", str(out), "-q"]) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["space"] == "darts" and res["constraint"] == "max_flops=600 M"
    assert all(t["flops_m"] <= 600 for t in res["top"])
    assert res["size"]["visited"] == res["evaluations"]
    rows = list(csv.DictReader(open(out / "visited.csv")))
    assert len(rows) == res["evaluations"] and rows[0]["arch"] == res["top"][0]["arch"]
    assert not (out / "ranking.csv").exists()


def test_bf16_autocast_trains_on_cpu(tiny_data, tmp_path):
    res = train_supernet(tiny_cfg(tiny_data, "precision=bf16", "epochs=1"), tmp_path / "run",
                         progress=False)
    assert np.isfinite(res["loss"])
    state = load_checkpoint(tmp_path / "run" / "ckpt" / "last.pt")["model"]
    assert state["stem.0.weight"].dtype == torch.float32  # autocast: fp32 master weights


def test_sample_command(capsys):
    """`rlnas sample --space S` names the space as `rlnas cost --space S` does (default nb201);
    the positional form of earlier releases still works, with a note on stderr."""
    assert main(["sample", "--space", "nb201", "-n", "3", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    lines = out.split()
    space = get_space("nb201")
    assert len(lines) == 3 and all(space.is_valid(space.from_str(s)) for s in lines)
    assert err == ""
    assert main(["sample", "-n", "3", "--seed", "1"]) == 0  # nb201, as `rlnas cost`
    assert capsys.readouterr().out.split() == lines
    assert main(["sample", "nb201", "-n", "3", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == lines and "deprecated; write `rlnas sample --space nb201`" in err
    assert main(["sample", "--space", "nope"]) == 2
    assert main(["sample", "nope"]) == 2
    assert main(["sample", "darts", "--space", "nb201"]) == 2
    assert "two spaces given" in capsys.readouterr().err
    assert main(["sample", "--space", "darts", "--seed", "3"]) == 0
    get_space("darts").from_str(capsys.readouterr().out.strip())


def test_an_empty_micro_batch_is_harmless(tiny_data, tmp_path):
    # 65 images, batch 32: the last step holds 1 image, so of its 2 micro-batches one is empty
    base = ("data.subset=65", "epochs=1")
    two = train_supernet(tiny_cfg(tiny_data, *base, "train.accumulate=2"), tmp_path / "two",
                         progress=False)
    state = load_checkpoint(tmp_path / "two" / "ckpt" / "last.pt")["model"]
    assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())
    # the logged loss is the mean over the 65 images (BN sees half batches, hence the tolerance)
    one = train_supernet(tiny_cfg(tiny_data, *base), tmp_path / "one", progress=False)
    assert np.isfinite(two["loss"]) and two["loss"] == pytest.approx(one["loss"], rel=0.01)


def test_supernet_trains_at_a_lower_resolution_and_costs_stay_benchmark_size(tiny_data, tmp_path):
    cfg = tiny_cfg(tiny_data, "resolution=16", "epochs=1")
    train_supernet(cfg, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["train_resolution"] == 16 and info["image_size"] == 32
    with pytest.raises(RlnasError, match="resolution"):
        load_config("nb201-cifar10", ["resolution=2"])


@pytest.mark.parametrize("preset", ["nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120",
                                    "darts-cifar10", "darts-imagenet"])
def test_paper_presets_keep_the_paper_angle(preset):
    assert load_config(preset)["search"]["scorer"] == "angle"


def test_fast_preset_runs_end_to_end_and_names_its_scorer(tiny_data, tmp_path, capsys):
    table = tmp_path / "nb201.csv"
    _synthetic_table(table)
    run = tmp_path / "run"
    args = [f"root={tiny_data}", "channels=4", "cells=1", "batch=48", "data.nb201_half=false",
            f"nasbench201={table}", "search.generations=3"]
    assert main(["run", "nb201-cifar10-fast", *args, "--out", str(run), "-q"]) == 0
    err = capsys.readouterr().err
    assert "nb201-cifar10-fast is the measured fast recipe" in err
    assert json.loads((run / "result.json").read_text())["scorer"] == "distance_sum"
    assert list(csv.DictReader(open(run / "ranking.csv")))[0].keys() >= {"arch", "distance_sum"}
    rows = list(csv.DictReader(open(run / "stability.csv")))
    assert rows and int(rows[-1]["epoch"]) <= 6
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["scorers"] == ["distance_sum", "params"]
    assert ev["per_run"][0]["over_training"][0]["scorer"] == "distance_sum"


def test_a_paper_preset_on_a_cpu_proposes_the_fast_recipe():
    from rlnas.config import preset_note
    cfg = load_config("nb201-cifar10")
    note = preset_note("nb201-cifar10", cfg, "cpu")
    assert "nb201-cifar10-fast" in note and "tau" in note
    assert preset_note("nb201-cifar10", cfg, "cuda") is None
    assert preset_note("nb201-cifar10", load_config("nb201-cifar10", ["epochs=3"]), "cpu") is None
    assert "darts-cifar10-fast" in preset_note("darts-cifar10", load_config("darts-cifar10"), "cpu")


@pytest.mark.parametrize("wd_classifier", [False, True])
def test_weight_decay_on_conv_weights_and_optionally_the_classifier(wd_classifier):
    from rlnas.loop import LoopSpec, make_optimizer
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    spec = LoopSpec(model=model, loader=None, epochs=1, lr=0.1, lr_min=0.0, momentum=0.9,
                    nesterov=False, weight_decay=1e-4, device=torch.device("cpu"),
                    wd_conv_only=True, wd_classifier=wd_classifier)
    decayed, free = make_optimizer(spec).param_groups
    assert free["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-4
    names = {id(p): n for n, p in model.named_parameters()}
    want = {"0.weight"} | ({"3.weight", "3.bias"} if wd_classifier else set())
    assert {names[id(p)] for p in decayed["params"]} == want


def test_cost_command_for_other_spaces_and_bad_sizes(capsys):
    assert main(["cost", "--space", "mobilenet", "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params_m"] == pytest.approx(5.256, abs=5e-4)
    assert out["flops_m"] == pytest.approx(473.2, abs=0.05)
    assert main(["cost", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                 "--channels", "-3"]) == 2
    assert "--channels must be a positive integer" in capsys.readouterr().err


def test_search_by_a_proxy_or_an_ensemble_loads_the_run_images(tiny_data, tmp_path):
    from rlnas.pipeline import search as stages
    train_supernet(tiny_cfg(tiny_data, "epochs=1", "search.num_samples=12"), tmp_path / "run",
                   progress=False)
    run = open_run(tmp_path / "run")
    res = stages.search(run, method="random", scorer="angle_sum+jacov")
    assert res["scorer"] == "angle_sum+jacov" and res["evaluations"] == 12
    assert "percentile rank" in res["score_meaning"] and "angle_sum, jacov" in res["score_meaning"]


def test_an_ensemble_score_is_the_mean_percentile_rank_of_its_members(capsys):
    """a+b scores each arch by the mean over a and b of its percentile rank in the space's
    reference set (all 15,625 NB201 cells): in (0, 1], 1 = the best by both; `rlnas scorers`
    says so."""
    from scipy.stats import rankdata

    from rlnas.scorers import get_scorer
    space = get_space("nb201")
    every = space.enumerate()
    cost = space.cost(every)
    rnd = get_scorer("random", seed=3)(every)
    want = (rankdata(cost["params"]) + rankdata(cost["flops"]) + rankdata(rnd)) / 3 / len(every)
    got = get_scorer("params+flops+random", seed=3)(every[::97])
    np.testing.assert_allclose(got, want[::97], rtol=0, atol=1e-12)
    assert 0 < got.min() and got.max() <= 1
    both = get_scorer("params+flops")(every)
    assert both.max() == pytest.approx(1.0)  # the largest arch is the best by both members
    assert main(["scorers"]) == 0
    out = capsys.readouterr().out
    assert "rank ensemble a+b+...: the mean over its members of the arch's percentile rank" in out
    assert max(len(line) for line in out.splitlines()) <= 120


@pytest.mark.parametrize("space_name", ["nb201", "darts", "nasbench-macro"])
def test_an_ensemble_score_is_a_function_of_the_arch_alone(space_name):
    """An evolution search scores one generation at a time and keeps the best over all of
    them: an arch's ensemble score must not depend on the archs scored with it."""
    from rlnas.scorers import get_scorer
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    archs = np.array([space.sample(rng) for _ in range(60)], dtype=np.int64)
    scorer = get_scorer("params+random", space=space_name, seed=1)
    whole = scorer(archs)
    parts = np.concatenate([scorer(archs[i:i + 7]) for i in range(0, len(archs), 7)])
    np.testing.assert_array_equal(whole, parts)
    alone = np.array([scorer(archs[i:i + 1])[0] for i in range(len(archs))])
    np.testing.assert_array_equal(whole, alone)
    fresh = get_scorer("params+random", space=space_name, seed=1)(archs[::-1])[::-1]
    np.testing.assert_array_equal(whole, fresh)  # the reference set is seeded, not drawn anew


def test_an_ensemble_member_that_is_a_proxy_gets_a_small_reference_sample():
    """A zero-cost proxy costs about a second an arch: its reference is a seeded sample of 100
    archs even where the space is enumerable; a weight or size member gets the enumeration."""
    from rlnas.scorers import REFERENCE_SAMPLE_PROXY, ScoreContext, _reference_of
    ctx = ScoreContext(space=get_space("nb201"), seed=2)
    proxy = _reference_of("nwot", ctx)()
    assert 0 < len(proxy) <= REFERENCE_SAMPLE_PROXY
    np.testing.assert_array_equal(proxy, _reference_of("nwot", ctx)())
    assert len(_reference_of("params", ctx)()) == 15625


def test_reference_percentile_is_the_average_rank_with_ties_and_nan_lowest():
    from scipy.stats import rankdata

    from rlnas.scorers import reference_percentile
    rng = np.random.default_rng(5)
    ref = rng.integers(0, 20, 200).astype(float)
    ref[:5] = np.nan
    ranks = rankdata(np.nan_to_num(ref, nan=-np.inf)) / len(ref)  # the reference itself
    ordered = np.sort(np.nan_to_num(ref, nan=-np.inf))
    np.testing.assert_allclose(reference_percentile(ordered, ref), ranks, rtol=0, atol=1e-12)
    new = np.array([-5.0, 7.5, 100.0, np.nan, 3.0])  # outside the set, and tied with it
    slow = [(np.sum(ordered < v) + (np.sum(ordered == v) + 1) / 2) / len(ordered)
            for v in np.nan_to_num(new, nan=-np.inf)]
    np.testing.assert_allclose(reference_percentile(ordered, new), slow, rtol=0, atol=1e-12)


# --- optional TensorBoard logging (RLNAS_TENSORBOARD) ------------------------------------------
class _FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is an optional extra)."""

    made = []

    def __init__(self, log_dir=None, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        _FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        assert isinstance(value, float) and isinstance(step, int)
        self.scalars.append((tag, step, value))

    def flush(self):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def fake_board(monkeypatch):
    from rlnas import tensorboard
    _FakeWriter.made = []
    monkeypatch.setattr(tensorboard, "_summary_writer", lambda: _FakeWriter)
    return _FakeWriter.made


def test_tensorboard_logs_per_epoch_scalars_and_the_stability_tau(tiny_data, tmp_path,
                                                                   monkeypatch, fake_board):
    monkeypatch.setenv("RLNAS_TENSORBOARD", "1")
    cfg = tiny_cfg(tiny_data, "epochs=3", "train.stop_when_stable=0.0", "train.stability_every=1")
    train_supernet(cfg, tmp_path / "run", progress=False)
    (w,) = fake_board
    assert w.log_dir == str(tmp_path / "run" / "tensorboard") and w.purge_step is None and w.closed
    by_tag = {}
    for tag, step, value in w.scalars:
        by_tag.setdefault(tag, []).append((step, value))
    for tag in ("loss", "train_acc", "lr", "images_per_s"):
        assert [s for s, _ in by_tag[f"supernet/{tag}"]] == [1, 2, 3], tag
    # the same numbers as metrics.csv; tau once there is a previous ranking (epochs 2 and 3)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [f"{v:.6g}" for _, v in by_tag["supernet/loss"]] == [r["loss"] for r in rows]
    taus = list(csv.DictReader(open(tmp_path / "run" / "stability.csv")))
    assert [s for s, _ in by_tag["supernet/stability_tau"]] == [2, 3]
    assert [f"{v:.6f}" for _, v in by_tag["supernet/stability_tau"]] == \
        [r["tau_previous"] for r in taus[1:]]
    assert "scalars" not in load_checkpoint(tmp_path / "run" / "ckpt" / "last.pt")


def test_tensorboard_dir_holds_one_folder_per_run_and_a_resume_purges_replayed_epochs(
        tiny_data, tmp_path, monkeypatch, fake_board):
    monkeypatch.setenv("RLNAS_TENSORBOARD", str(tmp_path / "tb"))
    cfg = tiny_cfg(tiny_data, "train.ckpt_every_steps=2", "epochs=3")
    with pytest.raises(KeyboardInterrupt):  # killed at step 5 (epoch 2); last.pt is step 4
        train_supernet(cfg, tmp_path / "myrun", progress=False, stop_at_step=5)
    train_supernet(cfg, tmp_path / "myrun", progress=False)
    first, second = fake_board
    assert first.log_dir == second.log_dir == str(tmp_path / "tb" / "myrun")
    assert first.closed and [s for t, s, _ in first.scalars if t == "supernet/loss"] == [1]
    assert second.purge_step == 2  # epoch 2 is logged again from the checkpoint on
    assert [s for t, s, _ in second.scalars if t == "supernet/loss"] == [2, 3]


@pytest.mark.parametrize("value", ["", "0", "off"])
def test_tensorboard_off_writes_nothing(value, tiny_data, tmp_path, monkeypatch, fake_board):
    monkeypatch.setenv("RLNAS_TENSORBOARD", value)
    train_supernet(tiny_cfg(tiny_data, "epochs=1"), tmp_path / "run", progress=False)
    assert fake_board == [] and not (tmp_path / "run" / "tensorboard").exists()


def test_tensorboard_asked_for_without_the_package_is_a_one_line_error(tiny_data, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("RLNAS_TENSORBOARD", "1")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(RlnasError, match=r"RLNAS_TENSORBOARD is set but the tensorboard package "
                                         r"is not installed: pip install 'rlnas\[tensorboard\]'"
                       ) as err:
        train_supernet(tiny_cfg(tiny_data, "epochs=1"), tmp_path / "run", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "ckpt").exists()  # refused before any work


def test_stability_rows_follow_the_checkpoint_like_metrics(tiny_data, tmp_path):
    """stability.csv's row of an epoch is written after that epoch's checkpoint and carried in
    it: a resume drops rows past the checkpoint and restores one a kill left unwritten."""
    cfg = tiny_cfg(tiny_data, "epochs=3", "train.stop_when_stable=0.0",
                   "train.stability_every=1")
    run = tmp_path / "run"
    train_supernet(cfg, run, progress=False)
    log = run / "stability.csv"
    full = log.read_text()
    lines = full.splitlines(keepends=True)
    assert lines[0] == "epoch,tau_previous,stop\n" and len(lines) == 4
    assert lines[1].startswith("1,,0")
    log.write_text("".join(lines[:-1]))  # killed between the last checkpoint and its row
    assert train_supernet(cfg, run, progress=False)["already_done"]
    assert log.read_text() == full
    log.write_text(full + "4,0.5,0\n")  # a row past the checkpoint (an older rlnas)
    with pytest.raises(RlnasError, match="stability.csv is damaged"):
        train_supernet(cfg, run, progress=False)  # epoch 4 of a 3-epoch run: damage
    log.write_text(full.replace("\n3,", "\n3,x", 1))
    with pytest.raises(RlnasError, match="stability.csv is damaged: line 4"):
        train_supernet(cfg, run, progress=False)
