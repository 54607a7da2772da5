"""Concrete example inputs for a model whose declared input shapes may be symbolic."""

from __future__ import annotations

import re

import onnx
import torch

from ..errors import CompressorError
from .tensors import torch_dtype


def parse_shape(text: str) -> list[int]:
    """'1x3x224x224' -> [1, 3, 224, 224]."""
    if not re.fullmatch(r"\d+(x\d+)*", text.strip()):
        raise CompressorError(f"bad shape {text!r}: expected integers joined by 'x', e.g. 1x3x224x224")
    return [int(v) for v in text.strip().split("x")]


def resolve_input_shapes(module, overrides: dict[str, list[int]] | None = None, batch: int = 1,
                         hints: dict[str, tuple[list, str]] | None = None) -> dict[str, list[int]]:
    """A concrete shape for every model input.

    A symbolic first dimension is taken as the batch (`batch`); any other symbolic dimension
    comes from `overrides` (--input-shape) or from `hints` ({name: (shape with None where
    unknown, where it came from)}: the data or the model's metadata); otherwise the error names
    the input and its dimensions. An override keyed "" (a shape given without a name) belongs
    to the model's only input.
    """
    overrides = dict(overrides or {})
    hints = hints or {}
    if "" in overrides:
        if len(module.input_names) != 1:
            raise CompressorError(f"the model has {len(module.input_names)} inputs: name each, as NAME:1x3x224x224")
        overrides[module.input_names[0]] = overrides.pop("")
    unknown = set(overrides) - set(module.input_names)
    if unknown:
        raise CompressorError(f"no model input named {', '.join(sorted(unknown))}; inputs are {', '.join(module.input_names)}")
    shapes = {}
    for name in module.input_names:
        if name in overrides:
            shapes[name] = list(overrides[name])
            continue
        declared = module.input_shapes.get(name, [])
        hint, source = hints.get(name, ([], ""))
        if not declared and hint and all(d for d in hint[1:]):
            declared = [None, *hint[1:]]
        if not declared:
            raise CompressorError(f"input {name!r} declares no shape; give one with --input-shape {name}:1x3x224x224")
        shape = []
        for axis, dim in enumerate(declared):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif axis == 0:
                shape.append(batch)
            elif len(hint) == len(declared) and hint[axis]:
                shape.append(int(hint[axis]))
            else:
                dims = "x".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?") for d in declared)
                raise CompressorError(
                    f"input {name!r} has dynamic dimensions {dims} and nothing fixes them (no --data of that shape, "
                    f"no image size in the model's metadata): give --input-shape {name}:"
                    + "x".join(str(d) if isinstance(d, int) and d > 0 else ("1" if i == 0 else "N") for i, d in enumerate(declared))
                )
        shapes[name] = shape
    return shapes


def input_dtypes(module) -> dict[str, torch.dtype]:
    types = {}
    for value in module.onnx_model.graph.input:
        if value.name in module.input_names:
            elem = value.type.tensor_type.elem_type
            types[value.name] = torch_dtype(elem) if elem != onnx.TensorProto.UNDEFINED else torch.float32
    return types


def random_inputs(module, shapes: dict[str, list[int]] | None = None, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    """Seeded random inputs: image-like float inputs (rank 4 with 1 or 3 channels first or last)
    uniform in [0, 1) as pixels are, other float inputs standard normal, integer/bool inputs zeros.

    Standard-normal "images" drive detectors' sigmoids into saturation, where a parity check
    compares float noise instead of the model."""
    shapes = resolve_input_shapes(module, shapes, batch)
    dtypes = input_dtypes(module)
    gen = torch.Generator().manual_seed(seed)
    tensors = []
    for name in module.input_names:
        dtype, shape = dtypes[name], shapes[name]
        if dtype.is_floating_point and is_image_shape(shape):
            tensors.append(torch.rand(shape, generator=gen).to(dtype))
        elif dtype.is_floating_point:
            tensors.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            tensors.append(torch.zeros(shape, dtype=dtype))
    return tensors


def is_image_shape(shape) -> bool:
    return len(shape) == 4 and (shape[1] in (1, 3) or shape[3] in (1, 3))
