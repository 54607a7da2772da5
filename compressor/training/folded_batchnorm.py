"""BatchNorm put back, for training, into convolutions whose exporter folded it away.

An exported CNN usually has each BatchNormalization folded into the Conv before it (weights scaled,
bias shifted: an inference rewrite). Trained as it is, the folded network is unnormalised, and
Adam's steps have one size whatever a filter's scale: fine-tuning the folded residual CNN of
bench/channel_pruning.py at 50% of its multiply-adds, Adam at 1e-3 left it at 80.0% (dense 98.0%),
1e-4 at 96.3%, while Torch-Pruning, which keeps BatchNorm, fine-tunes the same network at 1e-3.

`FoldedBatchNorm` gives such a Conv a per-channel BatchNorm for one training phase:
- `insert`: the running mean and variance of the Conv's output are measured on calibration
  batches, and the norm starts as the identity (scale sqrt(var + eps), shift mean), so the first
  step sees the same function, now with batch statistics and a learnable scale and shift. In
  inference mode the inserted norm uses its running statistics: evaluating the module then is
  evaluating the network the fold will give. Its state (scale, shift, statistics) is checkpointed
  beside the weights, so a resumed phase goes on with the same norms;
- `reestimate`: precise running statistics, averaged over many batches, before folding;
- `fold`: at the phase's end the norm is folded back into the Conv's weight and bias, and the
  Conv's own function restored: what is exported is always the plain graph. (Folding after every
  epoch, as this once did, froze the running statistics' noise into the weights each time.)
- `recalibrate`: after hard pruning, each channel given back the statistics it had before
  (`--recalibrate-bn`), as recalibrating a BatchNorm layer does.
Zeros stay zeros (a row is scaled, never filled), so masks and pruned channels are kept.

Sites: Conv nodes whose weight is prunable and whose bias is a trainable initializer, whose
output is not a graph output, and that are not followed by a BatchNormalization of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..onnx_import.builder import node_label


@dataclass(frozen=True)
class Site:
    label: str  # the Conv node
    weight: str  # ONNX names
    bias: str
    channels: int


def find_sites(module) -> list[Site]:
    """The Conv nodes of `module` (an OnnxModule) that a folded BatchNorm can be put back into."""
    graph = module.onnx_model.graph
    params = module.onnx_parameters()
    outputs = set(module.graph_output_names)
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.op_type)
    by_label = {info.node: (name, info) for name, info in module.weights.items() if info.op_type == "Conv"}
    sites = []
    for index, node in enumerate(graph.node):
        if node.op_type != "Conv" or len(node.input) < 3 or not node.input[2]:
            continue
        label = node_label(node, index)
        if label not in by_label or node.input[2] not in params or node.output[0] in outputs:
            continue
        if len(readers[node.input[1]]) > 1 or len(readers[node.input[2]]) > 1:
            continue  # a weight or bias shared with another node: folding would change that node too
        if "BatchNormalization" in readers.get(node.output[0], []):
            continue  # the graph normalises this conv itself
        try:
            module.step_function(label)  # last: it walks the execution plan
        except KeyError:  # not run by the module (a post-processing tail's node)
            continue
        weight, info = by_label[label]
        sites.append(Site(label, weight, node.input[2], int(info.shape[info.output_axis])))
    return sites


CONSTANT_VARIANCE = 1e-8  # a channel whose output varies less than this is constant (a pruned channel)


class FoldedBatchNorm(nn.Module):
    """Per-channel BatchNorm around the `sites` of `module`, inserted and folded an epoch at a time."""

    def __init__(self, module, sites: list[Site], eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        object.__setattr__(self, "module", module)  # the model it serves, not a submodule: its parameters stay its own
        self.sites, self.eps, self.momentum = sites, eps, momentum
        self.scale = nn.ParameterList([nn.Parameter(torch.ones(s.channels)) for s in sites])
        self.shift = nn.ParameterList([nn.Parameter(torch.zeros(s.channels)) for s in sites])
        for i, s in enumerate(sites):
            self.register_buffer(f"mean_{i}", torch.zeros(s.channels))
            self.register_buffer(f"var_{i}", torch.ones(s.channels))
        self._originals: dict[str, object] = {}

    @property
    def inserted(self) -> bool:
        return bool(self._originals)

    def insert(self, batches: Iterable) -> None:
        """Measure each site's output statistics on `batches` (inputs, or (inputs, target) pairs),
        start every norm as the identity, and route the sites through their norms."""
        statistics = self.measure(batches)
        with torch.no_grad():
            for i, (mean, var) in enumerate(statistics):
                getattr(self, f"mean_{i}").copy_(mean)
                getattr(self, f"var_{i}").copy_(var)
                self.scale[i].copy_(torch.sqrt(var + self.eps))  # the identity, in inference and near it in training
                self.shift[i].copy_(mean)
        self._route(self._normalised)

    def measure(self, batches: Iterable) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each site's per-channel output mean and variance over `batches`, the module run as it is
        (in inference mode); the module is left unchanged."""
        sums = [None] * len(self.sites)
        originals = {s.label: self.module.step_function(s.label) for s in self.sites}

        def recorder(i, fn):
            def run(*args):
                out = fn(*args)
                z = (out[0] if isinstance(out, (tuple, list)) else out).double()
                dims = [0, *range(2, z.dim())]
                stats = (z.sum(dim=dims), (z * z).sum(dim=dims), z.numel() // z.shape[1])
                sums[i] = stats if sums[i] is None else tuple(a + b for a, b in zip(sums[i], stats))
                return out
            return run

        for i, s in enumerate(self.sites):
            self.module.replace_step_function(s.label, recorder(i, originals[s.label]))
        try:
            self._forward(batches)
        finally:
            for s in self.sites:
                self.module.replace_step_function(s.label, originals[s.label])
        if any(total is None for total in sums):
            raise ValueError("FoldedBatchNorm: no calibration batch reached every site")
        statistics = []
        for total in sums:
            mean = total[0] / total[2]
            statistics.append((mean.float(), (total[1] / total[2] - mean * mean).clamp_min(0.0).float()))
        return statistics

    def recalibrate(self, batches: Iterable, targets: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """BatchNorm recalibration for folded convs, after their weights changed (hard pruning).

        In a network that kept its BatchNorm, re-estimating the running statistics on training data
        brings every channel back to the distribution its scale and shift give it. Folded, the same
        is: each site's output normalised by its own statistics, then given the mean and variance
        `targets` (measured on the network before the change, `measure`), and folded. A channel the
        change left constant (a pruned channel) is left as it is: no scale can restore it, and its
        bias stays the pruning's. The norms must not be inserted."""
        if self.inserted:
            raise ValueError("FoldedBatchNorm.recalibrate: fold the inserted norms first")
        with torch.no_grad():
            for i, (mean, var) in enumerate(targets):
                self.scale[i].copy_(torch.sqrt(var + self.eps))
                self.shift[i].copy_(mean)
        self._route(self._normalised)
        self.reestimate(batches, constant_channels_unchanged=True)
        with torch.no_grad():
            for i in range(len(self.sites)):
                dead = getattr(self, f"var_{i}") <= CONSTANT_VARIANCE  # the identity there
                mean, var = getattr(self, f"mean_{i}"), getattr(self, f"var_{i}")
                self.scale[i].copy_(torch.where(dead, torch.sqrt(var + self.eps), self.scale[i]))
                self.shift[i].copy_(torch.where(dead, mean, self.shift[i]))
        self.fold()

    def reestimate(self, batches: Iterable, *, constant_channels_unchanged: bool = False) -> None:
        """Precise running statistics for the inserted norms: the plain average over `batches` of
        each site's batch statistics, every site normalised by its batch statistics as it would be
        in training (in order, so a site sees the sites before it already normalised), scale and
        shift kept. The running averages training keeps (momentum 0.1) follow the last few dozen
        batches; folded, their noise would become part of the weights."""
        if not self.inserted:
            raise ValueError("FoldedBatchNorm.reestimate: the norms are not inserted")
        originals = self._originals
        with torch.no_grad():
            for i in range(len(self.sites)):
                getattr(self, f"mean_{i}").zero_()
                getattr(self, f"var_{i}").fill_(1.0)
        for i, s in enumerate(self.sites):
            self.module.replace_step_function(s.label, self._averaging(i, originals[s.label], constant_channels_unchanged))
        try:
            reached = self._forward(batches)
        finally:
            self._route(self._normalised, originals)
        if not reached:
            raise ValueError("FoldedBatchNorm.reestimate: no batch to measure on")

    def _forward(self, batches: Iterable) -> int:
        """Runs the module over `batches` (inputs, or (inputs, target) pairs) without gradients and in
        inference mode (the graph's own BatchNormalization nodes and dropout as in inference);
        returns how many batches ran."""
        was_training = self.module.training
        self.module.eval()
        count = 0
        try:
            with torch.no_grad():
                for batch in batches:
                    self.module(batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch)
                    count += 1
        finally:
            self.module.train(was_training)
        return count

    def _route(self, wrapper, originals: dict | None = None) -> None:
        originals = originals or {s.label: self.module.step_function(s.label) for s in self.sites}
        self._originals = originals
        for i, s in enumerate(self.sites):
            self.module.replace_step_function(s.label, wrapper(i, originals[s.label]))

    def _unroute(self) -> None:
        for s in self.sites:
            self.module.replace_step_function(s.label, self._originals[s.label])
        self._originals = {}

    def _averaging(self, i: int, fn, constant_unchanged: bool):
        seen = [0]

        def run(*args):
            out = fn(*args)
            z = out[0] if isinstance(out, (tuple, list)) else out
            seen[0] += 1  # momentum 1/n: the running statistics are the plain average over the batches
            normalised = F.batch_norm(z, getattr(self, f"mean_{i}"), getattr(self, f"var_{i}"), self.scale[i],
                                      self.shift[i], training=True, momentum=1.0 / seen[0], eps=self.eps)
            if not constant_unchanged:
                return normalised
            # a constant channel passes unchanged, as the recalibrating fold will leave it
            constant = z.var(dim=[0, *range(2, z.dim())], unbiased=False) <= CONSTANT_VARIANCE
            return torch.where(constant.reshape(1, -1, *([1] * (z.dim() - 2))), z, normalised)
        return run

    def _normalised(self, i: int, fn):
        def run(*args):
            out = fn(*args)
            z = out[0] if isinstance(out, (tuple, list)) else out
            return F.batch_norm(z, getattr(self, f"mean_{i}"), getattr(self, f"var_{i}"), self.scale[i], self.shift[i],
                                 training=self.module.training, momentum=self.momentum, eps=self.eps)
        return run

    def fold(self) -> None:
        """Fold every norm (as inference computes it) into its Conv and restore the Conv's function."""
        if not self.inserted:
            return
        with torch.no_grad():
            for i, s in enumerate(self.sites):
                factor = self.scale[i] / torch.sqrt(getattr(self, f"var_{i}") + self.eps)
                weight, bias = self.module.parameter(s.weight), self.module.parameter(s.bias)
                weight.mul_(factor.to(weight.dtype).reshape(-1, *([1] * (weight.dim() - 1))))
                bias.copy_(((bias - getattr(self, f"mean_{i}")) * factor + self.shift[i]).to(bias.dtype))
        self._unroute()
