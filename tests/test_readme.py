"""Every code block of README.md is executed, in order, as a user would from a fresh folder (a
copy of examples/ beside it, as in the repository root), with the data folder a parameter:
``$DATA`` = ../shared/data or $RLNAS_SHARED_DATA (skipped where absent).

How each block runs is declared in ``BLOCKS`` (keyed by the block's first line; a block the
README gains without an entry here fails ``test_every_readme_block_is_declared``):

* python blocks run as written;
* shell blocks run command by command (``rlnas ...`` in process through ``rlnas.cli.main``,
  ``python examples/...`` as a script), each command that would train long with tiny overrides
  appended (``TINY``: later ``key=value`` and flags win), so that the whole README runs in a
  minute or two;
* a command that cannot run here is only parsed: its arguments by the CLI's parser and, where it
  names a config, the resolved config with its overrides (``torchrun``: no second process here;
  the multi-run evaluation: three runs and six proxies are minutes); ``make`` targets are checked
  with ``make -n`` (they build the venv and run this suite, or the 3-minute demo, which
  tests/test_demo.py covers).
"""
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def readme_blocks():
    """[(language, first line, text)] of README.md's fenced code blocks, in order."""
    return [(m.group(1), m.group(2).splitlines()[0], m.group(2))
            for m in FENCE.finditer(README.read_text())]


# tiny overrides appended to a command by the config it starts from (train / run / retrain)
TINY_NB201 = ["epochs=1", "subset=128", "channels=4", "cells=1", "-q"]
TINY_DARTS = ["epochs=1", "subset=64", "channels=4", "layers=2", "batch=32",
              "search.generations=2", "-q"]
TEST_FILE = "data.test_root=$DATA/cifar10/test_exact1k.npz"  # the shared folder holds two
TINY = {
    "nb201-cifar10": TINY_NB201,
    "nb201-cifar10-fast": TINY_NB201,
    "nasbench-macro-fast": ["subset=128", "-q"],
    "darts-cifar10": TINY_DARTS,
    "darts-cifar10-fast": TINY_DARTS,
    "retrain-darts-cifar10": ["epochs=1", "subset=64", "channels=4", "layers=2", "batch=32",
                              TEST_FILE, "-q"],
    "examples/my_space.yaml": ["subset=128", "-q"],
    "examples/retrain-my_space.yaml": ["epochs=1", "subset=128", "-q"],
}
# the same for the other verbs (appended flags win over the README's)
TINY_VERB = {
    "rank": ["-q"], "search": ["-q"], "evaluate": ["--columns", "cifar10_test", "-q"],
    "check": ["--archs", "2", "--epochs", "1", "--images", "128", "-q"],
    "retrain --top": ["--top", "2", "--random", "1", "--epochs", "1", "--images", "128", "-q"],
    "python examples/my_space.py": ["--supernet", "subset=128", "--retrain", "subset=128",
                                    "epochs=1", "--random", "1", "--quiet"],
}
# the user's own images (the README's last block): everything is tiny already
OWN_IMAGES = {"examples/my_space.yaml": ["-q"],
              "examples/retrain-my_space.yaml": ["epochs=1", "-q"],
              "retrain --top": ["--epochs", "1", "-q"]}

