"""Plots that explain (issue 12, item 7): what each figure draws, read back from the figure; and
the picture of a found arch (rlnas.archplot) in every space."""
import numpy as np
import pytest

from rlnas.archplot import arch_figure
from rlnas.errors import RlnasError
from rlnas.plots import (
    scatter_figure,
    scatter_plot,
    score_label,
    tau_over_training_figure,
    tau_over_training_plot,
)
from rlnas.sizecontrol import (
    budget_ladder,
    constrained_benchmark,
    constrained_figure,
    format_constrained,
    plot_constrained,
)
from rlnas.spaces import get_space
from rlnas.spaces.nb201 import nb201_conv_free, nb201_disconnected

SPACE = get_space("nb201")
PNG = b"\x89PNG\r\n\x1a\n"


def arch(genes):
    return SPACE.to_str(tuple(genes))


ALL_NONE = arch([0, 0, 0, 0, 0, 0])
DEAD_OUT = arch([1, 1, 1, 0, 0, 0])   # edges into node 3 all none: no path to the output
ONLY_SKIP = arch([0, 0, 0, 1, 0, 0])  # input -> output by one skip edge
ALL_CONV = arch([3, 3, 3, 3, 3, 3])


@pytest.fixture(scope="module")
def space_cells():
    archs = SPACE.enumerate()
    return archs, [arch(a) for a in archs]


def test_disconnected_cells_are_those_with_no_input_output_path(space_cells):
    assert nb201_disconnected([ALL_NONE, DEAD_OUT, ONLY_SKIP, ALL_CONV]).tolist() == \
        [True, True, False, False]
    assert nb201_disconnected(ALL_NONE).tolist() == [True]
    # anything that is not an NB201 arch string counts as connected
    assert not nb201_disconnected(["arch0", "", None, "|a|b|", 3]).any()
    archs, strs = space_cells
    dead = nb201_disconnected(strs)
    # exactly the cells whose angle has no fixed part (the angle is 0 there)
    assert np.array_equal(dead, SPACE.angle_multiplicity(archs)[:, 0] == 0)
    assert dead.sum() == 341


def _title(fig):
    return fig.axes[0].get_title()


def _legend(ax):
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


def _scatter_points(ax):
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_scatter_leaves_disconnected_cells_out_and_says_how_many(space_cells):
    archs, strs = space_cells
    dead = nb201_disconnected(strs)
    rng = np.random.default_rng(0)
    acc = np.where(dead, 10.0, 80 + 10 * rng.random(len(strs)))
    score = np.where(dead, 0.0, 0.5 + 0.01 * acc + 0.1 * rng.random(len(strs)))
    fig = scatter_figure(score, acc, "angle vs cifar10_test", "angle", "cifar10_test (%)",
                         archs=strs)
    title, ax = _title(fig), fig.axes[0]
    assert f"over all {len(strs)} cells" in title
    assert f"over the {len(strs) - 341} drawn" in title
    assert "341 disconnected cells not drawn (no input-output path; median cifar10_test 10.0)" \
        in title
    assert _scatter_points(ax) == len(strs) - 341
    lo, hi = ax.get_xlim()
    assert lo > 0.3  # the x axis spans the connected cells, not 0 .. max
    # without arch strings: every point, as before
    old = scatter_figure(score, acc, "t", archs=None)
    assert _scatter_points(old.axes[0]) == len(strs) and "disconnected" not in _title(old)


def test_the_stripe_of_cells_without_convolution_is_explained(space_cells):
    """Connected cells with no convolution on an input-output path train no weight the output
    uses: the distance scorers give them all 0, a vertical stripe the plot names."""
    archs, strs = space_cells
    free = nb201_conv_free(strs)
    assert nb201_conv_free([ONLY_SKIP, ALL_NONE, ALL_CONV, arch([4, 0, 0, 1, 0, 3])]).tolist() \
        == [True, False, False, True]  # a conv cut off by none edges does not count
    assert free.sum() == 1642 and not (free & nb201_disconnected(strs)).any()
    rng = np.random.default_rng(0)
    acc = 60 + 30 * rng.random(len(strs))
    score = np.where(free, 0.0, 1 + rng.random(len(strs)))
    ax = scatter_figure(score, acc, "t", "distance_sum", archs=strs).axes[0]
    (note,) = [t for t in ax.texts if "no convolution" in t.get_text()]
    assert note.get_text().startswith("1642 connected cells with no convolution")
    assert "all score 0" in note.get_text() and note.xy[0] == 0.0
    # not a stripe (scores that differ), or not NB201 strings: nothing to name
    ax = scatter_figure(rng.random(len(strs)), acc, "t", archs=strs).axes[0]
    assert not ax.texts


