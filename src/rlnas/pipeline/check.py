"""`rlnas check RUN`: does the run's ranking hold on this data? Retrain, from scratch with the
TRUE labels of the run's dataset and a short budget, k top-ranked, k middle-ranked and k random
archs, and compare the Kendall tau of the scorer with the retrained test accuracies to that of
the free size baselines (params, FLOPs). A bootstrap over the retrained archs of
tau(scorer) - tau(best baseline) decides the verdict: a winner only when its interval excludes 0.

Works on every space (enumerable ones are ranked exhaustively, the others on a seeded sample).
Per-arch results are written as they finish (``archs/<key>.json``), so an interrupted check
resumes without retraining them; ``check.json`` / ``check.csv`` hold the report.

`rlnas retrain RUN --top K` (:func:`retrain_top`) retrains, the same way (:func:`retrain_picks`),
the K best archs of a search next to the largest and random archs under its limits."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.stats import kendalltau

from ..checks import int_arg, seed_arg
from ..data import align_test_split, load_dataset, make_loader
from ..distributed import resolve_device
from ..errors import RlnasError
from ..files import atomic_write_text, make_dir, write_json_atomic
from ..loop import LoopSpec, run_loop
from ..schema import DataSection, TrainSection
from ..scorers import get_scorer, reference_archs
from .rank import Ranking, best_first, rank, ranking_path
from .retrain import evaluate_network

GROUPS = ("top", "middle", "random")
SAMPLE_SIZE = 1000  # archs scored where a space is too large to rank exhaustively
BOOTSTRAP = 2000
MIN_ARCHS = 5  # below this a rank correlation says nothing
# the short retraining recipe of `rlnas check` and `rlnas demo` (the train section's other keys
# take their defaults: cosine schedule, no clipping, no label smoothing)
SHORT_RETRAIN = {"lr": 0.05, "lr_min": 0.0, "momentum": 0.9, "nesterov": True,
                 "weight_decay": 5e-4, "batch_size": 64}


def candidate_archs(run) -> np.ndarray:
    """Every arch of the run's space where it is enumerable, else a sample of SAMPLE_SIZE
    distinct archs seeded by the run's seed."""
    return reference_archs(run.space, run.config.seed, SAMPLE_SIZE, enumerate_max=None)


def ranked_archs(run, scorer: str):
    """(arch strings, scores), best first: the run's ranking for ``scorer`` (ranked first when
    missing) or, for a space too large to enumerate, a seeded sample of SAMPLE_SIZE archs."""
    space = run.space
    if space.enumerate() is not None:
        path = ranking_path(run, scorer)
        if not path.exists():
            rank(run, scorer=scorer, progress=False)
        ranking = Ranking.read(path)
        return ranking.arch, ranking.score
    archs = candidate_archs(run)
    scores = np.asarray(get_scorer(scorer, run, progress=False).fn(archs), dtype=np.float64)
    order = best_first(scores, archs)
    return [space.to_str(tuple(archs[i])) for i in order], scores[order]


def pick_archs(scores: np.ndarray, k: int, seed: int, groups: Sequence[str] = GROUPS):
    """[(group, index)]: k distinct archs per group from a best-first ranking; archs with a
    non-finite or zero score are skipped (a zero score means the scorer saw no weights, e.g. a
    disconnected NB201 cell). ``low`` is the k worst usable, ``middle`` k around the median."""
    usable = np.flatnonzero(np.isfinite(scores) & (scores != 0))
    if len(usable) < k * len(groups):
        raise RlnasError(f"only {len(usable)} usable archs in the ranking; need "
                         f"{k * len(groups)} for --archs {k} ({len(groups)} groups)")
    taken: List[int] = []
    picks = []
    for group in groups:
        free = usable[~np.isin(usable, taken)]
        if group == "top":
            chosen = free[:k]
        elif group == "low":
            chosen = free[-k:]
        elif group == "middle":
            mid = len(free) // 2 - k // 2
            chosen = free[mid:mid + k]
        else:
            chosen = np.sort(np.random.default_rng(seed).choice(free, k, replace=False))
        taken += [int(i) for i in chosen]
        picks += [(group, int(i)) for i in chosen]
    return picks


