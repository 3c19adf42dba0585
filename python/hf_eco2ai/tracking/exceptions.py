"""The Tracelet API's exceptions.

``TraceletException`` is the package's base exception (``hf_eco2ai.CarbonTrackingError``), so
``except TraceletException`` also catches ``ConfigurationError``, which is the very class
``hf_eco2ai.ConfigurationError`` (a ``ValueError`` too).
"""

from __future__ import annotations

from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError

TraceletException = CarbonTrackingError


class BackendError(CarbonTrackingError, RuntimeError):
    """A backend failed an operation whose result the caller waits for (an artifact upload or
    download). Metric logging never raises it: backend faults there are counted instead."""


class ArtifactChecksumError(BackendError):
    """A retrieved artifact's file does not match the sha256 recorded when it was logged."""


__all__ = ["ArtifactChecksumError", "BackendError", "ConfigurationError", "TraceletException"]
