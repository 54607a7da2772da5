"""Magnitude, ADMM, SLR and OLMP over several seeds: mean and spread, and a verdict on each claim
of the papers (issue 14).

    python bench/method_seeds.py [--seeds 0 1 2] [--models lenet300 lenet5 small-resnet]
                                 [--parts defaults tuned tasks] [--task-work DIR] [--json out.json] [--quick]
    python bench/method_seeds.py --merge a.json b.json ... [--json all.json]

Seed k varies everything random: MNIST-5k is shuffled with seed k before the 4,000 / 1,000
split (k = 0 is the tests' split), the dense model is trained from seed k, and every compress
run gets --seed k. The parts:

  defaults  each method as a user runs it first: `compress MODEL --method M --data train.npz`,
            nothing else (sparsity 0.5 for magnitude/ADMM/SLR, OLMP finds its own; validation is
            the pipeline's default 20% of the training data). The written ONNX file is scored on
            the test set in onnxruntime. The README quotes these rows.
            (LeNet-300-100 and the small ResNet.)
  tuned     small-resnet: 80% unstructured, per-layer targets, first and last layers pruned
            too (the setting of bench/slr_admm.py where SLR had fallen to chance), at an equal
            budget: ADMM and SLR T=10 penalty epochs then R=3 retraining epochs with their
            defaults, magnitude one-shot then T+R fine-tuning epochs.
            lenet300 / lenet5: OLMP with the settings of bench/olmp_lenet.py (A + R epochs) and
            issue 14's changes (OLMP_TUNED: every layer searched, a whole-run bound), the
            iterative magnitude sweep at the same A + R epochs (the row shown is the sparsest
            that loses no more than OLMP), and ADMM / SLR at OLMP's weight sparsity, A penalty
            + R retraining epochs.
  tasks     (--task-work DIR) the UFLD- and YOLO-style networks of bench/task_models.py at 2:4,
            magnitude / ADMM / SLR at their defaults, 3 + 3 epochs (magnitude 6 of fine-tuning),
            batch 16; the dense model and data fixed, the run's seed varied.

Columns: dense and compressed test accuracy, the accuracy right after hard pruning (ADMM/SLR;
"recal." with BatchNorm statistics re-estimated on training batches, reported apart so the
comparison stays fair), loss in points, compression ratio (all weights and biases / non-zero).
The held-out test set is the pipeline's validation data, as in bench/slr_admm.py: nothing
selects on it (OLMP measures its bound on training samples).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compressor import compress  # noqa: E402
from deploy.zoo.examples import onnx_accuracy  # noqa: E402
from deploy.zoo.mnist import load_mnist_split  # noqa: E402
from deploy.zoo.models.lenet import LeNet5, LeNet300  # noqa: E402
from deploy.zoo.models.small_resnet import SmallResNet  # noqa: E402
from mnist_data import locate_mnist, train_dense, write_split  # noqa: E402
import olmp_lenet  # noqa: E402

NO_LATENCY = olmp_lenet.NO_LATENCY
DENSE = {"lenet300": (LeNet300, 30, 1e-3), "lenet5": (LeNet5, 20, 1e-3), "small-resnet": (SmallResNet, 6, 1e-3)}
DEFAULT_MODELS = ("lenet300", "small-resnet")  # LeNet-5's default runs add 10 min a seed and nothing the two others don't show
SMALL_RESNET = {"pattern": "unstructured", "sparsity": 0.8, "scope": "layer", "keep_ends_dense": False}
SMALL_RESNET_BUDGET = (10, 3)  # T penalty epochs, R retraining epochs
# OLMP as bench/olmp_lenet.py runs it (15 calls of 400 evaluations, the bound on 512 fixed training
# samples), with what issue 14 changed: every layer searched at every call, and one bound for the
# whole run against the dense model. Training samples are near 100% right, so a point there is
# worth less than a test point: the bound is in training-sample points, chosen on three seeds of
# LeNet-300-100 (docs/benchmarks.md).
OLMP_TUNED = {"constraint_baseline": "dense", "search_layers": "all"}
OLMP_MAX_DROP = {"lenet300": 2.0, "lenet5": 1.0}
MAGNITUDE_SWEEP = {"lenet300": (0.95, 0.97, 0.98, 0.985, 0.99), "lenet5": (0.98, 0.985, 0.99, 0.993, 0.995)}
METHODS = ("magnitude", "admm", "slr", "olmp")
QUICK = {"dense_epochs": 1, "budget": (1, 1), "sweep": (0.9,), "olmp": {"search_calls": 2, "search_budget": 30}}

# The papers' claims this benchmark tests (docs/benchmarks.md gives the verdicts).
SLR_FLOOR = 0.80  # issue 14: SLR's hard-pruned accuracy on the small ResNet at 80%
OLMP_RATIO = {"lenet300": 50.0, "lenet5": 100.0}  # issue 14: mean ratio at <= 1 point lost
MAX_LOSS_POINTS = olmp_lenet.MAX_LOSS_POINTS


def run(onnx_path: Path, split, out_dir: Path, seed: int, **options) -> dict:
    return compress(onnx_path, data=str(split[0]), val_data=str(split[1]), seed=seed, output=out_dir,
                    progress=False, stages=NO_LATENCY, log=lambda message: None, **options)


def row_of(report: dict, *, model: str, part: str, method: str, seed: int, label: str | None = None) -> dict:
    """One run's row, in the task's primary metric (accuracy, TuSimple accuracy, mAP@0.5:0.95)."""
    primary = report["metrics"].get("primary", "accuracy")
    dense, compressed = report["metrics"]["dense"][primary], report["metrics"]["compressed"][primary]
    after = report.get("after_pruning") or {}
    return {
        "model": model, "part": part, "method": method, "label": label or method, "seed": seed, "metric": primary,
        "dense_accuracy": dense, "accuracy": compressed, "loss_points": 100 * (dense - compressed),
        "hard_pruned_accuracy": (after.get("metrics") or {}).get(primary) if after.get("stage") == "hard-pruned" else None,
        "recalibrated_accuracy": (after.get("recalibrated") or {}).get(primary),
        "compression_ratio": report["compression_ratio"], "weight_sparsity": report["sparsity"],
        "training": report.get("training"), "wall_s": report["timings"]["total_s"],
    }


def default_rows(model: str, onnx_path: Path, split, test, work: Path, seed: int, quick: bool,
                 methods=METHODS) -> list[dict]:
    """`compress MODEL --method M --data train.npz` and nothing else: the pipeline holds out its
    default validation fraction of the training data (OLMP's bound is measured there), and the
    written file is then scored on the test set in onnxruntime, which no run has seen."""
    rows = []
    dense_test = onnx_accuracy(onnx_path, *test)
    for method in methods:
        options = {}
        if quick:  # the smoke test keeps the defaults' shape, not their cost
            options = {"epochs": 1, "retrain_epochs": 1} if method != "magnitude" else {"epochs": 1}
            if method == "olmp":
                options.update(QUICK["olmp"])
        report = compress(onnx_path, method=method, data=str(split[0]), output=work / f"{model}-default-{method}", seed=seed,
                          progress=False, stages=NO_LATENCY, log=lambda message: None, **options)
        row = row_of(report, model=model, part="defaults", method=method, seed=seed)
        # the run's own figures are on its validation split: kept, under their names, beside the test ones
        row.update(val_dense_accuracy=row["dense_accuracy"], val_accuracy=row["accuracy"], dense_accuracy=dense_test,
                   accuracy=onnx_accuracy(report["outputs"]["onnx"], *test), val_hard_pruned_accuracy=row["hard_pruned_accuracy"],
                   val_recalibrated_accuracy=row["recalibrated_accuracy"], hard_pruned_accuracy=None, recalibrated_accuracy=None)
        row["loss_points"] = 100 * (row["dense_accuracy"] - row["accuracy"])
        rows.append(row)
        _progress(rows[-1])
    return rows


def equal_budget(method: str, epochs: int, retrain: int) -> dict:
    """The same number of training epochs for every method: magnitude fine-tunes for all of them,
    the penalty methods split them into penalty and retraining epochs."""
    return {"epochs": epochs + retrain} if method == "magnitude" else {"epochs": epochs, "retrain_epochs": retrain}


def tuned_rows(model: str, onnx_path: Path, split, work: Path, seed: int, quick: bool) -> list[dict]:
    if model == "small-resnet":
        epochs, retrain = QUICK["budget"] if quick else SMALL_RESNET_BUDGET
        rows = []
        for method in ("magnitude", "admm", "slr"):
            report = run(onnx_path, split, work / f"{model}-tuned-{method}", seed, method=method, **SMALL_RESNET,
                         **equal_budget(method, epochs, retrain))
            rows.append(row_of(report, model=model, part="tuned", method=method, seed=seed))
            _progress(rows[-1])
        return rows
    adjust, retrain = QUICK["budget"] if quick else olmp_lenet.BUDGETS[model]
    common = olmp_lenet.COMMON
    olmp = {**olmp_lenet.olmp_options(model, adjust, retrain, quick), **OLMP_TUNED,
            "max_accuracy_drop": OLMP_MAX_DROP[model], **(QUICK["olmp"] if quick else {})}
    report = run(onnx_path, split, work / f"{model}-olmp", seed, **common, **olmp)
    olmp_row = row_of(report, model=model, part="tuned", method="olmp", seed=seed)
    _progress(olmp_row)
    sweep = []
    for sparsity in QUICK["sweep"] if quick else MAGNITUDE_SWEEP[model]:
        report = run(onnx_path, split, work / f"{model}-magnitude-{sparsity}", seed, **common, method="magnitude",
                     schedule="gradual", scope="global", sparsity=sparsity, epochs=adjust + retrain)
        sweep.append(row_of(report, model=model, part="sweep", method="magnitude", seed=seed,
                            label=f"magnitude {100 * sparsity:g}%"))
        _progress(sweep[-1])
    best = olmp_lenet.best_magnitude(sweep, olmp_row["loss_points"])
    rows = [olmp_row] + ([{**best, "part": "tuned"}] if best else [])
    target = round(olmp_row["weight_sparsity"], 4)
    for method in ("admm", "slr"):  # their own defaults (optimizer, rho schedule), the OLMP budget
        report = run(onnx_path, split, work / f"{model}-{method}", seed, method=method, scope="global", sparsity=target,
                     epochs=adjust, retrain_epochs=retrain, batch_size=common["batch_size"],
                     keep_ends_dense=common["keep_ends_dense"])
        rows.append(row_of(report, model=model, part="tuned", method=method, seed=seed,
                           label=f"{method} {100 * target:.2f}%"))
        _progress(rows[-1])
    return rows + sweep


TASK_NETWORKS = {"ufld": "lane", "yolo": "coco"}
TASK_BUDGET = (3, 3)  # T penalty + R retraining epochs (magnitude: T + R fine-tuning), as bench/task_models.py's SLR
TASK_OPTIONS = {"pattern": "2:4", "batch_size": 16}


def task_rows(task_work: Path, seeds: list[int], quick: bool, networks: list[str]) -> list[dict]:
    """The lane and detection networks of bench/task_models.py (dense models and data from its --work
    folder, made there when missing), 2:4, every method at its defaults and an equal budget. The
    dense model and the data are fixed (training them again per seed costs an hour); the seed
    varies the run: batch order, augmentation draws, SLR's condition set."""
    import task_models

    settings = task_models.QUICK if quick else task_models.FULL
    specs = task_models.make_data(task_work, settings)
    epochs, retrain = (1, 1) if quick else TASK_BUDGET
    rows = []
    for name in networks:
        dense = task_work / f"{name}.onnx"
        if not dense.exists():
            task_models.train_network(name, specs[TASK_NETWORKS[name]][0], dense, epochs=settings[f"{name}_epochs"], seed=0,
                                      log=task_models.log)
        train_spec, test_spec = specs[TASK_NETWORKS[name]]
        for seed in seeds:
            for method in ("magnitude", "admm", "slr"):
                report = compress(dense, method=method, data=train_spec, val_data=test_spec, seed=seed,
                                  output=task_work / f"seeds-{name}-{method}-{seed}", progress=False, stages=NO_LATENCY,
                                  log=lambda message: None, **TASK_OPTIONS, **equal_budget(method, epochs, retrain))
                rows.append(row_of(report, model=name, part="2:4", method=method, seed=seed))
                _progress(rows[-1])
    return rows


PARTIAL: Path | None = None  # with --json: every row is also appended here as it comes (a stopped run keeps its rows)


def _progress(row: dict) -> None:
    print("  " + "  ".join(format_cells(row)), file=sys.stderr, flush=True)
    if PARTIAL is not None:
        with PARTIAL.open("a") as stream:
            stream.write(json.dumps(row, default=str) + "\n")


def read_rows(path: Path) -> tuple[list[dict], dict]:
    """The rows and settings of a --json file, or the rows of a stopped run's .partial.jsonl."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()], {"partial": str(path)}
    data = json.loads(path.read_text())
    return data["rows"], data["meta"]


# ---- aggregation and verdicts --------------------------------------------------------------------------
def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def format_cells(row: dict) -> list[str]:
    return [row["model"], row["part"], row["label"], f"seed {row['seed']}", _pct(row["dense_accuracy"]),
            _pct(row["hard_pruned_accuracy"]), _pct(row["recalibrated_accuracy"]), _pct(row["accuracy"]),
            f"{row['loss_points']:+.2f}", f"{row['compression_ratio']:.1f}x", f"{row['wall_s']:.0f}s"]


def spread(values: list[float | None], scale: float = 100.0, unit: str = "") -> str:
    """'mean [min, max]' (the spread over seeds), '—' when nothing was measured."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{scale * statistics.mean(values):.2f}{unit} [{scale * min(values):.2f}, {scale * max(values):.2f}]"


def summary_table(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["part"] != "sweep":
            groups.setdefault((row["model"], row["part"], row["method"]), []).append(row)
    header = ["model", "part", "method", "seeds", "dense %", "hard-pruned %", "recal. %", "final %", "loss pp", "ratio"]
    lines = []
    for (model, part, method), members in groups.items():
        lines.append([model, part, method, ",".join(str(r["seed"]) for r in members),
                      spread([r["dense_accuracy"] for r in members]),
                      spread([r["hard_pruned_accuracy"] for r in members]),
                      spread([r["recalibrated_accuracy"] for r in members]),
                      spread([r["accuracy"] for r in members]),
                      spread([r["loss_points"] for r in members], scale=1.0),
                      spread([r["compression_ratio"] for r in members], scale=1.0, unit="x")])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(line) for line in lines)])


