"""Everyday equivalents of a footprint, from one versioned, cited table of factors.

Every number is computed from the footprint and the factor; nothing here is sample text.
Change a factor only together with ``EQUIVALENCE_TABLE_VERSION`` so that old reports stay explainable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from hf_eco2ai.errors import ConfigurationError

EQUIVALENCE_TABLE_VERSION = "2026.1"

_MINUTES_PER_YEAR = 365.25 * 24 * 60
_TREE_KG_CO2_PER_YEAR = 11.0


@dataclass(frozen=True)
class EquivalenceFactor:
    """``factor`` is how much of ``basis`` (``co2_kg`` or ``energy_kwh``) one ``unit`` stands for."""

    key: str
    name: str
    unit: str
    basis: str
    factor: float
    factor_unit: str
    citation: str
    assumption: str
    phrase: str


EQUIVALENCE_FACTORS: Tuple[EquivalenceFactor, ...] = (
    EquivalenceFactor(
        key="smartphone_charges",
        name="smartphone charges",
        unit="charges",
        basis="co2_kg",
        factor=0.0124,
        factor_unit="kg CO2e per charge",
        citation="US EPA, Greenhouse Gas Equivalencies Calculator: Calculations and References "
        "(smartphones charged, 1.24 x 10^-5 t CO2 per charge)",
        assumption="a full charge of an average smartphone on the average US grid",
        phrase="smartphone charges",
    ),
    EquivalenceFactor(
        key="car_distance",
        name="car distance",
        unit="km",
        basis="co2_kg",
        factor=0.244,
        factor_unit="kg CO2e per km",
        citation="US EPA, Greenhouse Gas Equivalencies Calculator: Calculations and References "
        "(average gasoline passenger vehicle, 3.93 x 10^-4 t CO2e per mile)",
        assumption="an average US gasoline passenger car, tailpipe emissions only",
        phrase="km of car driving",
    ),
    EquivalenceFactor(
        key="tree_absorption",
        name="tree absorption",
        unit="tree-minutes",
        basis="co2_kg",
        factor=_TREE_KG_CO2_PER_YEAR / _MINUTES_PER_YEAR,
        factor_unit="kg CO2e per tree-minute",
        citation="Lannelongue, Grealey & Inouye (2021), Green Algorithms: Quantifying the Carbon "
        "Footprint of Computation, Advanced Science 8(12), 2100707 (tree-months)",
        assumption="a mature tree absorbs about 11 kg CO2 per year, spread evenly over the year",
        phrase="minutes of a tree's CO2 absorption",
    ),
    EquivalenceFactor(
        key="led_bulb",
        name="LED bulb (10 W)",
        unit="hours",
        basis="energy_kwh",
        factor=0.010,
        factor_unit="kWh per hour",
        citation="derived: a 10 W bulb draws 0.010 kWh per hour",
        assumption="an energy equivalence, independent of the grid's carbon intensity",
        phrase="hours of a 10 W LED bulb",
    ),
)


@dataclass(frozen=True)
class Comparison:
    """One equivalent: ``value`` ``unit``s of ``name``, with the factor and citation it came from."""

    key: str
    name: str
    value: float
    unit: str
    factor: float
    factor_unit: str
    citation: str
    assumption: str
    phrase: str

    @property
    def text(self) -> str:
        """The equivalent for a person, e.g. ``2.30 smartphone charges`` or ``450 m of car driving``."""
        if self.unit == "km" and self.value < 1.0:
            # Short distances read better in metres than as a fraction of a kilometre.
            return f"{format_amount(self.value * 1000.0)} {self.phrase.replace('km', 'm', 1)}"
        return f"{format_amount(self.value)} {self.phrase}"

    def to_dict(self) -> Dict[str, Any]:
        """The report schema's comparison object (name, value, unit, factor, factor_unit, citation)."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "factor": self.factor,
            "factor_unit": self.factor_unit,
            "citation": self.citation,
        }


def format_amount(value: float) -> str:
    """Three significant figures without exponent notation for everyday magnitudes."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.3g}"


def compute_comparisons(co2_kg: float, energy_kwh: float) -> List[Comparison]:
    """Every equivalent in ``EQUIVALENCE_FACTORS`` order.

    Raises:
        ConfigurationError: a negative or non-finite figure.
    """
    basis = {"co2_kg": co2_kg, "energy_kwh": energy_kwh}
    for name, value in basis.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"{name} = {value!r} is invalid: expected a finite number >= 0")
    return [
        Comparison(
            key=factor.key,
            name=factor.name,
            value=float(basis[factor.basis]) / factor.factor,
            unit=factor.unit,
            factor=factor.factor,
            factor_unit=factor.factor_unit,
            citation=factor.citation,
            assumption=factor.assumption,
            phrase=factor.phrase,
        )
        for factor in EQUIVALENCE_FACTORS
    ]


def describe_comparisons(co2_kg: float, energy_kwh: float) -> Dict[str, str]:
    """``{key: text}`` for every equivalent, as ``CarbonMetrics.emissions_comparison()`` returns it."""
    return {comparison.key: comparison.text for comparison in compute_comparisons(co2_kg, energy_kwh)}
