"""The `compress` pipeline: ONNX -> module -> method -> masks -> exporter -> benchmark -> report.

    report = compress("model.onnx", method="magnitude", sparsity=0.9, data="digits", epochs=5)

Data flows one way. The dense module is imported twice: one copy is pruned, the other stays
as the reference (and as the teacher when there are no labels).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .errors import ConfigError, DataError
from .methods import PruneContext, get_method
from .objectives import ClassificationObjective, DistillationObjective
from .onnx_import import load_onnx
from .onnx_import.inputs import input_dtypes, random_inputs, resolve_input_shapes
from .onnx_import.tensors import torch_to_numpy
from .sensitivity import DEFAULT_MAX_RELATIVE_L2
from .training import Checkpoint, OptimizerConfig, Session, TrainConfig

METADATA_PREFIX = "onnx_compressor."
DEFAULT_SPARSITY = 0.5
ONE_SHOT_ERROR_BUDGET = 0.1  # joint relative error the protected layers keep a one-shot prune within
PARITY_SAMPLES = 8  # the export check runs this many samples (or the model's fixed batch)
CHECKPOINT_NAME = "resume-checkpoint.pt"  # the only file a failed run leaves behind
STAGING_DIR = ".partial"  # outputs wait here until every check passed


@dataclass
class CompressOptions:
    method: str = "magnitude"
    sparsity: float | None = None  # None: 0.5, or none at all for methods that find their own (olmp)
    pattern: str = "unstructured"
    scope: str = "layer"  # layer | global (unstructured only)
    exclude: tuple[str, ...] = ()
    overrides: dict[str, float] = field(default_factory=dict)
    keep_ends_dense: bool | None = None
    data: str | None = None
    val_data: str | None = None  # separate validation data; otherwise --val-fraction of --data
    preprocess: str | None = None
    val_fraction: float = 0.2
    batch_size: int = 64
    limit: int | None = None
    input_shapes: dict[str, list[int]] | None = None
    epochs: int | None = None  # None: 3 with training data, 0 without
    retrain_epochs: int | None = None  # masked retraining after hard pruning (None: the method's default)
    schedule: str = "oneshot"
    # method-specific options (None: the method's default; a method refuses options it does not take)
    rho: float | None = None
    slr_M: float | None = None
    slr_r: float | None = None
    slr_s0: float | None = None
    admm_interval: int | None = None
    condition_batches: int | None = None
    max_accuracy_drop: float | None = None
    max_output_error: float | None = None
    objective: str | None = None
    constraint_data: str | None = None
    constraint_samples: int | None = None
    constraint_baseline: str | None = None
    search_calls: int | None = None
    search_budget: int | None = None
    ncs_sigma: float | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    seed: int = 0
    output: Path | None = None
    resume: bool = False
    progress: bool = True
    latency_runs: int = 30
    runtime: str = "onnxruntime-cpu"  # what latency is measured in (compressor.runtimes)
    sparse_initializers: bool = False
    dynamic_batch: bool = False  # declare the exported file's batch symbolic (the model must generalise)
    keep_fixed: bool = True  # weights that are not learned (constant, arange, integer kernels) stay dense
    sensitivity: str = "auto"  # prune each layer alone first; on: keep dense those that break an output; auto: on when nothing trains after pruning, else reported only; off
    sensitivity_threshold: float = DEFAULT_MAX_RELATIVE_L2
    sensitivity_samples: int = 8
    random_samples: int = 64  # data-free runs measure fidelity on this many random inputs
    error_budget: float | None = None  # None: ONE_SHOT_ERROR_BUDGET when nothing trains afterwards, else off

    def fingerprint(self, model_sha: str) -> dict:
        """The options a checkpoint must agree with to be resumed."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("output", "resume", "progress", "latency_runs", "runtime", "sparse_initializers", "dynamic_batch")}
        for key, default in (("keep_fixed", True), ("sensitivity", "auto"), ("sensitivity_threshold", DEFAULT_MAX_RELATIVE_L2),
                             ("sensitivity_samples", 8), ("error_budget", None), ("random_samples", 64)):
            if keep[key] == default:  # checkpoints from before these options stay resumable
                del keep[key]
        return {"model_sha256": model_sha, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in keep.items()}}


