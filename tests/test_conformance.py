"""Operator conformance: ONNX's own backend node cases, and coverage of opsets 9 to 21."""

from __future__ import annotations

from collections import Counter

import onnx.defs
import pytest

from compressor.onnx_import import conformance
from compressor.onnx_import.registry import lookup

# The operators issue #2 requires, as found in common CNN exports (PyTorch, TF and Paddle converters).
REQUIRED_OPS = """
Conv ConvTranspose Gemm MatMul BatchNormalization InstanceNormalization LayerNormalization Relu LeakyRelu
PRelu Sigmoid Tanh HardSigmoid HardSwish Mish Elu Selu Softplus Softmax LogSoftmax Erf Gelu Add Sub Mul Div
Pow Sqrt Exp Log Abs Neg Reciprocal Min Max Sum Mean Clip MaxPool AveragePool GlobalAveragePool
GlobalMaxPool LRN Dropout Identity Flatten Reshape Transpose Squeeze Unsqueeze Concat Split Slice Gather
GatherElements Shape Size ConstantOfShape Constant Expand Tile Pad Resize Upsample Cast Where Equal
Greater Less Not And Range ReduceMean ReduceSum ReduceMax ReduceMin ArgMax TopK DepthToSpace SpaceToDepth
Einsum
""".split()


@pytest.mark.parametrize("op", REQUIRED_OPS)
def test_required_op_supported_at_every_opset_9_to_21(op):
    for opset in range(9, 22):
        try:
            schema = onnx.defs.get_schema(op, opset, "")
        except onnx.defs.SchemaError:
            continue  # the operator did not exist yet at this opset (e.g. Gelu before 20)
        if schema.deprecated:
            continue  # e.g. Upsample from opset 10: exporters emit Resize instead
        assert lookup(op, "", opset) is not None, f"{op} at opset {opset} (schema version {schema.since_version})"


@pytest.fixture(scope="module")
def results():
    return conformance.run()


def test_backend_node_cases_pass(results, conformance_summary):
    counts = Counter(r.status for r in results)
    failures = [f"{r.name} (opset {r.opset}): {r.detail}" for r in results if r.status == "fail"]
    conformance_summary.append(
        f"ONNX backend node cases: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['known']} known exceptions, {counts['skip']} skipped "
        f"({len({r.op for r in results if r.op != 'expanded'})} operators)"
    )
    assert not failures, "\n".join(failures)
    # every required op that has cases at opsets 9+ passes at least one of them
    passed_ops = {r.op for r in results if r.status == "pass"}
    with_cases = {r.op for r in results if r.opset >= 9}
    assert set(REQUIRED_OPS) & with_cases <= passed_ops
    assert counts["pass"] >= 700  # 710 when written: a floor that catches an operator dropping out


def test_claimed_float_cases_at_opsets_9_to_21_all_pass(results):
    claimed = [r for r in results if r.is_float and 9 <= r.opset <= 21 and r.op != "expanded"]
    assert claimed and all(r.status in ("pass", "known") for r in claimed)
