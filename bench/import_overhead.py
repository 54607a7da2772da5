"""Forward-pass cost of an imported ONNX model vs the same network written natively in PyTorch.

    python bench/import_overhead.py [--batch 8] [--repeats 15] [--json out.json]

ResNet-18 (224x224, CPU) is exported with each ONNX exporter, imported with `load_onnx`, and
timed against the native module in interleaved rounds (native, imported, native, ...), so that
machine noise hits both alike. The ratio of medians is the figure; the target is <= 1.3.

Both exporters fold BatchNormalization into the convolutions, which makes the imported model do
less work than the native one. The "torchscript, BN kept" row exports without constant folding,
so both sides run exactly the same operators: that row measures the interpreter's own overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compressor.onnx_import import load_onnx  # noqa: E402
from deploy.zoo.export import export_reference  # noqa: E402
from deploy.zoo.models import build_reference  # noqa: E402

VARIANTS = [("torchscript", 17), ("dynamo", 18), ("torchscript, BN kept", 17)]


def export(native, path: Path, exporter: str, opset: int) -> None:
    if exporter == "torchscript, BN kept":
        torch.onnx.export(native, (torch.randn(1, 3, 224, 224),), str(path), opset_version=opset, dynamo=False,
                          do_constant_folding=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    else:
        export_reference(native, path, (1, 3, 224, 224), opset, exporter)


def timed(fn, x) -> float:
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    native = build_reference("resnet18")
    x = torch.randn(args.batch, 3, 224, 224)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for exporter, opset in VARIANTS:
            path = Path(tmp) / f"resnet18-{len(rows)}.onnx"
            export(native, path, exporter, opset)
            imported = load_onnx(path).eval()
            err = (imported(x) - native(x)).abs().max().item()
            for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
                native(x), imported(x)
            t_native, t_imported = [], []
            for _ in range(args.repeats):
                t_native.append(timed(native, x))
                t_imported.append(timed(imported, x))
            n, i = statistics.median(t_native), statistics.median(t_imported)
            rows.append({
                "exporter": exporter, "opset": opset, "batch": args.batch,
                "native_ms": n * 1e3, "imported_ms": i * 1e3, "ratio": i / n, "max_abs_diff": err,
                "threads": torch.get_num_threads(),
            })
    print(f"ResNet-18, batch {args.batch}, 224x224, CPU, {torch.get_num_threads()} threads, median of {args.repeats} interleaved runs")
    print(f"{'exporter':22s} {'opset':>5s} {'native ms':>10s} {'imported ms':>12s} {'ratio':>6s} {'max|diff|':>10s}")
    for r in rows:
        print(f"{r['exporter']:22s} {r['opset']:5d} {r['native_ms']:10.1f} {r['imported_ms']:12.1f} {r['ratio']:6.3f} {r['max_abs_diff']:10.2e}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ratio"] <= 1.3 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
