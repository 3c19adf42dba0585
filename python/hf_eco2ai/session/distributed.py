"""Which process this is in a distributed job, and combining per-rank figures at report time.

Ranks come from the launcher's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, as set by
torchrun, accelerate and Lightning). Combining uses the job's own ``torch.distributed`` process
group; torch is imported only inside ``gather_across_ranks``, so importing this module never
imports it.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.meter.flags import NODE_WIDE_SOURCES


def _env_int(name: str, default: int, environ: Mapping[str, str]) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {name} = {raw!r} is not an integer; the launcher (torchrun, "
            "accelerate, Lightning) sets it to the process's rank; unset it or fix the launch command"
        ) from None


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job: global ``rank``, ``local_rank`` on its node, ``world_size``."""

    rank: int
    local_rank: int
    world_size: int
    host: str

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "RankInfo":
        """Read RANK/LOCAL_RANK/WORLD_SIZE (0/0/1 when unset). Raises ConfigurationError if malformed."""
        environ = os.environ if environ is None else environ
        rank = _env_int("RANK", 0, environ)
        local_rank = _env_int("LOCAL_RANK", rank if "RANK" in environ else 0, environ)
        world_size = _env_int("WORLD_SIZE", 1, environ)
        if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
            raise ConfigurationError(
                f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size} are inconsistent: "
                "expected 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; fix the launch environment"
            )
        return cls(rank=rank, local_rank=local_rank, world_size=world_size, host=socket.gethostname())

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def measures_node_wide_sensors(self) -> bool:
        """Only local rank 0 reads RAPL and the CPU estimate, so a node is counted once."""
        return self.local_rank == 0


def sources_for_rank(
    sources: Sequence[str], rank_info: RankInfo, include_host: bool = True, cpu_scope: str = "machine"
) -> Tuple[Tuple[str, ...], bool, bool]:
    """The sources this process may read: ``(sources, include_host, left_to_local_rank_0)``.

    With ``cpu_scope="machine"``, node-wide sensors (RAPL, the CPU estimate) are read by local
    rank 0 only, so a node is counted once: elsewhere ``auto`` keeps to the GPUs
    (``include_host=False``) and explicit node-wide sources are dropped. With
    ``cpu_scope="process"`` each rank reads its own share of them, and the shares add up without
    counting anything twice. Per-process sources (``nvml``, ``synthetic``) are kept on every rank.
    ``include_host=False`` asks for GPUs only on every rank.
    """
    requested = tuple(sources)
    host_allowed = include_host and (cpu_scope == "process" or rank_info.measures_node_wide_sensors)
    if requested == ("auto",):
        return requested, host_allowed, include_host and not host_allowed
    kept = requested if host_allowed else tuple(s for s in requested if s not in NODE_WIDE_SOURCES)
    return kept, host_allowed, include_host and kept != requested


def own_gpu_devices(rank_info: RankInfo, environ: Optional[Mapping[str, str]] = None) -> Optional[List[int]]:
    """The GPU indices (within CUDA_VISIBLE_DEVICES) this rank owns; None means all visible ones.

    One process per GPU is the norm: with several GPUs visible, a distributed rank owns the one at
    its LOCAL_RANK (torchrun's convention); with exactly one visible, that one is its own.
    """
    environ = os.environ if environ is None else environ
    if not rank_info.is_distributed:
        return None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and len([part for part in visible.split(",") if part.strip()]) == 1:
        return None
    return [rank_info.local_rank]


def process_group_is_initialised() -> bool:
    """True when torch is already imported and its default process group is up.

    Looks in ``sys.modules`` rather than importing torch, so a job without torch pays nothing.
    """
    torch_distributed = sys.modules.get("torch.distributed")
    if torch_distributed is None:
        return False
    return bool(torch_distributed.is_available() and torch_distributed.is_initialized())


def gather_across_ranks(payload: Any) -> List[Any]:
    """Every rank's ``payload`` in rank order, through the default process group.

    A collective: every rank must call it, or the others wait forever. The payload must pickle.
    Returns ``[payload]`` when no process group is initialised.
    """
    if not process_group_is_initialised():
        return [payload]
    import torch.distributed as dist

    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, payload)
    return gathered
