"""Carbon budget: used/remaining/percent, one warning at 80 %, the stop flag past 100 %."""

from __future__ import annotations

import logging
import threading

import pytest

from hf_eco2ai.carbon.budget import CarbonBudget
from hf_eco2ai.errors import ConfigurationError


def _warnings(caplog: pytest.LogCaptureFixture) -> list:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_status_reports_used_remaining_and_percent() -> None:
    status = CarbonBudget(5.0).record_total(1.25)
    assert (status.budget_kg, status.used_kg, status.remaining_kg) == (5.0, 1.25, 3.75)
    assert status.used_fraction == pytest.approx(0.25)
    assert status.used_percent == pytest.approx(25.0)
    assert status.remaining_percent == pytest.approx(75.0)
    assert status.exceeded is False
    assert status.to_dict() == {
        "budget_kg": 5.0,
        "used_kg": 1.25,
        "remaining_kg": 3.75,
        "used_fraction": 0.25,
        "exceeded": False,
    }


def test_one_warning_when_80_percent_is_first_reached(caplog: pytest.LogCaptureFixture) -> None:
    budget = CarbonBudget(10.0)
    budget.record_total(7.9)
    assert _warnings(caplog) == []
    for used in (8.0, 8.5, 9.9):
        budget.record_total(used)
    messages = _warnings(caplog)
    assert len(messages) == 1
    assert "80 % used" in messages[0] and "8 of 10 kg" in messages[0]


def test_crossing_100_percent_sets_the_stop_flag_only_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    stopping = CarbonBudget(1.0, stop_on_exceeded=True)
    watching = CarbonBudget(1.0)
    for budget in (stopping, watching):
        assert budget.record_total(1.0).exceeded is False
        assert budget.should_stop is False
        status = budget.record_total(1.01)
        assert status.exceeded and status.remaining_kg == pytest.approx(-0.01)
    assert stopping.should_stop is True
    assert watching.should_stop is False
    exceeded = [message for message in _warnings(caplog) if "exceeded" in message]
    assert len(exceeded) == 2
    assert "stopping training" in exceeded[0] and "training continues" in exceeded[1]


def test_a_jump_straight_past_100_percent_warns_for_both_thresholds_once(caplog: pytest.LogCaptureFixture) -> None:
    budget = CarbonBudget(2.0, stop_on_exceeded=True)
    budget.record_total(3.0)
    budget.record_total(4.0)
    assert len(_warnings(caplog)) == 2
    assert budget.should_stop


def test_increments_from_many_threads_add_up() -> None:
    budget = CarbonBudget(1000.0)

    def spend() -> None:
        for _ in range(1000):
            budget.add(0.001)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.status().used_kg == pytest.approx(4.0)


@pytest.mark.parametrize("budget_kg", [0, -1.0, float("nan"), float("inf"), "5", True])
def test_budget_must_be_a_positive_number(budget_kg: object) -> None:
    with pytest.raises(ConfigurationError, match="carbon_budget_kg = "):
        CarbonBudget(budget_kg)  # type: ignore[arg-type]


def test_negative_usage_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="used_kg = -0.5"):
        CarbonBudget(1.0).record_total(-0.5)
