"""Models ending in post-processing the importer cannot run (NMS, control flow, custom ops):
the part before it imports and trains, the tail stays in the file as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ExportError, UnsupportedModelError
from compressor.inspection import inspect_module
from compressor.onnx_import import load_onnx, load_onnx_proto
from compressor.onnx_import.registry import lookup
from compressor.runtimes.onnxruntime_cpu import onnxruntime_session
from exporters import check_parity, export_onnx

ROOT = Path(__file__).resolve().parents[1]
BOXES = 64  # one box per position of the 8x8 feature map


def _detector_head(rng, nodes, inits):
    """x[N,3,8,8] -> conv1 -> Relu -> conv2 (1x1, 5 channels) -> boxes [N,64,4], scores [N,1,64];
    also boxes_flat [N*64,4] and the box count (Shape -> Gather, an int64 tensor) for the tail."""
    def init(name, array):
        inits.append(numpy_helper.from_array(array, name))

    init("conv1.weight", rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.4)
    init("conv1.bias", rng.standard_normal(6).astype(np.float32) * 0.1)
    init("conv2.weight", rng.standard_normal((5, 6, 1, 1)).astype(np.float32) * 0.4)
    init("conv2.bias", rng.standard_normal(5).astype(np.float32) * 0.1)
    init("shape_n5p", np.array([0, 5, BOXES], np.int64))
    init("shape_box4", np.array([-1, 4], np.int64))
    init("one", np.array([1], np.int64))
    nodes += [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["c2", "shape_n5p"], ["flat"], name="flatten"),
        helper.make_node("Split", ["flat"], ["box_t", "logit"], name="split", axis=1, split=[4, 1]),
        helper.make_node("Transpose", ["box_t"], ["boxes"], name="to_boxes", perm=[0, 2, 1]),
        helper.make_node("Sigmoid", ["logit"], ["scores"], name="sigmoid"),
        helper.make_node("Reshape", ["boxes", "shape_box4"], ["boxes_flat"], name="boxes_flat"),
        helper.make_node("Shape", ["boxes"], ["boxes_shape"], name="boxes_shape"),
        helper.make_node("Gather", ["boxes_shape", "one"], ["box_count"], name="box_count", axis=0),
    ]


def _model(nodes, inits, outputs, opsets=(("", 11),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], producer_name="tests")
    model.ir_version = 8
    return model


def nms_detector(seed: int = 0, scores_output: bool = False) -> onnx.ModelProto:
    """The head above, then NonMaxSuppression and a Gather of the kept boxes (the tail).

    scores_output: also declare the head's `scores` as a graph output (read by the tail too).
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    _detector_head(rng, nodes, inits)
    inits += [
        numpy_helper.from_array(np.array([20], np.int64), "max_per_class"),
        numpy_helper.from_array(np.array([0.3], np.float32), "iou"),
        numpy_helper.from_array(np.array([0.2], np.float32), "min_score"),
        numpy_helper.from_array(np.array([0], np.int64), "col_batch"),
        numpy_helper.from_array(np.array([2], np.int64), "col_box"),
    ]
    nodes += [
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_per_class", "iou", "min_score"], ["selected"], name="nms"),
        helper.make_node("Gather", ["selected", "col_batch"], ["sel_batch"], name="sel_batch", axis=1),
        helper.make_node("Gather", ["selected", "col_box"], ["sel_box"], name="sel_box", axis=1),
        helper.make_node("Mul", ["sel_batch", "box_count"], ["offset"], name="offset"),
        helper.make_node("Add", ["offset", "sel_box"], ["flat_index"], name="flat_index"),
        helper.make_node("Squeeze", ["flat_index"], ["kept"], name="kept", axes=[1]),
        helper.make_node("Gather", ["boxes_flat", "kept"], ["detections"], name="detections", axis=0),
    ]
    outputs = [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["K", 4])]
    if scores_output:
        outputs.insert(0, helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1, BOXES]))
    model = _model(nodes, inits, outputs)
    onnx.checker.check_model(model)
    return model


def write(tmp_path: Path, name: str, model: onnx.ModelProto) -> Path:
    path = tmp_path / name
    onnx.save_model(model, str(path))
    return path


def ort_run(model_or_path, feeds: dict, outputs: list[str] | None = None) -> list[np.ndarray]:
    """onnxruntime on a file, or on a ModelProto with `outputs` added as graph outputs."""
    if isinstance(model_or_path, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
        model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs or [])
        return onnxruntime_session(model.SerializeToString()).run(outputs, feeds)
    return onnxruntime_session(model_or_path).run(outputs, feeds)


