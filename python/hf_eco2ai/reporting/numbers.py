"""How figures are spelled for people (Markdown and HTML). Machine formats keep full precision."""

from __future__ import annotations

import datetime as _dt
from typing import Optional

from hf_eco2ai.units import joules_from_kwh

MISSING = "—"


def significant(value: Optional[float], digits: int = 4) -> str:
    """``value`` to ``digits`` significant figures, without exponent for everyday magnitudes."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e9 or magnitude < 1e-4:
        mantissa, _, exponent = f"{value:.{digits - 1}e}".partition("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exponent}"
    text = f"{value:.{digits}g}"
    if "e" in text:
        # %g switched to an exponent for a large integer-valued number; spell it out.
        return f"{value:,.0f}"
    integer_part, _, fraction = text.partition(".")
    if len(integer_part.lstrip("-")) > 3:
        grouped = f"{int(integer_part):,}"
        return grouped + (f".{fraction}" if fraction else "")
    return text


def percent(fraction: Optional[float]) -> str:
    if fraction is None:
        return MISSING
    return f"{fraction * 100:.1f} %"


def duration(seconds: Optional[float]) -> str:
    """``3725.2`` → ``1 h 02 min 05 s``; below a minute, seconds with 3 significant figures."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{significant(seconds, 3)} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


def unix_time(seconds: Optional[float]) -> str:
    """Unix seconds as an ISO-8601 UTC instant to the second."""
    if seconds is None:
        return MISSING
    instant = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC")


def mass_kg(kilograms: Optional[float]) -> str:
    """A CO2e mass in the unit a person reads most easily (mg, g, kg or t)."""
    if kilograms is None:
        return MISSING
    magnitude = abs(kilograms)
    if magnitude >= 1000:
        return f"{significant(kilograms / 1000)} t"
    if magnitude >= 1 or magnitude == 0:
        return f"{significant(kilograms)} kg"
    if magnitude >= 1e-3:
        return f"{significant(kilograms * 1e3)} g"
    return f"{significant(kilograms * 1e6)} mg"


def energy_kwh(kwh: Optional[float]) -> str:
    """An energy in the unit a person reads most easily (J, Wh, kWh or MWh)."""
    if kwh is None:
        return MISSING
    magnitude = abs(kwh)
    if magnitude >= 1000:
        return f"{significant(kwh / 1000)} MWh"
    if magnitude >= 1 or magnitude == 0:
        return f"{significant(kwh)} kWh"
    if magnitude >= 1e-3:
        return f"{significant(kwh * 1e3)} Wh"
    return f"{significant(joules_from_kwh(kwh))} J"
