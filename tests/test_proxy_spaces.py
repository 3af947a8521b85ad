"""Every zero-cost proxy scores every space (each registered space and the README's user space):
with no ``proxy_model`` given the proxies build the space's own network at its defaults, so a
``ChoiceSpace`` run is not handed NB201's ``channels``/``cells``."""
import numpy as np
import pytest
import torch

from rlnas.data import ImageData
from rlnas.proxies import PROXY_NAMES, _Runner
from rlnas.scorers import ScoreContext, build_scorer
from test_space_contract import SPACES, make_space, samples, tiny

CLASSES = 3


def images_for(name: str, n: int = 8, seed: int = 0) -> ImageData:
    """``n`` random RGB images at the space's tiny side, labels in 0..CLASSES-1."""
    side = tiny(name)["image"]
    rng = np.random.default_rng(seed)
    return ImageData(x=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                     y=rng.integers(0, CLASSES, n).astype(np.int64), num_classes=CLASSES,
                     mean=(0.5,) * 3, std=(0.25,) * 3, name="tiny", source="test")


def proxy_options(name: str) -> dict:
    """The proxies' options for a space: its tiny model where it has size keywords, else none
    at all (the default path, the one a ChoiceSpace run takes)."""
    opts = {"data": images_for(name), "batch_size": 4, "progress": False}
    if tiny(name)["model"]:
        opts["proxy_model"] = tiny(name)["model"]
    return opts


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("scorer", PROXY_NAMES)
def test_every_proxy_scores_every_space(scorer, space_name):
    space = make_space(space_name)
    archs = np.array(samples(space, 2), dtype=np.int64)
    ctx = ScoreContext(space=space, seed=0, options=proxy_options(space_name))
    scores = build_scorer(scorer, ctx)(archs)
    assert scores.shape == (2,) and scores.dtype == np.float64
    assert np.isfinite(scores).any(), f"{scorer} on {space_name}: {scores}"


@pytest.mark.parametrize("space_name", SPACES)
def test_default_proxy_network_is_the_spaces_network(space_name):
    """No ``proxy_model``: the proxies' network is ``space.network(arch, num_classes=K)``, K the
    data's classes (NB201: C=16, N=5, as before; DARTS: its reporting network)."""
    space = make_space(space_name)
    arch = samples(space, 1)[0]
    data = images_for(space_name)
    runner = _Runner(space, ScoreContext(space=space, seed=0, options={"data": data}), "synflow")
    got = runner.build(arch)
    torch.manual_seed(0)
    want = space.network(arch, num_classes=CLASSES)
    assert [tuple(p.shape) for p in got.parameters()] == [tuple(p.shape) for p in want.parameters()]