def sample_input(seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((2, 3, 8, 8)).astype(np.float32))


def test_registry_cannot_run_nms_if_or_loop():
    # the tests below rely on these ops being outside the importer (checked, not assumed)
    for op in ("NonMaxSuppression", "If", "Loop"):
        assert lookup(op, "", 11) is None


def test_nms_detector_imports_its_head_and_records_the_tail(tmp_path):
    model = nms_detector()
    module = load_onnx(write(tmp_path, "det.onnx", model))
    tail = module.tail
    assert tail is not None
    assert tail.ops == ("NonMaxSuppression",)
    assert tail.nodes == ("nms", "sel_batch", "sel_box", "offset", "flat_index", "kept", "detections")
    assert tail.forced_by[0].startswith("node nms (NonMaxSuppression): not supported")
    # where the tail begins, in the order the tail first reads them
    assert tail.boundary == ("boxes", "scores", "box_count", "boxes_flat")
    assert module.output_names == ["boxes", "scores", "box_count", "boxes_flat"]
    assert module.graph_output_names == ["detections"] and tail.graph_outputs == ("detections",) and tail.outputs == ("detections",)
    assert set(module.weights) == {"conv1.weight", "conv2.weight"}
    # constants that only the tail reads are neither parameters nor buffers
    stored = set(module.onnx_parameters()) | set(module.onnx_buffers())
    assert not stored & {"max_per_class", "iou", "min_score", "col_batch", "col_box"}
    assert module.num_nodes == 10  # the head's nodes only


def test_module_outputs_match_onnxruntime_on_the_boundary(tmp_path):
    model = nms_detector()
    module = load_onnx(write(tmp_path, "det.onnx", model))
    x = sample_input()
    with torch.no_grad():
        got = module(x)
    want = ort_run(model, {"x": x.numpy()}, list(module.output_names))
    for name, g, w in zip(module.output_names, got, want):
        g = g.numpy()
        assert g.shape == w.shape, name
        if w.dtype.kind == "f":
            assert np.max(np.abs(g - w)) <= 1e-4 * np.max(np.abs(w)), name
        else:  # the box count is an int64 computed by Shape -> Gather: exactly equal
            assert g.dtype == w.dtype and np.array_equal(g, w), name
    assert int(got[2].item()) == BOXES


def test_pruned_export_keeps_the_tail_and_runs_whole(tmp_path):
    model = nms_detector()
    src = write(tmp_path, "det.onnx", model)
    module = load_onnx(src)
    with torch.no_grad():  # zero half of each conv weight (the larger-index half of the flat tensor)
        for name in module.weights:
            flat = module.parameter(name).view(-1)
            flat[flat.numel() // 2:] = 0.0
    x = sample_input()
    out = tmp_path / "pruned.onnx"
    result = export_onnx(module, out, parity_inputs=[x])
    parity = result.parity
    assert parity.max_relative_error < 1e-4
    assert set(parity.per_output) == {"boxes", "scores", "box_count", "boxes_flat"}
    assert parity.per_output["box_count"] == 0.0  # integers compared exactly

    exported = onnx.load(str(out))
    by_name = {n.name: n for n in exported.graph.node}
    originals = {n.name: n for n in model.graph.node}
    for label in module.tail.nodes:  # the tail is the original's, node for node
        assert by_name[label] == originals[label]
    written = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    assert np.count_nonzero(written["conv1.weight"]) <= written["conv1.weight"].size // 2 + 1
    for name in ("max_per_class", "iou", "min_score"):  # the tail's constants are kept as they were
        assert np.array_equal(written[name], numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name)))

    # the whole exported graph runs; its detections are the pruned module's boxes after NMS
    (detections,) = ort_run(out, {"x": x.numpy()})
    assert parity.tail_outputs == {"detections": list(detections.shape)}
    with torch.no_grad():
        boxes, scores, count, boxes_flat = module(x)
    tail_only = _tail_model(model)  # the same tail, run by onnxruntime on the module's boundary
    (expected,) = ort_run(tail_only, {"boxes": boxes.numpy(), "scores": scores.numpy(), "box_count": count.numpy(), "boxes_flat": boxes_flat.numpy()})
    assert detections.shape[0] > 0
    np.testing.assert_allclose(detections, expected, rtol=1e-5, atol=1e-6)
    # and pruning changed what the detector finds (the check above is not vacuous)
    with torch.no_grad():
        dense_boxes = load_onnx(src)(x)[0]
    assert not torch.allclose(dense_boxes, boxes)