def test_axis_labels_carry_units():
    assert score_label("params") == "params (M)" and score_label("flops") == "FLOPs (M)"
    assert score_label("angle") == "angle (rad)" and score_label("distance_sum") == "distance_sum"
    assert score_label("angle+params") == "angle+params (mean percentile rank)"


def test_scatter_marks_the_searched_cell_and_the_params_pick(tmp_path):
    strs = [ALL_NONE, ONLY_SKIP, ALL_CONV, arch([1, 2, 3, 4, 1, 2]), arch([2, 2, 2, 2, 2, 2])]
    score = np.array([0.0, 0.4, 0.9, 0.7, 0.5])
    acc = np.array([10.0, 60.0, 93.5, 90.0, 88.0])
    marks = {"searched cell (evolution, angle)": strs[2], "params baseline's pick": 4,
             "a disconnected pick": ALL_NONE, "elsewhere": "|nor_conv_1x1~0|+|x|"}
    fig = scatter_figure(score, acc, "t", "angle", "cifar10_test (%)", archs=strs, marks=marks)
    legend = _legend(fig.axes[0])
    assert legend[0] == "cells (4)"
    assert legend[1] == "searched cell (evolution, angle): 93.50"
    assert legend[2] == "params baseline's pick: 88.00"
    assert legend[3] == "a disconnected pick: disconnected, cifar10_test 10.00, not drawn"
    assert legend[4] == "elsewhere: not among the scored cells"
    assert _scatter_points(fig.axes[0]) == 4 + 2  # the cells drawn and the two marks
    # marks on one cell: a star, then outlines around it, and the legend says it is one cell
    both = {"searched cell (evolution, angle)": strs[2], "params baseline's pick": strs[2],
            "best cell (oracle)": 2}
    ax = scatter_figure(score, acc, "t", archs=strs, marks=both).axes[0]
    assert _legend(ax)[2:] == [
        "params baseline's pick: 93.50, the same cell as the searched cell",
        "best cell (oracle): 93.50, the same cell as the searched cell"]
    star, diamond, ring = ax.collections[1:4]
    assert (star.get_facecolor()[0][3] == 1 and diamond.get_facecolor().size == 0
            and ring.get_facecolor().size == 0)  # filled star, hollow outlines
    assert star.get_sizes()[0] < diamond.get_sizes()[0] < ring.get_sizes()[0]
    out = scatter_plot(score, acc, tmp_path / "s.png", "t", archs=strs, marks=marks)
    assert out.read_bytes()[:8] == PNG and [p.name for p in tmp_path.iterdir()] == ["s.png"]
    with pytest.raises(RlnasError, match="5 scores but 2 arch strings"):
        scatter_plot(score, acc, tmp_path / "x.png", "t", archs=strs[:2])


def test_constrained_picks_never_a_disconnected_cell_and_the_report_says_so(space_cells,
                                                                           tmp_path):
    """Disconnected cells (~10 %) are never picked, by a scorer or by the largest-that-fits
    baseline: the params scorer picks exactly the baseline's cell under every limit (before,
    it picked a disconnected cell wherever one came first among the tied largest cells)."""
    archs, strs = space_cells
    cost = SPACE.cost(archs)["params"]
    dead = nb201_disconnected(strs)
    rng = np.random.default_rng(1)
    acc = np.where(dead, 10.0, 70 + 20 * rng.random(len(strs)) + 5 * cost)
    res = constrained_benchmark(strs, {"params": cost, "noise": rng.random(len(strs))}, acc,
                                cost, budget_ladder(cost, 10))
    largest, params = res["largest"], res["methods"]["params"]
    assert largest["skipped_disconnected"] == 341
    for entry in (largest, params, res["methods"]["noise"]):
        assert not nb201_disconnected(entry["arch"]).any()
    assert params["arch"] == largest["arch"] and params["accuracy"] == largest["accuracy"]
    assert params["wins_vs_largest"] == params["losses_vs_largest"] == 0
    assert min(largest["accuracy"]) > 70 and min(params["accuracy"]) > 70
    for i, b in enumerate(res["budgets"]):  # tie statistics over the connected cells only
        top = (cost == largest["cost"][i]) & ~dead
        assert largest["n_tied"][i] == int(top.sum())
        assert largest["tied_mean_accuracy"][i] == pytest.approx(acc[top].mean())
    assert "Neither a scorer nor largest ever picks one of the 341 disconnected cells" in \
        format_constrained(res)

    fig = constrained_figure(res, "pick under a params limit", "params limit (M)")
    ax = fig.axes[0]
    assert "largest that fits (baseline)" in _legend(ax)
    assert ("never picked, by a scorer or largest: the 341 disconnected cells (no input-output "
            "path)") in ax.get_title()
    assert ax.get_ylim()[0] > 60  # no 10 % pick sets the scale
    out = plot_constrained(res, tmp_path / "c.png", "t")
    assert out.read_bytes()[:8] == PNG


