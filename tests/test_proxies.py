"""Zero-cost proxies: each checked against its defining formula computed independently on tiny
networks, plus the registered scorers on NB201 archs (including disconnected cells)."""
import copy
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rlnas.data import ImageData
from rlnas.errors import RlnasError
from rlnas.proxies import (
    PROXIES,
    PROXY_NAMES,
    fisher,
    grad_norm,
    jacov,
    nwot,
    score_all,
    snip,
    synflow,
)
from rlnas.scorers import ScoreContext, build_scorer, list_scorers
from rlnas.spaces import get_space

RTOL = 1e-6
SPACE = get_space("nb201")
ARCHS = np.array([
    [0, 0, 0, 0, 0, 0],   # all none: the cell outputs zeros
    [1, 1, 1, 0, 0, 0],   # output node has no input: disconnected although edges are non-none
    [3, 3, 3, 3, 3, 3],
    [1, 2, 3, 4, 1, 2],
    [2, 0, 0, 3, 0, 4],
], dtype=np.int64)




def tiny_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return ImageData(x=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                     y=rng.integers(0, 10, n).astype(np.int64), num_classes=10,
                     mean=(0.5,) * 3, std=(0.25,) * 3, name="tiny", source="test")


def ctx_for(data=None, **opts):
    options = {"proxy_model": {"channels": 4, "cells": 1}, "batch_size": 8, **opts}
    if data is not None:
        options["data"] = data
    return ScoreContext(space=SPACE, options=options)


# ----------------------------------------------------------------------------------------------
# tiny reference networks
# ----------------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """conv(bias) -> BN -> ReLU -> 1x1 conv -> ReLU -> GAP -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 5, 1, bias=False)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h = self.relu1(self.bn(self.conv1(x)))
        h = self.relu2(self.conv2(h))
        return self.fc(h.mean((2, 3)))


def tiny_setup(seed=0, n=6):
    torch.manual_seed(seed)
    net = TinyNet().double()
    with torch.no_grad():  # non-trivial BN affine so it matters
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.3, 0.3)
    x = torch.randn(n, 3, 5, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return net, x, y


def tiny_params(net, absolute=False):
    names = ["conv1.weight", "conv1.bias", "bn.weight", "bn.bias", "conv2.weight", "fc.weight",
             "fc.bias"]
    sd = dict(net.named_parameters())
    out = {}
    for k in names:
        t = sd[k].detach().clone()
        out[k] = (t.abs() if absolute else t).requires_grad_(True)
    return out


def tiny_functional(p, x, bn_train=True):
    """The TinyNet forward written out; returns (logits, [conv1 out, conv2 out, fc out])."""
    a1 = F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1)
    if bn_train:
        h = F.batch_norm(a1, None, None, p["bn.weight"], p["bn.bias"], training=True, eps=1e-5)
    else:
        z = torch.zeros(4, dtype=x.dtype)
        h = F.batch_norm(a1, z, z + 1, p["bn.weight"], p["bn.bias"], training=False, eps=1e-5)
    a2 = F.conv2d(F.relu(h), p["conv2.weight"])
    a3 = F.linear(F.relu(a2).mean((2, 3)), p["fc.weight"], p["fc.bias"])
    return a3, [a1, a2, a3]


WEIGHTS = ["conv1.weight", "conv2.weight", "fc.weight"]


def linear_setup(seed=1, n=7, d=12, k=4):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, k)).double()
    x = torch.randn(n, 3, 2, 2, dtype=torch.float64)
    y = torch.randint(0, k, (n,))
    return net, x, y


def linear_numpy(net, x, y):
    """Explicit softmax-regression gradients: W, b, X, Z, dL/dZ, dL/dW."""
    W = net[1].weight.detach().numpy()
    b = net[1].bias.detach().numpy()
    X = x.reshape(len(x), -1).numpy()
    Z = X @ W.T + b
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    Y = np.eye(W.shape[0])[y.numpy()]
    dZ = (P - Y) / len(X)
    return W, Z, dZ, dZ.T @ X


# ----------------------------------------------------------------------------------------------
# the definitions
# ----------------------------------------------------------------------------------------------
def test_grad_norm_and_snip_analytic_linear():
    net, x, y = linear_setup()
    W, _, _, G = linear_numpy(net, x, y)
    assert grad_norm(net, x, y) == pytest.approx(np.linalg.norm(G), rel=RTOL)
    assert snip(net, x, y) == pytest.approx(np.abs(W * G).sum(), rel=RTOL)


