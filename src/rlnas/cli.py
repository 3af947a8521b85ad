"""The `rlnas` command: one verb per stage.

    rlnas train PRESET [key=value ...] [--out RUN]     supernet with random (or true) labels
    rlnas train RUN [key=value ...]                    continue RUN from its saved config.yaml
    rlnas rank RUN [--scorer S]                        score every arch -> ranking.csv
    rlnas search RUN [--method evolution|exhaustive|random] [--max-params M] [--max-flops M]
                     [--max-latency MS] [--latency-table CSV --latency-device COLUMN |
                                         --latency-runtime torch|onnxruntime]
                                                       -> RUN/result-<method>-<scorer>[...].json
    rlnas evaluate RUN [RUN ...] --nasbench201 TABLE   scorers vs ground truth, size control
    rlnas evaluate RUN [RUN ...] --benchmark FILE      the same against any benchmark table
    rlnas run PRESET [key=value ...] [--out RUN]       train, rank, search (and evaluate)
    rlnas check RUN [--archs K] [--epochs E] [...]     retrain top/middle/random archs, true labels
    rlnas retrain PRESET ARCH|RESULT|RUN [key=value]   standalone network, true labels
    rlnas retrain RUN --top K [--random R]             the K best found archs, the largest and
                                                       R random ones, side by side
    rlnas export RUN [--onnx]                          retrained network: model.pt2 (torch
                                                       only), model.pt, export.json (+ ONNX)
    rlnas bench | cost [--space S] ARCH | sample [--space S] [-n N] | scorers | presets
    rlnas config --show [PRESET|RUN [key=value ...]]   the resolved config, each key's doc
    rlnas nasbench201 convert FILE --out TABLE         official benchmark -> compact table
    rlnas demo                                         the whole method offline, in minutes

Under torchrun (`torchrun --nproc_per_node=N -m rlnas train ...`) training uses N processes.
Errors in the user's input, and errors of the system (a read-only folder, a full disk), are
printed as one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from .checks import SEED_MAX
from .errors import RlnasError, UserCodeError
from .files import os_error_text

TRAIN_EPILOG = """\
Continue a run: `rlnas train RUN` (RUN a run directory, with its config.yaml) resumes it from
its saved config; no override needs retyping, and --out defaults to RUN. Overrides given then
apply on top of the saved config, and only those that do not change the result are accepted
(device, precision, data.root, data.split_file, evaluate.nasbench201, checkpoint cadence,
train.accumulate, train.grad_sync). With --out NEW, RUN's config starts a new run in NEW. A bare
preset name stays the preset; write ./NAME for a run folder of that name.

Extending a run's epochs (`rlnas train RUN epochs=N`, N larger) is refused where the learning
rate schedule depends on train.epochs (cosine per epoch, linear per step, linear_warmup: the
rates of the steps already trained would change). It is exact, and accepted, with a constant
rate: lr_schedule cosine or linear with train.lr_min equal to train.lr. A run stopped early
because its ranking was stable stays complete.