def verdicts(rows: list[dict]) -> list[dict]:
    """The acceptance claims, checked seed by seed on the rows present."""
    found = []
    by = {}
    for row in rows:
        by.setdefault((row["model"], row["part"], row["method"]), {})[row["seed"]] = row
    slr, admm = by.get(("small-resnet", "tuned", "slr"), {}), by.get(("small-resnet", "tuned", "admm"), {})
    seeds = sorted(set(slr) & set(admm))
    if seeds:
        def best(row):  # the hard-pruned figure, and the recalibrated one where it was measured
            return row["recalibrated_accuracy"] if row["recalibrated_accuracy"] is not None else row["hard_pruned_accuracy"]
        per_seed = {s: {"slr": best(slr[s]), "admm": best(admm[s]), "slr_raw": slr[s]["hard_pruned_accuracy"],
                        "admm_raw": admm[s]["hard_pruned_accuracy"]} for s in seeds}
        found.append({"claim": f"small-resnet 80%: SLR hard-pruned >= ADMM and >= {SLR_FLOOR:.0%} on every seed",
                      "per_seed": per_seed,
                      "holds": all(v["slr"] >= v["admm"] and v["slr"] >= SLR_FLOOR for v in per_seed.values())})
    for model, floor in OLMP_RATIO.items():
        olmp = by.get((model, "tuned", "olmp"), {})
        magnitude = by.get((model, "tuned", "magnitude"), {})
        if not olmp:
            continue
        ratio = statistics.mean(r["compression_ratio"] for r in olmp.values())
        loss = statistics.mean(r["loss_points"] for r in olmp.values())
        found.append({"claim": f"{model}: OLMP mean ratio >= {floor:g}x at <= {MAX_LOSS_POINTS:g} point lost",
                      "mean_ratio": ratio, "mean_loss_points": loss,
                      "holds": ratio >= floor and loss <= MAX_LOSS_POINTS + 1e-9})
        beats = {s: (r["compression_ratio"], magnitude[s]["compression_ratio"] if s in magnitude else None)
                 for s, r in olmp.items()}
        found.append({"claim": f"{model}: OLMP beats iterative magnitude at the same loss on every seed",
                      "per_seed": beats, "holds": all(m is None or o > m for o, m in beats.values())})
    return found


