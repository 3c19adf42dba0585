"""The drain pipeline: the meter's resolved records into the run's aggregates and out to the writer.

Each drain pulls the resolved steps, windows and power readings from the meter, adds them to the
``RunRecords`` aggregates and hands the rows to the ``RunWriter``, whose thread streams them to
the store and the per-step file. Nothing here keeps a step: the cost of a drain is O(records since
the previous one), and its memory is bounded: records arrive in chunks of at most
``rows_per_pull``, each handled before the next is pulled. Not thread-safe: the session calls it
under its lock.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.meter.flags import FLAG_BOUNDARIES_DROPPED
from hf_eco2ai.reporting.step_file import StepCarbon
from hf_eco2ai.session.health import HealthLog
from hf_eco2ai.session.run_records import RunRecords
from hf_eco2ai.store.run_store import RunWriter


class DrainPipeline:
    """Meter -> aggregates -> writer, for one run.

    Args:
        meter: the running ``EnergyMeter``.
        records: the run's aggregates.
        writer: the run's writer, or None (no store and no per-step file).
        health: where faults are warned about and counted.
        run_id: the run the rows belong to.
        stream_steps: whether step rows go to the writer (``tracking_mode`` ``detailed``).
        pue: applied to the per-step kWh of the step file.
    """

    def __init__(
        self,
        meter: Any,
        records: RunRecords,
        writer: Optional[RunWriter],
        health: HealthLog,
        run_id: str,
        stream_steps: bool,
        pue: float,
    ) -> None:
        self.meter = meter
        self.records = records
        self.writer = writer
        self.health = health
        self.run_id = run_id
        self.stream_steps = stream_steps
        self.pue = pue

    def drain(self, intensity: IntensityResult, final: bool = False) -> Dict[str, Any]:
        """Pull every resolved record; returns the meter totals the drain ended with.

        Records are pulled and handled a bounded chunk at a time (``EnergyMeter.drain_in_chunks``),
        so that a drain of a full ring makes no large array."""
        meter, records, writer = self.meter, self.records, self.writer
        if records.origin_s is None:
            records.set_origin(meter.totals()["first_reading_s"])
        for steps, windows in meter.drain_in_chunks():
            if len(steps):
                self._take_steps(steps, intensity)
            if len(windows):
                self._take_windows(windows)
        power_bins = []
        for trace in meter.drain_trace_in_chunks():
            power_bins += records.add_power(trace.t_s, trace.watts)
        totals: Dict[str, Any] = meter.totals()
        records.set_origin(totals["first_reading_s"])
        if final:
            power_bins += records.flush_power()
        if writer is not None:
            for t_s, watts in power_bins:
                writer.add_power(self.run_id, t_s, watts.tolist())
        return totals

    def _take_windows(self, windows: Any) -> None:
        records, writer = self.records, self.writer
        origin_s = records.origin_s or 0.0
        t0_s, t1_s = windows.t0_s - origin_s, windows.t1_s - origin_s
        records.add_windows(windows.name, t0_s, t1_s, windows.joules, windows.flags)
        if writer is not None:
            writer.add_windows(
                self.run_id,
                windows.name,
                t0_s,
                t1_s,
                windows.joules[:, records.top_level].sum(axis=1),
                windows.flags,
                windows.joules,
            )

    def _take_steps(self, steps: Any, intensity: IntensityResult) -> None:
        batch = self.records.add_steps(steps)
        if np.any(batch.flags & FLAG_BOUNDARIES_DROPPED):
            self.health.warn_once(
                "ring-overflow",
                "step boundaries were dropped because the meter's queue "
                "filled up between drains; lower measurement_interval_s",
            )
        if self.writer is not None and self.stream_steps:
            carbon = StepCarbon(self.pue, intensity.g_per_kwh, intensity.source, intensity.year)
            self.writer.add_steps(self.run_id, batch, carbon=carbon)
