"""Lane detection and object detection, end to end: the reference UFLD- and YOLO-style networks
trained on generated TuSimple / COCO data, compressed with SLR three ways, measured side by side.

    python bench/task_models.py [--quick] [--json docs/results/task_models.json] [--work DIR]

About 75 minutes on the 2-core CI box from scratch (50 with the dense models kept in --work); --quick about 3 minutes (too short to learn anything: it
checks that the pipeline runs).

1. Data: `compress zoo generate` writes training frames and, from another seed, a held-out test
   set in the official layouts (TuSimple JSON lines + clips/, COCO instances + images).
2. Dense models: `compress zoo train ufld|yolo` on the training set (their own 20% validation
   split), exported to ONNX with task, preprocessing and row anchors in the metadata.
3. Compression (`compressor.compress`, the task found from the data form): SLR at 80% unstructured,
   SLR at 2:4, and SLR with the channel pattern keeping half the multiply-adds (round-to auto), each
   with SLR's penalty epochs, hard pruning, then masked fine-tuning (FINETUNE, with the task's
   mirroring augmentation; the detector's own settings in NETWORK_FINETUNE); trained on the
   training set, measured on the held-out test set (--val-data),
   where the dense model is measured too: TuSimple accuracy / FP / FN, COCO mAP@0.5:0.95 and @0.5
   through pycocotools.
4. Every file counted the same way (parameters, non-zero parameters, multiply-adds on the graph's
   shapes, bytes) and timed in one interleaved `deploy.bench.bench` call per network (onnxruntime
   CPU, batch 1, the dense file again as a same-file control), ratios with 95% intervals and verdicts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from channel_pruning import onnx_facts, time_files  # noqa: E402

from compressor import compress  # noqa: E402
from compressor.files import write_json_atomic  # noqa: E402
from compressor.pipeline import DEFAULT_STAGES  # noqa: E402
from compressor.tasks.detection.synthetic import generate_coco  # noqa: E402
from compressor.tasks.lane.synthetic import generate_tusimple  # noqa: E402
from deploy.zoo.task_models import NETWORKS, train_network  # noqa: E402

NO_LATENCY = tuple(s for s in DEFAULT_STAGES if s != "measure")  # timed together afterwards, interleaved
FULL = {"lane_train": 1000, "lane_test": 250, "coco_train": 1500, "coco_test": 300, "ufld_epochs": 40, "yolo_epochs": 30,
        "slr_epochs": 3, "retrain_epochs": 6, "seconds": 2.0}
QUICK = {"lane_train": 48, "lane_test": 16, "coco_train": 48, "coco_test": 16, "ufld_epochs": 1, "yolo_epochs": 1,
         "slr_epochs": 1, "retrain_epochs": 1, "seconds": 0.3}
# fine-tuning: Adam 1e-3 (cosine) on the graph as exported. Measured on the dense UFLD of the first
# run (75.7% TuSimple accuracy), magnitude at 80% then 5 epochs: 71.3% at 1e-3, 60.1% at 1e-3 with
# --reinsert-bn, and SLR with --reinsert-bn at 2e-4 only 46.9%: too little to recover the hard prune.
FINETUNE = {"optimizer": "adam", "lr": 1e-3, "batch_size": 16, "lr_schedule": "cosine",
            # as recorded, from before issue 14's SLR defaults (BatchNorm put back and recalibrated, rho
            # grown to 4, the step following it): fixed rho, BatchNorm only where NETWORK_FINETUNE says
            "reinsert_bn": False, "recalibrate_bn": False, "rho_final": 0.1, "slr_step_follows_rho": False}
VARIANTS = {
    "slr-80%": {"pattern": "unstructured", "sparsity": 0.8},
    "slr-2:4": {"pattern": "2:4"},
    "slr-channel-50%": {"pattern": "channel", "target_flops": 0.5, "round_to": "auto"},
}
# Removing half the multiply-adds as whole channels costs more than zeroing weights: the first run
# (6 fine-tuning epochs for every variant) lost 5.7 points of TuSimple accuracy on the channel
# variant and gained 1.3 on 2:4, 12 epochs lost 1.7; the channel variant gets three times the
# fine-tuning (the budget is reported with each row). --reinsert-bn measured worse here (69.3% after 8 epochs, against 74.4%).
RETRAIN_FACTOR = {"slr-channel-50%": 3}
# The detector (width 8: little to spare) needed more than the lane model, measured on 2:4 after 3
# SLR epochs (dense 60.56 mAP@0.5:0.95; docs/benchmarks.md):
# - its convs have BatchNorm folded by the exporter; fine-tuned as they are, an 80% hard prune
#   stalled at 3.9 mAP: --reinsert-bn (the run trains the normalised network, folded at the end);
# - 6 epochs gave 54.2; 24 epochs peaked at 57.1 (epoch 12), then overfit (training loss under the
#   dense model's, validation loss rising) and decayed (per-epoch folding, since removed); the dense
#   model as a second teacher (--distill-weight 1) with the two items below took the 6-epoch figure
#   to 55.7, and BatchNorm kept for the whole run plus mirroring (the task's default augmentation) to 56.9;
# - a rho growing tenfold per epoch (0.1, 1, 10) cut ||W - Z|| from 40.6 to 13.6 and doubled the
#   hard-pruned mAP (9.4 to 18.2, 21.7 recalibrated: --recalibrate-bn);
# so its fine-tuning is three times as long for 2:4 and the channel variant.
NETWORK_FINETUNE = {"yolo": {"reinsert_bn": True, "recalibrate_bn": True, "distill_weight": 1.0, "rho_growth": 10.0}}
NETWORK_RETRAIN_FACTOR = {"yolo": {"slr-2:4": 3, "slr-channel-50%": 3}}
NETWORK_DATA = {"ufld": "lane", "yolo": "coco"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def count_nonzero(path: Path) -> int:
    from onnx import numpy_helper

    return int(sum(np.count_nonzero(numpy_helper.to_array(t)) for t in onnx.load(str(path)).graph.initializer))


def make_data(work: Path, settings: dict) -> dict[str, tuple[str, str]]:
    """(training spec, test spec) per data kind, generated once into `work`."""
    lanes_train, lanes_test = work / "tusimple-train", work / "tusimple-test"
    coco_train, coco_test = work / "coco-train", work / "coco-test"
    started = time.perf_counter()
    if not (lanes_train / "label_data_synthetic.json").exists():
        generate_tusimple(lanes_train, settings["lane_train"], seed=1)
        generate_tusimple(lanes_test, settings["lane_test"], seed=2)
    ann_train = coco_train / "annotations" / "instances_synthetic.json"
    ann_test = coco_test / "annotations" / "instances_synthetic.json"
    if not ann_train.exists():
        generate_coco(coco_train, settings["coco_train"], seed=1)
        generate_coco(coco_test, settings["coco_test"], seed=2)
    log(f"data ready in {time.perf_counter() - started:.0f} s")
    return {"lane": (f"tusimple:{lanes_train}", f"tusimple:{lanes_test}"),
            "coco": (f"coco:{ann_train}", f"coco:{ann_test}")}


def run_network(name: str, specs: tuple[str, str], work: Path, settings: dict, command: str) -> dict:
    train_spec, test_spec = specs
    dense_path, record = work / f"{name}.onnx", work / f"{name}-training.json"
    if dense_path.exists() and record.exists():  # a --work folder keeps its dense models between runs
        training = json.loads(record.read_text())
        log(f"{name}: reusing {dense_path} ({training['final']})")
    else:
        started = time.perf_counter()
        training = train_network(name, train_spec, dense_path, epochs=settings[f"{name}_epochs"], seed=0, log=log)
        training["wall_s"] = time.perf_counter() - started
        write_json_atomic(record, training)
    height, width = NETWORKS[name].input_size
    shape = [1, 3, height, width]
    files = {"dense": dense_path}
    rows = []
    for variant, options in VARIANTS.items():
        out = work / f"{name}-{variant.replace(':', '')}"
        started = time.perf_counter()
        retrain = settings["retrain_epochs"] * NETWORK_RETRAIN_FACTOR.get(name, RETRAIN_FACTOR).get(variant, 1)
        report = compress(dense_path, method="slr", data=train_spec, val_data=test_spec, output=out, progress=False,
                          stages=NO_LATENCY, log=lambda message: None, seed=0, epochs=settings["slr_epochs"],
                          retrain_epochs=retrain, **{**FINETUNE, **NETWORK_FINETUNE.get(name, {})}, **options)
        path = out / "model.onnx"
        files[variant] = path
        metrics = report["metrics"]
        primary = metrics["primary"]
        after = (report.get("after_pruning") or {}).get("metrics", {})
        row = {"variant": variant, **options, **NETWORK_FINETUNE.get(name, {}), "slr_epochs": settings["slr_epochs"], "retrain_epochs": retrain, "primary": primary, "dense": metrics["dense"], "compressed": metrics["compressed"],
               "hard_pruned": after, "recalibrated": (report.get("after_pruning") or {}).get("recalibrated") or {},
               "sparsity": report["sparsity"], "wall_s": time.perf_counter() - started,
               **onnx_facts(path, shape), "nonzero_params": count_nonzero(path), "notes": report["notes"]}
        row["points_lost"] = 100 * (metrics["dense"][primary] - metrics["compressed"][primary])
        rows.append(row)
        log(f"{name} {variant}: {primary} {100 * metrics['dense'][primary]:.2f} -> {100 * metrics['compressed'][primary]:.2f} "
            f"({-row['points_lost']:+.2f} pp), hard-pruned {100 * after.get(primary, float('nan')):.2f}, "
            f"sparsity {report['sparsity']:.1%}, MACs {row['macs']:,}, {row['wall_s']:.0f} s")
    dense_row = {"variant": "dense", **onnx_facts(dense_path, shape), "nonzero_params": count_nonzero(dense_path),
                 "metrics": rows[0]["dense"] if rows else {}}
    latency = time_files(files, work / f"{name}-latency", (1,), settings["seconds"], command)
    return {"network": NETWORKS[name].description, "input": shape, "training": training, "dense": dense_row,
            "variants": rows, "latency": latency}


def table(results: dict) -> str:
    lines = ["| network | variant | metric | dense | compressed | hard-pruned (BN recalibrated) | params (non-zero) | MACs | p50 ms | speed-up [95%] |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, net in results["networks"].items():
        batch = net["latency"]["batches"][1]
        dense = net["dense"]
        lines.append(f"| {name} | dense | | | | | {dense['params']:,} ({dense['nonzero_params']:,}) | {dense['macs']:,} | "
                     f"{batch['dense']['p50_ms']:.3f} | control {batch['control']['ratio']:.3f} |")
        for row in net["variants"]:
            primary = row["primary"]
            item = batch.get(row["variant"], {})
            low, high = item.get("interval") or (float("nan"), float("nan"))
            hard = row["hard_pruned"].get(primary)
            recalibrated = row.get("recalibrated", {}).get(primary)
            lines.append(
                f"| {name} | {row['variant']} | {primary} | {100 * row['dense'][primary]:.2f} | {100 * row['compressed'][primary]:.2f} | "
                f"{'-' if hard is None else f'{100 * hard:.2f}'}{'' if recalibrated is None else f' ({100 * recalibrated:.2f})'} | {row['params']:,} ({row['nonzero_params']:,}) | {row['macs']:,} | "
                f"{item.get('p50_ms', float('nan')):.3f} | {item.get('speedup', float('nan')):.2f}x [{low:.2f}-{high:.2f}] "
                f"{item.get('verdict', '')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, help="Keep data and models here (default: a temporary folder).")
    parser.add_argument("--networks", nargs="+", default=list(NETWORK_DATA), choices=list(NETWORK_DATA))
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    command = " ".join(["python", "bench/task_models.py", *sys.argv[1:]])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        specs = make_data(work, settings)
        networks = {name: run_network(name, specs[NETWORK_DATA[name]], work, settings, command) for name in args.networks}
    first = next(iter(networks.values()))["latency"]
    results = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {**first["machine"], "cpu_count": os.cpu_count(), "torch": torch.__version__},
               "settings": settings, "finetune": FINETUNE, "networks": networks,
               "wall_s": time.perf_counter() - started}
    print(table(results))
    if args.json:
        write_json_atomic(args.json, results)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
