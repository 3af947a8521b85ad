"""Zero-cost proxies (Abdelfattah et al. 2021; Mellor et al. 2021), scored on the standalone network
at initialisation, and registered as scorers ``synflow``, ``snip``, ``grad_norm``, ``fisher``,
``jacov`` and ``nwot``.

Pure functions ``proxy(model, x, y) -> float`` (bigger = better). Every proxy leaves the model as
it found it: parameters, buffers (BatchNorm running statistics), ``.grad`` fields and train/eval
flags are unchanged afterwards (gradients are taken with ``torch.autograd.grad``, never
``.backward()``, so no ``.grad`` is touched; buffers a train-mode forward updates are restored).
Unless stated otherwise a proxy runs the model in train mode (BatchNorm on batch statistics, as
the reference implementation does) on ``x`` cast to the model's dtype and device. ``L`` below is
the mean cross-entropy of ``model(x)`` against ``y``. "Weights" are the ``weight`` tensors of
every ``nn.Conv2d`` and ``nn.Linear`` module (not biases, not BatchNorm affine). A gradient that
does not exist (a layer disconnected from the output, e.g. behind a cell whose input does not
reach its output) counts as zero. Pure functions return the raw value, which may be non-finite;
the scorers turn non-finite values into NaN.

Scorers read ``ctx.options``: ``data`` (an :class:`~rlnas.data.ImageData`, required),
``proxy_model`` (keywords of the space's ``network``, default none: the space's own network at
its defaults, the one its costs describe -- NB201 C=16, N=5; DARTS its reporting network; a
``ChoiceSpace`` its only network; ``num_classes`` defaults to the data's), ``batch_size`` (64),
``num_batches`` (1), ``device`` (``ctx.device``), ``progress`` (True: a tqdm bar over the archs
on stderr, shown once a call has run for ``PROGRESS_DELAY`` seconds, so a short call draws
nothing).
Every arch's network is built under ``torch.manual_seed(ctx.seed)`` (so all archs share one
init seed, without touching the global RNG) and scored on the same batches 0..num_batches-1 of
an un-augmented ``DeviceLoader`` seeded with ``ctx.seed``; the score is the mean over batches.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import RlnasError
from .scorers import ScoreContext, ScoreFn, register_scorer

__all__ = ["PROXIES", "PROXY_NAMES", "DEFAULT_PROXY_MODEL", "grad_norm", "snip", "synflow",
           "fisher", "jacov", "nwot", "score_all", "weight_layers"]

# No keywords: each space's ``network`` defaults (NB201's are C=16, N=5). Size keywords are the
# space's own, so a default naming NB201's would be refused by every other space.
DEFAULT_PROXY_MODEL: Dict[str, object] = {}
JACOV_EPS = 1e-5
_RELUS = (nn.ReLU, nn.ReLU6)  # the rectifiers whose on/off codes NASWOT compares
PROGRESS_DELAY = 2.0  # seconds before a bar appears (tqdm's ``delay``)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def weight_layers(model: nn.Module) -> List[nn.Module]:
    """The ``nn.Conv2d`` and ``nn.Linear`` modules whose weights the proxies sum over."""
    out, seen = [], set()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight is not None and id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


@contextlib.contextmanager
def _preserved(model: nn.Module, train: bool = True):
    """Run with the model in ``train`` mode; restore every module's mode and every buffer."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    model.train(train)
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, v in buffers:
                b.copy_(v)
        for m, t in modes:
            m.training = t


def _inputs(model: nn.Module, x, y=None):
    p = next(model.parameters(), None)
    x = torch.as_tensor(x)
    if p is not None:
        x = x.to(device=p.device, dtype=p.dtype if p.is_floating_point() else x.dtype)
    if y is not None:
        y = torch.as_tensor(y).to(device=x.device, dtype=torch.long)
    return x, y


def _grads(out: torch.Tensor, wrt: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """d out / d t for each t; zeros where t does not influence ``out`` (or needs no grad)."""
    grads: List[Optional[torch.Tensor]] = [None] * len(wrt)
    idx = [i for i, t in enumerate(wrt) if t.requires_grad]
    if out.requires_grad and idx:
        got = torch.autograd.grad(out, [wrt[i] for i in idx], allow_unused=True)
        for i, g in zip(idx, got):
            grads[i] = g
    return [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, grads)]


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


