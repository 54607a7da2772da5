"""Export the reference networks to ONNX with a dynamic batch dimension.

Two exporters:

* ``"torchscript"``: ``torch.onnx.export(..., dynamo=False)`` (tracing), batch made dynamic with
  ``dynamic_axes``. Tested with opsets 13 and 17.
* ``"dynamo"``: ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` + onnxscript), batch made
  dynamic with ``dynamic_shapes`` / ``torch.export.Dim``; weights are kept inside the file
  (``external_data=False``). Tested with opsets 18 and 20.

The graph has one input ``input`` ``[batch, C, H, W]`` and one output ``output`` whose first
dimension is ``batch``. The file is written to a temporary file in the destination folder,
checked (``onnx.checker.check_model``, default-domain opset == requested opset, no external
data), then moved into place with ``os.replace``.

CLI::

    python -m deploy.zoo.export --model resnet18-tiny --opset 17 --exporter torchscript -o m.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import onnx
import torch
from torch import nn

from compressor.errors import ExportError

from .models import REFERENCE_MODELS, build_reference

__all__ = ["EXPORTERS", "INPUT_NAME", "OUTPUT_NAME", "ExportError", "export_reference", "main"]

EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"


@contextlib.contextmanager
def _quiet(enabled: bool = True) -> Iterator[None]:
    """Swallow the exporters' prints, warnings and INFO/WARNING logging (the dynamo exporter
    prints its progress, ``[torch.onnx] Obtain model graph ...``, to stdout)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    sink = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in _graph_tensors(model.graph))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: str, opset: int) -> None:
    torch.onnx.export(
        model,
        (example,),
        path,
        dynamo=False,
        verbose=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
    )


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: str, opset: int) -> None:
    batch = torch.export.Dim(BATCH_DIM, min=1, max=4096)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        verbose=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        external_data=False,
        optimize=True,
    )
    if program is None:  # pragma: no cover - the dynamo path always returns an ONNXProgram
        raise ExportError("torch.onnx.export(dynamo=True) returned no ONNXProgram")
    program.save(path, external_data=False)


def export_reference(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int],
    opset: int,
    exporter: str = "torchscript",
    *,
    quiet: bool = True,
) -> Path:
    """Export ``model`` (put in eval mode) to ``path`` with a dynamic batch dimension.

    ``input_shape`` is the example input's shape (its batch size only matters for tracing; batch 1
    is fine). Returns the destination path. Raises :class:`compressor.errors.ExportError` when the
    exporter fails or the produced file has the wrong opset, external data or does not pass the
    ONNX checker; the destination is then left untouched.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(tuple(int(d) for d in input_shape), generator=gen)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        with _quiet(quiet), torch.no_grad():
            if exporter == "torchscript":
                _export_torchscript(model, example, tmp_name, opset)
            else:
                _export_dynamo(model, example, tmp_name, opset)
        proto = onnx.load(tmp_name, load_external_data=False)
        if _uses_external_data(proto):
            raise ExportError(f"{exporter} export wrote weights to external data; expected a single file")
        got = _default_opset(proto)
        if got != opset:
            raise ExportError(f"{exporter} export produced default-domain opset {got}, requested {opset}")
        try:
            onnx.checker.check_model(tmp_name, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{exporter} export failed the ONNX checker: {exc}") from exc
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_name, dest)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{exporter} export (opset {opset}) failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.zoo.export",
        description="Export a reference network to ONNX (dynamic batch).",
    )
    parser.add_argument("--model", required=True, choices=sorted(REFERENCE_MODELS))
    parser.add_argument("--opset", type=int, required=True)
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript")
    parser.add_argument("-o", "--output", required=True, type=Path, help="destination .onnx file")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)

    shape = REFERENCE_MODELS[args.model].input_shape
    model = build_reference(args.model, seed=args.seed)
    start = time.perf_counter()
    try:
        dest = export_reference(model, args.output, shape, args.opset, args.exporter)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    print(f"wrote {dest} ({args.model}, {args.exporter}, opset {args.opset}, {elapsed:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
