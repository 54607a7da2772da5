"""The shared masked-training machinery: masks hold, phases resume exactly, ramps are cubic."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch.utils.data import TensorDataset

from compressor.methods.magnitude import cubic_ramp
from compressor.objectives import ClassificationObjective, DistillationObjective
from compressor.onnx_import import load_onnx
from compressor.training import Checkpoint, MaskSet, OptimizerConfig, Session, TrainConfig, TrainingHooks
from compressor.errors import ConfigError
from onnx_builders import conv_gemm_model


def module_and_data(tmp_path, n=96):
    path = tmp_path / "m.onnx"
    onnx.save_model(conv_gemm_model(), str(path))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return load_onnx(path), TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])


def half_masks(module) -> MaskSet:
    masks = {}
    for name in module.weights:
        w = module.parameter(name)
        masks[name] = w.abs() >= w.abs().flatten().median()
    return MaskSet(masks)


def test_pruned_weights_stay_exactly_zero_through_training(tmp_path):
    module, train, val = module_and_data(tmp_path)
    masks = half_masks(module)
    session = Session(module, ClassificationObjective(), train, val, config=TrainConfig(batch_size=16))
    session.train("finetune", 3, OptimizerConfig(name="sgd", lr=0.1), masks=masks)
    for name, mask in masks.masks.items():
        weight = module.parameter(name)
        assert torch.all(weight[~mask] == 0)  # never revived, despite momentum
        assert torch.count_nonzero(weight[mask]) == mask.sum()
    assert len(session.trace) == 3 and "val_accuracy" in session.trace[0]


def test_training_is_deterministic(tmp_path):
    results = []
    for _ in range(2):
        module, train, val = module_and_data(tmp_path)
        Session(module, ClassificationObjective(), train, val, config=TrainConfig(batch_size=16, seed=3)).train(
            "finetune", 2, OptimizerConfig(), masks=half_masks(module))
        results.append({k: v.clone() for k, v in module.onnx_parameters().items()})
    for name in results[0]:
        assert torch.equal(results[0][name], results[1][name])


class CountingHooks(TrainingHooks):
    def __init__(self):
        self.steps = 0

    def after_step(self, step):
        self.steps = step

    def end_epoch(self, epoch):
        return {"steps": self.steps}

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


class Interrupt(Exception):
    pass


def run_method(module, train, val, checkpoint, resume=False, stop_after_epoch=None):
    """A two-step method: prune once, then train 4 epochs; optionally 'crash' mid-way."""
    session = Session(module, ClassificationObjective(), train, val, config=TrainConfig(batch_size=16, seed=1),
                      checkpoint=checkpoint, resume=resume)
    state = session.once("prune", lambda: half_masks(module).state_dict())
    masks = MaskSet(state)
    hooks = CountingHooks()
    original = hooks.end_epoch

    def end_epoch(epoch):
        if stop_after_epoch is not None and epoch == stop_after_epoch + 1:
            raise Interrupt  # dies during the epoch after the checkpointed one
        return original(epoch)

    hooks.end_epoch = end_epoch
    session.train("finetune", 4, OptimizerConfig(name="sgd", lr=0.05), masks=masks, hooks=hooks)
    return session, hooks


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    module, train, val = module_and_data(tmp_path)
    reference, _ = run_method(module, train, val, None)
    want = {k: v.clone() for k, v in module.onnx_parameters().items()}

    module2, _, _ = module_and_data(tmp_path)
    checkpoint = Checkpoint(tmp_path / "ckpt.pt", {"run": 1})
    with pytest.raises(Interrupt):
        run_method(module2, train, val, checkpoint, stop_after_epoch=2)
    assert checkpoint.exists()
    module3, _, _ = module_and_data(tmp_path)  # a new process: fresh weights, state from the checkpoint only
    session, hooks = run_method(module3, train, val, checkpoint, resume=True)
    for name, value in want.items():
        assert torch.equal(module3.onnx_parameters()[name], value), name
    assert hooks.steps == 16  # 4 epochs x 4 steps: the hook state came back too
    assert [r["train_loss"] for r in session.trace] == [r["train_loss"] for r in reference.trace]
    assert [r["lr"] for r in session.trace] == [r["lr"] for r in reference.trace]  # the resumed schedule too


def test_trace_records_the_lr_each_epoch_trained_at(tmp_path):
    module, train, val = module_and_data(tmp_path)  # 64 training samples: 4 steps of 16 per epoch
    session = Session(module, ClassificationObjective(), train, val, config=TrainConfig(batch_size=16))
    session.train("single", 1, OptimizerConfig(lr=1e-3, schedule="cosine"))  # a one-epoch cosine phase ends at lr 0
    session.train("cosine", 2, OptimizerConfig(lr=1e-3, schedule="cosine"))
    session.train("step", 4, OptimizerConfig(lr=1e-3, schedule="step"))  # /10 from step 8 of 16, /100 from step 12
    lrs = [(r["phase"], r["epoch"], r["lr"]) for r in session.trace]
    assert lrs == [("single", 1, pytest.approx(1e-3)),
                   ("cosine", 1, pytest.approx(1e-3)), ("cosine", 2, pytest.approx(5e-4)),  # cos(pi/2) halfway
                   ("step", 1, pytest.approx(1e-3)), ("step", 2, pytest.approx(1e-3)),
                   ("step", 3, pytest.approx(1e-4)), ("step", 4, pytest.approx(1e-5))]


def test_checkpoint_from_other_options_is_refused(tmp_path):
    module, train, val = module_and_data(tmp_path)
    run_method(module, train, val, Checkpoint(tmp_path / "ckpt.pt", {"sparsity": 0.5}))
    with pytest.raises(ConfigError, match="different options \\(sparsity\\)"):
        Session(module, ClassificationObjective(), train, val, checkpoint=Checkpoint(tmp_path / "ckpt.pt", {"sparsity": 0.9}), resume=True)


def test_distillation_metrics_are_perfect_for_the_teacher_itself(tmp_path):
    module, train, val = module_and_data(tmp_path)
    objective = DistillationObjective(classifier=True)
    unlabelled = TensorDataset(val.tensors[0])
    session = Session(module, objective, unlabelled, unlabelled, teacher=module)
    metrics = session.evaluate(module)
    assert metrics["top1_agreement"] == 1.0 and metrics["relative_l2"] == 0.0 and metrics["cosine"] == pytest.approx(1.0)


def test_cubic_ramp():
    assert cubic_ramp(0, 100) == 0.0 and cubic_ramp(100, 100) == 1.0 and cubic_ramp(500, 100) == 1.0
    assert cubic_ramp(50, 100) == pytest.approx(1 - 0.5**3)
    values = [cubic_ramp(s, 100) for s in range(101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
