"""The export stage's second step for the coupled `channel` pattern: the masked file it wrote is made
physically slimmer (slim.py), in place, so model.onnx is the smaller graph every runtime runs faster.

Which channels go is read from the masked file itself, not from the plan: a channel of a prunable
group whose every slice in the prunable weights (producer rows and consumer columns alike) is zero.
That is exactly what the channel pattern's masks zero, and it leaves nothing to trust between
stages; the remover then checks that each one is dead and that the slim file computes what the
masked one does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx

from compressor.structure import ChannelAnalysis, analyze_channels

from .slim import SlimResult, remove_channels, write_slim


def masked_channels(analysis: ChannelAnalysis, weights: Iterable[str]) -> dict[int, list[int]]:
    """Per prunable group, the channels whose slices in `weights` are all zero (at least one slice)."""
    names = set(weights)
    constants = analysis.graph.constants
    masked: dict[int, list[int]] = {}
    for group in analysis.prunable():
        slices = [(name, axis, idx) for (name, axis), idx in group.positions.items() if name in names and name in constants]
        if not slices:
            continue
        zero = []
        for c in range(group.size):
            if all(not np.any(np.take(constants[name], list(idx[c]), axis=axis)) for name, axis, idx in slices):
                zero.append(c)
        if zero and len(zero) < group.size:  # a group with nothing left would cut the network: keep it
            masked[group.id] = zero
    return masked


def slim_in_place(path: Path, feeds: Mapping[str, np.ndarray], weights: Iterable[str]) -> SlimResult:
    """Remove the masked channels of the ONNX file at `path` and write the slim graph over it."""
    model = onnx.load(str(path))
    analysis = analyze_channels(model, feeds)
    result = remove_channels(model, analysis, masked_channels(analysis, weights), feeds)
    write_slim(result.model, path)
    return result