def report_text(rows: list[dict], meta: dict) -> str:
    lines = [f"magnitude / ADMM / SLR / OLMP over seeds {meta['seeds']}, MNIST-5k (4,000 train / 1,000 test, "
             f"split shuffled per seed){' [--quick]' if meta.get('quick') else ''}",
             "mean [min, max] over seeds; accuracies in % on the held-out test set", "", summary_table(rows), ""]
    for verdict in verdicts(rows):
        lines.append(f"{'HOLDS' if verdict['holds'] else 'FAILS'}: {verdict['claim']}  "
                     + json.dumps({k: v for k, v in verdict.items() if k not in ("claim", "holds")}, default=str))
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=sorted(DENSE), default=["lenet300", "lenet5", "small-resnet"])
    parser.add_argument("--parts", nargs="+", choices=("defaults", "tuned", "tasks"), default=["defaults", "tuned"])
    parser.add_argument("--task-work", type=Path, help="bench/task_models.py's --work folder (data, dense UFLD and YOLO); "
                                                       "made there when missing")
    parser.add_argument("--networks", nargs="+", choices=sorted(TASK_NETWORKS), default=sorted(TASK_NETWORKS, reverse=True))
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test of the script)")
    parser.add_argument("--json", type=Path, help="also write rows, verdicts and settings here")
    parser.add_argument("--default-methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="the methods of the defaults part")
    parser.add_argument("--merge", nargs="+", type=Path,
                        help="combine the rows of earlier --json files instead of running (a later file's row replaces an "
                             "earlier one of the same model, part, method, label and seed)")
    parser.add_argument("--data-dir", type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python bench/method_seeds.py " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(), "command": command, "quick": args.quick}
    started = time.perf_counter()
    global PARTIAL
    if args.json and not args.merge:
        PARTIAL = args.json.with_suffix(".partial.jsonl")
        PARTIAL.parent.mkdir(parents=True, exist_ok=True)
        PARTIAL.unlink(missing_ok=True)
    if args.merge:
        parts = [read_rows(path) for path in args.merge]
        merged = {}
        for part_rows, _ in parts:
            for row in part_rows:
                merged[(row["model"], row["part"], row["method"], row["label"], row["seed"])] = row
        rows = list(merged.values())
        meta.update(seeds=sorted({r["seed"] for r in rows}), merged=[part_meta for _, part_meta in parts])
    else:
        data_path = locate_mnist(args.data_dir)
        if data_path is None:
            return 2
        rows = []
        meta["seeds"] = args.seeds
        mnist_parts = [part for part in args.parts if part in ("defaults", "tuned")]
        for seed in args.seeds if mnist_parts else []:
            data = load_mnist_split(data_path, split_seed=seed)
            with tempfile.TemporaryDirectory(prefix="method_seeds_") as tmp:
                work = Path(tmp)
                split = write_split(data, work)
                for model in args.models:
                    builder, epochs, lr = DENSE[model]
                    epochs = QUICK["dense_epochs"] if args.quick else epochs
                    dense = train_dense(model, builder, data, epochs=epochs, lr=lr, seed=seed, path=work / f"{model}.onnx")
                    print(f"seed {seed} dense {model}: {100 * dense['test_accuracy']:.2f}%", file=sys.stderr, flush=True)
                    if "defaults" in args.parts and model in DEFAULT_MODELS:
                        test = (torch.from_numpy(data[2]), torch.from_numpy(data[3]))
                        rows += default_rows(model, Path(dense["onnx"]), split, test, work, seed, args.quick,
                                             args.default_methods)
                    if "tuned" in args.parts:
                        rows += tuned_rows(model, Path(dense["onnx"]), split, work, seed, args.quick)
        if "tasks" in args.parts:
            if args.task_work is None:
                print("error: --parts tasks needs --task-work DIR (bench/task_models.py's --work folder)", file=sys.stderr)
                return 2
            args.task_work.mkdir(parents=True, exist_ok=True)
            rows += task_rows(args.task_work, args.seeds, args.quick, args.networks)
    meta["total_s"] = time.perf_counter() - started
    print(report_text(rows, meta))
    print(f"\ntotal {meta['total_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": rows, "verdicts": verdicts(rows)}, indent=2, default=str))
        if PARTIAL is not None:
            PARTIAL.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
