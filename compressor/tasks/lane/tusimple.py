"""The TuSimple lane layout: JSON-lines label files beside a ``clips/`` image tree.

Each line is one image: ``raw_file`` (the image path relative to the dataset folder), ``h_samples``
(the rows, in pixels of the 1280x720 image) and ``lanes`` (per lane, one x per row, -2 where the lane
has no point). Prediction files use the same keys plus ``run_time`` in milliseconds. See
shared/specs/deploy.md, section 8.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ...errors import DataError
from ...files import write_text_atomic

ABSENT = -2  # the x value TuSimple writes for "no point on this row"
KEYS = ("raw_file", "lanes", "h_samples")
TRAIN_PATTERN = "label_data_*.json"
TEST_NAME = "test_label.json"


@dataclass(frozen=True)
class LaneRecord:
    """One image's lanes: per lane an x for every row of ``h_samples`` (-2 = no point)."""

    raw_file: str
    lanes: tuple[tuple[int, ...], ...]
    h_samples: tuple[int, ...]


def label_files(root: Path) -> list[Path]:
    """The label files of a TuSimple folder (train ``label_data_*.json`` and ``test_label.json``), sorted.

    A path to one ``.json`` file is taken as that file alone, so a single split can be read.
    """
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() != ".json":
            raise DataError(f"{root} is not a TuSimple label file: expected a .json file of JSON lines")
        return [root]
    if not root.is_dir():
        raise DataError(f"TuSimple folder {root} does not exist")
    files = set(root.glob(TRAIN_PATTERN))
    if (root / TEST_NAME).is_file():
        files.add(root / TEST_NAME)
    files = sorted(p for p in files if p.is_file())
    if not files:
        raise DataError(f"no TuSimple label file in {root}: expected {TRAIN_PATTERN} or {TEST_NAME}")
    return files


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(values, what: str, where: str) -> tuple[int, ...]:
    if not isinstance(values, list):
        raise DataError(f"{where}: {what} must be a list of integers, got {type(values).__name__}")
    for value in values:
        if not _is_int(value):
            raise DataError(f"{where}: {what} holds a non-integer value {value!r}")
    return tuple(values)


def _parse_record(obj, where: str) -> LaneRecord:
    """One label line, checked: the keys, integer values, and one x per row in every lane."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in KEYS:
        if key not in obj:
            raise DataError(f"{where}: missing key {key!r} (a TuSimple line needs raw_file, lanes, h_samples)")
    raw_file = obj["raw_file"]
    if not isinstance(raw_file, str) or not raw_file:
        raise DataError(f"{where}: raw_file must be a non-empty string")
    h_samples = _int_tuple(obj["h_samples"], "h_samples", where)
    if not isinstance(obj["lanes"], list):
        raise DataError(f"{where}: lanes must be a list of lanes")
    lanes = []
    for i, lane in enumerate(obj["lanes"]):
        xs = _int_tuple(lane, f"lane {i}", where)
        if len(xs) != len(h_samples):
            raise DataError(f"{where}: lane {i} has {len(xs)} points but h_samples has {len(h_samples)}")
        lanes.append(xs)
    return LaneRecord(raw_file=raw_file, lanes=tuple(lanes), h_samples=h_samples)


def read_records(path: Path) -> list[LaneRecord]:
    """The records of one JSON-lines label (or prediction) file; blank lines are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read TuSimple label file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"TuSimple label file {path} is not UTF-8 text") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})") from None
        records.append(_parse_record(obj, where))
    return records


def read_tusimple(root: Path, check_images: bool = True) -> list[LaneRecord]:
    """All records of a TuSimple folder (or one label file), with raw_file relative to that folder.

    ``check_images`` fails early on a missing image rather than halfway through training.
    """
    root = Path(root)
    files = label_files(root)
    base = root.parent if root.is_file() else root
    records = [record for path in files for record in read_records(path)]
    if check_images:
        missing = [r.raw_file for r in records if not (base / r.raw_file).is_file()]
        if missing:
            raise DataError(
                f"TuSimple image {base / missing[0]} does not exist ({len(missing)} of {len(records)} images missing)"
            )
    return records


def write_records(path: Path, records: Sequence[LaneRecord], run_times: Sequence[float] | None = None) -> Path:
    """Write records as TuSimple JSON lines, atomically; prediction files pass ``run_times`` (ms, one per record)."""
    if run_times is not None and len(run_times) != len(records):
        raise DataError(f"{len(run_times)} run times for {len(records)} records")
    lines = []
    for i, record in enumerate(records):
        obj = {
            "lanes": [list(lane) for lane in record.lanes],
            "h_samples": list(record.h_samples),
            "raw_file": record.raw_file,
        }
        if run_times is not None:
            obj["run_time"] = float(run_times[i])
        lines.append(json.dumps(obj))
    return write_text_atomic(Path(path), "".join(line + "\n" for line in lines))


def lane_points(record: LaneRecord) -> list[list[tuple[int, int]]]:
    """Per lane, its (x, y) points with the absent rows dropped: what a drawing needs."""
    return [[(x, y) for x, y in zip(lane, record.h_samples) if x >= 0] for lane in record.lanes]


def records_by_file(records: Iterable[LaneRecord]) -> dict[str, LaneRecord]:
    """Records keyed by raw_file; a file named twice is an error (a prediction could not be matched)."""
    table: dict[str, LaneRecord] = {}
    for record in records:
        if record.raw_file in table:
            raise DataError(f"{record.raw_file} appears twice")
        table[record.raw_file] = record
    return table
