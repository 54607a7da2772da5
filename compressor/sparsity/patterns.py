"""Sparsity patterns as Euclidean projections Π_S (slr.md §4).

A pattern defines the feasible set S of one weight tensor. `project` returns the nearest point
of S and its mask (True = kept); the mask is the single record of what is pruned, shared by SLR's
Z-step, hard pruning and masked retraining. Every projection here keeps units whole (values
unchanged), so "nearest" reduces to keeping the units with the largest magnitude: entries by
|w|, groups by L2 norm. Counts are exact (n − round(p·n)) and ties go to the lower flat index.

Axes come from the consuming ONNX node (`WeightInfo`), never from the tensor's shape: the
reduction axis is what N:M blocks run along and what channel pruning removes.

Each pattern registers itself in `PATTERNS` under its spec name, and declares what the planner
and the methods may assume of it (the capabilities on `Pattern`, base.py); nothing outside this module
asks which class a pattern is, so a pattern defined elsewhere is planned, masked and exported
like these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..onnx_import.weights import WeightInfo
from .base import Pattern
from .registry import PATTERNS
from .selection import align_count, check_sparsity, keep_count, scores_for_ranking, top_k_mask, top_k_per_row


TRT_SPARSE_MIN_CHANNELS = 256  # below this TensorRT rarely picks sparse kernels (deploy.md §3)


# ---- helpers ------------------------------------------------------------------------------------
def layer_channels(info: WeightInfo) -> tuple[int, int]:
    """(input, output) channels or features of the consuming layer, across all groups."""
    if info.op_type == "Conv":
        return info.shape[1] * info.groups, info.shape[0]
    if info.op_type == "ConvTranspose":
        return info.shape[0], info.shape[1] * info.groups
    return info.reduction_size, info.shape[info.output_axis]


def _grouped_reason(info: WeightInfo) -> str | None:
    if info.op_type not in ("Conv", "ConvTranspose") or info.groups <= 1:
        return None
    c_in, _ = layer_channels(info)
    return "depthwise conv" if info.groups == c_in else "grouped conv"


def _group_view(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """[n_groups, rest]: one row per index along `axis` (the flat order of the rest is kept)."""
    return weight.movedim(axis, 0).reshape(weight.shape[axis], -1)


def _groups_to_mask(kept: torch.Tensor, weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Broadcast a per-index mask along `axis` to the full weight shape."""
    shape = [1] * weight.dim()
    shape[axis] = weight.shape[axis]
    return kept.reshape(shape).expand(weight.shape).contiguous()


