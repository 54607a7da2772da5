"""The official TuSimple lane metric (accuracy, FP and FN rates), quirks included.

It follows shared/specs/deploy.md section 8, checked against the benchmark's own evaluation script, so
that our figures compare with published ones. The quirks kept on purpose: rows where both lanes are
absent count as correct; one prediction may match several GT lanes (so FP can go below zero); an
image with more than 4 GT lanes drops its smallest score and one FN; a slow or over-predicting image
scores (0, 0, 1).
"""

from __future__ import annotations

import math
from typing import Sequence

from ...errors import DataError
from .tusimple import LaneRecord, records_by_file

PIXEL_THRESHOLD = 20.0  # px, for a vertical lane
POINT_THRESHOLD = 0.85  # fraction of rows a prediction must hit to match a GT lane
MAX_RUN_TIME = 200.0  # ms; a slower image scores (0, 0, 1)
MAX_COUNTED_LANES = 4
SENTINEL = -100  # both lanes' negative x map here, as in the official script


def lane_angle(xs: Sequence[int], ys: Sequence[int]) -> float:
    """theta = arctan(a) of the least-squares fit x = a*y + b through the points with x >= 0 (0 with < 2 points)."""
    points = [(float(x), float(y)) for x, y in zip(xs, ys) if x >= 0]
    if len(points) < 2:
        return 0.0
    mean_x = sum(p[0] for p in points) / len(points)
    mean_y = sum(p[1] for p in points) / len(points)
    syy = sum((y - mean_y) ** 2 for _, y in points)
    if syy == 0.0:  # all points on one row: no slope to fit (the official fit would give 0 too)
        return 0.0
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return math.atan(sxy / syy)


def lane_threshold(gt_lane: Sequence[int], h_samples: Sequence[int]) -> float:
    """20 px widened by 1/cos(theta): a slanted lane's horizontal error is larger for the same normal error."""
    return PIXEL_THRESHOLD / math.cos(lane_angle(gt_lane, h_samples))


def point_accuracy(pred_lane: Sequence[int], gt_lane: Sequence[int], threshold: float) -> float:
    """The fraction of all rows where |pred - gt| < threshold, absent points mapped to a common sentinel."""
    hits = 0
    for p, g in zip(pred_lane, gt_lane):
        p = p if p >= 0 else SENTINEL
        g = g if g >= 0 else SENTINEL
        if abs(p - g) < threshold:
            hits += 1
    return hits / len(gt_lane) if len(gt_lane) else 0.0


def image_scores(
    pred_lanes: Sequence[Sequence[int]],
    gt_lanes: Sequence[Sequence[int]],
    h_samples: Sequence[int],
    run_time: float = 0.0,
) -> tuple[float, float, float]:
    """(accuracy, FP rate, FN rate) of one image, exactly as the official benchmark scores it."""
    for i, lane in enumerate(pred_lanes):
        if len(lane) != len(h_samples):
            raise DataError(f"predicted lane {i} has {len(lane)} points but h_samples has {len(h_samples)}")
    n_pred, n_gt = len(pred_lanes), len(gt_lanes)
    if run_time > MAX_RUN_TIME or n_pred > n_gt + 2:
        return 0.0, 0.0, 1.0
    bests = []
    fn = 0
    matched = 0
    for gt_lane in gt_lanes:
        threshold = lane_threshold(gt_lane, h_samples)
        best = max((point_accuracy(p, gt_lane, threshold) for p in pred_lanes), default=0.0)
        if best < POINT_THRESHOLD:
            fn += 1
        else:
            matched += 1
        bests.append(best)
    fp = n_pred - matched  # no one-to-one assignment: it can be negative
    total = sum(bests)
    if n_gt > MAX_COUNTED_LANES:
        total -= min(bests)
        if fn > 0:
            fn -= 1
    counted = max(min(MAX_COUNTED_LANES, n_gt), 1)
    accuracy = total / counted
    fp_rate = fp / n_pred if n_pred > 0 else 0.0
    fn_rate = fn / counted
    return accuracy, fp_rate, fn_rate


def tusimple_scores(
    predictions: list[LaneRecord],
    ground_truth: list[LaneRecord],
    run_times: list[float] | None = None,
) -> dict:
    """Dataset ``accuracy``, ``fp`` and ``fn`` (fractions): per-image scores summed over the number of GT images.

    Predictions are matched to the ground truth by raw_file; ``run_times`` (ms) go with ``predictions``
    in order (0 when not given).
    """
    if len(predictions) != len(ground_truth):
        raise DataError(
            f"{len(predictions)} predictions for {len(ground_truth)} ground-truth images: need one per image"
        )
    if run_times is not None and len(run_times) != len(predictions):
        raise DataError(f"{len(run_times)} run times for {len(predictions)} predictions")
    try:
        gts = records_by_file(ground_truth)
    except DataError as exc:
        raise DataError(f"ground truth: {exc}") from None
    seen: set[str] = set()
    accuracy = fp = fn = 0.0
    for i, pred in enumerate(predictions):
        gt = gts.get(pred.raw_file)
        if gt is None:
            raise DataError(f"prediction for {pred.raw_file}, which is not in the ground truth")
        if pred.raw_file in seen:
            raise DataError(f"two predictions for {pred.raw_file}")
        seen.add(pred.raw_file)
        run_time = float(run_times[i]) if run_times is not None else 0.0
        try:
            a, p, n = image_scores(pred.lanes, gt.lanes, gt.h_samples, run_time)
        except DataError as exc:
            raise DataError(f"{pred.raw_file}: {exc}") from None
        accuracy += a
        fp += p
        fn += n
    count = len(gts)
    if count == 0:
        return {"accuracy": 0.0, "fp": 0.0, "fn": 0.0}
    return {"accuracy": accuracy / count, "fp": fp / count, "fn": fn / count}