def compress(model_path, log=print, **options) -> dict:
    """Prune `model_path` and write model.onnx, report.json and report.md; returns the report."""
    opts = CompressOptions(**options)
    return Pipeline(Path(model_path), opts, log).run()


class Pipeline:
    def __init__(self, model_path: Path, options: CompressOptions, log):
        self.path = model_path
        self.opts = options
        self.log = log
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.batch_size = options.batch_size  # the model's own batch when its outputs cannot be split

    def _timed(self, key: str, fn):
        start = time.perf_counter()
        result = fn()
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start
        return result

    def run(self) -> dict:
        """Run every stage; on failure remove this run's partial outputs (keeping only the resume checkpoint)."""
        opts = self.opts
        _check_options(opts)
        out_dir = Path(opts.output) if opts.output else Path("compressed") / f"{self.path.stem}-{opts.method}"
        created = not out_dir.exists()
        # Everything is written into a staging folder and moved into place only when the whole run
        # succeeded: a failed run never leaves a model without its report, nor replaces older files.
        staging = out_dir / STAGING_DIR
        try:
            report = self._run(out_dir, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            checkpoint = out_dir / CHECKPOINT_NAME
            if checkpoint.exists():
                self.log(f"note: the run failed; {checkpoint} is kept for --resume")
            elif created and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return report

    def _run(self, out_dir: Path, staging: Path) -> dict:
        from .data import example_batch, load_model_data, parse_preprocess, random_model_data, split_indices
        from .data.shape_hints import shape_hints
        from .onnx_import.batching import probe_batch
        from .sparsity import parse_pattern, plan_layers

        opts, started = self.opts, time.perf_counter()
        module = self._timed("import_s", lambda: load_onnx(self.path))
        dense = self._timed("import_s", lambda: load_onnx(self.path)).eval()
        for p in dense.parameters():
            p.requires_grad_(False)
        metadata = {p.key: p.value for p in module.onnx_model.metadata_props}

        # ---- inputs: shapes (declared, --input-shape, or fixed by the data), dtypes, batch -------
        data_spec, preprocess = opts.data, opts.preprocess
        if data_spec is None and metadata.get(METADATA_PREFIX + "default_data"):
            data_spec = metadata[METADATA_PREFIX + "default_data"]
            preprocess = preprocess or metadata.get(METADATA_PREFIX + "default_preprocess") or None
            self.notes.append(f"Data '{data_spec}' comes from the model's metadata (no --data given).")
        parsed_preprocess = parse_preprocess(preprocess) if preprocess else None
        hints = shape_hints(data_spec, [(n, module.input_shapes.get(n, [])) for n in module.input_names],
                            parsed_preprocess, metadata)
        shapes = resolve_input_shapes(module, opts.input_shapes, batch=1, hints=hints)
        for name, (_, source) in hints.items():
            if opts.input_shapes is None or name not in opts.input_shapes:
                declared = module.input_shapes.get(name, [])
                if any(not (isinstance(d, int) and d > 0) for d in declared[1:]) or not declared:
                    self.notes.append(f"Input {name!r} runs at {'x'.join(map(str, shapes[name][1:]))} per sample, from {source}.")
        dtypes = input_dtypes(module)
        inputs = [(name, shapes[name], dtypes[name]) for name in module.input_names]

        def example_inputs(batch: int) -> list[torch.Tensor]:
            return random_inputs(module, {n: [batch, *s[1:]] for n, s in shapes.items()}, batch=batch, seed=opts.seed)

        batch_info = self._timed("import_s", lambda: probe_batch(dense, example_inputs))
        module.batch_chunk = dense.batch_chunk = batch_info.chunk
        if opts.dynamic_batch and not batch_info.generalises:
            raise ConfigError(f"--dynamic-batch: the model does not compute other batches correctly ({batch_info.detail})")
        # outputs without a batch axis cannot be cut into chunks: every batch is the model's own
        self.batch_size = opts.batch_size if batch_info.splittable else batch_info.native
        if batch_info.chunk is not None or batch_info.declared_fixed:
            self.notes.append(f"Batch: {batch_info.detail}" + ("" if batch_info.splittable else
                              f"; training and evaluation use batches of {batch_info.native}") + ".")

        # ---- data ------------------------------------------------------------------------------
        num_classes = _num_classes(module)
        method = get_method(opts.method, **self._method_options(data_spec is not None))
        if data_spec is not None:
            dataset = self._timed("data_s", lambda: load_model_data(
                data_spec, inputs, preprocess=parsed_preprocess, num_classes=num_classes, limit=opts.limit, seed=opts.seed))
            labelled = dataset.labelled
            if opts.val_data is not None:
                train_data = dataset
                val_data = self._timed("data_s", lambda: load_model_data(
                    opts.val_data, inputs, preprocess=parsed_preprocess, num_classes=num_classes, seed=opts.seed))
                if val_data.labelled != labelled:
                    raise DataError("--data and --val-data must both have labels or both have none")
            else:
                train_idx, val_idx = split_indices(len(dataset), opts.val_fraction, opts.seed)
                train_data, val_data = dataset.subset(train_idx), dataset.subset(val_idx)
            data_info = {"description": dataset.description, "train": len(train_data), "val": len(val_data),
                         "labelled": labelled}
            if opts.val_data is not None:
                data_info["val_description"] = val_data.description
        else:
            if method.requires_data():
                raise DataError(f"method {opts.method!r} with these options trains the model: give --data (or --epochs 0 for one-shot pruning)")
            train_data, labelled = None, False
            val_data = random_model_data(inputs, opts.random_samples, opts.seed)
            data_info = {"description": val_data.description, "train": 0, "val": len(val_data), "labelled": False}
            described = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s, _ in inputs)
            self.notes.append(f"No data: pruning is one-shot, and metrics are fidelity to the dense model on {opts.random_samples} random inputs ({described}).")

        classifier = num_classes is not None
        if labelled:
            if not classifier:
                raise DataError("the data has labels but the model's first output is not [batch, classes] logits")
            objective = ClassificationObjective()
        else:
            objective = DistillationObjective(classifier=classifier, output_names=module.output_names)
            if data_spec is not None:
                self.notes.append("The data has no labels: the dense model teaches the pruned one (distillation); metrics are fidelity to it.")

        # ---- plan ------------------------------------------------------------------------------
        pattern = parse_pattern(opts.pattern)
        keep_ends = opts.keep_ends_dense
        if method.finds_own_sparsity:
            if opts.sparsity is not None or opts.overrides:
                raise ConfigError(f"method {opts.method!r} finds every layer's sparsity itself: drop --sparsity/--override")
            keep_ends = False if keep_ends is None else keep_ends  # the paper prunes every layer
        target = opts.sparsity if opts.sparsity is not None else DEFAULT_SPARSITY
        if not module.weights:
            raise ConfigError(f"{self.path}: the model has no prunable weights (no Conv, ConvTranspose, Gemm or MatMul with a constant weight)")
        plan, protection = self._timed("plan_s", lambda: self._plan(module, pattern, target, keep_ends, method, train_data, val_data))
        self.notes.extend(plan.notes)

        out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = Checkpoint(out_dir / CHECKPOINT_NAME, opts.fingerprint(_sha256(self.path)))
        if checkpoint.exists() and not opts.resume:
            self.log(f"note: {checkpoint.path} exists from an interrupted run; starting over (pass --resume to continue it)")
        session = Session(module, objective, train_data, val_data, teacher=dense,
                          config=TrainConfig(batch_size=self.batch_size, seed=opts.seed,
                                             eval_batch_size=None if self.batch_size == opts.batch_size else self.batch_size),
                          checkpoint=checkpoint,
                          resume=opts.resume, progress=opts.progress, log=self.log)

        dense_metrics = self._timed("evaluate_s", lambda: session.evaluate(dense))
        ctx = PruneContext(module=module, plan=plan, pattern=pattern, session=session, log=self.log,
                           input_shape=shapes[module.input_names[0]])
        masks = self._timed("method_s", lambda: method.run(ctx))
        masks.apply(module)
        if method.finds_own_sparsity:  # the searched per-layer sparsity is what the report calls the target
            plan = replace(plan, targets={n: 1.0 - float(masks.masks[n].float().mean()) for n in plan.targets})
        for name, mask in masks.masks.items():  # pruned entries must be exact zeros before export
            if torch.count_nonzero(module.parameter(name).detach()[~mask]):
                raise RuntimeError(f"pruned entries of {name} are not zero after {opts.method}")
        compressed_metrics = self._timed("evaluate_s", lambda: session.evaluate(module))

        # ---- export, measure, report (all into the staging folder) -------------------------------
        from exporters import export_onnx

        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        fixed_file = (batch_info.declared_fixed and not opts.dynamic_batch) or batch_info.chunk
        file_batch = batch_info.native if fixed_file else min(len(val_data), PARITY_SAMPLES)
        sample = example_batch(val_data, file_batch)
        export = self._timed("export_s", lambda: export_onnx(
            module, staging / "model.onnx", sparse_initializers=opts.sparse_initializers, parity_inputs=sample,
            dynamic_batch=opts.dynamic_batch,
            metadata={"method": opts.method, "pattern": opts.pattern,
                      "target_sparsity": "searched" if method.finds_own_sparsity else str(target)}))
        latency_batch = batch_info.native if batch_info.runs_own_batch_only else 1  # as the dense file takes
        latency = self._timed("latency_s", lambda: self._latency(
            export.path, module.input_names, [t[:latency_batch] for t in sample]))
        exported = onnx.load(str(export.path))  # the report reads the file, so it cannot disagree with it
        layers, params = _model_statistics(exported, module, plan)
        _, dense_params = _model_statistics(dense.onnx_model, dense, plan)
        params["dense_nonzero"] = dense_params["nonzero"]
        params["dense_prunable_nonzero"] = dense_params["prunable_nonzero"]
        self.notes.extend(ctx.notes)
        self.notes.extend(f"Export: {warning}." for warning in export.warnings)
        report = {
            "method": opts.method,
            "pattern": opts.pattern,
            "scope": opts.scope,
            "target_sparsity": None if method.finds_own_sparsity else target,
            "sparsity": 1.0 - params["prunable_nonzero"] / max(params["prunable"], 1),
            "params": params,
            "compression_ratio": params["total"] / max(params["nonzero"], 1),
            "layers": layers,
            "metrics": {"dense": dense_metrics, "compressed": compressed_metrics, "kind": objective.kind,
                        "split": f"{_split_name(train_data, opts)} ({len(val_data)} samples)"},
            "export_parity": export.parity.max_relative_error,
            "latency_ms": latency,
            "file_bytes": {"dense": _file_bytes(self.path), "compressed": export.file_bytes},
            "data": data_info,
            "inputs": {name: {"shape": shape, "dtype": str(dtype).removeprefix("torch.")} for name, shape, dtype in inputs},
            "batch": batch_info.to_dict(),
            "training": {**method.describe(), "batch_size": self.batch_size, "seed": opts.seed},
            "plan": plan.to_dict(),
            "protection": protection,
            "notes": self.notes,
            "trace": session.trace,
            "model": str(self.path),
        }
        report.update(ctx.record)
        from .reporting import write_markdown_report

        final = {"onnx": str(out_dir / "model.onnx"), "report_json": str(out_dir / "report.json"),
                 "report_md": str(out_dir / "report.md")}
        if export.data_path is not None:
            final["onnx_data"] = str(out_dir / export.data_path.name)
        report["outputs"] = final
        write_markdown_report(report, staging)
        report["outputs"]["plots"] = sorted(str(out_dir / p.name) for p in staging.glob("*.png"))
        self.timings["total_s"] = time.perf_counter() - started
        report["timings"] = self.timings
        _write_json_atomically(staging / "report.json", report)
        # Every check passed: move the outputs into place (data file before the model that names it).
        staged = sorted(p for p in staging.iterdir() if p.is_file())
        for path in sorted(staged, key=lambda p: (p.name == "model.onnx", p.name)):
            os.replace(path, out_dir / path.name)
        checkpoint.remove()  # finished: nothing to resume
        return report

    def _plan(self, module, pattern, target, keep_ends, method, train_data, val_data):
        """The layer plan, with the layers that must not be pruned found rather than guessed.

        1. weights that are not learned (constant, arange-like, exact integer kernels) stay dense;
        2. the sensitivity pass prunes each planned layer alone on calibration samples and keeps
           dense those whose pruning alone breaks an output channel group;
        3. when nothing trains afterwards (one-shot), the layers that add most to the predicted
           joint error are kept dense until it fits the error budget.
        A one-shot prune cannot recover what it breaks; training after pruning recovers most of a
        layer's solo damage, so by default ("auto") a run that trains only reports the pass.
        """
        from .data import stack_inputs
        from .sensitivity import layer_sensitivity
        from .sparsity import plan_layers
        from .sparsity.fixed_weights import find_fixed_weights

        opts = self.opts

        def make_plan(keep_dense):
            return plan_layers(module.weights, pattern=pattern, sparsity=target, exclude=opts.exclude,
                               overrides=opts.overrides, keep_ends_dense=keep_ends, scope=opts.scope, keep_dense=keep_dense)

        fixed = find_fixed_weights(module) if opts.keep_fixed else {}
        plan = make_plan(fixed)
        trains = bool(self._method_options(train_data is not None).get("epochs")) or method.requires_data()
        enforce = opts.sensitivity == "on" or (opts.sensitivity == "auto" and not trains)
        budget = opts.error_budget if opts.error_budget is not None else (None if trains else ONE_SHOT_ERROR_BUDGET)
        protection = {"fixed": fixed, "sensitivity": None, "enforced": enforce, "budget": None, "budget_kept": {}}
        if opts.sensitivity == "off" or method.finds_own_sparsity or not plan.targets:
            return plan, protection
        # calibration: validation samples, then training samples (a one-shot run has no other use for them)
        pool = [val_data] + ([train_data] if train_data is not None else [])
        count = min(opts.sensitivity_samples, sum(len(d) for d in pool))
        samples = list(itertools.islice((d[i][0] for d in pool for i in range(len(d))), count))
        batches = [stack_inputs(samples[k:k + self.batch_size]) for k in range(0, len(samples), self.batch_size)]
        result = layer_sensitivity(module, plan, pattern, batches, max_relative_l2=opts.sensitivity_threshold,
                                   output_names=module.output_names)
        if not enforce:
            protection.update(sensitivity=result.to_dict())
            if result.keep_dense():
                self.notes.append(f"Sensitivity (reported only, training follows): {len(result.keep_dense())} layer(s) break an "
                                  "output when pruned alone before training; --sensitivity on keeps them dense.")
            return plan, protection
        kept = dict(result.keep_dense())
        budget_kept = result.within_budget(budget) if budget else {}
        protection.update(sensitivity=result.to_dict(), budget=budget, budget_kept=budget_kept)
        if kept or budget_kept:
            plan = make_plan({**fixed, **kept, **budget_kept})
            self.log(f"sensitivity: {len(kept)} layer(s) break an output when pruned alone"
                     + (f", {len(budget_kept)} more kept dense for the error budget {budget:g}" if budget_kept else "")
                     + f" ({result.seconds:.1f} s)")
        return plan, protection

    def _method_options(self, has_data: bool) -> dict:
        opts = self.opts
        epochs = opts.epochs if opts.epochs is not None else (3 if has_data else 0)
        optimizer = OptimizerConfig(name=opts.optimizer, lr=opts.lr, momentum=opts.momentum,
                                    weight_decay=opts.weight_decay, schedule=opts.lr_schedule)
        options = {"epochs": epochs, "schedule": opts.schedule, "optimizer": optimizer}
        for key in ("retrain_epochs", "rho", "slr_M", "slr_r", "slr_s0", "admm_interval", "condition_batches",
                    "max_accuracy_drop", "max_output_error", "objective", "constraint_data", "constraint_samples",
                    "constraint_baseline", "search_calls", "search_budget", "ncs_sigma"):
            options[key] = getattr(opts, key)
        return options

    def _latency(self, compressed_path: Path, input_names: list[str], sample: list[torch.Tensor]) -> dict:
        from .runtimes import get_runtime
        from .runtimes.latency import device_label, measure_latency, speedup

        feeds = {name: torch_to_numpy(t) for name, t in zip(input_names, sample)}
        stats = measure_latency({"dense": self.path, "compressed": compressed_path}, feeds,
                                runtime=self.opts.runtime, runs=self.opts.latency_runs)
        runtime = get_runtime(self.opts.runtime, threads=stats["dense"].threads)
        return {
            "dense": stats["dense"].to_dict(),
            "compressed": stats["compressed"].to_dict(),
            "speedup": speedup(stats["dense"], stats["compressed"]),
            "runtime": runtime.name,
            "device": device_label(runtime.describe()),
        }