# ----------------------------------------------------------------------------------------------
# the proxies
# ----------------------------------------------------------------------------------------------
def grad_norm(model: nn.Module, x, y) -> float:
    """Σ over conv/linear weights W of the Frobenius norm ||∂L/∂W||_2 (train mode)."""
    x, y = _inputs(model, x, y)
    ws = [m.weight for m in weight_layers(model)]
    with _preserved(model, train=True):
        gs = _grads(_loss(model, x, y), ws)
    return float(sum((g.detach().double().norm() for g in gs),
                     torch.zeros((), dtype=torch.float64)))


def snip(model: nn.Module, x, y) -> float:
    """Σ over conv/linear weights W of Σ |W ⊙ ∂L/∂W| (train mode; Lee et al.'s connection
    sensitivity, i.e. |∂L/∂mask| at mask = 1 as in the reference)."""
    x, y = _inputs(model, x, y)
    ws = [m.weight for m in weight_layers(model)]
    with _preserved(model, train=True):
        gs = _grads(_loss(model, x, y), ws)
    return float(sum(((w.detach().double() * g.detach().double()).abs().sum()
                      for w, g in zip(ws, gs)),
                     torch.zeros((), dtype=torch.float64)))


def synflow(model: nn.Module, x, y=None) -> float:
    """SynFlow (Tanaka et al. 2020, as scored by Abdelfattah et al. 2021), data-free.

    On a deep copy of the model in float64 (the original is never touched): every parameter is
    replaced by its absolute value; every BatchNorm is put in eval mode with its running
    statistics reset to their initial values (mean 0, var 1), so BN is the affine map
    ``|γ| x / sqrt(1 + eps) + |β|`` — at initialisation (γ=1, β=0) an identity up to the factor
    (1+eps)^-1/2. This is how Tanaka et al. disable BN, and at init it matches the
    zero-cost-proxies reference (which scores a copy built without BN layers) up to that factor.
    The input is all ones of shape (1, C, H, W) taken from ``x`` (only its shape is used; ``y``
    is ignored); R = Σ output; score = Σ over conv/linear weights of Σ |W ⊙ ∂R/∂W|
    (with |W| and a positive input every term is ≥ 0). Invariant to the data and to the sign of
    every parameter.
    """
    x, _ = _inputs(model, x)
    net = copy.deepcopy(model).double()
    net.eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.zero_()
                if m.running_var is not None:
                    m.running_var.fill_(1.0)
    for p in net.parameters():
        p.requires_grad_(True)
    ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64, device=x.device)
    ws = [m.weight for m in weight_layers(net)]
    gs = _grads(net(ones).sum(), ws)
    return float(sum(((w.detach() * g.detach()).abs().sum() for w, g in zip(ws, gs)),
                     torch.zeros((), dtype=torch.float64)))


def fisher(model: nn.Module, x, y) -> float:
    """Fisher (Theis et al. 2018; Turner et al. 2020), train mode.

    Hooked activations: the output ``a`` of every call of every ``nn.Conv2d`` and ``nn.Linear``
    module (in NB201: the conv inside each ReLU-Conv-BN op, before its BN; the stem conv; the
    ResNet blocks' convs and 1x1 downsample conv; the classifier's logits), as the reference
    hooks a dummy identity placed right after each conv/linear. With g[n, k] = Σ_spatial
    a[n, k, ...] · ∂L/∂a[n, k, ...] (no spatial sum for a 2-D linear output), the score is
    Σ_activations Σ_k 0.5 · mean_n g[n, k]² (mean of squares over the batch, as the reference).
    A hooked output that does not reach the loss contributes 0.
    """
    x, y = _inputs(model, x, y)
    acts: List[torch.Tensor] = []

    def hook(module, inp, out):
        acts.append(out)
        return out.clone()  # later in-place ops act on the clone; ``out`` stays the activation

    handles = [m.register_forward_hook(hook) for m in weight_layers(model)]
    try:
        with _preserved(model, train=True):
            gs = _grads(_loss(model, x, y), acts)
    finally:
        for h in handles:
            h.remove()
    total = torch.zeros((), dtype=torch.float64)
    for a, g in zip(acts, gs):
        prod = a.detach().double() * g.detach().double()
        if prod.dim() > 2:
            prod = prod.sum(dim=tuple(range(2, prod.dim())))
        total = total + (0.5 * prod.pow(2).mean(0)).sum()
    return float(total)


