"""``Eco2AILightningCallback`` for the standalone ``pytorch_lightning`` package.

The same callback as ``hf_eco2ai.integrations.lightning``, built on ``pytorch_lightning.Callback``
so that a ``pytorch_lightning.Trainer`` accepts it.
"""

from __future__ import annotations

from pytorch_lightning import Callback

from hf_eco2ai.integrations.lightning_hooks import Eco2AILightningTracking

__all__ = ["Eco2AILightningCallback"]


# The type checker sees the mixin's hooks typed against lightning.pytorch, which this package
# mirrors under another name; the signatures agree at run time.
class Eco2AILightningCallback(Eco2AILightningTracking, Callback):  # type: ignore[misc]
    __doc__ = Eco2AILightningTracking.__doc__
