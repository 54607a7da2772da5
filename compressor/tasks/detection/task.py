"""The detection task: YOLO-style anchor-free detectors on COCO-format data.

`--data coco:ANNOTATIONS.json[,IMAGES]` reads COCO instances (detection/coco.py); images are
resized whole to the model's input and boxes scaled with them. The model's outputs are read in
either convention of detection/decode.py: one [N, anchors, 4 + classes] tensor (Ultralytics), or
boxes plus scores as a NonMaxSuppression node takes them, which is what a detector that carries
its own post-processing hands to it (the importer stops before that tail and trains the rest).
Without labels the dense model teaches through the raw head outputs (map50_agreement).
"""

from __future__ import annotations

import torch

from ...data.dataset import LoadedDataset
from ...data.layout import image_layout
from ...data.split import limited_indices
from ...errors import DataError
from ..base import DataRequest, Task, TaskInputs, register_task
from ..image_files import ImageFiles, image_transform
from ..mirroring import Mirroring, mirror_boxes, width_axis
from .coco import parse_coco_spec, read_coco
from .decode import output_format
from .objective import DetectionDistillation, DetectionObjective


class CocoSource:
    """COCO images as model inputs; targets padded to the dataset's most crowded image."""

    def __init__(self, name: str, dataset, images, transform, total: int):
        self.name, self.coco, self.image_list, self.total = name, dataset, list(images), total
        self.images = ImageFiles([dataset.image_path(image) for image in self.image_list], transform)
        self.height, self.width = transform.layout.height, transform.layout.width
        self.labels, self.num_classes = None, None
        self.slots = max([len(dataset.boxes.get(image.id, [])) for image in self.image_list] + [1])
        boxes = sum(len(dataset.boxes.get(image.id, [])) for image in self.image_list)
        self.detail = f"{boxes} boxes, {len(dataset.category_ids)} categories"

    def __len__(self) -> int:
        return len(self.image_list)

    def sample(self, index: int) -> torch.Tensor:
        return self.images.sample(index)

    def target(self, index: int) -> dict[str, torch.Tensor]:
        image = self.image_list[index]
        sx, sy = image.width / self.width, image.height / self.height
        boxes = torch.zeros(self.slots, 4)
        original = torch.zeros(self.slots, 4)
        classes = torch.full((self.slots,), -1, dtype=torch.int64)
        crowd = torch.zeros(self.slots, dtype=torch.int64)
        for k, box in enumerate(self.coco.boxes.get(image.id, [])):
            x, y, w, h = box.bbox
            original[k] = torch.tensor([x, y, w, h])
            boxes[k] = torch.tensor([x / sx, y / sy, (x + w) / sx, (y + h) / sy])
            classes[k] = self.coco.class_index[box.category_id]
            crowd[k] = int(box.iscrowd)
        return {"boxes": boxes, "original": original, "classes": classes, "crowd": crowd,
                "size": torch.tensor([float(image.width), float(image.height)]), "scale": torch.tensor([sx, sy])}


@register_task("detection")
class Detection(Task):
    labels = "COCO instances JSON and its images: --data coco:ANNOTATIONS.json[,IMAGES]"
    data_prefixes = ("coco",)
    label_free = True

    def read_data(self, request: DataRequest):
        annotations, image_dir = parse_coco_spec(request.body)
        dataset = read_coco(annotations, image_dir, check_images=True)
        if not dataset.images:
            raise DataError(f"{request.spec}: the annotations list no images")
        fmt = output_format(request.output_shapes)
        if len(dataset.category_ids) > fmt.num_classes:
            raise DataError(f"{request.spec} has {len(dataset.category_ids)} categories but the model scores {fmt.num_classes} classes")
        keep = limited_indices(len(dataset.images), request.limit, request.seed)
        source = CocoSource(request.spec, dataset, [dataset.images[i] for i in keep], image_transform(request, "coco:"),
                            total=len(dataset.images))
        return LoadedDataset(source)

    def augmentation(self, inputs: TaskInputs):
        return Mirroring(width_axis=width_axis(inputs.input_shape), mirror_labels=mirror_boxes)

    def objective(self, inputs: TaskInputs):
        fmt = output_format(list(inputs.output_shapes))
        shape = tuple(inputs.input_shape)
        if len(shape) != 4:
            raise DataError(f"the detection task needs an image input [N, C, H, W] or [N, H, W, C]; this one is {list(shape)}")
        layout = image_layout(shape, "")
        if inputs.labelled:
            return DetectionObjective(fmt, (layout.height, layout.width))
        return DetectionDistillation(fmt, (layout.height, layout.width))
