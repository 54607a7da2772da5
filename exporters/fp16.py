"""A float16 copy of an ONNX model, because TensorRT 11 builds only strongly typed networks: FP16
there means float16 tensors in the file itself (deploy.md §1).

float32 weights, Constant values, Cast/dtype targets and tensor types become float16, except where
an operator's schema allows no float16 for that input or output (Resize scales, NonMaxSuppression
boxes/scores, ...): those stay float32, with Casts at the seams. Weights beyond ±65504 are clamped,
and counted. With `keep_io_types` the graph's inputs and outputs keep their float32 type and names.

Refused, with one line: subgraphs (If/Loop/Scan) and model-local functions, whose types would need
converting in step with the caller's; operators without a schema in `onnx` (custom domains), whose
allowed types are unknown; float values in sequence/map/optional types. Runtime overflow (a
float32 activation above 65504) cannot be seen in the file and is not handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExportError, ModelLoadError, UnsupportedModelError
from compressor.files import write_atomic

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_FP16_TYPE = "tensor(float16)"
# operators whose float output type is set by an attribute, not by an input's type
_DTYPE_ATTR = {"Cast": "to", "RandomNormal": "dtype", "RandomUniform": "dtype", "RandomNormalLike": "dtype",
               "RandomUniformLike": "dtype", "EyeLike": "dtype", "Bernoulli": "dtype"}
_MAX_PROTO = 2 ** 31 - 1  # protobuf's limit for one serialized message


@dataclass(frozen=True)
class Float16Model:
    model: onnx.ModelProto
    converted: int                 # float32 weights and constants now float16 (tensors)
    clamped: int                   # their values beyond ±65504 (infinities included), clamped
    underflowed: int               # their nonzero values too small for float16, now 0
    kept_float32: tuple[str, ...]  # tensors kept float32 because an operator requires it


class _Counts:
    def __init__(self) -> None:
        self.converted = self.clamped = self.underflowed = 0

    def half(self, tensor: TensorProto) -> TensorProto:
        values = numpy_helper.to_array(tensor)
        finite_max = np.where(np.isnan(values), 0, np.abs(values))
        self.clamped += int(np.count_nonzero(finite_max > FP16_MAX))
        halved = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
        self.underflowed += int(np.count_nonzero((halved == 0) & (values != 0)))
        self.converted += 1
        out = numpy_helper.from_array(halved, tensor.name)
        out.doc_string = tensor.doc_string
        return out


def to_float16(model: onnx.ModelProto, *, keep_io_types: bool = True) -> Float16Model:
    """The float16 copy of `model` (which is left as it is), checked with the full ONNX checker."""
    _refuse_what_is_not_converted(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    opsets = {o.domain or "ai.onnx": o.version for o in out.opset_import}
    original = _elem_types(out)
    schemas = [_schema(node, opsets) for node in graph.node]
    counts = _Counts()

    # 1. the type each tensor will have, and the type each node input asks for
    graph_inputs = {v.name for v in graph.input}
    initializers = {t.name: t for t in graph.initializer}
    have: dict[str, int] = {}
    wants: dict[str, list[int]] = {}
    for name in graph_inputs - set(initializers):
        if original.get(name) == FLOAT:
            have[name] = FLOAT if keep_io_types else HALF
    for node, schema in zip(graph.node, schemas):
        for i, name in enumerate(node.input):
            if name and original.get(name) == FLOAT:
                wants.setdefault(name, []).append(HALF if _allows_half(schema, schema.inputs, i) else FLOAT)
        for j, name in enumerate(node.output):
            if name and original.get(name) == FLOAT:
                have[name] = HALF if _allows_half(schema, schema.outputs, j) else FLOAT
    for name, tensor in initializers.items():
        if tensor.data_type == FLOAT:
            asked = wants.get(name, [HALF])
            have[name] = FLOAT if all(t == FLOAT for t in asked) else HALF
    outputs = {v.name for v in graph.output}
    for node in graph.node:  # a constant only float32 consumers read stays float32, unrounded
        if node.op_type == "Constant" and not node.domain and node.output[0] not in outputs:
            asked = wants.get(node.output[0], [HALF])
            if have.get(node.output[0]) == HALF and all(t == FLOAT for t in asked):
                have[node.output[0]] = FLOAT
    kept = sorted(name for name, t in have.items() if t == FLOAT and name not in graph_inputs)
    kept += sorted({n for n, asked in wants.items() if FLOAT in asked and have.get(n) == HALF})

    # 2. values and attributes: weights, constants, and the dtype of ops that create floats
    new_inits = []
    for tensor in graph.initializer:
        new_inits.append(counts.half(tensor) if have.get(tensor.name) == HALF else tensor)
    for node in graph.node:
        if any(have.get(o) == HALF for o in node.output):
            _retype_node(node, counts)

    # 3. Casts where a tensor's new type is not the one its consumer allows
    casts: dict[tuple[str, int], str] = {}
    used = _all_names(out)
    nodes = []
    for original_node, schema in zip(graph.node, schemas):
        node = onnx.NodeProto()
        node.CopyFrom(original_node)
        for i, name in enumerate(node.input):
            if name not in have:
                continue
            want = HALF if _allows_half(schema, schema.inputs, i) else FLOAT
            if have[name] == want:
                continue
            key = (name, want)
            if key not in casts:
                casts[key] = _unique(f"{name}__{'fp16' if want == HALF else 'fp32'}", used)
                if name in initializers:  # a constant: a second copy of it, no Cast node
                    source = initializers[name]
                    copy = counts.half(source) if want == HALF else onnx.TensorProto()
                    if want == FLOAT:
                        copy.CopyFrom(source)
                    copy.name = casts[key]
                    new_inits.append(copy)
                else:
                    nodes.append(helper.make_node("Cast", [name], [casts[key]], to=want, name=casts[key]))
            node.input[i] = casts[key]
        nodes.append(node)

    # 4. the graph's outputs: their names stay, a Cast in front where the type changed
    for value in graph.output:
        if original.get(value.name) != FLOAT:
            continue
        want = FLOAT if keep_io_types else HALF
        if have.get(value.name, want) != want:
            inner = _unique(f"{value.name}__{'fp16' if have[value.name] == HALF else 'fp32'}", used)
            _rename(nodes, new_inits, graph.value_info, value.name, inner)
            have[inner] = have[value.name]
            nodes.append(helper.make_node("Cast", [inner], [value.name], to=want, name=f"{inner}__cast"))
        value.type.tensor_type.elem_type = want
    for value in graph.input:
        if value.name in have:
            value.type.tensor_type.elem_type = have[value.name]
    for value in graph.value_info:
        if value.name in have and value.type.HasField("tensor_type"):
            value.type.tensor_type.elem_type = have[value.name]

    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    _check(out)
    return Float16Model(out, counts.converted, counts.clamped, counts.underflowed, tuple(kept))


def write_float16(src: Path, dst: Path, keep_io_types: bool = True) -> Float16Model:
    """The float16 copy of the ONNX file `src`, written atomically to `dst` (never over `src`)."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ExportError(f"{dst}: the float16 copy must not replace its source")
    try:
        model = onnx.load(str(src))
    except FileNotFoundError:
        raise ModelLoadError(f"{src}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX model"
        raise ModelLoadError(f"{src}: not a readable ONNX model ({type(exc).__name__})") from None
    result = to_float16(model, keep_io_types=keep_io_types)
    if result.model.ByteSize() > _MAX_PROTO:
        raise ExportError(f"{src}: the float16 copy is over 2 GB, too large for one ONNX file")
    write_atomic(dst, result.model.SerializeToString())
    return result


# --- helpers ----------------------------------------------------------------------------------------

def _refuse_what_is_not_converted(model: onnx.ModelProto) -> None:
    if model.functions:
        raise UnsupportedModelError(f"float16 conversion: model-local functions are not converted "
                                    f"({model.functions[0].name}); inline them first")
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise UnsupportedModelError(f"float16 conversion: subgraphs are not converted ({node.op_type} "
                                            f"node {node.name or node.output[0]!r})")


def _schema(node: onnx.NodeProto, opsets: dict[str, int]):
    domain = node.domain or "ai.onnx"
    try:
        return onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), "" if domain == "ai.onnx" else domain)
    except onnx.defs.SchemaError:
        raise UnsupportedModelError(f"float16 conversion: no ONNX schema for {node.op_type} "
                                    f"(domain {domain!r}), so its allowed types are unknown") from None