def _tail_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The NMS tail alone, fed the boundary tensors as graph inputs."""
    tail_names = {"nms", "sel_batch", "sel_box", "offset", "flat_index", "kept", "detections"}
    nodes = [n for n in model.graph.node if n.name in tail_names]
    inputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("box_count", TensorProto.INT64, None),
        helper.make_tensor_value_info("boxes_flat", TensorProto.FLOAT, None),
    ]
    inits = [t for t in model.graph.initializer if t.name in {"max_per_class", "iou", "min_score", "col_batch", "col_box"}]
    graph = helper.make_graph(nodes, "tail", inputs, list(model.graph.output), inits)
    tail = helper.make_model(graph, opset_imports=list(model.opset_import))
    tail.ir_version = 8
    return tail


def test_unsupported_op_between_convs_is_refused_with_one_line(tmp_path):
    model = nms_detector()
    nodes = list(model.graph.node)
    relu = next(i for i, n in enumerate(nodes) if n.name == "relu1")
    nodes[relu] = helper.make_node("Mish2", ["c1"], ["r1"], name="mish", domain="com.example")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    path = write(tmp_path, "between.onnx", model)
    with pytest.raises(UnsupportedModelError) as err:
        load_onnx(path)
    message = str(err.value)
    assert "\n" not in message
    # every unsupported op is named, the tail's NMS too, and the weight that forbids the tail
    assert "Mish2 (domain com.example, opset 1)" in message and "NonMaxSuppression (domain ai.onnx, opset 11)" in message
    assert "node conv2 (Conv)" in message
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "inspect", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "Mish2" in result.stderr


def test_tail_matmul_with_a_constant_weight_is_refused(tmp_path):
    # box decoding by a constant matrix after NMS would be a prunable weight the import cannot train
    model = nms_detector()
    model.graph.initializer.append(numpy_helper.from_array(np.eye(4, dtype=np.float32), "decode"))
    model.graph.node.append(helper.make_node("MatMul", ["detections", "decode"], ["decoded"], name="decode_mm"))
    model.graph.output[0].name = "decoded"
    with pytest.raises(UnsupportedModelError, match=r"NonMaxSuppression .*node decode_mm \(MatMul\) comes after them"):
        load_onnx_proto(model, "decode")


def if_detector(seed: int = 0) -> onnx.ModelProto:
    """The head, then an If choosing the boxes or their negation by the best score: control flow
    whose branches read the head's tensors from the enclosing graph, not as inputs."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    _detector_head(rng, nodes, inits)
    inits.append(numpy_helper.from_array(np.array(0.6, np.float32), "threshold"))
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["boxes"], ["then_out"])], "then", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["N", BOXES, 4])])
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["boxes"], ["else_out"])], "else", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["N", BOXES, 4])])
    nodes += [
        helper.make_node("ReduceMax", ["scores"], ["best"], name="best", keepdims=0),
        helper.make_node("Greater", ["best", "threshold"], ["confident"], name="confident"),
        helper.make_node("If", ["confident"], ["chosen"], name="choose", then_branch=then_graph, else_branch=else_graph),
    ]
    outputs = [helper.make_tensor_value_info("chosen", TensorProto.FLOAT, ["N", BOXES, 4])]
    model = _model(nodes, inits, outputs)
    onnx.checker.check_model(model)
    return model


def test_control_flow_tail_reads_enclosing_tensors(tmp_path):
    model = if_detector()
    path = write(tmp_path, "if.onnx", model)
    module = load_onnx(path)
    assert module.tail.ops == ("If",) and module.tail.nodes == ("choose",)
    # `confident` is the If's input; `boxes` is read only inside its branches
    assert module.output_names == ["confident", "boxes"]
    x = sample_input()
    parity = check_parity(module, path, inputs=[x])
    assert parity.per_output["confident"] == 0.0 and parity.per_output["boxes"] < 1e-5
    assert parity.tail_outputs == {"chosen": [2, BOXES, 4]}
    with torch.no_grad():
        confident, boxes = module(x)
    (chosen,) = ort_run(path, {"x": x.numpy()})
    np.testing.assert_allclose(chosen, (boxes if bool(confident) else -boxes).numpy(), rtol=1e-5, atol=1e-6)


