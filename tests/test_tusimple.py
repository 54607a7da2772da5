"""TuSimple layout: the reader and writer, the official metric on hand-computed cases, and the synthetic generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compressor.errors import DataError
from compressor.tasks.lane.metric import image_scores, lane_angle, lane_threshold, tusimple_scores
from compressor.tasks.lane.synthetic import generate_tusimple
from compressor.tasks.lane.tusimple import (
    LaneRecord,
    label_files,
    lane_points,
    read_records,
    read_tusimple,
    write_records,
)

ROWS10 = tuple(range(160, 260, 10))  # 10 rows: accuracies are multiples of 0.1
ROWS20 = tuple(range(160, 360, 10))  # 20 rows: multiples of 0.05


def _one_line_error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


# ---------------------------------------------------------------- reader / writer


def _write_lines(path: Path, objects: list, blank_lines: bool = False) -> None:
    lines = []
    for obj in objects:
        lines.append(obj if isinstance(obj, str) else json.dumps(obj))
        if blank_lines:
            lines.append("")
            lines.append("   ")
    path.write_text("\n".join(lines) + "\n")


def _touch_images(root: Path, raw_files: list[str]) -> None:
    for raw_file in raw_files:
        (root / raw_file).parent.mkdir(parents=True, exist_ok=True)
        (root / raw_file).write_bytes(b"jpeg")


H4 = [240, 250, 260, 270]
TRAIN = [
    {"lanes": [[-2, 600, 590, 580], [-2, 700, 720, 740]], "h_samples": H4, "raw_file": "clips/0313-1/60/20.jpg"},
    # a lane with every point absent, as real label files contain
    {"lanes": [[-2, -2, -2, -2], [400, 390, 380, 370]], "h_samples": H4, "raw_file": "clips/0313-1/120/20.jpg"},
]
TEST = [
    {
        "lanes": [
            [100, 90, 80, 70],
            [300, 310, 320, 330],
            [500, 500, 500, 500],
            [700, 710, -2, -2],
            [900, 950, 1000, -2],
        ],
        "h_samples": H4,
        "raw_file": "clips/0530/1492626/20.jpg",
    }
]


@pytest.fixture
def tusimple_root(tmp_path: Path) -> Path:
    _write_lines(tmp_path / "label_data_0313.json", TRAIN, blank_lines=True)
    _write_lines(tmp_path / "test_label.json", TEST)
    (tmp_path / "readme.json").write_text("not a label file, ignored")
    _touch_images(tmp_path, [o["raw_file"] for o in TRAIN + TEST])
    return tmp_path


def test_read_tusimple_official_layout(tusimple_root: Path):
    assert [p.name for p in label_files(tusimple_root)] == ["label_data_0313.json", "test_label.json"]
    records = read_tusimple(tusimple_root)
    assert [r.raw_file for r in records] == [o["raw_file"] for o in TRAIN + TEST]
    assert records[0] == LaneRecord("clips/0313-1/60/20.jpg", ((-2, 600, 590, 580), (-2, 700, 720, 740)), tuple(H4))
    assert records[1].lanes[0] == (-2, -2, -2, -2)  # kept: the metric needs every GT lane
    assert len(records[2].lanes) == 5
    assert lane_points(records[1]) == [[], [(400, 240), (390, 250), (380, 260), (370, 270)]]
    assert lane_points(records[2])[3] == [(700, 240), (710, 250)]


def test_read_single_label_file(tusimple_root: Path):
    path = tusimple_root / "test_label.json"
    assert label_files(path) == [path]
    assert [r.raw_file for r in read_tusimple(path)] == [TEST[0]["raw_file"]]  # relative to the file's folder


def test_no_label_file(tmp_path: Path):
    with pytest.raises(DataError) as exc:
        label_files(tmp_path)
    message = _one_line_error(exc)
    assert str(tmp_path) in message and "label_data_*.json" in message and "test_label.json" in message
    with pytest.raises(DataError):
        label_files(tmp_path / "absent")


@pytest.mark.parametrize(
    "line, expected",
    [
        ({"lanes": [[1, 2, 3, 4]], "h_samples": H4}, "missing key 'raw_file'"),
        ({"raw_file": "a.jpg", "h_samples": H4}, "missing key 'lanes'"),
        ({"raw_file": "a.jpg", "lanes": []}, "missing key 'h_samples'"),
        ({"raw_file": "a.jpg", "lanes": [[1, 2, 3]], "h_samples": H4}, "lane 0 has 3 points but h_samples has 4"),
        ({"raw_file": "a.jpg", "lanes": [[1, 2.5, 3, 4]], "h_samples": H4}, "non-integer value 2.5"),
        ({"raw_file": "a.jpg", "lanes": [], "h_samples": [1, "2"]}, "non-integer value '2'"),
        ('{"raw_file": "a.jpg", "lanes": [', "not JSON"),
    ],
)
def test_bad_label_lines(tmp_path: Path, line, expected):
    path = tmp_path / "label_data_x.json"
    _write_lines(path, [TRAIN[0], "", line])  # the bad line is line 3
    with pytest.raises(DataError) as exc:
        read_records(path)
    message = _one_line_error(exc)
    assert f"{path}, line 3" in message and expected in message


def test_missing_image(tusimple_root: Path):
    (tusimple_root / TRAIN[1]["raw_file"]).unlink()
    (tusimple_root / TEST[0]["raw_file"]).unlink()
    with pytest.raises(DataError) as exc:
        read_tusimple(tusimple_root)
    message = _one_line_error(exc)
    assert TRAIN[1]["raw_file"] in message and "2 of 3 images missing" in message
    assert len(read_tusimple(tusimple_root, check_images=False)) == 3


def test_write_records_round_trip(tusimple_root: Path, tmp_path: Path):
    records = read_tusimple(tusimple_root)
    out = tmp_path / "out" / "pred.json"
    write_records(out, records, run_times=[1.5, 2, 3])
    lines = out.read_text().splitlines()
    assert json.loads(lines[1])["run_time"] == 2.0
    assert read_records(out) == records  # run_time is ignored by the reader
    write_records(out, records[:1])
    assert "run_time" not in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.json"]  # no temp file left behind


# ---------------------------------------------------------------- metric

def _vertical(x: int, rows=ROWS10) -> list[int]:
    return [x] * len(rows)


def test_perfect_prediction():
    gt = [_vertical(300), [400 + i for i in range(10)]]
    assert image_scores(gt, gt, ROWS10) == (1.0, 0.0, 0.0)


def test_shift_around_20px_threshold():
    gt = [_vertical(500)]  # vertical: theta = 0, threshold exactly 20 px
    assert lane_threshold(gt[0], ROWS10) == 20.0
    # |519 - 500| = 19 < 20 on all 10 rows -> 10/10 = 1 -> matched: (1, 0, 0)
    assert image_scores([_vertical(519)], gt, ROWS10) == (1.0, 0.0, 0.0)
    # |520 - 500| = 20 is not < 20 on any row -> best 0 -> FN 1 of 1; FP = 1 pred - 0 matches = 1 of 1
    assert image_scores([_vertical(520)], gt, ROWS10) == (0.0, 1.0, 1.0)
    # shifted left works the same way
    assert image_scores([_vertical(481)], gt, ROWS10) == (1.0, 0.0, 0.0)


def test_slanted_lane_widens_threshold():
    # x = y - 60 on y = 160..250: slope a = 1 -> theta = 45 deg -> threshold 20 / cos 45 = 28.28 px
    gt = [[y - 60 for y in ROWS10]]
    assert lane_angle(gt[0], ROWS10) == pytest.approx(math.pi / 4)
    assert lane_threshold(gt[0], ROWS10) == pytest.approx(20 * math.sqrt(2))
    # a 25 px horizontal shift fails at 20 px but passes at 28.28 px: every row hits -> (1, 0, 0)
    assert image_scores([[x + 25 for x in gt[0]]], gt, ROWS10) == (1.0, 0.0, 0.0)
    # 29 px is beyond 28.28 on every row -> (0, 1, 1)
    assert image_scores([[x + 29 for x in gt[0]]], gt, ROWS10) == (0.0, 1.0, 1.0)


def test_angle_fit_ignores_absent_points_and_matches_least_squares():
    xs = [-2, -2, 310, 331, 349, 372, 390, 411, -2, 452]
    valid = [(x, y) for x, y in zip(xs, ROWS10) if x >= 0]
    slope = np.polyfit([y for _, y in valid], [x for x, _ in valid], 1)[0]
    assert lane_angle(xs, ROWS10) == pytest.approx(math.atan(slope))
    assert lane_angle([-2] * 9 + [500], ROWS10) == 0.0  # fewer than 2 points -> theta 0


def test_85_percent_rule():
    gt = [_vertical(500, ROWS20)]
    # 17 of 20 rows within 20 px, 3 rows 100 px off -> 17/20 = 0.85, not < 0.85 -> matched: (0.85, 0, 0)
    pred17 = [500] * 17 + [600] * 3
    assert image_scores([pred17], gt, ROWS20) == (0.85, 0.0, 0.0)
    # 16 of 20 -> 0.8 < 0.85 -> FN 1 of 1; FP = 1 - 0 = 1 of 1; accuracy still counts the 0.8
    pred16 = [500] * 16 + [600] * 4
    assert image_scores([pred16], gt, ROWS20) == (0.8, 1.0, 1.0)


def test_one_prediction_matches_two_gt_lanes():
    # GT lanes at x = 500 and 510; a prediction at 505 is within 20 px of both on every row.
    # No one-to-one assignment: both GT lanes match it -> matches = 2, FP = 1 - 2 = -1 -> FP rate -1 / 1.
    # accuracy (1 + 1) / 2 = 1, FN 0.
    assert image_scores([_vertical(505)], [_vertical(500), _vertical(510)], ROWS10) == (1.0, -1.0, 0.0)


def test_too_many_predictions():
    gt = [_vertical(500)]
    far = [_vertical(100), _vertical(900), _vertical(1100)]
    # N_pred = 4 > N_gt + 2 = 3 -> (0, 0, 1), even though one prediction is perfect
    assert image_scores([_vertical(500)] + far, gt, ROWS10) == (0.0, 0.0, 1.0)
    # N_pred = 3 = N_gt + 2 is scored: best 1 -> accuracy 1; FP = 3 - 1 = 2 -> 2/3; FN 0
    assert image_scores([_vertical(500)] + far[:2], gt, ROWS10) == (1.0, 2 / 3, 0.0)


def test_run_time_limit():
    gt = [_vertical(500)]
    assert image_scores(gt, gt, ROWS10, run_time=200.5) == (0.0, 0.0, 1.0)  # > 200 ms -> (0, 0, 1)
    assert image_scores(gt, gt, ROWS10, run_time=200.0) == (1.0, 0.0, 0.0)  # 200 ms is still allowed


def test_five_gt_lanes_drop_smallest():
    gt = [_vertical(x) for x in (100, 300, 500, 700, 900)]
    # 4 perfect predictions, none for the 5th: bests [1, 1, 1, 1, 0], FN 1.
    # N_gt > 4: drop the smallest best (0) -> sum 4; FN 1 -> 0. accuracy 4 / min(4, 5) = 1; FP 4 - 4 = 0.
    assert image_scores(gt[:4], gt, ROWS10) == (1.0, 0.0, 0.0)
    # 3 perfect predictions: bests [1, 1, 1, 0, 0], FN 2 -> 1; sum 3 - 0 = 3 -> 3/4; FN 1/4; FP 3 - 3 = 0.
    assert image_scores(gt[:3], gt, ROWS10) == (0.75, 0.0, 0.25)
    # all 5 matched: sum 5 - 1 = 4 -> 1; FN 0 stays 0 (no subtraction); FP 5 - 5 = 0.
    assert image_scores(gt, gt, ROWS10) == (1.0, 0.0, 0.0)
    # 5 predictions, the 5th hitting 5 of 10 rows: bests [1, 1, 1, 1, 0.5] -> FN 1 -> 0;
    # sum 4.5 - 0.5 = 4 -> 1; matches 4 -> FP (5 - 4) / 5 = 0.2.
    half = [900] * 5 + [990] * 5
    assert image_scores(gt[:4] + [half], gt, ROWS10) == (1.0, 0.2, 0.0)


def test_no_predictions():
    # bests [0, 0] -> accuracy 0; FP rate 0 (no predictions); FN 2 / 2 = 1
    assert image_scores([], [_vertical(300), _vertical(600)], ROWS10) == (0.0, 0.0, 1.0)
    # nothing at all: accuracy 0 / max(0, 1) = 0, FP 0, FN 0
    assert image_scores([], [], ROWS10) == (0.0, 0.0, 0.0)


def test_gt_lane_with_all_points_absent():
    empty = [-2] * 10
    assert lane_threshold(empty, ROWS10) == 20.0  # no points -> theta 0
    # A real prediction scores 0 against it (|500 - sentinel| >= 20 on every row): bests [1, 0] ->
    # accuracy 0.5, FN 1 of 2, FP 1 - 1 = 0.
    assert image_scores([_vertical(500)], [_vertical(500), empty], ROWS10) == (0.5, 0.0, 0.5)
    # An all-absent prediction "matches" it: both absent on all 10 rows count as correct -> bests [1, 1].
    assert image_scores([_vertical(500), empty], [_vertical(500), empty], ROWS10) == (1.0, 0.0, 0.0)


def test_rows_absent_in_both_count_as_correct():
    # GT present on rows 0-4, absent on 5-9; the prediction is exact on 0-4 and absent on 5-9: 10/10.
    gt = [[500] * 5 + [-2] * 5]
    assert image_scores([[500] * 5 + [-1] * 5], gt, ROWS10) == (1.0, 0.0, 0.0)
    # the prediction goes on over rows 5-9 where GT has no point: 5/10 -> FN
    assert image_scores([_vertical(500)], gt, ROWS10) == (0.5, 1.0, 1.0)


def test_prediction_lane_of_wrong_length():
    with pytest.raises(DataError) as exc:
        image_scores([[500] * 9], [_vertical(500)], ROWS10)
    assert "9 points" in _one_line_error(exc)


def _record(name: str, lanes) -> LaneRecord:
    return LaneRecord(name, tuple(tuple(lane) for lane in lanes), ROWS10)


def test_dataset_scores_average_over_images():
    gt = [_record("a.jpg", [_vertical(300), _vertical(600)]), _record("b.jpg", [_vertical(500)])]
    # a.jpg: perfect -> (1, 0, 0); b.jpg: no prediction -> (0, 0, 1). Predictions in another order.
    preds = [_record("b.jpg", []), _record("a.jpg", [_vertical(300), _vertical(600)])]
    assert tusimple_scores(preds, gt) == {"accuracy": 0.5, "fp": 0.0, "fn": 0.5}
    # a.jpg too slow -> (0, 0, 1): dataset (0 + 0) / 2, (0 + 0) / 2, (1 + 1) / 2
    assert tusimple_scores(preds, gt, run_times=[5.0, 250.0]) == {"accuracy": 0.0, "fp": 0.0, "fn": 1.0}
    # b.jpg: a prediction 30 px off -> (0, 1, 1): dataset (1 + 0) / 2, (0 + 1) / 2, (0 + 1) / 2
    preds[0] = _record("b.jpg", [_vertical(530)])
    assert tusimple_scores(preds, gt) == {"accuracy": 0.5, "fp": 0.5, "fn": 0.5}


def test_dataset_format_errors():
    gt = [_record("a.jpg", [_vertical(300)]), _record("b.jpg", [_vertical(500)])]
    cases = [
        ([_record("a.jpg", [])], "1 predictions for 2 ground-truth images"),
        ([_record("a.jpg", []), _record("c.jpg", [])], "c.jpg, which is not in the ground truth"),
        ([_record("a.jpg", []), _record("b.jpg", [[500] * 3])], "b.jpg: predicted lane 0 has 3 points"),
        ([_record("a.jpg", []), _record("a.jpg", [])], "two predictions for a.jpg"),
    ]
    for preds, expected in cases:
        with pytest.raises(DataError) as exc:
            tusimple_scores(preds, gt)
        assert expected in _one_line_error(exc)


# ---------------------------------------------------------------- synthetic generator

SYNTHETIC_COUNT = 40


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, list[LaneRecord]]:
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate_tusimple(root, SYNTHETIC_COUNT, seed=0)


def test_generator_output_is_read_by_the_reader(synthetic):
    root, records = synthetic
    assert len(records) == SYNTHETIC_COUNT
    assert (root / "label_data_synthetic.json").is_file()
    assert read_tusimple(root) == records
    assert records[7].raw_file == "clips/synthetic/7/20.jpg"
    for record in records[:5]:
        with Image.open(root / record.raw_file) as image:
            assert image.format == "JPEG" and image.size == (1280, 720)


def test_generator_labels(synthetic):
    _, records = synthetic
    counts = [len(r.lanes) for r in records]
    assert min(counts) >= 2 and max(counts) <= 5
    assert sum(c > 4 for c in counts) >= 1
    for record in records:
        assert record.h_samples == tuple(range(160, 720, 10))
        for lane in record.lanes:
            assert all(x == -2 or 0 <= x < 1280 for x in lane)
            assert any(x >= 0 for x in lane)  # no all-absent lane is emitted
        for left, right in zip(record.lanes, record.lanes[1:]):  # left to right on every shared row
            assert all(a < b for a, b in zip(left, right) if a >= 0 and b >= 0)


def test_generator_draws_curved_lanes(synthetic):
    _, records = synthetic
    curved = 0
    for record in records:
        for points in lane_points(record):
            if len(points) < 10:
                continue
            xs, ys = np.array(points, dtype=float).T
            residual = xs - np.polyval(np.polyfit(ys, xs, 1), ys)
            curved += np.abs(residual).max() > 5.0
    assert curved >= 5


def test_generator_is_deterministic(tmp_path: Path):
    first = generate_tusimple(tmp_path / "a", 3, seed=7)
    second = generate_tusimple(tmp_path / "b", 3, seed=7)
    other = generate_tusimple(tmp_path / "c", 3, seed=8)
    assert first == second and first != other
    for record in first:
        assert (tmp_path / "a" / record.raw_file).read_bytes() == (tmp_path / "b" / record.raw_file).read_bytes()


def test_generator_options(tmp_path: Path):
    rows = range(200, 480, 20)
    records = generate_tusimple(
        tmp_path, 2, seed=1, size=(640, 360), h_samples=rows, label_name="label_data_small.json"
    )
    assert read_tusimple(tmp_path) == records
    assert records[0].h_samples == tuple(rows)
    with Image.open(tmp_path / records[0].raw_file) as image:
        assert image.size == (640, 360)
    assert all(x == -2 or 0 <= x < 640 for r in records for lane in r.lanes for x in lane)
