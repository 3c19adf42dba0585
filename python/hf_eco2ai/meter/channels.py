"""What a measurement channel is: the provenance every energy figure carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

ChannelKind = Literal["counter", "power"]
Provenance = Literal["measured", "estimated"]
CpuScope = Literal["machine", "process"]
CPU_SCOPES = ("machine", "process")


@dataclass(frozen=True)
class ChannelInfo:
    """One sensor channel.

    ``name`` is ``gpu:0``, ``cpu:package-0``, ``dram:0``, ``cpu:estimate`` or ``synthetic:0``.
    ``kind`` says whether energy comes from a hardware energy counter or from integrating power.
    ``parent`` names the channel this one is part of (RAPL ``cpu:core-0`` lies inside
    ``cpu:package-0``); only channels whose ``parent`` is None may be summed into a total.
    ``scope`` is ``machine`` when the figure is the whole device's or node's (every process on
    it), ``process`` when it is this process tree's share of it (``cpu_scope="process"``).
    """

    name: str
    kind: ChannelKind
    provenance: Provenance
    source: str
    parent: Optional[str] = None
    scope: str = "machine"

    @property
    def is_top_level(self) -> bool:
        return self.parent is None