def jacov(model: nn.Module, x, y=None) -> float:
    """Jacobian covariance (Mellor et al. 2021 v1, as in the zero-cost-proxies reference), train
    mode. J[n] = ∂(Σ model(x))/∂x[n] flattened (N x D; with BN on batch statistics this is the
    gradient of the batch's summed output, exactly as the reference computes it); C = corrcoef(J)
    (N x N); v = eigenvalues of C; score = -Σ_i [log(v_i + 1e-5) + 1/(v_i + 1e-5)].

    Sign: each term log(t) + 1/t (t = v + 1e-5) is minimal at t = 1, so the score is highest
    (about -N) when the per-image Jacobians are uncorrelated (C = I) and very negative when they
    are correlated (eigenvalues near 0): higher = better. NaN when a Jacobian row is constant
    (e.g. the output does not depend on the input), where the correlation is undefined.
    ``y`` is ignored.
    """
    x, _ = _inputs(model, x)
    x = x.detach().clone().requires_grad_(True)
    with _preserved(model, train=True):
        (j,) = _grads(model(x).sum(), [x])
    jac = j.detach().reshape(j.shape[0], -1).double().cpu().numpy()
    return _jacov_score(jac)


def _jacov_score(jac: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        corr = np.atleast_2d(np.corrcoef(jac))
    if not np.all(np.isfinite(corr)):
        return float("nan")
    try:
        v = np.linalg.eigvalsh(corr)
    except np.linalg.LinAlgError:
        return float("nan")
    with np.errstate(all="ignore"):
        return float(-np.sum(np.log(v + JACOV_EPS) + 1.0 / (v + JACOV_EPS)))


def nwot(model: nn.Module, x, y=None) -> float:
    """NASWOT (Mellor et al. 2021 v2), train mode, no gradients.

    For each image n, c[n] is the binary code (input > 0) of every call of every ``nn.ReLU`` and
    ``nn.ReLU6`` module (MobileNet's blocks use ReLU6, which is not an ``nn.ReLU``), flattened
    and concatenated over all calls (N x D). K = c cᵀ + (1-c)(1-c)ᵀ (N x N; K[i, j] = number of
    units on which images i and j agree, D - Hamming distance), computed in float64;
    score = log|det K| (``slogdet``); -inf when K is singular. ``y`` is ignored.
    """
    x, _ = _inputs(model, x)
    n = x.shape[0]
    k = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def hook(module, inp, out):
        nonlocal k
        c = (inp[0].detach().reshape(n, -1) > 0).double()
        k = k + c @ c.T + (1.0 - c) @ (1.0 - c).T

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _RELUS)]
    try:
        with _preserved(model, train=True), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    _, logdet = np.linalg.slogdet(k.cpu().numpy())
    return float(logdet)


PROXIES: Dict[str, Callable[..., float]] = {
    "synflow": synflow, "snip": snip, "grad_norm": grad_norm, "fisher": fisher, "jacov": jacov,
    "nwot": nwot,
}
PROXY_NAMES: Tuple[str, ...] = tuple(PROXIES)


