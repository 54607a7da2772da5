"""What a sparsity pattern is: `Pattern`, the base class of the built-in patterns (patterns.py) and
of any defined elsewhere, with the capabilities that the planner and the methods read and the
entry points they call. `PATTERNS` (registry.py) holds the pattern classes by spec name.
"""

from __future__ import annotations

from dataclasses import fields

import torch

from ..errors import ConfigError
from ..onnx_import.weights import WeightInfo
from .selection import check_sparsity, keep_count


class Pattern:
    """One sparsity pattern; subclasses are frozen dataclasses whose fields are its options.

    Capabilities (class attributes, or properties when they depend on the options):

    fixed_sparsity: None (default) when each pruned tensor gets the requested sparsity; else the
        sparsity the pattern itself fixes (N:M: 1 − N/M). The plan gives every pruned layer
        this target and an --override may only be 0 (dense) or this value.
    elementwise_magnitude: False (default); True when the mask keeps single entries, the
        largest |w| of the tensor, under no other constraint. Any magnitude threshold is then
        a mask of this pattern, so thresholds found elsewhere (OLMP's search, the gradual
        schedule's ramp) apply. Unstructured only, among the built-ins.
    global_scope: False (default); True when one magnitude threshold across layers is a mask of
        this pattern: --scope global then ranks the pooled layers' entries together
        (`global_masks`). Needs elementwise_magnitude.
    structured: None (default) when entries are pruned one by one (unstructured, N:M within its
        blocks); else the unit removed whole, which dense kernels can drop: "filter",
        "channel" or "column".
    sparse_kernels: False (default); True when the layout is one that sparse tensor cores run
        (N:M): `--plan auto` then keeps only the layers TensorRT is expected to run sparse.
    coupled: False (default); True when the unit is a channel group across layers (the graph's
        channel analysis, compressor/structure): the plan stage then makes a channel plan, masks
        come from it (`channel_groups.coupled_masks`) and the exporter removes the channels.
    """

    name: str = ""  # the spec name: set by PATTERNS.register
    positional: tuple[str, ...] = ()  # options that `parse_pattern` accepts without "key="
    spell_positional = False  # write positional options even at their defaults ("nm:2:4")

    fixed_sparsity: float | None = None
    elementwise_magnitude = False
    global_scope = False
    structured: str | None = None
    sparse_kernels = False
    coupled = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.global_scope and not cls.elementwise_magnitude:
            # global_masks keeps single entries by |w| across layers, which only such a pattern allows
            raise TypeError(f"{cls.__name__}: global_scope needs elementwise_magnitude")

    # ---- what subclasses define -----------------------------------------------------------
    def eligible(self, info: WeightInfo) -> str | None:
        """None if this pattern applies to the weight, else why it stays dense (one phrase)."""
        return None

    def _mask(self, weight: torch.Tensor, info: WeightInfo, sparsity: float) -> torch.Tensor:
        raise NotImplementedError

    def density(self, sparsity: float, info: WeightInfo | None = None) -> float:
        """The fraction of entries kept: nominal 1 − p, or the exact realised value given `info`."""
        p = check_sparsity(sparsity, allow_one=True)
        if info is None:
            return 1.0 - p
        n = info.numel
        return keep_count(n, p) / n if n else 1.0

    def plan_notes(self, pruned: list[WeightInfo], sparsity: float) -> list[str]:
        """Sentences for the plan's report on what this pattern does to the `pruned` layers, given
        the requested `sparsity`."""
        return []

    @classmethod
    def usage(cls) -> str:
        """How the spec is written, for help and error messages: "filter[:ALIGN]"."""
        if not cls.positional:
            return cls.name
        return f"{cls.name}[:{':'.join(option.upper() for option in cls.positional)}]"

    # ---- shared entry points ----------------------------------------------------------------
    def mask(self, weight: torch.Tensor, info: WeightInfo, sparsity: float) -> torch.Tensor:
        """Bool mask (True = kept) of the projection of `weight` onto this pattern at `sparsity`."""
        if tuple(weight.shape) != tuple(info.shape):
            raise ValueError(f"weight {info.name!r} has shape {tuple(weight.shape)} but its WeightInfo says {tuple(info.shape)}")
        reason = self.eligible(info)
        if reason is not None:
            raise ConfigError(f"pattern {self} does not apply to {info.name!r}: {reason}")
        p = check_sparsity(sparsity, allow_one=True)
        with torch.no_grad():
            return self._mask(weight.detach(), info, p)

    def project(self, weight: torch.Tensor, info: WeightInfo, sparsity: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(Π_S(weight), mask): the nearest tensor in the pattern's set, and what it keeps."""
        mask = self.mask(weight, info, sparsity)
        with torch.no_grad():
            projected = torch.where(mask, weight.detach(), torch.zeros((), dtype=weight.dtype, device=weight.device))
        return projected, mask

    # ---- naming -----------------------------------------------------------------------------
    def __str__(self) -> str:
        """The canonical spec string; `parse_pattern(str(p)) == p`."""
        parts = [self.name]
        spell = self.spell_positional or any(getattr(self, f.name) != f.default for f in fields(self) if f.name in self.positional)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.positional:
                if spell:
                    parts.append(str(value))
            elif value != f.default:
                parts.append(f"{f.name}={str(value).lower() if isinstance(value, bool) else value}")
        return ":".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": str(self), **{f.name: getattr(self, f.name) for f in fields(self)}}
