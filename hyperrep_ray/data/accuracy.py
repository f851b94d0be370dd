"""Accuracy and loss of one model on a set of images (the simple, one-model path)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    """Return ``(accuracy in [0, 1], mean cross-entropy)`` of ``model`` on ``(x, y)``.

    Runs under ``torch.no_grad()`` in eval mode on the model's device, in batches to bound memory;
    the model's previous train/eval mode is restored afterwards.
    """
    n = int(y.shape[0])
    if n == 0 or x.shape[0] != n:
        raise ValueError(f"need matching, non-empty x and y; got {tuple(x.shape)} and {tuple(y.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                xb = x[start : start + batch_size].to(device)
                yb = y[start : start + batch_size].to(device)
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / n, loss_sum / n
