"""The channel analysis in one call: index the graph, run every operator's rule, gather the groups."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from .channels import ChannelAnalysis, ChannelGraph
from .graph import index_graph
from .propagation import propagate


def analyze_channels(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> ChannelAnalysis:
    """The coupled channel groups of `model`; `feeds` (any valid inputs) give every tensor's shape."""
    graph = index_graph(model, feeds)
    channels = ChannelGraph(graph)
    propagate(channels)
    return ChannelAnalysis(channels.groups(), channels.rewrites, dict(channels.axes), graph)
