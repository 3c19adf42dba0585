"""Tracking backends: one set of classes through which every face logs to other trackers.

The Trainer and Lightning callbacks (``wandb_integration``/``mlflow_integration``), ``track``, the
CarbonTracker API and the Tracelet API (``hf_eco2ai.tracking``) all log through these classes and
the ``Orchestrator`` that feeds them. Nothing here knows a training framework; each library
(mlflow, wandb, tensorboard) is imported only when its backend is built.
"""

from hf_eco2ai.integrations.backends.base import TRACKING_EXTRA, Backend, BackendRun, Metric, StoredArtifact
from hf_eco2ai.integrations.backends.orchestrator import OVERFLOW_POLICIES, BackendStats, Orchestrator
from hf_eco2ai.integrations.backends.registry import (
    BACKEND_OPTIONS,
    BUILTIN_BACKENDS,
    ENTRY_POINT_GROUP,
    available_backends,
    create_backend,
)

__all__ = [
    "BACKEND_OPTIONS",
    "BUILTIN_BACKENDS",
    "Backend",
    "BackendRun",
    "BackendStats",
    "ENTRY_POINT_GROUP",
    "Metric",
    "OVERFLOW_POLICIES",
    "Orchestrator",
    "StoredArtifact",
    "TRACKING_EXTRA",
    "available_backends",
    "create_backend",
]
