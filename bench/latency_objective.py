"""Does searching channel counts for latency give a faster model than searching them for
multiply-adds, at the same accuracy bound? (issue 12)

    python bench/latency_objective.py [--json docs/results/latency_objective.json] [--quick]
                                      [--widths 48 96 192] [--stem-stride 1] [--round-to auto]
                                      [--constraint-samples 500]

The residual CNN (deploy/zoo SmallResNet; by default the channel benchmark's compute-bound one,
widths 48/96/192 with a stride-1 stem) is trained dense on the MNIST-5k training split, then
pruned twice by `compress --method olmp --pattern channel` with the same bound
(--max-accuracy-drop), search budget, seed and fine-tuning: once with --objective flops, once with
--objective latency (the per-layer latency table on onnxruntime-cpu). Both slim files and the dense
one are then timed side by side in one interleaved measurement per batch size (1 and 8), with the
dense file once more as a same-file control; the table gives each p50, the ratios with 95%
intervals and verdicts, the test accuracy after fine-tuning, the multiply-adds kept, and the
latency the search predicted next to the one measured. About 14 minutes on 2 cores (the reference
widths 16/32/64 with a stride-2 stem: 6).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compressor import compress  # noqa: E402
from compressor.files import write_json_atomic  # noqa: E402
from compressor.pipeline import DEFAULT_STAGES  # noqa: E402
from compressor.runtimes.latency import LatencyProtocol, measure_latency, pinned_threads, verdict  # noqa: E402
from compressor.runtimes.onnxruntime_cpu import cpu_name  # noqa: E402
from deploy.zoo.mnist import load_mnist_split  # noqa: E402
from deploy.zoo.models.small_resnet import SmallResNet  # noqa: E402
from mnist_data import locate_mnist, train_dense, write_split  # noqa: E402

OBJECTIVES = ("flops", "latency")
# the latency of the results is measured below, side by side; the runs themselves skip it
NO_LATENCY = tuple(stage for stage in DEFAULT_STAGES if stage != "measure")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and evaluations: a smoke run")
    parser.add_argument("--max-accuracy-drop", type=float, default=5.0,
                        help="the bound both searches keep: points of test accuracy lost one-shot, before fine-tuning")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed budget of each latency measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widths", type=int, nargs=3, default=[48, 96, 192])
    parser.add_argument("--stem-stride", type=int, choices=(1, 2), default=1)
    parser.add_argument("--round-to", default="auto", help="the pipeline's --round-to (auto: the runtime's block)")
    parser.add_argument("--constraint-samples", type=int, default=500,
                        help="test samples the bound is checked on, for every candidate")
    args = parser.parse_args()
    architecture = {"widths": tuple(args.widths), "stem_stride": args.stem_stride}
    mnist = locate_mnist(args.data_dir)
    if mnist is None:
        return 2
    dense_epochs, budget, finetune = (2, 30, 1) if args.quick else (6, 120, 3)
    data = load_mnist_split(mnist)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_npz, test_npz = write_split(data, tmp)
        dense_path = tmp / "dense.onnx"
        dense = train_dense("small-resnet", lambda: SmallResNet(**architecture), data, epochs=dense_epochs, lr=1e-3,
                            seed=args.seed, path=dense_path, schedule="cosine")
        dense["architecture"] = architecture
        print(f"dense small-resnet: test accuracy {dense['test_accuracy']:.2%}")
        for objective in OBJECTIVES:
            report = compress(dense_path, method="olmp", pattern="channel", objective=objective,
                              max_accuracy_drop=args.max_accuracy_drop, search_budget=budget, search_calls=1,
                              round_to=args.round_to, constraint_samples=args.constraint_samples,
                              epochs=finetune, retrain_epochs=0, data=str(train_npz), val_data=str(test_npz),
                              seed=args.seed, output=tmp / objective, progress=False, stages=NO_LATENCY,
                              log=lambda message: None)
            saved = json.loads((tmp / objective / "report.json").read_text())
            channels = saved["plan"]["channels"]
            rows[objective] = {
                "test_accuracy": report["metrics"]["compressed"]["accuracy"],
                "params": saved["params"]["total"], "dense_params": saved["params"]["dense_total"],
                "macs_kept": channels["macs"]["kept"], "macs_dense": channels["macs"]["dense"],
                "round_to": channels.get("round_to"),
                "search": {k: v for k, v in channels["search"].items() if k != "latency_table"},
                "predicted_ms": (channels["search"].get("latency_table") or {}).get("dense_ms"),
                "path": tmp / objective / "model.onnx",
            }
            if objective == "latency":
                table = channels["search"]["latency_table"]
                rows[objective]["predicted_ms"] = channels["search"]["cost"]
                rows[objective]["predicted_dense_ms"] = table["dense_ms"]
            print(f"{objective}: test accuracy {rows[objective]['test_accuracy']:.2%}, "
                  f"{rows[objective]['macs_kept'] / rows[objective]['macs_dense']:.1%} of multiply-adds kept")
        timings = {}
        for batch in (1, 8):
            feeds = {"input": np.ascontiguousarray(data[2][:batch].astype(np.float32))}
            models = {"dense": dense_path, **{o: rows[o]["path"] for o in OBJECTIVES}, "dense (control)": dense_path}
            stats = measure_latency(models, _feeds(dense_path, feeds), protocol=LatencyProtocol(seconds=args.seconds))
            control = verdict(stats["dense"], stats["dense (control)"])
            entry = {"p50_ms": {k: s.p50_ms for k, s in stats.items()}, "rounds": stats["dense"].runs,
                     "control": control.to_dict()}
            for objective in OBJECTIVES:
                entry[f"dense/{objective}"] = verdict(stats["dense"], stats[objective], control).to_dict()
            # the question: is the latency objective's model faster than the flops objective's?
            entry["flops/latency"] = verdict(stats["flops"], stats["latency"], control).to_dict()
            timings[batch] = entry
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": cpu_name(),
                    "threads": pinned_threads()},
        "dense": {k: v for k, v in dense.items() if k != "onnx"},
        "settings": {"max_accuracy_drop": args.max_accuracy_drop, "search_budget": budget, "finetune_epochs": finetune,
                     "architecture": architecture, "round_to": args.round_to,
                     "constraint_samples": args.constraint_samples,
                     "dense_epochs": dense_epochs, "seed": args.seed, "quick": args.quick},
        "objectives": {o: {k: v for k, v in r.items() if k != "path"} for o, r in rows.items()},
        "latency": {str(b): t for b, t in timings.items()},
    }
    _print(result)
    if args.json:
        print(f"wrote {write_json_atomic(args.json, result)}")
    return 0


def _feeds(path: Path, feeds: dict) -> dict:
    import onnx

    name = next(i.name for i in onnx.load(str(path), load_external_data=False).graph.input)
    return {name: next(iter(feeds.values()))}


def _print(result: dict) -> None:
    dense = result["dense"]
    print(f"\nsmall-resnet on MNIST-5k, dense test accuracy {dense['test_accuracy']:.2%}; "
          f"bound {result['settings']['max_accuracy_drop']:g} points; {result['machine']['cpu']}, "
          f"{result['machine']['threads']} threads")
    print(f"{'objective':9}  {'accuracy':>8}  {'MACs kept':>9}  {'params':>8}  {'predicted ms':>12}")
    for objective, row in result["objectives"].items():
        predicted = f"{row['predicted_ms']:.3f}" if objective == "latency" and row.get("predicted_ms") else "-"
        print(f"{objective:9}  {row['test_accuracy']:8.2%}  {row['macs_kept'] / row['macs_dense']:9.1%}  "
              f"{row['params']:8d}  {predicted:>12}")
    for batch, entry in result["latency"].items():
        p50 = entry["p50_ms"]
        print(f"batch {batch}: p50 dense {p50['dense']:.3f} ms, flops {p50['flops']:.3f} ms, latency {p50['latency']:.3f} ms "
              f"({entry['rounds']} rounds; control {entry['control']['ratio']:.3f})")
        for key in ("dense/flops", "dense/latency", "flops/latency"):
            v = entry[key]
            span = f"{v['interval'][0]:.3f}-{v['interval'][1]:.3f}" if v.get("interval") else "n/a"
            print(f"  {key:14} {v['ratio']:.3f} [{span}] {v['verdict']}")


if __name__ == "__main__":
    sys.exit(main())
