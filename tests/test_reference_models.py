"""Reference networks (deploy.zoo.models) and their ONNX export: PyTorch vs ONNX Runtime round trips."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy.zoo.export import ExportError, export_reference, main as export_main
from deploy.zoo.models import REFERENCE_MODELS, build_reference

TINY = ["resnet18-tiny", "yolo-tiny", "ufld-tiny"]
EXPORTS = [("torchscript", 13), ("torchscript", 17), ("dynamo", 18), ("dynamo", 20)]
# Export times on the 2-core CI box: torchscript 0.3-2 s; dynamo (torch.export + decompositions +
# onnxscript optimizer) ~3-4 s for ufld-tiny, ~4-9 s for resnet18-tiny, ~8-12 s for yolo-tiny.
ROUND_TRIPS = [
    pytest.param(
        name,
        exporter,
        opset,
        id=f"{name}-{exporter}-{opset}",
        marks=[pytest.mark.slow] if exporter == "dynamo" and name != "ufld-tiny" else [],
    )
    for name in TINY
    for exporter, opset in EXPORTS
]
RTOL, ATOL = 1e-4, 1e-5


def _op_types(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _check_op_types(name: str, model: onnx.ModelProto) -> None:
    ops = _op_types(model)
    if name.startswith("yolo"):
        for op in ("Resize", "Concat", "Sigmoid", "Mul", "MaxPool", "Conv"):
            assert ops[op] > 0, f"{op} missing: {dict(ops)}"
        # C2f's torch.split: both exporters keep it as Split (Slice only comes from box decoding).
        assert ops["Split"] > 0, f"Split missing: {dict(ops)}"
        strided = [
            n
            for n in model.graph.node
            if n.op_type == "Conv"
            and any(a.name == "strides" and list(a.ints) == [2, 2] for a in n.attribute)
        ]
        assert strided, "no stride-2 Conv"
    elif name.startswith("ufld"):
        assert ops["Gemm"] + ops["MatMul"] >= 2, dict(ops)
        assert ops["Flatten"] + ops["Reshape"] >= 1, dict(ops)
    elif name.startswith("resnet"):
        assert ops["Conv"] == 20 and ops["Add"] == 8 and ops["MaxPool"] == 1, dict(ops)
        assert ops["Gemm"] + ops["MatMul"] == 1, dict(ops)


@pytest.mark.parametrize(("name", "exporter", "opset"), ROUND_TRIPS)
def test_onnx_round_trip(name, exporter, opset, reference_onnx, reference_model):
    path = reference_onnx(name, exporter, opset)
    model = onnx.load(str(path))
    default_opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert default_opset == [opset]
    assert len(model.graph.input) == 1 and len(model.graph.output) == 1
    assert _dims(model.graph.input[0])[0] == "batch"
    assert _dims(model.graph.output[0])[0] == "batch"
    _check_op_types(name, model)

    # Exported at batch 1; run at batch 2 to exercise the dynamic batch.
    shape = (2, *REFERENCE_MODELS[name].input_shape[1:])
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        expected = reference_model(name)(x).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # tiny graphs; avoids spinning threads on a busy CI box
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", TINY)
def test_reference_weights_deterministic_and_well_scaled(name, reference_model):
    # ``a`` is the session-cached model, already exported by the round trips above when run in
    # file order: exporting must not have changed it.
    a, b, c = reference_model(name), build_reference(name, seed=0), build_reference(name, seed=1)
    x = torch.randn(REFERENCE_MODELS[name].input_shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ya, yb, yc = a(x), b(x), c(x)
    assert not a.training and not b.training
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    assert not torch.allclose(ya, yc)
    assert torch.isfinite(ya).all()

    # BatchNorm is not an identity: random affine and running stats.
    bns = [m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))
        assert not torch.allclose(bn.bias, torch.zeros_like(bn.bias))
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))

    if name.startswith("yolo"):
        # [N, A, 4 + nc]: decoded boxes (pixels) and class probabilities (not saturated).
        scores = ya[..., 4:]
        assert 0.02 < scores.std().item() < 0.4
        assert 0.05 < scores.mean().item() < 0.95
        b.head.decode = False  # b is private to this test
        with torch.no_grad():
            logits = b(x)
        assert 0.1 < logits.std().item() < 10
    else:
        assert 0.05 < ya.std().item() < 10, ya.std().item()


def test_reference_output_shapes():
    expected = {
        "resnet18": (1, 1000),
        "resnet18-tiny": (1, 10),
        "yolo": (1, 80 * 80 + 40 * 40 + 20 * 20, 84),
        "yolo-tiny": (1, 8 * 8 + 4 * 4 + 2 * 2, 8),
        "ufld": (1, 101, 56, 4),
        "ufld-tiny": (1, 11, 8, 4),
        "lenet5": (1, 10),
        "lenet300": (1, 10),
        "small-resnet": (1, 10),
    }
    assert set(expected) == set(REFERENCE_MODELS)
    for name, (builder, input_shape) in REFERENCE_MODELS.items():
        with torch.device("meta"):  # shapes and parameter counts without allocating the big ones
            model = builder()
            out = model(torch.empty(input_shape))
        assert tuple(out.shape) == expected[name], name
    with torch.device("meta"):
        resnet18 = REFERENCE_MODELS["resnet18"].builder()
        ufld = REFERENCE_MODELS["ufld"].builder()
    assert sum(p.numel() for p in resnet18.parameters()) == 11_689_512  # torchvision resnet18
    n_ufld = sum(p.numel() for p in ufld.parameters())
    assert 61.1e6 < n_ufld < 61.3e6  # spec: about 61.2M
    assert tuple(ufld.cls[0].weight.shape) == (2048, 1800)
    assert tuple(ufld.cls[2].weight.shape) == (22624, 2048)


def _macs(model: torch.nn.Module, input_shape) -> int:
    """Multiply-accumulates of the Conv2d and Linear layers for one sample (shape-only, meta device)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output[0].numel() * k
        elif isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.device("meta"):
            model(torch.empty(input_shape))
    finally:
        for h in handles:
            h.remove()
    return total