def _l2(rows: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(scores_for_ranking(rows), dim=1)


# ---- the patterns (registered in the order the grammar hint lists them) ------------------------
@PATTERNS.register("unstructured")
@dataclass(frozen=True)
class Unstructured(Pattern):
    """Irregular: keep the n_keep largest |w| of the whole tensor."""

    elementwise_magnitude = True
    global_scope = True

    def _mask(self, weight, info, sparsity):
        flat = scores_for_ranking(weight.reshape(-1)).abs()
        k = keep_count(flat.numel(), sparsity)
        return top_k_mask(flat, k).reshape(weight.shape)


@PATTERNS.register("nm")
@dataclass(frozen=True)
class NM(Pattern):
    """N:M: in every block of M consecutive entries along the reduction axis keep the N largest |w|.

    This is TensorRT's 2:4 layout (deploy.md §3): for a Conv [K, C, kh, kw] the blocks run along
    C for each (k, kh, kw). The requested sparsity is ignored; the density is N/M.
    `allow_grouped` lets grouped/depthwise convs be pruned (TensorRT never runs them sparse);
    `min_channels` leaves layers whose input or output width is below it dense (TensorRT picks
    sparse kernels mostly for ≥ 256 channels); 0 turns that filter off.
    """

    sparse_kernels = True  # the 2:4 layout of sparse tensor cores (deploy.md §3)
    n: int = 2
    m: int = 4
    allow_grouped: bool = False
    min_channels: int = 0
    positional = ("n", "m")
    spell_positional = True

    def __post_init__(self):
        if not (isinstance(self.m, int) and isinstance(self.n, int) and self.m >= 2 and 1 <= self.n < self.m):
            raise ConfigError(f"N:M needs integers with 1 <= N < M and M >= 2, got {self.n}:{self.m}")
        if self.min_channels < 0:
            raise ConfigError(f"min_channels must be >= 0, got {self.min_channels}")

    @property
    def fixed_sparsity(self) -> float:
        """The realised sparsity of every pruned tensor, 1 − N/M."""
        return 1.0 - self.n / self.m

    @classmethod
    def usage(cls) -> str:
        return f"N:M (e.g. 2:4), {super().usage()}"

    def eligible(self, info):
        grouped = _grouped_reason(info)
        if grouped and not self.allow_grouped:
            return f"{grouped} (groups={info.groups}): TensorRT never runs it sparse"
        if info.reduction_size % self.m:
            return f"reduction size {info.reduction_size} is not a multiple of {self.m}"
        c_in, c_out = layer_channels(info)
        if self.min_channels and min(c_in, c_out) < self.min_channels:
            return f"narrow layer ({c_in} in, {c_out} out, below {self.min_channels}): TensorRT would run it dense"
        return None

    def density(self, sparsity, info=None):
        return self.n / self.m

    def plan_notes(self, pruned, sparsity):
        text = (f"Pattern {self} keeps {self.n} of every {self.m} weights along each pruned layer's "
                f"input-channel (reduction) axis: sparsity {self.fixed_sparsity:g} per layer")
        notes = [text + (f"; the requested sparsity {sparsity:g} does not apply." if sparsity not in (0.0, self.fixed_sparsity) else ".")]
        if not self.min_channels:
            narrow = [info for info in pruned if min(layer_channels(info)) < TRT_SPARSE_MIN_CHANNELS]
            if narrow:
                notes.append(
                    f"{len(narrow)} of {len(pruned)} pruned layers have fewer than {TRT_SPARSE_MIN_CHANNELS} input "
                    f"or output channels; TensorRT usually runs such layers dense (pattern "
                    f"{self}:min_channels={TRT_SPARSE_MIN_CHANNELS} leaves them unpruned)."
                )
        return notes

    def _mask(self, weight, info, sparsity):
        axis = info.reduction_axis
        moved = weight.movedim(axis, -1)  # [..., R]: blocks are consecutive along the last axis
        blocks = scores_for_ranking(moved.reshape(-1, self.m)).abs()
        kept = top_k_per_row(blocks, self.n)
        return kept.reshape(moved.shape).movedim(-1, axis).contiguous()


@dataclass(frozen=True)
class _GroupPattern(Pattern):
    """Keeps whole slices along one axis, ranked by L2 norm; `align` rounds the kept count."""

    align: int = 1
    positional = ("align",)

    def __post_init__(self):
        if not isinstance(self.align, int) or self.align < 1:
            raise ConfigError(f"align must be an integer >= 1, got {self.align!r}")

    def _axis(self, info: WeightInfo) -> int:
        raise NotImplementedError

    def groups_kept(self, n_groups: int, sparsity: float) -> int:
        return align_count(keep_count(n_groups, sparsity), n_groups, self.align)

    def density(self, sparsity, info=None):
        p = check_sparsity(sparsity, allow_one=True)
        if info is None:
            return 1.0 - p
        n = info.shape[self._axis(info)]
        return self.groups_kept(n, p) / n if n else 1.0

    def _mask(self, weight, info, sparsity):
        axis = self._axis(info)
        scores = _l2(_group_view(weight, axis))
        kept = top_k_mask(scores, self.groups_kept(scores.numel(), sparsity))
        return _groups_to_mask(kept, weight, axis)


@PATTERNS.register("filter")
@dataclass(frozen=True)
class Filter(_GroupPattern):
    """Output filters: the rows of the [out, rest] view along the output axis, by L2 norm."""

    structured = "filter"

    def _axis(self, info):
        return info.output_axis


@PATTERNS.register("input-channel")
@dataclass(frozen=True)
class Channel(_GroupPattern):
    """Input channels of each layer on its own: slices along the reduction axis, by L2 norm over
    everything else (zeros in place; the coupled `channel` pattern removes channels for real)."""

    structured = "channel"

    def _axis(self, info):
        return info.reduction_axis

    def eligible(self, info):
        grouped = _grouped_reason(info)
        if grouped:
            # index i on the reduction axis is a different input channel in every group
            return f"{grouped} (groups={info.groups}): its reduction axis holds per-group channels"
        return None


@PATTERNS.register("channel")
@dataclass(frozen=True)
class CoupledChannel(Pattern):
    """Whole channels, pruned in every layer that holds them and removed from the exported graph:
    the channel groups of the graph's analysis (sparsity/channel_groups.py, compressor/structure).
    `importance`: l2 (default) or l1 norm of everything holding a channel."""

    importance: str = "l2"
    structured = "channel"
    coupled = True

    def __post_init__(self):
        if self.importance not in ("l2", "l1"):
            raise ConfigError(f"channel importance must be l2 or l1, got {self.importance!r}")

    def eligible(self, info):
        if info.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            return f"{info.op_type} is not a layer with channels"
        return None

    def _mask(self, weight, info, sparsity):
        raise ConfigError("the channel pattern masks whole channel groups: use compute_masks with the plan's channel plan")


@PATTERNS.register("column")
@dataclass(frozen=True)
class Column(Pattern):
    """Columns of the [C_out, rest] view (rest = C_in·kh·kw for a Conv), by L2 norm."""

    structured = "column"

    def density(self, sparsity, info=None):
        p = check_sparsity(sparsity, allow_one=True)
        if info is None:
            return 1.0 - p
        cols = info.numel // info.shape[info.output_axis] if info.numel else 0
        return align_count(keep_count(cols, p), cols, 1) / cols if cols else 1.0

    def _mask(self, weight, info, sparsity):
        view = _group_view(weight, info.output_axis)  # [out, rest]
        scores = _l2(view.t())
        kept = top_k_mask(scores, align_count(keep_count(scores.numel(), sparsity), scores.numel(), 1))
        moved_shape = weight.movedim(info.output_axis, 0).shape
        return kept.expand_as(view).reshape(moved_shape).movedim(0, info.output_axis).contiguous()
