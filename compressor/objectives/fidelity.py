"""Fidelity of a model's outputs to a reference, per output and per output channel.

A whole-output cosine hides a collapsed head: in a YOLO output [1, 4+C, anchors] the box
width and height are 2 of 4+C channels, so they can shrink 30x while the cosine over all
channels stays above 0.9. Measuring each channel on its own, and reporting the worst one,
makes such a collapse visible. The sensitivity pass and the distillation metrics share this.

Channel axis: axis 1 for rank >= 4 (NCHW-like); for rank 3 the smaller of dims 1 and 2
([B, C, N] and [B, N, C] both occur, C being the short one); rank <= 2 is one group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# A channel whose reference is (nearly) zero everywhere has no meaningful relative error:
# its denominator is floored at this fraction of the output's average channel norm.
CHANNEL_NORM_FLOOR = 0.01


def channel_axis(shape) -> int | None:
    """The axis whose entries are measured separately, or None for a single group."""
    rank = len(shape)
    if rank <= 2:
        return None
    if rank == 3:
        return 1 if shape[1] <= shape[2] else 2
    return 1


def float_pairs(student, teacher) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, student, teacher) for each output whose reference is floating point."""
    student = student if isinstance(student, tuple) else (student,)
    teacher = teacher if isinstance(teacher, tuple) else (teacher,)
    return [(i, s, t) for i, (s, t) in enumerate(zip(student, teacher))
            if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _by_channel(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    x = x.detach().to(torch.float64)
    return x.reshape(1, -1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)


def channel_ranges(channels: list[int], limit: int = 4) -> str:
    """[2, 3, 7] -> 'channels 2-3, 7'; at most `limit` ranges, then '…'."""
    runs: list[list[int]] = []
    for c in sorted(channels):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs[:limit])
    more = ", …" if len(runs) > limit else ""
    return ("channels " if len(channels) > 1 else "channel ") + text + more


@dataclass
class OutputFidelity:
    """One output's error against the reference, whole and per channel."""

    name: str
    relative_l2: float
    cosine: float
    channel_axis: int | None
    channel_relative_l2: list[float] = field(default_factory=list)  # one entry per group
    channel_cosine: list[float] = field(default_factory=list)

    @property
    def worst_channel(self) -> int | None:
        if self.channel_axis is None:
            return None
        return max(range(len(self.channel_relative_l2)), key=self.channel_relative_l2.__getitem__)

    @property
    def worst_relative_l2(self) -> float:
        return max(self.channel_relative_l2) if self.channel_relative_l2 else 0.0

    def group_label(self, channels: list[int] | None = None) -> str:
        """'channels 2-3' for the given channels (default: the worst), '' for a one-group output."""
        if self.channel_axis is None:
            return ""
        return channel_ranges(channels if channels else [self.worst_channel])

    def channels_above(self, max_relative_l2: float) -> list[int]:
        return [c for c, e in enumerate(self.channel_relative_l2) if e > max_relative_l2]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "relative_l2": self.relative_l2, "cosine": self.cosine,
            "channel_axis": self.channel_axis, "worst_channel": self.worst_channel,
            "worst_relative_l2": self.worst_relative_l2,
        }


class OutputStats:
    """Running float64 sums of one output over batches, per channel group."""

    def __init__(self, name: str):
        self.name = name
        self.axis: int | None = None
        self.sums: torch.Tensor | None = None  # [4, groups]: diff², ref², student², dot

    def add(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        if tuple(student.shape) != tuple(teacher.shape):
            raise ValueError(f"output {self.name}: shape {tuple(student.shape)} differs from the reference {tuple(teacher.shape)}")
        axis = channel_axis(teacher.shape)
        s, t = _by_channel(student, axis), _by_channel(teacher, axis)
        sums = torch.stack([(s - t).square().sum(1), t.square().sum(1), s.square().sum(1), (s * t).sum(1)])
        if self.sums is None:
            self.axis, self.sums = axis, sums
        elif sums.shape != self.sums.shape or axis != self.axis:
            raise ValueError(f"output {self.name}: channel layout changed between batches")
        else:
            self.sums += sums

    def summary(self, floor: float = CHANNEL_NORM_FLOOR) -> OutputFidelity:
        if self.sums is None:
            return OutputFidelity(self.name, 0.0, 1.0, None, [0.0], [1.0])
        diff, ref, stu, dot = self.sums
        total_ref, total_stu = float(ref.sum()), float(stu.sum())
        rel = (float(diff.sum()) / max(total_ref, 1e-30)) ** 0.5
        cos = _cosine(float(dot.sum()), total_ref, total_stu)
        denom = torch.clamp(ref, min=max(floor**2 * total_ref / ref.numel(), 1e-30))
        channel_rel = (diff / denom).sqrt().tolist()
        channel_cos = [_cosine(float(d), float(r), float(q)) for d, r, q in zip(dot, ref, stu)]
        return OutputFidelity(self.name, rel, cos, self.axis, channel_rel, channel_cos)


def _cosine(dot: float, ref_sq: float, stu_sq: float) -> float:
    if ref_sq <= 1e-30 and stu_sq <= 1e-30:
        return 1.0  # both zero: identical
    return dot / max((ref_sq * stu_sq) ** 0.5, 1e-30)


def output_fidelity(student, teacher, names=None) -> list[OutputFidelity]:
    """Per-output fidelity of one batch of outputs (float outputs only)."""
    result = []
    for i, s, t in float_pairs(student, teacher):
        stats = OutputStats(names[i] if names else f"output{i}")
        stats.add(s, t)
        result.append(stats.summary())
    return result
