"""``Eco2AILightningCallback`` for the ``lightning`` package (``lightning.pytorch.Trainer``).

Falls back to ``pytorch_lightning`` when only that package is installed. With both installed, a
``pytorch_lightning.Trainer`` needs ``hf_eco2ai.integrations.pytorch_lightning`` instead: each
Trainer accepts only callbacks of its own package.
"""

from __future__ import annotations

try:
    from lightning.pytorch import Callback
except ImportError:
    try:  # only the standalone pytorch_lightning package is installed
        from pytorch_lightning import Callback  # type: ignore[assignment]
    except ImportError as missing:
        raise ImportError(
            "Eco2AILightningCallback needs the lightning (or pytorch_lightning) package, which cannot "
            f"be imported ({missing}): pip install 'hf-eco2ai[lightning]'"
        ) from missing

from hf_eco2ai.integrations.lightning_hooks import Eco2AILightningTracking

__all__ = ["Eco2AILightningCallback"]


class Eco2AILightningCallback(Eco2AILightningTracking, Callback):
    __doc__ = Eco2AILightningTracking.__doc__