def _allows_half(schema, params, index: int) -> bool:
    if index < len(params):
        formal = params[index]
    elif params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        formal = params[-1]
    else:
        return False
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    return _FP16_TYPE in allowed.get(formal.type_str, [formal.type_str])


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Every tensor's element type, as shape inference sees the original model."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - the checker's own exception types vary by version
        raise UnsupportedModelError(f"float16 conversion: the model's types cannot be inferred: "
                                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                                    ) from None
    graph = inferred.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type"):
            types.setdefault(value.name, value.type.tensor_type.elem_type)
        elif _holds_float(value.type):
            raise UnsupportedModelError(f"float16 conversion: {value.name!r} is a sequence, map or optional of "
                                        "floats, which is not converted")
    return types


def _holds_float(type_proto: onnx.TypeProto) -> bool:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        return getattr(type_proto, kind).elem_type == FLOAT
    if kind in ("sequence_type", "optional_type"):
        return _holds_float(getattr(type_proto, kind).elem_type)
    if kind == "map_type":
        return _holds_float(type_proto.map_type.value_type)
    return False


def _retype_node(node: onnx.NodeProto, counts: _Counts) -> None:
    """Make a node that creates float32 values create float16 ones (its output is now float16)."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in _DTYPE_ATTR:
        name = _DTYPE_ATTR[node.op_type]
        if name in attrs and attrs[name].i == FLOAT:
            attrs[name].i = HALF
        elif name not in attrs and node.op_type in ("RandomNormal", "RandomUniform"):
            node.attribute.append(helper.make_attribute(name, HALF))  # their default is float32
    elif node.op_type == "Constant":
        if "value" in attrs and attrs["value"].t.data_type == FLOAT:
            attrs["value"].t.CopyFrom(counts.half(attrs["value"].t))
        elif "value_float" in attrs or "value_floats" in attrs:
            attr = attrs.get("value_float") or attrs["value_floats"]
            values = np.array(attr.f if attr.name == "value_float" else list(attr.floats), np.float32)
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute("value", counts.half(numpy_helper.from_array(values))))
        elif "sparse_value" in attrs:
            raise UnsupportedModelError(f"float16 conversion: the sparse float Constant {node.output[0]!r} "
                                        "is not converted")
    elif node.op_type == "ConstantOfShape":
        if "value" in attrs:
            attrs["value"].t.CopyFrom(counts.half(attrs["value"].t))
        else:  # the default is a float32 zero
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))


def _all_names(model: onnx.ModelProto) -> set[str]:
    graph = model.graph
    names = {t.name for t in graph.initializer}
    names.update(v.name for v in [*graph.input, *graph.output, *graph.value_info])
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
    return names


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate


def _rename(nodes, initializers, value_info, old: str, new: str) -> None:
    for node in nodes:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name == old:
                    seq[i] = new
    for tensor in initializers:
        if tensor.name == old:
            tensor.name = new
    for value in value_info:
        if value.name == old:
            value.name = new


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError: both mean a bad result
        text = str(exc).strip()
        raise ExportError(f"float16 conversion produced an invalid model: "
                          f"{text.splitlines()[0] if text else type(exc).__name__}") from None
