"""Where a run computes: the device, the autocast precision and this process's place in a
torchrun job (``Dist``), with the collective operations the training loop needs (the coalesced
all-reduce of touched gradients, global sums, the once-per-epoch same-path check)."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from .errors import RlnasError

# channels-last activations: faster convolutions on GPUs (tensor cores) and on CPUs (oneDNN;
# 2x for the NB201 supernet at C=16 on this project's 2-core machines, benchmarks/RESULTS.md)
CHANNELS_LAST = True


def resolve_device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RlnasError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RlnasError(f"device {name!r} requested but CUDA is not available here")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """None means fp32. 'auto' is bf16 on CUDA where supported, fp16 on older GPUs, fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device_name: str):
    """(Dist, device). Under torchrun (WORLD_SIZE > 1) joins the process group: NCCL with one GPU
    per process (LOCAL_RANK) when CUDA is used, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return Dist(), device
    import torch.distributed as tdist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        # torch._dynamo (imported by the optimizer) keeps references to a process group that
        # exists when it is first imported; that group then outlives destroy_process_group and
        # its gloo threads can abort the interpreter's exit. Imported first, it holds none.
        # (Through importlib: ``import torch._dynamo`` here would make ``torch`` a local name of
        # this function, unbound where the CUDA branch above reads it.)
        importlib.import_module("torch._dynamo")
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world), device


# channels-last activations: faster convolutions on GPUs (tensor cores) and on CPUs (oneDNN;
# 2x for the NB201 supernet at C=16 on this project's 2-core machines, benchmarks/RESULTS.md)

def allreduce_grads(model: nn.Module):
    """Sum the gradients of the parameters this step touched over all processes, in one
    coalesced all-reduce (every rank ran the same path, so the set is the same everywhere)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def global_sum(dist: Dist, t: torch.Tensor) -> torch.Tensor:
    if dist.world > 1:
        t = t.clone()
        torch.distributed.all_reduce(t)
    return t


def check_same_paths(dist: Dist, digest: int, epoch: int):
    """Once per epoch: every rank must have trained the same sequence of paths."""
    if dist.world <= 1:
        return
    got = [None] * dist.world
    torch.distributed.all_gather_object(got, digest)
    if len(set(got)) != 1:
        raise RlnasError(f"ranks sampled different paths in epoch {epoch}: {got}")


def check_parallel(train, dist: Dist):
    """RlnasError unless the train section's global batch splits over the processes and
    micro-batches (``train.batch_size >= processes x train.accumulate``)."""
    if train.batch_size < dist.world * train.accumulate:
        raise RlnasError(f"global batch {train.batch_size} is smaller than processes x "
                         f"accumulate = {dist.world} x {train.accumulate}")
    if train.grad_sync not in ("coalesced", "ddp"):
        raise RlnasError(f"train.grad_sync must be coalesced or ddp, got {train.grad_sync!r}")
