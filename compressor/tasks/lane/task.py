"""The lane task: UFLD-style row-anchor lane detection on TuSimple-format data.

`--data tusimple:DIR` reads the real TuSimple layout (label_data_*.json or test_label.json
JSON lines next to `clips/`); the project's generator writes the same layout
(compressor/tasks/lane/synthetic.py). Without labels (`--task lane --data IMAGE_FOLDER`) the
dense model teaches the pruned one (lane_agreement).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...data.dataset import LoadedDataset
from ...data.split import limited_indices
from ...errors import DataError
from ..base import DataRequest, Task, TaskInputs, register_task
from ..image_files import ImageFiles, image_transform
from ..mirroring import Mirroring, lane_mirror, width_axis
from .geometry import LaneGeometry
from .objective import LaneDistillation, LaneObjective
from .tusimple import read_tusimple


class TuSimpleSource:
    """TuSimple frames as model inputs; targets: UFLD classes plus the labels the metric needs
    (lanes and h_samples padded to the dataset's largest, with their counts)."""

    def __init__(self, name: str, root: Path, records, transform, geometry: LaneGeometry, total: int):
        self.name, self.records, self.geometry, self.total = name, list(records), geometry, total
        self.images = ImageFiles([root / r.raw_file for r in self.records], transform)
        self.labels, self.num_classes = None, None
        self.detail = f"{sum(len(r.lanes) for r in self.records)} lanes"
        self.max_lanes = max([len(r.lanes) for r in self.records] + [1])
        self.max_h = max(len(r.h_samples) for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int) -> torch.Tensor:
        return self.images.sample(index)

    def target(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        lanes = np.full((self.max_lanes, self.max_h), -2.0, dtype=np.float32)
        for k, lane in enumerate(record.lanes):
            lanes[k, : len(lane)] = lane
        h = np.full(self.max_h, -1.0, dtype=np.float32)
        h[: len(record.h_samples)] = record.h_samples
        return {"cls": self.geometry.encode(record.lanes, record.h_samples), "lanes": torch.from_numpy(lanes),
                "h_samples": torch.from_numpy(h), "counts": torch.tensor([len(record.lanes), len(record.h_samples)])}


@register_task("lane")
class LaneDetection(Task):
    labels = "TuSimple JSON lines (lanes, h_samples, raw_file): --data tusimple:DIR"
    data_prefixes = ("tusimple",)
    label_free = True
    ends_dense_by_default = False
    ends_reason = "UFLD's last layer, FC2, holds most of the weights and is the prime target (deploy.md section 7)"

    def read_data(self, request: DataRequest):
        root = Path(request.body).expanduser()
        if not request.body:
            raise DataError("tusimple: needs the dataset folder, e.g. tusimple:data/tusimple (label_data_*.json and clips/)")
        if not root.exists():
            raise DataError(f"TuSimple folder not found: {request.body}")
        geometry = LaneGeometry.from_output(request.output_shapes[0] if request.output_shapes else (), request.metadata)
        records = read_tusimple(root, check_images=True)  # a folder, or one label file beside clips/
        root = root if root.is_dir() else root.parent
        if not records:
            raise DataError(f"{request.spec}: no labelled frames")
        keep = limited_indices(len(records), request.limit, request.seed)
        source = TuSimpleSource(request.spec, root, [records[i] for i in keep], image_transform(request, "tusimple:"),
                                geometry, total=len(records))
        return LoadedDataset(source)

    def augmentation(self, inputs: TaskInputs):
        geometry = LaneGeometry.from_output(inputs.output_shapes[0], inputs.metadata)
        return Mirroring(width_axis=width_axis(inputs.input_shape), mirror_labels=lane_mirror(geometry))

    def objective(self, inputs: TaskInputs):
        if not inputs.output_shapes:
            raise DataError("the lane task needs the model's outputs; none were measured")
        geometry = LaneGeometry.from_output(inputs.output_shapes[0], inputs.metadata)
        if inputs.labelled:
            return LaneObjective(geometry)
        return LaneDistillation(geometry)
