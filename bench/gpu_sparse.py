"""Dense FP16 against 2:4 on PyTorch's semi-structured kernels, on a GPU, for the UFLD-style lane
network (1x3x288x800) and the YOLO-style detector (1x3x640x640), at batch 1 and 32 (issue 11).

    python bench/gpu_sparse.py [--json docs/results/gpu_sparse.json] [--seconds 10] [--batches 1,32]
    python bench/gpu_sparse.py --dry-run        # on a CPU: small inputs, torch-cpu, no sparse kernels

Each network is exported to ONNX from deploy/zoo (seeded random weights: latency does not depend on
their values, only on shapes and zeros), and a 2:4 copy is written by the project's own N:M pattern
and exporter (magnitude 2:4 along the reduction axis in every layer the pattern applies to). Per
network and batch size, one interleaved measurement (compressor/runtimes/latency.py, the GPU
protocol of deploy.md §6: CUDA-event GPU compute time, CUDA-graph replay, >= 1000 runs and 10 s)
times, side by side:
  dense           the dense file, FP16, dense kernels
  dense (control) the dense file again: how far two sessions of one file differ
  2:4 dense       the 2:4 file, FP16, dense kernels (zeros alone)
  2:4 sparse      the 2:4 file, FP16, Gemm/MatMul weights on semi-structured 2:4 kernels
and prints p50 and each ratio against `dense` with its bootstrap interval and verdict, beyond the
control's reach. Semi-structured kernels cover linear products only (deploy.md §6.7): the YOLO-style
network has none, so its "2:4 sparse" row is a second control, and the JSON lists, layer by layer,
which weights ran sparse and why the others did not.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor.files import write_json_atomic  # noqa: E402
from compressor.onnx_import import load_onnx  # noqa: E402
from compressor.runtimes import get_runtime  # noqa: E402
from compressor.runtimes.latency import (LatencyProtocol, default_protocol, device_label, measure_latency,  # noqa: E402
                                         parse_batches, speedup, verdict)
from compressor.sparsity import parse_pattern  # noqa: E402
from deploy.bench import gpu_facts  # noqa: E402
from deploy.zoo.export import export_reference  # noqa: E402
from deploy.zoo.models.ufld import ufld  # noqa: E402
from deploy.zoo.models.yolo import yolo  # noqa: E402
from exporters import export_onnx  # noqa: E402

NETWORKS = {  # name: (builder, input shape at batch 1, small input for --dry-run)
    "ufld-r18 (TuSimple)": (lambda size: ufld(input_size=size), (3, 288, 800), (3, 64, 160)),
    "yolo-style (n width)": (lambda size: yolo(input_size=size), (3, 640, 640), (3, 128, 128)),
}


def two_four_copy(dense: Path, out: Path) -> dict:
    """Write `dense` with 2:4 magnitude masks in every layer the pattern applies to; what was pruned."""
    module = load_onnx(dense)
    pattern = parse_pattern("2:4")
    pruned, skipped = [], {}
    with torch.no_grad():
        for name, info in module.weights.items():
            reason = pattern.eligible(info)
            if reason is not None:
                skipped[name] = reason
                continue
            weight = module.parameter(name)
            weight.mul_(pattern.mask(weight, info, 0.5))
            pruned.append(name)
    export_onnx(module, out, parity=False)
    return {"pruned": pruned, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--seconds", type=float, help="timed budget per measurement (default: the GPU protocol's 10 s)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="CPU check of the script: small inputs, torch-cpu, 3 rounds")
    parser.add_argument("--no-cuda-graph", action="store_true")
    args = parser.parse_args()
    batches = parse_batches(args.batches)
    if args.dry_run:
        base, sparse_options, protocol = {}, None, LatencyProtocol.fixed(12, warmup=2)
        runtime_name = "torch-cpu"
    else:
        base = {"cuda_graph": not args.no_cuda_graph}
        sparse_options = {**base, "semi_structured": True}
        runtime_name = "torch-cuda"
        protocol = default_protocol("GPU", args.seconds)
    dense_runtime = get_runtime(runtime_name, threads=1, options=base)
    runtimes = {"2:4 sparse": get_runtime(runtime_name, threads=1, options=sparse_options)} if sparse_options else {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, shape, small) in NETWORKS.items():
            shape = small if args.dry_run else shape
            torch.manual_seed(0)
            dense = Path(tmp) / f"{len(results)}-dense.onnx"
            export_reference(build(tuple(shape[1:])), dense, (1, *shape), 17)
            sparse = Path(tmp) / f"{len(results)}-2of4.onnx"
            pruned = two_four_copy(dense, sparse)
            models = {"dense": dense, "dense (control)": dense, "2:4 dense": sparse}
            if runtimes:
                models["2:4 sparse"] = sparse
            for batch in batches:
                x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(batch)).numpy()
                feeds = {load_onnx(dense).input_names[0]: x}
                stats = measure_latency(models, feeds, runtime=dense_runtime, protocol=protocol, runtimes=runtimes)
                first = stats["dense"]
                control = verdict(first, stats["dense (control)"])
                rows = {}
                for label, s in stats.items():
                    row = {"latency": s.to_dict()}
                    if label != "dense":
                        v = verdict(first, s, None if label == "dense (control)" else control)
                        row["vs_dense"] = {**v.to_dict(), "speedup": speedup(first, s)}
                    rows[label] = row
                results.append({"network": name, "input": [batch, *shape], "batch": batch, "models": rows,
                                "pruned_layers": len(pruned["pruned"]), "skipped_layers": pruned["skipped"]})
                print_row(results[-1])
    report = {"command": " ".join(["python", *sys.argv]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "python": sys.version.split()[0], **gpu_facts()},
              "runtime": runtime_name, "device": device_label(dense_runtime.describe()),
              "runtime_options": {"dense": dense_runtime.options_dict(),
                                  **({"2:4 sparse": runtimes["2:4 sparse"].options_dict()} if runtimes else {})},
              "protocol": protocol.to_dict(), "dry_run": args.dry_run, "results": results}
    if args.json:
        print(f"wrote {write_json_atomic(args.json, report)}")
    return 0


def print_row(result: dict) -> None:
    print(f"\n{result['network']} {'x'.join(map(str, result['input']))}: "
          f"{result['pruned_layers']} layers 2:4, {len(result['skipped_layers'])} left dense by the pattern")
    for label, row in result["models"].items():
        s = row["latency"]
        line = f"  {label:16} p50 {s['p50_ms']:9.4f} ms  p90 {s['p90_ms']:9.4f}  runs {s['runs']:6}  ({s['clock']})"
        if "vs_dense" in row:
            v = row["vs_dense"]
            span = f"{v['interval'][0]:.3f}-{v['interval'][1]:.3f}" if v["interval"] else "n/a"
            line += f"  dense/this {v['ratio']:.3f} [{span}] {v['verdict']}"
        kernels = (s.get("details") or {}).get("semi_structured")
        if kernels:
            line += f"  ({kernels['sparse_layers']} layers on {kernels['backend']} 2:4 kernels)"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
