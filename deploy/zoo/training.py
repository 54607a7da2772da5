"""Plain dense supervised training of a classifier, for producing the trained models that tests,
examples and benchmarks then compress.

Deliberately small: cross-entropy, Adam (or SGD with momentum), constant learning rate, seeded
shuffling. Same seed, same data, same starting weights -> same weights after training (on one
machine and thread count; float summation order may differ between CPU builds).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from compressor.errors import DataError

__all__ = ["OPTIMIZERS", "evaluate_accuracy", "train_classifier"]

OPTIMIZERS = ("adam", "sgd")


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if y.dim() != 1 or x.dim() < 1 or x.shape[0] != y.shape[0]:
        raise DataError(
            f"{what}: inputs {tuple(x.shape)} and labels {tuple(y.shape)} do not pair up "
            "(labels must be 1-D with one entry per input)"
        )
    if x.shape[0] == 0:
        raise DataError(f"{what}: no samples")
    if y.is_floating_point():
        raise DataError(f"{what}: labels must be integer class indices, got {y.dtype}")
    return x.float(), y.long()


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (logits ``[N, classes]``) on ``x``/``y``, in [0, 1]. Runs in
    eval mode; the model's train/eval mode is restored afterwards."""
    x, y = _check_pair(x, y, "evaluate_accuracy")
    device = _device(model)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size].to(device))
            correct += int((logits.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / x.shape[0]


def train_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float,
    seed: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    log: Callable[[str], None] | None = None,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "constant",
) -> dict:
    """Train ``model`` in place with cross-entropy for ``epochs`` passes over ``x_train``/``y_train``.

    Mini-batches of ``batch_size`` are drawn without replacement in an order seeded by ``seed``
    (the last batch may be smaller); any randomness inside the model (dropout) is seeded too, and
    the global RNG state is left as it was. ``optimizer`` is ``"adam"`` (default: the fastest to
    good accuracy on small CPU runs) or ``"sgd"`` (with ``momentum``). ``log``, if given, receives
    one line per epoch. ``schedule`` is ``"constant"`` or ``"cosine"`` (per step, from ``lr`` to 0,
    as the pipeline's default). The model is left in eval mode.

    Returns the history: ``train_loss`` (mean loss per epoch), ``train_accuracy`` (accuracy on the
    training batches as they were seen), ``val_accuracy`` (per epoch; empty without validation
    data) and ``seconds`` (total wall time).
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be constant or cosine, got {schedule!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    x_train, y_train = _check_pair(x_train, y_train, "training data")
    if x_val is not None:
        x_val, y_val = _check_pair(x_val, y_val, "validation data")

    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    steps = epochs * -(-x_train.shape[0] // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda step: 0.5 * (1.0 + math.cos(math.pi * step / steps))) if schedule == "cosine" else (lambda step: 1.0))
    device = _device(model)
    order_rng = torch.Generator().manual_seed(seed)
    history: dict = {"train_loss": [], "train_accuracy": [], "val_accuracy": [], "seconds": 0.0}
    n = x_train.shape[0]
    start_time = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=order_rng)
            loss_sum, correct = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x_train[idx].to(device), y_train[idx].to(device)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * idx.numel()
                correct += int((logits.detach().argmax(dim=1) == yb).sum())
            history["train_loss"].append(loss_sum / n)
            history["train_accuracy"].append(correct / n)
            line = f"epoch {epoch}/{epochs}: loss {loss_sum / n:.4f}, train acc {correct / n:.4f}"
            if x_val is not None:
                history["val_accuracy"].append(evaluate_accuracy(model, x_val, y_val))
                line += f", val acc {history['val_accuracy'][-1]:.4f}"
            if log is not None:
                log(line)
    model.eval()
    history["seconds"] = time.perf_counter() - start_time
    return history
