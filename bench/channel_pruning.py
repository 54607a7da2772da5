"""Channel pruning (`--pattern channel --target-flops 0.5`) against Torch-Pruning: accuracy, size,
multiply-adds and onnxruntime CPU latency of the physically slimmer ONNX files, side by side.

    python bench/channel_pruning.py [--quick] [--json out.json] [--retrain-epochs R] [--slr-epochs T]
                                    [--finetune-lr 1e-3 1e-4] [--round-to 16] [--detector-round-to 16 8]
                                    [--widths 48 96 192] [--stem-stride 1] [--seconds S] [--no-detectors]
                                    [--data-dir DIR]

About 30 minutes on the 2-core CI box; --quick about 4 minutes.

1. The residual CNN (deploy/zoo/models/small_resnet.py, by default at widths 48/96/192 with a
   stride-1 stem: 181 M multiply-adds, 2 ms a run, so that its time is convolutions) on MNIST-5k
   (bench/mnist_data.py: 4,000 train / 1,000 held-out test, seed 0): the dense model is trained
   (Adam 1e-3, cosine), exported to ONNX (BatchNorm folded), and pruned by our pipeline
   (`compressor.compress`, pattern channel, target_flops 0.5, per --round-to) with masked
   fine-tuning on the training split: magnitude (one-shot, then R epochs) at each fine-tuning lr,
   on the folded graph as it is and with --reinsert-bn (BatchNorm put back for training), and SLR
   (T penalty epochs, then R epochs with --reinsert-bn) at the last lr. Torch-Pruning (the `bench` extra; skipped
   with a message when it is not installed) prunes the same trained PyTorch module: MagnitudePruner
   with GroupMagnitudeImportance(p=2) (the L2 group norm; 1.6.1 has no class named
   GroupNormImportance), the same round_to, `fc` ignored, its pruning ratio bisected so its
   multiply-adds come closest to ours; then fine-tuned with the same loop (R epochs, Adam, batch 64,
   cosine) at each lr, and exported to ONNX.
2. Every ONNX file is counted the same way: parameters (initializer elements), multiply-adds per
   sample (compressor.layer_costs on the graph's shapes), file size, and test accuracy in onnxruntime.
3. Latency: one `deploy.bench.bench` call (compressor/runtimes/latency.py's protocol, interleaved,
   with the dense file timed again as a same-file control) per network, over all its files of
   distinct shapes, at batch 1 and 8 for the classifier and batch 1 for the detectors; ratios are
   dense p50 / file p50 with 95% bootstrap intervals and verdicts, and ours against Torch-Pruning's
   from the same rounds.
4. The UFLD-style (1x3x288x800) and YOLO-style (1x3x640x640) networks, seeded random weights (latency
   does not depend on the values), at each --detector-round-to: ours one-shot without data (epochs 0,
   random inputs, sensitivity off, error budget off, so every group stays prunable), Torch-Pruning on
   the same module at the matched multiply-adds where it can trace it.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor import compress  # noqa: E402
from compressor.files import write_json_atomic  # noqa: E402
from compressor.layer_costs import layer_costs  # noqa: E402
from compressor.onnx_import import load_onnx  # noqa: E402
from compressor.pipeline import DEFAULT_STAGES  # noqa: E402
from compressor.runtimes.latency import LatencyProtocol  # noqa: E402
from compressor.runtimes.verdict import compare  # noqa: E402
from deploy.bench import bench  # noqa: E402
from deploy.zoo.export import export_reference  # noqa: E402
from deploy.zoo.mnist import SPLIT_SEED, TRAIN_SAMPLES, load_mnist_split  # noqa: E402
from deploy.zoo.models.small_resnet import SmallResNet  # noqa: E402
from deploy.zoo.models.ufld import UFLD  # noqa: E402
from deploy.zoo.models.yolo import YOLO  # noqa: E402
from deploy.zoo.training import train_classifier  # noqa: E402
from exporters.slim import count_params  # noqa: E402
from mnist_data import locate_mnist, train_dense, write_split  # noqa: E402
from slr_admm import SLR_OPTIONS  # noqa: E402

try:
    import torch_pruning as tp
except ImportError:  # the `bench` extra is optional
    tp = None

# The pipeline's own latency stage is skipped: every file is timed here, together, in one run.
NO_LATENCY = tuple(stage for stage in DEFAULT_STAGES if stage != "measure")
TARGET_FLOPS = 0.5
TARGET_SPEEDUP = 1.6  # the bar at 50% of multiply-adds kept, batch 1
# Torch-Pruning's one ratio moves in coarse steps: when its multiply-adds end more than this far
# from ours, ours runs once more at exactly its fraction ("ours-matched"), for a like-for-like pair.
MATCH_TOLERANCE = 0.01
# The same fine-tuning loop for ours and Torch-Pruning's (deploy.zoo.training.train_classifier), with
# the pipeline's default cosine schedule: at a constant lr the wide network's test accuracy swings by
# several points from one epoch to the next on 4,000 samples.
FINETUNE = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64}
SCHEDULE = "cosine"
# Both tools fine-tune at each of these learning rates (the same loop otherwise). Ours trains the
# exported graph, whose BatchNorm is folded into the convs, and Adam at 1e-3 is too coarse for
# unnormalised weights; Torch-Pruning keeps BatchNorm and may prefer 1e-3. Each gets its best.
FINETUNE_LRS = (1e-3, 1e-4)
DENSE = {"epochs": 6, "lr": 1e-3, "schedule": SCHEDULE}
# The classifier: the residual CNN at widths 48/96/192 with a stride-1 stem (stages at 28, 14 and 7
# pixels). The reference widths 16/32/64 with a stride-2 stem run in 0.2 ms, mostly onnxruntime's
# per-operator overhead, which no channel count removes (1.18x at 49% of multiply-adds, run of
# 2026-12-03); at this size a run is 2 ms of convolutions, the regime in which pruning is worth doing.
CLASSIFIER = {"widths": (48, 96, 192), "stem_stride": 1}
# round-to 16 first: onnxruntime's CPU convolutions use a channel block of 16 on AVX-512 (MLAS's
# NchwcBlockSize; 8 on AVX2), and counts off that multiple leave the blocked kernels (docs/benchmarks.md).
DEFAULTS = {"retrain_epochs": 5, "slr_epochs": 5, "round_to": (16,), "detector_round_to": (16, 8), "seconds": 2.0,
            "batches": (1, 8), "ufld": (288, 800), "yolo": (640, 640)}
QUICK = {"dense_epochs": 1, "retrain_epochs": 1, "slr_epochs": 1, "round_to": (16,), "detector_round_to": (16,),
         "seconds": 0.5, "batches": (1,), "ufld": (128, 320), "yolo": (320, 320)}


# ---- counting every file the same way --------------------------------------------------------------
def onnx_facts(path: Path, input_shape: list[int]) -> dict:
    """Parameters, multiply-adds per sample (layer_costs on the graph's shapes) and bytes of one file."""
    costs = layer_costs(load_onnx(path), input_shape)
    return {"params": count_params(onnx.load(str(path))), "macs": int(sum(c.macs or 0 for c in costs.values())),
            "file_bytes": path.stat().st_size}


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, chunk: int = 250) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = 0
    for start in range(0, len(x), chunk):
        logits = session.run(None, {name: x[start:start + chunk]})[0]
        correct += int((logits.argmax(1) == y[start:start + chunk]).sum())
    return correct / len(x)


