"""Every third-party model of the corpus through every step a user takes.

inspect, check (round trip with onnxruntime parity), one-shot magnitude at 50%, 2:4, and a short
label-free run on calibration photos. Each pruned file must pass the full onnx.checker, match
the module in onnxruntime, hold exact zeros where pruned and the dense values everywhere else.
The models come from tests/corpus (the cache is rebuilt offline from downloaded wheels); one
that cannot be fetched is skipped with the reason. docs/models.md records the results.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from cli import main
from compressor import compress
from compressor.onnx_import import load_onnx
from exporters import stored_tensors
from corpus_models import corpus_entries, corpus_entry, corpus_model

# few random and calibration samples: the corpus checks that every step works and is exact, not quality
QUIET = dict(progress=False, latency_runs=3, random_samples=8, sensitivity_samples=2, log=lambda message: None)
# When set, each model's step results are written here (one JSON file per model) for docs/models.md
RESULTS_DIR = os.environ.get("COMPRESSOR_CORPUS_RESULTS")
PARITY = 1e-4
# CI runs the "ci" tier; COMPRESSOR_CORPUS_TIER=all adds the "extended" one (hundreds of MB of folded
# weights, or 1024x1024 inputs: minutes per step on 2 cores), as `make corpus-extended` does.
TIERS = ("ci", "extended") if os.environ.get("COMPRESSOR_CORPUS_TIER") == "all" else ("ci",)
IDS = [entry["id"] for entry in corpus_entries() if entry.get("tier", "ci") in TIERS]


def _dynamic(shape) -> bool:
    return any(not (isinstance(d, int) and d > 0) for d in shape[1:])


def _shape_options(entry: dict, module) -> dict:
    """--input-shape for inputs whose spatial size nothing in the file fixes (from the manifest)."""
    if entry.get("input_shapes"):  # non-image inputs: the sizes the package feeds, from the manifest
        return {"input_shapes": {n: list(s) for n, s in entry["input_shapes"].items()}}
    metadata = {p.key for p in module.onnx_model.metadata_props}
    shapes = {}
    for name in module.input_names:
        declared = module.input_shapes.get(name, [])
        if _dynamic(declared) and "imgsz" not in metadata:
            h, w = entry["image_size"] or (320, 320)
            shapes[name] = [1, h, w, 3] if "nhwc-input" in entry["features"] else [1, 3, h, w]
    return {"input_shapes": shapes} if shapes else {}


def _stored(path: Path) -> dict[str, np.ndarray]:
    return stored_tensors(onnx.load(str(path)))


def _full_check(original: Path, exported: Path) -> None:
    try:
        onnx.checker.check_model(str(original), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        onnx.checker.check_model(str(exported))  # the input itself fails the full check: the basic one
        return
    onnx.checker.check_model(str(exported), full_check=True)


def _check_pruned(report: dict, original: Path, dense_module, pattern: str, trained: bool = False) -> None:
    exported = Path(report["outputs"]["onnx"])
    assert report["export_parity"] <= PARITY, report["export_parity"]
    _full_check(original, exported)
    stored = _stored(exported)
    dense = {n: p.detach().numpy() for n, p in dense_module.weight_parameters().items()}
    pruned_layers = 0
    for layer in report["layers"]:
        name = layer["name"]
        got = stored[name] if name in stored else None
        assert got is not None, f"{name} is not stored in the exported file"
        want = dense[name]
        kept = got != 0
        if not trained:
            np.testing.assert_array_equal(got[kept], want[kept])  # survivors unchanged, bit for bit
        if layer["target"] is None:
            if not trained:
                np.testing.assert_array_equal(got, want)  # layers kept dense are untouched
            continue
        pruned_layers += 1
        if pattern == "2:4":
            info = dense_module.weights[name]
            groups = np.moveaxis(got, info.reduction_axis, -1)
            groups = groups.reshape(*groups.shape[:-1], -1, 4)
            assert (np.count_nonzero(groups, axis=-1) <= 2).all(), name
        else:
            assert layer["sparsity"] >= layer["target"] - 1.0 / got.size - 1e-9, name
    assert pruned_layers > 0 or report["plan"]["skipped"], "nothing pruned and nothing explained"


def _multi_input_npz(module, entry: dict, photos: Path, target: Path) -> Path:
    """Calibration data for a model with several inputs: the photos for its image input (at the
    manifest's size), ones for other float inputs (scale factors), and for a model with no image
    input seeded random features at the manifest's shapes."""
    import torch
    from PIL import Image

    from compressor.onnx_import.inputs import input_dtypes

    count = 8
    dtypes = input_dtypes(module)
    rng = np.random.default_rng(0)
    arrays = {}
    for name in module.input_names:
        numpy_dtype = torch.empty((), dtype=dtypes[name]).numpy().dtype
        declared = module.input_shapes[name]
        if entry.get("input_shapes"):
            shape = [count, *entry["input_shapes"][name][1:]]
        else:
            shape = [count] + [d if isinstance(d, int) and d > 0 else 1 for d in declared[1:]]
        if len(declared) == 4 and dtypes[name].is_floating_point and not entry.get("input_shapes"):
            h, w = entry["image_size"]
            files = sorted(photos.glob("*.png"))[:count]
            arrays[name] = np.stack([np.asarray(Image.open(f).convert("RGB").resize((w, h)), np.float32).transpose(2, 0, 1) / 255
                                     for f in files])
        elif dtypes[name].is_floating_point and entry.get("input_shapes"):
            arrays[name] = rng.standard_normal(shape).astype(numpy_dtype)
        elif dtypes[name].is_floating_point:
            arrays[name] = np.ones(shape, dtype=numpy_dtype)  # scale factors: the image as the network sees it
        else:
            arrays[name] = np.zeros(shape, dtype=numpy_dtype)
    np.savez(target, **arrays)
    return target


def _check_refused(runner, path: Path, inspected, entry: dict, record) -> None:
    lines = inspected.stderr.strip().splitlines()
    assert inspected.exit_code == 2 and len(lines) == 1 and "unsupported operators" in lines[0], inspected.stderr
    for command in (["check", str(path)], [str(path), "--sparsity", "0.5", "-q", "-o", str(path.parent / "never")]):
        started = time.perf_counter()
        result = runner.invoke(main, command)
        assert result.exit_code == 2 and result.stderr.strip() == lines[0], result.stderr
        assert time.perf_counter() - started < 30  # refused before any work
    assert not (path.parent / "never").exists()
    record("inspect", "refused: " + lines[0][lines[0].index("unsupported operators"):][:200])


def _summary(report: dict) -> str:
    """'sparsity 41.2%, 3 kept dense, parity 2e-06' for docs/models.md."""
    kept = len(report["plan"]["skipped"])
    return f"sparsity {report['sparsity']:.1%}, {kept} kept dense, parity {report['export_parity']:.0e}"


@pytest.fixture(scope="module")
def calibration_photos(tmp_path_factory) -> Path:
    """Sixteen 160x160 crops of scikit-learn's two sample photos: real images, no labels."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    folder = tmp_path_factory.mktemp("photos")
    k = 0
    for photo in ("china.jpg", "flower.jpg"):
        image = load_sample_image(photo)
        for top in (0, 120, 240):
            for left in (0, 160, 320):
                if k < 16:
                    Image.fromarray(image[top:top + 160, left:left + 160]).save(folder / f"{k:02d}.png")
                    k += 1
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("model_id", IDS)
def test_corpus_model_every_step(model_id, tmp_path, calibration_photos):
    entry = corpus_entry(model_id)
    path = corpus_model(model_id)
    before = path.read_bytes()
    runner = CliRunner()
    results: dict[str, str] = {}
    started = time.perf_counter()

    def record(step: str, text: str) -> None:
        results[step] = text
        if RESULTS_DIR:
            Path(RESULTS_DIR).mkdir(parents=True, exist_ok=True)
            results["seconds"] = f"{time.perf_counter() - started:.0f}"
            (Path(RESULTS_DIR) / f"{model_id}.json").write_text(json.dumps(results, indent=1))

    result = runner.invoke(main, ["inspect", "--json", str(path)])
    if entry.get("expected") == "refused":  # the manifest says why; every command must refuse up front, in one line
        _check_refused(runner, path, result, entry, record)
        return
    assert result.exit_code == 0, result.stderr
    inspected = json.loads(result.stdout)
    assert inspected["totals"]["layers"] > 0
    record("inspect", f"{inspected['totals']['layers']} layers" + (" + tail" if inspected.get("tail") else ""))

    module = load_onnx(path)
    shape_options = _shape_options(entry, module)
    shape_args = [f"--input-shape={n}:{'x'.join(map(str, s))}" for n, s in shape_options.get("input_shapes", {}).items()]
    result = runner.invoke(main, ["check", str(path), "-o", str(tmp_path / "check.onnx"), *shape_args])
    assert result.exit_code == 0, result.stderr
    parity = float(result.stdout.split("max relative error ")[1].split()[0])
    assert parity <= PARITY
    _full_check(path, tmp_path / "check.onnx")
    record("check", f"parity {parity:.1e}")

    for pattern, options in (("unstructured", {"sparsity": 0.5}), ("2:4", {"pattern": "2:4"})):
        report = compress(path, output=tmp_path / pattern.replace(":", "of"), epochs=0, **options, **shape_options, **QUIET)
        _check_pruned(report, path, module, pattern)
        summary = _summary(report)
        skipped = report["plan"]["skipped"].values()
        if report["sparsity"] == 0 and skipped and all(r.startswith("fixed weights") for r in skipped):
            # every weight is a stand-in constant (the model-zoo "light" files): the protection is right,
            # and the pruning itself is exercised with the protections switched off
            forced = compress(path, output=tmp_path / ("forced-" + pattern.replace(":", "of")), epochs=0, keep_fixed=False,
                              sensitivity="off", **options, **shape_options, **QUIET)
            _check_pruned(forced, path, module, pattern)
            assert forced["sparsity"] > 0 and forced["plan"]["targets"]  # layers a pattern cannot serve (grouped convs at 2:4) stay dense
            summary += f"; forced (--prune-fixed --sensitivity off): {_summary(forced)}"
        record(pattern, summary)

    # a short label-free run: the dense model teaches the pruned one on real photos
    data_options = {"data": str(calibration_photos), "limit": 8, "val_fraction": 0.25, "batch_size": 4, "epochs": 1}
    if len(module.input_names) > 1:  # an .npz with one array per input: photos for the image, ones for the rest
        data_options["data"] = str(_multi_input_npz(module, entry, calibration_photos, tmp_path / "calibration.npz"))
    elif shape_options:
        (shape,) = shape_options["input_shapes"].values()
        h, w = (shape[1], shape[2]) if "nhwc-input" in entry["features"] else (shape[2], shape[3])
        data_options["preprocess"] = f"size={h}x{w}"  # the size comes from the data options, not --input-shape
    report = compress(path, output=tmp_path / "distil", sparsity=0.5, **data_options, **QUIET)
    assert report["metrics"]["kind"] == "fidelity" and report["data"]["train"] == 6
    _check_pruned(report, path, module, "unstructured", trained=True)  # survivors trained: zeros stay, values move
    record("label-free", _summary(report))
    assert path.read_bytes() == before  # the input is never modified
