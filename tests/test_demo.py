"""`rlnas demo` end to end at a tiny budget (the real demo is the same code with more epochs)."""
import pytest

pytest.importorskip("sklearn")

from rlnas.demo import run_demo  # noqa: E402


def test_demo_runs_and_reports_three_groups(tmp_path, capsys):
    rows = run_demo(tmp_path / "demo", epochs=2, progress=False, retrain_epochs=1, group_size=2)
    out = capsys.readouterr().out
    assert [r[0] for r in rows] == ["top angle"] * 2 + ["low angle"] * 2 + ["random"] * 2
    angles = [r[2] for r in rows]
    assert angles[0] >= angles[1] >= max(angles[2:])  # top first, ranked by the angle
    assert all(0 <= r[3] <= 100 for r in rows)
    assert "summary" in out and "Kendall tau" in out
    assert (tmp_path / "demo" / "ranking.csv").exists()
