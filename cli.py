"""The `compress` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from compressor.errors import CompressorError


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Command(click.Command):
    """Turns CompressorError into one line on stderr and exit code 2 (never a traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CompressorError as exc:
            _fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="compress")
def main():
    """Prune ONNX vision models and write them back to ONNX."""


def _input_shapes(values: tuple[str, ...]) -> dict[str, list[int]] | None:
    from compressor.onnx_import.inputs import parse_shape

    shapes = {}
    for value in values:
        name, _, shape = value.rpartition(":")
        shapes[name or "__single__"] = parse_shape(shape)
    return shapes or None


def _bind_shapes(module, shapes):
    if shapes and "__single__" in shapes:
        if len(module.input_names) != 1:
            raise CompressorError(f"the model has {len(module.input_names)} inputs: name each, as NAME:1x3x224x224")
        shapes = {module.input_names[0]: shapes.pop("__single__"), **shapes}
    return shapes


@main.command(cls=_Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def inspect(model: Path, as_json: bool):
    """List the prunable layers of MODEL with their sparsity and 2:4 eligibility."""
    from compressor.inspection import inspect_module
    from compressor.onnx_import import load_onnx

    report = inspect_module(load_onnx(model))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = report["layers"]
    header = ("layer", "op", "shape", "params", "sparsity", "2:4", "node")
    table = [
        (r["name"], r["op"], "x".join(map(str, r["shape"])), f"{r['params']:,}", f"{r['sparsity']:.1%}",
         "yes" if r["nm_eligible"] else f"no ({r['reduction_size']} % 4)", r["node"])
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    right_aligned = {3, 4, 5}  # the numeric columns

    def line(cells):
        return "  ".join(c.rjust(w) if i in right_aligned else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    click.echo(line(header))
    click.echo("  ".join("-" * w for w in widths))
    for row in table:
        click.echo(line(row))
    t = report["totals"]
    click.echo(
        f"\n{t['layers']} prunable layers, {t['prunable']:,} prunable weights "
        f"({t['prunable_sparsity']:.1%} zero), {t['nm_eligible_layers']} eligible for 2:4; "
        f"{t['total']:,} stored values in all ({t['total'] - t['nonzero']:,} zero)"
    )


@main.command(cls=_Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write the round-tripped model.")
@click.option("--input-shape", multiple=True, help="Concrete input shape, e.g. 1x3x224x224 or NAME:1x3x224x224.")
@click.option("--sparse-initializers", is_flag=True, help="Store sparse weights as sparse_initializer (smaller file; not for TensorRT).")
def check(model: Path, output: Path | None, input_shape: tuple[str, ...], sparse_initializers: bool):
    """Import MODEL, write it back unchanged, and compare onnxruntime with the import.

    Run this before pruning: it proves the importer runs your model exactly.
    """
    import tempfile

    from compressor.onnx_import import load_onnx
    from exporters import export_onnx

    module = load_onnx(model)
    shapes = _bind_shapes(module, _input_shapes(input_shape))
    with tempfile.TemporaryDirectory() as tmp:
        target = output or Path(tmp) / model.name
        result = export_onnx(module, target, sparse_initializers=sparse_initializers, input_shapes=shapes)
    click.echo(f"imported {model}: {module.num_nodes} nodes, {len(module.weights)} prunable weights")
    click.echo(f"onnxruntime vs import: max relative error {result.parity.max_relative_error:.2e} "
               f"on inputs {result.parity.input_shapes}")
    if output:
        click.echo(f"wrote {output} ({result.file_bytes:,} bytes)")


if __name__ == "__main__":
    main()
