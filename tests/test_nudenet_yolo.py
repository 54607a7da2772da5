"""The ultralytics YOLOv8n shipped in the nudenet 3.4.2 wheel: its DFL decoding conv must stay dense.

Its 1x16x1x1 Conv holds 0..15; pruned like a learned layer, the predicted box sizes collapse
from ~25 px to under 1 px on a real photo while the whole-output cosine stays at 0.93.
"""

from __future__ import annotations

import pytest
import torch

from compressor.onnx_import import load_onnx
from compressor.objectives.fidelity import output_fidelity
from compressor.sensitivity import layer_sensitivity
from compressor.sparsity import apply_masks, compute_masks, parse_pattern, plan_layers
from compressor.sparsity.fixed_weights import find_fixed_weights
from nudenet_corpus import nudenet_yolo_path, sample_photos

DFL = "model.22.dfl.conv.weight"
BUDGET = 0.1  # the quadrature error budget of the pruned layers together (sensitivity.within_budget)


@pytest.fixture(scope="module")
def yolo_path():
    return nudenet_yolo_path()


def test_dfl_conv_is_found(yolo_path):
    module = load_onnx(yolo_path)
    assert module.weights[DFL].shape == (1, 16, 1, 1)
    assert find_fixed_weights(module) == {
        DFL: "fixed weights: arange 0..15 along input channels (distribution-focal decoding: the expectation over softmax bins)"}


def box_size_error(module, keep_dense, pattern, china, dense_out, top) -> tuple[float, float]:
    """(median relative error of w and h at the top anchors, whole-output cosine) after one-shot pruning."""
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_dense=keep_dense)
    params = module.onnx_parameters()
    saved = {n: params[n].detach().clone() for n in plan.targets}
    apply_masks(params, compute_masks({n: params[n] for n in plan.targets}, module.weights, plan, pattern))
    with torch.no_grad():
        out = module(china)
        for n, value in saved.items():
            params[n].copy_(value)
    ref = dense_out[0, 2:4, top]
    error = ((out[0, 2:4, top] - ref).abs() / ref).flatten().median()
    return float(error), output_fidelity(out, dense_out)[0].cosine


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["unstructured", "nm:2:4"])
def test_protected_layers_keep_box_sizes_on_a_real_photo(yolo_path, spec, capsys):
    module = load_onnx(yolo_path).eval()
    china, calibration = sample_photos()
    with torch.no_grad():
        dense_out = module(china)
    top = dense_out[0, 4:].max(0).values.topk(20).indices  # the 20 anchors the dense model scores highest
    pattern = parse_pattern(spec)

    unprotected, cos_unprotected = box_size_error(module, {}, pattern, china, dense_out, top)
    fixed = find_fixed_weights(module)
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_dense=fixed)
    sens = layer_sensitivity(module, plan, pattern, [calibration])
    keep = {**fixed, **sens.keep_dense(), **sens.within_budget(BUDGET)}
    only_fixed, _ = box_size_error(module, fixed, pattern, china, dense_out, top)
    protected, cos_protected = box_size_error(module, keep, pattern, china, dense_out, top)
    with capsys.disabled():
        print(f"\n{spec}: box-size error unprotected {unprotected:.3f} (cosine {cos_unprotected:.3f}), "
              f"DFL dense {only_fixed:.3f}, DFL + sensitivity ({len(sens.keep_dense())} flagged) + budget "
              f"{BUDGET} ({len(keep)} dense) {protected:.3f} (cosine {cos_protected:.3f}); sensitivity {sens.seconds:.0f} s")

    assert DFL in fixed and DFL in keep
    assert unprotected > 0.10  # the bug this guards against
    assert protected < 0.10


def _boxes_on(path, image: torch.Tensor) -> torch.Tensor:
    """The file's output on `image`, run by onnxruntime: [4+C, anchors], rows cx, cy, w, h, classes."""
    from compressor.runtimes.onnxruntime_cpu import onnxruntime_session

    session = onnxruntime_session(path)
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: image.numpy()})[0][0])


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_one_shot_pipeline_keeps_box_sizes_on_a_real_photo(yolo_path, pattern, tmp_path):
    """`compress` end to end (one-shot, calibration photos, default protections), then the exported
    file in onnxruntime on china.jpg: w and h at the 20 best anchors within 10% of the dense file's."""
    from PIL import Image

    from compressor import compress

    china, calibration = sample_photos()
    photos = tmp_path / "calibration"
    photos.mkdir()
    for k, image in enumerate(calibration):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(photos / f"{k}.png")
    options = {"sparsity": 0.5} if pattern == "unstructured" else {"pattern": "2:4"}
    report = compress(yolo_path, data=str(photos), epochs=0, val_fraction=0.5, output=tmp_path / "out",
                      progress=False, latency_runs=3, log=lambda message: None, **options)
    assert DFL in report["plan"]["skipped"] and "distribution-focal" in report["plan"]["skipped"][DFL]
    assert report["sparsity"] > 0.1  # the protections leave most of the model pruned, not nothing
    dense, pruned = _boxes_on(yolo_path, china), _boxes_on(tmp_path / "out" / "model.onnx", china)
    top = dense[4:].max(0).values.topk(20).indices
    error = ((pruned[2:4, top] - dense[2:4, top]).abs() / dense[2:4, top]).flatten().median()
    print(f"{pattern}: sparsity {report['sparsity']:.1%}, {len(report['plan']['skipped'])} layers dense, "
          f"median box-size error {float(error):.3f}")
    assert float(error) < 0.10
