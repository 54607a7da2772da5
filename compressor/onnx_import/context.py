"""What an operator builder sees of its node at import time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx
import torch
from onnx import AttributeProto

from .tensors import tensor_proto_to_torch


def _attribute_value(attr: AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if attr.type == AttributeProto.STRING:
        return value.decode("utf-8")
    if attr.type == AttributeProto.STRINGS:
        return [v.decode("utf-8") for v in value]
    if attr.type == AttributeProto.TENSOR:
        return tensor_proto_to_torch(value)
    if attr.type == AttributeProto.INTS:
        return [int(v) for v in value]
    if attr.type == AttributeProto.FLOATS:
        return [float(v) for v in value]
    return value


@dataclass
class NodeContext:
    """One node, as seen by a builder: attributes, schema version and known-constant inputs.

    `const(i)` returns the value of input i when it is fixed at import time (an initializer,
    a Constant, or anything folded from those), else None. Builders use it to precompute what
    does not change between forward passes; the returned function still receives every input.
    """

    node: onnx.NodeProto
    version: int
    constants: dict[str, torch.Tensor] = field(repr=False)
    attrs: dict[str, Any] = field(init=False)

    def __post_init__(self):
        self.attrs = {a.name: _attribute_value(a) for a in self.node.attribute}

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def inputs(self) -> list[str]:
        return list(self.node.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.node.output)

    @property
    def num_inputs(self) -> int:
        """Number of inputs given, ignoring trailing empty (omitted optional) ones."""
        names = list(self.node.input)
        while names and not names[-1]:
            names.pop()
        return len(names)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def has_input(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def const(self, i: int) -> torch.Tensor | None:
        if not self.has_input(i):
            return None
        return self.constants.get(self.node.input[i])

    def is_const(self, i: int) -> bool:
        return self.const(i) is not None
