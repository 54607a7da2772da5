"""OLMP vs iterative global magnitude pruning vs SLR on LeNet-300-100 and LeNet-5 (MNIST-5k).

    python bench/olmp_lenet.py [--quick] [--json out.json] [--models lenet300 lenet5] [--seed S]
                               [--dense-dir DIR] [--data-dir DIR]

Data: MNIST-5k, 4,000 train / 1,000 held-out test (deploy/zoo/mnist.py). The project trains each
dense LeNet (Adam, fixed epochs) and exports it to ONNX. Every compressed model then comes from
the public `compressor.compress` API with the same data, seed, optimizer (Adam 1e-3, cosine per
phase), batch size 64 and training budget of A + R epochs:

  olmp       A epochs of pruning and adjusting (15 NCS calls of 400 evaluations on the c-rates,
             recoverable masks), then R epochs of frozen-mask retraining. The accuracy bound is
             measured on 512 fixed *training* samples, so the test set plays no part in any
             decision; each search call may lose MAX_DROP points against the net before it.
  magnitude  the classic three-stage baseline, iterated: global magnitude pruning with masks raised
             along a cubic ramp while training (A + R epochs, last quarter at the final masks),
             every layer pruned. Swept over target sparsities; the row shown is the sparsest whose
             test accuracy loss is no larger than OLMP's (or 0 when OLMP gained; at most 1 point).
  slr        A epochs of SLR penalty training, hard pruning, R epochs of masked retraining, at a
             global target equal to the weight sparsity OLMP reached.

Compression ratio = all stored weights and biases / nonzero ones (as the paper counts). OLMP
prunes biases with their layer; magnitude and SLR prune weights only, as the toolchain's
patterns do, so their ratio also counts every bias as kept. "kept per layer" = nonzero / size of
weight + bias. The LeNet-5 flops row runs OLMP with --objective flops at the same bound.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor import compress  # noqa: E402
from compressor.layer_costs import layer_costs  # noqa: E402
from compressor.onnx_import import load_onnx  # noqa: E402
from compressor.pipeline import DEFAULT_STAGES  # noqa: E402
from deploy.zoo.mnist import MNIST_FILE, TRAIN_SAMPLES, load_mnist_split  # noqa: E402
from deploy.zoo.models.lenet import LeNet5, LeNet300  # noqa: E402
from mnist_data import locate_mnist, train_dense, write_split  # noqa: E402

# Accuracy and compression are what this benchmark is about, not speed: it records no latency, so the
# runs skip the measure stage (a latency figure here would need the protocol's verdict, and its
# seconds per run; `compress bench` and bench/latency_repeatability.py are the latency benchmarks).
NO_LATENCY = tuple(stage for stage in DEFAULT_STAGES if stage != "measure")

MAX_LOSS_POINTS = 1.0  # the acceptance bound on test accuracy loss
COMMON = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "keep_ends_dense": False}
DENSE = {"lenet300": (LeNet300, 30, 1e-3), "lenet5": (LeNet5, 20, 1e-3)}  # builder, epochs, lr
PAPER = {"lenet300": 113.5, "lenet5": 297.7}  # released OLMP models (olmp.md §7)


OLMP = {"constraint_baseline": "current", "constraint_data": "train", "constraint_samples": 512,
        "search_calls": 15, "search_budget": 400, "ncs_sigma": 1.0,
        # as recorded (issue 5): the reference's per-step layer selection, the per-call bound; issue 14's
        # settings (every layer searched, a whole-run bound) are bench/method_seeds.py's
        "search_layers": "selected"}
# Points of training-sample accuracy one search call may lose against the net before it. Like the
# reference (delta 0.08 for LeNet-300-100, 0.05 for LeNet-5, on 64 samples) the bound is per model.
MAX_DROP = {"lenet300": 1.0, "lenet5": 0.5}


def olmp_options(model: str, adjust: int, retrain: int, quick: bool) -> dict:
    quick_changes = {"search_calls": 3, "search_budget": 60} if quick else {}
    return {"method": "olmp", "epochs": adjust, "retrain_epochs": retrain, "max_accuracy_drop": MAX_DROP[model],
            **OLMP, **quick_changes}


BUDGETS = {"lenet300": (15, 15), "lenet5": (15, 15)}  # (A, R) epochs
# The SLR row as recorded, from before issue 14's SLR defaults (SGD, BatchNorm put back, rho grown to 4):
# Adam (COMMON), a fixed rho, no BatchNorm reinsertion. bench/method_seeds.py runs the new defaults.
RECORDED_SLR = {"rho_final": 0.1, "slr_step_follows_rho": False, "reinsert_bn": False, "recalibrate_bn": False}
MAGNITUDE_SPARSITIES = (0.95, 0.97, 0.98, 0.985, 0.99, 0.993, 0.995)
QUICK = {"dense_epochs": 2, "budget": (2, 1), "sparsities": (0.9, 0.95)}


# ---- runs ------------------------------------------------------------------------------------------
def run(onnx_path: Path, split: tuple[Path, Path], out_dir: Path, seed: int, **options) -> dict:
    return compress(onnx_path, data=str(split[0]), val_data=str(split[1]), seed=seed, output=out_dir,
                    progress=False, stages=NO_LATENCY, log=lambda message: None, **COMMON, **options)


def kept_per_layer(report: dict) -> dict[str, float]:
    """Nonzero fraction of weight + bias per prunable layer, read back from the written file."""
    path = report["outputs"]["onnx"]
    arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    kept = {}
    for name, cost in layer_costs(load_onnx(path)).items():
        tensors = [arrays[name]] + ([arrays[cost.bias]] if cost.bias else [])
        kept[name.split(".")[0]] = sum(int(np.count_nonzero(a)) for a in tensors) / sum(a.size for a in tensors)
    return kept


def summarise(report: dict, model: str, label: str, seed: int) -> dict:
    dense, compressed = report["metrics"]["dense"]["accuracy"], report["metrics"]["compressed"]["accuracy"]
    olmp = report.get("olmp") or {}
    return {
        "model": model, "method": label, "seed": seed, "dense_accuracy": dense, "accuracy": compressed,
        "loss_points": 100 * (dense - compressed), "compression_ratio": report["compression_ratio"],
        "nonzero": report["params"]["nonzero"], "total": report["params"]["total"],
        "weight_sparsity": report["sparsity"], "target_sparsity": report["target_sparsity"],
        "kept_per_layer": kept_per_layer(report),
        "remaining_macs": olmp.get("remaining_macs"), "macs": olmp.get("macs"),
        "c_rates": [layer["c_rate"] for layer in olmp.get("layers", [])] or None,
        "searches": len(olmp.get("searches", [])) or None,
        "wall_s": report["timings"]["total_s"],
    }


def remaining_macs(report: dict) -> int:
    """Multiply-adds per sample left in a written model (weights only), for rows without OLMP's count."""
    path = report["outputs"]["onnx"]
    module = load_onnx(path)
    total = 0
    for name, cost in layer_costs(module, [1, 1, 28, 28]).items():
        total += cost.macs_per_weight * int(torch.count_nonzero(module.parameter(name)))
    return total


