"""The Tracelet API: experiment tracking that routes metrics, params and artifacts to several
backends (the run store, MLflow, W&B, TensorBoard, plugins), with the run's energy and carbon
figures in every one of them.

```python
import hf_eco2ai.tracking as tracelet

with tracelet.start_logging("baseline", project="research", backend=["mlflow", "tensorboard"]) as exp:
    for epoch in range(10):
        exp.set_iteration(epoch)
        exp.log_metric("loss", train_epoch())
```
"""

from hf_eco2ai.integrations.backends.base import Backend, Metric
from hf_eco2ai.integrations.backends.orchestrator import BackendStats, Orchestrator
from hf_eco2ai.tracking.api import get_active_experiment, start_logging, stop_logging
from hf_eco2ai.tracking.artifacts import (
    ArtifactFile,
    ArtifactObject,
    ArtifactReference,
    ArtifactResult,
    ArtifactType,
    TraceletArtifact,
)
from hf_eco2ai.tracking.exceptions import (
    ArtifactChecksumError,
    BackendError,
    ConfigurationError,
    TraceletException,
)
from hf_eco2ai.tracking.experiment import Experiment
from hf_eco2ai.tracking.plugins import (
    BackendPlugin,
    FrameworkPlugin,
    PluginInterface,
    PluginMetadata,
    PluginType,
    discover_plugins,
)
from hf_eco2ai.tracking.settings import AutomagicConfig, ExperimentConfig, TraceletSettings

__all__ = [
    "ArtifactChecksumError",
    "ArtifactFile",
    "ArtifactObject",
    "ArtifactReference",
    "ArtifactResult",
    "ArtifactType",
    "AutomagicConfig",
    "Backend",
    "BackendError",
    "BackendPlugin",
    "BackendStats",
    "ConfigurationError",
    "Experiment",
    "ExperimentConfig",
    "FrameworkPlugin",
    "Metric",
    "Orchestrator",
    "PluginInterface",
    "PluginMetadata",
    "PluginType",
    "TraceletArtifact",
    "TraceletException",
    "TraceletSettings",
    "discover_plugins",
    "get_active_experiment",
    "start_logging",
    "stop_logging",
]
