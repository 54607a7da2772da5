"""The `compress` command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from compressor.errors import CompressorError, first_line
from compressor.pipeline.options import PlanOptions
from compressor.version import __version__


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


class _Command(click.Command):
    """Turns every error into one line on stderr and exit code 2 (never a traceback).

    CompressorError is the user's to fix and says how. Anything else is a defect of ours that
    some input reached (a damaged model can fail deep inside an operator): it still gets one
    line, naming it as ours; COMPRESS_DEBUG=1 shows the traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CompressorError as exc:
            _fail(first_line(exc))
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the promise is one line, whatever went wrong
            if os.environ.get("COMPRESS_DEBUG"):
                raise
            _fail(f"internal error ({type(exc).__name__}: {first_line(exc)}); COMPRESS_DEBUG=1 shows the traceback")


class _DefaultToRun(click.Group):
    """`compress MODEL.onnx ...` means `compress run MODEL.onnx ...`; subcommands still work."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def main():
    """Prune ONNX vision models and write them back to ONNX.

    \b
      compress MODEL.onnx --method magnitude --sparsity 0.9 --data DATA -o out/
      compress inspect MODEL.onnx
      compress check MODEL.onnx
      compress engine MODEL.onnx --precision fp16
    """


def _input_shapes(values: tuple[str, ...]) -> dict[str, list[int]] | None:
    """--input-shape values as {input name: shape}; an unnamed shape is keyed "" (the only input)."""
    from compressor.onnx_import.inputs import parse_shape

    shapes = {}
    for value in values:
        name, _, shape = value.rpartition(":")
        shapes[name] = parse_shape(shape)
    return shapes or None


@main.command(cls=_Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def inspect(model: Path, as_json: bool):
    """List the prunable layers of MODEL with their sparsity and 2:4 eligibility."""
    from compressor.inspection import inspect_module, tail_line
    from compressor.onnx_import import load_onnx

    report = inspect_module(load_onnx(model))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = report["layers"]
    header = ("layer", "op", "shape", "params", "sparsity", "2:4", "node")
    table = [
        (r["name"], r["op"], "x".join(map(str, r["shape"])), f"{r['params']:,}", f"{r['sparsity']:.1%}",
         "yes" if r["nm_eligible"] else f"no: {r['nm_reason']}", r["node"])
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    right_aligned = {3, 4}  # the numeric columns

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
    if tail_line(report):
        click.echo(tail_line(report))


@main.command(cls=_Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write the round-tripped model.")
@click.option("--input-shape", multiple=True, help="Concrete input shape, e.g. 1x3x224x224 or NAME:1x3x224x224.")
@click.option("--sparse-initializers", is_flag=True, help="Store sparse weights as sparse_initializer (smaller file; not for TensorRT).")
@click.option("--data", help="Compare on the first samples of this data (same forms as for run) instead of random inputs.")
@click.option("--preprocess", help="Image preprocessing for --data, as for run.")
def check(model: Path, output: Path | None, input_shape: tuple[str, ...], sparse_initializers: bool,
          data: str | None, preprocess: str | None):
    """Import MODEL, write it back unchanged, and compare onnxruntime with the import.

    Run this before pruning: it proves the importer runs your model exactly. Random inputs can
    leave some models' outputs near zero (a text detector on noise), where float noise looks
    large relative to them: --data compares on real samples.
    """
    import tempfile

    from compressor.data import example_batch, load_model_data, parse_preprocess
    from compressor.data.shape_hints import shape_hints
    from compressor.onnx_import import load_onnx
    from compressor.onnx_import.batching import probe_batch
    from compressor.onnx_import.inputs import input_dtypes, random_inputs, resolve_input_shapes
    from exporters import export_onnx

    module = load_onnx(model)
    metadata = {p.key: p.value for p in module.onnx_model.metadata_props}
    parsed = parse_preprocess(preprocess) if preprocess else None
    hints = shape_hints(data, [(n, module.input_shapes.get(n, [])) for n in module.input_names], parsed, metadata)
    shapes = resolve_input_shapes(module, _input_shapes(input_shape), batch=1, hints=hints)
    samples = None
    if data is not None:
        dtypes = input_dtypes(module)
        samples = load_model_data(data, [(n, shapes[n], dtypes[n]) for n in module.input_names], preprocess=parsed, limit=8)

    def example_inputs(batch: int):
        if samples is not None:
            return example_batch(samples, batch)
        return random_inputs(module, {n: [batch, *s[1:]] for n, s in shapes.items()}, batch=batch)

    batch = probe_batch(module, example_inputs)
    module.batch_chunk = batch.chunk
    # batch 2 exercises a dynamic batch; a model fixed to its batch is checked at that batch
    check_batch = batch.native if batch.runs_own_batch_only else 2
    with tempfile.TemporaryDirectory() as tmp:
        target = output or Path(tmp) / model.name
        result = export_onnx(module, target, sparse_initializers=sparse_initializers,
                             parity_inputs=example_inputs(check_batch))
    click.echo(f"imported {model}: {module.num_nodes} nodes, {len(module.weights)} prunable weights")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"onnxruntime vs import: max relative error {result.parity.max_relative_error:.2e} "
               f"on inputs {result.parity.input_shapes}")
    if module.tail:
        click.echo(f"tail kept as is ({', '.join(module.tail.ops)}) ran in onnxruntime: outputs {result.parity.tail_outputs}")
    if output:
        click.echo(f"wrote {output} ({result.file_bytes:,} bytes)")


def _overrides(values: tuple[str, ...]) -> dict[str, float]:
    overrides = {}
    for value in values:
        glob, sep, sparsity = value.rpartition("=")
        try:
            if not sep or not glob:
                raise ValueError
            overrides[glob] = float(sparsity)
        except ValueError:
            raise CompressorError(f"bad --override {value!r}: expected NAME_OR_GLOB=SPARSITY, e.g. 'conv1*=0.5'") from None
    return overrides


def _method_options(command):
    """One option per field of the registered methods' Configs (compressor/methods/options.py):
    the methods own their options, defaults and help; None means "not given"."""
    from compressor.methods.options import method_options

    for spec in reversed(method_options()):
        kind = click.Choice(list(spec.choices)) if spec.choices else spec.type
        command = click.option(spec.flag, spec.dest, type=kind, default=None, help=spec.help)(command)
    return click.option("--method-option", "method_option", multiple=True, metavar="KEY=VALUE",
                        help="Any other option of the chosen method's Config, e.g. population=20 for olmp (repeatable).")(command)


def _registered(kind: str) -> str:
    from compressor.methods import METHODS
    from compressor.runtimes import RUNTIMES
    from compressor.sparsity.registry import grammar_hint
    from compressor.tasks import TASKS

    if kind == "pattern":
        return grammar_hint()
    return ", ".join({"method": METHODS, "task": TASKS, "runtime": RUNTIMES}[kind].names())


@main.command(cls=_Command)
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--runtime", default="onnxruntime-cpu", show_default=True,
              help=f"Runtime to time in: {_registered('runtime')} (short names ort-cpu, ort-cuda, ort-trt).")
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, e.g. 1,8,32.")
@click.option("--input-shape", multiple=True, help="Input shape at batch 1 where the model leaves it open: 1x3x288x800 or NAME:1x3x288x800.")
@click.option("--runtime-option", "runtime_option", multiple=True, metavar="KEY=VALUE",
              help="An option of the runtime, e.g. torch-cuda: cuda_graph=true, semi_structured=true, compile=default "
                   "(repeatable; an unknown key lists the runtime's options).")
@click.option("--variant", "variant", multiple=True, metavar="KEY=VALUE[,KEY=VALUE]",
              help="Time every model once more under these runtime options, in the same rounds, e.g. "
                   "semi_structured=true: a 2:4 file on dense and on sparse kernels side by side (repeatable).")
@click.option("--seconds", type=float, help="Time budget of the timed runs per batch size (default 2 s on a CPU; on a GPU "
                                           "10 s and at least 1000 runs, deploy.md §6).")
@click.option("--runs", type=int, help="Exactly this many timed runs per model instead of a time budget.")
@click.option("--threads", type=int, help="Intra-op threads (default: the CPUs this process may use).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the results (machine, date, command, samples) as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="Write a PNG of the latency distributions.")
def bench(models, runtime, runtime_option, variant, batches, input_shape, seconds, runs, threads, seed, json_path,
          plot_path):
    """Time MODELS side by side on one runtime; ratios against the first with intervals and verdicts."""
    from compressor.runtimes.base import parse_runtime_options
    from compressor.runtimes.latency import LatencyProtocol, parse_batches
    from deploy import bench as benchmark

    if runs is not None and runs < 1:
        raise CompressorError(f"--runs must be at least 1, got {runs}")
    if seconds is not None and seconds <= 0:
        raise CompressorError(f"--seconds must be positive, got {seconds}")
    protocol = LatencyProtocol.fixed(runs, warmup=10) if runs else None
    result = benchmark.bench(models, runtime=runtime, runtime_options=parse_runtime_options(runtime_option),
                             batches=parse_batches(batches), input_shapes=_input_shapes(input_shape), protocol=protocol,
                             seconds=seconds, threads=threads, seed=seed,
                             variants=[parse_runtime_options(v.split(",")) for v in variant],
                             command=" ".join(["compress", "bench", *sys.argv[2:]]))
    click.echo(benchmark.table(result))
    if json_path:
        click.echo(f"wrote {benchmark.write_json(result, json_path)}")
    if plot_path:
        click.echo(f"wrote {benchmark.plot(result, plot_path)}")


@main.command(cls=_Command, name="run")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--method", default="magnitude", show_default=True, help=f"Pruning method: {_registered('method')}.")
@click.option("--task", default="auto", show_default=True,
              help=f"What the model does and how it is measured: {_registered('task')}; auto: the task of the data form "
                   "(tusimple:, coco:) or of the model's metadata, else classification with labels, distillation without.")
@click.option("--sparsity", type=float, help="Target fraction of zero weights in the pruned layers (default 0.5; olmp finds its own).")
@click.option("--pattern", default="unstructured", show_default=True, help=f"Sparsity pattern: {_registered('pattern')}.")
@click.option("--scope", type=click.Choice(["layer", "global"]), default="layer", show_default=True,
              help="Unstructured: the same sparsity in every layer, or one threshold across layers.")
@click.option("--plan", type=click.Choice(["all", "auto"]), default="all", show_default=True,
              help="all: prune every layer the pattern applies to; auto (N:M only): only the layers TensorRT is "
                   "expected to run sparse (wide, large, not grouped).")
@click.option("--plan-min-channels", type=int, default=PlanOptions.plan_min_channels, show_default=True,
              help="--plan auto: input and output channels a layer needs to be pruned.")
@click.option("--plan-channel-multiple", type=int, default=PlanOptions.plan_channel_multiple, show_default=True,
              help="--plan auto: input and output channels must be multiples of this (0: off).")
@click.option("--plan-min-params", type=int, default=PlanOptions.plan_min_params, show_default=True,
              help="--plan auto: weights a layer needs to be pruned (smaller ones gain too little).")
@click.option("--round-to", default="8", show_default=True,
              help="--pattern channel: kept channel counts are multiples of this (hardware-friendly); auto: the "
                   "block the --runtime's kernels work in (16 for onnxruntime-cpu on AVX-512 CPUs, else 8).")
@click.option("--target-flops", type=float,
              help="--pattern channel: keep this fraction of the multiply-adds (instead of --sparsity, a fraction of channels).")
@click.option("--exclude", multiple=True, help="Keep layers dense (ONNX weight or node name, glob; repeatable).")
@click.option("--override", "overrides", multiple=True, help="Per-layer sparsity, NAME_OR_GLOB=SPARSITY (repeatable).")
@click.option("--keep-ends/--prune-ends", "keep_ends_dense", default=None,
              help="Leave the first conv and the last classifier dense (default: yes, unless --exclude/--override is given).")
@click.option("--data", help="npz file, image folder, 'digits' or 'mnist-csv:PATH' (default: the model's metadata, else none).")
@click.option("--preprocess", help="Image preprocessing, e.g. 'size=224x224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,order=rgb'.")
@click.option("--val-data", help="Separate validation data (same forms as --data); default: --val-fraction of --data.")
@click.option("--val-fraction", type=float, default=0.2, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--limit", type=int, help="Use at most this many samples (quick runs).")
@click.option("--input-shape", multiple=True, help="Concrete input shape: 1x3x320x320, or NAME:1x3x320x320.")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]),
              help="Default: the method's own (slr, admm: sgd, lr 0.01, momentum 0.9; the others: adam, lr 0.001).")
@click.option("--lr", type=float, help="Learning rate (default: the method's own, see --optimizer).")
@click.option("--momentum", type=float, help="SGD momentum (default 0.9).")
@click.option("--weight-decay", type=float, help="Weight decay (default 0).")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant", "step"]), help="Per phase (default cosine).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--reinsert-bn/--no-reinsert-bn", default=None,
              help="Train convs whose BatchNorm the exporter folded with a BatchNorm put back for the whole run, "
                   "folded again when it ends (default: on for slr and admm, whose SGD penalty phase needs it; off "
                   "for the others).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Train with the task's own augmentation where it has one (lane and detection: left-right "
                   "mirroring, labels mirrored with the image).")
@click.option("--distill-weight", type=float, default=0.0, show_default=True,
              help="With labels, also learn from the dense model: the task's loss plus this times its distillation "
                   "loss (the dense model's outputs as soft targets). 0: labels only.")
@click.option("--recalibrate-bn/--no-recalibrate-bn", default=None,
              help="After hard pruning, re-estimate the statistics of convs whose BatchNorm the exporter folded, on "
                   "training batches, before retraining; the report shows the metrics before and after it "
                   "(default: on for slr and admm, off for the others).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output folder (default: compressed/<model>-<method>/).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint in the output folder.")
@click.option("--sparse-initializers", is_flag=True, help="Store weights as sparse_initializer (smaller file; TensorRT ignores it).")
@click.option("--keep-fixed/--prune-fixed", "keep_fixed", default=True, show_default=True,
              help="Keep weights that are not learned (constant, arange-like, integer kernels such as YOLOv8's DFL decoding) dense.")
@click.option("--sensitivity", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Prune each layer alone first; on: keep dense those that break an output channel group; "
                   "auto: on for one-shot runs, reported only when training follows.")
@click.option("--sensitivity-threshold", type=float, default=0.5, show_default=True,
              help="Relative L2 error of any output channel group above which a layer pruned alone is kept dense.")
@click.option("--sensitivity-samples", type=int, default=8, show_default=True, help="Calibration samples for the sensitivity pass.")
@click.option("--random-samples", type=int, default=64, show_default=True,
              help="Without --data: random inputs the fidelity to the dense model is measured on.")
@click.option("--error-budget", type=float,
              help="Keep dense the layers adding most to the predicted joint output error until it fits this "
                   "(default 0.1 for one-shot runs, off when training follows; 0: off).")
@click.option("--engine", type=click.Choice(["trt"]), help="Also build a TensorRT engine next to the pruned ONNX (model.engine).")
@click.option("--dynamic-batch", is_flag=True,
              help="Declare the exported model's batch dimension symbolic (refused when the batch is baked into the graph).")
@click.option("--latency-seconds", type=float,
              help="Time budget of the timed latency rounds (after warm-up), fast models get more rounds "
                   "(default 2 s on a CPU runtime; 10 s and at least 1000 rounds on a GPU one, deploy.md §6).")
@click.option("--latency-runs", type=int, help="At most this many timed latency rounds (default: as many as "
                                                "--latency-seconds allows).")
@click.option("--latency-batch", "latency_batches",
              help="Batch sizes the latency is measured at, e.g. 1,8,32 (default 1, and 1,8 for --pattern channel; a "
                   "model fixed to one batch: that one).")
@click.option("--runtime", default="onnxruntime-cpu", show_default=True, help=f"Runtime the latency is measured in: {_registered('runtime')}.")
@click.option("--runtime-option", "runtime_option", multiple=True, metavar="KEY=VALUE",
              help="An option of the runtime, e.g. torch-cuda: cuda_graph=true, semi_structured=true (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
@_method_options
def run(model: Path, input_shape, overrides, exclude, quiet, method_option, runtime_option, latency_batches, **options):
    """Prune MODEL and write the pruned ONNX model and a report."""
    from compressor.methods.options import parse_method_options
    from compressor.pipeline import compress
    from compressor.reporting import console_summary
    from compressor.runtimes.base import parse_runtime_options
    from compressor.runtimes.latency import parse_batches

    log = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    report = compress(model, log=log, overrides=_overrides(overrides), exclude=tuple(exclude),
                      input_shapes=_input_shapes(input_shape), progress=not quiet,
                      method_options=parse_method_options(method_option, options["method"]),
                      runtime_options=parse_runtime_options(runtime_option),
                      latency_batches=None if latency_batches is None else parse_batches(latency_batches, "--latency-batch"),
                      **options)
    click.echo(console_summary(report))


@main.command(cls=_Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Engine file (default: MODEL with .engine).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp16", show_default=True,
              help="TensorRT 10: set by builder flags. TensorRT 11: must match the ONNX (FP16 weights; INT8 only with Q/DQ).")
@click.option("--sparse/--no-sparse", default=None,
              help="2:4 sparse kernels (SPARSE_WEIGHTS); default: on where the precision allows them.")
@click.option("--workspace-mb", type=click.IntRange(min=1), help="Builder workspace memory limit in MiB.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="Timing cache file, read if present and written back.")
@click.option("--trtexec", "trtexec", type=click.Path(path_type=Path),
              help="Build with this trtexec binary (default: the tensorrt package, else trtexec on PATH).")
@click.option("--input-shape", multiple=True, help="Static input shape, e.g. 1x3x288x800 or NAME:1x3x288x800.")
@click.option("--max-batch", type=int, default=1, show_default=True,
              help="A symbolic batch dimension not fixed by --input-shape is built for 1..N, tuned for N.")
@click.option("--measure", is_flag=True, help="trtexec only: time the engine after the build and print its summary.")
def engine(model: Path, output: Path | None, precision: str, sparse: bool | None, workspace_mb: int | None,
           timing_cache: Path | None, trtexec: Path | None, input_shape: tuple[str, ...], max_batch: int,
           measure: bool):
    """Build a TensorRT engine from MODEL and list the layers that run 2:4 sparse."""
    from exporters.tensorrt.engine import make_engine

    outcome = make_engine(model, output, precision=precision, sparse=sparse, workspace_mb=workspace_mb,
                          timing_cache=timing_cache, trtexec=trtexec, input_shapes=_input_shapes(input_shape),
                          max_batch=max_batch, measure=measure)
    decision, sparsity = outcome.decision, outcome.sparsity
    for note in decision.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"engine: {outcome.engine} (TensorRT {decision.version}, {outcome.route}, {decision.precision}, "
               f"flags: {', '.join(decision.builder_flags) or 'none'})")
    if outcome.built_from != Path(model):
        click.echo(f"built from: {outcome.built_from} (its float16 copy: TensorRT {decision.version} takes the "
                   "precision from the ONNX types)")
    if decision.sparse:
        if not sparsity.logged:
            click.echo("2:4: the build log has no (Sparsity) lines")
        else:
            click.echo(f"2:4: {len(sparsity.eligible)} layers eligible, {len(sparsity.picked)} picked sparse kernels")
            for name in sparsity.picked:
                click.echo(f"  sparse  {name}")
            for name in sparsity.ran_dense:
                click.echo(f"  dense   {name} (eligible; the dense kernel was faster)")
    summary = outcome.summary
    if measure and summary is None:
        click.echo("trtexec printed no performance summary")
    elif summary is not None:
        # trtexec's own numbers (deploy.md §4): one run, no interval; `compress bench` compares models
        for name in ("Latency", "GPU Compute Time", "Enqueue Time"):
            if name in summary.stats:
                t = summary.stats[name]
                tails = ", ".join(f"p{p:g} {v:.3f}" for p, v in sorted(t.percentiles.items()))
                label = "host latency" if name == "Latency" else name.lower()
                click.echo(f"{label}: median {t.median:.3f} ms, mean {t.mean:.3f}, min {t.min:.3f}, max {t.max:.3f}"
                           + (f", {tails}" if tails else "") + " (ms)")
        if summary.throughput_qps is not None:
            click.echo(f"throughput: {summary.throughput_qps:.1f} inferences/s")
        if summary.host_bound:
            click.echo("note: enqueue is slower than the GPU compute: the run was host-bound")


@main.group()
def zoo():
    """Reference lane and detection networks, and data to train them on.

    \b
      compress zoo generate tusimple data/lanes --count 1000
      compress zoo train ufld --data tusimple:data/lanes -o ufld.onnx
      compress zoo generate coco data/shapes --count 1000
      compress zoo train yolo --data coco:data/shapes/annotations/instances_synthetic.json -o yolo.onnx
    """


@zoo.command(cls=_Command, name="generate")
@click.argument("kind", type=click.Choice(["tusimple", "coco"]))
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True, help="Images to write.")
@click.option("--seed", type=int, default=0, show_default=True)
def zoo_generate(kind: str, folder: Path, count: int, seed: int):
    """Write synthetic road scenes (TuSimple layout) or shapes (COCO layout) into FOLDER."""
    if kind == "tusimple":
        from compressor.tasks.lane.synthetic import generate_tusimple

        records = generate_tusimple(folder, count, seed)
        click.echo(f"{len(records)} frames, {sum(len(r.lanes) for r in records)} lanes: use --data tusimple:{folder}")
    else:
        from compressor.tasks.detection.synthetic import generate_coco

        annotations = generate_coco(folder, count, seed)
        click.echo(f"{count} images: use --data coco:{annotations}")


@zoo.command(cls=_Command, name="train")
@click.argument("network", type=click.Choice(["ufld", "ufld-full", "yolo", "yolo-n"]))
@click.option("--data", required=True, help="tusimple:DIR (ufld) or coco:ANNOTATIONS.json[,IMAGES] (yolo).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The ONNX file to write.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use this many images of the data at most.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the training history as JSON.")
def zoo_train(network: str, data: str, output: Path, epochs: int, batch_size: int, seed: int, limit: int | None,
              json_path: Path | None):
    """Train a reference NETWORK on DATA and export it to ONNX (task and preprocessing in its metadata)."""
    from compressor.files import write_json_atomic
    from deploy.zoo.task_models import train_network

    result = train_network(network, data, output, epochs=epochs, batch_size=batch_size, seed=seed, limit=limit,
                           log=lambda line: click.echo(line, err=True))
    if json_path is not None:
        write_json_atomic(json_path, result)
    final = {k: v for k, v in result["final"].items() if k not in ("epoch", "seconds")}
    click.echo(f"{output}: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))


if __name__ == "__main__":
    main()
