"""`rlnas demo` end to end at a tiny budget (the real demo is the same code with more epochs)."""
import pytest

pytest.importorskip("sklearn")

from rlnas.demo import run_demo  # noqa: E402


def test_demo_runs_and_reports_three_groups(tmp_path, capsys):
    rows = run_demo(tmp_path / "demo", epochs=2, progress=False, retrain_epochs=1, group_size=2)
    out = capsys.readouterr().out
    assert [r[0] for r in rows] == ["top"] * 2 + ["low"] * 2 + ["random"] * 2
    scores = [r[2] for r in rows]
    assert scores[0] >= scores[1] >= max(scores[2:])  # top first, ranked by the scorer
    assert all(0 <= r[3] <= 100 for r in rows)
    assert "summary" in out and "Kendall tau(distance_sum" in out and "tau(params" in out
    assert (tmp_path / "demo" / "ranking.csv").exists()
