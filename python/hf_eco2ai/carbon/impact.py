"""Energy to carbon (and cost): the arithmetic behind every CO2 figure.

``energy_kwh = IT energy × pue``; ``co2_kg = energy_kwh × g_per_kwh / 1000``;
``cost = energy_kwh × electricity_price_per_kwh`` when a price is set. Pure functions, thread-safe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple, Union

from hf_eco2ai import units
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.errors import ConfigurationError

Intensity = Union[float, int, IntensityResult]


@dataclass(frozen=True)
class CarbonImpact:
    """One carbon figure and everything it was computed from.

    ``it_energy_kwh`` is the energy the hardware drew; ``energy_kwh`` has the PUE applied and is the
    figure carbon and cost derive from. ``duration_hours``/``power_consumption_kw`` are None when
    the impact came from joules without a duration. ``intensity`` is None when a bare number was given.
    """

    duration_hours: Optional[float]
    power_consumption_kw: Optional[float]
    carbon_intensity_g_per_kwh: float
    pue: float
    it_energy_kwh: float
    energy_kwh: float
    co2_kg: float
    electricity_price_per_kwh: Optional[float] = None
    electricity_currency: Optional[str] = None
    cost: Optional[float] = None
    intensity: Optional[IntensityResult] = None

    @property
    def co2_g(self) -> float:
        return self.co2_kg * 1000.0

    def to_dict(self) -> Dict[str, Any]:
        """JSON types only; ``intensity`` becomes its field dict (or None)."""
        return asdict(self)


def _check(name: str, value: Any, allowed: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected {allowed}")
    number = float(value)
    if not math.isfinite(number) or number < minimum:
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected {allowed}")
    return number


def _intensity_of(carbon_intensity: Intensity) -> Tuple[float, Optional[IntensityResult]]:
    if isinstance(carbon_intensity, IntensityResult):
        value = _check("carbon_intensity.g_per_kwh", carbon_intensity.g_per_kwh, "a finite number of gCO2e/kWh >= 0")
        return value, carbon_intensity
    return _check("carbon_intensity", carbon_intensity, "a finite number of gCO2e/kWh >= 0 or an IntensityResult"), None


def _impact(
    it_energy_kwh: float,
    carbon_intensity: Intensity,
    pue: float,
    electricity_price_per_kwh: Optional[float],
    electricity_currency: Optional[str],
    duration_hours: Optional[float],
    power_consumption_kw: Optional[float],
) -> CarbonImpact:
    g_per_kwh, result = _intensity_of(carbon_intensity)
    pue = _check("pue", pue, "a finite power usage effectiveness >= 1.0", minimum=1.0)
    price = None
    if electricity_price_per_kwh is not None:
        price = _check("electricity_price_per_kwh", electricity_price_per_kwh, "a finite price per kWh >= 0")
    energy_kwh = it_energy_kwh * pue
    return CarbonImpact(
        duration_hours=duration_hours,
        power_consumption_kw=power_consumption_kw,
        carbon_intensity_g_per_kwh=g_per_kwh,
        pue=pue,
        it_energy_kwh=it_energy_kwh,
        energy_kwh=energy_kwh,
        co2_kg=units.co2_kg(energy_kwh, g_per_kwh),
        electricity_price_per_kwh=price,
        electricity_currency=electricity_currency if price is not None else None,
        cost=None if price is None else energy_kwh * price,
        intensity=result,
    )


def get_carbon_impact(
    duration_hours: float,
    power_consumption_kw: float,
    carbon_intensity: Intensity,
    *,
    pue: float = 1.0,
    electricity_price_per_kwh: Optional[float] = None,
    electricity_currency: Optional[str] = None,
) -> CarbonImpact:
    """Carbon of running at ``power_consumption_kw`` for ``duration_hours``.

    ``carbon_intensity`` is gCO2e/kWh, as a number or an ``IntensityResult`` (whose provenance is
    then kept). Example: 2.5 h at 0.3 kW and 400 g/kWh is 0.75 kWh and 0.3 kg CO2e.

    Raises:
        ConfigurationError: a negative, non-finite or non-numeric input, or ``pue < 1``.
    """
    hours = _check("duration_hours", duration_hours, "a finite number of hours >= 0")
    kilowatts = _check("power_consumption_kw", power_consumption_kw, "a finite number of kW >= 0")
    return _impact(
        hours * kilowatts, carbon_intensity, pue, electricity_price_per_kwh, electricity_currency, hours, kilowatts
    )


def carbon_impact_from_joules(
    joules: float,
    intensity: Intensity,
    pue: float = 1.0,
    *,
    duration_s: Optional[float] = None,
    electricity_price_per_kwh: Optional[float] = None,
    electricity_currency: Optional[str] = None,
) -> CarbonImpact:
    """Carbon of measured energy: ``joules`` drawn by the hardware (no PUE applied yet).

    With ``duration_s`` the result also carries the duration and the mean power.

    Raises:
        ConfigurationError: a negative, non-finite or non-numeric input, or ``pue < 1``.
    """
    energy_joules = _check("joules", joules, "a finite number of joules >= 0")
    hours = kilowatts = None
    if duration_s is not None:
        seconds = _check("duration_s", duration_s, "a finite number of seconds >= 0")
        hours = seconds / 3600.0
        kilowatts = energy_joules / seconds / 1000.0 if seconds > 0 else None
    return _impact(
        units.kwh_from_joules(energy_joules),
        intensity,
        pue,
        electricity_price_per_kwh,
        electricity_currency,
        hours,
        kilowatts,
    )


def energy_cost(energy_kwh: float, electricity_price_per_kwh: Optional[float]) -> Optional[float]:
    """``energy_kwh × price``, or None when no price is set (never a made-up zero)."""
    if electricity_price_per_kwh is None:
        return None
    kwh = _check("energy_kwh", energy_kwh, "a finite number of kWh >= 0")
    return kwh * _check("electricity_price_per_kwh", electricity_price_per_kwh, "a finite price per kWh >= 0")
