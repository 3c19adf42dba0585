"""A carbon budget: how much is used, how much is left, and whether training should stop.

One warning is logged when usage first reaches ``warn_fraction`` (80 %) and one when it first
passes 100 %. ``should_stop`` becomes True past 100 % only if ``stop_on_exceeded`` is set; the
adapters read it at step or epoch ends and ask the training loop to stop.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Dict

from hf_eco2ai.errors import ConfigurationError

logger = logging.getLogger(__name__)

WARN_FRACTION = 0.8


@dataclass(frozen=True)
class BudgetStatus:
    """One reading of the budget. ``remaining_kg`` goes negative once it is exceeded."""

    budget_kg: float
    used_kg: float
    remaining_kg: float
    used_fraction: float
    exceeded: bool

    @property
    def used_percent(self) -> float:
        return self.used_fraction * 100.0

    @property
    def remaining_percent(self) -> float:
        return 100.0 - self.used_percent

    def to_dict(self) -> Dict[str, Any]:
        """The report schema's ``budget`` object."""
        return {
            "budget_kg": self.budget_kg,
            "used_kg": self.used_kg,
            "remaining_kg": self.remaining_kg,
            "used_fraction": self.used_fraction,
            "exceeded": self.exceeded,
        }


class CarbonBudget:
    """Tracks usage against ``budget_kg`` (kg CO2e).

    Thread-safe: ``record_total`` may run on a background thread while adapters read
    ``should_stop`` (a plain bool, so reading it on the step path costs nothing).

    Raises:
        ConfigurationError: ``budget_kg`` not > 0 or ``warn_fraction`` outside (0, 1].
    """

    def __init__(
        self, budget_kg: float, *, stop_on_exceeded: bool = False, warn_fraction: float = WARN_FRACTION
    ) -> None:
        if (
            isinstance(budget_kg, bool)
            or not isinstance(budget_kg, (int, float))
            or not math.isfinite(budget_kg)
            or budget_kg <= 0
        ):
            raise ConfigurationError(f"carbon_budget_kg = {budget_kg!r} is invalid: expected a number of kg CO2e > 0")
        if not 0 < warn_fraction <= 1:
            raise ConfigurationError(f"warn_fraction = {warn_fraction!r} is invalid: expected a fraction in (0, 1]")
        self.budget_kg = float(budget_kg)
        self.stop_on_exceeded = bool(stop_on_exceeded)
        self.warn_fraction = float(warn_fraction)
        self._lock = threading.Lock()
        self._used_kg = 0.0
        self._warned_near = False
        self._warned_exceeded = False
        self.should_stop = False

    def record_total(self, used_kg: float) -> BudgetStatus:
        """Sets the usage to ``used_kg`` (the run's running total, kg CO2e) and returns the status.

        Raises:
            ConfigurationError: ``used_kg`` negative or not finite.
        """
        used_kg = _non_negative("used_kg", used_kg)
        with self._lock:
            return self._set_used(used_kg)

    def add(self, kg: float) -> BudgetStatus:
        """Adds ``kg`` to the usage, for callers that count increments rather than totals.

        Raises:
            ConfigurationError: ``kg`` negative or not finite.
        """
        kg = _non_negative("kg", kg)
        with self._lock:
            return self._set_used(self._used_kg + kg)

    def _set_used(self, used_kg: float) -> BudgetStatus:
        self._used_kg = used_kg
        status = self._status()
        if status.used_fraction >= self.warn_fraction and not self._warned_near:
            self._warned_near = True
            logger.warning(
                "hf-eco2ai: carbon budget %.0f %% used: %.4g of %.4g kg CO2e",
                status.used_percent,
                status.used_kg,
                status.budget_kg,
            )
        if status.exceeded and not self._warned_exceeded:
            self._warned_exceeded = True
            action = (
                "stopping training" if self.stop_on_exceeded else "training continues (stop_on_budget_exceeded is off)"
            )
            logger.warning(
                "hf-eco2ai: carbon budget exceeded: %.4g of %.4g kg CO2e; %s", status.used_kg, status.budget_kg, action
            )
        if status.exceeded and self.stop_on_exceeded:
            self.should_stop = True
        return status

    def status(self) -> BudgetStatus:
        with self._lock:
            return self._status()

    def _status(self) -> BudgetStatus:
        used = self._used_kg
        return BudgetStatus(
            budget_kg=self.budget_kg,
            used_kg=used,
            remaining_kg=self.budget_kg - used,
            used_fraction=used / self.budget_kg,
            exceeded=used > self.budget_kg,
        )


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected a finite number of kg CO2e >= 0")
    return float(value)