def _split_name(train_data, opts: CompressOptions) -> str:
    if train_data is None:
        return "random inputs"
    return "--val-data" if opts.val_data is not None else "validation split"


def _check_options(opts: CompressOptions) -> None:
    if opts.sparsity is not None and not 0.0 <= opts.sparsity < 1.0:
        raise ConfigError(f"--sparsity must be in [0, 1), got {opts.sparsity}")
    if not 0.0 < opts.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {opts.val_fraction}")
    if opts.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {opts.batch_size}")
    if opts.epochs is not None and opts.epochs < 0:
        raise ConfigError(f"--epochs must be 0 or more, got {opts.epochs}")
    if opts.sensitivity not in ("auto", "on", "off"):
        raise ConfigError(f"--sensitivity must be auto, on or off, got {opts.sensitivity!r}")
    if not opts.sensitivity_threshold > 0:
        raise ConfigError(f"--sensitivity-threshold must be positive, got {opts.sensitivity_threshold}")
    if opts.random_samples < 1:
        raise ConfigError(f"--random-samples must be at least 1, got {opts.random_samples}")
    if opts.sensitivity_samples < 1:
        raise ConfigError(f"--sensitivity-samples must be at least 1, got {opts.sensitivity_samples}")
    if opts.error_budget is not None and opts.error_budget < 0:
        raise ConfigError(f"--error-budget must be 0 (off) or more, got {opts.error_budget}")
    if opts.scope not in ("layer", "global"):
        raise ConfigError(f"--scope must be layer or global, got {opts.scope!r}")


