"""Coupled channels of an ONNX graph, found by joining channel positions.

A *position* is one index along one axis of one tensor: channel 5 of a Conv's output (axis 1),
row 5 of its weight (axis 0), entry 5 of its bias, input channel 5 of the next Conv's weight
(axis 1). Each operator's rule (propagation.py) joins the positions that must go together:
a Conv's output channel j with its weight's row j and bias j; a pass-through operator's input
channel i with its output channel i; the two inputs of a residual Add; a Concat's input channel
with its output channel at the input's offset; a Flatten's channel c with the c-th block of
features the next Gemm reads. Constants are positions too, so a weight shared by two layers
couples them. The joined sets (union-find components) are what can be removed together: the
channel disappears from every tensor and constant that holds it.

Components with the same layout (the same tensors and axes) form a `ChannelGroup`: the 64 output
channels of one Conv with everything coupled to them are one group of size 64. A component may
hold several indices of one tensor (a channel flattened into a block of features, or two Split
halves added back together): removing it removes all of them. A position that an operator's rule
does not understand, or a graph output's channel, blocks its component, and the group says why:
nothing is guessed.

Operators whose attributes or constant inputs carry channel counts (Split sizes, Slice bounds,
a depthwise Conv's `group`, a Reshape's target shape) are listed as `rewrites` for the remover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import GraphIndex

Position = tuple[str, int]  # (tensor, axis)


@dataclass(frozen=True)
class Rewrite:
    """An operator whose attributes or constant inputs must follow the new channel counts."""

    kind: str  # "conv_group", "split", "slice", "reshape"
    node: str  # node label
    tensors: tuple[Position, ...]  # the positions whose kept channels decide the new values


@dataclass
class ChannelGroup:
    """Coupled channels of one layout: `size` channels, each present at every position listed."""

    id: int
    size: int
    # (tensor, axis) -> for each channel, in channel order, its indices there: one for most, a block
    # of features for a channel flattened into a Gemm's input
    positions: dict[Position, list[tuple[int, ...]]]
    blocked: list[str] = field(default_factory=list)  # why the group cannot be pruned (empty: it can)
    constants: frozenset[str] = frozenset()  # which of the tensors are constants (weights, biases, ...)

    @property
    def prunable(self) -> bool:
        return not self.blocked

    def activations(self) -> list[Position]:
        return [p for p in self.positions if p[0] not in self.constants]

    def weights(self) -> list[Position]:
        return [p for p in self.positions if p[0] in self.constants]

    def describe(self) -> str:
        acts = ", ".join(f"{t}[{a}]" for t, a in self.activations()[:3])
        more = len(self.activations()) - 3
        return f"group {self.id}: {self.size} channels of {acts}{f' (+{more})' if more > 0 else ''}"


@dataclass
class ChannelAnalysis:
    groups: list[ChannelGroup]
    rewrites: list[Rewrite]
    axes: dict[str, int]  # every tracked activation tensor -> its channel axis
    graph: GraphIndex

    def prunable(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.prunable]

    def blocked(self) -> list[ChannelGroup]:
        return [g for g in self.groups if not g.prunable]

    def group_of(self, tensor: str, axis: int | None = None) -> list[ChannelGroup]:
        """The groups holding channels of `tensor` (on `axis`, or on any tracked axis)."""
        return [g for g in self.groups if any(t == tensor and (axis is None or a == axis) for t, a in g.positions)]


class ChannelGraph:
    """The union-find over positions that the operator rules write into."""

    def __init__(self, graph: GraphIndex):
        self.graph = graph
        self.axes: dict[str, int] = {}  # activation tensor -> tracked axis
        self._base: dict[Position, int] = {}
        self._where: list[tuple[str, int, int]] = []  # node id -> (tensor, axis, index)
        self._parent: list[int] = []
        self._blocked: dict[int, list[str]] = {}
        self.rewrites: list[Rewrite] = []

    # ---- positions -------------------------------------------------------------------------
    def size(self, tensor: str, axis: int) -> int | None:
        shape = self.graph.shapes.get(tensor)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def positions(self, tensor: str, axis: int) -> int | None:
        """The first node id of (tensor, axis), allocating its positions; None without a shape."""
        axis = self._normal(tensor, axis)
        if axis is None:
            return None
        key = (tensor, axis)
        if key not in self._base:
            n = self.size(tensor, axis)
            self._base[key] = len(self._parent)
            for i in range(n):
                self._where.append((tensor, axis, i))
                self._parent.append(len(self._parent))
        return self._base[key]

    def track(self, tensor: str, axis: int) -> bool:
        """Make `tensor` (an activation) carry channels along `axis`; False when its shape is unknown."""
        axis = self._normal(tensor, axis)
        if axis is None:
            return False
        self.axes[tensor] = axis
        self.positions(tensor, axis)
        return True

    def axis(self, tensor: str) -> int | None:
        return self.axes.get(tensor)

    def is_const(self, tensor: str) -> bool:
        return tensor in self.graph.constants

    def _normal(self, tensor: str, axis: int) -> int | None:
        shape = self.graph.shapes.get(tensor)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return axis % len(shape)

    # ---- joining and blocking ----------------------------------------------------------------
    def _find(self, i: int) -> int:
        root = i
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[i] != root:
            self._parent[i], i = root, self._parent[i]
        return root

    def join(self, a: Position, b: Position, length: int | None = None, a_start: int = 0, b_start: int = 0,
             b_step: int = 1) -> None:
        """Join a[a_start + i] with b[b_start + i*b_step] for i < length (default: all of a)."""
        base_a, base_b = self.positions(*a), self.positions(*b)
        if base_a is None or base_b is None:
            return
        if length is None:
            length = self.size(*a)
        for i in range(length):
            ra, rb = self._find(base_a + a_start + i), self._find(base_b + b_start + i * b_step)
            if ra != rb:
                self._parent[ra] = rb

    def join_strided(self, a: Position, b: Position, outer: int, inner: int) -> None:
        """Join a[c] with b[(o*C + c)*inner + k] for every o < outer, k < inner (C = size of a):
        a Flatten or Reshape that merges the channel axis with `outer` dims before it and `inner` after."""
        base_a, base_b = self.positions(*a), self.positions(*b)
        if base_a is None or base_b is None:
            return
        channels = self.size(*a)
        for c in range(channels):
            ra = self._find(base_a + c)
            for o in range(outer):
                start = (o * channels + c) * inner
                for k in range(inner):
                    rb = self._find(base_b + start + k)
                    if ra != rb:
                        self._parent[rb] = ra

    def block(self, position: Position, reason: str, start: int = 0, length: int | None = None) -> None:
        base = self.positions(*position)
        if base is None:
            return
        length = self.size(*position) - start if length is None else length
        for i in range(start, start + length):
            self._blocked.setdefault(base + i, []).append(reason)

    def block_tensor(self, tensor: str, reason: str) -> None:
        axis = self.axis(tensor)
        if axis is not None:
            self.block((tensor, axis), reason)

    def rewrite(self, kind: str, node: str, *tensors: Position) -> None:
        self.rewrites.append(Rewrite(kind, node, tuple(tensors)))

    # ---- the result --------------------------------------------------------------------------
    def groups(self) -> list[ChannelGroup]:
        members: dict[int, list[tuple[str, int, int]]] = {}
        reasons: dict[int, list[str]] = {}
        for node_id, where in enumerate(self._where):
            root = self._find(node_id)
            members.setdefault(root, []).append(where)
        for node_id, why in self._blocked.items():
            reasons.setdefault(self._find(node_id), []).extend(why)
        by_layout: dict[tuple, list[int]] = {}
        for root, where in members.items():
            layout = tuple(sorted((t, a) for t, a, _ in where))  # with multiplicity: blocks of equal size
            by_layout.setdefault(layout, []).append(root)
        constants = set(self.graph.constants)
        groups = []
        for layout, roots in by_layout.items():
            first = layout[0]
            # channel order: by the smallest index in the layout's first position
            roots = sorted(roots, key=lambda r: min(i for t, a, i in members[r] if (t, a) == first))
            positions: dict[Position, list[tuple[int, ...]]] = {p: [] for p in dict.fromkeys(layout)}
            blocked: list[str] = []
            for root in roots:
                here: dict[Position, list[int]] = {p: [] for p in positions}
                for t, a, i in members[root]:
                    here[(t, a)].append(i)
                for p, indices in here.items():
                    positions[p].append(tuple(sorted(indices)))
                for why in reasons.get(root, []):
                    if why not in blocked:
                        blocked.append(why)
            if not any(t not in constants for t, _ in positions):
                blocked.append("only constants: no activation carries these channels")
            groups.append(ChannelGroup(len(groups), len(roots), positions, blocked,
                                       frozenset(t for t, _ in positions if t in constants)))
        return groups
