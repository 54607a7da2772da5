"""2:4-pruned Gemm/MatMul weights on PyTorch's semi-structured sparse kernels (deploy.md §6.7), so
sparse tensor cores can be measured on a GPU without TensorRT.

PyTorch's `SparseSemiStructuredTensor` (CUTLASS or cuSPARSELt) speeds up linear products only,
not convolutions, on compute capability >= 8.0 in FP16/BF16, and only for weight shapes that are
multiples of the backend's minimum tile (rows = output features, columns = the reduction K). Its
pattern runs along each row of an [N, K] weight used as `F.linear(x, W)`: groups of 4 along K,
the same reduction-axis groups our N:M pattern prunes (deploy.md §3). So a Gemm (transA=0) or a
2-D MatMul whose constant B holds 2:4 along K is given to the kernels, as `alpha * B` in [N, K]
layout; every other weight stays dense, and `plan` says why, layer by layer.

`plan` is pure (no GPU needed); `apply` converts the chosen weights on the device and swaps the
node's function in the imported module, which keeps its dense parameter for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import torch
import torch.nn.functional as F

from ..onnx_import.builder import node_attr, node_label
from ..onnx_import.module import OnnxModule
from ..onnx_import.weights import WeightInfo

SPARSE = "semi-structured 2:4 kernels"
BACKENDS = ("cusparselt", "cutlass")


@dataclass(frozen=True)
class LayerChoice:
    weight: str
    node: str
    op_type: str
    shape: tuple[int, ...]
    status: str  # SPARSE, or why the weight stays dense

    @property
    def sparse(self) -> bool:
        return self.status == SPARSE

    def to_dict(self) -> dict:
        return {"weight": self.weight, "node": self.node, "op": self.op_type, "shape": list(self.shape), "status": self.status}


def backend_class(backend: str):
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT, SparseSemiStructuredTensorCUTLASS

    return {"cusparselt": SparseSemiStructuredTensorCUSPARSELT, "cutlass": SparseSemiStructuredTensorCUTLASS}[backend]


def resolve_backend(backend: str) -> str:
    """"auto": cuSPARSELt where this PyTorch has it (PyTorch's own default), else CUTLASS."""
    if backend != "auto":
        return backend
    return "cusparselt" if torch.backends.cusparselt.is_available() else "cutlass"


def min_shape(backend: str, dtype: torch.dtype) -> tuple[int, int] | None:
    """(rows, columns) the sparse weight's shape must be multiples of; None: dtype unsupported."""
    config = backend_class(backend)._DTYPE_SHAPE_CONSTRAINTS.get(dtype)
    return None if config is None else (config.sparse_min_rows, config.sparse_min_cols)


def plan(module: OnnxModule, dtype: torch.dtype, backend: str) -> list[LayerChoice]:
    """Every prunable weight of `module` with its fate on the semi-structured kernels."""
    nodes = _nodes_by_label(module.onnx_model.graph)
    params = module.weight_parameters()
    return [LayerChoice(info.name, info.node, info.op_type, info.shape,
                        _why_dense(info, params[info.name], nodes.get(info.node), dtype, backend) or SPARSE)
            for info in module.weights.values()]


def apply(module: OnnxModule, choices: list[LayerChoice], dtype: torch.dtype, backend: str) -> int:
    """Run the chosen layers of `module` (already on the GPU in `dtype`) on the kernels; how many."""
    cls = backend_class(backend)
    nodes = _nodes_by_label(module.onnx_model.graph)
    count = 0
    for choice in choices:
        if not choice.sparse:
            continue
        info = module.weights[choice.weight]
        node = nodes[info.node]
        alpha, beta = _gemm_scales(node)
        weight = module.parameter(info.name).detach()
        nk = weight if info.layout == "NK" else weight.t()
        sparse = cls.from_dense((nk * alpha).to(dtype).contiguous())
        module.replace_step_function(info.node, _linear(sparse, node.op_type, beta))
        count += 1
    return count


def _linear(sparse, op_type: str, beta: float):
    # PyTorch's semi-structured linear flattens the input with `view`, which needs it contiguous
    if op_type == "MatMul":
        def matmul(a, _b):
            return F.linear(a.contiguous(), sparse)

        return matmul

    def gemm(a, _b, c=None):
        a = a.contiguous()
        if c is None:
            return F.linear(a, sparse)
        if c.dim() == 1 and c.shape[0] == sparse.shape[0]:
            return F.linear(a, sparse, c * beta if beta != 1.0 else c)
        return F.linear(a, sparse) + beta * c  # C broadcast over rows or a full [M, N] matrix

    return gemm


def _why_dense(info: WeightInfo, weight: torch.Tensor, node: onnx.NodeProto | None, dtype: torch.dtype,
               backend: str) -> str | None:
    if info.op_type not in ("Gemm", "MatMul"):
        return f"{info.op_type}: PyTorch's semi-structured kernels cover linear products only"
    if node is None:
        return "its node is not in the graph"
    if info.layout not in ("NK", "KN") or len(info.shape) != 2:
        return "the constant is not a 2-D right-hand factor (B) of the product"
    if node.op_type == "Gemm" and node_attr(node, "transA", 0):
        return "Gemm with transA=1"
    shape = min_shape(backend, dtype)
    if shape is None:
        return f"{backend} has no {str(dtype).removeprefix('torch.')} semi-structured kernel"
    n = info.shape[info.output_axis]
    k = info.shape[info.reduction_axis]
    rows, cols = shape
    if n % rows or k % cols:
        return f"shape N={n}, K={k}: {backend} needs multiples of {rows} (N) and {cols} (K)"
    nk = weight.detach() if info.layout == "NK" else weight.detach().t()
    crowded = int(((nk.reshape(n, k // 4, 4) != 0).sum(dim=2) > 2).sum().item())
    if crowded:
        return f"not 2:4 along K ({crowded} groups of 4 hold more than 2 non-zeros)"
    return None


def _nodes_by_label(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {node_label(node, i): node for i, node in enumerate(graph.node)}


def _gemm_scales(node: onnx.NodeProto) -> tuple[float, float]:
    if node.op_type != "Gemm":
        return 1.0, 1.0
    return float(node_attr(node, "alpha", 1.0)), float(node_attr(node, "beta", 1.0))