def _num_classes(module) -> int | None:
    """Classes of a classifier: the first output the module trains on, declared as [batch, K] with K >= 2."""
    graph = module.onnx_model.graph
    declared = {v.name: v for v in list(graph.output) + list(graph.value_info)}
    output = declared.get(module.output_names[0])
    if output is None:
        return None
    dims = output.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value >= 2:
        return int(dims[1].dim_value)
    return None


def _model_statistics(model: onnx.ModelProto, module, plan) -> tuple[list[dict], dict]:
    """Per-layer and total counts of a model's stored tensors. The pipeline passes the exported
    file as read back from disk, so the report and the file cannot disagree."""
    from exporters import stored_tensors

    arrays = stored_tensors(model)
    # weights computed by constant subgraphs (e.g. ConstantOfShape) are stored nowhere: the module holds them
    computed = {n: module.parameter(n).detach().numpy() for n in module.weights if n not in arrays}
    arrays.update(computed)
    layers = []
    for name, info in module.weights.items():
        array = arrays[name]
        layers.append({
            "name": name, "node": info.node, "op": info.op_type, "shape": list(array.shape), "params": int(array.size),
            "target": plan.targets.get(name), "sparsity": float(1.0 - np.count_nonzero(array) / max(array.size, 1)),
            "note": plan.skipped.get(name),
        })
    float_arrays = [a for a in arrays.values() if a.dtype.kind == "f"]
    params = {
        "total": int(sum(a.size for a in float_arrays)),
        "nonzero": int(sum(np.count_nonzero(a) for a in float_arrays)),
        "prunable": int(sum(layer["params"] for layer in layers)),
        "prunable_nonzero": int(sum(np.count_nonzero(arrays[layer["name"]]) for layer in layers)),
    }
    return layers, params


def _file_bytes(path: Path) -> int:
    data = Path(str(path) + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json_atomically(path: Path, obj) -> None:
    from .reporting.files import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
