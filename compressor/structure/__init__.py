"""Channel structure of an ONNX graph: which channels are coupled, so that removing one removes it
everywhere it appears (the producer's filters, the normalisation and bias after it, every
consumer's input slice, both sides of a residual addition, a concatenation's slice).

- `graph`: an index of the graph (producers, consumers, constants) and every tensor's shape,
  read from one onnxruntime run.
- `channels`: the analysis: channel positions joined by each operator's rule into coupled
  components, components of the same layout gathered into `ChannelGroup`s; anything not
  understood blocks the channels it touches, with the reason.
- `propagation`: the operator rules, one function per operator family.
- `analysis`: `analyze_channels`, the three in one call.

    groups = analyze_channels(model, feeds)      # ChannelAnalysis
    for group in groups.prunable(): group.size, group.positions, group.describe()
"""

from .analysis import analyze_channels
from .channels import ChannelAnalysis, ChannelGroup

__all__ = ["ChannelAnalysis", "ChannelGroup", "analyze_channels"]