Aliases: epochs, batch, lr, channels, cells (model.cells in NB201 and the choice spaces,
model.layers in DARTS), layers, root, dataset, subset, labels, scorer, method, max_params ..."""


def _add_train_args(p):
    p.add_argument("config", help="preset name (e.g. nb201-cifar10), a YAML file, or a run "
                                  "directory to continue (its saved config.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. epochs=10 channels=8 root=/data/cifar10")
    p.add_argument("--out", "-o", help="run directory (default: runs/<preset>, or the run "
                                       "directory given as config)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    _add_space_arg(p)


def _add_latency_args(p):
    p.add_argument("--max-latency", type=float, metavar="MS",
                   help="limit in ms: measured here (CPU, batch 1, 1 thread, fp32; cached) on "
                        "the benchmark-size net, or read from --latency-table")
    p.add_argument("--latency-table", metavar="CSV",
                   help="measured device latencies, one row per arch (column arch), e.g. "
                        "HW-NAS-Bench's hw_nasbench201_cifar10.csv for NB201")
    p.add_argument("--latency-device", metavar="COLUMN",
                   help="the device column of --latency-table (pixel3 or pixel3_latency)")
    p.add_argument("--latency-runtime", choices=["torch", "onnxruntime"],
                   help="what runs the networks measured here: torch eager (default) or "
                        "onnxruntime (each network / chain op exported to ONNX, 1 thread; "
                        "needs rlnas[onnx])")


def _add_space_arg(p):
    p.add_argument("--space", dest="named_space", metavar="MODULE:ATTR",
                   help="the user space the run was made with: rlnas imports a user space a "
                        "run file names only when it is named again here")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (0 or a negative count would silently mean a default
    or nothing).

    Args:
        text: the option's value as typed.
    Returns:
        the integer."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer (>= 1)")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (a count where 0 means none)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 0")
    return value


def seed_int(text: str) -> int:
    """An argparse type: a seed, an integer in [0, 2**32 - 1] (what NumPy's generators take).

    Args:
        text: the option's value as typed.
    Returns:
        the integer."""
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} must be a seed in [0, {SEED_MAX}]")
    return value


# ----------------------------------------------------------------------------------------------
# The verbs: arguments and handlers. A handler calls the Python API (rlnas.api) and prints.
# ----------------------------------------------------------------------------------------------
def _main_process() -> bool:
    """False in the torchrun processes other than rank 0: they train, then leave the rest
    (printing, ranking, search) to rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


def _print_trained(run) -> None:
    """The line `rlnas train` prints: what the training did (or that it was complete)."""
    from .config import search_scorer
    res, cfg = run.train_result, run.config
    if res.get("already_done"):
        print(f"{run.path}: training already complete ({res['steps']} steps)")
        return
    stop = (f" of {cfg.train.epochs} (stopped early: the {search_scorer(cfg)} ranking is "
            f"stable, stability.csv)" if res.get("stopped_early") else "")
    print(f"{run.path}: trained {res['epoch']} epochs{stop}"
          f"{' (resumed)' if res.get('resumed') else ''}; last epoch loss {res['loss']:.4f}, "
          f"train acc on its labels {res['train_acc']:.2f}%, {res['images_per_s']:.0f} img/s")


def _train(args):
    from . import api
    run = api.train(args.config, args.out, args.overrides, progress=not args.quiet,
                    caller=f"rlnas {args.command}")
    if _main_process():
        _print_trained(run)


def _add_rank_args(p):
    p.add_argument("run")
    p.add_argument("--checkpoint", default="last.pt",
                   help="trained checkpoint in RUN/ckpt to compare with init.pt, by file name "
                        "(default last.pt)")
    _add_space_arg(p)
    p.add_argument("--scorer", help="scorer name or rank ensemble a+b (default: the run's "
                                    "search.scorer; see `rlnas scorers`)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _rank(args):
    from . import api
    _print_ranking(api.open_run(args.run).rank(args.scorer, args.checkpoint,
                                               progress=not args.quiet))


def _print_ranking(ranking) -> None:
    """The line `rlnas rank` prints about the :class:`rlnas.api.Ranking` it wrote."""
    res = ranking.info
    print(f"{res['path']}: {res['num_archs']} archs ranked by {res['scorer']} in "
          f"{1e3 * (res['setup_seconds'] + res['score_seconds']):.0f} ms; best "
          f"{res['best_arch']} ({res['scorer']} {res['best_score']:.4f})")


def _add_search_args(p):
    p.add_argument("run")
    _add_space_arg(p)
    p.add_argument("--method", choices=["evolution", "exhaustive", "random"])
    p.add_argument("--max-params", type=float, help="limit in M params (benchmark-size net)")
    p.add_argument("--max-flops", type=float, help="limit in M FLOPs (benchmark-size net)")
    _add_latency_args(p)
    p.add_argument("--seed", type=seed_int)
    p.add_argument("--checkpoint", default="last.pt",
                   help="trained checkpoint in RUN/ckpt, by file name (default last.pt)")
    p.add_argument("--scorer", help="scorer name or rank ensemble (default: the run's "
                                    "search.scorer)")
    p.add_argument("--name", help="name of this search's files, RUN/result-NAME.json and "
                                  "RUN/visited-NAME.csv (default: from its settings, e.g. "
                                  "evolution-angle_sum-maxp0.5); result.json and visited.csv "
                                  "are copies of the latest search")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _search(args):
    from . import api
    run = api.open_run(args.run)
    res = run.search(method=args.method, scorer=args.scorer, max_params=args.max_params,
                     max_flops=args.max_flops, seed=args.seed, checkpoint=args.checkpoint,
                     name=args.name, progress=not args.quiet, **_latency_options(args))
    _print_search(run, res)
    _print_notes(run, search=res)


def _print_search(run, res) -> None:
    """The lines `rlnas search` prints about the search ``res`` of ``run``."""
    best = res["top"][0]
    ms = f", {best['latency_ms']:.3g} ms" if best.get("latency_ms") is not None else ""
    print(f"{run.path / res['file']} (and result.json, the latest search): {res['method']} "
          f"search, {res['evaluations']} archs scored in {res['seconds']:.2f} s "
          f"({res['constraint']}); best {best['arch']} {res['scorer']} "
          f"{best[res['scorer']]:.4f}, {best['params_m']:.3f} M params, "
          f"{best['flops_m']:.2f} M FLOPs{ms}")
    if "latency" in res:
        lat = res["latency"]
        print(f"latency: {lat['source']}; Pareto front of {lat['pareto_size']} archs (score vs "
              f"latency) in {run.path / lat['pareto_file']}")
        if lat.get("table"):  # measured here: built in how long, or read from which cache
            print(f"latency table: {lat['table']}")


def _print_notes(run, search=None, evaluation=None):
    """One 'weak answer' line where the run's numbers show one (rlnas.advice.weak_line), last."""
    from .advice import weak_line
    line = weak_line(run, search=search, evaluation=evaluation)
    if line:
        print(line)


def _add_evaluate_args(p):
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (e.g. one per seed)")
    _add_space_arg(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--nasbench201", help="NB201 table (CSV: arch + accuracies)")
    which.add_argument("--benchmark", metavar="FILE",
                       help="any benchmark table: NB201 CSV, NAS-Bench-Macro JSON, DARTS-214 CSV "
                            "or a CSV arch,<accuracy columns>[,params_m,flops_m] in the run's "
                            "space notation; the archs scored are the table's")
    p.add_argument("--scorers", default="angle",
                   help="comma-separated scorers / ensembles, e.g. "
                        "angle,params,synflow,angle+synflow")
    p.add_argument("--columns", nargs="*", help="accuracy columns (default: all in the table)")
    p.add_argument("--sample", type=positive_int,
                   help="score a seeded sample of N cells (slow scorers)")
    p.add_argument("--proxy-channels", type=positive_int,
                   help="proxy network C, NB201/DARTS (default: the space's network, NB201 16)")
    p.add_argument("--proxy-cells", type=positive_int,
                   help="proxy network cells per stage, NB201 (default 5)")
    p.add_argument("--proxy-batch", type=positive_int, help="proxy mini-batch size (default 64)")
    p.add_argument("--recal-images", type=positive_int,
                   help="accuracy scorer: BN recalibration images")
    p.add_argument("--eval-images", type=positive_int, help="accuracy scorer: held-out images")
    p.add_argument("--result", help="which search of the first run to report: a search name "
                                    "(evolution-angle_sum), a result-*.json file or path "
                                    "(default: the latest search, RUN/result.json)")
    p.add_argument("--latency-table", metavar="CSV",
                   help="measured device latencies, one row per arch (e.g. HW-NAS-Bench's "
                        "hw_nasbench201_cifar10.csv): the constrained-search ladder also under "
                        "latency limits of each --latency-device")
    p.add_argument("--latency-device", metavar="COLUMN[,COLUMN]",
                   help="device column(s) of --latency-table, e.g. pixel3 or edgegpu,raspi4")
    p.add_argument("--out", help="output folder (default: the first run)")
    p.add_argument("--full", action="store_true",
                   help="print the whole evaluation.md instead of the summary")
    p.add_argument("--quiet", "-q", action="store_true")


def _evaluate(args):
    proxy = {k: v for k, v in (
        ("proxy_model", {k2: v2 for k2, v2 in (("channels", args.proxy_channels),
                                              ("cells", args.proxy_cells)) if v2}),
        ("batch_size", args.proxy_batch), ("recal_images", args.recal_images),
        ("eval_images", args.eval_images)) if v}
    _evaluate_and_print(args.runs, args.nasbench201, args.scorers, columns=args.columns,
                        sample=args.sample, proxy=proxy, out=args.out, progress=not args.quiet,
                        result=args.result, full=args.full, benchmark=args.benchmark,
                        **_latency_ladder_options(args.latency_table, args.latency_device))


def _latency_ladder_options(table, devices):
    """evaluate's keywords of --latency-table / --latency-device (comma-separated columns)."""
    if table is None and devices is None:
        return {}
    return {"latency_table": table,
            "latency_devices": None if devices is None else
            [d.strip() for d in devices.split(",") if d.strip()]}


def _evaluate_and_print(run_dirs, table, scorers, out=None, full=False, **options):
    """`rlnas evaluate` (also the last stage of `rlnas run`): the summary (or, ``full``, the
    whole evaluation.md), then the weak-answer line."""
    from . import api
    from .pipeline.evaluate import format_markdown, format_summary
    runs = [api.open_run(r) for r in run_dirs]
    res = api.evaluate(runs, table, scorers, out=out, **options)
    where = Path(out or run_dirs[0])
    if full:
        print(format_markdown(res))
        print(f"wrote {where / 'evaluation.json'}, {where / 'evaluation.md'} and "
              f"{where / 'plots'}/")
    else:
        print(format_summary(res, where))
    search = None
    if res.get("search"):
        try:
            search = json.loads(Path(res["search"]["file"]).read_text())
        except (OSError, ValueError):
            search = None
    _print_notes(runs[0], search=search, evaluation=res)


def _add_check_args(p):
    p.add_argument("run")
    p.add_argument("--archs", type=positive_int, default=4,
                   help="archs per group (top, middle, random)")
    p.add_argument("--epochs", type=positive_int, default=2, help="retraining epochs per arch")
    p.add_argument("--images", type=positive_int, default=None,
                   help="training images (default: the run's data.subset, else all)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="image side in px (default: the run's data.resolution)")
    p.add_argument("--channels", type=positive_int, default=None,
                   help="network channels (NB201, DARTS)")
    p.add_argument("--cells", type=positive_int, default=None, help="network cells (NB201, DARTS)")
    p.add_argument("--seed", type=seed_int, default=0, help="picks and training")
    p.add_argument("--scorer", default=None, help="default: the run's search.scorer")
    p.add_argument("--data-root", default=None, help="the dataset's folder (default: the run's)")
    p.add_argument("--test-root", default=None,
                   help="the test images (default: the run's data.test_root, else data root)")
    p.add_argument("--out", default=None, help="default: RUN/check")
    p.add_argument("--quiet", "-q", action="store_true")
    _add_space_arg(p)


def _check(args):
    from . import api
    from .pipeline.check import format_report
    report = api.open_run(args.run).check(
        archs=args.archs, epochs=args.epochs, images=args.images, image_size=args.image_size,
        channels=args.channels, cells=args.cells, seed=args.seed, scorer=args.scorer,
        out=args.out, data_root=args.data_root, test_root=args.test_root,
        progress=not args.quiet, log=print)
    print(format_report(report))


def _add_run_args(p):
    _add_train_args(p)
    _add_latency_args(p)


def _run(args):
    """`rlnas run`: train, then rank (where the space is small), search and evaluate."""
    from . import api
    from .config import search_scorer
    plan = api.plan_training(args.config, args.out, args.overrides)  # fails fast
    latency = _latency_options(args)
    # an impossible search, limit or table is refused before training
    run = api.run_training(plan, progress=not args.quiet, caller=f"rlnas {args.command}",
                           preset=args.config,
                           before_training=_check_run_before_training(plan.config, latency))
    if not _main_process():
        return
    _print_trained(run)
    if run.space.enumerate() is not None:  # exhaustive ranking where the space is small
        _print_ranking(run.rank(progress=not args.quiet))
    res = run.search(progress=not args.quiet, **latency)
    _print_search(run, res)
    table = plan.config.evaluate.nasbench201
    if table:
        _evaluate_and_print([run.path], table, f"{search_scorer(plan.config)},params",
                            progress=not args.quiet, result=res["file"],
                            **_latency_ladder_options(args.latency_table, args.latency_device))
    else:  # say what was left out, then the weak-answer line (last, as after a search)
        from .advice import skipped_evaluation_note
        print(skipped_evaluation_note(run.path, plan.config))
        _print_notes(run, search=res)


RETRAIN_EPILOG = """\
Several archs side by side: `rlnas retrain RUN --top K [--random R]` retrains the K best archs
of RUN's latest search (--result NAME: another one), the largest arch under its limits and R
random archs under them (default 3), each with the true labels, the same short recipe and the
same seed as `rlnas check` (--epochs, --images, --image-size, --seed), and writes a table
(RUN/retrain-top/retrain-top.csv and .md: role, params, FLOPs, test accuracy, a noise note)."""


def _add_retrain_args(p):
    p.add_argument("config", help="retraining preset (e.g. retrain-nb201-cifar10) or YAML file; "
                                  "with --top, the run")
    _add_space_arg(p)
    p.add_argument("arch", nargs="?",
                   help="a run directory or result.json (its best arch), or an arch string")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--out", "-o", help="output directory (default: runs/<preset>; with --top "
                                       "RUN/retrain-top)")
    p.add_argument("--quiet", "-q", action="store_true")
    top = p.add_argument_group("several archs of a run: rlnas retrain RUN --top K")
    top.add_argument("--top", type=positive_int, metavar="K",
                     help="retrain the K best archs of RUN's search, the largest and random ones")
    top.add_argument("--random", type=non_negative_int, metavar="R",
                     help="random archs under the search's limits (default 3; 0: none)")
    top.add_argument("--result", help="which search of RUN (default: the latest, result.json)")
    top.add_argument("--epochs", type=positive_int, help="epochs per arch (default 2)")
    top.add_argument("--images", type=positive_int,
                     help="training images (default: the run's data.subset, else all)")
    top.add_argument("--image-size", type=positive_int,
                     help="image side in px (default: the run's data.resolution)")
    top.add_argument("--seed", type=seed_int, help="the training seed of every arch (default 0)")
    top.add_argument("--data-root", help="the dataset's folder (default: the run's)")
    top.add_argument("--test-root", help="the test images (default: the run's)")


_TOP_ONLY = ("random", "result", "epochs", "images", "image_size", "seed", "data_root",
             "test_root")


def _retrain(args):
    from . import api
    given = [f"--{k.replace('_', '-')}" for k in _TOP_ONLY if getattr(args, k) is not None]
    if args.top is not None:
        if args.arch is not None or args.overrides:
            raise RlnasError("--top retrains archs of a run with `rlnas check`'s short recipe: "
                             "`rlnas retrain RUN --top K` takes no preset, arch or key=value")
        from .pipeline.check import format_top
        report = api.open_run(args.config).retrain_top(
            top=args.top, random=3 if args.random is None else args.random,
            epochs=args.epochs or 2, images=args.images, image_size=args.image_size,
            seed=args.seed or 0, result=args.result, out=args.out,
            data_root=args.data_root, test_root=args.test_root, progress=not args.quiet,
            log=print)
        print(format_top(report))
        return
    if given:
        raise RlnasError(f"{', '.join(given)} apply to `rlnas retrain RUN --top K` only")
    if args.arch is None:
        raise RlnasError("which arch? `rlnas retrain PRESET ARCH|RESULT|RUN [key=value ...]`, or "
                         "`rlnas retrain RUN --top K` for the best archs of a run")
    s = api.retrain(args.config, args.arch, args.out, args.overrides, progress=not args.quiet)
    if _main_process():
        print(f"{s['out']}: {s['arch']} ({s['params_m']:.3f} M params), {s['epochs']} epochs; "
              f"test top-1 last {s['last']['top1']:.2f}% (epoch {s['last']['epoch']}), best "
              f"{s['best']['top1']:.2f}% (epoch {s['best']['epoch']})")


def _add_export_args(p):
    p.add_argument("run", help="retraining directory")
    p.add_argument("--out", help="output folder (default RUN/export)")
    _add_space_arg(p)
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (torch's dynamo exporter; needs rlnas[onnx])")


def _export(args):
    from . import api
    for f in api.export(args.run, args.out, onnx=args.onnx):
        print(f"wrote {f}")


def _add_cost_args(p):
    p.add_argument("arch")
    p.add_argument("--space", default="nb201",
                   help="search space (default nb201); other spaces report their benchmark "
                        "network (DARTS: ImageNet C=48, 14 cells; MobileNet: 224 px)")
    p.add_argument("--channels", type=int, default=16, help="nb201 network C")
    p.add_argument("--cells", type=int, default=5, help="nb201 cells per stage")
    p.add_argument("--num-classes", type=int, default=10, help="nb201 classes")
    p.add_argument("--image-size", type=int, default=32, help="nb201 image side")


def _cost(args):
    import numpy as np

    from .spaces import get_space
    space = get_space(args.space)
    arch = space.from_str(args.arch)
    kwargs = {}
    if args.space == "nb201":
        kwargs = dict(channels=args.channels, cells=args.cells, num_classes=args.num_classes,
                      image_size=args.image_size)
        bad = [f"--{k.replace('_', '-')}" for k, v in kwargs.items() if v < 1]
        if bad:
            raise RlnasError(f"{', '.join(bad)} must be a positive integer")
    c = space.cost(np.array([arch]), **kwargs)
    print(json.dumps({"arch": space.to_str(arch), "params_m": round(float(c["params"][0]), 6),
                      "flops_m": round(float(c["flops"][0]), 5)}))


def _add_demo_args(p):
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="supernet epochs (default: the preset, 20)")
    p.add_argument("--quiet", "-q", action="store_true")


def _demo(args):
    from .demo import run_demo
    run_demo(Path(args.out), epochs=args.epochs, progress=not args.quiet)


def _add_nasbench201_args(p):
    nsub = p.add_subparsers(dest="nb201_command", metavar="ACTION")
    nsub.required = True
    c = nsub.add_parser("convert", help="official NB201 .pth / NATS-tss archive -> compact table")
    c.add_argument("source", help="NAS-Bench-201-v1_*.pth, or a NATS-tss-v1_0-3ffb9-* archive")
    c.add_argument("--out", "-o", required=True, help="output CSV (+ .meta.json with semantics)")
    c.add_argument("--kind", default="auto", choices=["auto", "nb201", "nats-tss"])
    c.add_argument("--hp", default="200", choices=["200", "12"], help="training epochs (200)")
    c.add_argument("--allow-partial", action="store_true",
                   help="accept archives with fewer than 15,625 cells")
    c.add_argument("--trust-pickle", action="store_true",
                   help="allow the official .pth / NATS archives to be unpickled with arbitrary "
                        "code execution; only for files you trust; needed where the official "
                        "format holds objects weights_only cannot load")


def _nasbench201(args):
    from .nb201convert import convert
    s = convert(args.source, args.out, kind=args.kind, hp=args.hp,
                allow_partial=args.allow_partial, trust_pickle=args.trust_pickle)
    print(f"{s['out']}: {s['rows']} cells, columns {', '.join(s['columns'])} "
          f"({s['seconds']:.0f} s); semantics in {s['meta']}")


def _add_bench_args(p):
    p.add_argument("--spaces", nargs="*",
                   help="nb201 darts-cifar darts-imagenet mobilenet (default all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--steps", type=positive_int, default=10)
    p.add_argument("--batch", type=positive_int, help="override the paper batch size")
    p.add_argument("--record", help="append the table to this Markdown file (e.g. "
                                    "benchmarks/RESULTS.md)")


def _bench(args):
    from .throughput import run_bench
    table = run_bench(args.spaces, args.device, args.precision, args.steps, args.batch)
    print(table)
    if args.record:
        try:
            with open(args.record, "a") as f:
                f.write("\n" + table)
        except OSError as exc:  # the table is printed; say why it is not recorded
            raise RlnasError(f"cannot append to {args.record}: {os_error_text(exc)}") from None


def _add_sample_args(p):
    p.add_argument("--space", default=None,
                   help="search space (default nb201), as for `rlnas cost`")
    p.add_argument("old_space", nargs="?", metavar="SPACE",
                   help="deprecated: the space as a positional argument; use --space")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("-n", type=positive_int, default=1, help="how many archs (>= 1)")


def _sample(args):
    import numpy as np

    from .spaces import get_space
    name = args.space
    if args.old_space is not None:  # the form of earlier releases, kept for one release
        if name is not None and name != args.old_space:
            raise RlnasError(f"two spaces given: {args.old_space} and --space {name}")
        name = args.old_space
    space, rng = get_space(name or "nb201"), np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(space.to_str(space.sample(rng)))
    if args.old_space is not None:  # after the archs: an error stays the one line on stderr
        print(f"rlnas sample: note: `rlnas sample {name}` is deprecated; write "
              f"`rlnas sample --space {name}`, the option `rlnas cost` takes", file=sys.stderr)


def _add_config_args(p):
    p.add_argument("--show", action="store_true",
                   help="print the resolved config of CONFIG with each key's doc, or without "
                        "CONFIG every key of the schema (default, doc, values it takes)")
    p.add_argument("config", nargs="?",
                   help="preset name, YAML file or run directory (its config.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    _add_space_arg(p)


def _config(args):
    from . import api
    from .schema import describe, describe_schema
    if not args.show:
        raise RlnasError("nothing to do: `rlnas config --show [CONFIG] [key=value ...]` prints "
                         "a resolved config with each key's doc (without CONFIG: the schema)")
    if args.config is None:
        if args.overrides:
            raise RlnasError("overrides need a CONFIG to apply to")
        print(describe_schema(), end="")
    else:
        print(describe(api.load_config(args.config, args.overrides)), end="")


def _presets(args):
    from .config import PRESET_DIR, list_presets
    for name in list_presets():
        print(f"{name:28s} {PRESET_DIR / (name + '.yaml')}")


def _scorers(args):
    from .scorers import ENSEMBLE, list_scorers, scorer_info
    for name in list_scorers():
        info = scorer_info(name)
        print(f"{name:12s} {'(needs a run) ' if info.needs_run else ''}{info.description}")
    import textwrap
    print(textwrap.fill(ENSEMBLE, 100, initial_indent=f"{'a+b':12s} ", subsequent_indent=" " * 13))


def _latency_options(args):
    """The search keywords of --max-latency / --latency-table / --latency-device /
    --latency-runtime (given ones)."""
    out = {k: v for k, v in (("max_latency", args.max_latency),
                             ("latency_table", args.latency_table),
                             ("latency_device", args.latency_device)) if v is not None}
    if args.latency_runtime is not None:
        from .latency import LatencySetting
        out["latency_setting"] = LatencySetting(runtime=args.latency_runtime)
    return out


def _check_run_before_training(cfg, latency):
    """``rlnas run``'s refusals of what follows the training, made before it (called with the
    run's record once the data are loaded): the search (``check_before_training``, the one
    check ``rlnas search`` makes too) and the NAS-Bench-201 table of the evaluation."""
    from .pipeline.search import check_before_training

    def check(info):
        check_before_training(cfg, info, **latency)
        table = cfg.evaluate.nasbench201
        if table:
            from .tables import load_nb201_table
            if cfg.space != "nb201":
                raise RlnasError(f"evaluate.nasbench201 is set, but NAS-Bench-201 evaluation "
                                 f"needs an nb201 run (space {cfg.space}); use rlnas "
                                 f"evaluate RUN --benchmark FILE after the run")
            load_nb201_table(table)
    return check


@dataclass(frozen=True)
class Verb:
    """One `rlnas` verb: its one-line help, what adds its arguments, what runs it."""

    help: str
    run: Callable[[argparse.Namespace], None]
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None
    epilog: Optional[str] = None
    #: what to do after Ctrl-C (printed with "interrupted")
    interrupted: str = "run it again: nothing half-written is kept"


_RESUMES = "the same command resumes it from its last checkpoint"


# the verbs, in the order `rlnas --help` lists them
VERBS: Dict[str, Verb] = {
    "train": Verb("train a supernet (resumes an existing run)", _train, _add_train_args,
                  TRAIN_EPILOG, _RESUMES),
    "rank": Verb("score every arch of a run (by its search.scorer)", _rank, _add_rank_args),
    "search": Verb("search a run's space (by its search.scorer)", _search, _add_search_args),
    "evaluate": Verb("compare scorers of one or more runs with NAS-Bench-201", _evaluate,
                     _add_evaluate_args),
    "check": Verb("retrain top / middle / random archs of a run with the true labels: does its "
                  "scorer beat params and flops here?", _check, _add_check_args,
                  interrupted="the same command resumes it without retraining the archs done"),
    "run": Verb("train, rank, search and evaluate in one go", _run, _add_run_args, TRAIN_EPILOG,
                _RESUMES),
    "retrain": Verb("train a found architecture from scratch (true labels); --top K: the best "
                    "archs of a run next to the largest and random ones", _retrain,
                    _add_retrain_args, RETRAIN_EPILOG,
                    "the same command resumes it (from the last checkpoint; --top: without "
                    "retraining the archs done)"),
    "export": Verb("a retrained network as a torch.export program (model.pt2), state dict and "
                   "export.json (+ ONNX)", _export, _add_export_args),
    "cost": Verb("params and FLOPs of an architecture (default: an NB201 cell)", _cost,
                 _add_cost_args),
    "demo": Verb("the whole method on scikit-learn's digits, offline", _demo, _add_demo_args),
    "nasbench201": Verb("NAS-Bench-201 ground-truth tools", _nasbench201, _add_nasbench201_args),
    "bench": Verb("throughput of each space at paper size on this device", _bench,
                  _add_bench_args),
    "sample": Verb("print uniformly drawn archs of a space (baselines)", _sample,
                   _add_sample_args),
    "presets": Verb("list the config presets", _presets),
    "config": Verb("a config resolved, each key with its doc (or every key of the schema)",
                   _config, _add_config_args),
    "scorers": Verb("list the registered scorers", _scorers),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlnas", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, verb in VERBS.items():
        extra = ({"epilog": verb.epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
                 if verb.epilog else {})
        p = sub.add_parser(name, help=verb.help, **extra)
        if verb.add_arguments is not None:
            verb.add_arguments(p)
    return parser


def dispatch(args):
    """Run the verb ``args.command`` (the table :data:`VERBS`)."""
    VERBS[args.command].run(args)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception the user's own code raised (their space's module, factory
    or op), without rlnas's frames: printed after the one line that says which space and part
    failed."""
    import traceback
    package = str(Path(__file__).resolve().parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<frozen ", package))]
    return "".join(["Traceback of the space's code (most recent call last):\n"]
                   + traceback.format_list(frames) + traceback.format_exception_only(exc))


def environment_error(exc: BaseException) -> str:
    """One line for an error of the system rather than of rlnas: for an OS error the path it
    names (if any) and the reason; else out of memory."""
    if isinstance(exc, OSError):
        if exc.filename is None:
            return os_error_text(exc)
        where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        return f"{where}: {os_error_text(exc)}"
    detail = f" ({os_error_text(exc)})" if str(exc).strip() else ""
    return f"out of memory{detail}; try a smaller train.batch_size"


def _oom_types():
    """Out-of-memory exceptions: Python's, and torch's for a device (a RuntimeError subclass)."""
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return (MemoryError,) + ((oom,) if isinstance(oom, type) else ())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "named_space", None):
            from .spaces import allow_space
            allow_space(args.named_space)
        dispatch(args)
    except RlnasError as err:
        print(f"rlnas {args.command}: error: {err}", file=sys.stderr)
        if isinstance(err, UserCodeError) and err.__cause__ is not None:
            print(user_traceback(err.__cause__), end="", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rlnas presets | head`: the reader left; nothing to report
        # stdout's buffered rest would fail again at exit, with a traceback of its own
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OSError,) + _oom_types() as err:  # read-only folders, full disks, out of memory
        print(f"rlnas {args.command}: error: {environment_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlnas {args.command}: interrupted; {VERBS[args.command].interrupted}",
              file=sys.stderr)
        return 130
    finally:  # leave a torchrun process group, so that the processes exit cleanly together
        tdist = sys.modules.get("torch.distributed")
        if tdist is not None and tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