def test_grad_norm_and_snip_match_explicit_autograd():
    net, x, y = tiny_setup()
    p = tiny_params(net)
    loss = F.cross_entropy(tiny_functional(p, x)[0], y)
    grads = torch.autograd.grad(loss, [p[k] for k in WEIGHTS])
    ref_gn = sum(float(g.norm()) for g in grads)
    ref_snip = sum(float((p[k] * g).detach().abs().sum()) for k, g in zip(WEIGHTS, grads))
    assert grad_norm(net, x, y) == pytest.approx(ref_gn, rel=RTOL)
    assert snip(net, x, y) == pytest.approx(ref_snip, rel=RTOL)


def test_fisher_analytic_linear():
    net, x, y = linear_setup()
    _, Z, dZ, _ = linear_numpy(net, x, y)
    g = Z * dZ  # the only hooked activation is the linear output (logits)
    ref = (0.5 * (g ** 2).mean(0)).sum()
    assert fisher(net, x, y) == pytest.approx(ref, rel=RTOL)


def test_fisher_hooks_every_conv_and_linear_output():
    net, x, y = tiny_setup()
    p = tiny_params(net)
    out, acts = tiny_functional(p, x)
    grads = torch.autograd.grad(F.cross_entropy(out, y), acts)
    ref = 0.0
    for a, g in zip(acts, grads):
        prod = (a * g).detach()
        gnk = prod.sum((2, 3)) if prod.dim() == 4 else prod
        ref += float((0.5 * gnk.pow(2).mean(0)).sum())
    assert fisher(net, x, y) == pytest.approx(ref, rel=RTOL)
    # leaving out any one hooked activation changes the value: all three are counted
    for skip in range(3):
        part = sum(float((0.5 * ((a * g).detach().sum((2, 3)) if a.dim() == 4 else (a * g).detach())
                               .pow(2).mean(0)).sum()) for i, (a, g) in enumerate(zip(acts, grads))
                   if i != skip)
        assert fisher(net, x, y) != pytest.approx(part, rel=RTOL)


def test_fisher_robust_to_inplace_relu_after_conv():
    net, x, y = tiny_setup()
    ref = fisher(net, x, y)
    # an in-place op right after conv2 must not change what is hooked (conv2's own output)
    net.relu2 = nn.Sequential(_AddInPlace(), nn.ReLU())
    shifted = fisher(net, x, y)
    net.relu2 = nn.Sequential(_AddOutOfPlace(), nn.ReLU())
    assert shifted == pytest.approx(fisher(net, x, y), rel=RTOL)
    assert shifted != pytest.approx(ref, rel=RTOL)


class _AddInPlace(nn.Module):
    def __init__(self, c=1.0):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x.add_(self.c)


class _AddOutOfPlace(_AddInPlace):
    def forward(self, x):
        return x + self.c


def test_synflow_analytic_mlp():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4)).double()
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    W1, b1 = net[1].weight.detach().abs().numpy(), net[1].bias.detach().abs().numpy()
    W2 = net[3].weight.detach().abs().numpy()
    h = W1 @ np.ones(12) + b1                       # hidden units (all positive: ReLU is identity)
    dW2 = np.outer(np.ones(4), h)                   # dR/dW2[k, j] = h_j
    dW1 = np.outer(W2.sum(0), np.ones(12))          # dR/dW1[j, i] = sum_k |W2[k, j]| * 1
    ref = (W2 * dW2).sum() + (W1 * dW1).sum()
    assert synflow(net, x, None) == pytest.approx(ref, rel=RTOL)


def test_synflow_matches_explicit_autograd_with_eval_bn():
    net, x, _ = tiny_setup()
    p = tiny_params(net, absolute=True)
    ones = torch.ones(1, 3, 5, 5, dtype=torch.float64)
    R = tiny_functional(p, ones, bn_train=False)[0].sum()
    grads = torch.autograd.grad(R, [p[k] for k in WEIGHTS])
    ref = sum(float((p[k] * g).detach().abs().sum()) for k, g in zip(WEIGHTS, grads))
    assert synflow(net, x, None) == pytest.approx(ref, rel=RTOL)


def test_synflow_invariant_to_data_signs_and_running_stats():
    model = SPACE.network((3, 1, 2, 4, 3, 2), channels=4, cells=1)
    x = torch.randn(8, 3, 16, 16)
    s = synflow(model, x, None)
    assert np.isfinite(s) and s > 0
    assert synflow(model, torch.zeros(3, 3, 16, 16), None) == s
    flipped = copy.deepcopy(model)
    with torch.no_grad():
        for q in flipped.parameters():
            q.neg_()
    assert synflow(flipped, x, None) == pytest.approx(s, rel=1e-12)
    model.train()
    with torch.no_grad():
        model(x)  # moves the BN running statistics
    assert synflow(model, x, None) == pytest.approx(s, rel=1e-12)


