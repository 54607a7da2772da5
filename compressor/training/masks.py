"""Masks: the single record of what is pruned (True = kept)."""

from __future__ import annotations

import torch


class MaskSet:
    """Boolean keep-masks by ONNX weight name, applied to a module's parameters."""

    def __init__(self, masks: dict[str, torch.Tensor] | None = None):
        self.masks: dict[str, torch.Tensor] = {k: v.bool() for k, v in (masks or {}).items()}

    def __bool__(self) -> bool:
        return bool(self.masks)

    def __contains__(self, name: str) -> bool:
        return name in self.masks

    def update(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks.update({k: v.bool() for k, v in masks.items()})

    def apply(self, module) -> None:
        """Zero every pruned weight in place (called after each optimizer step)."""
        from ..sparsity import apply_masks  # imported here: sparsity builds on onnx_import, not on training

        apply_masks({name: module.parameter(name) for name in self.masks}, self.masks)

    @torch.no_grad()
    def mask_gradients(self, module) -> None:
        """Zero the gradients of pruned weights (before each step), so no optimizer state builds up there."""
        for name, mask in self.masks.items():
            grad = module.parameter(name).grad
            if grad is not None:
                grad.mul_(mask)

    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())

    def total(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.masks)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "MaskSet":
        return cls(state)
