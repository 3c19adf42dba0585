"""The grid carbon intensity to use, and which step of the resolution order supplied it.

Order (``IntensityResult.source`` records the step that answered):

1. ``explicit``: ``carbon_intensity_g_per_kwh`` was set;
2. ``live-api``: a token is set, not offline, and a grid zone is known (``grid_zone``, or the
   zone of the table answer below);
3. ``cloud-region-table``: provider and region known (configured or detected);
4. ``subnational-table``: country and ``region`` (US state, Canadian province) known;
5. ``country-table``: country known;
6. ``world-average``: nothing known, with one warning naming the settings that fix it.

There is never a silent default country. Each problem is logged once per resolver and kept in
``warnings`` (with the report schema's warning codes) for the report.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import threading
from typing import Dict, List, Optional, Union

from hf_eco2ai.carbon import cloud as cloud_detection
from hf_eco2ai.carbon import tables
from hf_eco2ai.carbon.cloud import CloudLocation
from hf_eco2ai.carbon.live import LiveIntensityClient
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.redaction import redact
from hf_eco2ai.carbon.tables import CloudRegion, ZoneIntensity
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import APIError

logger = logging.getLogger(__name__)

_HOW_TO_SET_LOCATION = (
    "set country_iso_code (env HF_ECO2AI_COUNTRY_ISO_CODE, e.g. 'FR'), or cloud_provider and "
    "cloud_region, or carbon_intensity_g_per_kwh"
)


class IntensityResolver:
    """Resolves the intensity for one configuration.

    The table answer is computed once (tables do not change during a run); the live API is asked
    on every ``resolve()`` and answers from its own cache. Thread-safe.

    Args:
        config: the settings (location, token, offline, strict, live API).
        cloud: where this process runs; ``None`` runs ``cloud.locate`` with the config's settings
            when the tables are first consulted (at most 200 ms, skipped when offline).
        locate_cloud: ``False`` takes ``cloud`` as the answer even when it is None (the caller
            located the process already and found no cloud).
        live_client: the live API client; ``None`` builds one when a token is set and not offline.

    Raises (from ``resolve``):
        APIError: the live API failed and ``config.strict`` is set.
    """

    def __init__(
        self,
        config: CarbonConfig,
        *,
        cloud: Optional[CloudLocation] = None,
        live_client: Optional[LiveIntensityClient] = None,
        locate_cloud: bool = True,
    ) -> None:
        self.config = config
        self._cloud = None if cloud is None else self._redacted(cloud)
        self._cloud_known = cloud is not None or not locate_cloud
        if live_client is None and config.co2_signal_api_token is not None and not config.offline:
            live_client = LiveIntensityClient(
                config.co2_signal_api_token,
                api=config.intensity_api,
                base_url=config.intensity_api_url,
                cache_s=config.intensity_cache_s,
            )
        self.live_client = None if config.offline else live_client
        self._lock = threading.Lock()
        self._cloud_lock = threading.Lock()
        self._warned: Dict[str, str] = {}
        self._table_answer: Optional[IntensityResult] = None
        self.api_failures_total = 0

    @property
    def cloud(self) -> Optional[CloudLocation]:
        """Where this process runs, located once on first use: an explicit intensity never needs
        it, so a run that sets ``carbon_intensity_g_per_kwh`` probes nothing."""
        with self._cloud_lock:
            if not self._cloud_known:
                config = self.config
                located = cloud_detection.locate(
                    cloud_provider=config.cloud_provider,
                    cloud_region=config.cloud_region,
                    offline=config.offline,
                    metadata_url=config.cloud_metadata_url,
                )
                self._cloud = None if located is None else self._redacted(located)
                self._cloud_known = True
            return self._cloud

    def _redacted(self, cloud: CloudLocation) -> CloudLocation:
        if cloud.region is None:
            return cloud
        # The region may come from a metadata answer; it reaches warnings, reports and the store.
        return dataclasses.replace(cloud, region=redact(cloud.region, (self.config.co2_signal_api_token,)))

    @property
    def warnings(self) -> List[Dict[str, str]]:
        """Each warning once: ``{"code": ..., "message": ...}`` (report schema codes)."""
        with self._lock:
            return [{"code": code, "message": message} for code, message in self._warned.items()]

    @property
    def api_latency_s(self) -> Optional[float]:
        return None if self.live_client is None else self.live_client.last_latency_s

    def _warn_once(self, code: str, message: str) -> None:
        if code not in self._warned:
            self._warned[code] = message
            logger.warning("hf-eco2ai: %s", message)

    def resolve(self) -> IntensityResult:
        """The intensity to use now, with its provenance. Never raises unless ``strict``."""
        config = self.config
        if config.carbon_intensity_g_per_kwh is not None:
            return IntensityResult(
                g_per_kwh=float(config.carbon_intensity_g_per_kwh),
                source="explicit",
                dataset=f"carbon_intensity_g_per_kwh ({config.origin('carbon_intensity_g_per_kwh')})",
                country=config.country_iso_code,
                region=config.region,
            )
        with self._lock:
            table_answer = self._table_answer_locked()
            if self.live_client is None:
                return table_answer
            zone = config.grid_zone or (None if table_answer.source == "world-average" else table_answer.zone)
            if zone is None:
                self._warn_once(
                    "live-api-no-zone",
                    "the live carbon-intensity API is not asked because no grid zone is known; set grid_zone "
                    "(env HF_ECO2AI_GRID_ZONE), or " + _HOW_TO_SET_LOCATION,
                )
                return table_answer
            try:
                live = self.live_client.latest(zone)
            except APIError as exc:
                self.api_failures_total += 1
                if config.strict:
                    raise
                self._warn_once(
                    "live-api-fallback",
                    f"live carbon intensity unavailable ({exc}); using {table_answer.source} "
                    f"{table_answer.g_per_kwh:g} g/kWh from {table_answer.dataset} until it answers again",
                )
                return table_answer
            return dataclasses.replace(live, country=table_answer.country, region=table_answer.region)

    def table_answer(self) -> IntensityResult:
        """What the packaged tables say for this location (steps 3 to 6), ignoring explicit and live values."""
        with self._lock:
            return self._table_answer_locked()

    def _table_answer_locked(self) -> IntensityResult:
        if self._table_answer is None:
            self._table_answer = self._from_tables()
        return self._table_answer

    def _from_tables(self) -> IntensityResult:
        config = self.config
        location = self.cloud
        if location is not None and location.region is not None:
            cloud_entry = tables.cloud_region(location.provider, location.region)
            if cloud_entry is not None:
                return _result(
                    cloud_entry, "cloud-region-table", country=cloud_entry.country or None, region=location.region
                )
            known = list(tables.cloud_regions(location.provider))
            close = difflib.get_close_matches(location.region, known, n=1)
            self._warn_once(
                "unknown-cloud-region",
                f"cloud region {location.region!r} of {location.provider} ({location.detected_by}) is not in the "
                f"packaged table{'; did you mean ' + repr(close[0]) + '?' if close else ''}; using the next source",
            )
        country = config.country_iso_code
        if country is not None and config.region is not None:
            grid = tables.subnational(country, config.region)
            if grid is not None:
                return _result(grid, "subnational-table", country=grid.country or country, region=config.region)
            self._warn_once(
                "unknown-region",
                f"region {config.region!r} of country {country} is not in the packaged sub-national table; "
                "using the country's figure",
            )
        if country is not None:
            national = tables.country(country)
            if national is not None:
                return _result(national, "country-table", country=national.country or country, region=config.region)
            self._warn_once(
                "unknown-country",
                f"country_iso_code {country!r} is not in the packaged country table; using the world average",
            )
        result = _result(tables.world_average(), "world-average", country=None, region=None)
        self._warn_once(
            "world-average-intensity",
            f"no location known, so the world average of {result.g_per_kwh:g} g/kWh ({result.dataset}, "
            f"{result.year}) is used; {_HOW_TO_SET_LOCATION}",
        )
        return result


def _result(
    entry: Union[ZoneIntensity, CloudRegion], source: str, *, country: Optional[str], region: Optional[str]
) -> IntensityResult:
    return IntensityResult(
        g_per_kwh=float(entry.g_per_kwh),
        source=source,  # type: ignore[arg-type]
        dataset=str(entry.dataset),
        zone=entry.zone,
        country=country,
        region=region,
        year=entry.year,
    )
