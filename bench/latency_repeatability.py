"""How repeatable is the latency protocol? The same A/B pairs measured five times in a row.

    python bench/latency_repeatability.py [--repeats 5] [--seconds 2] [--json docs/results/latency_repeatability.json]

Pairs, each timed interleaved by `compress bench`'s code (deploy/bench.py) at batch 1:
  control: the embedded LeNet example against a byte-identical copy (the true ratio is 1);
  zeros:   the example against the same network magnitude-pruned to 50% with explicit zeros
           (dense kernels: onnxruntime cannot run it faster, so the honest answer is no difference).
Prints each measurement's ratio, 95% interval, the margin the same-file control inside each
measurement set (deploy/bench.py) and the verdict, and the spread (min-max) of the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor import compress  # noqa: E402
from compressor.files import write_json_atomic  # noqa: E402
from compressor.runtimes.latency import LatencyProtocol  # noqa: E402
from deploy.bench import bench  # noqa: E402

EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        copy = tmp / "copy" / EXAMPLE.name
        copy.parent.mkdir()
        shutil.copyfile(EXAMPLE, copy)
        compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, sensitivity="off", output=tmp / "zeros",
                 progress=False, latency_runs=5, log=lambda m: None)
        pairs = {"control": [EXAMPLE, copy], "zeros": [EXAMPLE, tmp / "zeros" / "model.onnx"]}
        protocol = LatencyProtocol(seconds=args.seconds)
        results = {name: [] for name in pairs}
        machine = None
        for i in range(args.repeats):
            for name, models in pairs.items():
                result = bench(models, protocol=protocol, command=" ".join(sys.argv))
                machine = machine or {k: result[k] for k in ("machine", "date", "device", "runtime", "threads", "protocol")}
                versus = result["batches"][0]["models"][1]["vs_first"]
                results[name].append({"ratio": versus["ratio"], "interval": versus["interval"], "verdict": versus["verdict"],
                                      "rounds": versus["samples"], "margin": versus["margin"]})
    print(f"{machine['runtime']} on {machine['device']}, {args.seconds:g} s per measurement, {args.repeats} repeats")
    print(f"{'pair':8}  {'#':>2}  {'ratio':>7}  {'95% interval':>15}  {'rounds':>6}  {'margin':>6}  verdict")
    summary = {}
    for name, rows in results.items():
        for i, row in enumerate(rows, 1):
            low, high = row["interval"]
            print(f"{name:8}  {i:>2}  {row['ratio']:7.3f}  {low:7.3f}-{high:<7.3f}  {row['rounds']:>6}  {row['margin']:6.3f}  {row['verdict']}")
        ratios = [row["ratio"] for row in rows]
        summary[name] = {"min": min(ratios), "max": max(ratios), "spread": max(ratios) - min(ratios),
                         "verdicts": sorted({row["verdict"] for row in rows})}
        print(f"{name:8}  spread of the ratio: {min(ratios):.3f} to {max(ratios):.3f} ({summary[name]['spread']:.3f}); "
              f"verdicts: {', '.join(summary[name]['verdicts'])}")
    if args.json:
        write_json_atomic(args.json, {**machine, "command": " ".join(["python", *sys.argv]),
                                      "repeats": args.repeats, "seconds": args.seconds, "runs": results, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