def load_check_data(d: DataSection, images: Optional[int], data_root: Optional[str],
                    test_root: Optional[str] = None):
    """(train subset, test) of the run's dataset, ``d`` its data section; errors say how to pass
    it."""
    d = DataSection(d)
    if d.dataset == "digits" and (data_root or test_root):
        # silently ignoring the folder would check other data than the user meant
        raise RlnasError("the digits dataset ships inside scikit-learn: --data-root / "
                         "--test-root do not apply to it")
    root = data_root or d.root
    try:
        train = load_dataset(d.dataset, root, split="train")
        test = load_dataset(d.dataset, test_root or d.test_root or root, split="test")
    except RlnasError as exc:
        raise RlnasError(f"{exc} (pass the {d.dataset} data with --data-root DIR / "
                         f"--test-root FILE)") from None
    n = images or d.subset or len(train.y)
    if n > len(train.y):
        raise RlnasError(f"--images {n} is more than the {len(train.y):,} training images of "
                         f"{d.dataset}")
    if n < len(train.y):
        train = train.subset(np.arange(n))
    return train, align_test_split(train, test)


def retrain_arch(space, arch, train, test, model_kwargs: Dict[str, Any], budget: Dict[str, Any],
                 device, progress: bool = False) -> float:
    """Train the standalone network of ``arch`` from scratch with true labels; top-1 (%)."""
    torch.manual_seed(budget["seed"])
    model = space.network(arch, num_classes=train.num_classes, **model_kwargs).to(device)
    size, recipe = budget["image_size"], TrainSection.of(epochs=budget["epochs"], **SHORT_RETRAIN)
    loader = make_loader(train, train.y, recipe.batch_size, device=device, seed=budget["seed"],
                         augment=budget["augment"], resolution=size)
    run_loop(LoopSpec.from_train(recipe, model, loader, device, precision="fp32",
                                 progress=progress, desc="check"))
    ev = make_loader(test, test.y, 500, device=device, eval_mode=True, resolution=size)
    return float(evaluate_network(model, ev)["top1"])


def _tau(x, y) -> float:
    t = kendalltau(x, y).statistic
    return 0.0 if not np.isfinite(t) else float(t)


def verdict(scorer: str, scores, accs, params, flops, seed: int = 0) -> Dict[str, Any]:
    """Kendall tau of the scorer, params and flops with the accuracies, a bootstrap interval
    (95%) of tau(scorer) - tau(better baseline), and the verdict line it supports."""
    scores, accs = np.asarray(scores, float), np.asarray(accs, float)
    base = {"params": np.asarray(params, float), "flops": np.asarray(flops, float)}
    taus = {scorer: _tau(scores, accs), **{b: _tau(v, accs) for b, v in base.items()}}
    n = len(accs)
    best = max(base, key=lambda b: taus[b])
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, n, n)
        diffs.append(_tau(scores[i], accs[i]) - max(_tau(v[i], accs[i]) for v in base.values()))
    lo, hi = (float(q) for q in np.percentile(diffs, [2.5, 97.5]))
    vs = f"tau {taus[scorer]:.2f} vs {taus['params']:.2f}/{taus['flops']:.2f}"
    ci = f"difference to {best}: 95% interval [{lo:+.2f}, {hi:+.2f}]"
    if n < MIN_ARCHS:
        line, call = f"too few archs to tell ({n}; need {MIN_ARCHS})", "too_few"
    elif lo > 0:
        line, call = f"{scorer} ranks these {n} archs better than params and flops ({vs}; {ci})", \
            "scorer"
    elif hi < 0:
        line, call = (f"{scorer} ranks these {n} archs worse than the size baselines: use {best} "
                      f"({vs}; {ci})"), "baseline"
    else:
        line, call = (f"cannot tell whether {scorer} ranks these {n} archs better than params "
                      f"and flops: too noisy ({vs}; {ci})"), "cannot_tell"
    return {"tau": taus, "best_baseline": best, "difference_interval": [lo, hi],
            "winner": call, "verdict": f"verdict: {line}"}