# ----------------------------------------------------------------------------------------------
# scorers
# ----------------------------------------------------------------------------------------------
class _Runner:
    """Options, fixed batches and seeded network construction shared by the proxy scorers."""

    def __init__(self, space, ctx: ScoreContext, who: str):
        from .data import DeviceLoader, ImageData

        opts = dict(ctx.options or {})
        data = opts.get("data")
        if data is None:
            raise RlnasError(f"proxy {who} needs data: pass options={{'data': ImageData}} in the "
                             "score context (e.g. rlnas.data.load_dataset(...))")
        if not isinstance(data, ImageData):
            raise RlnasError(f"proxy {who} needs data: options['data'] must be an ImageData, "
                             f"got {type(data).__name__}")
        pm = opts.get("proxy_model")
        pm = dict(DEFAULT_PROXY_MODEL if pm is None else pm)
        if not isinstance(pm, dict):
            raise RlnasError(f"proxy {who}: proxy_model must be a dict of network kwargs, "
                             f"got {pm!r}")
        pm.setdefault("num_classes", int(data.num_classes))
        try:
            batch_size = int(opts.get("batch_size", 64))
            num_batches = int(opts.get("num_batches", 1))
        except (TypeError, ValueError):
            raise RlnasError(f"proxy {who}: batch_size and num_batches must be integers") from None
        if batch_size < 1 or num_batches < 1:
            raise RlnasError(f"proxy {who}: batch_size and num_batches must be >= 1, "
                             f"got {batch_size} and {num_batches}")
        if len(data.y) and int(np.max(data.y)) >= int(pm["num_classes"]):
            raise RlnasError(f"proxy {who}: labels reach {int(np.max(data.y))} but the proxy "
                             f"network has num_classes={pm['num_classes']}")
        self.space, self.seed, self.model_kwargs = space, int(ctx.seed), pm
        self.progress = bool(opts.get("progress", True))
        self.device = torch.device(opts.get("device") or ctx.device or "cpu")
        loader = DeviceLoader(data.x, data.y, batch_size, data.mean, data.std, augment=False,
                              seed=self.seed)  # on the CPU: only the batches go to the device
        self.batches = [tuple(t.to(self.device) for t in loader.batch(s))
                        for s in range(num_batches)]

    def build(self, arch) -> nn.Module:
        arch = tuple(int(g) for g in np.asarray(arch).reshape(-1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.space.network(arch, **self.model_kwargs)
        return model.to(self.device)

    def evaluate(self, name: str, model: nn.Module) -> float:
        fn = PROXIES[name]
        try:
            vals = [fn(model, x, y) for x, y in self.batches]
        except (np.linalg.LinAlgError, FloatingPointError):
            return float("nan")
        v = float(np.mean(vals))
        return v if math.isfinite(v) else float("nan")

    def archs(self, archs) -> np.ndarray:
        a = np.asarray(archs, dtype=np.int64)
        genes = int(self.space.num_genes or (a.shape[-1] if a.ndim else 1))
        return a.reshape(-1, genes)

    def bar(self, archs: np.ndarray, desc: str, progress: Optional[bool] = None):
        """``archs`` wrapped in a tqdm bar (stderr, cleared when done) unless progress is off or
        there is one arch; it appears only after PROGRESS_DELAY seconds."""
        on = self.progress if progress is None else bool(progress)
        if not on or len(archs) < 2:
            return archs
        from tqdm.auto import tqdm
        return tqdm(archs, desc=desc, unit="arch", delay=PROGRESS_DELAY, mininterval=1.0,
                    dynamic_ncols=True, leave=False)


def _make_factory(name: str):
    def factory(ctx: ScoreContext) -> ScoreFn:
        runner = _Runner(ctx.space, ctx, name)

        def score(archs: np.ndarray) -> np.ndarray:
            archs = runner.archs(archs)
            out = np.empty(len(archs), dtype=np.float64)
            for i, arch in enumerate(runner.bar(archs, name)):
                out[i] = runner.evaluate(name, runner.build(arch))
            return out
        return score
    return factory


_DESCRIPTIONS = {
    "synflow": "SynFlow zero-cost proxy (data-free, |W|, all-ones input) on the seeded init "
               "network.",
    "snip": "SNIP zero-cost proxy: sum |W * dL/dW| on the seeded init network.",
    "grad_norm": "Gradient-norm zero-cost proxy: sum ||dL/dW|| on the seeded init network.",
    "fisher": "Fisher zero-cost proxy on conv/linear outputs of the seeded init network.",
    "jacov": "Jacobian-covariance zero-cost proxy (NASWOT v1) on the seeded init network.",
    "nwot": "NASWOT zero-cost proxy: log|det K| of ReLU codes on the seeded init network.",
}
for _name in PROXY_NAMES:
    register_scorer(_name, needs_run=False, description=_DESCRIPTIONS[_name])(_make_factory(_name))


def score_all(names: Sequence[str], space, archs: np.ndarray, ctx: ScoreContext,
              progress: bool = True) -> Dict[str, Tuple[np.ndarray, float]]:
    """Several proxies at once: ``{name: (scores (N,), seconds)}``.

    Each arch's network is built once (seeded as by the scorers) and every proxy is evaluated on
    it in turn; the proxies leave the model unchanged, so the result equals the separate
    scorers'. ``seconds`` is the time spent in that proxy over all archs (building the networks
    is not counted). A tqdm bar over archs shows when ``progress`` (after PROGRESS_DELAY s).
    """
    names = [str(n).strip() for n in ([names] if isinstance(names, str) else names)]
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise RlnasError(f"unknown proxy {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(PROXY_NAMES)}")
    if not names:
        raise RlnasError("score_all needs at least one proxy name")
    runner = _Runner(space, ctx, ", ".join(names))
    archs = runner.archs(archs)
    scores = {n: np.empty(len(archs), dtype=np.float64) for n in names}
    seconds = {n: 0.0 for n in names}
    for i, arch in enumerate(runner.bar(archs, "proxies", progress)):
        model = runner.build(arch)
        for n in names:
            t0 = time.perf_counter()
            scores[n][i] = runner.evaluate(n, model)
            seconds[n] += time.perf_counter() - t0
    return {n: (scores[n], seconds[n]) for n in names}
