"""``measure_energy(fn, repeat=N)``: the energy of a function call, repeated, as a median and a
spread, for any benchmark harness.

Each call runs inside a named window of one ``EnergyMeter``: its energy is the meter's cumulative
energy at the call's end minus that at its start, over the top-level channels (no PUE). The
meter samples at ``rate_hz``; a call much shorter than the sampling period gets its share of the
power measured around it, so repeat short calls in a loop inside ``fn`` when their energy matters.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.errors import ConfigurationError

_WINDOW_NAME = "measure_energy"


@dataclass(frozen=True)
class EnergyMeasurement:
    """The energy of ``samples`` calls (J, top-level channels, no PUE).

    ``spread_joules`` is the interquartile range (75th minus 25th percentile; 0 for fewer than two
    samples). ``provenance`` is ``measured``, ``estimated`` or ``mixed`` over the channels summed.
    """

    median_joules: float
    spread_joules: float
    samples: int
    joules: Tuple[float, ...]
    durations_s: Tuple[float, ...]
    channels: Tuple[str, ...]
    provenance: str

    @property
    def median_duration_s(self) -> float:
        return float(statistics.median(self.durations_s))

    @property
    def median_watts(self) -> float:
        """Median of each call's mean power (W)."""
        return float(statistics.median(j / d if d > 0 else 0.0 for j, d in zip(self.joules, self.durations_s)))

    def to_dict(self) -> Dict[str, Any]:
        return {
            "median_joules": self.median_joules,
            "spread_joules": self.spread_joules,
            "samples": self.samples,
            "joules": list(self.joules),
            "durations_s": list(self.durations_s),
            "channels": list(self.channels),
            "provenance": self.provenance,
        }


def provenance_of(provenances: Sequence[str]) -> str:
    """``measured``/``estimated`` when all channels agree, else ``mixed`` (``none`` for none)."""
    kinds = set(provenances)
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")


def interquartile_range(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return float(quartiles[2] - quartiles[0])


def measure_energy(
    fn: Callable[..., Any],
    repeat: int = 5,
    *,
    args: Sequence[Any] = (),
    kwargs: Optional[Mapping[str, Any]] = None,
    warmup: int = 1,
    meter: Any = None,
    sources: Any = "auto",
    rate_hz: float = 200.0,
) -> EnergyMeasurement:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times unmeasured, then ``repeat`` times measured.

    Args:
        meter: an ``EnergyMeter`` (not started) to use; None builds one from ``sources`` and
            ``rate_hz``. The meter is started and stopped here.

    Raises:
        ConfigurationError: ``repeat`` < 1, ``warmup`` < 0, or ``fn`` is not callable.
        SensorUnavailableError: a source named explicitly cannot run here.
    """
    if not callable(fn):
        raise ConfigurationError(f"fn = {fn!r} is invalid: expected a callable")
    for name, value, least in (("repeat", repeat, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"{name} = {value!r} is invalid: expected an integer >= {least}")
    call_kwargs = dict(kwargs or {})
    for _ in range(warmup):
        fn(*args, **call_kwargs)
    if meter is None:
        from hf_eco2ai.meter.energy_meter import EnergyMeter

        meter = EnergyMeter(sources=sources, rate_hz=rate_hz)
    window = meter.window(_WINDOW_NAME)
    meter.start()
    try:
        for _ in range(repeat):
            with window:
                fn(*args, **call_kwargs)
    finally:
        meter.stop()
    records = meter.drain_windows()
    channels = meter.channels()
    top = [position for position, channel in enumerate(channels) if channel.parent is None]
    joules = tuple(float(row[top].sum()) for row in records.joules)
    return EnergyMeasurement(
        median_joules=float(statistics.median(joules)),
        spread_joules=interquartile_range(joules),
        samples=len(joules),
        joules=joules,
        durations_s=tuple(float(d) for d in records.duration_s),
        channels=tuple(channels[p].name for p in top),
        provenance=provenance_of([channels[p].provenance for p in top]),
    )
