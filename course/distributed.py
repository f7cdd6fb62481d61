"""Data parallelism helpers for the trainer: joining ``torchrun``'s process group, per-process seeds (chapter 08).

Under ``torchrun --nproc_per_node=N`` every process runs the same script; the
environment variables RANK, WORLD_SIZE and LOCAL_RANK say which one it is.

Seeds: process ``r`` seeds PyTorch with `rank_seed` = ``seed + r``, so the
processes draw *different* dropout masks (with one seed they would all drop the
same units, and N processes would regularise like one). Process 0, and a single
process, use ``seed`` itself: their runs are the same as before data
parallelism. The data is not affected: the batch sampler has its own generator,
seeded with ``seed`` on every process (each takes its slice of one global
batch), and DDP copies process 0's initial weights to the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands in the process group (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (RANK and WORLD_SIZE set); else a single process."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank`` for PyTorch's own generators (dropout and the like): ``seed + rank``."""
    return seed + rank


def reseed_after_resume(seed: int, info: DistInfo, step: int) -> None:
    """After a resume, give processes other than 0 their own dropout stream again.

    A checkpoint holds process 0's random states (every process restores them);
    the others then reseed from their rank and the step, so their masks stay
    distinct from process 0's (they are not those of an uninterrupted run:
    only process 0's stream is saved).
    """
    if info.rank > 0:
        torch.manual_seed(rank_seed(seed, info.rank) + 1_000_003 * step)


def barrier(info: DistInfo) -> None:
    """Wait for every process (a no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def mean_over_processes(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over the processes, in place (a no-op for a single process)."""
    if info.enabled:
        dist.all_reduce(value, op=dist.ReduceOp.AVG)
    return value
