"""`compress zoo train ufld|yolo`: the lane and detection reference networks trained on TuSimple- or
COCO-format data (real or generated) and exported to ONNX, so anyone can rebuild the benchmark's
models.

Training reads the data through the task plug-ins (compressor/tasks/lane, .../detection) and
trains with their losses, so the reference model and a compressed one see the same targets. UFLD
adds its auxiliary segmentation loss (weight 1) through the training-only branch, which the
export leaves out. The ONNX file records in its metadata the task, the preprocessing and (UFLD)
the row anchors, which `compress` reads when no options say otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from compressor.data import parse_preprocess, split_indices
from compressor.errors import ConfigError
from compressor.metadata import set_metadata
from compressor.objectives.base import evaluate
from compressor.tasks import TASKS, DataRequest, TaskInputs

from .export import export_reference
from .models.ufld import UFLD
from .models.yolo import YOLO

PREPROCESS = "imagenet"  # the normalisation the reference models train with, recorded in their metadata


@dataclass(frozen=True)
class ZooNetwork:
    task: str
    build: Callable[[], torch.nn.Module]
    input_size: tuple[int, int]
    lr: float
    weight_decay: float
    description: str


# Sizes a 2-core CPU trains in minutes; `full` is the published geometry (GPU territory).
NETWORKS: dict[str, ZooNetwork] = {
    "ufld": ZooNetwork("lane", lambda: UFLD(griding_num=50, num_row_anchors=56, num_lanes=4, input_size=(128, 352),
                                            width=16, hidden=256, aux=True), (128, 352), 4e-4, 1e-4,
                       "UFLD, ResNet-18 trunk at width 16, 128x352, 50 cells x 56 TuSimple rows x 4 lanes"),
    "ufld-full": ZooNetwork("lane", lambda: UFLD(aux=True), (288, 800), 4e-4, 1e-4,
                            "UFLD TuSimple as published: ResNet-18, 288x800, 100 cells x 56 rows x 4 lanes"),
    "yolo": ZooNetwork("detection", lambda: YOLO(num_classes=6, width=8, depth=1, input_size=(256, 256), class_prior=True), (256, 256),
                       2e-3, 5e-4, "YOLOv8-style, width 8, depth 1, 256x256, 6 classes"),
    "yolo-n": ZooNetwork("detection", lambda: YOLO(num_classes=80, width=16, depth=1, input_size=(640, 640), class_prior=True), (640, 640),
                         2e-3, 5e-4, "YOLOv8n-like, width 16, 640x640, 80 classes"),
}
WARMUP_STEPS = 100  # UFLD's TuSimple warm-up; the detector uses the same


def segmentation_target(cls: torch.Tensor, griding_num: int, size: tuple[int, int], anchors_y: np.ndarray,
                        frame: tuple[int, int]) -> torch.Tensor:
    """UFLD's auxiliary labels, [N, h, w] with lane k as class k + 1: each lane's row-anchor cells
    joined by a line, drawn on the segmentation branch's grid."""
    from PIL import Image, ImageDraw

    n, _, lanes = cls.shape
    h, w = size
    cell = frame[0] / (griding_num - 1)
    ys = anchors_y / frame[1] * h
    maps = []
    for i in range(n):
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        for lane in range(lanes):
            cells = cls[i, :, lane].numpy()
            points = [((c + 0.5) * cell / frame[0] * w, y) for c, y in zip(cells, ys) if c < griding_num]
            if len(points) >= 2:
                draw.line(points, fill=lane + 1, width=1)
        maps.append(np.asarray(canvas, dtype=np.int64))
    return torch.from_numpy(np.stack(maps))


def train_network(name: str, data: str, output: Path, *, epochs: int, batch_size: int = 16, seed: int = 0,
                  val_fraction: float = 0.2, limit: int | None = None, log=print) -> dict:
    """Train network `name` on `data` (`tusimple:DIR` or `coco:FILE[,IMAGES]`), export it to `output`
    and return its validation metrics and timings."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown zoo network {name!r}; available: {', '.join(NETWORKS)}")
    spec = NETWORKS[name]
    task = TASKS.get(spec.task)()
    prefix = data.split(":", 1)[0] if ":" in data else ""
    if prefix not in task.data_prefixes:
        raise ConfigError(f"{name} trains on {' or '.join(p + ':' for p in task.data_prefixes)} data, got {data!r}")
    torch.manual_seed(seed)
    model = spec.build()
    height, width = spec.input_size
    model.eval()
    with torch.no_grad():
        shapes = [tuple(model(torch.zeros(1, 3, height, width)).shape)]
    metadata = {"task": spec.task, "preprocess": PREPROCESS}
    if spec.task == "lane":
        metadata["lane_row_anchors"] = ",".join(str(v) for v in range(160, 711, 10))
    request = DataRequest(data.split(":", 1)[1], data, "input", [1, 3, height, width], torch.float32,
                          parse_preprocess(PREPROCESS), metadata, limit, seed, shapes)
    dataset = task.read_data(request)
    train_idx, val_idx = split_indices(len(dataset), val_fraction, seed)
    train, val = dataset.subset(train_idx), dataset.subset(val_idx)
    inputs = TaskInputs(True, None, ["output"], shapes, (1, 3, height, width), metadata)
    objective = task.objective(inputs)
    augment = task.augmentation(inputs)  # mirroring half of each batch, labels with it
    log(f"{name}: {spec.description}; {sum(p.numel() for p in model.parameters()):,} parameters (training); "
        f"{len(train)} training and {len(val)} validation images from {data}")

    params_decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    params_other = [p for n, p in model.named_parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW([{"params": params_decay, "weight_decay": spec.weight_decay},
                                   {"params": params_other, "weight_decay": 0.0}], lr=spec.lr)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(WARMUP_STEPS, total // 5)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history, started = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
        losses = []
        for x, target in loader:
            x, target = augment(x, target, generator)
            out = model(x)
            if isinstance(out, tuple):  # UFLD's auxiliary segmentation, training only
                logits, seg = out
                anchors = np.asarray(objective.geometry.row_anchors, dtype=np.float64)
                seg_target = segmentation_target(target["cls"], objective.geometry.griding_num, tuple(seg.shape[-2:]),
                                                 anchors, (objective.geometry.frame_width, 720))
                loss = objective.loss(logits, target) + F.cross_entropy(seg, seg_target)
            else:
                loss = objective.loss(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
        if epoch == epochs - 1 or (epoch + 1) % 5 == 0:
            metrics = evaluate(model, torch.utils.data.DataLoader(val, batch_size=32), objective)
            record.update({f"val_{k}": v for k, v in metrics.items()})
        history.append(record)
        log(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch",)))
    model.eval()
    output = Path(output)
    export_reference(model, output, (1, 3, height, width), opset=17)
    onnx_model = onnx.load(str(output))
    set_metadata(onnx_model, {**metadata, "zoo_network": name, "zoo_data": data})
    tmp = output.with_name(output.name + ".tmp")
    onnx.save(onnx_model, str(tmp))
    tmp.replace(output)
    return {"network": name, "description": spec.description, "data": data, "train": len(train), "val": len(val),
            "history": history, "final": history[-1] if history else {}, "output": str(output)}