def test_reference_compute():
    """Compute budgets (deterministic stand-in for wall-clock: the tiny models run in a few ms)."""
    macs = {}
    for name, (builder, input_shape) in REFERENCE_MODELS.items():
        with torch.device("meta"):
            macs[name] = _macs(builder(), input_shape)
    for name in TINY:
        assert macs[name] < 20e6, (name, macs[name])
    assert 1.80e9 < macs["resnet18"] < 1.83e9  # ResNet-18 at 224x224: 1.81 GMAC
    assert 8.3e9 < macs["ufld"] < 8.5e9  # spec: ~8.3 GMAC trunk + ~0.05 GMAC FCs
    assert 3e9 < macs["yolo"] < 5e9  # YOLOv8n-like at 640 (8.7 GFLOPs for the real one)


def test_export_cli_and_atomic_write(tmp_path, capsys):
    out = tmp_path / "sub" / "resnet.onnx"
    rc = export_main(["--model", "resnet18-tiny", "--opset", "13", "--exporter", "torchscript", "-o", str(out)])
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    onnx.checker.check_model(str(out))
    assert [p.name for p in out.parent.iterdir()] == ["resnet.onnx"]

    # A failing export raises ExportError and leaves neither the destination nor a temp file.
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot trace this")

    bad = tmp_path / "bad" / "m.onnx"
    with pytest.raises(ExportError, match="cannot trace this"):
        export_reference(Broken(), bad, (1, 3, 8, 8), 13, "torchscript")
    assert list(bad.parent.iterdir()) == []
    with pytest.raises(ValueError):
        export_reference(Broken(), bad, (1, 3, 8, 8), 13, "jit")
