"""Where a carbon-intensity figure came from. Every carbon figure carries one of these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

IntensitySource = Literal[
    "explicit", "live-api", "cloud-region-table", "subnational-table", "country-table", "world-average"
]


@dataclass(frozen=True)
class IntensityResult:
    """A grid carbon intensity and its provenance.

    ``source`` is the step of the resolution order that answered; ``dataset`` names the table or
    API (with its licence holder), ``year`` the data year, and ``is_estimated`` is the live API's
    own flag (None for tables).
    """

    g_per_kwh: float
    source: IntensitySource
    dataset: str
    zone: Optional[str] = None
    country: Optional[str] = None
    region: Optional[str] = None
    year: Optional[int] = None
    is_estimated: Optional[bool] = None
