"""Detection mAP computed by pycocotools, the reference implementation, never by our own matching.

Numbers then match what papers and other tools report for the same detections.
"""

from __future__ import annotations

import contextlib
import copy
import io

from ...errors import DataError, MissingToolError

_ZEROS = {"map50_95": 0.0, "map50": 0.0, "map75": 0.0}


def coco_map(ground_truth: dict, detections: list[dict]) -> dict[str, float]:
    """COCO bbox mAP@[.50:.95], mAP@.50 and mAP@.75 of `detections` against `ground_truth`.

    `ground_truth` is a COCO instances dict (images, annotations, categories); `detections` are
    {"image_id", "category_id", "bbox": [x, y, w, h], "score"}. pycocotools reports -1 for a
    statistic it cannot define (no ground-truth object at all); it is returned as 0.0 here, as are
    all three when there is no detection (loadRes refuses an empty list) or no annotation. The
    caller's dict is not modified: missing `area` (w*h) and `iscrowd` (0) are filled on a copy, and
    the copy's annotation ids are renumbered 1..n (pycocotools needs them and reads an id 0 as "unmatched").
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingToolError("detection mAP needs pycocotools: pip install pycocotools") from None
    if not detections or not ground_truth.get("annotations"):
        return dict(_ZEROS)
    for det in detections:
        if not all(key in det for key in ("image_id", "category_id", "bbox", "score")):
            raise DataError(f"a detection lacks image_id, category_id, bbox or score: {det}")
    gt = copy.deepcopy(ground_truth)
    image_ids = {img["id"] for img in gt.get("images", [])}
    strays = {d["image_id"] for d in detections} - image_ids
    if strays:
        example = sorted(strays, key=str)[0]
        raise DataError(f"{len(strays)} detected image ids are not in the ground truth, e.g. {example}")
    for number, ann in enumerate(gt["annotations"], start=1):
        ann["id"] = number
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
        ann.setdefault("iscrowd", 0)
    gt.setdefault("info", {})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(list(detections)))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(float(s), 0.0) for s in evaluator.stats[:3]]
    return {"map50_95": stats[0], "map50": stats[1], "map75": stats[2]}
