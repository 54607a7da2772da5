"""Tasks as plug-ins: the registry and its choices, lane geometry and losses, detection assignment
and loss, and both tasks' objectives measured with the official metrics on hand-made outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compressor.errors import ConfigError, DataError
from compressor.tasks import TASKS, TaskInputs, choose_task, resolve_task_name, task_for_data
from compressor.tasks.detection.assign import anchor_grid, assign, giou
from compressor.tasks.detection.decode import output_format
from compressor.tasks.detection.loss import detection_loss
from compressor.tasks.detection.metric import coco_map
from compressor.tasks.detection.objective import DetectionDistillation, DetectionObjective
from compressor.tasks.lane.geometry import TUSIMPLE_ROW_ANCHORS, LaneGeometry
from compressor.tasks.lane.losses import shape_loss, similarity_loss, softmax_focal_loss
from compressor.tasks.lane.metric import image_scores
from compressor.tasks.lane.objective import LaneDistillation, LaneObjective


# ---- the registry ------------------------------------------------------------------------------
def test_every_task_is_registered_and_owns_its_data_form():
    assert {"classification", "distillation", "lane", "detection"} <= set(TASKS.names())
    assert task_for_data("tusimple:/data/tusimple") == "lane"
    assert task_for_data("coco:ann.json,images") == "detection"
    assert task_for_data("COCO:ann.json") == "detection"
    assert task_for_data("mnist-csv:x.csv") is None and task_for_data("digits") is None and task_for_data(None) is None


def test_the_task_comes_from_task_then_data_form_then_metadata():
    assert resolve_task_name("auto", "coco:a.json", None)[0] == "detection"
    assert resolve_task_name("auto", "data.npz", "lane") == ("lane", "the model's metadata")
    assert resolve_task_name("auto", "data.npz", "no-such-task") == ("auto", "")
    assert resolve_task_name("lane", "images/", "detection") == ("lane", "--task")
    with pytest.raises(ConfigError, match="is detection data; --task lane cannot read it"):
        resolve_task_name("lane", "coco:a.json", None)


def test_label_free_tasks_accept_unlabelled_data_and_classification_does_not():
    inputs = TaskInputs(False, None, ["out"], [(1, 11, 8, 4)], (1, 3, 64, 128))
    assert choose_task("lane", inputs).objective(inputs).kind == "fidelity"
    with pytest.raises(DataError, match="needs labels"):
        choose_task("classification", inputs)


def test_a_new_task_is_one_registration():
    from compressor.objectives import ClassificationObjective
    from compressor.tasks.base import Task

    class Toy(Task):
        data_prefixes = ("toy",)

        def objective(self, inputs):
            return ClassificationObjective()

    with TASKS.registered("toy", Toy):
        assert task_for_data("toy:anything") == "toy"
        assert choose_task("toy", TaskInputs(True, 3, ["y"])).name == "toy"


# ---- lane geometry -----------------------------------------------------------------------------
def test_encode_then_decode_lands_on_the_cell_centre():
    geometry = LaneGeometry(griding_num=100, row_anchors=TUSIMPLE_ROW_ANCHORS, num_lanes=4)
    h = list(TUSIMPLE_ROW_ANCHORS)
    lane = [640] * len(h)  # a vertical lane at x = 640
    target = geometry.encode([lane], h)
    cell = 1280 / 99  # 12.93 px: x 640 is in cell floor(640 / 12.93) = 49
    assert target[:, 0].tolist() == [49] * len(h)
    assert (target[:, 1:] == 100).all()  # no lane in the other slots
    logits = F.one_hot(target, 101).permute(2, 0, 1).float()[None] * 50
    decoded = geometry.decode(logits)
    assert decoded[0, 0, 0] == round(49.5 * cell)  # 640
    assert (decoded[0, 1:] == -2).all()


def test_encode_skips_empty_lanes_fills_gaps_and_drops_lanes_beyond_the_slots():
    geometry = LaneGeometry(griding_num=10, row_anchors=(160, 170, 180, 190), num_lanes=2, frame_width=1280)
    h = [160, 170, 180, 190]
    empty, left, right, extra = [-2] * 4, [100, -2, 300, 400], [-2, 900, 950, 1000], [1200] * 4
    target = geometry.encode([empty, left, right, extra], h)
    # cells are 1280 / 9 = 142.2 px wide; the left lane's gap at y 170 is interpolated (x 200 -> cell 1)
    assert target[:, 0].tolist() == [0, 1, 2, 2]
    assert target[:, 1].tolist() == [10, 6, 6, 7]  # absent at 160, then 900 / 142.2 = 6.3, 950 -> 6, 1000 -> 7


def test_decoded_lanes_with_two_points_or_fewer_are_dropped_and_others_interpolate_to_h_samples():
    geometry = LaneGeometry(griding_num=10, row_anchors=(160, 180, 200), num_lanes=2)
    xs = np.array([[100.0, 120.0, 140.0], [-2.0, 50.0, 60.0]])
    lanes = geometry.to_h_samples(xs, [160, 170, 180, 190, 200, 210])
    assert lanes == [[100, 110, 120, 130, 140, -2]]


def test_lane_geometry_refuses_an_output_that_is_not_row_anchors():
    with pytest.raises(DataError, match="row-anchor output"):
        LaneGeometry.from_output((1, 1000), {})
    with pytest.raises(DataError, match="names 3 row anchors but its output has 8 rows"):
        LaneGeometry.from_output((1, 11, 8, 4), {"lane_row_anchors": "1,2,3"})
    assert LaneGeometry.from_output((1, 101, 56, 4), {}).row_anchors == TUSIMPLE_ROW_ANCHORS


# ---- lane losses -------------------------------------------------------------------------------
def test_focal_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0]]).reshape(1, 3, 1, 1)
    target = torch.tensor([[[0]]])
    p = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0)[0]  # 0.8438
    assert float(softmax_focal_loss(logits, target)) == pytest.approx(-(1 - p) ** 2 * math.log(p), rel=1e-5)
    assert float(softmax_focal_loss(logits, target, gamma=0)) == pytest.approx(float(F.cross_entropy(logits, target)))


def test_similarity_and_shape_losses_vanish_on_continuous_straight_lanes():
    same_rows = torch.randn(2, 11, 1, 4).expand(2, 11, 6, 4)
    assert float(similarity_loss(same_rows)) == 0
    # expected positions 1, 2, 3, ... down the rows: second differences are zero
    logits = torch.full((1, 11, 5, 1), -30.0)
    for row in range(5):
        logits[0, row + 1, row, 0] = 30.0
    assert float(shape_loss(logits, 10)) == pytest.approx(0, abs=1e-6)
    logits[0, :, 2, 0] = -30.0
    logits[0, 8, 2, 0] = 30.0  # a kink at row 2
    assert float(shape_loss(logits, 10)) > 1


# ---- lane objectives ---------------------------------------------------------------------------
def _lane_batch(geometry, lanes_per_image):
    h = list(geometry.row_anchors)
    cls = torch.stack([geometry.encode(lanes, h) for lanes in lanes_per_image])
    max_lanes = max(len(lanes) for lanes in lanes_per_image)
    padded = torch.full((len(lanes_per_image), max_lanes, len(h)), -2.0)
    for i, lanes in enumerate(lanes_per_image):
        for k, lane in enumerate(lanes):
            padded[i, k] = torch.tensor(lane, dtype=torch.float32)
    counts = torch.tensor([[len(lanes), len(h)] for lanes in lanes_per_image])
    return {"cls": cls, "lanes": padded, "h_samples": torch.tensor(h, dtype=torch.float32).expand(len(cls), -1), "counts": counts}


def test_lane_objective_scores_perfect_logits_with_the_official_metric():
    geometry = LaneGeometry(griding_num=100, row_anchors=TUSIMPLE_ROW_ANCHORS, num_lanes=4)
    n = len(TUSIMPLE_ROW_ANCHORS)
    lanes = [[int(300 + 2 * k) for k in range(n)], [int(900 - 3 * k) for k in range(n)]]
    labels = _lane_batch(geometry, [lanes, lanes[:1]])
    perfect = F.one_hot(labels["cls"], 101).permute(0, 3, 1, 2).float() * 50
    objective = LaneObjective(geometry)
    acc = objective.new_accumulator()
    objective.accumulate(acc, perfect, labels, None)
    scores = objective.finalize(acc)
    assert scores["accuracy"] == 1.0 and scores["fp"] == 0 and scores["fn"] == 0
    # no lane predicted: each row where both are absent still counts (here none), so accuracy 0, FN 1
    empty = torch.zeros_like(perfect)
    empty[:, 100] = 50
    acc = objective.new_accumulator()
    objective.accumulate(acc, empty, labels, None)
    empty_scores = objective.finalize(acc)
    assert (empty_scores["accuracy"], empty_scores["fp"], empty_scores["fn"]) == (0.0, 0.0, 1.0)
    assert empty_scores["loss"] > scores["loss"]


def test_lane_distillation_agrees_with_itself_and_penalises_a_shifted_student():
    geometry = LaneGeometry(griding_num=100, row_anchors=TUSIMPLE_ROW_ANCHORS, num_lanes=4)
    n = len(TUSIMPLE_ROW_ANCHORS)
    labels = _lane_batch(geometry, [[[500] * n, [700] * n]])
    teacher = F.one_hot(labels["cls"], 101).permute(0, 3, 1, 2).float() * 10
    objective = LaneDistillation(geometry)
    acc = objective.new_accumulator()
    objective.accumulate(acc, teacher, None, teacher)
    assert objective.finalize(acc)["lane_agreement"] == 1.0 and objective.finalize(acc)["kl"] == pytest.approx(0, abs=1e-6)
    shifted = torch.roll(teacher, shifts=3, dims=1)  # 3 cells = 39 px right: beyond the 20 px threshold
    acc = objective.new_accumulator()
    objective.accumulate(acc, shifted, None, teacher)
    assert objective.finalize(acc)["lane_agreement"] < 0.1
    assert float(objective.loss(shifted, None, teacher)) > float(objective.loss(teacher, None, teacher))


def test_image_scores_is_the_metric_the_objective_uses():
    h = [160, 170, 180]
    assert image_scores([[10, 20, 30]], [[10, 20, 30]], h) == (1.0, 0.0, 0.0)


# ---- detection ---------------------------------------------------------------------------------
def test_anchor_grid_matches_yolo_heads():
    centres, strides = anchor_grid(8400, 640, 640)
    assert centres.shape == (8400, 2) and strides[:6400].eq(8).all() and strides[-400:].eq(32).all()
    assert centres[0].tolist() == [4.0, 4.0] and centres[6400].tolist() == [8.0, 8.0]
    assert anchor_grid(2100, 320, 320)[0].shape == (2100, 2)
    with pytest.raises(DataError, match="matches no stride set"):
        anchor_grid(1000, 320, 320)


def test_assignment_takes_anchors_inside_each_object_and_never_leaves_one_without():
    centres, strides = anchor_grid(1344, 256, 256)
    gt = torch.tensor([[100.0, 100.0, 160.0, 160.0], [20.0, 20.0, 30.0, 30.0]])  # the second: 10 px, smaller than a cell
    pred = torch.cat([centres - 16, centres + 16], 1)
    owner, quality = assign(pred, centres, strides, gt)
    first = torch.nonzero(owner == 0).squeeze(1)
    assert 1 <= len(first) <= 10
    inside = (centres[first] > gt[0, :2]).all(1) & (centres[first] < gt[0, 2:]).all(1)
    assert inside.all()
    assert (owner == 1).sum() >= 1  # the tiny object still has its nearest anchor
    assert (quality[owner >= 0] >= 0).all()


def test_giou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # IoU 1/7; hull 9, union 7: GIoU = 1/7 - 2/9
    assert float(giou(a, b)) == pytest.approx(1 / 7 - 2 / 9)


def _perfect_detections(num_classes=3, size=64):
    """A single-tensor output [1, A, 4 + C] with two objects predicted exactly, and its labels."""
    centres, strides = anchor_grid(84, size, size)  # 64x64: 64 + 16 + 4 anchors
    out = torch.zeros(1, len(centres), 4 + num_classes)
    out[0, :, :2] = centres
    out[0, :, 2:4] = 4.0
    out[0, :, 4:] = 1e-4
    boxes = torch.tensor([[8.0, 8.0, 24.0, 32.0], [30.0, 40.0, 60.0, 60.0]])
    classes = torch.tensor([2, 0])
    for k, (box, cls) in enumerate(zip(boxes, classes)):
        anchor = int(((centres - (box[:2] + box[2:]) / 2) ** 2).sum(1).argmin())
        out[0, anchor, :2] = (box[:2] + box[2:]) / 2
        out[0, anchor, 2:4] = box[2:] - box[:2]
        out[0, anchor, 4 + cls] = 0.9
    scale = torch.tensor([[2.0, 1.5]])  # the original image is 128 x 96
    original = torch.cat([boxes[:, :2] * scale, (boxes[:, 2:] - boxes[:, :2]) * scale], 1)
    labels = {"boxes": boxes[None], "original": original[None], "classes": classes[None], "crowd": torch.zeros(1, 2, dtype=torch.long),
              "size": torch.tensor([[128.0, 96.0]]), "scale": scale}
    return out, labels


def test_detection_objective_reports_pycocotools_map_in_original_pixels():
    out, labels = _perfect_detections()
    objective = DetectionObjective(output_format([tuple(out.shape)]), (64, 64))
    acc = objective.new_accumulator()
    objective.accumulate(acc, out, labels, None)
    scores = objective.finalize(acc)
    assert scores["map50_95"] == pytest.approx(1.0) and scores["map50"] == pytest.approx(1.0)
    # the same detections given to pycocotools directly
    truth = {"images": [{"id": 1, "width": 128, "height": 96}],
             "annotations": [{"id": k + 1, "image_id": 1, "category_id": int(c) + 1, "bbox": labels["original"][0, k].tolist(),
                              "area": float(labels["original"][0, k, 2] * labels["original"][0, k, 3]), "iscrowd": 0}
                             for k, c in enumerate(labels["classes"][0].tolist())],
             "categories": [{"id": k + 1, "name": str(k)} for k in range(3)]}
    detections = [{"image_id": 1, "category_id": int(c) + 1, "bbox": labels["original"][0, k].tolist(), "score": 0.9}
                  for k, c in enumerate(labels["classes"][0].tolist())]
    assert coco_map(truth, detections)["map50_95"] == pytest.approx(scores["map50_95"])
    # a wrong class on one object halves the mean over the two classes present
    wrong = out.clone()
    anchor = int(wrong[0, :, 6].argmax())
    wrong[0, anchor, 6], wrong[0, anchor, 5] = 1e-4, 0.9
    acc = objective.new_accumulator()
    objective.accumulate(acc, wrong, labels, None)
    assert objective.finalize(acc)["map50"] == pytest.approx(0.5)


def test_detection_loss_prefers_the_right_boxes_and_its_gradient_reaches_the_outputs():
    out, labels = _perfect_detections()
    objective = DetectionObjective(output_format([tuple(out.shape)]), (64, 64))
    noisy = out.clone()
    noisy[..., :4] += torch.randn(noisy[..., :4].shape, generator=torch.Generator().manual_seed(0)) * 6
    noisy[..., 4:] = 0.3
    noisy.requires_grad_(True)
    assert float(objective.loss(out, labels)) < float(objective.loss(noisy, labels).detach())
    objective.loss(noisy, labels).backward()
    assert noisy.grad.abs().sum() > 0


def test_detection_loss_ignores_crowd_regions_and_padding():
    out, labels = _perfect_detections()
    centres, strides = anchor_grid(84, 64, 64)
    boxes, scores = out[..., :4].clone(), out[..., 4:]
    boxes = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)
    crowd = {**labels, "crowd": torch.ones(1, 2, dtype=torch.long)}
    padding = {**labels, "classes": torch.full((1, 2), -1)}
    assert float(detection_loss(boxes, scores, crowd, centres, strides)) == pytest.approx(
        float(detection_loss(boxes, scores, padding, centres, strides)))


def test_detection_distillation_reads_an_ultralytics_layout_and_agrees_with_itself():
    out, _ = _perfect_detections()
    ultralytics = out.permute(0, 2, 1).contiguous()  # [1, 4 + C, A], as ultralytics exports
    fmt = output_format([tuple(ultralytics.shape)])
    assert fmt.kind == "single" and fmt.anchor_axis == 2 and fmt.num_classes == 3
    objective = DetectionDistillation(fmt, (64, 64))
    acc = objective.new_accumulator()
    objective.accumulate(acc, ultralytics, None, ultralytics)
    assert objective.finalize(acc)["map50_agreement"] == pytest.approx(1.0)
    moved = ultralytics.clone()
    moved[:, 0] += 12  # every box 12 px to the right
    assert float(objective.loss(moved, None, ultralytics)) > float(objective.loss(ultralytics, None, ultralytics))


def test_mirroring_a_batch_twice_gives_back_its_labels():
    from compressor.tasks.mirroring import Mirroring, lane_mirror, mirror_boxes, width_axis

    geometry = LaneGeometry(griding_num=100, row_anchors=TUSIMPLE_ROW_ANCHORS, num_lanes=4)
    n = len(TUSIMPLE_ROW_ANCHORS)
    labels = _lane_batch(geometry, [[[200 + 3 * k for k in range(n)], [-2] * 10 + [900] * (n - 10)]])
    always = torch.Generator().manual_seed(0)
    mirror = Mirroring(width_axis=-1, mirror_labels=lane_mirror(geometry), probability=1.0)
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    once_x, once = mirror(x, labels, always)
    assert once_x[0, 0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    # the right lane (x 900 -> 379) is now the left one, in slot 0
    assert once["cls"][0, 20, 0] == int(379 / (1280 / 99)) and once["cls"][0, 0, 0] == 100
    # the mirrored frame's labels, left to right
    flipped_lanes = {**once, "lanes": torch.where(labels["lanes"] >= 0, 1279 - labels["lanes"], labels["lanes"]).flip(1)}
    twice_x, twice = mirror(once_x, flipped_lanes, always)
    assert torch.equal(twice_x, x) and torch.equal(twice["cls"], labels["cls"])
    out, det = _perfect_detections()
    boxes = det["boxes"].clone()
    _, mirrored_det = Mirroring(-1, mirror_boxes, probability=1.0)(torch.zeros(1, 3, 64, 64), det, always)
    assert mirrored_det["boxes"][0, 0].tolist() == [64 - boxes[0, 0, 2].item(), boxes[0, 0, 1].item(),
                                                    64 - boxes[0, 0, 0].item(), boxes[0, 0, 3].item()]
    assert torch.equal(det["boxes"], boxes)  # the batch given is not modified
    # channels last: the width is the axis before the channels; a label-free batch flips images only
    nhwc = torch.arange(24.0).reshape(1, 2, 4, 3)
    assert width_axis((1, 2, 4, 3)) == -2 and width_axis((1, 3, 64, 64)) == -1
    flipped, none = Mirroring(width_axis((1, 2, 4, 3)), mirror_boxes, probability=1.0)(nhwc, None, always)
    assert none is None and torch.equal(flipped, nhwc.flip(-2))
    # half of a large batch, drawn from the generator: the same draws for the same seed
    big = torch.zeros(1000, 1, 2, 2)
    big[:, :, :, 0] = 1.0
    half = Mirroring(-1, mirror_boxes)
    a, _ = half(big, None, torch.Generator().manual_seed(5))
    b, _ = half(big, None, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and 400 < int((a[:, 0, 0, 1] == 1).sum()) < 600


# ---- labels and the dense model together (--distill-weight) ----------------------------------
def test_teacher_assisted_loss_is_the_labels_plus_the_weighted_distillation_and_metrics_stay_supervised():
    from compressor.objectives.teacher_assisted import TeacherAssisted

    out, labels = _perfect_detections()
    fmt = output_format([tuple(out.shape)])
    inputs = TaskInputs(True, None, ["out"], [tuple(out.shape)], (1, 3, 64, 64))
    task = choose_task("detection", inputs)
    teacher = task.teacher_objective(inputs)
    assert isinstance(teacher, DetectionDistillation)  # a label-free task distils its own way
    supervised = DetectionObjective(fmt, (64, 64))
    blended = TeacherAssisted(supervised, teacher, 0.5)
    student = out.clone()
    student[..., :4] += 3.0
    expected = float(supervised.loss(student, labels)) + 0.5 * float(teacher.loss(student, None, out))
    assert float(blended.loss(student, labels, out)) == pytest.approx(expected, rel=1e-6)
    assert float(teacher.loss(student, None, out)) > 0.01  # the distillation term is not zero here
    assert blended.needs_teacher and not blended.metrics_need_teacher
    assert blended.primary_metric == "map50_95" and blended.metric_specs() == supervised.metric_specs()
    acc = blended.new_accumulator()
    blended.accumulate(acc, out, labels, None)  # evaluation: no teacher
    assert blended.finalize(acc)["map50_95"] == pytest.approx(1.0)
    # a classifier's task has no distillation of its own: the generic one (KL on the logits)
    classifier = choose_task("classification", TaskInputs(True, 10, ["logits"], [(10,)], (1, 1, 28, 28)))
    assert classifier.teacher_objective(TaskInputs(True, 10, ["logits"], [(10,)])).name == "distillation"
    with pytest.raises(ValueError):
        TeacherAssisted(teacher, supervised, 1.0)  # the first must be the labelled one


def test_distill_weight_in_a_run(tmp_path):
    from pathlib import Path

    from compressor import compress

    example = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"
    quiet = dict(progress=False, log=lambda m: None, method="magnitude", sparsity=0.9, epochs=1, limit=400,
                 stages=("load", "data", "plan", "prune", "verify", "export", "report"))
    report = compress(example, output=tmp_path / "a", distill_weight=1.0, **quiet)
    assert any("1 x distillation from the dense model" in note for note in report["notes"])
    assert report["metrics"]["primary"] == "accuracy" and report["metrics"]["compressed"]["accuracy"] > 0.5
    with pytest.raises(ConfigError, match="--distill-weight must be 0 or more"):
        compress(example, output=tmp_path / "b", distill_weight=-1.0, **quiet)
