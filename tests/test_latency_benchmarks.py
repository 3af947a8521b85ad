"""The metrics of benchmarks/latency_accuracy.py and benchmarks/latency_what_it_buys.py against
hand-computed values, and the what-it-buys picks against an explicit reference on a tiny run
(timings themselves are not tested: they are the benchmarks' output)."""
import json

import numpy as np
import pytest

from conftest import benchmark_script
from rlnas.spaces import get_space

accuracy = benchmark_script("latency_accuracy")
buys = benchmark_script("latency_what_it_buys")


def test_summary_by_hand():
    predicted = np.array([1.0, 2.0, 3.0, 5.0])
    measured = np.array([1.0, 2.5, 2.0, 4.0])
    s = accuracy.summary(predicted, measured)
    # relative errors 0, 0.2, 0.5, 0.25; signed 0, -0.2, +0.5, +0.25
    assert s["median_rel_error"] == pytest.approx(0.225)
    assert s["p90_rel_error"] == pytest.approx(0.25 + 0.7 * (0.5 - 0.25))
    assert s["median_signed_error"] == pytest.approx(0.125)
    # pairs: 5 concordant, 1 discordant (items 2, 3) -> (5 - 1) / 6
    assert s["kendall_tau"] == pytest.approx(4 / 6)
    assert (s["measured_ms_min"], s["measured_ms_median"], s["measured_ms_max"]) == (1.0, 2.25,
                                                                                      4.0)


def test_sample_archs_are_distinct_networks_and_seeded():
    space = get_space("nb201")
    a = accuracy.sample_archs(space, 50, seed=3)
    keys = {space.to_str(space.canonical(tuple(x))) for x in a}
    assert len(a) == 50 and len(keys) == 50
    np.testing.assert_array_equal(a, accuracy.sample_archs(space, 50, seed=3))
    assert not np.array_equal(a, accuracy.sample_archs(space, 50, seed=4))


def test_alone_table_sums_its_entries_and_times_every_op_once_per_shape():
    from test_latency import FAST, SPACE
    wall, cpu, seconds = accuracy.alone_table(SPACE, {}, FAST)
    n = int(SPACE.num_ops.sum())
    assert wall.shape == cpu.shape == (n + 2,) and (wall > 0).all() and seconds > 0
    # blocks 1 and 2 share their op list on one input shape: timed once
    np.testing.assert_array_equal(wall[SPACE.offsets[1]:SPACE.offsets[1] + 3],
                                  wall[SPACE.offsets[2]:SPACE.offsets[2] + 3])
    archs = SPACE.enumerate()
    expected = [wall[-2] + wall[-1] + sum(wall[SPACE.offsets[b] + o] for b, o in enumerate(a))
                for a in archs]
    np.testing.assert_allclose(accuracy.predict_from(wall, SPACE, archs), expected)


def test_table_array_is_the_product_table_in_the_baseline_layout(tmp_path):
    from rlnas.latency import ChainLatency
    from test_latency import FAST, SPACE
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    table = accuracy.table_array(model.table(), SPACE)
    archs = SPACE.enumerate()
    np.testing.assert_allclose(model.scale * accuracy.predict_from(table, SPACE, archs),
                               model(archs), rtol=1e-12)


def test_flops_stand_in_by_hand():
    flops = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    ms = np.array([1.0, 3.0, 2.0, 4.0, 5.0, np.inf])
    # median latency per FLOPs value: 1 -> 2, 2 -> 3, 3 -> 5 (the cell that cannot run is out)
    assert buys.flops_stand_in(flops, ms, 1.9) is None
    assert buys.flops_stand_in(flops, ms, 2.0) == 1.0
    assert buys.flops_stand_in(flops, ms, 4.9) == 2.0
    assert buys.flops_stand_in(flops, ms, 5.0) == 3.0
    # not monotone: the largest value that fits, not the first
    assert buys.flops_stand_in(np.array([1.0, 2.0, 3.0]), np.array([2.0, 9.0, 3.0]), 3.0) == 3.0


def test_mean_std():
    s = buys.mean_std([1.0, 2.0, 6.0])
    assert s["mean"] == 3.0 and s["std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert buys.mean_std([4.0])["std"] is None


@pytest.mark.slow
def test_what_it_buys_against_an_explicit_reference(tmp_path, capsys):
    """A tiny NB201 run, a device table and a ground truth of our own: every pick is the best
    scored arch within its limit (scored here, explicitly), the oracle is the best accuracy
    within the latency limit, and a violation is counted where the pick's latency exceeds it."""
    from conftest import write_npz
    from rlnas.cli import main
    from rlnas.engine import open_run
    from rlnas.stages import cost_kwargs, scorer_for
    from test_latency import write_nb201_table

    space = get_space("nb201")
    archs = space.enumerate()
    rng = np.random.default_rng(0)
    ms = rng.uniform(1, 10, len(archs))
    ms[rng.random(len(archs)) < 0.1] = -1  # cannot run on the device
    table = write_nb201_table(tmp_path / "dev.csv", value=lambda i: ms[i])
    acc = rng.uniform(50, 95, len(archs))
    truth = tmp_path / "nb201.csv"
    truth.write_text("arch,cifar10_test\n" + "".join(
        f"{space.to_str(tuple(a))},{v}\n" for a, v in zip(archs, acc)))
    write_npz(tmp_path / "train_1.npz", 64, seed=0)
    run = tmp_path / "run"
    assert main(["train", "nb201-cifar10", f"root={tmp_path}", "channels=4", "cells=1",
                 "epochs=1", "batch=32", "data.nb201_half=false", "--out", str(run),
                 "-q"]) == 0
    doc = buys.main([str(run), "--hw", str(table), "--nb201", str(truth), "--percentiles",
                     "50", "--out", str(tmp_path / "out")])
    assert "| dev | " in capsys.readouterr().out
    (row,) = doc["rows"]
    latency = np.where(ms < 0, np.inf, ms)
    limit = float(np.percentile(latency[np.isfinite(latency)], 50))
    assert row["limit_ms"] == pytest.approx(limit)
    within = latency <= limit
    best = np.flatnonzero(within)[np.argmax(acc[within])]
    assert row["oracle"]["arch"] == space.to_str(tuple(archs[best]))
    r = open_run(run)
    flops = space.cost(archs, **cost_kwargs(r))["flops"]
    for scorer in (doc["scorer"], "params"):
        scores = np.asarray(scorer_for(r, scorer, bars=False)(archs), dtype=np.float64)
        for kind, ok in (("latency", within), ("flops", flops <= row["flops_limit_m"])):
            pick = row["picks"][f"{scorer}/{kind}"]
            i = [space.to_str(tuple(a)) for a in archs].index(pick["archs"][0])
            assert ok[i] and scores[i] == scores[ok].max()
            assert pick["acc"]["mean"] == pytest.approx(acc[i])
            assert pick["violations"] == int(not latency[i] <= limit)
    saved = json.loads((tmp_path / "out" / "what_it_buys.json").read_text())
    assert saved["rows"][0]["picks"].keys() == row["picks"].keys()
    assert (tmp_path / "out" / "what_it_buys.md").read_text().startswith("NB201 CIFAR-10")
