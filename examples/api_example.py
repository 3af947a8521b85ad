"""The rlnas Python API end to end, at a tiny budget: train a supernet on scikit-learn's digits
with random labels (preset demo-digits), rank every NB201 cell by the angle, search, and print
the best cells. Runs offline in seconds on a CPU (needs scikit-learn: pip install rlnas[demo]).

    python examples/api_example.py --out runs/api-example

Running it again resumes (here: finds the run finished) and ranks/searches again. For a
meaningful answer train longer: --epochs 20 --channels 8 --subset 0 (the preset's defaults).
"""
import argparse

import rlnas


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/api-example", help="run directory")
    p.add_argument("--epochs", type=int, default=2, help="supernet epochs (preset: 20)")
    p.add_argument("--channels", type=int, default=4, help="supernet C (preset: 8)")
    p.add_argument("--subset", type=int, default=512,
                   help="train on the first N digits (0: all 1437)")
    p.add_argument("--top", type=int, default=3, help="how many archs to print")
    args = p.parse_args(argv)

    overrides = {"train.epochs": args.epochs, "model.channels": args.channels,
                 "data.subset": args.subset or None}
    run = rlnas.train("demo-digits", args.out, overrides=overrides, progress=False)
    stats = run.train_result
    if stats.get("already_done"):
        print(f"{run.path}: already trained")
    else:
        print(f"{run.path}: trained {stats['epoch']} epochs, loss {stats['loss']:.3f}, "
              f"fit to random labels {stats['train_acc']:.1f}%")

    ranking = run.rank()  # every NB201 cell, best first; also writes ranking.csv
    print(f"\nranked {len(ranking)} cells by {ranking.scorer} -> {ranking.path}")
    for r in ranking.top(args.top):
        print(f"  #{r['rank']}  {ranking.scorer} {r['score']:.4f}  {r['params_m']:.3f} M params  "
              f"{r['arch']}")

    result = run.search()  # evolution by the run's scorer; also writes result.json
    print(f"\n{result['method']} search, {result['evaluations']} cells scored "
          f"({result['constraint']}):")
    for r in result["top"][:args.top]:
        print(f"  {result['scorer']} {r[result['scorer']]:.4f}  {r['params_m']:.3f} M params  "
              f"{r['arch']}")

    # any scorer by name, on arch strings; 'params' is the free baseline
    params = rlnas.get_scorer("params", run)
    print(f"\nparams of the searched best: {params(result['top'][0]['arch'])[0]:.3f} M")
    return ranking, result


if __name__ == "__main__":
    main()
