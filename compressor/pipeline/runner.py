"""The run: the stages in order, in a staging folder, moved into place only when all succeeded.

Everything is written into `<output>/.partial` first; a failed run never leaves a model without
its report, nor replaces older files, and keeps only its resume checkpoint.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .options import CompressOptions
from .stages import DEFAULT_STAGES, insert_stage, resolve_stages
from .state import STAGING_DIR, RunState


class Pipeline:
    def __init__(self, model_path: Path, options: CompressOptions, log=print, stages: tuple[str, ...] = DEFAULT_STAGES):
        self.path = Path(model_path)
        self.options = options
        self.log = log
        self.stages = tuple(stages)
        if options.output.engine and "engine" not in self.stages:  # --engine trt: the exporters' engine stage
            self.stages = insert_stage(self.stages, "engine", after="export")

    def run(self) -> dict:
        """Run every stage; returns the report (the output of the last stage)."""
        opts = self.options
        stages = resolve_stages(self.stages)
        out_dir = Path(opts.output.output) if opts.output.output else Path("compressed") / f"{self.path.stem}-{opts.method}"
        created = not out_dir.exists()
        state = RunState(self.path, opts, self.log, out_dir, out_dir / STAGING_DIR)
        for _, stage in stages:  # what a stage needs from the machine is checked before any work
            if hasattr(stage, "preflight"):
                stage.preflight(state)
        try:
            for name, stage in stages:
                state.outputs[name] = stage(state)
            self._commit(state)
        except BaseException:
            shutil.rmtree(state.staging, ignore_errors=True)
            if state.checkpoint_path.exists():
                self.log(f"note: the run failed; {state.checkpoint_path} is kept for --resume")
            elif created and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
            raise
        shutil.rmtree(state.staging, ignore_errors=True)
        return state.outputs[self.stages[-1]]

    @staticmethod
    def _commit(state: RunState) -> None:
        """Every check passed: move the outputs into place (a data file before the model that names it)."""
        staged = sorted(p for p in state.staging.iterdir() if p.is_file())
        for path in sorted(staged, key=lambda p: (p.name == "model.onnx", p.name)):
            os.replace(path, state.out_dir / path.name)
        state.checkpoint_path.unlink(missing_ok=True)  # finished: nothing to resume


def compress(model_path, log=print, stages: tuple[str, ...] = DEFAULT_STAGES, **options) -> dict:
    """Prune `model_path` and write model.onnx, report.json and report.md; returns the report.

    Keywords are the command line's options by their Python names (sparsity=0.9, lr=1e-3,
    data="digits"); those that are not common options go to the method (rho=0.1 for slr).
    """
    return Pipeline(Path(model_path), CompressOptions.from_keywords(**options), log, stages).run()
