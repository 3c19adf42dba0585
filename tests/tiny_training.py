"""Tiny randomly initialised models and synthetic data for real Trainer runs on a CPU in seconds."""

from __future__ import annotations

from typing import Any, Dict

import torch

SEQUENCE_LENGTH = 16
VOCABULARY = 64


class TokenDataset(torch.utils.data.Dataset):
    """Random token sequences with binary labels, the same for a given seed."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, VOCABULARY, (size, SEQUENCE_LENGTH), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


def tiny_bert() -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(
        BertConfig(
            vocab_size=VOCABULARY,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=SEQUENCE_LENGTH,
        )
    )


def training_arguments(output_dir: Any, **overrides: Any) -> Any:
    from transformers import TrainingArguments

    settings: Dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=1e-3,
        logging_steps=5,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)