def reference_jacov(jac):
    """The reference's eval_score written out: corrcoef by hand, general eig, -sum(log + 1/)."""
    c = jac - jac.mean(1, keepdims=True)
    cov = c @ c.T
    d = np.sqrt(np.diag(cov))
    corr = cov / np.outer(d, d)
    v = np.linalg.eig(corr)[0].real
    k = 1e-5
    return -np.sum(np.log(v + k) + 1.0 / (v + k))


def test_jacov_matches_explicit_jacobian():
    net, x, y = tiny_setup(n=5)
    net.train()
    J = torch.autograd.functional.jacobian(lambda inp: net(inp).sum(), x)
    ref = reference_jacov(J.reshape(len(x), -1).numpy())
    net2, _, _ = tiny_setup(n=5)  # fresh copy (the jacobian call moved BN running stats)
    assert jacov(net2, x, y) == pytest.approx(ref, rel=RTOL)


def test_jacov_sign_higher_is_less_correlated():
    net, x, y = tiny_setup(n=5)
    lin, _, _ = linear_setup(d=75, k=3)  # linear model: every image has the same Jacobian
    s_lin, s_net = jacov(lin, x, y), jacov(net, x, y)
    assert s_lin < -1e4  # corr = all ones: eigenvalues ~0 dominate with -1/1e-5
    assert s_net > s_lin
    assert s_net <= -len(x) * (np.log(1 + 1e-5) + 1 / (1 + 1e-5)) + 1e-9  # max at corr = I


def test_jacov_nan_when_output_ignores_input():
    model = SPACE.network((0,) * 6, channels=4, cells=1)
    assert np.isnan(jacov(model, torch.randn(8, 3, 16, 16), None))


def test_nwot_matches_hand_built_codes():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(12, 10), nn.ReLU()).double()
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    X = x.reshape(5, -1).numpy()
    W, b = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    c1 = X > 0                                    # input of the first ReLU
    c2 = (np.maximum(X, 0) @ W.T + b) > 0         # input of the second ReLU
    c = np.concatenate([c1, c2], 1)
    K = (c[:, None, :] == c[None, :, :]).sum(-1).astype(np.float64)  # agreements = D - Hamming
    ref = np.log(abs(np.linalg.det(K)))
    assert nwot(net, x, None) == pytest.approx(ref, rel=RTOL)


def test_nwot_singular_kernel_is_minus_inf():
    net = nn.Sequential(nn.Flatten(), nn.ReLU()).double()
    x = torch.ones(4, 3, 2, 2, dtype=torch.float64)  # identical codes: K is rank one
    assert nwot(net, x, None) == -np.inf


@pytest.mark.parametrize("name", PROXY_NAMES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_proxy_leaves_model_unchanged(name, mode):
    model = SPACE.network((3, 1, 2, 4, 3, 2), channels=4, cells=1)
    model.train(mode == "train")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3, 16, 16)
    y = torch.randint(0, 10, (8,))
    v = PROXIES[name](model, x, y)
    assert np.isfinite(v)
    after = model.state_dict()
    for k, t in before.items():
        assert torch.equal(after[k], t), k
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == (mode == "train") for m in model.modules())
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


# ----------------------------------------------------------------------------------------------
# scorers
# ----------------------------------------------------------------------------------------------
def test_registered():
    assert set(PROXY_NAMES) <= set(list_scorers())
    assert set(PROXY_NAMES) == {"synflow", "snip", "grad_norm", "fisher", "jacov", "nwot"}


@pytest.mark.parametrize("name", PROXY_NAMES)
def test_scorer_on_nb201_archs(name):
    data = tiny_data()
    fn = build_scorer(name, ctx_for(data))
    s = fn(ARCHS)
    assert s.shape == (len(ARCHS),) and s.dtype == np.float64
    assert not np.any(np.isinf(s))
    assert np.isfinite(s[2:]).all()  # connected cells score a number
    np.testing.assert_array_equal(fn(ARCHS), s)                           # deterministic
    # per-arch seed
    np.testing.assert_array_equal(build_scorer(name, ctx_for(data))(ARCHS[::-1]), s[::-1])
    np.testing.assert_array_equal(fn(ARCHS[3]), s[3:4])                   # one arch, 1-D


