"""The `compress` pipeline: ONNX -> module -> method -> masks -> exporter -> benchmark -> report.

    report = compress("model.onnx", method="magnitude", sparsity=0.9, data="digits", epochs=5)

Data flows one way. The dense module is imported twice: one copy is pruned, the other stays
as the reference (and as the teacher when there are no labels).
"""

from __future__ import annotations

import json
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
from .onnx_import.inputs import input_dtypes, resolve_input_shapes
from .training import Checkpoint, OptimizerConfig, Session, TrainConfig

METADATA_PREFIX = "onnx_compressor."
DEFAULT_SPARSITY = 0.5
RANDOM_EVAL_SAMPLES = 64  # data-free runs measure fidelity on this many random inputs


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
    sparse_initializers: bool = False

    def fingerprint(self, model_sha: str) -> dict:
        """The options a checkpoint must agree with to be resumed."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("output", "resume", "progress", "latency_runs", "sparse_initializers")}
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

    def _timed(self, key: str, fn):
        start = time.perf_counter()
        result = fn()
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start
        return result

    def run(self) -> dict:
        from .data import load_dataset, parse_preprocess, random_dataset, split_indices
        from .sparsity import parse_pattern, plan_layers

        opts, started = self.opts, time.perf_counter()
        _check_options(opts)
        module = self._timed("import_s", lambda: load_onnx(self.path))
        dense = self._timed("import_s", lambda: load_onnx(self.path)).eval()
        for p in dense.parameters():
            p.requires_grad_(False)
        if len(module.input_names) != 1:
            raise ConfigError(f"the model has {len(module.input_names)} inputs; pruning supports single-input models for now")
        input_name = module.input_names[0]
        shape = resolve_input_shapes(module, opts.input_shapes, batch=1)[input_name]
        dtype = input_dtypes(module)[input_name]
        metadata = {p.key: p.value for p in module.onnx_model.metadata_props}

        # ---- data ------------------------------------------------------------------------------
        data_spec, preprocess = opts.data, opts.preprocess
        if data_spec is None and metadata.get(METADATA_PREFIX + "default_data"):
            data_spec = metadata[METADATA_PREFIX + "default_data"]
            preprocess = preprocess or metadata.get(METADATA_PREFIX + "default_preprocess") or None
            self.notes.append(f"Data '{data_spec}' comes from the model's metadata (no --data given).")
        num_classes = _num_classes(module)
        method = get_method(opts.method, **self._method_options(data_spec is not None))
        if data_spec is not None:
            dataset = self._timed("data_s", lambda: load_dataset(
                data_spec, input_shape=shape, input_dtype=dtype,
                preprocess=parse_preprocess(preprocess) if preprocess else None,
                num_classes=num_classes, limit=opts.limit, seed=opts.seed))
            labelled = dataset.labelled
            if opts.val_data is not None:
                train_data = dataset
                val_data = self._timed("data_s", lambda: load_dataset(
                    opts.val_data, input_shape=shape, input_dtype=dtype,
                    preprocess=parse_preprocess(preprocess) if preprocess else None,
                    num_classes=num_classes, seed=opts.seed))
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
            val_data = random_dataset(shape, RANDOM_EVAL_SAMPLES, dtype, opts.seed)
            data_info = {"description": val_data.description, "train": 0, "val": len(val_data), "labelled": False}
            self.notes.append(f"No data: pruning is one-shot, and metrics are fidelity to the dense model on {RANDOM_EVAL_SAMPLES} random inputs of shape {'x'.join(map(str, shape))}.")

        classifier = num_classes is not None
        if labelled:
            if not classifier:
                raise DataError("the data has labels but the model's first output is not [batch, classes] logits")
            objective = ClassificationObjective()
        else:
            objective = DistillationObjective(classifier=classifier)
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
        plan = plan_layers(module.weights, pattern=pattern, sparsity=target, exclude=opts.exclude,
                           overrides=opts.overrides, keep_ends_dense=keep_ends, scope=opts.scope)
        self.notes.extend(plan.notes)

        out_dir = Path(opts.output) if opts.output else Path("compressed") / f"{self.path.stem}-{opts.method}"
        out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = Checkpoint(out_dir / "checkpoint.pt", opts.fingerprint(_sha256(self.path)))
        if checkpoint.exists() and not opts.resume:
            self.log(f"note: {checkpoint.path} exists from an interrupted run; starting over (pass --resume to continue it)")
        session = Session(module, objective, train_data, val_data, teacher=dense,
                          config=TrainConfig(batch_size=opts.batch_size, seed=opts.seed), checkpoint=checkpoint,
                          resume=opts.resume, progress=opts.progress, log=self.log)

        dense_metrics = self._timed("evaluate_s", lambda: session.evaluate(dense))
        ctx = PruneContext(module=module, plan=plan, pattern=pattern, session=session, log=self.log, input_shape=shape)
        masks = self._timed("method_s", lambda: method.run(ctx))
        masks.apply(module)
        if method.finds_own_sparsity:  # the searched per-layer sparsity is what the report calls the target
            plan = replace(plan, targets={n: 1.0 - float(masks.masks[n].float().mean()) for n in plan.targets})
        for name, mask in masks.masks.items():  # pruned entries must be exact zeros before export
            if torch.count_nonzero(module.parameter(name).detach()[~mask]):
                raise RuntimeError(f"pruned entries of {name} are not zero after {opts.method}")
        compressed_metrics = self._timed("evaluate_s", lambda: session.evaluate(module))

        # ---- export, measure, report -------------------------------------------------------------
        from exporters import export_onnx

        sample = torch.stack([val_data[i][0] for i in range(min(len(val_data), 8))])
        export = self._timed("export_s", lambda: export_onnx(
            module, out_dir / "model.onnx", sparse_initializers=opts.sparse_initializers, parity_inputs=[sample],
            metadata={"method": opts.method, "pattern": opts.pattern,
                      "target_sparsity": "searched" if method.finds_own_sparsity else str(target)}))
        latency = self._timed("latency_s", lambda: self._latency(export.path, input_name, sample[:1]))
        layers, params = _model_statistics(onnx.load(str(export.path)), module, plan)  # read back from the file
        _, dense_params = _model_statistics(dense.onnx_model, module, plan)
        params["dense_nonzero"] = dense_params["nonzero"]
        params["dense_prunable_nonzero"] = dense_params["prunable_nonzero"]
        self.notes.extend(ctx.notes)
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
            "training": {**method.describe(), "batch_size": opts.batch_size, "seed": opts.seed},
            "plan": plan.to_dict(),
            "notes": self.notes,
            "trace": session.trace,
            "model": str(self.path),
        }
        report.update(ctx.record)
        self.timings["total_s"] = time.perf_counter() - started
        report["timings"] = self.timings
        report["outputs"] = {"onnx": str(export.path), "report_json": str(out_dir / "report.json"), "report_md": str(out_dir / "report.md")}
        from .reporting import write_markdown_report

        md_path = write_markdown_report(report, out_dir)
        report["outputs"]["report_md"] = str(md_path)
        report["outputs"]["plots"] = sorted(str(p) for p in out_dir.glob("*.png"))
        _write_json_atomically(out_dir / "report.json", report)
        checkpoint.remove()  # finished: nothing to resume
        return report

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

    def _latency(self, compressed_path: Path, input_name: str, sample: torch.Tensor) -> dict:
        from deploy.latency import device_description, measure_onnxruntime_latency, speedup

        feeds = {input_name: sample.numpy()}
        stats = measure_onnxruntime_latency({"dense": self.path, "compressed": compressed_path}, feeds,
                                            runs=self.opts.latency_runs)
        return {
            "dense": stats["dense"].to_dict(),
            "compressed": stats["compressed"].to_dict(),
            "speedup": speedup(stats["dense"], stats["compressed"]),
            "device": device_description(stats["dense"].threads),
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
    if opts.scope not in ("layer", "global"):
        raise ConfigError(f"--scope must be layer or global, got {opts.scope!r}")


def _num_classes(module) -> int | None:
    """Classes of a classifier: the first output declared as [batch, K] with K >= 2."""
    output = module.onnx_model.graph.output[0]
    dims = output.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value >= 2:
        return int(dims[1].dim_value)
    return None


def _model_statistics(model: onnx.ModelProto, module, plan) -> tuple[list[dict], dict]:
    """Per-layer and total counts of a model's stored tensors. The pipeline passes the exported
    file as read back from disk, so the report and the file cannot disagree."""
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for sparse in model.graph.sparse_initializer:
        arrays[sparse.values.name] = numpy_helper.to_array(sparse)
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