def custom_decoder(seed: int = 0) -> onnx.ModelProto:
    """The head, then a custom-domain Decode that neither the importer nor onnxruntime runs."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    _detector_head(rng, nodes, inits)
    inits.append(numpy_helper.from_array(np.array(["person", "car"]).astype(object), "labels"))  # strings: tail only
    nodes.append(helper.make_node("Decode", ["boxes", "scores", "labels"], ["decoded"], name="decode", domain="com.example"))
    outputs = [helper.make_tensor_value_info("decoded", TensorProto.FLOAT, ["K", 6])]
    return _model(nodes, inits, outputs, opsets=(("", 11), ("com.example", 1)))


def test_custom_op_tail_imports_and_matches_on_the_boundary(tmp_path):
    path = write(tmp_path, "custom.onnx", custom_decoder())
    module = load_onnx(path)  # the string initializer only the tail reads is not refused
    assert module.tail.ops == ("Decode",) and module.tail.forced_by == ("node decode (Decode): not supported (domain com.example, opset 1)",)
    assert module.output_names == ["boxes", "scores"]
    x = sample_input()
    parity = check_parity(module, path, inputs=[x], run_tail=False)
    assert parity.max_relative_error < 1e-5 and parity.tail_outputs is None
    with pytest.raises(ExportError) as err:  # the tail must run when asked to, and says why not in one line
        check_parity(module, path, inputs=[x])
    assert "tail kept as is" in str(err.value) and "(Decode)" in str(err.value) and "\n" not in str(err.value)


def test_graph_outputs_from_head_and_tail(tmp_path):
    model = nms_detector(scores_output=True)
    path = write(tmp_path, "both.onnx", model)
    module = load_onnx(path)
    # the head's graph output first, then the rest of the boundary; `scores` is listed once
    assert module.output_names == ["scores", "boxes", "box_count", "boxes_flat"]
    assert module.graph_output_names == ["scores", "detections"]
    assert module.tail.outputs == ("detections",)
    x = sample_input()
    out = tmp_path / "both_out.onnx"
    result = export_onnx(module, out, parity_inputs=[x])
    assert result.parity.max_relative_error < 1e-4
    scores_ort, detections = ort_run(out, {"x": x.numpy()})
    with torch.no_grad():
        scores = module(x)[0]
    np.testing.assert_allclose(scores_ort, scores.numpy(), rtol=1e-5, atol=1e-6)
    assert result.parity.tail_outputs == {"detections": list(detections.shape)}
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["scores", "detections"]


def test_inspect_and_check_on_a_detector(tmp_path):
    path = write(tmp_path, "det.onnx", nms_detector())
    report = inspect_module(load_onnx(path))
    assert report["tail"]["ops"] == ["NonMaxSuppression"] and len(report["tail"]["nodes"]) == 7
    cli = [sys.executable, str(ROOT / "cli.py")]
    result = subprocess.run([*cli, "inspect", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "tail kept as is: 7 nodes (NonMaxSuppression), trained on outputs boxes, scores, box_count, boxes_flat" in result.stdout
    result = subprocess.run([*cli, "check", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "max relative error" in result.stdout and "tail" in result.stdout


def test_a_node_the_builder_refuses_starts_a_tail(tmp_path):
    # Cast to STRING is a supported op with an attribute value the importer refuses
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    _detector_head(rng, nodes, inits)
    nodes.append(helper.make_node("Cast", ["scores"], ["score_text"], name="as_text", to=TensorProto.STRING))
    outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", BOXES, 4]),
               helper.make_tensor_value_info("score_text", TensorProto.STRING, ["N", 1, BOXES])]
    path = write(tmp_path, "text.onnx", _model(nodes, inits, outputs))
    module = load_onnx(path)  # the string output belongs to the tail: its type is not refused
    assert module.tail.ops == ("Cast",) and module.tail.forced_by == ("node as_text (Cast): Cast to string is not supported",)
    assert module.output_names == ["boxes", "scores"] and module.tail.outputs == ("score_text",)
    x = sample_input()
    parity = check_parity(module, path, inputs=[x])
    assert parity.max_relative_error < 1e-5 and parity.tail_outputs == {"score_text": [2, 1, BOXES]}


def test_a_refused_node_before_a_weight_keeps_the_builders_reason(tmp_path):
    model = nms_detector()
    relu = next(n for n in model.graph.node if n.name == "relu1")
    relu.CopyFrom(helper.make_node("Cast", ["c1"], ["r1"], name="text_cast", to=TensorProto.STRING))
    with pytest.raises(UnsupportedModelError) as err:
        load_onnx_proto(model, "m")
    message = str(err.value)
    assert message.startswith("m: unsupported operators: NonMaxSuppression (domain ai.onnx, opset 11); "
                              "node text_cast (Cast): Cast to string is not supported; node conv2 (Conv) comes after them")