# ---- table -------------------------------------------------------------------------------------------
def format_table(rows: list[dict]) -> str:
    header = ["model", "method", "dense %", "compr. %", "loss pp", "ratio", "nonzero", "MACs left", "kept per layer (w+b)", "wall s"]
    lines = []
    for r in rows:
        layers = " ".join(f"{k} {100 * v:.2f}%" for k, v in r["kept_per_layer"].items())
        lines.append([r["model"], r["method"], f"{100 * r['dense_accuracy']:.2f}", f"{100 * r['accuracy']:.2f}",
                      f"{r['loss_points']:+.2f}", f"{r['compression_ratio']:.1f}x", f"{r['nonzero']:,}",
                      f"{r['remaining_macs']:,}", layers, f"{r['wall_s']:.0f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    text_columns = {0, 1, 8}

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(line) for line in lines)])


def best_magnitude(rows: list[dict], olmp_loss: float) -> dict | None:
    """The sparsest magnitude row that loses no more than OLMP (and at most MAX_LOSS_POINTS)."""
    allowed = min(max(olmp_loss, 0.0), MAX_LOSS_POINTS) + 1e-9
    eligible = [r for r in rows if r["loss_points"] <= allowed]
    return max(eligible, key=lambda r: r["compression_ratio"]) if eligible else None


