"""How figures are spelled for people (Markdown and HTML). Machine formats keep full precision."""

from __future__ import annotations

import datetime as _dt
from typing import Optional, Tuple

from hf_eco2ai.units import JOULES_PER_KWH

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


def _in_readable_unit(value: Optional[float], ladder: Tuple[Tuple[float, float, str], ...]) -> str:
    """``value`` in the first unit of ``ladder`` (threshold, factor, unit; largest first) whose
    threshold its magnitude reaches, else the last; zero takes the base unit (factor 1)."""
    if value is None:
        return MISSING
    magnitude = abs(value)
    for threshold, factor, unit in ladder[:-1]:
        if magnitude >= threshold or (magnitude == 0 and factor == 1):
            return f"{significant(value * factor)} {unit}"
    _, factor, unit = ladder[-1]
    return f"{significant(value * factor)} {unit}"


_MASS_LADDER_KG = ((1000.0, 1e-3, "t"), (1.0, 1.0, "kg"), (1e-3, 1e3, "g"), (0.0, 1e6, "mg"))
_ENERGY_LADDER_KWH = ((1000.0, 1e-3, "MWh"), (1.0, 1.0, "kWh"), (1e-3, 1e3, "Wh"), (0.0, JOULES_PER_KWH, "J"))


def mass_kg(kilograms: Optional[float]) -> str:
    """A CO2e mass in the unit a person reads most easily (mg, g, kg or t)."""
    return _in_readable_unit(kilograms, _MASS_LADDER_KG)


def energy_kwh(kwh: Optional[float]) -> str:
    """An energy in the unit a person reads most easily (J, Wh, kWh or MWh)."""
    return _in_readable_unit(kwh, _ENERGY_LADDER_KWH)