# ---- ours --------------------------------------------------------------------------------------------
def run_ours(onnx_path: Path, out_dir: Path, target: float = TARGET_FLOPS, **options) -> tuple[Path, dict]:
    report = compress(onnx_path, pattern="channel", target_flops=target, output=out_dir, progress=False,
                      stages=NO_LATENCY, log=lambda message: None, seed=0, **options)
    return out_dir / "model.onnx", report


def ours_summary(report: dict) -> dict:
    channels = report["plan"]["channels"]
    slim = report.get("slim") or {}
    return {"plan_macs": channels["macs"], "plan_kept_fraction": channels["macs"]["kept"] / channels["macs"]["dense"],
            "groups": [(g["label"], g["channels"], g["kept"]) for g in channels["groups"]],
            "channels_removed": slim.get("channels_removed"),
            "slim_parity": (slim.get("parity") or {}).get("max_relative_error"),
            "wall_s": report["timings"]["total_s"]}


# ---- Torch-Pruning -----------------------------------------------------------------------------------
def tp_prune(module: torch.nn.Module, example: torch.Tensor, target: float, round_to: int, ignored) -> tuple:
    """Torch-Pruning's magnitude pruner (L2 group norm) on a copy of `module`, its pruning ratio
    bisected so that its kept multiply-adds (its own counter, against the dense module) come closest to
    `target`; returns (pruned module, ratio, kept fraction)."""
    dense_macs, _ = tp.utils.count_ops_and_params(module, example)

    def pruned(ratio: float):
        model = copy.deepcopy(module).eval()
        pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                           pruning_ratio=ratio, ignored_layers=ignored(model), round_to=round_to)
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(model, example)
        return model, macs / dense_macs

    best = None
    low, high = 0.0, 0.9
    for _ in range(12):
        mid = (low + high) / 2
        model, kept = pruned(mid)
        if best is None or abs(kept - target) < abs(best[2] - target):
            best = (model, mid, kept)
        if kept > target:
            low = mid
        else:
            high = mid
    return best


