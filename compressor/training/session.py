"""A resumable sequence of steps: one-off steps (prune once) and training phases.

A method describes its run as calls to `once(name, fn)` and `train(name, epochs, ...)`. The
session numbers those calls; after every one-off step and every epoch it writes a checkpoint
with the module's weights, the step results, the optimizer and hook state and the position.
On `resume`, completed steps return their stored results without running, and the interrupted
phase continues from its next epoch with the same data order, so the final weights equal
those of an uninterrupted run.
"""

from __future__ import annotations

import itertools
import sys
from typing import Callable

import torch
from tqdm import tqdm

from ..objectives.base import Objective, evaluate
from .checkpoint import Checkpoint
from .folded_batchnorm import FoldedBatchNorm, find_sites
from .loop import TrainConfig, TrainingHooks, loader_for_epoch, train_one_epoch
from .masks import MaskSet
from .optim import OptimizerConfig, build_optimizer

FOLDED_BN_CALIBRATION_BATCHES = 4  # batches measuring a folded conv's output statistics when BatchNorm is put back
# batches re-estimating BatchNorm statistics precisely: before the run's fold (--reinsert-bn), and after
# hard pruning (--recalibrate-bn); at batch 16, 512 samples: forward passes only, a fraction of an epoch
RECALIBRATION_BATCHES = 32
RECALIBRATION_STEP = 1_000_000  # the loader seed's phase index for those batches: never a training phase's


