"""Conformance against ONNX's own backend node test cases (shipped in the onnx package).

Each case is a small model with inputs and expected outputs computed by ONNX's reference
implementation. A case is attributed to an operator when its graph is that single node;
"expanded" cases (a function body written out as several nodes) are run when every node in
them is supported and reported on their own.

    python -m compressor.onnx_import.conformance            # summary for every claimed op
    python -m compressor.onnx_import.conformance Conv Resize  # only these ops, with failures
    python -m compressor.onnx_import.conformance --markdown   # the table in docs/operators.md
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
import torch

from ..errors import CompressorError
from .builder import build_module
from .reader import MIN_OPSET, LoadedModel, opset_versions, unsupported_types
from .registry import DEFAULT_DOMAIN, registered
from .tensors import FLOAT_ONNX_TYPES, to_torch, torch_to_numpy

MAX_CLAIMED_OPSET = 21  # the importer's promise: opsets 9 to 21; newer versions are extras

# Cases of claimed operators that cannot pass, and why. The conformance test fails on any
# other failure; docs/operators.md lists the same exceptions.
KNOWN_EXCEPTIONS = {
    "test_training_dropout": "training-mode Dropout draws a random mask; the expected output is one particular numpy draw",
    "test_training_dropout_mask": "training-mode Dropout draws a random mask; the expected output is one particular numpy draw",
    "test_training_dropout_default": "training-mode Dropout draws a random mask; the expected output is one particular numpy draw",
    "test_training_dropout_default_mask": "training-mode Dropout draws a random mask; the expected output is one particular numpy draw",
}


@dataclass
class CaseResult:
    name: str
    op: str  # the operator, or "expanded" for multi-node cases
    opset: int
    is_float: bool
    status: str  # "pass", "fail", "known" (a listed exception), "skip" (not applicable)
    detail: str = ""


def _elem_types(values) -> list[int]:
    return [v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")]


def collect_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return [c for c in collect_testcases(None) if c.kind == "node"]


def case_op(case) -> str:
    ops = {n.op_type for n in case.model.graph.node}
    return ops.pop() if len(case.model.graph.node) == 1 else "expanded"


def run_case(case) -> CaseResult:
    model = case.model
    opset = opset_versions(model).get(DEFAULT_DOMAIN, 0)
    graph = model.graph
    types = _elem_types(graph.input) + _elem_types(graph.output)
    is_float = any(t in FLOAT_ONNX_TYPES for t in types) and all(
        v.type.HasField("tensor_type") for v in list(graph.input) + list(graph.output)
    )
    op = case_op(case)
    result = CaseResult(case.name, op, opset, is_float, "pass")
    if opset < MIN_OPSET:
        result.status, result.detail = "skip", f"opset {opset} < {MIN_OPSET}"
        return result
    types = unsupported_types(model)
    if types:  # strings, float8, sub-byte integers: torch has no such tensors
        result.status, result.detail = "skip", "element types torch cannot hold: " + ", ".join(types)
        return result
    try:
        module = build_module(LoadedModel(model, None, False), case.name, allow_tail=False)  # a case checks every node
    except CompressorError as exc:
        claimed = opset <= MAX_CLAIMED_OPSET and op != "expanded"
        result.status = "fail" if claimed else "skip"
        result.detail = str(exc).splitlines()[0]
        return result
    try:
        for inputs, expected in case.data_sets:
            with torch.no_grad():
                got = module(*[to_torch(x) for x in inputs])
            got = got if isinstance(got, tuple) else (got,)
            if len(got) != len(expected):
                raise AssertionError(f"{len(got)} outputs, expected {len(expected)}")
            for g, e in zip(got, expected):
                g = torch_to_numpy(g)
                e = onnx.numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else np.asarray(e)
                if g.shape != e.shape:
                    raise AssertionError(f"shape {g.shape} != expected {e.shape}")
                if e.dtype.kind in "fc" or e.dtype.name == "bfloat16":
                    np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=case.rtol, atol=case.atol)
                else:
                    np.testing.assert_array_equal(g, e)
    except Exception as exc:  # a failing case is data for the report, not a crash
        result.status = "fail"
        result.detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if result.status == "fail" and case.name in KNOWN_EXCEPTIONS:
        result.status, result.detail = "known", KNOWN_EXCEPTIONS[case.name]
    return result


def claimed_ops() -> set[str]:
    return {op for (domain, op) in registered() if domain == DEFAULT_DOMAIN}


def run(ops: set[str] | None = None) -> list[CaseResult]:
    ops = ops or claimed_ops()
    results = []
    claimed = claimed_ops()
    for case in collect_cases():
        op = case_op(case)
        if op == "expanded":
            node_ops = {n.op_type for n in case.model.graph.node}
            if not node_ops <= claimed or not node_ops & ops:
                continue
        elif op not in ops:
            continue
        results.append(run_case(case))
    return results


def summarize(results: list[CaseResult]) -> dict[str, Counter]:
    table: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        table[r.op][r.status] += 1
    return table


def markdown_table(results: list[CaseResult]) -> str:
    """Operator coverage as a markdown table: registered versions and backend-case outcomes."""
    table = summarize(results)
    impls = registered()
    lines = [
        "| operator | schema versions implemented | backend cases passed | known exceptions | skipped |",
        "|---|---|---:|---:|---:|",
    ]
    for (domain, op), impl in sorted(impls.items(), key=lambda kv: kv[0][1]):
        c = table.get(op, Counter())
        versions = ", ".join(map(str, impl.versions))
        lines.append(f"| {op} | {versions} | {c['pass']} | {c['known']} | {c['skip']} |")
    c = table.get("expanded", Counter())
    lines.append(f"| *(expanded function bodies)* | — | {c['pass']} | {c['known']} | {c['skip']} |")
    total = Counter(r.status for r in results)
    lines.append(f"| **total** | | **{total['pass']}** | {total['known']} | {total['skip']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--markdown"]:
        print(markdown_table(run(set(argv[1:]) or None)))
        return 0
    selected = set(argv) or None
    results = run(selected)
    table = summarize(results)
    print(f"{'op':28s} {'pass':>5s} {'fail':>5s} {'known':>5s} {'skip':>5s}")
    for op in sorted(table):
        c = table[op]
        print(f"{op:28s} {c['pass']:5d} {c['fail']:5d} {c['known']:5d} {c['skip']:5d}")
    total = Counter(r.status for r in results)
    print(f"{'TOTAL':28s} {total['pass']:5d} {total['fail']:5d} {total['known']:5d} {total['skip']:5d}")
    for r in results:
        if r.status in ("fail", "known") or (selected and r.status == "skip"):
            print(f"  {r.status.upper()} {r.name} (opset {r.opset}, {'float' if r.is_float else 'non-float'}): {r.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