def _arch_key(arch: str, budget: Dict[str, Any]) -> str:
    text = json.dumps({"arch": arch, **budget}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _load_done(path: Path) -> Optional[float]:
    try:
        return float(json.loads(path.read_text())["test_acc"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or torn: retrain


def retraining_budget(run, epochs: int = 2, images: Optional[int] = None,
                      image_size: Optional[int] = None, channels: Optional[int] = None,
                      cells: Optional[int] = None, seed: int = 0, scorer: Optional[str] = None,
                      data_root: Optional[str] = None, test_root: Optional[str] = None):
    """The short retraining every arch of a comparison gets (the same recipe, data and seed):
    (train, test, model keywords, budget), the data checked against the space.

    Args:
        run: an ``rlnas.rundir.Run``; epochs: retraining epochs; images: training images
            (default: the run's data.subset, else all); image_size: px (default: the run's
            resolution); channels / cells: network sizes where the space has them (default:
            the run's model); seed: training; scorer: the score reported (default the run's);
            data_root / test_root: the data (default: the run's data.root / data.test_root).
    """
    epochs = int_arg(epochs, "--epochs", 1)
    images = None if images is None else int_arg(images, "--images", 1)
    image_size = None if image_size is None else int_arg(image_size, "--image-size", 1)
    seed = seed_arg(seed, "--seed")
    space, d = run.space, run.config.data
    model_kwargs = {k2: v for k2, v in run.config.model.items() if k2 != "drop_path"}
    for name, value in (("channels", channels), ("cells", cells)):
        if value is not None:
            if name not in model_kwargs:
                raise RlnasError(f"space {space.name} has no --{name}")
            model_kwargs[name] = int_arg(value, f"--{name}", 1)
    train, test = load_check_data(d, images, data_root, test_root)
    space.check_image_size(train.image_size, image_size or d.resolution, int(train.num_classes))
    budget = {"scorer": scorer or run.scorer, "epochs": epochs, "images": int(len(train.y)),
              "image_size": int(image_size or d.resolution or train.image_size[0]),
              "model": model_kwargs, "seed": int(seed), "augment": bool(d.augment),
              "dataset": d.dataset}
    return train, test, model_kwargs, budget


def retrain_picks(run, picks: Sequence[Tuple[str, str, float]], train, test,
                  model_kwargs: Dict[str, Any], budget: Dict[str, Any], out: Path,
                  progress: bool = False, log=print) -> List[Dict[str, Any]]:
    """Retrain each picked arch (``(group, arch string, score)``) with ``budget``, each stored
    as it finishes (``out/archs/<key>.json``, keyed by arch and budget: an arch done before is
    not retrained); the rows (group, arch, score, params_m, flops_m, test_acc), in order."""
    space = run.space
    make_dir(out / "archs", "retraining folder")
    chosen = np.array([space.from_str(a) for _, a, _ in picks], dtype=np.int64)
    cost = space.cost(chosen, **run.cost_kwargs)
    device = resolve_device(run.config.device)
    scorer, rows = budget["scorer"], []
    for n, (group, arch, score) in enumerate(picks):
        key_path = out / "archs" / f"{_arch_key(arch, budget)}.json"
        acc = _load_done(key_path)
        t0 = time.time()
        if acc is None:
            acc = retrain_arch(space, space.from_str(arch), train, test, model_kwargs,
                               budget, device, progress)
            write_json_atomic({"arch": arch, "test_acc": acc, "budget": budget,
                               "seconds": time.time() - t0}, key_path)
            note = f"{time.time() - t0:.0f} s"
        else:
            note = "done before"
        rows.append({"group": group, "arch": arch, "score": float(score),
                     "params_m": float(cost["params"][n]), "flops_m": float(cost["flops"][n]),
                     "test_acc": acc})
        log(f"  {group:9s} {scorer} {score:.4g}  test acc {acc:6.2f}%  ({note})  {arch}")
    return rows


def check_run(run, archs: int = 4, epochs: int = 2, images: Optional[int] = None,
              image_size: Optional[int] = None, channels: Optional[int] = None,
              cells: Optional[int] = None, seed: int = 0, scorer: Optional[str] = None,
              out: Optional[Path] = None, data_root: Optional[str] = None,
              test_root: Optional[str] = None,
              groups: Sequence[str] = GROUPS, progress: bool = False,
              log=print) -> Dict[str, Any]:
    """Retrain k archs per group of ``run``'s ranking and judge the scorer against params/flops.

    Args:
        run: an ``rlnas.rundir.Run``.
        archs: k, archs per group; epochs, images, image_size, channels, cells, seed, scorer,
            data_root, test_root: the retraining (:func:`retraining_budget`); out: default
            ``RUN/check``; groups: of ``top``, ``middle``, ``low``, ``random``; log: where
            progress lines go.
    Returns:
        The report written to ``check.json``: ``budget``, ``rows`` (group, arch, score,
        params_m, flops_m, test_acc), ``tau``, ``difference_interval``, ``winner``, ``verdict``.
    """
    k, seed = int_arg(archs, "--archs", 1), seed_arg(seed, "--seed")
    train, test, model_kwargs, budget = retraining_budget(
        run, epochs, images, image_size, channels, cells, seed, scorer, data_root, test_root)
    scorer = budget["scorer"]
    arch_strs, scores = ranked_archs(run, scorer)
    picks = pick_archs(scores, k, seed, groups)
    out = Path(out) if out is not None else run.path / "check"
    log(f"check: retraining {len(picks)} archs of {run.path} ({', '.join(groups)}; k={k}) with "
        f"true labels, {budget['epochs']} epochs on {budget['images']:,} "
        f"{budget['dataset']} images at {budget['image_size']} px -> {out}")
    rows = retrain_picks(run, [(g, arch_strs[i], scores[i]) for g, i in picks], train, test,
                         model_kwargs, budget, out, progress, log)
    report = {"run": str(run.path), "space": run.space.name, "budget": budget, "rows": rows,
              **verdict(scorer, [r["score"] for r in rows], [r["test_acc"] for r in rows],
                        [r["params_m"] for r in rows], [r["flops_m"] for r in rows], seed)}
    write_json_atomic(report, out / "check.json")
    atomic_write_text(out / "check.csv", _csv(rows))
    return report


# ----------------------------------------------------------------------------------------------
# `rlnas retrain RUN --top K`: the best found archs next to the size and random baselines
# ----------------------------------------------------------------------------------------------
def baseline_archs(run, found: Dict[str, Any], exclude: Sequence[str], random: int, seed: int):
    """The baselines of a search ``found`` (a result dict), under its params / FLOPs limits:
    the largest arch (by the limited cost: FLOPs where only FLOPs are limited, else params;
    ties by the other cost, then genome order) and ``random`` seeded uniform archs not in
    ``exclude``. NB201 cells with no input->output path are never picked (no one would: ~10 %
    accuracy); a space too large to enumerate is sampled (SAMPLE_SIZE archs). Returns
    [(group, arch string)]."""
    from ..searchers import Constraint
    from ..spaces.nb201 import nb201_disconnected
    space = run.space
    archs = candidate_archs(run)
    limit = Constraint(max_params=found.get("max_params"), max_flops=found.get("max_flops"),
                       cost_kwargs=run.cost_kwargs)
    archs = archs[limit.mask(space, archs)] if limit.is_active else archs
    strs = [space.to_str(tuple(a)) for a in archs]
    live = ~nb201_disconnected(strs)
    archs, strs = archs[live], [a for a, ok in zip(strs, live) if ok]
    if not len(strs):
        raise RlnasError(f"no arch of {space.name} meets the search's limits "
                         f"({found.get('constraint')})")
    cost = space.cost(archs, **run.cost_kwargs)
    first, second = (("flops", "params") if found.get("max_flops") is not None
                     and found.get("max_params") is None else ("params", "flops"))
    order = np.lexsort((-np.arange(len(strs)), cost[second], cost[first]))
    picks = [("largest", strs[int(order[-1])])]
    free = [i for i, a in enumerate(strs) if a not in set(exclude) | {picks[0][1]}]
    if random > len(free):
        raise RlnasError(f"--random {random}: only {len(free)} other archs meet the search's "
                         f"limits")
    chosen = np.sort(np.random.default_rng(seed).choice(len(free), random, replace=False))
    return picks + [(f"random {n + 1}", strs[free[int(i)]]) for n, i in enumerate(chosen)]


def noise_note(rows: Sequence[Dict[str, Any]], test_images: int) -> Dict[str, Any]:
    """How large a difference of test accuracy the test set alone makes: the binomial standard
    error at the rows' mean accuracy, and the smallest difference between two archs beyond its
    95 % band (1.96 x sqrt(2) standard errors). One training seed per arch: seed-to-seed
    variation comes on top."""
    p = float(np.mean([r["test_acc"] for r in rows])) / 100
    se = 100 * float(np.sqrt(max(p * (1 - p), 1e-12) / max(test_images, 1)))
    band = 1.96 * np.sqrt(2) * se
    return {"test_images": int(test_images), "standard_error": se, "difference_95": band,
            "note": (f"test on {test_images:,} images: at {100 * p:.0f} % the test set alone "
                     f"moves an accuracy by ±{se:.2f} points (1 s.e.), so a difference under "
                     f"{band:.1f} points between two archs is within noise; one training seed "
                     f"per arch, so seed-to-seed variation comes on top")}


def retrain_top(run, top: int = 3, random: int = 3, epochs: int = 2,
                images: Optional[int] = None, image_size: Optional[int] = None,
                channels: Optional[int] = None, cells: Optional[int] = None, seed: int = 0,
                result: Optional[str] = None, out: Optional[Path] = None,
                data_root: Optional[str] = None, test_root: Optional[str] = None,
                progress: bool = False, log=print) -> Dict[str, Any]:
    """``rlnas retrain RUN --top K``: retrain the ``top`` best archs of a search of ``run``
    (``result``: its name, default the latest), the largest arch under the search's limits and
    ``random`` random archs under them, each from scratch with the true labels, the same short
    recipe and the same seed (:func:`retraining_budget`, as ``rlnas check``), and report them
    side by side (``retrain-top.json`` / ``.csv`` / ``.md`` in ``out``, default
    ``RUN/retrain-top``; an arch retrained before with the same budget is not retrained).

    Returns:
        ``budget``, ``search`` (its file, scorer, limits), ``rows`` (role, arch, score,
        params_m, flops_m, test_acc), ``noise`` (:func:`noise_note`) and ``summary`` (the best
        found arch against the largest and the random mean, in points)."""
    k, random = int_arg(top, "--top", 1), int_arg(random, "--random", 0)
    found = run.result(result)
    scorer = found["scorer"]
    if k > len(found["top"]):
        raise RlnasError(f"--top {k}: the search {found.get('file', 'result.json')} kept "
                         f"{len(found['top'])} archs (search.report_top)")
    train, test, model_kwargs, budget = retraining_budget(
        run, epochs, images, image_size, channels, cells, seed, scorer, data_root, test_root)
    tops = [(f"top {n + 1}", row["arch"]) for n, row in enumerate(found["top"][:k])]
    picks = tops + baseline_archs(run, found, [a for _, a in tops], random, seed)
    space = run.space
    scores = get_scorer(scorer, run, progress=False).fn(
        np.array([space.from_str(a) for _, a in picks], dtype=np.int64))
    out = Path(out) if out is not None else run.path / "retrain-top"
    log(f"retrain: the {k} best archs of {found.get('file', 'result.json')} ({scorer}, "
        f"{found['constraint']}), the largest and {random} random archs under its limits, with "
        f"true labels, {budget['epochs']} epoch{'s' * (budget['epochs'] != 1)} on "
        f"{budget['images']:,} {budget['dataset']} "
        f"images at {budget['image_size']} px, seed {seed} -> {out}")
    rows = retrain_picks(run, [(g, a, s) for (g, a), s in zip(picks, scores)], train, test,
                         model_kwargs, budget, out, progress, log)
    rows = [dict(role=r.pop("group"), **r) for r in rows]
    acc = {r["role"]: r["test_acc"] for r in rows}
    rand = [r["test_acc"] for r in rows if r["role"].startswith("random")]
    report = {"run": str(run.path), "space": space.name, "budget": budget,
              "search": {"file": found.get("file", "result.json"), "scorer": scorer,
                         "constraint": found["constraint"], "max_params": found.get("max_params"),
                         "max_flops": found.get("max_flops")},
              "rows": rows, "noise": noise_note(rows, len(test.y)),
              "summary": {"top_1_minus_largest": acc["top 1"] - acc["largest"],
                          "top_1_minus_random_mean": (acc["top 1"] - float(np.mean(rand))
                                                      if rand else None)}}
    write_json_atomic(report, out / "retrain-top.json")
    atomic_write_text(out / "retrain-top.csv", _csv(rows, first="role"))
    atomic_write_text(out / "retrain-top.md", format_top(report) + "\n")
    return report


def format_top(report: Dict[str, Any]) -> str:
    """The side-by-side table of :func:`retrain_top` (Markdown), its noise note and summary."""
    b, srch, scorer = report["budget"], report["search"], report["search"]["scorer"]
    lines = [f"{report['space']}: the best archs of {srch['file']} ({scorer}, "
             f"{srch['constraint']}) next to the largest and random archs under its limits; "
             f"each retrained with true labels, {b['epochs']} epoch{'s' * (b['epochs'] != 1)} "
             f"on {b['images']:,} "
             f"{b['dataset']} images at {b['image_size']} px, seed {b['seed']}", "",
             f"| role | arch | {scorer} | params (M) | FLOPs (M) | test top-1 (%) |",
             "|---|---|---|---|---|---|"]
    escaped = [r["arch"].replace("|", "\\|") for r in report["rows"]]  # NB201's bars
    lines += [f"| {r['role']} | {arch} | {r['score']:.4g} | {r['params_m']:.3f} | "
              f"{r['flops_m']:.2f} | {r['test_acc']:.2f} |"
              for r, arch in zip(report["rows"], escaped)]
    s, noise = report["summary"], report["noise"]

    def verdict_of(diff):
        return ("within noise" if abs(diff) < noise["difference_95"] else
                "better" if diff > 0 else "worse")
    said = [f"top 1 - largest: {s['top_1_minus_largest']:+.2f} points "
            f"({verdict_of(s['top_1_minus_largest'])})"]
    if s["top_1_minus_random_mean"] is not None:
        said.append(f"top 1 - random mean: {s['top_1_minus_random_mean']:+.2f} points "
                    f"({verdict_of(s['top_1_minus_random_mean'])})")
    return "\n".join(lines + ["", "; ".join(said), f"Noise: {noise['note']}."])


def _csv(rows, first: str = "group") -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[first, "arch", "score", "params_m", "flops_m",
                                        "test_acc"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def format_report(report: Dict[str, Any]) -> str:
    """The table and the tau / verdict lines of a check report."""
    scorer = report["budget"]["scorer"]
    lines = [f"{'group':7s} {'score':>10s} {'params M':>9s} {'FLOPs M':>9s} {'test acc':>8s}  arch"]
    for r in report["rows"]:
        lines.append(f"{r['group']:7s} {r['score']:10.4g} {r['params_m']:9.3f} "
                     f"{r['flops_m']:9.2f} {r['test_acc']:7.2f}%  {r['arch']}")
    t = report["tau"]
    lines.append(f"Kendall tau with the retrained accuracy over {len(report['rows'])} archs: "
                 f"{scorer} {t[scorer]:.3f}, params {t['params']:.3f}, flops {t['flops']:.3f}")
    lines.append(report["verdict"])
    return "\n".join(lines)
