"""Exceptions raised by hf_eco2ai.

Tracking never crashes training: these are raised at construction or configuration time, or when
the caller opted into ``strict=True``. Mid-run sensor failures become one warning and a counter.
"""

from __future__ import annotations


class CarbonTrackingError(Exception):
    """Base of every hf_eco2ai error; catch it to carry on training without tracking."""


class ConfigurationError(CarbonTrackingError, ValueError):
    """A setting or argument is invalid. The message names the field, the value and what is allowed."""


class SensorUnavailableError(CarbonTrackingError, RuntimeError):
    """A sensor source that was asked for by name cannot run here. The message says how to fix it."""


class SamplerError(CarbonTrackingError, RuntimeError):
    """The sampler thread could not start, stopped by a fault, or the meter was used after
    ``fork()``. The message says what to do (usually: create a new ``EnergyMeter``)."""


class APIError(CarbonTrackingError):
    """The live carbon-intensity API failed while ``strict=True``. Never contains the API token."""


class HfEco2AIWarning(RuntimeWarning):
    """The category of every warning hf_eco2ai emits through ``warnings``; each message starts
    with ``hf-eco2ai:``. Filter it to silence them: ``warnings.simplefilter("ignore", HfEco2AIWarning)``."""