# how each block runs, keyed by its first line: "run" (with the tiny overrides given), "make"
# (checked with make -n); commands matching a "parse" pattern are only parsed (with the reason)
BLOCKS = {
    ("make demo   # creates .venv, installs rlnas, runs `rlnas demo` (offline; 1.5-5 min on 2 "
     "CPU cores, 1 of them the demo when idle)"): ("make", None),
    ("# the paper's recipe (spec section 2): 250 epochs, batch 64, SGD-Nesterov 0.025 -> 0.001 "
     "cosine,"): ("run", TINY),
    "import os": ("python", None),
    ("rlnas run nb201-cifar10-fast root=$DATA/cifar10 "
     "split_file=$DATA/nasbench201-splits/cifar-split.txt \\"): ("run", TINY),
    ("rlnas evaluate runs/c10-s0 runs/c10-s1 runs/c10-s2 --nasbench201 $DATA/nasbench201.csv "
     "\\"): ("run", TINY),
    ("rlnas search runs/nasbench-macro-fast --max-latency 20             # ms, measured on this "
     "machine"): ("run", TINY),
    ("rlnas check runs/nasbench-macro-fast --archs 4 --epochs 2 --images 10000 --image-size 16 "
     "\\"): ("run", TINY),
    ("rlnas retrain runs/nasbench-macro-fast --top 3 --random 3 --epochs 2 --images 10000 "
     "\\"): ("run", TINY),
    ("rlnas train darts-cifar10 root=$DATA/cifar10 --out runs/darts  # C=16, 8 cells, 250 "
     "epochs"): ("run", TINY),
    "# examples/my_space.py: the declaration, all a user writes": ("python", None),
    "# from the repository root ($DATA as in \"Using it on CIFAR-10\")": ("run", TINY),
    ("# my_images/train/<class>/*.png and my_images/val/<class>/*.png, every image 32 x 32 (the "
     "size"): ("run", OWN_IMAGES),
}
PARSE_ONLY = {
    "torchrun": "needs several processes (tests/test_distributed.py runs torchrun on gloo)",
    "rlnas evaluate runs/c10-s0": "three runs and six zero-cost proxies over 1,000 cells are "
                                  "minutes; the evaluation itself is tests/test_evaluate.py's",
}


def test_every_readme_block_is_declared():
    firsts = [first for _, first, _ in readme_blocks()]
    assert sorted(firsts) == sorted(BLOCKS), (
        "README.md's code blocks changed: declare how each new block runs in BLOCKS "
        f"(missing: {sorted(set(firsts) - set(BLOCKS))}, "
        f"stale: {sorted(set(BLOCKS) - set(firsts))})")


def commands(text):
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if shlex.split(line, comments=True)]


def expand(argv, data):
    return [a.replace("$DATA", str(data)) for a in argv]


def tiny_extra(argv, tiny):
    """What to append to ``argv`` (a command without its program name) for a tiny run."""
    verb = argv[0]
    if verb == "retrain" and "--top" in argv:
        return tiny.get("retrain --top", TINY_VERB["retrain --top"])
    if verb in ("train", "run", "retrain"):
        config = argv[1]
        extra = tiny.get(config, TINY.get(config))
        if extra is None:  # continuing a run (`rlnas train RUN`): nothing to override
            assert Path(config).is_dir(), f"no tiny overrides declared for {config}"
            return ["-q"]
        return extra
    return TINY_VERB.get(verb, [])


def with_extra(argv, extra):
    """``argv`` with ``extra`` added: key=value overrides after the positional ones (before the
    first flag, where argparse takes them), flags at the end."""
    pairs = [e for e in extra if "=" in e and not e.startswith("-")]
    flags = [e for e in extra if e not in pairs]
    cut = next((i for i, a in enumerate(argv) if i and a.startswith("-")), len(argv))
    return argv[:cut] + pairs + argv[cut:] + flags