def resnet_ignored(model):
    return [model.fc]


def ufld_ignored(model):
    return [model.cls[2]]


def yolo_ignored(model):
    return [seq[2] for seq in model.head.box] + [seq[2] for seq in model.head.cls]


class C2fTwoConvs(torch.nn.Module):
    """A C2f block whose 1x1 conv and split into halves are two 1x1 convs, one per half (the same
    function). Torch-Pruning 1.6.1 cannot trace channels through the split and concat (IndexError in
    its shape inference); its YOLOv8 recipe rewrites the block this way before pruning."""

    def __init__(self, block) -> None:
        super().__init__()
        hidden = block.hidden
        self.cv0, self.cv1 = copy.deepcopy(block.cv1), copy.deepcopy(block.cv1)
        for half, conv in enumerate((self.cv0, self.cv1)):
            rows = slice(half * hidden, (half + 1) * hidden)
            conv.conv.weight = torch.nn.Parameter(block.cv1.conv.weight.detach()[rows].clone())
            conv.conv.out_channels = hidden
            bn = conv.bn
            bn.num_features = hidden
            bn.weight = torch.nn.Parameter(block.cv1.bn.weight.detach()[rows].clone())
            bn.bias = torch.nn.Parameter(block.cv1.bn.bias.detach()[rows].clone())
            bn.running_mean = block.cv1.bn.running_mean[rows].clone()
            bn.running_var = block.cv1.bn.running_var[rows].clone()
        self.cv2, self.m = block.cv2, block.m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, dim=1))


