"""Energy to carbon and cost, and the everyday comparisons computed from the cited factor table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hf_eco2ai import get_carbon_impact
from hf_eco2ai.carbon.comparisons import (
    EQUIVALENCE_FACTORS,
    EQUIVALENCE_TABLE_VERSION,
    compute_comparisons,
    describe_comparisons,
    format_amount,
)
from hf_eco2ai.carbon.impact import carbon_impact_from_joules, energy_cost
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.units import JOULES_PER_KWH

FINITE = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


def test_seed_example_two_and_a_half_hours_at_300_watts_and_400_g() -> None:
    impact = get_carbon_impact(duration_hours=2.5, power_consumption_kw=0.3, carbon_intensity=400)
    assert impact.energy_kwh == pytest.approx(0.75)
    assert impact.co2_kg == pytest.approx(0.3)
    assert (impact.duration_hours, impact.power_consumption_kw, impact.carbon_intensity_g_per_kwh) == (2.5, 0.3, 400.0)
    assert impact.pue == 1.0 and impact.cost is None and impact.intensity is None


@given(
    hours=FINITE,
    kilowatts=FINITE,
    g_per_kwh=st.floats(min_value=0, max_value=2000),
    pue=st.floats(min_value=1, max_value=3),
)
def test_co2_is_energy_times_pue_times_intensity(hours: float, kilowatts: float, g_per_kwh: float, pue: float) -> None:
    impact = get_carbon_impact(hours, kilowatts, g_per_kwh, pue=pue)
    assert impact.it_energy_kwh == pytest.approx(hours * kilowatts)
    assert impact.energy_kwh == pytest.approx(hours * kilowatts * pue)
    assert impact.co2_kg == pytest.approx(hours * kilowatts * pue * g_per_kwh / 1000.0)


def test_intensity_result_keeps_its_provenance() -> None:
    intensity = IntensityResult(g_per_kwh=56.0, source="country-table", dataset="OWID", zone="FR", year=2023)
    impact = get_carbon_impact(1.0, 1.0, intensity)
    assert impact.intensity is intensity
    assert impact.co2_kg == pytest.approx(0.056)
    assert impact.to_dict()["intensity"]["source"] == "country-table"


def test_from_joules_applies_pue_and_reports_mean_power() -> None:
    intensity = IntensityResult(g_per_kwh=200.0, source="explicit", dataset="test")
    impact = carbon_impact_from_joules(JOULES_PER_KWH, intensity, pue=1.5, duration_s=3600.0)
    assert impact.it_energy_kwh == pytest.approx(1.0)
    assert impact.energy_kwh == pytest.approx(1.5)
    assert impact.co2_kg == pytest.approx(0.3)
    assert impact.duration_hours == pytest.approx(1.0)
    assert impact.power_consumption_kw == pytest.approx(1.0)


def test_cost_is_energy_times_price_only_when_a_price_is_set() -> None:
    with_price = get_carbon_impact(2.0, 0.5, 100, pue=1.2, electricity_price_per_kwh=0.25, electricity_currency="EUR")
    assert with_price.cost == pytest.approx(2.0 * 0.5 * 1.2 * 0.25)
    assert with_price.electricity_currency == "EUR"
    assert get_carbon_impact(2.0, 0.5, 100).cost is None
    assert energy_cost(3.0, None) is None
    assert energy_cost(3.0, 0.1) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "arguments, field",
    [
        ((-1, 0.3, 400), "duration_hours"),
        ((1, -0.3, 400), "power_consumption_kw"),
        ((1, 0.3, -5), "carbon_intensity"),
        ((math.inf, 0.3, 400), "duration_hours"),
        ((1, math.nan, 400), "power_consumption_kw"),
        (("2", 0.3, 400), "duration_hours"),
        ((True, 0.3, 400), "duration_hours"),
        ((1, 0.3, "400"), "carbon_intensity"),
    ],
)
def test_bad_inputs_name_the_field(arguments: tuple, field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{field} = "):
        get_carbon_impact(*arguments)


def test_pue_below_one_and_negative_price_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="pue = 0.8"):
        get_carbon_impact(1, 1, 100, pue=0.8)
    with pytest.raises(ConfigurationError, match="electricity_price_per_kwh = -1"):
        get_carbon_impact(1, 1, 100, electricity_price_per_kwh=-1)
    with pytest.raises(ConfigurationError, match="joules = -5"):
        carbon_impact_from_joules(-5, 100.0)


def test_every_factor_has_a_citation_and_a_stated_assumption() -> None:
    assert EQUIVALENCE_TABLE_VERSION
    keys = [factor.key for factor in EQUIVALENCE_FACTORS]
    assert keys == ["smartphone_charges", "car_distance", "tree_absorption", "led_bulb"]
    for factor in EQUIVALENCE_FACTORS:
        assert factor.citation and factor.assumption and factor.factor > 0
    assert "EPA" in EQUIVALENCE_FACTORS[0].citation and "EPA" in EQUIVALENCE_FACTORS[1].citation
    assert "Green Algorithms" in EQUIVALENCE_FACTORS[2].citation and "11 kg" in EQUIVALENCE_FACTORS[2].assumption


def test_factors_match_their_published_figures() -> None:
    by_key = {factor.key: factor for factor in EQUIVALENCE_FACTORS}
    assert by_key["smartphone_charges"].factor == pytest.approx(1.24e-5 * 1000)
    assert by_key["car_distance"].factor == pytest.approx(3.93e-4 * 1000 / 1.609344, rel=2e-3)
    assert by_key["tree_absorption"].factor * 365.25 * 24 * 60 == pytest.approx(11.0)
    assert by_key["led_bulb"].factor == pytest.approx(10 / 1000)


@given(co2_kg=FINITE, kwh=FINITE)
def test_comparisons_are_computed_from_the_footprint(co2_kg: float, kwh: float) -> None:
    values = {comparison.key: comparison.value for comparison in compute_comparisons(co2_kg, kwh)}
    assert values["smartphone_charges"] == pytest.approx(co2_kg / 0.0124)
    assert values["car_distance"] == pytest.approx(co2_kg / 0.244)
    assert values["tree_absorption"] == pytest.approx(co2_kg / 11.0 * 365.25 * 24 * 60)
    assert values["led_bulb"] == pytest.approx(kwh / 0.010)


def test_comparison_text_and_report_shape() -> None:
    texts = describe_comparisons(co2_kg=0.0285, energy_kwh=0.041)
    assert texts == {
        "smartphone_charges": "2.30 smartphone charges",
        "car_distance": "117 m of car driving",
        "tree_absorption": "1,363 minutes of a tree's CO2 absorption",
        "led_bulb": "4.10 hours of a 10 W LED bulb",
    }
    as_dict = compute_comparisons(1.0, 1.0)[0].to_dict()
    assert set(as_dict) == {"name", "value", "unit", "factor", "factor_unit", "citation"}
    assert describe_comparisons(2.44, 0)["car_distance"] == "10.0 km of car driving"


@pytest.mark.parametrize(
    "value, text", [(0, "0"), (0.001234, "0.00123"), (0.5, "0.50"), (12.34, "12.3"), (1234.5, "1,234")]
)
def test_amounts_are_formatted_for_people(value: float, text: str) -> None:
    assert format_amount(value) == text


def test_negative_footprint_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="co2_kg = -1"):
        compute_comparisons(-1.0, 0.0)
