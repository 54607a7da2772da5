"""Lane and detection models through the whole pipeline: data in the official formats, the task
found from the data form or the model's metadata, training with and without labels, export, and a
detector whose graph ends in NonMaxSuppression compressed with its post-processing intact."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from cli import main
from compressor import compress
from compressor.metadata import set_metadata
from compressor.tasks.detection.synthetic import generate_coco
from compressor.tasks.lane.synthetic import generate_tusimple
from deploy.zoo.export import export_reference
from deploy.zoo.models.ufld import UFLD
from deploy.zoo.models.yolo import YOLO

pytestmark = pytest.mark.slow
ANCHORS = "160,240,320,400,480,560,640,710"
QUIET = {"progress": False, "log": lambda message: None, "latency_seconds": 0.05, "latency_runs": 3}


@pytest.fixture(scope="module")
def lanes(tmp_path_factory):
    root = tmp_path_factory.mktemp("tusimple")
    generate_tusimple(root, 16, seed=3)
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return generate_coco(root, 16, seed=3, size=(96, 80))


def _save(model: torch.nn.Module, path, shape, metadata: dict) -> str:
    torch.manual_seed(0)
    export_reference(model.eval(), path, shape, opset=17)
    proto = onnx.load(str(path))
    set_metadata(proto, metadata)
    onnx.save(proto, str(path))
    return str(path)


@pytest.fixture(scope="module")
def ufld_file(tmp_path_factory):
    torch.manual_seed(0)
    model = UFLD(griding_num=10, num_row_anchors=8, num_lanes=4, input_size=(64, 128), width=8, hidden=32)
    return _save(model, tmp_path_factory.mktemp("ufld") / "ufld.onnx", (1, 3, 64, 128),
                 {"task": "lane", "lane_row_anchors": ANCHORS, "preprocess": "imagenet"})


@pytest.fixture(scope="module")
def yolo_file(tmp_path_factory):
    torch.manual_seed(0)
    return _save(YOLO(num_classes=6, width=4, depth=1, input_size=(64, 64)), tmp_path_factory.mktemp("yolo") / "yolo.onnx",
                 (1, 3, 64, 64), {"preprocess": "imagenet"})


def test_a_lane_model_compresses_on_tusimple_data_with_the_official_metric(ufld_file, lanes, tmp_path):
    report = compress(ufld_file, method="magnitude", pattern="2:4", data=f"tusimple:{lanes}", epochs=0, retrain_epochs=1,
                      batch_size=4, output=tmp_path / "out", **QUIET)
    assert report["task"] == "lane"
    assert set(report["metrics"]["compressed"]) >= {"accuracy", "fp", "fn"}
    assert 0 <= report["metrics"]["dense"]["accuracy"] <= 1
    assert any("Task lane, from the data form tusimple:" in n for n in report["notes"])
    assert any("Preprocessing 'imagenet' comes from the model's metadata" in n for n in report["notes"])
    # the lane task prunes FC2 too: the last layer holds the weights (deploy.md section 7)
    fc2 = [layer for layer in report["layers"] if layer["shape"] == [32, 11 * 8 * 4] or layer["shape"] == [11 * 8 * 4, 32]]
    assert fc2 and fc2[0]["sparsity"] == pytest.approx(0.5)
    assert report["export_parity"] < 1e-4


def test_a_lane_model_without_labels_is_taught_by_the_dense_model(ufld_file, lanes, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, image in enumerate(sorted(lanes.rglob("*.jpg"))):
        (folder / f"{k}.jpg").write_bytes(image.read_bytes())
    report = compress(ufld_file, method="magnitude", sparsity=0.5, data=str(folder), epochs=0, retrain_epochs=1,
                      batch_size=4, output=tmp_path / "out", **QUIET)
    assert report["task"] == "lane"  # from the model's metadata
    assert report["metrics"]["kind"] == "fidelity" and report["metrics"]["primary"] == "lane_agreement"
    assert report["metrics"]["dense"]["lane_agreement"] == 1.0  # the dense model agrees with itself


def test_a_detector_compresses_on_coco_data_with_pycocotools_map(yolo_file, shapes, tmp_path):
    report = compress(yolo_file, method="magnitude", pattern="channel", target_flops=0.5, data=f"coco:{shapes}", epochs=0,
                      retrain_epochs=1, batch_size=4, output=tmp_path / "out", **QUIET)
    assert report["task"] == "detection" and report["metrics"]["primary"] == "map50_95"
    assert set(report["metrics"]["compressed"]) >= {"map50_95", "map50"}
    assert report["slim"]["parity"]["max_relative_error"] < 1e-4
    assert any("Training augmentation: the detection task's own (mirroring" in n for n in report["notes"])
    plain = compress(yolo_file, method="magnitude", pattern="channel", target_flops=0.5, data=f"coco:{shapes}", epochs=0,
                     retrain_epochs=1, batch_size=4, output=tmp_path / "plain", augment=False, **QUIET)
    assert not any("Training augmentation" in n for n in plain["notes"])
    # the same run but for the mirrored half-batches: the trained weights differ
    assert plain["trace"][-1]["train_loss"] != report["trace"][-1]["train_loss"]


def _with_nms(path, out_path) -> str:
    """The detector with box corners, class scores as [B, C, A] and NonMaxSuppression appended; the
    graph's only output is NonMaxSuppression's `selected` [K, 3] (as end-to-end exports give)."""
    model = onnx.load(str(path))
    graph = model.graph
    raw = graph.output[0].name
    del graph.output[:]
    corners = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float32)
    graph.initializer.extend([numpy_helper.from_array(corners, "nms/corners"),
                              numpy_helper.from_array(np.array([0], np.int64), "nms/zero"),
                              numpy_helper.from_array(np.array([4], np.int64), "nms/four"),
                              numpy_helper.from_array(np.array([10], np.int64), "nms/end"),
                              numpy_helper.from_array(np.array([2], np.int64), "nms/axis"),
                              numpy_helper.from_array(np.array([20], np.int64), "nms/max"),
                              numpy_helper.from_array(np.array([0.5], np.float32), "nms/iou"),
                              numpy_helper.from_array(np.array([0.05], np.float32), "nms/score")])
    graph.node.extend([
        helper.make_node("Slice", [raw, "nms/zero", "nms/four", "nms/axis"], ["nms/xywh"], name="nms/boxes_xywh"),
        helper.make_node("Slice", [raw, "nms/four", "nms/end", "nms/axis"], ["nms/bac"], name="nms/scores_bac"),
        helper.make_node("MatMul", ["nms/xywh", "nms/corners"], ["boxes"], name="nms/to_corners"),
        helper.make_node("Transpose", ["nms/bac"], ["scores"], name="nms/scores_bca", perm=[0, 2, 1]),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "nms/max", "nms/iou", "nms/score"], ["selected"], name="nms/nms"),
    ])
    graph.output.append(helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return str(out_path)


def test_a_detector_ending_in_nms_compresses_with_its_post_processing_intact(yolo_file, shapes, tmp_path):
    path = _with_nms(yolo_file, tmp_path / "yolo_nms.onnx")
    report = compress(path, method="slr", sparsity=0.8, data=f"coco:{shapes}", epochs=1, retrain_epochs=1, batch_size=4,
                      output=tmp_path / "out", **QUIET)
    assert report["task"] == "detection" and report["sparsity"] == pytest.approx(0.8, abs=0.01)
    written = onnx.load(str(tmp_path / "out" / "model.onnx"))
    tail = [(n.op_type, list(n.input), list(n.output)) for n in written.graph.node if n.name.startswith("nms/")]
    original = [(n.op_type, list(n.input), list(n.output)) for n in onnx.load(path).graph.node if n.name.startswith("nms/")]
    assert tail == original and [o.name for o in written.graph.output] == ["selected"]
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    (selected,) = session.run(None, {session.get_inputs()[0].name: np.random.default_rng(0).random((1, 3, 64, 64), np.float32)})
    assert selected.ndim == 2 and selected.shape[1] == 3 and selected.dtype == np.int64


def test_an_ultralytics_detector_distils_on_its_raw_head_outputs(tmp_path):
    from nudenet_corpus import nudenet_yolo_path

    path = nudenet_yolo_path()
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image
    from sklearn.datasets import load_sample_image

    for k, name in enumerate(["china.jpg", "flower.jpg"]):
        image = Image.fromarray(load_sample_image(name))
        for j in range(3):
            image.rotate(10 * j).resize((320, 320)).save(folder / f"{k}{j}.jpg")
    report = compress(path, method="magnitude", sparsity=0.3, task="detection", data=str(folder), epochs=0,
                      retrain_epochs=1, batch_size=2, output=tmp_path / "out", **QUIET)
    assert report["metrics"]["primary"] == "map50_agreement"
    # these photos hold nothing the dense model is sure of: its best few detections stand in
    assert report["metrics"]["dense"]["map50_agreement"] == pytest.approx(1.0)
    assert report["metrics"]["dense"]["loss"] == pytest.approx(0.0, abs=1e-5)
    assert 0.0 <= report["metrics"]["compressed"]["map50_agreement"] <= 1.0
    assert report["export_parity"] < 1e-4


def test_zoo_training_exports_the_inference_graph_with_its_task_in_the_metadata(shapes, tmp_path):
    from deploy.zoo.task_models import train_network

    out = tmp_path / "yolo.onnx"
    result = train_network("yolo", f"coco:{shapes}", out, epochs=1, batch_size=8, log=lambda line: None)
    assert result["train"] + result["val"] == 16 and "val_map50_95" in result["final"]
    model = onnx.load(str(out))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["onnx_compressor.task"] == "detection" and metadata["onnx_compressor.preprocess"] == "imagenet"
    assert [o.name for o in model.graph.output] == ["output"]


def test_zoo_ufld_leaves_its_auxiliary_branch_out_of_the_export(lanes, tmp_path):
    from deploy.zoo.task_models import train_network

    out = tmp_path / "ufld.onnx"
    train_network("ufld", f"tusimple:{lanes}", out, epochs=1, batch_size=8, log=lambda line: None)
    model = onnx.load(str(out))
    assert len(model.graph.output) == 1
    assert not any("aux" in t.name for t in model.graph.initializer)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((1, 3, 128, 352), np.float32)})
    assert logits.shape == (1, 51, 56, 4)


def test_cli_zoo_generate_and_bad_task_data_in_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["zoo", "generate", "coco", str(tmp_path / "c"), "--count", "3"])
    assert result.exit_code == 0 and "coco:" in result.output
    annotations = tmp_path / "c" / "annotations" / "instances_synthetic.json"
    assert len(json.loads(annotations.read_text())["images"]) == 3
    model = tmp_path / "m.onnx"
    _save(YOLO(num_classes=6, width=4, depth=1, input_size=(64, 64)), model, (1, 3, 64, 64), {})
    for spec, message in [(f"coco:{tmp_path / 'missing.json'}", "missing.json"), ("tusimple:", "tusimple: needs"),
                          (f"tusimple:{tmp_path / 'c'}", "row-anchor output")]:
        result = runner.invoke(main, [str(model), "--data", spec, "-o", str(tmp_path / "o")])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, [str(model), "--data", f"coco:{annotations}", "--task", "lane", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot read it" in result.output


def test_metadata_preprocessing_leaves_npz_data_as_it_is(yolo_file, tmp_path):
    data = tmp_path / "inputs.npz"
    np.savez(data, x=np.random.default_rng(0).random((8, 3, 64, 64), np.float32))
    report = compress(yolo_file, method="magnitude", sparsity=0.5, data=str(data), epochs=0, retrain_epochs=0,
                      output=tmp_path / "out", **QUIET)
    assert not any("Preprocessing 'imagenet'" in n for n in report["notes"])
    assert report["metrics"]["kind"] == "fidelity"
