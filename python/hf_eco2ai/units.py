"""The unit arithmetic behind every energy and carbon figure, in one place.

``kwh = joules / JOULES_PER_KWH``; ``co2_kg = kwh × g_per_kwh / 1000``. Pure functions of floats,
safe from any thread; they validate nothing (callers check their inputs where users give them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

# A float, or a numpy array of them (the per-step file converts a batch at a time).
Amount = TypeVar("Amount", float, "np.ndarray")

JOULES_PER_KWH = 3.6e6
GRAMS_PER_KG = 1000.0


def kwh_from_joules(joules: Amount, pue: float = 1.0) -> Amount:
    """Energy in kWh from joules, times the data centre's ``pue`` (1.0: the hardware's draw)."""
    return joules / JOULES_PER_KWH * pue


def joules_from_kwh(kwh: Amount) -> Amount:
    return kwh * JOULES_PER_KWH


def co2_kg(kwh: Amount, g_per_kwh: float) -> Amount:
    """kg CO2e of ``kwh`` at a grid intensity of ``g_per_kwh`` (gCO2e/kWh).

    Also turns a rate into a rate: kWh per hour gives kg CO2e per hour.
    """
    return kwh * g_per_kwh / GRAMS_PER_KG
