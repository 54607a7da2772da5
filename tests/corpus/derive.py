"""Corpus models derived from a third-party one by appending what deployment exporters append.

No wheel on the registry ships a detector with NonMaxSuppression in its graph (they download
such models at run time), so the corpus builds one the way ultralytics' `nms=True` export and
Paddle's detection export do: the third-party network unchanged, then box decoding, a second
input that rescales boxes to the original image (Paddle's `scale_factor`), and NonMaxSuppression.
The recipe is deterministic; the manifest pins the base model's sha256 and the derived file's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def yolov8_nms(base: onnx.ModelProto) -> onnx.ModelProto:
    """A YOLOv8 (output [B, 4+C, A]: cx, cy, w, h, class scores) with decoding and NMS in the graph.

    New input `scale_factor` [B, 2] (x and y scale of the original image over the network input).
    Outputs: `boxes` [B, A, 4] (x1, y1, x2, y2 in original pixels), `scores` [B, C, A], and
    `selected` [K, 3] (batch, class, box index) from NonMaxSuppression.
    """
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    (raw,) = [o.name for o in graph.output]
    num_classes = graph.output[0].type.tensor_type.shape.dim[1].dim_value - 4
    del graph.output[:]
    # [cx, cy, w, h] @ M = [x1, y1, x2, y2]
    to_corners = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float32)
    graph.initializer.extend([
        numpy_helper.from_array(to_corners, "post/to_corners"),
        numpy_helper.from_array(np.array([0], np.int64), "post/box_start"),
        numpy_helper.from_array(np.array([4], np.int64), "post/box_end"),  # also where the classes start
        numpy_helper.from_array(np.array([4 + num_classes], np.int64), "post/class_end"),
        numpy_helper.from_array(np.array([2], np.int64), "post/last_axis"),
        numpy_helper.from_array(np.array([1], np.int64), "post/one"),
        numpy_helper.from_array(np.array([100], np.int64), "post/max_boxes"),
        numpy_helper.from_array(np.array([0.45], np.float32), "post/iou"),
        numpy_helper.from_array(np.array([0.25], np.float32), "post/score"),
    ])
    graph.node.extend([
        helper.make_node("Transpose", [raw], ["post/anchors"], name="post/Transpose", perm=[0, 2, 1]),
        helper.make_node("Slice", ["post/anchors", "post/box_start", "post/box_end", "post/last_axis"], ["post/xywh"],
                         name="post/SliceBoxes"),
        helper.make_node("Slice", ["post/anchors", "post/box_end", "post/class_end", "post/last_axis"],
                         ["post/class_scores"], name="post/SliceScores"),
        helper.make_node("MatMul", ["post/xywh", "post/to_corners"], ["post/corners"], name="post/Corners"),
        helper.make_node("Concat", ["scale_factor", "scale_factor"], ["post/scale4"], name="post/Scale4", axis=1),
        helper.make_node("Unsqueeze", ["post/scale4", "post/one"], ["post/scale"], name="post/ScaleAxis"),
        helper.make_node("Div", ["post/corners", "post/scale"], ["boxes"], name="post/Rescale"),
        helper.make_node("Transpose", ["post/class_scores"], ["scores"], name="post/ScoresBCA", perm=[0, 2, 1]),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "post/max_boxes", "post/iou", "post/score"], ["selected"],
                         name="post/NMS", center_point_box=0),
    ])
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or batch.dim_value
    graph.input.append(helper.make_tensor_value_info("scale_factor", TensorProto.FLOAT, [batch_dim, 2]))
    graph.output.extend([
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch_dim, None, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch_dim, num_classes, None]),
        helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3]),
    ])
    model.doc_string = (model.doc_string + "\n" if model.doc_string else "") + \
        "Derived for the onnx-compressor corpus: box decoding, scale_factor and NonMaxSuppression appended."
    onnx.checker.check_model(model)
    return model


RECIPES = {"yolov8_nms": yolov8_nms}


def derive(recipe: str, base_path: Path) -> bytes:
    """The derived model's bytes (deterministic for a given base file and onnx version)."""
    return RECIPES[recipe](onnx.load(str(base_path))).SerializeToString()
