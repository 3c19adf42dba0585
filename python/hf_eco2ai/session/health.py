"""The session's warning and health log: each problem warned once, every fault counted.

Tracking never crashes training: a fault becomes one warning (logged and kept for the report)
plus a count by kind (``sensor``, ``store``, ``session``...), which the exporter publishes as
``hf_training_monitoring_errors_total``. With ``strict``, a sensor failure seen by any drain is
raised once, by the next drain on the caller's thread.

Threading: every method takes the lock given at construction (the session's), so the writer's
and exporter's threads may report faults while the training thread drains.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from hf_eco2ai.errors import CarbonTrackingError

logger = logging.getLogger(__name__)


class HealthLog:
    """Warnings (once per code and channel) and fault counts of one run."""

    def __init__(self, lock: "threading.RLock") -> None:
        self._lock = lock
        self._warnings: List[Dict[str, Any]] = []
        self._warned: Set[Tuple[str, Optional[str]]] = set()
        self.errors_by_type: Dict[str, int] = {}
        self._sensor_errors_seen: Dict[str, int] = {}
        self._strict_failure: Optional[str] = None

    def replace_lock(self, lock: "threading.RLock") -> None:
        """Use ``lock`` from now on (a forked child gives its inherited session a fresh one)."""
        self._lock = lock

    @property
    def warnings(self) -> List[Dict[str, Any]]:
        """Copies of the warnings so far, in the order they were first raised."""
        with self._lock:
            return [dict(entry) for entry in self._warnings]

    @property
    def errors_total(self) -> int:
        return int(sum(self.errors_by_type.values()))

    def warn_once(
        self, code: str, message: str, channel: Optional[str] = None, t_s: Optional[float] = None, log: bool = True
    ) -> None:
        """Keep (and log, unless ``log`` is False) a warning the first time ``code`` is raised
        for ``channel``; later ones are dropped."""
        with self._lock:
            if (code, channel) in self._warned:
                return
            self._warned.add((code, channel))
            entry: Dict[str, Any] = {"code": code, "message": message}
            if channel is not None:
                entry["channel"] = channel
            if t_s is not None:
                entry["t_s"] = t_s
            self._warnings.append(entry)
        if log:
            logger.warning("hf-eco2ai: %s", message)

    def count_error(self, error_type: str, error: BaseException, message: Optional[str] = None) -> None:
        """Count one fault of kind ``error_type`` and warn about the first (with ``message``, or
        one built from ``error``)."""
        with self._lock:
            self.errors_by_type[error_type] = self.errors_by_type.get(error_type, 0) + 1
        self.warn_once(
            f"{error_type}-failed",
            message or (f"the {error_type} update failed ({type(error).__name__}: {error}); tracking goes on"),
        )

    def check_meter(self, totals: Mapping[str, Any], t_s: float, strict: bool) -> None:
        """Count sensor failures and dropped records the meter reports in ``totals``."""
        failed_now = []
        with self._lock:
            for channel, count in totals["errors_by_channel"].items():
                seen = self._sensor_errors_seen.get(channel, 0)
                if count > seen:
                    self.errors_by_type["sensor"] = self.errors_by_type.get("sensor", 0) + count - seen
                    self._sensor_errors_seen[channel] = count
                    failed_now.append(channel)
            if failed_now and strict:
                self._strict_failure = f"strict=True and sensor channel(s) {', '.join(failed_now)} failed mid-run"
        for channel in failed_now:
            self.warn_once(
                "sensor-failed",
                f"sensor channel {channel} failed during the run; its readings since are missing, the "
                "steps concerned are flagged sensor-error and the report is marked incomplete; "
                "training goes on",
                channel=channel,
                t_s=t_s,
            )
        dropped = int(totals.get("records_dropped", 0)) + int(totals.get("boundaries_dropped", 0))
        if dropped:
            self.warn_once(
                "ring-overflow",
                f"{dropped} step boundaries or records were dropped because "
                "the meter's queues filled up between drains; lower measurement_interval_s",
            )

    def raise_strict_failure(self) -> None:
        """With ``strict``, a mid-run sensor failure (seen by any drain, the background one
        included) is raised by the next drain on the caller's thread: never by mark_step, never
        by stop(), and once.

        Raises:
            CarbonTrackingError: a sensor failed since the last call.
        """
        with self._lock:
            failure, self._strict_failure = self._strict_failure, None
        if failure is not None:
            raise CarbonTrackingError(failure)
