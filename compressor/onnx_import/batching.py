"""Which batch sizes an imported model really runs at, and running other sizes in its own.

Exporters often fix the batch: a declared input of 1x3x224x224, or a batch baked into Reshape,
Expand or ConstantOfShape targets (a dynamo export at batch 2 reshapes to [2, 128]). Training
wants batches of 64. `probe_batch` finds the model's native batch and checks, at two batch
sizes, whether the imported module computes every sample as it would alone at that batch; if
so the module is used at any batch as it is. If not, `run_in_batches` feeds it the native batch
at a time (padding the last chunk) and concatenates the outputs: autograd through the
concatenation gives the gradient of the whole batch, i.e. gradient accumulation done for us.
The exported file keeps the declared shapes either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, ModelLoadError, first_line

PROBE_BATCHES = (1, 2, 4, 8)  # native batch candidates when the declared batch is symbolic
SAME_SAMPLE_RTOL = 1e-4  # a sample's outputs, batched vs alone, relative to the output's scale


@dataclass(frozen=True)
class BatchInfo:
    native: int  # the batch the model is declared for, or the smallest it runs at
    declared_fixed: bool  # the file declares a fixed batch dimension
    generalises: bool  # any batch size computes each sample as the native batch does
    detail: str  # one sentence for the report
    splittable: bool = True  # every output has the batch axis first, so other batches can be cut into chunks

    @property
    def runs_own_batch_only(self) -> bool:
        """onnxruntime must be fed the native batch: it is declared in the file, or baked into the graph."""
        return self.declared_fixed or self.chunk is not None

    @property
    def chunk(self) -> int | None:
        """The batch every forward must be cut into, or None when any batch is fine."""
        return None if self.generalises else self.native

    def to_dict(self) -> dict:
        return {"native": self.native, "declared_fixed": self.declared_fixed, "generalises": self.generalises,
                "splittable": self.splittable, "detail": self.detail}


def batch_size_of(inputs: tuple[torch.Tensor, ...]) -> int:
    return int(inputs[0].shape[0]) if inputs and inputs[0].dim() else 1


def run_in_batches(run, inputs: tuple[torch.Tensor, ...], chunk: int, output_names: list[str]):
    """`run(*inputs)` on `chunk` samples at a time; outputs concatenated along the batch axis.

    Inputs whose first dimension is not the batch (shape tensors, say) are passed whole.
    """
    n = batch_size_of(inputs)
    pieces = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        part = []
        for t in inputs:
            if t.dim() and t.shape[0] == n:
                piece = t[start:stop]
                if stop - start < chunk:  # pad by repeating the last sample; its outputs are dropped
                    piece = torch.cat([piece, piece[-1:].expand(chunk - (stop - start), *piece.shape[1:])])
                part.append(piece)
            else:
                part.append(t)
        out = run(*part)
        out = out if isinstance(out, tuple) else (out,)
        for name, value in zip(output_names, out):
            if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != chunk:
                raise ConfigError(
                    f"the model runs only at batch {chunk} and its output {name!r} has no batch axis "
                    f"(shape {list(value.shape) if isinstance(value, torch.Tensor) else '?'}): use --batch-size {chunk}"
                )
        pieces.append(tuple(v[: stop - start] for v in out))
    merged = tuple(torch.cat([p[i] for p in pieces]) for i in range(len(pieces[0])))
    return merged[0] if len(merged) == 1 else merged


def probe_batch(module, make_inputs) -> BatchInfo:
    """Find the native batch and whether the module generalises beyond it.

    `make_inputs(batch)` returns seeded example inputs of that batch size. The check runs the
    module at the native batch B and at 2B + 1 and compares every sample's outputs.
    """
    declared = [module.input_shapes.get(name, []) for name in module.input_names]
    fixed = [d[0] for d in declared if d and isinstance(d[0], int) and d[0] > 0]
    errors = []
    with torch.no_grad():
        if fixed:
            native, declared_fixed = fixed[0], True
            candidates = (native,)
        else:
            native, declared_fixed = None, False
            candidates = PROBE_BATCHES
        for b in candidates:
            try:
                _as_tuple(module.run_unbatched(*make_inputs(b)))
                native = b
                break
            except Exception as exc:  # the model refuses this batch: try the next
                errors.append(f"batch {b}: {first_line(exc)}")
        else:
            raise ModelLoadError(f"the model does not run on example inputs ({'; '.join(errors)})")
        big = 2 * native + 1
        inputs = make_inputs(big)
        try:
            batched = _as_tuple(module.run_unbatched(*inputs))
        except Exception as exc:
            return BatchInfo(native, declared_fixed, False,
                             f"runs only at batch {native} ({first_line(exc)[:120]}); training feeds it {native} at a time")
        try:
            alone = _as_tuple(run_in_batches(module.run_unbatched, inputs, native, module.output_names))
        except ConfigError:  # an output without a batch axis (e.g. boxes flattened before NMS)
            return BatchInfo(native, declared_fixed, False,
                             f"some outputs have no batch axis; the model runs {native} sample(s) at a time", splittable=False)
        same = all(
            a.shape == b.shape and (not a.is_floating_point() or _close(a, b)) and (a.is_floating_point() or torch.equal(a, b))
            for a, b in zip(batched, alone)
        )
    if same:
        what = f"declared batch {native}" if declared_fixed else f"native batch {native}"
        return BatchInfo(native, declared_fixed, True, f"{what}; checked to compute each sample alike at batch {big}, so it trains at any batch")
    return BatchInfo(native, declared_fixed, False,
                     f"batch {big} mixes samples (the batch is baked into the graph); training feeds it {native} at a time")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = max(float(b.abs().max()) if b.numel() else 0.0, 1e-12)
    return float((a - b).abs().max()) / scale <= SAME_SAMPLE_RTOL if b.numel() else True


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)
