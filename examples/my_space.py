"""A user's own search space, declared with rlnas's choice-block API and searched with RLNAS.

The network: a CIFAR-10 CNN of six "fused inverted residual" blocks (a kxk convolution that
expands the channels, then a 1x1 projection), each block choosing its kernel size (3 or 5) and
expansion (1 or 3), or skipping itself where its shape allows. Everything below the declaration
is the pipeline a user runs: the supernet trained with random labels, an evolutionary search by
the config's scorer (distance, the cross-space default) under a FLOPs limit, then the winner, the
largest architecture under the same limit and random architectures under it retrained briefly
with the true labels, side by side.

    python examples/my_space.py --data ../shared/data/cifar10 --out runs/my_space

(from the repository root; the configs name the space ``examples.my_space:SPACE``, as any
``rlnas`` command can: ``rlnas train examples/my_space.yaml root=... --out RUN``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch.nn as nn

from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip


# --- the declaration: this is all a user writes to get a search space -------------------------
class FusedInvertedResidual(nn.Module):
    """kxk conv expanding to ``expand`` x the input channels, BN, ReLU, 1x1 projection, BN;
    a residual connection where the shape allows."""

    def __init__(self, c_in, c_out, stride, kernel, expand):
        super().__init__()
        hidden = c_in * expand
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


OPS = [Op(f"k{k}e{e}", lambda c_in, c_out, stride, k=k, e=e:
          FusedInvertedResidual(c_in, c_out, stride, k, e))
       for k in (3, 5) for e in (1, 3)]
STAGES = [(24, 2, 2), (40, 2, 2), (64, 2, 2)]  # (channels, blocks, stride of the first block)

SPACE = ChoiceSpace(
    "my_space",
    stem=lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                               nn.ReLU(inplace=True)),
    # the first block of a stage changes the shape, so only the others may skip
    blocks=[Choice(OPS + ([skip()] if i else []), c, s if i == 0 else 1)
            for c, n, s in STAGES for i in range(n)],
    head=lambda num_classes, dropout: nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(64, num_classes)),
    input_size=32, num_classes=10)


# --- the pipeline: rlnas's public API, as the `rlnas` commands run it ---------------------------
HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="CIFAR-10 folder (train_*.npz / cifar-10-batches-py)")
    p.add_argument("--test", help="test file or folder (default: DATA/test_exact1k.npz if present)")
    p.add_argument("--out", default="runs/my_space")
    p.add_argument("--max-flops", type=float, help="FLOPs limit in M (default: the config's)")
    p.add_argument("--random", type=int, default=3, help="random archs to retrain")
    p.add_argument("--supernet", nargs="*", default=[], metavar="key=value",
                   help="overrides of my_space.yaml, e.g. epochs=1 subset=256")
    p.add_argument("--retrain", nargs="*", default=[], metavar="key=value",
                   help="overrides of retrain-my_space.yaml")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    import rlnas
    from rlnas.searchers import Constraint

    out, t0 = Path(args.out), time.time()
    test = args.test or next((str(f) for f in [Path(args.data) / "test_exact1k.npz"]
                              if f.exists()), None)
    run = rlnas.train(HERE / "my_space.yaml", out / "supernet",
                      [f"root={args.data}"] + args.supernet, progress=not args.quiet)
    cfg = run.config
    limit = args.max_flops if args.max_flops is not None else cfg.search.max_flops
    found = run.search(max_flops=limit)  # evolution by the run's scorer -> result.json

    # the baselines, under the same limit: the largest network, and random ones
    space = run.space
    archs = space.enumerate()
    legal = archs[Constraint(max_flops=limit).mask(space, archs)]
    cost = space.cost(legal)
    largest = legal[np.lexsort((cost["params"], cost["flops"]))[-1]]
    rng = np.random.default_rng(cfg.seed)
    picks = [("found", space.from_str(found["top"][0]["arch"])), ("largest", tuple(largest))]
    picks += [(f"random {i + 1}", tuple(a)) for i, a in
              enumerate(legal[rng.choice(len(legal), args.random, replace=False)])]
    score = run.get_scorer(found["scorer"])(np.array([a for _, a in picks]))

    overrides = [f"root={args.data}"] + ([f"data.test_root={test}"] if test else []) + args.retrain
    rt = rlnas.load_config(HERE / "retrain-my_space.yaml", overrides)
    rows = []
    for (role, arch), s in zip(picks, score):
        res = rlnas.retrain(HERE / "retrain-my_space.yaml", space.to_str(arch),
                            out / f"retrain-{role.replace(' ', '')}", overrides,
                            progress=not args.quiet)
        c = space.cost(np.array([arch]))
        rows.append({"role": role, "arch": space.to_str(arch), found["scorer"]: float(s),
                     "params_m": float(c["params"][0]), "flops_m": float(c["flops"][0]),
                     "test_top1": res["last"]["top1"]})
    table = [f"FLOPs limit {limit:g} M; retraining: {rt.train.epochs} epochs on "
             f"{rt.data.subset or 'all'} images; {time.time() - t0:.0f} s in all", "",
             f"| role | arch | {found['scorer']} | params (M) | FLOPs (M) | test top-1 (%) |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['role']} | {r['arch']} | {r[found['scorer']]:.4f} | {r['params_m']:.3f} | "
              f"{r['flops_m']:.2f} | {r['test_top1']:.2f} |" for r in rows]
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return rows


if __name__ == "__main__":
    import sys

    from rlnas.errors import RlnasError
    try:
        main()
    except RlnasError as err:  # bad input: one line, as the rlnas commands do
        sys.exit(f"my_space.py: error: {err}")