# ---- main ----------------------------------------------------------------------------------------------
def dense_model(name: str, data, args, folder: Path) -> dict:
    builder, epochs, lr = DENSE[name]
    epochs = QUICK["dense_epochs"] if args.quick else epochs
    if args.dense_dir:  # reuse a dense model trained with the same recipe (tuning runs)
        split = "" if args.split_seed == 0 else f"-split{args.split_seed}"
        cached = args.dense_dir / f"{name}-e{epochs}-s{args.seed}{split}.onnx"
        meta = cached.with_suffix(".json")
        if not cached.exists():
            args.dense_dir.mkdir(parents=True, exist_ok=True)
            info = train_dense(name, builder, data, epochs=epochs, lr=lr, seed=args.seed, path=cached)
            meta.write_text(json.dumps(info))
        return json.loads(meta.read_text())
    return train_dense(name, builder, data, epochs=epochs, lr=lr, seed=args.seed, path=folder / f"{name}.onnx")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test of the script)")
    parser.add_argument("--json", type=Path, help="also write rows and settings here")
    parser.add_argument("--models", nargs="+", choices=sorted(DENSE), default=sorted(DENSE, reverse=True))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0, help="the seed of the train/test shuffle (0: the tests' split)")
    parser.add_argument("--methods", nargs="+", default=["olmp", "olmp-flops", "magnitude", "slr"],
                        choices=["olmp", "olmp-flops", "magnitude", "slr"])
    parser.add_argument("--dense-dir", type=Path, help="cache trained dense models here")
    parser.add_argument("--keep", type=Path, help="keep every compressed model and report under this folder")
    parser.add_argument("--data-dir", type=Path, help=f"folder holding {MNIST_FILE}")
    parser.add_argument("--olmp", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"change OLMP settings (defaults: {', '.join(f'{k}={v}' for k, v in OLMP.items())}, "
                             f"max_accuracy_drop per model {MAX_DROP})")
    parser.add_argument("--budget", nargs=2, type=int, metavar=("A", "R"), help="epochs of adjusting and retraining for every model")
    args = parser.parse_args(argv)
    for item in args.olmp:
        key, _, value = item.partition("=")
        if key == "max_accuracy_drop":
            MAX_DROP.update({model: float(value) for model in MAX_DROP})
        elif key in OLMP:
            OLMP[key] = type(OLMP[key])(value)
        else:
            parser.error(f"unknown OLMP setting {key!r}")
    if args.budget:
        for model in BUDGETS:
            BUDGETS[model] = tuple(args.budget)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    data_path = locate_mnist(args.data_dir)
    if data_path is None:
        return 2
    started = time.perf_counter()
    data = load_mnist_split(data_path, split_seed=args.split_seed)
    rows, sweeps, dense_info = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="olmp_lenet_") as tmp:
        work = Path(tmp)
        split = write_split(data, work)
        for model in args.models:
            dense = dense_info[model] = dense_model(model, data, args, work)
            print(f"dense {model}: {100 * dense['test_accuracy']:.2f}% test", file=sys.stderr, flush=True)
            onnx_path = Path(dense["onnx"])
            adjust, retrain = QUICK["budget"] if args.quick else BUDGETS[model]

            def record(label, report, rows=rows):
                row = summarise(report, model, label, args.seed)
                if row["remaining_macs"] is None:
                    row["remaining_macs"] = remaining_macs(report)
                rows.append(row)
                print(format_table([row]).splitlines()[-1], file=sys.stderr, flush=True)
                if args.keep:
                    shutil.copytree(report["outputs"]["onnx"].rsplit("/", 1)[0], args.keep / f"{model}-{label}", dirs_exist_ok=True)
                return row

            olmp_row = None
            if "olmp" in args.methods:
                report = run(onnx_path, split, work / "olmp", args.seed, **olmp_options(model, adjust, retrain, args.quick))
                olmp_row = record("olmp", report)
            if "olmp-flops" in args.methods and model == "lenet5":
                report = run(onnx_path, split, work / "olmp-flops", args.seed,
                             **olmp_options(model, adjust, retrain, args.quick), objective="flops")
                record("olmp --objective flops", report)
            if "magnitude" in args.methods:
                sweep = []
                for sparsity in QUICK["sparsities"] if args.quick else MAGNITUDE_SPARSITIES:
                    report = run(onnx_path, split, work / f"magnitude-{sparsity}", args.seed, method="magnitude",
                                 schedule="gradual", scope="global", sparsity=sparsity, epochs=adjust + retrain)
                    sweep.append(summarise(report, model, f"magnitude {100 * sparsity:g}%", args.seed))
                    sweep[-1]["remaining_macs"] = remaining_macs(report)
                    print("  sweep: " + format_table([sweep[-1]]).splitlines()[-1], file=sys.stderr, flush=True)
                sweeps[model] = sweep
                best = best_magnitude(sweep, olmp_row["loss_points"] if olmp_row else MAX_LOSS_POINTS)
                if best is not None:
                    rows.append(best)
            if "slr" in args.methods:
                target = round(olmp_row["weight_sparsity"], 4) if olmp_row else 0.99
                report = run(onnx_path, split, work / "slr", args.seed, method="slr", scope="global", sparsity=target,
                             epochs=adjust, retrain_epochs=retrain, rho=0.1, **RECORDED_SLR)
                record(f"slr {100 * target:.2f}%", report)
    total = time.perf_counter() - started

    print(f"OLMP vs magnitude vs SLR, MNIST-5k ({TRAIN_SAMPLES} train / 1,000 test), seed {args.seed}"
          + (" [--quick]" if args.quick else ""))
    print(format_table(rows))
    for model, sweep in sweeps.items():
        print(f"\n{model} magnitude sweep (gradual, global, every layer):")
        print(format_table(sweep))
    print(f"\ntotal {total:.0f} s, {torch.get_num_threads()} torch threads")
    if args.json:
        payload = {"settings": {"seed": args.seed, "split_seed": args.split_seed, "quick": args.quick, "budgets": BUDGETS, "common": COMMON,
                                "olmp": {**OLMP, "max_accuracy_drop": MAX_DROP}, "dense": {k: v[1:] for k, v in DENSE.items()},
                                "magnitude_sparsities": MAGNITUDE_SPARSITIES, "paper_ratio": PAPER},
                   "dense": {m: {k: v for k, v in d.items() if k != "onnx"} for m, d in dense_info.items()},
                   "rows": rows, "magnitude_sweeps": sweeps, "total_s": total, "torch_threads": torch.get_num_threads()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