def test_constrained_plot_without_disconnected_cells_is_unchanged_in_content():
    n = 50
    rng = np.random.default_rng(2)
    cost, acc = rng.random(n), rng.random(n) * 100
    res = constrained_benchmark([f"a{i}" for i in range(n)], {"s": rng.random(n)}, acc, cost,
                                budget_ladder(cost, 4))
    assert res["largest"]["skipped_disconnected"] == 0
    assert "disconnected" not in format_constrained(res)
    fig = constrained_figure(res)
    assert "largest that fits (baseline)" in _legend(fig.axes[0])
    assert "disconnected" not in fig.axes[0].get_title()


def test_constrained_all_disconnected_under_a_budget_gives_no_baseline_pick():
    strs = [ALL_NONE, DEAD_OUT, ONLY_SKIP, ALL_CONV]
    cost, acc = [1.0, 1.0, 2.0, 3.0], [10.0, 10.0, 60.0, 93.0]
    res = constrained_benchmark(strs, {"s": [4.0, 3.0, 2.0, 1.0]}, acc, cost, [1.0, 2.0, 3.0])
    largest = res["largest"]
    assert largest["index"] == [None, 2, 3] and largest["accuracy"] == [None, 60.0, 93.0]
    assert largest["n_tied"] == [None, 1, 1] and largest["mean_tied_mean_accuracy"] == 76.5
    # nor does the scorer pick a disconnected cell, whatever its score
    assert res["methods"]["s"]["index"] == [None, 2, 2]
    assert res["methods"]["s"]["wins_vs_largest"] == 0
    assert res["methods"]["s"]["losses_vs_largest"] == 1
    assert "n/a" in format_constrained(res)
    constrained_figure(res)  # draws


def _over(seed, points, correlation=None):
    rows = [{"checkpoint": name, "epoch": ep, "scorer": "angle",
             "tau_previous": prev, "tau": {"cifar10_test": t}} for name, ep, prev, t in points]
    return {"seed": seed, "over_training": rows, "correlation": correlation or {}}


CORR = {"angle": {"columns": {"cifar10_test": {"kendall_tau": 0.52}}},
        "params": {"columns": {"cifar10_test": {"kendall_tau": 0.578}}}}


def test_tau_plot_with_one_checkpoint_is_a_labelled_tau_next_to_the_baselines(tmp_path):
    per_run = [_over(0, [("last.pt", 10, None, 0.52)], CORR),
               _over(1, [("last.pt", 10, None, 0.47)])]
    fig = tau_over_training_figure(per_run, ["cifar10_test"])
    ax = fig.axes[0]
    assert "one checkpoint per run, nothing to follow over training" in ax.get_title()
    assert ax.get_xlabel() == "Kendall tau vs cifar10_test"  # not an epoch axis
    texts = [t.get_text() for t in ax.texts]
    assert "angle, seed 0: tau 0.520 (last.pt, epoch 10)" in texts
    assert "angle, seed 1: tau 0.470 (last.pt, epoch 10)" in texts
    assert _legend(ax) == ["params (seed 0): 0.578"]  # the angle itself is not repeated
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seed 0", "seed 1"]
    assert any("train.keep_every_epochs" in t.get_text() for t in fig.texts)
    lo, hi = ax.get_xlim()
    assert -1 <= lo < 0 < 0.578 < hi <= 1
    out = tau_over_training_plot(per_run, ["cifar10_test"], tmp_path / "plots" / "tau.png")
    assert out.read_bytes()[:8] == PNG


