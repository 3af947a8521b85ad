"""The package layout: no import cycle at module level, the old module paths kept for one release
(with a DeprecationWarning), and every script in benchmarks/ and examples/ still compiles."""
import ast
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rlnas"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = SRC):
    """module -> the rlnas modules its top-level statements import (imports inside functions,
    which defer an upward call to run time, are left out)."""
    modules = {_module_name(p): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                subs = {f"{base}.{a.name}" for a in node.names} & set(modules)
                # `from . import sub` imports the submodule, not the package's own code
                edges |= subs if subs and not node.module else subs | {base}
        graph[name] = {m for m in edges if m in modules and m != name}
    return graph


def cycles(graph):
    """Every import cycle found by a depth-first walk, as a list of module names."""
    found, state, stack = [], {}, []

    def walk(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                walk(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m)
    return found


def test_no_import_cycle_at_module_level():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


MOVED = {
    "rlnas.engine": ("train_supernet", "open_run", "LoopSpec", "run_loop", "CHANNELS_LAST",
                     "resolve_device", "autocast_dtype", "prepare_training_data", "Run"),
    "rlnas.stages": ("rank", "search", "scorer_for", "cost_kwargs", "best_first", "search_name",
                     "read_ranking", "run_scorer", "score_context", "needs_data"),
    "rlnas.evolution": ("Constraint", "EvolutionSettings", "evolution_search", "run_search"),
    "rlnas.retraining": ("train_network", "export", "load_exported_state", "load_network",
                         "evaluate_network", "resolve_arch"),
    "rlnas.check": ("check_run", "verdict", "pick_archs", "format_report"),
    "rlnas.benchmark": ("load_nb201_table", "correlation_report", "scatter_plot",
                        "nb201_disconnected", "tau_over_training_plot"),
    "rlnas.bench": ("SETTINGS", "run_bench"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_still_works_and_says_where_its_names_went(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message)
               for w in caught)
    for name in MOVED[old]:
        assert getattr(module, name) is not None, name


def test_the_old_keywords_still_work(tmp_path):
    from rlnas.pipeline.search import search_name
    with pytest.warns(DeprecationWarning, match="final="):
        assert search_name("evolution", "angle", final="epoch_3.pt") == \
            search_name("evolution", "angle", checkpoint="epoch_3.pt")


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT).as_posix() for folder in
                                          ("benchmarks", "examples")
                                          for p in (ROOT / folder).rglob("*.py")))
def test_every_benchmark_and_example_script_compiles(script):
    compile((ROOT / script).read_text(), script, "exec")


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT).as_posix() for folder in
                                          ("benchmarks", "examples")
                                          for p in (ROOT / folder).rglob("*.py")))
def test_every_rlnas_name_the_scripts_import_exists(script):
    """What the scripts import from rlnas (at any depth, without running them) exists (a
    deprecated path, MOVED, still resolves for one release)."""
    for node in ast.walk(ast.parse((ROOT / script).read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rlnas":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}") is not None, (node.module, alias.name)