def test_scorer_reproduces_direct_call():
    data = tiny_data()
    from rlnas.data import DeviceLoader
    x, y = DeviceLoader(data.x, data.y, 8, data.mean, data.std, augment=False, seed=0).batch(0)
    torch.manual_seed(0)
    model = SPACE.network(tuple(ARCHS[3]), channels=4, cells=1, num_classes=10)
    assert build_scorer("snip", ctx_for(data))(ARCHS[3:4])[0] == snip(model, x, y)


def test_scorer_averages_batches_and_seed_matters():
    data = tiny_data()
    one = build_scorer("grad_norm", ctx_for(data))(ARCHS[2:4])
    two = build_scorer("grad_norm", ctx_for(data, num_batches=2))(ARCHS[2:4])
    assert not np.array_equal(one, two)
    ctx = ctx_for(data)
    ctx.seed = 1
    assert not np.array_equal(build_scorer("synflow", ctx)(ARCHS[2:4]),
                              build_scorer("synflow", ctx_for(data))(ARCHS[2:4]))


@pytest.mark.parametrize("name", PROXY_NAMES)
def test_missing_data_raises(name):
    with pytest.raises(RlnasError, match=f"proxy {name} needs data"):
        build_scorer(name, ctx_for(None))
    with pytest.raises(RlnasError, match="needs data"):
        build_scorer(name, ctx_for(np.zeros((4, 16, 16, 3), np.uint8)))


def test_bad_options_raise():
    with pytest.raises(RlnasError, match="num_classes"):
        build_scorer("snip", ctx_for(tiny_data(), proxy_model={"channels": 4, "cells": 1,
                                                             "num_classes": 3}))
    with pytest.raises(RlnasError, match=">= 1"):
        build_scorer("snip", ctx_for(tiny_data(), batch_size=0))


def test_score_all_matches_scorers_and_times():
    data = tiny_data()
    ctx = ctx_for(data)
    res = score_all(list(PROXY_NAMES), SPACE, ARCHS, ctx, progress=False)
    assert set(res) == set(PROXY_NAMES)
    for name in PROXY_NAMES:
        scores, secs = res[name]
        assert secs >= 0
        np.testing.assert_array_equal(scores, build_scorer(name, ctx)(ARCHS))
    with pytest.raises(RlnasError, match="unknown proxy"):
        score_all(["synflow", "angle"], SPACE, ARCHS, ctx, progress=False)


def test_cost_per_arch(capsys):
    """Reported, not asserted: all six proxies, channels 8, 1 cell, 16x16, batch 32."""
    ctx = ScoreContext(space=SPACE, options={"data": tiny_data(64), "batch_size": 32,
                                             "proxy_model": {"channels": 8, "cells": 1}})
    archs = ARCHS[2:]
    score_all(list(PROXY_NAMES), SPACE, archs[:1], ctx, progress=False)  # warm-up
    t0 = time.perf_counter()
    res = score_all(list(PROXY_NAMES), SPACE, archs, ctx, progress=False)
    per_arch = (time.perf_counter() - t0) / len(archs)
    with capsys.disabled():
        parts = ", ".join(f"{n} {1000 * s / len(archs):.1f}" for n, (_, s) in res.items())
        print(f"\n[proxies] all six per arch: {1000 * per_arch:.1f} ms ({parts} ms)")


def test_a_progress_bar_over_archs_unless_progress_is_off(monkeypatch, capsys):
    """`rlnas evaluate` passes progress=not -q in the options; a call that runs longer than
    PROGRESS_DELAY seconds shows a tqdm bar on stderr (delay 0 here: always)."""
    import rlnas.proxies as proxies
    monkeypatch.setattr(proxies, "PROGRESS_DELAY", 0.0)
    data = tiny_data()
    on = build_scorer("synflow", ctx_for(data))(ARCHS)  # progress defaults to on
    err = capsys.readouterr().err
    assert "synflow" in err and f"/{len(ARCHS)}" in err and "arch" in err
    off = build_scorer("synflow", ctx_for(data, progress=False))(ARCHS)
    np.testing.assert_array_equal(on, off)
    score_all(["snip", "nwot"], SPACE, ARCHS, ctx_for(data), progress=False)
    build_scorer("synflow", ctx_for(data))(ARCHS[:1])  # a single arch: no bar
    assert capsys.readouterr().err == ""
    score_all(["snip", "nwot"], SPACE, ARCHS, ctx_for(data), progress=True)
    assert "proxies" in capsys.readouterr().err


def test_no_bar_before_the_delay(capsys):
    build_scorer("nwot", ctx_for(tiny_data()))(ARCHS)  # well under PROGRESS_DELAY
    assert capsys.readouterr().err == ""
