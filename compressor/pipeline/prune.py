"""Stage `prune`: the method runs in a resumable session and returns its typed result."""

from __future__ import annotations

from dataclasses import replace

from ..files import sha256_file
from ..methods import PruneContext
from ..runtimes import get_runtime
from ..runtimes.latency import pinned_threads
from ..training import Checkpoint, Session, TrainConfig
from .state import Pruned, RunState
from .stages import register_stage


@register_stage("prune")
def prune(state: RunState) -> Pruned:
    opts, loaded, prepared, planned = state.options, state.loaded, state.prepared, state.planned
    state.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(state.checkpoint_path, opts.fingerprint(sha256_file(state.path)))
    if checkpoint.exists() and not opts.output.resume:
        state.log(f"note: {checkpoint.path} exists from an interrupted run; starting over (pass --resume to continue it)")
    own_batch = loaded.batch_size != opts.training.batch_size
    reinsert_bn, recalibrate_bn = opts.training.batchnorm_for(opts.method)
    session = Session(loaded.module, prepared.objective, prepared.train_data, prepared.val_data, teacher=loaded.dense,
                      config=TrainConfig(batch_size=loaded.batch_size, seed=opts.training.seed,
                                         eval_batch_size=loaded.batch_size if own_batch else None,
                                         folded_batchnorm=reinsert_bn, recalibrate_batchnorm=recalibrate_bn,
                                         augment=prepared.augmentation),
                      checkpoint=checkpoint, resume=opts.output.resume, progress=opts.progress, log=state.log)
    dense_metrics = state.timed("evaluate_s", lambda: session.evaluate(loaded.dense))
    measure = opts.measure
    ctx = PruneContext(module=loaded.module, plan=planned.plan, pattern=planned.pattern, session=session, log=state.log,
                       input_shape=loaded.inputs[0][1], source=state.path,
                       runtime=get_runtime(measure.runtime, threads=pinned_threads(), options=measure.runtime_options))

    def run_method():
        result = loaded.method.run(ctx)
        session.close()  # BatchNorm put back for the run (--reinsert-bn) is folded in: the plain graph again
        return result

    result = state.timed("method_s", run_method)
    result.masks.apply(loaded.module)
    plan = planned.plan
    if loaded.method.finds_own_sparsity:  # the searched per-layer sparsity is what the report calls the target
        plan = replace(plan, targets={n: 1.0 - float(result.masks.masks[n].float().mean()) for n in plan.targets})
    state.notes.extend(result.notes)
    return Pruned(result, plan, dense_metrics, session)