class Session:
    def __init__(
        self, module, objective: Objective, train_data, val_data, *, teacher=None,
        config: TrainConfig = TrainConfig(), checkpoint: Checkpoint | None = None, resume: bool = False,
        progress: bool = False, log: Callable[[str], None] | None = None,
    ):
        self.module = module
        self.objective = objective
        self.train_data = train_data
        self.val_data = val_data
        self.teacher = teacher
        self.config = config
        self.checkpoint = checkpoint
        self.progress = progress
        self.log = log or (lambda message: None)
        self.results: dict[str, object] = {}  # one-off step results by name
        self.trace: list[dict] = []  # one record per epoch, across phases
        self._index = 0  # number of steps started so far
        self._position = (0, 0)  # (step index, epochs done in it) to resume from
        self._saved: dict = {}
        self._saved_position = (0, 0)
        # --reinsert-bn: BatchNorm put back into the folded convs for the whole run (every phase and
        # one-off step), folded once by `close`; None before the first step and without the option
        self.norms: FoldedBatchNorm | None = None
        self._norms_decided = False
        if resume and checkpoint is not None and checkpoint.exists():
            self._saved = checkpoint.load()
            module.load_state_dict(self._saved["module"])
            self.results = self._saved["results"]
            self.trace = self._saved["trace"]
            self._position = tuple(self._saved["position"])
            self._saved_position = self._position
            if self._saved.get("folded_batchnorm") is not None:  # saved mid-run: the weights are the unfolded ones
                self._start_norms()
            self.log(f"resuming from {checkpoint.path} (step {self._position[0] + 1}, epoch {self._position[1]})")

    # ---- steps -------------------------------------------------------------------------------
    def once(self, name: str, fn: Callable[[], object]):
        """Run `fn` once; on resume past this step, return its stored result instead.

        Only the module's weights and the returned value survive an interruption: `fn` must
        not have other side effects that later steps rely on.
        """
        index = self._next()
        if index < self._position[0]:
            return self.results[name]
        self._start_norms()
        value = fn()
        self.results[name] = value
        self._save(position=(index + 1, 0))
        return value

    def train(
        self, name: str, epochs: int, optimizer: OptimizerConfig, *, masks: MaskSet | None = None,
        hooks: TrainingHooks | None = None, evaluate_epochs: bool = True,
    ) -> list[dict]:
        """`epochs` epochs of masked training with a fresh optimizer; returns this phase's trace."""
        index = self._next()
        hooks = hooks or TrainingHooks()
        if index < self._position[0] or epochs <= 0:
            if f"{name}:hooks" in self.results:  # a finished phase's hook state (e.g. OLMP's masks) outlives it
                hooks.load_state_dict(self.results[f"{name}:hooks"])
            return [r for r in self.trace if r["phase"] == name]
        loader_len = len(loader_for_epoch(self.train_data, self.config.batch_size, self.config.seed, index, 0))
        norms = self._start_norms()
        params = [*self.module.parameters(), *(norms.parameters() if norms is not None else [])]
        opt, sched = build_optimizer(params, optimizer, total_steps=epochs * loader_len)
        start = 0
        resuming = index == self._position[0] and self._position[1] > 0
        if resuming:
            start = self._position[1]
            opt.load_state_dict(self._saved["optimizer"])
            sched.load_state_dict(self._saved["scheduler"])
            hooks.load_state_dict(self._saved["hooks"])
            if masks is not None and self._saved.get("masks") is not None:
                masks.masks = MaskSet.from_state_dict(self._saved["masks"]).masks
        if masks:
            masks.apply(self.module)
        step = start * loader_len
        for epoch in range(start, epochs):
            loader = loader_for_epoch(self.train_data, self.config.batch_size, self.config.seed, index, epoch)
            # The lr the epoch trained at, read before its steps advance the schedule (after them a
            # cosine phase has reached 0). Schedules here are per step, so this is the lr of the
            # epoch's first step: the epoch's largest, as every schedule only decreases.
            lr = opt.param_groups[0]["lr"]
            bar = tqdm(total=len(loader), desc=f"{name} {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
                       disable=not (self.progress and sys.stderr.isatty()), dynamic_ncols=True)  # no bars in logs
            # the augmentation's draws depend only on (seed, phase, epoch), as the shuffle does
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + index * 1_009 + epoch + 500_009)
            loss, step = train_one_epoch(
                self.module, self.objective, loader, opt, sched, teacher=self.teacher, masks=masks, hooks=hooks,
                step=step, progress=bar, augment=self.config.augment, generator=generator,
            )
            bar.close()
            record = {"phase": name, "epoch": epoch + 1, "train_loss": loss, "lr": lr}
            record.update(hooks.end_epoch(epoch + 1))
            if evaluate_epochs and self.val_data is not None and len(self.val_data):
                # with norms put back, inference uses their running statistics: the network a fold gives
                record.update({f"val_{k}": v for k, v in self.evaluate(self.module).items()})
            self.trace.append(record)
            self.log(_describe(record, epochs, self.objective))
            self._save(position=(index, epoch + 1), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                       hooks=hooks.state_dict(), masks=masks.state_dict() if masks is not None else None)
        self.results[f"{name}:hooks"] = hooks.state_dict()
        self._save(position=(index + 1, 0))
        return [r for r in self.trace if r["phase"] == name]

    def prune_once(self, name: str, prune: Callable[[], dict]) -> dict:
        """A one-off pruning step (`once(name)`): `prune()` changes the weights and returns its
        masks; the result adds the metrics right after it ("metrics", None without validation
        data) and, with `recalibrate_batchnorm`, the metrics after BatchNorm recalibration
        ("recalibrated"), the weights left recalibrated. Both are kept, so the cost of pruning
        itself and what the cheap recalibration gives back are reported apart."""

        def step():
            recalibrate = self._recalibrator()  # prepared on the weights before pruning
            result = {**prune()}
            has_val = self.val_data is not None and len(self.val_data) > 0
            result["metrics"] = self.evaluate(self.module) if has_val else None
            if recalibrate is not None:
                sites = recalibrate()
                self.log(f"BatchNorm recalibrated after pruning: {sites} conv(s), {RECALIBRATION_BATCHES} batches")
                result["recalibrated"] = self.evaluate(self.module) if has_val else None
            return result

        return self.once(name, step)

    def evaluate(self, model) -> dict[str, float]:
        loader = torch.utils.data.DataLoader(self.val_data, batch_size=self.config.eval_batch_size or max(self.config.batch_size, 256))
        return evaluate(model, loader, self.objective, self.teacher)

    def close(self) -> None:
        """The end of the run: BatchNorm put back (--reinsert-bn) gets precise statistics and is
        folded into the convs, leaving the plain graph, which is checkpointed as such."""
        if self.norms is None or not self.norms.inserted:
            return
        batches = loader_for_epoch(self.train_data, self.config.batch_size, self.config.seed, RECALIBRATION_STEP + 1, 0)
        self.norms.reestimate(itertools.islice(batches, RECALIBRATION_BATCHES))
        self.norms.fold()
        self.norms = None
        self._save(position=self._saved_position)

    # ---- internals -----------------------------------------------------------------------------
    def _start_norms(self) -> FoldedBatchNorm | None:
        """With --reinsert-bn, BatchNorm put back into the folded convs once for the run, so that
        every phase trains the normalised network (a penalty's W and Z, and masks, then stay in
        one parametrisation: nothing is folded between phases); restored from the checkpoint on
        resume. Folding after every epoch, as this once did, froze the running statistics' noise
        into the weights each time: a random walk that training at a decaying lr no longer
        corrected (a detector lost 4 points of mAP over the last epochs of a cosine schedule)."""
        if self._norms_decided:
            return self.norms
        self._norms_decided = True
        if not self.config.folded_batchnorm or not hasattr(self.module, "step_function") or not self.train_data:
            return None
        sites = find_sites(self.module)
        if not sites:  # e.g. every conv is followed by the graph's own BatchNormalization, or has no bias
            self.log("--reinsert-bn: no folded conv to put a BatchNorm back into; training the graph as it is")
            return None
        self.log(f"training with BatchNorm put back into {len(sites)} folded conv(s), folded again when the run ends")
        self.norms = FoldedBatchNorm(self.module, sites)
        calibration = loader_for_epoch(self.train_data, self.config.batch_size, self.config.seed, RECALIBRATION_STEP + 2, 0)
        self.norms.insert(itertools.islice(calibration, FOLDED_BN_CALIBRATION_BATCHES))
        if self._saved.get("folded_batchnorm") is not None:
            self.norms.load_state_dict(self._saved["folded_batchnorm"])
        return self.norms

    def _recalibrator(self) -> Callable[[], int] | None:
        """For `prune_once`: a function recalibrating BatchNorm after pruning (returning how many
        convs it recalibrated), prepared before it; None when not asked for or without folded convs."""
        if not self.config.recalibrate_batchnorm or not hasattr(self.module, "step_function") or not self.train_data:
            return None
        norms = self.norms
        if norms is not None:  # BatchNorm put back: its running statistics re-estimated, as in any BN network

            def reestimate() -> int:
                norms.reestimate(self._recalibration_batches())
                return len(norms.sites)

            return reestimate
        sites = find_sites(self.module)
        if not sites:
            self.log("--recalibrate-bn: no folded conv whose statistics could be recalibrated; skipped")
            return None
        folded = FoldedBatchNorm(self.module, sites)
        targets = folded.measure(self._recalibration_batches())  # each channel's statistics before pruning

        def recalibrate() -> int:  # given back to each folded channel, then folded again
            folded.recalibrate(self._recalibration_batches(), targets)
            return len(sites)

        return recalibrate

    def _recalibration_batches(self):
        """Fixed training batches for recalibration: the same for measuring and recalibrating."""
        loader = loader_for_epoch(self.train_data, self.config.batch_size, self.config.seed, RECALIBRATION_STEP, 0)
        return itertools.islice(loader, RECALIBRATION_BATCHES)

    def _next(self) -> int:
        index = self._index
        self._index += 1
        return index

    def _save(self, position, **extra) -> None:
        self._saved_position = position
        if self.checkpoint is None:
            return
        self.checkpoint.save({
            "position": position,
            "module": self.module.state_dict(),
            "folded_batchnorm": self.norms.state_dict() if self.norms is not None else None,
            "results": self.results,
            "trace": self.trace,
            **extra,
        })


def _describe(record: dict, epochs: int, objective: Objective) -> str:
    """One progress line; fraction metrics (by the objective's metric specs) as percentages."""
    parts = [f"{record['phase']} epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}"]
    for key, value in record.items():
        if key.startswith("val_") and isinstance(value, float):
            label = "val " + key[4:].replace("_", " ")
            fraction = objective.spec(key[4:]).unit == "fraction"
            parts.append(f"{label} {value:.2%}" if fraction else f"{label} {value:.4g}")
    return ", ".join(parts)
