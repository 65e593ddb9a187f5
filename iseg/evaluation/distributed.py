"""Sharding evaluation samples over ranks and gathering per-sample results back.

Samples are dealt round-robin (rank r takes r, r + W, ...), so every rank gets a near-equal
share and the union is exactly the sample list; results carry their sample index so the
gathered list can be put back in dataset order.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def shard_for_rank(num_samples: int, rank: int, world_size: int) -> list[int]:
    """Indices of the samples that ``rank`` evaluates."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world size {world_size}")
    return list(range(rank, num_samples, world_size))


def gather_objects(local: list[Any]) -> list[Any]:
    """Concatenate every rank's list (picklable items) on every rank; identity without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(local)
    gathered: list[list[Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return [item for part in gathered for item in (part or [])]
