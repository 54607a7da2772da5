"""Forward-pass cost of an imported ONNX model vs the same network written natively in PyTorch.

    python bench/import_overhead.py [--batch 8] [--seconds 2] [--json docs/results/import_overhead.json]

ResNet-18 (224x224, CPU) is exported with each ONNX exporter, imported with `load_onnx`, and timed
against the native module under the latency protocol (compressor/runtimes/latency.py): warm-up by
time and count, timed rounds until `--seconds` have passed (at least the protocol's minimum), one
call per model per round with the first model rotating, torch pinned to the CPUs this process may
use (`pinned_threads()`, recorded). A second native call in the same rounds is the same-module
control: its ratio to the first sets the verdict's margin, as in `compress bench`.

The figure is the overhead, imported p50 / native p50, with its 95% bootstrap interval paired by
round (compressor/runtimes/verdict.py); the verdict words say whether the imported module is
faster, slower or not measurably different from the native one. The target is an overhead <= 1.3,
read from the interval: met when it lies entirely at or below 1.3, missed when entirely above (the
script then exits 1), undecided otherwise (a noisy machine: measure longer with --seconds).

Both exporters fold BatchNormalization into the convolutions, which makes the imported model do
less work than the native one. The "torchscript, BN kept" row exports without constant folding,
so both sides run exactly the same operators: that row measures the interpreter's own overhead.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compressor.files import write_json_atomic  # noqa: E402
from compressor.onnx_import import load_onnx  # noqa: E402
from compressor.runtimes.latency import LatencyProtocol, LatencyStats, pinned_threads, run_interleaved  # noqa: E402
from compressor.runtimes.onnxruntime_cpu import cpu_name  # noqa: E402
from compressor.runtimes.verdict import compare, control_margin  # noqa: E402
from deploy.zoo.export import export_reference  # noqa: E402
from deploy.zoo.models import build_reference  # noqa: E402

VARIANTS = [("torchscript", 17), ("dynamo", 18), ("torchscript, BN kept", 17)]
TARGET = 1.3  # imported p50 / native p50
NATIVE, CONTROL, IMPORTED = "native", "native again", "imported"


def target_reading(interval: list[float] | None, target: float = TARGET) -> str:
    """Whether the overhead's interval says the target is met, missed, or cannot tell."""
    if interval is None:
        return "undecided"
    low, high = interval
    return "met" if high <= target else "missed" if low > target else "undecided"


def export(native, path: Path, exporter: str, opset: int) -> None:
    if exporter == "torchscript, BN kept":
        torch.onnx.export(native, (torch.randn(1, 3, 224, 224),), str(path), opset_version=opset, dynamo=False,
                          do_constant_folding=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    else:
        export_reference(native, path, (1, 3, 224, 224), opset, exporter)


def measure(native, imported, x, protocol: LatencyProtocol, threads: int) -> dict:
    """One interleaved measurement of native, native again (the control) and imported."""
    control_module = copy.deepcopy(native)  # its own parameters: a second module, as onnxruntime opens a second session
    samples = run_interleaved({NATIVE: lambda: native(x), CONTROL: lambda: control_module(x),
                               IMPORTED: lambda: imported(x)}, protocol)
    stats = {name: LatencyStats.from_samples(s, threads, x.shape[0]) for name, s in samples.items()}
    control = compare(stats[NATIVE].samples_ms, stats[CONTROL].samples_ms)
    # native / imported: > 1 when the imported module is faster, as compressed models are read everywhere else
    versus = compare(stats[NATIVE].samples_ms, stats[IMPORTED].samples_ms, margin=control_margin(control))
    low, high = versus.interval or (float("nan"), float("nan"))
    return {
        "native_ms": stats[NATIVE].to_dict(), "imported_ms": stats[IMPORTED].to_dict(),
        "overhead": 1 / versus.ratio, "overhead_interval": [1 / high, 1 / low] if versus.interval else None,
        "target": target_reading([1 / high, 1 / low] if versus.interval else None),
        "verdict": versus.verdict, "vs_native": versus.to_dict(), "control": control.to_dict(), "rounds": versus.samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed budget per exporter (the protocol's `seconds`)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    threads = pinned_threads()
    torch.set_num_threads(threads)
    protocol = LatencyProtocol(seconds=args.seconds)
    torch.manual_seed(0)
    native = build_reference("resnet18").eval()
    x = torch.randn(args.batch, 3, 224, 224)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for exporter, opset in VARIANTS:
            path = Path(tmp) / f"resnet18-{len(rows)}.onnx"
            export(native, path, exporter, opset)
            imported = load_onnx(path).eval()
            err = (imported(x) - native(x)).abs().max().item()
            rows.append({"exporter": exporter, "opset": opset, "batch": args.batch, "max_abs_diff": err,
                         **measure(native, imported, x, protocol, threads)})
    command = " ".join(["python", *sys.argv])
    print(f"ResNet-18, batch {args.batch}, 224x224, CPU ({cpu_name()}), torch pinned to {threads} threads, "
          f"{args.seconds:g} s timed per exporter, interleaved with a same-module control")
    print(f"{'exporter':22s} {'opset':>5s} {'native p50':>10s} {'imported p50':>12s} {'overhead':>8s} "
          f"{'95% interval':>13s} {'rounds':>6s} {'margin':>6s} {'max|diff|':>9s} {'target':>9s}  verdict (imported vs native)")
    for r in rows:
        interval = "{:.3f}-{:.3f}".format(*r["overhead_interval"]) if r["overhead_interval"] else "-"
        print(f"{r['exporter']:22s} {r['opset']:5d} {r['native_ms']['p50_ms']:10.1f} {r['imported_ms']['p50_ms']:12.1f} "
              f"{r['overhead']:8.3f} {interval:>13s} {r['rounds']:6d} {r['vs_native']['margin']:6.3f} "
              f"{r['max_abs_diff']:9.2e} {r['target']:>9s}  {r['verdict']}")
    if args.json:
        write_json_atomic(args.json, {
            "command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": cpu_name(),
                        "torch": torch.__version__},
            "threads": threads, "protocol": protocol.to_dict(), "target_overhead": TARGET, "rows": rows})
    return 1 if any(r["target"] == "missed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