def test_tau_plot_over_several_checkpoints_has_integer_epochs_and_the_params_level():
    """Two panels: tau with the (headline) column next to each other scorer's level, in a
    colour and dash of its own; below, on its own scale, the stability series (tau with the
    previous checkpoint), which a single value no longer leaves as a lone dot on the tau axis."""
    corr = dict(CORR, synflow={"columns": {"cifar10_test": {"kendall_tau": 0.6}}})
    per_run = [_over(0, [("epoch_10.pt", 10, None, 0.4), ("epoch_20.pt", 20, 0.8, 0.45),
                         ("last.pt", 30, 0.9, 0.5)], corr)]
    fig = tau_over_training_figure(per_run, ["cifar10_test", "cifar100_test"])
    ax, low = fig.axes
    assert ax.get_title() == "angle ranking over training: agreement with cifar10_test"
    assert ax.get_ylabel() == "Kendall tau vs cifar10_test"
    assert low.get_xlabel() == "supernet epoch (kept checkpoints)"
    assert _legend(ax) == ["angle, seed 0", "params (seed 0): 0.578", "synflow (seed 0): 0.600"]
    levels = [ln for ln in ax.get_lines() if ln.get_label().startswith(("params", "synflow"))]
    assert len({ln.get_color() for ln in levels}) == 2
    assert len({str(ln.get_linestyle()) for ln in levels}) == 2
    assert "stability" in low.get_title() and _legend(low) == ["seed 0"]
    (prev,) = low.get_lines()
    assert list(prev.get_ydata()) == [0.8, 0.9] and list(prev.get_xdata()) == [20, 30]
    assert not any(0.79 < y < 0.91 for ln in ax.get_lines() for y in ln.get_ydata())
    ticks = [t for t in low.get_xticks() if low.get_xlim()[0] <= t <= low.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)


def test_tau_plot_has_nothing_to_draw_without_checkpoints(tmp_path):
    assert tau_over_training_plot([{"seed": 0, "over_training": []}], ["c"],
                                  tmp_path / "t.png") is None
    assert tau_over_training_plot([_over(0, [("last.pt", 1, None, 0.1)])], [],
                                  tmp_path / "t.png") is None
    assert not (tmp_path / "t.png").exists()


# === a picture of the found architecture ==========================================================
# A picture of the found architecture (issue 21): every space draws its arch.


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("name", ["nb201", "darts", "nasbench-macro", "mobilenet"])
def test_every_space_draws_its_arch_with_every_op_named(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(3))
    diagram = space.arch_diagram(arch)
    fig = arch_figure(diagram, f"{name}: a sampled arch")
    texts = _texts(fig)
    if diagram["kind"] == "cells":
        for cell in diagram["cells"]:
            ops = [op for _, _, op in cell["edges"] if op]
            assert ops and all(op in texts for op in ops)
            assert texts.count(cell["nodes"][1].split("\n")[0]) >= 1
    else:
        assert len(diagram["blocks"]) == space.num_genes
        assert [b["op"] for b in diagram["blocks"]] == \
            [space.blocks[i].ops[g].name for i, g in enumerate(arch)]
        assert all(f"{b['op']}\n{b['detail']}" in texts for b in diagram["blocks"])


def test_nb201_cell_graph_leaves_out_none_edges():
    space = get_space("nb201")
    arch = space.from_str("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|"
                          "nor_conv_1x1~2|")
    (cell,) = space.arch_diagram(arch)["cells"]
    assert cell["edges"] == [(0, 1, "nor_conv_3x3"), (1, 2, "avg_pool_3x3"),
                             (0, 3, "skip_connect"), (2, 3, "nor_conv_1x1")]


def test_darts_cells_have_two_inputs_per_node_and_the_concatenation():
    space = get_space("darts")
    diagram = space.arch_diagram(space.sample(np.random.default_rng(0)))
    for cell in diagram["cells"]:
        ops = [(a, b) for a, b, op in cell["edges"] if op]
        assert sorted(b for _, b in ops) == [2, 2, 3, 3, 4, 4, 5, 5]
        assert [(a, b) for a, b, op in cell["edges"] if not op] == [(j, 6) for j in (2, 3, 4, 5)]


def test_a_skip_block_is_drawn_as_such():
    space = get_space("mobilenet")
    arch = space.from_str("2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2")
    blocks = space.arch_diagram(arch)["blocks"]
    assert [b["skip"] for b in blocks] == [b["op"] == "skip" for b in blocks] and \
        any(b["skip"] for b in blocks)