def yolo_for_torch_pruning(module: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """A copy of the YOLO-style module with every C2f split rewritten as two convs, checked to compute the same."""
    from deploy.zoo.models.yolo import C2f

    model = copy.deepcopy(module).eval()
    for name, child in list(model.named_modules()):
        for attr, grandchild in list(child.named_children()):
            if isinstance(grandchild, C2f):
                setattr(child, attr, C2fTwoConvs(grandchild))
    with torch.no_grad():
        expected, got = module(example), model(example)
    error = float((expected - got).abs().max() / expected.abs().max().clamp_min(1e-12))
    if not error < 1e-4:
        raise AssertionError(f"C2f rewrite changed the output (relative error {error:.3g})")
    return model


# ---- latency -----------------------------------------------------------------------------------------
def time_files(files: dict[str, Path], folder: Path, batches, seconds: float, command: str) -> dict:
    """One interleaved measurement per batch of all `files` (the first is dense) plus the control."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, path in files.items():  # bench labels models by file name
        paths.append(folder / f"{label}.onnx")
        shutil.copyfile(path, paths[-1])
    result = bench(paths, batches=batches, protocol=LatencyProtocol(seconds=seconds), command=command)
    rows = {}
    for row in result["batches"]:
        entries = {Path(e["path"]).stem: e for e in row["models"]}
        out = {"control": {"ratio": row["control"]["ratio"], "interval": row["control"]["interval"]}}
        for label, e in entries.items():
            item = {"p50_ms": e["latency"]["p50_ms"], "runs": e["latency"]["runs"]}
            if "vs_first" in e:
                v = e["vs_first"]
                item.update(speedup=v["speedup"], interval=v["interval"], verdict=v["verdict"])
            out[label] = item
        theirs = [k for k in entries if k.startswith("torch-pruning")]
        for key in theirs:  # ours vs theirs, paired by round: their p50 / ours (>1: ours faster)
            for mine in (key.replace("torch-pruning", "ours"), key.replace("torch-pruning", "ours-matched")):
                if mine in entries:
                    v = compare(entries[key]["samples_ms"], entries[mine]["samples_ms"])
                    out[mine]["vs_torch_pruning"] = {"ratio": v.ratio, "verdict": v.verdict,
                                                     "interval": list(v.interval) if v.interval else None}
        rows[row["batch"]] = out
    return {"batches": rows, "machine": result["machine"], "device": result["device"], "threads": result["threads"],
            "protocol": result["protocol"], "date": result["date"]}


# ---- the two parts -----------------------------------------------------------------------------------
def classifier(args, settings, tmp: Path, command: str) -> dict:
    data = load_mnist_split(settings["data_path"])
    x_test, y_test = data[2], data[3]
    train_npz, test_npz = write_split(data, tmp)
    architecture = settings["classifier"]
    dense = train_dense("small-resnet", lambda: SmallResNet(**architecture), data, epochs=settings["dense_epochs"],
                        lr=DENSE["lr"], seed=0, path=tmp / "dense.onnx", keep_module=True, schedule=DENSE["schedule"])
    module = dense.pop("module")
    dense["architecture"] = architecture
    log(f"dense small-resnet {architecture}: {100 * dense['test_accuracy']:.2f}% test after "
        f"{settings['dense_epochs']} epochs")
    shape = [1, 1, 28, 28]
    files = {"dense": tmp / "dense.onnx"}
    rows = [{"model": "small-resnet", "variant": "dense", "round_to": None, "method": None,
             "accuracy": onnx_accuracy(files["dense"], x_test, y_test), **onnx_facts(files["dense"], shape)}]
    retrain = settings["retrain_epochs"]
    common = {"data": str(train_npz), "val_data": str(test_npz), "keep_ends_dense": False, "lr_schedule": SCHEDULE,
              **FINETUNE}
    lrs = settings["finetune_lrs"]
    for round_to in settings["round_to"]:
        # (method, lr, --reinsert-bn, budget): magnitude at every lr, on the folded graph as it is and
        # with BatchNorm put back; SLR (the costliest) at the last lr, BatchNorm put back for its retraining
        magnitude = {"epochs": 0, "retrain_epochs": retrain}
        runs = [("magnitude", lr, bn, magnitude) for bn in (False, True) for lr in lrs]
        if settings["slr_epochs"] > 0:
            slr = {k: v for k, v in SLR_OPTIONS.items() if k != "reinsert_bn"}  # --reinsert-bn is the run's own
            runs.append(("slr", lrs[-1], True, {"epochs": settings["slr_epochs"], "retrain_epochs": retrain, **slr}))
        ours_macs = None
        for method, lr, bn, budget in runs:
            path, report = run_ours(files["dense"], tmp / f"ours-{method}-r{round_to}-lr{lr:g}-bn{int(bn)}",
                                    method=method, round_to=round_to, reinsert_bn=bn, **{**common, "lr": lr}, **budget)
            facts = onnx_facts(path, shape)
            timed = ours_macs is None  # the files share one shape: timed once
            ours_macs = ours_macs or facts["macs"]
            if timed:
                files[f"ours-r{round_to}"] = path
            rows.append({"model": "small-resnet", "variant": "ours", "round_to": round_to, "method": method, "lr": lr,
                         "reinsert_bn": bn,
                         "epochs": budget["epochs"], "retrain_epochs": retrain,
                         "latency_key": f"ours-r{round_to}" if timed else "",
                         "accuracy": onnx_accuracy(path, x_test, y_test), **facts, **ours_summary(report)})
            log(_row_line(rows[-1], rows[0]))
        if tp is None:
            continue
        target = ours_macs / rows[0]["macs"]
        x_train, y_train = torch.from_numpy(data[0]), torch.from_numpy(data[1])
        for index, lr in enumerate(lrs):
            started = time.perf_counter()
            model, ratio, kept = tp_prune(module, torch.zeros(shape), target, round_to, resnet_ignored)
            if retrain > 0:
                train_classifier(model, x_train, y_train, epochs=retrain, seed=0, schedule=SCHEDULE, **{**FINETUNE, "lr": lr})
            path = tmp / f"torch-pruning-r{round_to}-lr{lr:g}.onnx"
            export_reference(model.eval(), path, tuple(shape), 17, "torchscript")
            if index == 0:
                files[f"torch-pruning-r{round_to}"] = path
            rows.append({"model": "small-resnet", "variant": "torch-pruning", "round_to": round_to, "lr": lr,
                         "method": "MagnitudePruner, GroupMagnitudeImportance(p=2)", "epochs": 0,
                         "retrain_epochs": retrain, "latency_key": f"torch-pruning-r{round_to}" if index == 0 else "",
                         "pruning_ratio": ratio, "tp_kept_fraction": kept,
                         "accuracy": onnx_accuracy(path, x_test, y_test), **onnx_facts(path, shape),
                         "wall_s": time.perf_counter() - started})
            log(_row_line(rows[-1], rows[0]))
        theirs = rows[-1]["macs"] / rows[0]["macs"]
        if abs(theirs - target) > MATCH_TOLERANCE:  # ours again at exactly their multiply-adds
            path, report = run_ours(files["dense"], tmp / f"ours-matched-r{round_to}", target=theirs,
                                    method="magnitude", round_to=round_to, reinsert_bn=True,
                                    **{**common, "lr": lrs[0]}, **magnitude)
            files[f"ours-matched-r{round_to}"] = path
            rows.append({"model": "small-resnet", "variant": "ours-matched", "round_to": round_to, "method": "magnitude",
                         "lr": lrs[0], "reinsert_bn": True, "epochs": 0, "retrain_epochs": retrain,
                         "target_flops": theirs, "latency_key": f"ours-matched-r{round_to}",
                         "accuracy": onnx_accuracy(path, x_test, y_test), **onnx_facts(path, shape),
                         **ours_summary(report)})
            log(_row_line(rows[-1], rows[0]))
    latency = time_files(files, tmp / "latency", settings["batches"], settings["seconds"], command)
    return {"dense": dense, "rows": rows, "latency": latency}


def detector(name: str, builder, size, settings, tmp: Path, ignored, command: str, prepare=None) -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = builder(input_size=size).eval()
    shape = [1, 3, *size]
    folder = tmp / name
    folder.mkdir()
    files = {"dense": folder / "dense.onnx"}
    export_reference(module, files["dense"], tuple(shape), 17, "torchscript")
    rows = [{"model": name, "variant": "dense", **onnx_facts(files["dense"], shape)}]
    for round_to in settings["detector_round_to"]:
        path, report = run_ours(files["dense"], folder / f"ours-r{round_to}", method="magnitude", epochs=0,
                                sensitivity="off", error_budget=0.0, keep_ends_dense=False, random_samples=8,
                                round_to=round_to)
        files[f"ours-r{round_to}"] = path
        ours = {"model": name, "variant": "ours", "round_to": round_to, **onnx_facts(path, shape),
                **ours_summary(report)}
        rows.append(ours)
        log(_row_line(ours, rows[0]))
        if tp is None:
            continue
        started = time.perf_counter()
        try:
            source = prepare(module, torch.rand(shape)) if prepare else module
            model, ratio, kept = tp_prune(source, torch.zeros(shape), ours["macs"] / rows[0]["macs"], round_to, ignored)
            path = folder / f"torch-pruning-r{round_to}.onnx"
            export_reference(model.eval(), path, tuple(shape), 17, "torchscript")
            files[f"torch-pruning-r{round_to}"] = path
            rows.append({"model": name, "variant": "torch-pruning", "round_to": round_to, "pruning_ratio": ratio,
                         "rewritten": "C2f split -> two 1x1 convs (C2fTwoConvs)" if prepare else None,
                         "tp_kept_fraction": kept, **onnx_facts(path, shape), "wall_s": time.perf_counter() - started})
            log(_row_line(rows[-1], rows[0]))
            theirs = rows[-1]["macs"] / rows[0]["macs"]
            if abs(theirs - ours["macs"] / rows[0]["macs"]) > MATCH_TOLERANCE:  # ours again at their multiply-adds
                path, report = run_ours(files["dense"], folder / f"ours-matched-r{round_to}", target=theirs,
                                        method="magnitude", epochs=0, sensitivity="off", error_budget=0.0,
                                        keep_ends_dense=False, random_samples=8, round_to=round_to)
                files[f"ours-matched-r{round_to}"] = path
                rows.append({"model": name, "variant": "ours-matched", "round_to": round_to, "target_flops": theirs,
                             **onnx_facts(path, shape), **ours_summary(report)})
                log(_row_line(rows[-1], rows[0]))
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            rows.append({"model": name, "variant": "torch-pruning", "round_to": round_to,
                         "failed": f"{type(error).__name__}: {error}"})
            log(f"{name}: Torch-Pruning failed: {rows[-1]['failed']}")
    latency = time_files(files, folder / "latency", (1,), settings["seconds"], command)
    return {"input": shape, "rows": rows, "latency": latency}


# ---- output ------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _row_line(row: dict, dense: dict) -> str:
    acc = f"{100 * row['accuracy']:.2f}%" if row.get("accuracy") is not None else "-"
    return (f"{row['model']} {row['variant']} {row.get('method') or ''} r{row.get('round_to')}: acc {acc}, "
            f"params {row['params']:,}, MACs {row['macs']:,} ({row['macs'] / dense['macs']:.1%})")


def _speed(item: dict | None) -> str:
    if not item or "speedup" not in item:
        return "-"
    low, high = item["interval"] or (float("nan"), float("nan"))
    return f"{item['speedup']:.2f}x [{low:.2f}-{high:.2f}] {item['verdict']}"


def latency_key(row: dict) -> str:
    if row["variant"] == "dense":
        return "dense"
    if "latency_key" in row:  # "" for a file of the same shapes as one timed already
        return row["latency_key"]
    return f"{row['variant']}-r{row['round_to']}"


def format_table(results: dict) -> str:
    lines = []
    header = f"{'model':13} {'variant':14} {'method':9} {'rt':>2} {'lr':>6} {'acc %':>6} {'params':>9} {'MACs':>12} {'kept':>6} " \
             f"{'bytes':>10}  {'batch 1 vs dense [95%]':34} {'batch 8 vs dense':34}"
    lines += [header, "-" * len(header)]
    for part in results["networks"].values():
        dense = part["rows"][0]
        batches = part["latency"]["batches"]
        for row in part["rows"]:
            if row.get("failed"):
                lines.append(f"{row['model']:13} {row['variant']:14} failed: {row['failed'][:90]}")
                continue
            key = latency_key(row)
            method = (row.get("method") or "")[:9] if row["variant"] != "torch-pruning" else "TP-L2"
            method = f"{method[:6]}+bn" if row.get("reinsert_bn") else method
            acc = f"{100 * row['accuracy']:.2f}" if row.get("accuracy") is not None else "-"
            b1 = _speed(batches.get(1, {}).get(key)) if key else "(same shapes, timed above)"
            b8 = _speed(batches.get(8, {}).get(key)) if key else ""
            lines.append(f"{row['model']:13} {row['variant']:14} {method:9} {str(row.get('round_to') or ''):>2} {format(row['lr'], 'g') if row.get('lr') else '':>6} {acc:>6} "
                         f"{row['params']:>9,} {row['macs']:>12,} {row['macs'] / dense['macs']:>6.1%} "
                         f"{row['file_bytes']:>10,}  {b1:34} {b8:34}")
        for batch, out in batches.items():
            c = out["control"]
            span = f" [{c['interval'][0]:.3f}-{c['interval'][1]:.3f}]" if c["interval"] else ""
            versus = "; ".join(f"{k}: TP p50 / ours {v['vs_torch_pruning']['ratio']:.3f}"
                               + (f" [{v['vs_torch_pruning']['interval'][0]:.3f}-{v['vs_torch_pruning']['interval'][1]:.3f}]"
                                  if v["vs_torch_pruning"]["interval"] else "")
                               for k, v in out.items() if isinstance(v, dict) and "vs_torch_pruning" in v)
            lines.append(f"  batch {batch}: same-file control {c['ratio']:.3f}{span}" + (f"; {versus}" if versus else ""))
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, round-to 8 only, smaller detector inputs")
    parser.add_argument("--json", type=Path, help="write every figure here (with machine, date, command)")
    parser.add_argument("--retrain-epochs", type=int, help="R: fine-tuning epochs, ours and Torch-Pruning's")
    parser.add_argument("--finetune-lr", type=float, nargs="+",
                        help=f"fine-tuning learning rates, each for both tools (default {' '.join(map(str, FINETUNE_LRS))})")
    parser.add_argument("--slr-epochs", type=int, help="T: SLR penalty epochs (0: no SLR row)")
    parser.add_argument("--round-to", type=int, nargs="+", help="classifier: one configuration per value")
    parser.add_argument("--detector-round-to", type=int, nargs="+", help="detectors: one configuration per value")
    parser.add_argument("--widths", type=int, nargs=3, help=f"classifier stage widths (default {CLASSIFIER['widths']})")
    parser.add_argument("--stem-stride", type=int, choices=(1, 2),
                        help=f"classifier stem stride (default {CLASSIFIER['stem_stride']})")
    parser.add_argument("--seconds", type=float, help="latency: timed seconds per measurement")
    parser.add_argument("--no-detectors", action="store_true", help="only the MNIST classifier")
    parser.add_argument("--data-dir", type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data_path = locate_mnist(args.data_dir)
    if data_path is None:
        return 2
    base = QUICK if args.quick else DEFAULTS
    settings = {"data_path": data_path, "dense_epochs": QUICK["dense_epochs"] if args.quick else DENSE["epochs"],
                "retrain_epochs": base["retrain_epochs"] if args.retrain_epochs is None else args.retrain_epochs,
                "finetune_lrs": tuple(args.finetune_lr or FINETUNE_LRS),
                "slr_epochs": base["slr_epochs"] if args.slr_epochs is None else args.slr_epochs,
                "round_to": tuple(args.round_to or base["round_to"]), "seconds": args.seconds or base["seconds"],
                "detector_round_to": tuple(args.detector_round_to or base["detector_round_to"]),
                "classifier": {"widths": tuple(args.widths or CLASSIFIER["widths"]),
                               "stem_stride": args.stem_stride or CLASSIFIER["stem_stride"]},
                "batches": base["batches"], "ufld": base["ufld"], "yolo": base["yolo"]}
    if tp is None:
        log("torch_pruning is not installed (pip install -c constraints.txt -e '.[bench]'): "
            "the Torch-Pruning rows are skipped")
    command = " ".join(["python", "bench/channel_pruning.py", *sys.argv[1:]])
    started = time.perf_counter()
    networks = {}
    with tempfile.TemporaryDirectory(prefix="channel_pruning_") as tmp:
        tmp = Path(tmp)
        networks["small-resnet"] = classifier(args, settings, tmp, command)
        if not args.no_detectors:
            networks["ufld"] = detector("ufld", UFLD, settings["ufld"], settings, tmp, ufld_ignored, command)
            networks["yolo"] = detector("yolo", YOLO, settings["yolo"], settings, tmp, yolo_ignored, command,
                                        prepare=yolo_for_torch_pruning)
    total = time.perf_counter() - started
    first = next(iter(networks.values()))["latency"]
    results = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {**first["machine"], "cpu_count": os.cpu_count(), "torch": torch.__version__,
                           "torch_pruning": getattr(tp, "__version__", None) if tp else None},
               "device": first["device"], "threads": first["threads"], "protocol": first["protocol"],
               "settings": {**{k: v for k, v in settings.items() if k != "data_path"}, "quick": args.quick,
                            "target_flops": TARGET_FLOPS, "finetune": {**FINETUNE, "lr_schedule": SCHEDULE, "lrs": settings["finetune_lrs"]},
                            "dense": DENSE, "slr": SLR_OPTIONS,
                            "split": {"seed": SPLIT_SEED, "train": TRAIN_SAMPLES}},
               "networks": networks, "total_s": total}
    print(f"channel pruning at target_flops {TARGET_FLOPS}, {results['device']}, {results['threads']} threads, "
          f"{results['date']}" + (" [--quick]" if args.quick else ""))
    print(format_table(results))
    print(f"total {total:.0f} s; ratios: dense p50 / file p50 (>1: faster), 95% bootstrap interval, verdict")
    if args.json:
        write_json_atomic(args.json, results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
