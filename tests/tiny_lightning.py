"""A tiny LightningModule on random data, for either the lightning or the pytorch_lightning package."""

from __future__ import annotations

import time
from typing import Any

import torch

FEATURES = 16


def random_loader(size: int, batch_size: int = 8, seed: int = 0) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    dataset = torch.utils.data.TensorDataset(
        torch.randn(size, FEATURES, generator=generator), torch.randint(0, 2, (size,), generator=generator)
    )
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size)


def tiny_module(pl: Any, fail_at_step: int = -1, step_s: float = 0.0) -> Any:
    """A two-layer classifier built on ``pl.LightningModule`` (``pl`` is the package's namespace);
    each training step lasts at least ``step_s`` seconds."""

    class TinyClassifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.layers = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.global_step == fail_at_step:
                raise RuntimeError("training failed on purpose")
            time.sleep(step_s)
            features, labels = batch
            loss = torch.nn.functional.cross_entropy(self.layers(features), labels)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            features, labels = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.layers(features), labels))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return TinyClassifier()
