"""Chain-structured choice spaces: declare a network as a fixed stem, a sequence of choice blocks
and a fixed head, and get a complete rlnas search space.

    from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip

    OPS = [Op(f"k{k}", lambda c_in, c_out, stride, k=k: MyConv(c_in, c_out, stride, k))
           for k in (3, 5)]
    SPACE = ChoiceSpace(
        "my_space",
        stem=lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        blocks=[Choice(OPS, 32, stride=2), Choice(OPS + [skip()], 32), Choice(OPS, 64, stride=2)],
        head=lambda num_classes, dropout: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(64, num_classes)),
        input_size=32, num_classes=10)

An op is a module factory ``make(c_in, c_out, stride)``; a block's input channels are whatever
the previous layer outputs. From the declaration the space derives (``SearchSpace``):

* genome: one int per block, the index of its op; notation: the ops' ``code`` (default: name)
  separated by spaces, e.g. ``'k3 skip k5'``;
* ``sample_training_path(seed, step)``: one op per block, uniform, a pure function of
  (seed, step), so every torchrun rank and a resumed run train the same paths;
* ``supernet(num_classes)``: every op of every block (``forward(x, arch)`` runs one path);
  ``network(arch, num_classes, dropout)``: the chosen ops only (retraining, export);
* ``cost``: params counted from the modules; FLOPs of the stem, the head and every
  (block, op) measured once on the declared input shape with ``torch.utils.flop_counter`` (on
  the meta device: no memory, no compute), with the official thop conventions: convolutions and
  batched matmuls count multiply-adds, linear layers (2 in - 1) out; bias additions, norms,
  activations and pooling are free;
* the decomposed angle (``rlnas.angle``): piece ``fixed`` (stem and head) plus one piece per
  (block, op), multiplicity 0/1 (a chain has no paths to repeat an op). Which tensors of an op
  enter the angle vector is the op's ``angle`` rule (default ``angle_tensors``: conv and linear
  weights, norm-layer weight and bias); a rule may also return constant tensors, the surrogates
  of parameter-free ops (``skip``: ``eye(C_out, C_in)``, spec 4.3).

A bad declaration raises ``RlnasError`` when the space is built: a block without ops, duplicate
op names or codes, an identity on a block that changes shape, ops of a block that disagree on
their output shape, an angle rule naming a tensor the op does not have.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from ..angle import FIXED, STATS, vector_stats
from ..errors import RlnasError, UserCodeError
from .base import Arch, SearchSpace, refuse_model_options
from .ops import Identity

AngleRule = Callable[[nn.Module], Sequence[Union[str, torch.Tensor]]]
ENUMERATE_LIMIT = 100_000  # spaces with at most this many archs offer enumerate()


# ----------------------------------------------------------------------------------------------
# Angle rules: module -> its state-dict keys (relative) or constant tensors, in vector order
# ----------------------------------------------------------------------------------------------
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def angle_tensors(module: nn.Module) -> List[str]:
    """The default rule: conv and linear weights, norm-layer weight and bias (no biases of
    conv/linear layers, no running statistics)."""
    keys = []
    for name, m in module.named_modules():
        pre = f"{name}." if name else ""
        if isinstance(m, _WEIGHTED):
            keys.append(pre + "weight")
        elif isinstance(m, _NORMS):
            keys += [pre + k for k in ("weight", "bias") if getattr(m, k, None) is not None]
    return keys


def weights_only(module: nn.Module) -> List[str]:
    """Conv and linear weights only (the MobileNet space's fixed parts, spec 4.3)."""
    return [f"{name}.weight" if name else "weight" for name, m in module.named_modules()
            if isinstance(m, _WEIGHTED)]


def identity_angle(module: Identity) -> List[torch.Tensor]:
    """The skip surrogate of spec 4.3: the constant eye(C_out, C_in) (C_out = C_in)."""
    return [torch.eye(module.channels, dtype=torch.float64)]


# ----------------------------------------------------------------------------------------------
# The declaration
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """A candidate op: ``make(c_in, c_out, stride) -> nn.Module``; ``angle``: which tensors enter
    the angle vector (default ``angle_tensors``); ``code``: its token in the notation (default
    ``name``)."""

    name: str
    make: Callable[[int, int, int], nn.Module]
    angle: Optional[AngleRule] = None
    code: Optional[str] = None

    @property
    def token(self) -> str:
        return self.name if self.code is None else str(self.code)


def skip(name: str = "skip", code: Optional[str] = None) -> Op:
    """The identity op, with the eye(C) angle surrogate."""
    return Op(name, Identity, angle=identity_angle, code=code)


@dataclass(frozen=True)
class Choice:
    """A choice block: one of ``ops``, each mapping the block's input to ``c_out`` channels."""

    ops: Sequence[Op]
    c_out: int
    stride: int = 1


_MODULE_DICT_ATTRS = set(dir(nn.ModuleDict()))
_TOKEN_SPLIT = re.compile(r"[\s,]+")


def _check_declaration(blocks: Sequence[Choice]):
    if not blocks:
        raise RlnasError("a choice space needs at least one choice block")
    for b, block in enumerate(blocks):
        if not isinstance(block, Choice):
            raise RlnasError(f"block {b} is a {type(block).__name__}, not a Choice")
        for what in ("c_out", "stride"):
            v = getattr(block, what)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RlnasError(f"block {b}: {what} must be a positive integer, got {v!r}")
        if not block.ops:
            raise RlnasError(f"block {b} has no candidate ops")
        for op in block.ops:
            if not isinstance(op, Op):
                raise RlnasError(f"block {b}: {op!r} is not an Op")
            if not isinstance(op.name, str) or not op.name.isidentifier() or \
                    op.name in _MODULE_DICT_ATTRS:
                raise RlnasError(f"block {b}: op name {op.name!r} must be a Python identifier "
                                 "that is not an nn.ModuleDict attribute")
            if not op.token or _TOKEN_SPLIT.search(op.token) or op.token[0] in "[(":
                raise RlnasError(f"block {b}: op code {op.token!r} must be non-empty, without "
                                 "spaces, commas or a leading bracket")
        for what, values in (("names", [o.name for o in block.ops]),
                             ("codes", [o.token for o in block.ops])):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise RlnasError(f"block {b} has duplicate op {what}: {', '.join(dup)}")


def _as_module(made, where: str) -> nn.Module:
    if not isinstance(made, nn.Module):
        raise RlnasError(f"{where} made a {type(made).__name__}, not an nn.Module")
    return made


def _with_context(where: str, fn, *args):
    """Run a user factory or forward. Errors of the declaration (a shape, a value, a call's
    signature) become one-line RlnasErrors; any other exception of the user's code a
    UserCodeError saying first, in one line, which part of which space failed (``where``), with
    the exception as its cause: the command line prints the user's traceback after the line."""
    try:
        return fn(*args)
    except RlnasError as err:
        raise type(err)(f"{where}: {err}") from err.__cause__
    except (RuntimeError, ValueError, TypeError) as err:
        raise RlnasError(f"{where}: {str(err).splitlines()[0]}") from None
    except Exception as err:
        text = (str(err).strip().splitlines() or [""])[0][:200]
        raise UserCodeError(f"{where} failed: {type(err).__name__}"
                            f"{': ' + text if text else ''}") from err


# ----------------------------------------------------------------------------------------------
# Measuring a declaration (meta device)
# ----------------------------------------------------------------------------------------------
def _conv_macs(x_shape, w_shape, bias, stride, padding, dilation, transposed, *args,
               out_shape=None, **kwargs) -> int:
    # every output (input, when transposed) element meets one filter of w_shape[1:] weights
    return int(np.prod(x_shape if transposed else out_shape)) * int(np.prod(w_shape[1:]))


def _mm_thop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return (2 * a_shape[1] - 1) * a_shape[0] * b_shape[1]  # thop's Linear: (2 in - 1) out


def _addmm_thop(bias_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return _mm_thop(a_shape, b_shape)


def _bmm_macs(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]


def _baddbmm_macs(bias_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return _bmm_macs(a_shape, b_shape)


def _flop_mapping():
    aten = torch.ops.aten
    return {aten.convolution: _conv_macs, aten._convolution: _conv_macs, aten.mm: _mm_thop,
            aten.addmm: _addmm_thop, aten.bmm: _bmm_macs, aten.baddbmm: _baddbmm_macs}


def _measure(module: nn.Module, x: torch.Tensor, where: str) -> Tuple[int, int, torch.Tensor]:
    """(params, FLOPs, output) of ``module`` on the meta tensor ``x``."""
    from torch.utils.flop_counter import FlopCounterMode
    module = module.to("meta").eval()
    params = sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as counter:
        with torch.no_grad():
            y = _with_context(where, module, x)
    if not isinstance(y, torch.Tensor):
        raise RlnasError(f"{where} returned a {type(y).__name__}, not a tensor")
    return params, counter.get_total_flops(), y


@dataclass
class _Costs:
    fixed: np.ndarray      # (2,) params, FLOPs of stem + head
    ops: np.ndarray        # (total ops, 2) params, FLOPs of every (block, op)


# ----------------------------------------------------------------------------------------------
# The space
# ----------------------------------------------------------------------------------------------
class ChoiceSpace(SearchSpace):
    """A chain of choice blocks between a fixed stem and head (module docstring).

    ``stem``: an nn.Module (copied, then re-initialised, for every network) or a factory
    ``stem() -> nn.Module``; ``head``: a factory ``head(num_classes, dropout) -> nn.Module``
    (pooling and classifier included); ``input_size``: the image side (or (H, W)) at which
    FLOPs are measured and reported; ``num_classes``: the classes of the reported network;
    ``fixed_angle``: the angle rule of the stem and head."""

    def __init__(self, name: str, stem, blocks: Sequence[Choice], head, *, input_size,
                 num_classes: int, fixed_angle: AngleRule = angle_tensors, in_channels: int = 3):
        self.name = name
        self.blocks = tuple(blocks)
        _check_declaration(self.blocks)
        if not (isinstance(stem, nn.Module) or callable(stem)):
            raise RlnasError("stem must be an nn.Module or a factory stem() -> nn.Module")
        if isinstance(head, nn.Module) or not callable(head):
            raise RlnasError("head must be a factory head(num_classes, dropout) -> nn.Module")
        self._stem, self._head, self.fixed_angle = stem, head, fixed_angle
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else \
            tuple(input_size)
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.num_genes = len(self.blocks)
        self.num_ops = np.array([len(b.ops) for b in self.blocks], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.num_ops)[:-1]])  # first op of a block
        # the trace at the declared size checks the declaration and fixes every block's c_in
        self.c_in: List[int] = []
        self._costs: Dict[Tuple, _Costs] = {(None, None): self._trace(self.input_size,
                                                                       self.num_classes)}
        self._pieces, self._shapes = self._angle_entries()

    # --- building modules ------------------------------------------------------------------
    def make_stem(self) -> nn.Module:
        if isinstance(self._stem, nn.Module):
            stem = copy.deepcopy(self._stem)
            for m in stem.modules():  # fresh weights: W0 is a function of the run's seed
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            return stem
        where = f"space {self.name!r} stem()"
        return _as_module(_with_context(where, self._stem), where)

    def make_head(self, num_classes: int, dropout: float = 0.0) -> nn.Module:
        where = f"space {self.name!r} head()"
        return _as_module(_with_context(where, self._head, num_classes, dropout), where)

    def make_op(self, block: int, op: int) -> nn.Module:
        b, o = self.blocks[block], self.blocks[block].ops[op]
        where = f"space {self.name!r} block {block} op {o.name!r}"
        return _as_module(_with_context(where, o.make, self.c_in[block], b.c_out, b.stride), where)

    def _trace(self, input_size, num_classes) -> _Costs:
        """Run every layer and op once on the meta device: check the shapes, record each
        block's input channels, and measure params and FLOPs."""
        with torch.device("meta"):
            x = torch.zeros(1, self.in_channels, *input_size)
            sp, sf, x = _measure(self.make_stem(), x, f"space {self.name!r} stem")
            ops, seen = [], {}
            for b, block in enumerate(self.blocks):
                if b == len(self.c_in):  # first trace: the block's input is what precedes it
                    self.c_in.append(int(x.shape[1]))
                outs = []
                for j, op in enumerate(block.ops):
                    where = f"space {self.name!r} block {b} op {op.name!r}"
                    # the same op on the same input shape (repeated blocks of a stage) is
                    # measured once: meta-device kernels cost ~20 ms per op
                    key = (id(op), block.c_out, block.stride, tuple(x.shape))
                    if key not in seen:
                        seen[key] = _measure(self.make_op(b, j), x, where)
                    p, f, y = seen[key]
                    if y.dim() < 2 or y.shape[1] != block.c_out:
                        raise RlnasError(f"{where} outputs shape {tuple(y.shape)}, but the block "
                                         f"declares {block.c_out} channels")
                    if outs and y.shape != outs[0][1].shape:
                        raise RlnasError(f"{where} outputs shape {tuple(y.shape)}, but op "
                                         f"{block.ops[0].name!r} outputs {tuple(outs[0][1].shape)}")
                    outs.append(((p, f), y))
                ops += [pf for pf, _ in outs]
                x = outs[0][1]
            hp, hf, y = _measure(self.make_head(num_classes), x, f"space {self.name!r} head")
            if tuple(y.shape) != (1, num_classes):
                raise RlnasError(f"head outputs shape {tuple(y.shape)}, "
                                 f"expected (1, {num_classes})")
        return _Costs(np.array([sp + hp, sf + hf], dtype=np.float64),
                      np.array(ops, dtype=np.float64).reshape(-1, 2))

    def supernet(self, num_classes: Optional[int] = None, **unknown) -> "ChoiceSupernet":
        """Every op of every block (``forward(x, arch)`` runs one path).

        Args:
            num_classes: the head's outputs (default: the declared ``num_classes``).
            **unknown: refused (the declaration fixes the network).

        Returns:
            the ``ChoiceSupernet``.
        """
        refuse_model_options(self.name, "supernet", unknown, ["num_classes"])
        return ChoiceSupernet(self, num_classes or self.num_classes)

    def network(self, arch: Arch, num_classes: Optional[int] = None, *, dropout: float = 0.0,
                **unknown) -> nn.Sequential:
        """The standalone network of ``arch``: ``stem``, ``blocks`` (the chosen ops), ``head``.

        Args:
            arch: a valid arch.
            num_classes: the head's outputs (default: the declared ``num_classes``).
            dropout: passed to the head factory (before the classifier).
            **unknown: refused.

        Returns:
            an ``nn.Sequential`` with ``arch`` set.
        """
        refuse_model_options(self.name, "network", unknown, ["num_classes", "dropout"])
        arch = self._check(arch)
        net = nn.Sequential()
        net.add_module("stem", self.make_stem())
        net.add_module("blocks", nn.Sequential(*(self.make_op(b, a) for b, a in enumerate(arch))))
        net.add_module("head", self.make_head(num_classes or self.num_classes, float(dropout)))
        net.arch = arch
        return net

    # --- genome and notation ---------------------------------------------------------------
    def gene_choices(self, gene: int) -> Sequence[int]:
        return range(int(self.num_ops[gene]))

    def sample(self, rng: np.random.Generator) -> Arch:
        """Uniform over each block's ops, in one draw (rejection sampling under a FLOPs limit
        may draw tens of thousands)."""
        return tuple(int(v) for v in rng.integers(0, self.num_ops))

    def _check(self, arch) -> Arch:
        arch = tuple(int(v) for v in np.asarray(arch).reshape(-1))
        if not self.is_valid(arch):
            raise RlnasError(f"not a {self.name} arch: {arch!r} ({self.num_genes} op indices, "
                             f"block b in 0..num_ops[b] - 1)")
        return arch

    def to_str(self, arch: Arch) -> str:
        return " ".join(self.blocks[b].ops[a].token for b, a in enumerate(self._check(arch)))

    def from_str(self, text: str) -> Arch:
        """Op codes (or names) separated by spaces or commas, optionally in brackets."""
        if not isinstance(text, str):
            raise RlnasError(f"a {self.name} arch must be text, got {type(text).__name__}")
        tokens = [t for t in _TOKEN_SPLIT.split(text.strip().strip("[]()").strip()) if t]
        if len(tokens) != self.num_genes:
            raise RlnasError(f"malformed {self.name} arch {text!r}: expected {self.num_genes} "
                             f"ops separated by spaces, got {len(tokens)}")
        arch = []
        for b, (tok, block) in enumerate(zip(tokens, self.blocks)):
            hits = [j for j, op in enumerate(block.ops) if tok in (op.token, op.name)]
            if not hits:
                raise RlnasError(f"block {b} of {self.name} has no op {tok!r}; choices: "
                                 f"{', '.join(op.token for op in block.ops)}")
            arch.append(hits[0])
        return tuple(arch)

    def enumerate(self) -> Optional[np.ndarray]:
        if np.prod(self.num_ops.astype(float)) > ENUMERATE_LIMIT:
            return None
        return np.array(list(itertools.product(*(range(n) for n in self.num_ops))),
                        dtype=np.int64).reshape(-1, self.num_genes)

    def sample_training_path(self, seed: int, step: int, num_cells: int = 0) -> np.ndarray:
        """One op per block, uniform over its ops (spec 1.2), a pure function of (seed, step);
        ``num_cells`` is unused (one genome for the whole chain)."""
        return np.random.default_rng([int(seed), int(step)]).integers(0, self.num_ops)

    # --- cost ------------------------------------------------------------------------------
    def _cost_table(self, input_size=None, num_classes=None) -> _Costs:
        size = None if input_size is None else (int(input_size),) * 2 if isinstance(
            input_size, (int, np.integer)) else tuple(int(v) for v in input_size)
        key = (size, num_classes)
        if key not in self._costs:
            self._costs[key] = self._trace(size or self.input_size,
                                           int(num_classes or self.num_classes))
        return self._costs[key]

    def cost(self, archs: np.ndarray, input_size=None, num_classes=None) -> Dict[str, np.ndarray]:
        """Params (M) and FLOPs (M) of each arch's network (default: the declared input size
        and classes), from the tables measured once."""
        archs = self.genome_array(archs)
        t = self._cost_table(input_size, num_classes)
        total = t.fixed + t.ops[self.offsets + archs].sum(axis=1)  # (N, 2)
        return {"params": total[:, 0] / 1e6, "flops": total[:, 1] / 1e6}

    def cost_bounds(self, input_size=None, num_classes=None) -> Dict[str, Tuple[float, float]]:
        """The smallest and largest params and FLOPs (M) over all archs (each cost is a sum of
        independent per-block terms), so an impossible limit is known without enumerating."""
        t = self._cost_table(input_size, num_classes)
        per_block = np.split(t.ops, np.cumsum(self.num_ops)[:-1])
        lo = t.fixed + sum(o.min(axis=0) for o in per_block)
        hi = t.fixed + sum(o.max(axis=0) for o in per_block)
        return {"params": (lo[0] / 1e6, hi[0] / 1e6), "flops": (lo[1] / 1e6, hi[1] / 1e6)}

    def cost_defaults(self, info: Dict) -> Dict:
        """The declared network at its declared input size, with the run's classes where its
        data has another number than the declaration (the network a retraining builds)."""
        k = int(info.get("dataset_classes", info["num_classes"]))
        return {} if k == self.num_classes else {"num_classes": k}

    def check_image_size(self, image_size: Tuple[int, int], resolution: Optional[int],
                         num_classes: int) -> None:
        """Images as stored must have the declared ``input_size`` (the size FLOPs and limits
        refer to), unless ``data.resolution`` resizes them deliberately; and the network must
        run at the training size (a head fixed to the declared size does not): every layer and
        op traced once at that size on the meta device, before any training. Each error names
        both sizes."""
        h, w = (int(v) for v in image_size)
        if resolution is None and (h, w) != self.input_size:
            raise RlnasError(
                f"the data's images are {h} x {w} px, but space {self.name} is declared for "
                f"{self.input_size[0]} x {self.input_size[1]} px (input_size, the size its "
                f"FLOPs and limits refer to): declare input_size={h if h == w else (h, w)}, "
                f"or resize the images with data.resolution={self.input_size[0]}")
        size = int(resolution or h)
        try:
            self._cost_table(size, int(num_classes))
        except RlnasError as err:
            declared = "x".join(map(str, self.input_size))
            raise type(err)(f"space {self.name} is declared for {declared} px images "
                            f"(input_size) but would train on {size} px ones, on which its "
                            f"network does not run ({err}); give "
                            f"data.resolution={self.input_size[0]} or declare the space for "
                            f"{size} px") from err.__cause__

    def arch_diagram(self, arch: Arch) -> Dict:
        """A block diagram: stem, each block's chosen op (with its channels and stride; a
        parameter-free op such as a skip marked), head."""
        arch = self._check(arch)
        table = self._costs[(None, None)].ops
        blocks = []
        for b, (block, op) in enumerate(zip(self.blocks, arch)):
            params, flops = table[self.offsets[b] + op]
            blocks.append({"op": block.ops[op].name,
                           "detail": f"{block.c_out} ch" + (f", /{block.stride}"
                                                            if block.stride > 1 else ""),
                           "skip": bool(params == 0 and flops == 0)})
        size = "x".join(str(v) for v in self.input_size)
        return {"kind": "chain", "stem": f"stem\n{size} px", "head": "head\nclassifier",
                "blocks": blocks}

    # --- angle -----------------------------------------------------------------------------
    def piece_names(self) -> List[str]:
        return [FIXED] + [f"block{b}:{op.name}" for b, block in enumerate(self.blocks)
                          for op in block.ops]

    def _angle_entries(self):
        """Per piece, the supernet state-dict keys and constants of its vector; the expected
        shape of every key (head keys excepted: they depend on the number of classes)."""
        shapes: Dict[str, torch.Size] = {}

        def entries(module, rule, prefix, where, check_shapes=True):
            state = module.state_dict()
            out = []
            for e in rule(module):
                if isinstance(e, str):
                    if e not in state:
                        raise RlnasError(f"{where}: its angle rule names {e!r}, which it does "
                                         "not have")
                    if check_shapes:
                        shapes[prefix + e] = state[e].shape
                    out.append(prefix + e)
                elif isinstance(e, torch.Tensor) and not e.is_meta:
                    out.append(e.detach().to(torch.float64).reshape(-1))
                else:
                    raise RlnasError(f"{where}: an angle rule returns state-dict keys or concrete "
                                     f"constant tensors, got {type(e).__name__}"
                                     + (" on the meta device" if isinstance(e, torch.Tensor)
                                        else ""))
            if rule is angle_tensors and not out and any(True for _ in module.parameters()):
                raise RlnasError(f"{where} has parameters but the default angle rule selects "
                                 "none of them; give the op an angle rule")
            return out

        with torch.device("meta"):
            stem, head = self.make_stem(), self.make_head(self.num_classes)
            ops = [[self.make_op(b, j) for j in range(len(block.ops))]
                   for b, block in enumerate(self.blocks)]
        pieces = [entries(stem, self.fixed_angle, "stem.", "the stem")
                  + entries(head, self.fixed_angle, "head.", "the head", check_shapes=False)]
        for b, block in enumerate(self.blocks):
            for op, module in zip(block.ops, ops[b]):
                pieces.append(entries(module, op.angle or angle_tensors,
                                      f"blocks.{b}.{op.name}.", f"block {b} op {op.name!r}"))
        return pieces, shapes

    def _tensor(self, state: Dict[str, torch.Tensor], key: str) -> torch.Tensor:
        if key not in state:
            raise RlnasError(f"checkpoint is not a {self.name} supernet: missing tensor {key}")
        t = state[key]
        if key in self._shapes and t.shape != self._shapes[key]:
            raise RlnasError(f"checkpoint is not a {self.name} supernet: {key} has shape "
                             f"{tuple(t.shape)}, the space declares {tuple(self._shapes[key])}")
        return t.detach().to(torch.float64).reshape(-1)

    def angle_pieces(self, state0: Dict[str, torch.Tensor], stateT: Dict[str, torch.Tensor]):
        """(names, stats (P, 4) float64, ``rlnas.angle.STATS``) per piece."""
        stats = np.zeros((len(self._pieces), len(STATS)))
        for p, entries in enumerate(self._pieces):
            for e in entries:
                a, b = (self._tensor(state0, e), self._tensor(stateT, e)) if isinstance(e, str) \
                    else (e, e)
                stats[p] += vector_stats(a, b)
        return self.piece_names(), stats

    def angle_multiplicity(self, archs: np.ndarray) -> np.ndarray:
        """(N, P): 1 for ``fixed`` and for the op each block uses, else 0."""
        archs = self.genome_array(archs)
        m = np.zeros((len(archs), 1 + int(self.num_ops.sum())))
        m[:, 0] = 1.0
        m[np.arange(len(archs))[:, None], 1 + self.offsets + archs] = 1.0
        return m


class ChoiceSupernet(nn.Module):
    """Every op of every block (``blocks.{b}.{op name}``) between the stem and head;
    ``forward(x, arch)`` runs the op ``arch[b]`` of each block b."""

    def __init__(self, space: ChoiceSpace, num_classes: int):
        super().__init__()
        self.stem = space.make_stem()
        self.blocks = nn.ModuleList(
            nn.ModuleDict({op.name: space.make_op(b, j) for j, op in enumerate(block.ops)})
            for b, block in enumerate(space.blocks))
        self.head = space.make_head(num_classes)
        self._names = [[op.name for op in block.ops] for block in space.blocks]

    @property
    def num_search_cells(self) -> int:
        return len(self.blocks)

    def forward(self, x, arch):
        arch = np.asarray(arch).reshape(-1)
        if len(arch) != len(self.blocks):
            raise RlnasError(f"a supernet path has {len(self.blocks)} ops, got {len(arch)}")
        x = self.stem(x)
        for block, names, a in zip(self.blocks, self._names, arch):
            x = block[names[int(a)]](x)
        return self.head(x)
