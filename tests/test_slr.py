"""SLR and ADMM pinned to the spec's formulas (../shared/specs/slr.md) on tiny problems with known
numbers, plus the run structure through the pipeline."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compressor import compress
from compressor.methods.admm import admm_block
from compressor.methods.slr import alpha, scaled_step, slr_block
from compressor.methods.lagrangian import frobenius_sum, penalty
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=5, log=lambda message: None)


def keep_two_largest(tensors):
    """Pi_S for 'keep 2 of 4 entries' (a tiny irregular pattern)."""
    out = {}
    for name, t in tensors.items():
        mask = torch.zeros_like(t, dtype=torch.bool)
        mask[torch.sort(-t.abs(), stable=True).indices[:2]] = True
        out[name] = t * mask
    return out


def test_alpha_matches_the_spec_table():
    # slr.md 3.2: for M = 300, r = 0.1
    assert alpha(1, 300, 0.1) == pytest.approx(0.99667, abs=5e-6)
    assert alpha(2, 300, 0.1) == pytest.approx(0.99682, abs=5e-6)
    assert alpha(10, 300, 0.1) == pytest.approx(0.99792, abs=5e-6)
    assert alpha(100, 300, 0.1) == pytest.approx(0.99939, abs=5e-6)
    k = 7
    assert alpha(k, 200, 0.3) == pytest.approx(1 - 1 / (200 * k ** (1 - k ** -0.3)))


def test_step_size_rule_and_zero_norm_guard():
    assert scaled_step(0.01, 1, 300, 0.1, 2.0, 4.0) == pytest.approx(alpha(1, 300, 0.1) * 0.01 * 0.5)
    assert scaled_step(0.01, 3, 300, 0.1, 0.0, 4.0) == 0.01  # skipped when a norm is 0
    assert scaled_step(0.01, 3, 300, 0.1, 2.0, 0.0) == 0.01


def initial_state(w0, f0):
    z = keep_two_largest({"w": w0})
    return {"Z": z, "U": {"w": torch.zeros(4)}, "Lambda": {"w": torch.zeros(4)}, "W_bar": {"w": w0.clone()},
            "f_bar": f0, "s": 0.01, "k": 1}


def test_slr_block_follows_the_formulas_when_both_conditions_hold():
    rho, M, r = 0.1, 300.0, 0.1
    w0 = torch.tensor([3.0, -1.0, 0.5, 2.0])
    state = initial_state(w0, f0=1.0)  # Z = [3, 0, 0, 2]
    w1 = torch.tensor([2.9, -0.6, 0.3, 2.1])  # after a W-step: pulled toward Z, f went down
    out = slr_block(state, {"w": w1}, 0.8, keep_two_largest, rho, M, r)

    z0 = torch.tensor([3.0, 0.0, 0.0, 2.0])
    # C1: f(W) + (rho/2)||W - Z + U||^2 < f(W_bar) + (rho/2)||W_bar - Z + U||^2, U = 0
    new = 0.8 + rho / 2 * float((w1 - z0).square().sum())
    old = 1.0 + rho / 2 * float((w0 - z0).square().sum())
    assert out["c1"] and new < old
    # half step: s1 = alpha_1 * s0 * N(W_bar, Z)/N(W, Z); Lambda = s1 (W - Z); k = 2
    s1 = alpha(1, M, r) * 0.01 * float((w0 - z0).norm()) / float((w1 - z0).norm())
    lam = s1 * (w1 - z0)
    # Z-step with U = Lambda/rho
    u = lam / rho
    z1 = keep_two_largest({"w": w1 + u})["w"]
    # C2 (with an exact projection it holds unless tie), full step with alpha_2 and N(W_bar=W, Z_old)/N(W, Z_new)
    assert out["c2"]
    s2 = alpha(2, M, r) * s1 * float((w1 - z0).norm()) / float((w1 - z1).norm())
    lam = lam + s2 * (w1 - z1)
    assert state["s"] == pytest.approx(s2, rel=1e-6)
    assert state["k"] == 3
    torch.testing.assert_close(state["Z"]["w"], z1)
    torch.testing.assert_close(state["Lambda"]["w"], lam)
    torch.testing.assert_close(state["U"]["w"], lam / rho)
    assert state["f_bar"] == 0.8
    # the snapshot is a copy: changing the live tensor later does not move it (reference defect 1)
    w1.add_(1.0)
    assert not torch.equal(state["W_bar"]["w"], w1)


def test_slr_block_rejects_a_w_step_that_raises_the_surrogate():
    w0 = torch.tensor([3.0, -1.0, 0.5, 2.0])
    state = initial_state(w0, f0=1.0)
    worse = torch.tensor([3.5, -2.0, 1.5, 2.5])  # farther from Z and a higher loss
    out = slr_block(state, {"w": worse}, 1.5, keep_two_largest, 0.1, 300.0, 0.1)
    assert not out["c1"]  # no half step: the only step below is C2's, measured from the old W_bar = w0
    # the Z-step still runs (U = 0, so Z = Pi(W)); C2 holds, so one full step is taken with k = 1
    z_old = torch.tensor([3.0, 0.0, 0.0, 2.0])
    z = keep_two_largest({"w": worse})["w"]
    assert out["c2"] and state["k"] == 2
    s = alpha(1, 300.0, 0.1) * 0.01 * float((w0 - z_old).norm()) / float((worse - z).norm())
    assert state["s"] == pytest.approx(s, rel=1e-6)
    torch.testing.assert_close(state["Lambda"]["w"], s * (worse - z))
    assert torch.equal(state["W_bar"]["w"], worse) and state["f_bar"] == 1.5  # the full step accepted W


def test_c2_fails_only_on_a_tie():
    w = torch.tensor([3.0, -1.0, 0.5, 2.0])
    state = initial_state(w, f0=1.0)
    state["W_bar"] = {"w": w.clone()}
    out = slr_block(state, {"w": w.clone()}, 1.0, keep_two_largest, 0.1, 300.0, 0.1)
    assert not out["c1"]  # no change: not strictly lower
    assert not out["c2"]  # Z(new) == Z(old): a tie, no step
    assert state["k"] == 1 and state["s"] == 0.01 and torch.count_nonzero(state["Lambda"]["w"]) == 0


def test_admm_block_is_the_scaled_dual_update():
    w = {"w": torch.tensor([3.0, -1.0, 0.5, 2.0])}
    state = {"Z": keep_two_largest(w), "U": {"w": torch.tensor([0.1, 0.2, -0.1, 0.0])}}
    admm_block(state, w, keep_two_largest)
    z = keep_two_largest({"w": w["w"] + torch.tensor([0.1, 0.2, -0.1, 0.0])})["w"]
    torch.testing.assert_close(state["Z"]["w"], z)
    torch.testing.assert_close(state["U"]["w"], torch.tensor([0.1, 0.2, -0.1, 0.0]) + w["w"] - z)


def test_penalty_and_norms():
    w, z, u = {"a": torch.ones(3)}, {"a": torch.zeros(3)}, {"a": torch.ones(3)}
    assert float(penalty(w, z, u, 0.5)) == pytest.approx(0.25 * 12)
    assert frobenius_sum({"a": torch.ones(4), "b": torch.ones(9)}, {"a": torch.zeros(4), "b": torch.zeros(9)}) == 5.0


@pytest.mark.parametrize("method", ["slr", "admm"])
def test_run_structure_exact_sparsity_and_no_revival(tmp_path, method):
    report = compress(EXAMPLE, method=method, sparsity=0.9, epochs=2, retrain_epochs=2, limit=500, keep_ends_dense=False,
                      output=tmp_path / method, **QUIET)
    phases = [(r["phase"], r["epoch"]) for r in report["trace"]]
    assert phases == [(method, 1), (method, 2), ("retrain", 1), ("retrain", 2)]
    first = report["trace"][0]
    for key in ("train_loss", "penalty", "w_minus_z", "s", "hard_prune_accuracy"):
        assert key in first, key
    if method == "slr":
        assert "c1_accepted" in first and "c2_accepted" in first
    assert "accuracy" in report["hard_pruned_metrics"]
    # exact per-layer target after hard pruning, and retraining revived nothing
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(report["outputs"]["onnx"]).graph.initializer}
    for layer in report["layers"]:
        array = weights[layer["name"]]
        assert np.count_nonzero(array) == array.size - round(0.9 * array.size), layer["name"]


def test_a_growing_rho_keeps_the_multipliers_and_pulls_w_onto_z(tmp_path):
    from compressor.methods.lagrangian import PenaltyHooks

    hooks = PenaltyHooks(ctx=None, state={"U": {"w": torch.tensor([1.0, -2.0])}}, rho=0.1, epochs=3)
    hooks.grow_rho(0.4)
    assert hooks.rho == 0.4
    assert torch.allclose(0.4 * hooks.state["U"]["w"], 0.1 * torch.tensor([1.0, -2.0]))  # Lambda = rho U unchanged

    common = dict(method="admm", sparsity=0.9, epochs=3, retrain_epochs=0, limit=400, keep_ends_dense=False, **QUIET)
    fixed = compress(EXAMPLE, output=tmp_path / "fixed", **common)
    growing = compress(EXAMPLE, output=tmp_path / "growing", rho_growth=10.0, **common)
    assert [r.get("rho") for r in growing["trace"]] == [pytest.approx(1.0), pytest.approx(10.0), None]
    # per layer, relative: every pruned layer's distance shrinks from the first epoch to the last
    first, last = growing["trace"][0]["w_minus_z_relative"], growing["trace"][-1]["w_minus_z_relative"]
    assert set(first) == {layer["name"] for layer in growing["layers"] if layer["target"]}
    assert all(0 < last[n] < first[n] <= 1 for n in first)
    assert growing["trace"][-1]["w_minus_z"] < 0.8 * fixed["trace"][-1]["w_minus_z"]
    assert growing["hard_pruned_metrics"]["accuracy"] >= fixed["hard_pruned_metrics"]["accuracy"]
    with pytest.raises(Exception, match="--rho-growth must be 1"):
        compress(EXAMPLE, output=tmp_path / "bad", rho_growth=0.5, **common)


def test_slr_step_can_follow_a_growing_rho(tmp_path):
    common = dict(method="slr", sparsity=0.9, epochs=3, retrain_epochs=0, limit=300, keep_ends_dense=False,
                  rho_growth=4.0, **QUIET)
    plain = compress(EXAMPLE, output=tmp_path / "plain", slr_step_follows_rho=False, **common)
    following = compress(EXAMPLE, output=tmp_path / "following", **common)  # the default
    # the first block is the same; after it s is scaled with rho (x4), then SLR's rule goes on from there
    assert following["trace"][0]["s"] == pytest.approx(plain["trace"][0]["s"], rel=1e-6)
    assert following["trace"][1]["s"] > 2.0 * plain["trace"][1]["s"]


def test_rho_final_is_a_geometric_schedule_that_rho_growth_overrides():
    from compressor.errors import ConfigError
    from compressor.methods.admm import ADMMPruning
    from compressor.methods.slr import SLRPruning

    slr = SLRPruning.Config(epochs=10)  # the defaults: 0.1 -> 4 over 9 blocks
    assert slr.growth() == pytest.approx(40 ** (1 / 9))
    assert slr.rho * slr.growth() ** 9 == pytest.approx(4.0)
    assert SLRPruning.Config(epochs=10, rho_growth=2.0).growth() == 2.0  # an explicit factor wins
    assert SLRPruning.Config(epochs=10, rho=5.0).growth() == 1.0  # final at or below rho: fixed
    assert SLRPruning.Config(epochs=1).growth() == 1.0  # no block to grow after
    assert ADMMPruning.Config(epochs=10).growth() == 1.0  # ADMM keeps the reference's fixed rho
    assert ADMMPruning.Config(epochs=5, rho_final=1.6).growth() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="--rho-scaling"):
        SLRPruning.Config(rho_scaling="global")


def test_layer_scales_put_every_layer_in_its_own_units():
    from compressor.methods.lagrangian import layer_scales, rho_of

    weights = {"big": torch.full((4,), 2.0), "small": torch.full((9,), 0.5), "mid": torch.ones(2)}
    scales = layer_scales(weights)
    # inverse mean squares 1/4, 4, 1 have geometric mean 1, so they are the scales themselves
    assert scales == pytest.approx({"big": 0.25, "small": 4.0, "mid": 1.0})
    assert float(np.prod(list(layer_scales({"a": torch.ones(3), "b": torch.full((3,), 3.0)}).values()))) == pytest.approx(1.0)
    rho = {n: 0.1 * c for n, c in scales.items()}
    z = {n: torch.zeros_like(w) for n, w in weights.items()}
    u = dict(z)
    # scaled, each layer's penalty is (rho / 2) times its relative squared distance times the reference scale
    assert float(penalty(weights, z, u, rho)) == pytest.approx(sum(0.05 * rho_of(rho, n) / 0.1 * float(w.square().sum())
                                                                   for n, w in weights.items()))
    assert float(penalty(weights, z, u, rho)) == pytest.approx(0.05 * (4 + 9 + 2))


def test_slr_with_layer_scaling_runs_and_keeps_the_scale_in_its_state(tmp_path):
    common = dict(method="slr", sparsity=0.9, epochs=3, retrain_epochs=0, limit=300, keep_ends_dense=False, **QUIET)
    report = compress(EXAMPLE, output=tmp_path / "layer", rho_scaling="layer", **common)
    assert report["training"]["rho_scaling"] == "layer"
    assert (report["training"]["reinsert_bn"], report["training"]["recalibrate_bn"]) == (True, True)
    last = report["trace"][-1]["w_minus_z_relative"]
    assert all(0 <= v < 1 for v in last.values())
    assert report["sparsity"] == pytest.approx(0.9, abs=0.01)


def test_methods_own_their_optimiser_and_batchnorm_defaults():
    from compressor.pipeline.options import CompressOptions

    def resolved(method, **given):
        training = CompressOptions.from_keywords(method=method, **given).training
        return training.optimizer_for(method), training.batchnorm_for(method)

    optimizer, batchnorm = resolved("slr")
    assert (optimizer.name, optimizer.lr, optimizer.momentum, batchnorm) == ("sgd", 0.01, 0.9, (True, True))
    assert resolved("admm")[1] == (True, True)
    optimizer, batchnorm = resolved("magnitude")
    assert (optimizer.name, optimizer.lr, batchnorm) == ("adam", 1e-3, (False, False))
    assert resolved("slr", lr=0.05)[0].lr == 0.05 and resolved("slr", lr=0.05)[0].name == "sgd"
    # another optimizer named without a learning rate takes that optimizer's own default lr
    assert (resolved("slr", optimizer="adam")[0].name, resolved("slr", optimizer="adam")[0].lr) == ("adam", 1e-3)
    assert resolved("slr", reinsert_bn=False, recalibrate_bn=False)[1] == (False, False)
    assert resolved("magnitude", recalibrate_bn=True)[1] == (False, True)
    assert resolved("olmp")[0].name == "adam"
    # what a checkpoint is matched on is what the run trains with, however it was spelled
    fingerprint = CompressOptions.from_keywords(method="slr").fingerprint("x")
    spelled = CompressOptions.from_keywords(method="slr", optimizer="sgd", lr=0.01, reinsert_bn=True).fingerprint("x")
    assert fingerprint == spelled and fingerprint["optimizer"] == "sgd"


def test_magnitude_refuses_slr_options(tmp_path):
    from compressor.errors import ConfigError

    with pytest.raises(ConfigError, match="does not take --rho"):
        compress(EXAMPLE, method="magnitude", rho=0.5, output=tmp_path / "x", **QUIET)


class Crash(Exception):
    pass


def test_slr_resumes_mid_phase_with_multipliers_and_step_size(tmp_path, monkeypatch):
    from compressor.methods import slr

    # a progressive rho too: it lives in the method's state, so the resumed run continues it
    options = dict(method="slr", sparsity=0.9, epochs=3, retrain_epochs=1, limit=400, keep_ends_dense=False,
                   rho_growth=3.0, **QUIET)
    straight = compress(EXAMPLE, output=tmp_path / "straight", **options)
    assert [r.get("rho") for r in straight["trace"]] == [pytest.approx(0.3), pytest.approx(0.9), None, None]

    original = slr.SLRHooks.block

    def crashing_block(self, weights, epoch):
        if epoch == 2:
            raise Crash  # dies after epoch 2's W-step; the checkpoint holds epoch 1 and its block
        return original(self, weights, epoch)

    monkeypatch.setattr(slr.SLRHooks, "block", crashing_block)
    with pytest.raises(Crash):
        compress(EXAMPLE, output=tmp_path / "resumed", **options)
    assert (tmp_path / "resumed" / "resume-checkpoint.pt").exists()
    monkeypatch.setattr(slr.SLRHooks, "block", original)
    resumed = compress(EXAMPLE, output=tmp_path / "resumed", resume=True, **options)

    assert [r.get("s") for r in resumed["trace"]] == [r.get("s") for r in straight["trace"]]
    assert [r.get("rho") for r in resumed["trace"]] == [r.get("rho") for r in straight["trace"]]
    assert [r.get("k") for r in resumed["trace"]] == [r.get("k") for r in straight["trace"]]
    a = {i.name: numpy_helper.to_array(i) for i in onnx.load(straight["outputs"]["onnx"]).graph.initializer}
    b = {i.name: numpy_helper.to_array(i) for i in onnx.load(resumed["outputs"]["onnx"]).graph.initializer}
    for name in a:
        assert np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("method,pattern,scope", [
    ("slr", "2:4", "layer"), ("admm", "unstructured", "global"), ("slr", "filter", "layer"), ("admm", "column", "layer"),
])
def test_every_pattern_runs_through_slr_and_admm(tmp_path, method, pattern, scope):
    report = compress(EXAMPLE, method=method, pattern=pattern, scope=scope, sparsity=0.5, epochs=1, retrain_epochs=1,
                      limit=300, output=tmp_path / "o", **QUIET)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(report["outputs"]["onnx"]).graph.initializer}
    pruned = [layer for layer in report["layers"] if layer["target"] is not None]
    assert pruned
    for layer in pruned:
        w = weights[layer["name"]]
        if pattern == "2:4":
            groups = np.moveaxis(w, 1, -1).reshape(-1, 4)
            assert np.all((groups == 0).sum(axis=1) >= 2)
        elif pattern == "filter":  # whole output rows are zero
            rows = w.reshape(w.shape[0], -1)
            zero_rows = np.all(rows == 0, axis=1)
            assert zero_rows.sum() == round(0.5 * w.shape[0]) and np.all(rows[~zero_rows].any(axis=1))
        elif pattern == "column":
            columns = w.reshape(w.shape[0], -1)
            assert np.all(columns == 0, axis=0).sum() == round(0.5 * columns.shape[1])
    if scope == "global":
        assert report["sparsity"] == pytest.approx(0.5 * sum(l["params"] for l in pruned) / report["params"]["prunable"], abs=1e-4)
