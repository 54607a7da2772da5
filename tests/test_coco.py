"""COCO reader, pycocotools mAP, detector-output decoding and the synthetic COCO generator."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from compressor.errors import DataError
from compressor.tasks.detection.coco import CocoBox, parse_coco_spec, read_coco
from compressor.tasks.detection.decode import (
    batched_nms,
    box_iou,
    decode,
    nms,
    output_format,
    to_coco_detections,
)
from compressor.tasks.detection.metric import coco_map
from compressor.tasks.detection.synthetic import generate_coco

# A crowd region as COCO stores it: uncompressed RLE over a 40x30 image (counts alternate 0s and 1s, column-major).
CROWD_RLE = {"size": [30, 40], "counts": [310, 20, 10, 20, 10, 20, 740]}


def ground_truth() -> dict:
    """Four images (one without objects), categories 1, 3 and 7 (gaps), one crowd region."""
    return {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 11, "file_name": "b.jpg", "width": 40, "height": 30},
            {"id": 12, "file_name": "empty.jpg", "width": 40, "height": 30},
            {"id": 13, "file_name": "c.jpg", "width": 40, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [20, 5, 12, 12], "area": 144, "iscrowd": 0},
            {"id": 3, "image_id": 11, "category_id": 7, "bbox": [5, 5, 20, 15], "area": 300, "iscrowd": 0},
            {"id": 4, "image_id": 11, "category_id": 1, "bbox": [10, 10, 3, 20], "area": 60,
             "iscrowd": 1, "segmentation": CROWD_RLE},
            {"id": 5, "image_id": 13, "category_id": 3, "bbox": [1, 1, 30, 25], "area": 750, "iscrowd": 0},
            {"id": 6, "image_id": 13, "category_id": 3, "bbox": [25, 20, 10, 8], "area": 80, "iscrowd": 0},
        ],
        "categories": [
            {"id": 7, "name": "seven"},
            {"id": 1, "name": "one"},
            {"id": 3, "name": "three"},
        ],
    }


def write_dataset(folder: Path, data: dict, images: Path | None = None, name: str = "ann.json") -> Path:
    """The JSON in `folder` and each image as a tiny JPEG in `images` (folder/images by default)."""
    images = images if images is not None else folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for entry in data["images"]:
        Image.new("RGB", (entry["width"], entry["height"])).save(images / entry["file_name"])
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def one_line_error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- reader ---------------------------------------------------------------------------------------


def test_read_coco_fixture(tmp_path):
    path = write_dataset(tmp_path, ground_truth())
    ds = read_coco(path)
    assert ds.path == path and ds.image_dir == tmp_path / "images"
    assert [im.id for im in ds.images] == [10, 11, 12, 13]
    assert ds.boxes[12] == []
    assert ds.category_ids == [1, 3, 7]
    assert ds.class_index == {1: 0, 3: 1, 7: 2}
    assert [c["name"] for c in ds.categories] == ["one", "three", "seven"]
    crowd = [b for b in ds.boxes[11] if b.iscrowd]
    assert crowd == [CocoBox(category_id=1, bbox=(10.0, 10.0, 3.0, 20.0), iscrowd=1, area=60.0)]
    assert ds.raw["annotations"][3]["segmentation"] == CROWD_RLE
    assert ds.image_path(ds.images[2]) == tmp_path / "images" / "empty.jpg"


def test_read_coco_default_image_folder(tmp_path):
    # COCO's own layout: ROOT/annotations/instances_val.json with ROOT/val/.
    coco_root = tmp_path / "coco"
    path = write_dataset(coco_root / "annotations", ground_truth(), coco_root / "val", "instances_val.json")
    assert read_coco(path).image_dir == coco_root / "val"
    # <json folder>/images.
    path = write_dataset(tmp_path / "flat", ground_truth())
    assert read_coco(path).image_dir == tmp_path / "flat" / "images"
    # Otherwise the json's own folder; an explicit folder wins.
    same = tmp_path / "same"
    path = write_dataset(same, ground_truth(), same)
    assert read_coco(path).image_dir == same
    assert read_coco(path, images=tmp_path / "flat" / "images").image_dir == tmp_path / "flat" / "images"


def test_read_coco_bad_inputs(tmp_path):
    assert "not found" in one_line_error(lambda: read_coco(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json")
    assert "not a JSON" in one_line_error(lambda: read_coco(tmp_path / "bad.json"))

    def broken(change) -> Path:
        data = ground_truth()
        change(data)
        return write_dataset(tmp_path / "broken", data)

    path = broken(lambda d: d.pop("categories"))
    assert "'categories'" in one_line_error(lambda: read_coco(path))
    path = broken(lambda d: d["annotations"][1]["bbox"].__setitem__(2, 0))
    assert "annotation 2" in one_line_error(lambda: read_coco(path))
    path = broken(lambda d: d["annotations"][2].__setitem__("bbox", [1, 2, 3]))
    assert "annotation 3" in one_line_error(lambda: read_coco(path))
    path = broken(lambda d: d["annotations"][0].__setitem__("image_id", 99))
    message = one_line_error(lambda: read_coco(path))
    assert "annotation 1" in message and "99" in message
    path = broken(lambda d: d["annotations"][0].__setitem__("iscrowd", "yes"))
    assert "annotation 1" in one_line_error(lambda: read_coco(path))
    path = broken(lambda d: d["annotations"][4].__setitem__("category_id", 2))
    assert "annotation 5" in one_line_error(lambda: read_coco(path))

    path = write_dataset(tmp_path / "missing", ground_truth())
    (tmp_path / "missing" / "images" / "b.jpg").unlink()
    (tmp_path / "missing" / "images" / "c.jpg").unlink()
    message = one_line_error(lambda: read_coco(path))
    assert "2 of the 4" in message and "b.jpg" in message
    assert len(read_coco(path, check_images=False).images) == 4


def test_parse_coco_spec():
    assert parse_coco_spec("a/instances.json") == (Path("a/instances.json"), None)
    assert parse_coco_spec("a/instances.json,imgs") == (Path("a/instances.json"), Path("imgs"))
    assert "coco:" in one_line_error(lambda: parse_coco_spec(""))


# --- metric ---------------------------------------------------------------------------------------


def detections() -> list[dict]:
    """Hits, near misses, duplicates, a detection on the crowd region and one on the empty image."""
    return [
        {"image_id": 10, "category_id": 1, "bbox": [2, 3, 10, 8], "score": 0.9},
        {"image_id": 10, "category_id": 1, "bbox": [3, 3, 10, 8], "score": 0.6},
        {"image_id": 10, "category_id": 3, "bbox": [21, 6, 12, 11], "score": 0.8},
        {"image_id": 10, "category_id": 7, "bbox": [0, 0, 5, 5], "score": 0.3},
        {"image_id": 11, "category_id": 7, "bbox": [6, 4, 18, 16], "score": 0.7},
        {"image_id": 11, "category_id": 1, "bbox": [10, 11, 3, 8], "score": 0.95},
        {"image_id": 12, "category_id": 3, "bbox": [5, 5, 10, 10], "score": 0.85},
        {"image_id": 13, "category_id": 3, "bbox": [2, 2, 28, 22], "score": 0.5},
        {"image_id": 13, "category_id": 3, "bbox": [24, 21, 10, 8], "score": 0.75},
        {"image_id": 13, "category_id": 3, "bbox": [10, 10, 5, 5], "score": 0.2},
    ]


def pycocotools_direct(gt_path: Path, dets: list[dict]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(s) for s in evaluator.stats[:3]]


def test_coco_map_matches_pycocotools(tmp_path):
    gt = ground_truth()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({**gt, "info": {}}))  # pycocotools' loadRes needs an 'info' entry
    before = copy.deepcopy(gt)
    ours = coco_map(gt, detections())
    assert gt == before
    expected = pycocotools_direct(gt_path, detections())
    assert [ours["map50_95"], ours["map50"], ours["map75"]] == pytest.approx(expected, abs=1e-12)
    assert 0.0 < ours["map50_95"] < ours["map50"] < 1.0


def test_coco_map_edge_cases():
    gt = ground_truth()
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in gt["annotations"] if not a["iscrowd"]
    ]
    assert coco_map(gt, perfect) == {"map50_95": 1.0, "map50": 1.0, "map75": 1.0}
    assert coco_map(gt, []) == {"map50_95": 0.0, "map50": 0.0, "map75": 0.0}
    assert coco_map({**gt, "annotations": []}, detections()) == {"map50_95": 0.0, "map50": 0.0, "map75": 0.0}
    # Annotations without area, iscrowd or id are completed on a copy only.
    bare = copy.deepcopy(gt)
    for ann in bare["annotations"]:
        ann.pop("area"), ann.pop("iscrowd"), ann.pop("id"), ann.pop("segmentation", None)
    kept = copy.deepcopy(bare)
    # The crowd box is now an ordinary object nobody found: class 1 has recall 1/2 at precision 1, so
    # AP 51/101 (101 recall points, 0 to 0.5 reached); classes 3 and 7 stay at 1.
    bare_map = coco_map(bare, perfect)
    assert bare_map["map50"] == bare_map["map50_95"] == pytest.approx((51 / 101 + 2) / 3)
    assert bare == kept
    assert "lacks" in one_line_error(lambda: coco_map(gt, [{"image_id": 10, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    assert "not in the ground truth" in one_line_error(
        lambda: coco_map(gt, [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    )


def test_coco_map_by_hand():
    gt = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 20, "height": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    # Detection [0, 0, 10, 6]: intersection 60, union 100 + 60 - 60 = 100, IoU exactly 0.6.
    # COCOeval matches when IoU >= threshold, so of its thresholds 0.50, 0.55, ..., 0.95 the first
    # three (0.50, 0.55, 0.60) see a true positive (AP 1: precision 1 at every recall) and the other
    # seven a false positive (AP 0): mAP@[.5:.95] = 3 / 10 = 0.3, mAP@.5 = 1, mAP@.75 = 0.
    result = coco_map(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 6], "score": 0.5}])
    assert result == pytest.approx({"map50_95": 0.3, "map50": 1.0, "map75": 0.0})


# --- decoding -------------------------------------------------------------------------------------


def test_nms_and_batched_nms():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.8, 0.9, 0.7])
    # Boxes 0 and 1 overlap at IoU 90/110 = 0.82: the better (1) stays; 2 is apart.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [1, 0, 2]
    assert batched_nms(boxes, scores, torch.tensor([2, 2, 2]), 0.5).tolist() == [1, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_nms_is_greedy():
    """The round-based NMS keeps exactly what box-by-box greedy NMS keeps."""

    def greedy(boxes, scores, threshold):
        kept = []
        for i in scores.argsort(descending=True).tolist():
            if all(box_iou(boxes[i : i + 1], boxes[j : j + 1]).item() <= threshold for j in kept):
                kept.append(i)
        return kept

    generator = torch.Generator().manual_seed(0)
    for count, threshold in [(120, 0.5), (150, 0.7), (150, 0.3), (80, 0.0)]:
        corner = torch.rand(count, 2, generator=generator) * 200
        boxes = torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 80], dim=1)
        scores = torch.rand(count, generator=generator)
        assert nms(boxes, scores, threshold).tolist() == greedy(boxes, scores, threshold)


def test_output_format():
    fmt = output_format([(1, 8400, 84)])
    assert (fmt.kind, fmt.num_classes, fmt.anchor_axis) == ("single", 80, 1)
    fmt = output_format([(1, 84, 8400)])
    assert (fmt.kind, fmt.num_classes, fmt.anchor_axis) == ("single", 80, 2)
    assert output_format([(1, 84, 8400)], num_classes=80).anchor_axis == 2
    assert output_format([("batch", 8400, 84)]).anchor_axis == 1
    fmt = output_format([(1, 8400, 4), (1, 80, 8400)])
    assert (fmt.kind, fmt.num_classes, fmt.anchor_axis, fmt.boxes_index) == ("pair", 80, 2, 0)
    fmt = output_format([(1, 8400, 80), (1, 8400, 4)])
    assert (fmt.kind, fmt.num_classes, fmt.anchor_axis, fmt.boxes_index) == ("pair", 80, 1, 1)
    one_line_error(lambda: output_format([(1, 84, 84)]))
    one_line_error(lambda: output_format([(1, 1000)]))
    one_line_error(lambda: output_format([(1, 84, 8400)], num_classes=3))
    one_line_error(lambda: output_format([(1, 8400, 4), (1, 80, 100)]))


def single_output() -> torch.Tensor:
    """[1, 4+3, 10]: four meaningful anchors, the rest empty."""
    t = torch.zeros(1, 7, 10)
    t[0, :4, 0] = torch.tensor([50, 50, 20, 20]); t[0, 5, 0] = 0.9  # class 1
    t[0, :4, 1] = torch.tensor([52, 50, 20, 20]); t[0, 5, 1] = 0.8  # same object, class 1: suppressed
    t[0, :4, 2] = torch.tensor([52, 50, 20, 20]); t[0, 6, 2] = 0.7  # same place, class 2: kept
    t[0, :4, 3] = torch.tensor([150, 100, 40, 10]); t[0, 4, 3] = 0.5  # class 0, apart
    t[0, :4, 4] = torch.tensor([10, 10, 4, 4]); t[0, 4, 4] = 0.0005  # under conf
    return t


def test_decode_single_and_pair():
    expected_boxes = [[40, 40, 60, 60], [42, 40, 62, 60], [130, 95, 170, 105]]
    t = single_output()
    for outputs in ([t], [t.transpose(1, 2).contiguous()]):
        fmt = output_format([tuple(o.shape) for o in outputs])
        [(boxes, scores, classes)] = decode(outputs, fmt)
        assert boxes.tolist() == expected_boxes
        assert scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
        assert classes.dtype == torch.long and classes.tolist() == [1, 2, 0]
    # Logits: the same decisions after a sigmoid.
    logits = t.clone()
    logits[:, 4:] = torch.logit(t[:, 4:].clamp(1e-6, 1 - 1e-6))
    fmt = output_format([tuple(logits.shape)], scores_are_logits=True)
    [(boxes, scores, classes)] = decode([logits], fmt)
    assert boxes.tolist() == expected_boxes and classes.tolist() == [1, 2, 0]
    # The pair convention: boxes [N, A, 4] as x1, y1, x2, y2 and scores [N, C, A].
    pair_boxes = torch.cat([t[:, :2] - t[:, 2:4] / 2, t[:, :2] + t[:, 2:4] / 2], dim=1).transpose(1, 2)
    pair = [pair_boxes, t[:, 4:]]
    [(boxes, scores, classes)] = decode(pair, output_format([tuple(o.shape) for o in pair]), max_det=2)
    assert boxes.tolist() == expected_boxes[:2] and classes.tolist() == [1, 2]
    # Two images, one of them empty.
    batch = torch.cat([t, torch.zeros_like(t)])
    decoded = decode([batch], output_format([tuple(batch.shape)]))
    assert len(decoded) == 2 and len(decoded[0][0]) == 3 and decoded[1][0].shape == (0, 4)


def test_to_coco_detections():
    decoded = [
        (torch.tensor([[10.0, 20.0, 30.0, 60.0]]), torch.tensor([0.75]), torch.tensor([2])),
        (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)),
        (torch.tensor([[0.0, 0.0, 8.0, 4.0], [1.0, 1.0, 2.0, 2.0]]), torch.tensor([0.5, 0.25]), torch.tensor([0, 1])),
    ]
    dets = to_coco_detections(decoded, [5, 6, 7], [1, 3, 7], [(2.0, 0.5), (1.0, 1.0), (1.0, 1.0)])
    assert dets == [
        {"image_id": 5, "category_id": 7, "bbox": [20.0, 10.0, 40.0, 20.0], "score": 0.75},
        {"image_id": 7, "category_id": 1, "bbox": [0.0, 0.0, 8.0, 4.0], "score": 0.5},
        {"image_id": 7, "category_id": 3, "bbox": [1.0, 1.0, 1.0, 1.0], "score": 0.25},
    ]
    letterboxed = to_coco_detections(decoded[:1], [5], [1, 3, 7], [(2.0, 2.0)], pad=[(0.0, 10.0)])
    assert letterboxed[0]["bbox"] == [20.0, 20.0, 40.0, 80.0]


# --- synthetic data -------------------------------------------------------------------------------


def test_generator(tmp_path):
    path = generate_coco(tmp_path / "a", 60, seed=3)
    assert path == tmp_path / "a" / "annotations" / "instances_synthetic.json"
    ds = read_coco(path)
    assert ds.image_dir == tmp_path / "a" / "synthetic"
    assert len(ds.images) == 60 and ds.images[0].file_name == "000000000001.jpg"
    assert ds.category_ids == [1, 2, 3, 5, 7, 9]
    assert sum(not boxes for boxes in ds.boxes.values()) >= 1
    assert len({b.category_id for boxes in ds.boxes.values() for b in boxes}) == 6
    for image in ds.images:
        with Image.open(ds.image_path(image)) as im:
            assert im.format == "JPEG" and im.size == (image.width, image.height)
        for box in ds.boxes[image.id]:
            x, y, w, h = box.bbox
            assert 0 <= x and 0 <= y and x + w <= image.width and y + h <= image.height
            assert 0 < box.area <= w * h and box.iscrowd == 0
    # Deterministic per seed; a smaller count is a prefix; another seed differs.
    again = generate_coco(tmp_path / "b", 60, seed=3)
    assert again.read_bytes() == path.read_bytes()
    seventh = "synthetic/000000000007.jpg"
    assert (tmp_path / "b" / seventh).read_bytes() == (tmp_path / "a" / seventh).read_bytes()
    fewer = json.loads(generate_coco(tmp_path / "c", 5, seed=3).read_text())
    assert fewer["annotations"] == [a for a in ds.raw["annotations"] if a["image_id"] <= 5]
    other_seed = generate_coco(tmp_path / "d", 5, seed=4).read_bytes()
    assert other_seed != generate_coco(tmp_path / "e", 5, seed=3).read_bytes()
    # Its own ground truth as detections scores a perfect mAP.
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in ds.raw["annotations"]
    ]
    assert coco_map(ds.raw, perfect) == {"map50_95": 1.0, "map50": 1.0, "map75": 1.0}


def test_generator_options(tmp_path):
    path = generate_coco(tmp_path, 3, size=(96, 64), classes=("star", "circle"), split="val")
    ds = read_coco(path)
    assert ds.image_dir == tmp_path / "val" and ds.category_ids == [1, 9]
    assert all((im.width, im.height) == (96, 64) for im in ds.images)
    one_line_error(lambda: generate_coco(tmp_path, 1, classes=("hexagon",)))