def parse_only(argv, why, data):
    """Dry validation: the arguments parse, a config resolves with its overrides, the files named
    exist, the scorers named are registered."""
    from rlnas.cli import build_parser
    from rlnas.config import load_config
    from rlnas.scorers import list_scorers
    args = build_parser().parse_args(argv)
    if args.command in ("train", "run"):
        load_config(args.config, args.overrides)
    if args.command == "evaluate":
        assert Path(args.nasbench201).is_file()
        known = set(list_scorers())
        assert all(part in known for s in args.scorers.split(",") for part in s.split("+"))
    return why


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory, request):
    """A fresh working folder holding a copy of examples/ (as the repository root does), with
    $DATA set and the user's own images generated; the README's commands run there."""
    data = os.environ.get("RLNAS_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    if not (Path(data) / "cifar10").is_dir() or not (Path(data) / "nasbench201.csv").is_file():
        pytest.skip(f"shared data folder {data} not found (set RLNAS_SHARED_DATA)")
    pytest.importorskip("sklearn")
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", folder / "examples")
    write_own_images(folder)
    cwd, env = os.getcwd(), os.environ.get("DATA")
    modules = {k for k in sys.modules if k == "examples" or k.startswith("examples.")}
    os.chdir(folder)
    os.environ["DATA"] = str(Path(data).resolve())
    yield folder, Path(data).resolve()
    os.chdir(cwd)
    if env is None:
        os.environ.pop("DATA", None)
    else:
        os.environ["DATA"] = env
    for k in [k for k in sys.modules if k == "examples" or k.startswith("examples.")]:
        if k not in modules:  # the copy imported from the folder: forget it
            del sys.modules[k]


def write_own_images(folder):
    """my_images/{train,val}/<class>/*.png (3 classes of 32 x 32 images) and my_images.npz."""
    from PIL import Image
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for split, n in (("train", 8), ("val", 3)):
        for k, c in enumerate(("ant", "bee", "cow")):
            (folder / "my_images" / split / c).mkdir(parents=True)
            for i in range(n):
                x = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(x).save(folder / "my_images" / split / c / f"{i}.png")
                if split == "train":
                    xs.append(x)
                    ys.append(k)
    np.savez(folder / "my_images.npz", x=np.stack(xs), y=np.array(ys))


def run_block(kind, tiny, text, data, log):
    from rlnas.cli import main
    if kind == "python":
        exec(compile(text, "README.md", "exec"), {"__name__": "readme"})
        return
    if kind == "make":
        targets = [argv[1] for argv in commands(text)]
        subprocess.run(["make", "-n", "-C", str(ROOT)] + targets, check=True,
                       capture_output=True)
        log.append(("parsed", f"make {' '.join(targets)}", "make -n: builds the venv and runs "
                    "this suite / the 3-minute demo (tests/test_demo.py)"))
        return
    for argv in commands(text):
        argv = expand(argv, data)
        line = " ".join(argv)
        why = next((w for k, w in PARSE_ONLY.items() if line.startswith(k)), None)
        if argv[0] == "torchrun":
            argv = argv[argv.index("rlnas") + 1:]
        elif argv[0] == "rlnas":
            argv = argv[1:]
        if why is not None:
            log.append(("parsed", line, parse_only(argv, why, data)))
            continue
        if argv[0] == "python":
            extra = TINY_VERB["python examples/my_space.py"]
            old = sys.argv
            sys.argv = argv[1:] + expand(extra, data)
            try:
                runpy.run_path(argv[1], run_name="__main__")
            finally:
                sys.argv = old
        else:
            extra = expand(tiny_extra(argv, tiny), data)
            argv = with_extra(argv, extra)
            assert main(argv) == 0, f"failed: rlnas {' '.join(argv)}"
        log.append(("ran", line, " ".join(extra)))


@pytest.mark.parametrize("index", range(len(readme_blocks())))
@pytest.mark.needs_shared_data
def test_readme_block_runs(index, user_folder):
    """Blocks run in README order (a later block uses the runs an earlier one made)."""
    folder, data = user_folder
    lang, first, text = readme_blocks()[index]
    kind, tiny = BLOCKS[first]
    log = []  # (ran | parsed, command, the tiny overrides or why it is only parsed)
    run_block(kind, tiny, text, data, log)
    parsed = [line for what, line, _ in log if what == "parsed"]
    assert all(any(line.startswith(k) for k in PARSE_ONLY) or line.startswith("make")
               for line in parsed), parsed
    if first.startswith("# examples/my_space.py"):  # the README's declaration is the example's
        ns = {}
        exec(compile(text, "README.md", "exec"), ns)
        from rlnas.spaces import get_space
        example = get_space("examples.my_space:SPACE")
        archs = example.enumerate()
        np.testing.assert_array_equal(ns["SPACE"].cost(archs)["params"],
                                      example.cost(archs)["params"])
    if first.startswith("# the paper's recipe"):
        assert (folder / "runs" / "c10" / "evaluation.md").is_file()
        assert (folder / "runs" / "c10" / "arch.png").is_file()
    if first.startswith("# my_images"):
        assert (folder / "runs" / "my_images" / "arch.png").is_file()
        assert (folder / "runs" / "my_images" / "retrain-top" / "retrain-top.md").is_file()
