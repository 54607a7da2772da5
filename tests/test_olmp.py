"""OLMP (olmp.md): hysteresis masks, layer costs, the constraint, the threshold search, the
straight-through surgery hooks, the end-to-end pipeline and the CLI's refusals."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from compressor import compress
from compressor.errors import ConfigError
from compressor.layer_costs import layer_costs, require_macs
from compressor.methods.olmp.constraint import Constraint, ConstraintSet, constraint_for
from compressor.methods.olmp.method import SearchSchedule, SurgeryHooks
from compressor.methods.olmp.search import INFEASIBLE, Layer, SurgeryState, ThresholdSearch
from compressor.objectives import ClassificationObjective, DistillationObjective
from compressor.onnx_import import load_onnx, load_onnx_proto
from compressor.sparsity.hysteresis import MagnitudeStats, refresh_mask
from compressor.training.loop import train_one_epoch
from onnx_builders import conv_gemm_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=3, log=lambda message: None)


# ---- 1. hysteresis -------------------------------------------------------------------------------

def test_refresh_mask_hysteresis_band_keeps_previous_state():
    T = 1.0
    # magnitudes:        0.5   0.9   0.95  1.0   1.05  1.1   1.15  2.0   -0.89  -1.2
    values = torch.tensor([0.5, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 2.0, -0.89, -1.2])
    kept = torch.ones(10, dtype=torch.bool)
    pruned = torch.zeros(10, dtype=torch.bool)
    # previously kept: pruned only when |v| <= 0.9 T (0.5, 0.9 and |-0.89|); the band and above stay kept
    assert refresh_mask(kept, values, T).tolist() == [False, False, True, True, True, True, True, True, False, True]
    # previously pruned: spliced back only when |v| > 1.1 T (1.15, 2.0, |-1.2|); 1.1 itself stays pruned
    assert refresh_mask(pruned, values, T).tolist() == [False, False, False, False, False, False, True, True, False, True]
    # mixed previous states: every entry in the band (0.9T, 1.1T] keeps what it had
    previous = torch.tensor([True, False, True, False, True, False, False, True, True, False])
    new = refresh_mask(previous, values, T)
    band = (values.abs() > 0.9 * T) & (values.abs() <= 1.1 * T)
    assert torch.equal(new[band], previous[band])
    assert new.tolist() == [False, False, True, False, True, False, True, True, False, True]
    # the input mask is not modified in place
    assert previous.tolist() == [True, False, True, False, True, False, False, True, True, False]


def test_refresh_mask_splices_back_and_prunes_at_scale():
    T = 0.3
    values = torch.tensor([[0.3 * 1.1 + 1e-4, -0.27, 0.2], [0.33, 0.271, 0.5]])
    mask = torch.tensor([[False, True, True], [False, True, False]])
    new = refresh_mask(mask, values, T)
    assert new.tolist() == [[True, False, False], [False, True, True]]
    assert new.dtype == torch.bool and new.shape == mask.shape


def test_magnitude_stats_over_weight_and_bias_match_numpy():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((6, 4, 3)).astype(np.float32)
    bias = (rng.standard_normal(6) * 5).astype(np.float32)  # a very different scale: must be pooled, not averaged
    stats = MagnitudeStats.of([torch.from_numpy(weight), torch.from_numpy(bias)])
    pooled = np.abs(np.concatenate([weight.ravel(), bias.ravel()]).astype(np.float64))
    assert stats.mean == pytest.approx(pooled.mean(), rel=1e-12)
    assert stats.std == pytest.approx(pooled.std(), rel=1e-9)  # population std of |theta|
    weight_only = MagnitudeStats.of([torch.from_numpy(weight)])
    assert weight_only.mean == pytest.approx(np.abs(weight).astype(np.float64).mean(), rel=1e-12)
    assert abs(weight_only.mean - stats.mean) > 1e-3  # the bias does change the statistics
    # T(c) = max(mu + c sigma, 0)
    assert stats.threshold(0.0) == pytest.approx(stats.mean)
    assert stats.threshold(2.5) == pytest.approx(stats.mean + 2.5 * stats.std)
    assert stats.threshold(-0.5) == pytest.approx(max(stats.mean - 0.5 * stats.std, 0.0))
    very_negative = -(stats.mean / stats.std) - 1.0
    assert stats.threshold(very_negative) == 0.0
    assert MagnitudeStats(0.5, 0.25).threshold(-4.0) == 0.0
    assert MagnitudeStats(0.5, 0.25).threshold(-1.0) == pytest.approx(0.25)


# ---- 2. layer costs ------------------------------------------------------------------------------

def test_layer_costs_lenet5_example():
    module = load_onnx(EXAMPLE)
    costs = layer_costs(module, [1, 1, 28, 28])
    assert list(costs) == list(module.weights)
    expected = {  # weight: (bias, weight params, bias params, macs)
        "conv1.weight": ("conv1.bias", 500, 20, 288_000),
        "conv2.weight": ("conv2.bias", 25_000, 50, 1_600_000),
        "ip1.weight": ("ip1.bias", 400_000, 500, 400_000),
        "ip2.weight": ("ip2.bias", 5_000, 10, 5_000),
    }
    assert set(costs) == set(expected)
    for name, (bias, weight_params, bias_params, macs) in expected.items():
        cost = costs[name]
        assert (cost.weight, cost.bias, cost.weight_params, cost.bias_params, cost.macs) == (name, bias, weight_params, bias_params, macs)
        assert cost.params == weight_params + bias_params
        assert cost.macs_per_weight * weight_params == macs
    assert costs["conv1.weight"].macs_per_weight == 24 * 24
    assert costs["conv2.weight"].macs_per_weight == 8 * 8
    require_macs(costs)  # all known: no error
    # without a concrete input shape nothing can be counted
    unknown = layer_costs(module)
    assert all(c.macs is None and c.macs_per_weight is None for c in unknown.values())
    assert unknown["conv2.weight"].bias == "conv2.bias"  # biases are found without shapes
    with pytest.raises(ConfigError, match="input-shape"):
        require_macs(unknown)


def _matmul_add_model(bias_first: bool) -> onnx.ModelProto:
    """x[N,5,6] -> MatMul(W[6,4]) -> Add(b[4]) -> y[N,5,4]."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "lin.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "lin.bias")
    add_inputs = ["lin.bias", "mm"] if bias_first else ["mm", "lin.bias"]
    nodes = [helper.make_node("MatMul", ["x", "lin.weight"], ["mm"], name="lin_mm"),
             helper.make_node("Add", add_inputs, ["y"], name="lin_add")]
    graph = helper.make_graph(nodes, "matmul_add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("bias_first", [False, True])
def test_layer_costs_matmul_add_bias(bias_first):
    module = load_onnx_proto(_matmul_add_model(bias_first))
    assert list(module.weights) == ["lin.weight"]
    cost = layer_costs(module, [1, 5, 6])["lin.weight"]
    assert cost.bias == "lin.bias"
    assert (cost.weight_params, cost.bias_params, cost.params) == (24, 4, 28)
    assert cost.macs == 5 * 6 * 4  # 5 positions, each a 6x4 product
    assert cost.macs_per_weight == 5


def _dynamic_conv_model() -> onnx.ModelProto:
    """x[N,3,H,W] -> Conv(4, 3x3, pad 1) -> y[N,4,H,W] (spatial dims unknown)."""
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv.bias")
    nodes = [helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["y"], name="conv", pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3])]
    graph = helper.make_graph(nodes, "dyn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_layer_costs_dynamic_shapes_unknown_without_input_shape():
    module = load_onnx_proto(_dynamic_conv_model())
    costs = layer_costs(module)
    assert costs["conv.weight"].macs is None and costs["conv.weight"].bias == "conv.bias"
    with pytest.raises(ConfigError) as err:
        require_macs(costs)
    assert "conv.weight" in str(err.value)
    # a concrete shape fixes it: 6x10 output positions per channel, 108 weights
    known = layer_costs(module, [1, 3, 6, 10])["conv.weight"]
    assert known.macs == 6 * 10 * 4 * 3 * 3 * 3
    assert known.macs_per_weight == 60
    with pytest.raises(ConfigError, match="rank"):
        layer_costs(module, [1, 3, 6])


# ---- 3. constraint -------------------------------------------------------------------------------

def test_constraint_feasible_higher_and_lower_is_better():
    accuracy = Constraint("accuracy", True, 0.02)
    assert accuracy.feasible(0.95, 0.96)
    assert accuracy.feasible(0.94, 0.96)  # exactly on the bound (float rounding tolerated)
    assert not accuracy.feasible(0.9399, 0.96)
    assert accuracy.feasible(0.99, 0.96)  # an improvement is always feasible
    l2 = Constraint("relative_l2", False, 0.05)
    assert l2.feasible(0.10, 0.06)
    assert l2.feasible(0.11, 0.06)
    assert not l2.feasible(0.1101, 0.06)
    assert l2.feasible(0.0, 0.06)
    strict = Constraint("accuracy", True, 0.0)
    assert strict.feasible(0.5, 0.5) and not strict.feasible(0.5 - 1 / 128, 0.5)


def test_constraint_for_converts_points_and_checks_bounds():
    c = constraint_for(ClassificationObjective(), 0.5, 0.05)
    assert (c.metric, c.higher_is_better) == ("accuracy", True)
    assert c.bound == pytest.approx(0.005)
    c = constraint_for(DistillationObjective(classifier=True), 2.0, 0.05)
    assert (c.metric, c.higher_is_better, c.bound) == ("top1_agreement", True, pytest.approx(0.02))
    c = constraint_for(DistillationObjective(classifier=False), 2.0, 0.07)
    assert (c.metric, c.higher_is_better, c.bound) == ("relative_l2", False, 0.07)  # not in points
    assert constraint_for(ClassificationObjective(), 100, 0.05).bound == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="max-accuracy-drop"):
        constraint_for(ClassificationObjective(), 100.5, 0.05)
    with pytest.raises(ConfigError):
        constraint_for(ClassificationObjective(), -1, 0.05)
    with pytest.raises(ConfigError, match="max-output-error"):
        constraint_for(DistillationObjective(classifier=False), 1.0, -0.1)
    assert "2 points" in constraint_for(ClassificationObjective(), 2.0, 0.05).describe()


# ---- 4, 5, 9. search and surgery on a tiny model -------------------------------------------------

LAYERS = [Layer("conv.weight", ("conv.weight", "conv.bias"), True, (1.0, 1.0)),
          Layer("fc.weight", ("fc.weight", "fc.bias"), False, (1.0, 1.0))]


def _tiny(baseline="current", bound=0.0, budget=40, samples=96, seed=0):
    """conv_gemm_model as a module, a constraint set labelled by the dense model (accuracy 1.0)."""
    torch.manual_seed(seed)
    module = load_onnx_proto(conv_gemm_model(seed=seed))
    inputs = torch.randn(samples, 3, 8, 8, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        labels = module(inputs).argmax(1)
    cset = ConstraintSet(ClassificationObjective(), inputs, labels, None, "tiny")
    dense_metric = cset.measure(module)
    assert dense_metric == 1.0
    search = ThresholdSearch(module, LAYERS, Constraint("accuracy", True, bound), cset, baseline=baseline,
                             dense_metric=dense_metric, c_max=10.0, population=4, budget=budget)
    return module, search, inputs, labels


def _pruned_state(search, c_rate=0.001):
    state = search.initial_state(c_rate)
    state.masks = search.refresh(state, range(len(search.layers)))
    search.write(state)
    return state


def test_initial_state_freezes_dense_statistics_and_prunes_biases():
    module, search, _, _ = _tiny()
    dense = {t: module.parameter(t).detach().clone() for layer in LAYERS for t in layer.tensors}
    state = _pruned_state(search, 0.5)
    for i, layer in enumerate(LAYERS):
        ref = MagnitudeStats.of([dense[t] for t in layer.tensors])
        assert (state.stats[i].mean, state.stats[i].std) == (ref.mean, ref.std)
        T = ref.threshold(0.5)
        for t in layer.tensors:  # from all-kept masks: kept iff |theta| > 0.9 T
            assert torch.equal(state.masks[t], dense[t].abs() > 0.9 * T)
            assert torch.equal(module.parameter(t).detach(), dense[t] * state.masks[t])
            assert torch.equal(state.dense[t], dense[t])  # dense copy untouched by write
    assert not bool(state.masks["conv.bias"].all()) or not bool(state.masks["fc.bias"].all())
    kept = sum(int(state.masks[t].sum()) for t in state.masks)
    total = sum(state.masks[t].numel() for t in state.masks)
    assert search.cost(state.masks) == pytest.approx(kept / total)
    assert search.kept_fractions(state.masks) == pytest.approx(
        [sum(int(state.masks[t].sum()) for t in layer.tensors) / sum(state.masks[t].numel() for t in layer.tensors)
         for layer in LAYERS])


def _hooks(search, state, prune_steps=100, calls=1):
    # decays 0: every layer is selected at every step
    return SurgeryHooks(search, state, SearchSchedule(prune_steps, calls, 1.0), [0.0, 0.0], seed=5)


def test_straight_through_step_updates_pruned_dense_entries():
    module, search, inputs, labels = _tiny()
    state = _pruned_state(search, 0.5)
    old_dense = {t: v.clone() for t, v in state.dense.items()}
    old_masks = dict(state.masks)
    lr = 0.5
    # expected: the gradient of the *masked* network, applied to every dense entry (plain SGD)
    reference = copy.deepcopy(module)
    loss = ClassificationObjective().loss(reference(inputs[:32]), labels[:32])
    loss.backward()
    expected = {t: old_dense[t] - lr * reference.parameter(t).grad for t in old_dense}
    masked_grad = reference.parameter("fc.weight").grad[~old_masks["fc.weight"]]
    assert masked_grad.abs().max() > 0  # pruned positions do receive gradient

    hooks = _hooks(search, state)
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    loader = [(inputs[:32], labels[:32])]
    train_one_epoch(module, ClassificationObjective(), loader, optimizer, scheduler, hooks=hooks)

    state = hooks.state
    for t in old_dense:
        torch.testing.assert_close(state.dense[t], expected[t], atol=1e-6, rtol=1e-5)
    pruned_before = ~old_masks["fc.weight"]
    moved = (state.dense["fc.weight"][pruned_before] != old_dense["fc.weight"][pruned_before])
    assert moved.float().mean() > 0.5  # most pruned entries changed: straight-through
    for i, layer in enumerate(LAYERS):
        T = state.stats[i].threshold(state.c_rates[i])
        for t in layer.tensors:
            # the refresh after the step used the updated dense values and the previous masks
            assert torch.equal(state.masks[t], refresh_mask(old_masks[t], state.dense[t], T))
            param = module.parameter(t).detach()
            assert torch.count_nonzero(param[~state.masks[t]]) == 0  # exact zeros where pruned
            assert torch.equal(param[state.masks[t]], state.dense[t][state.masks[t]])
    assert state.searches == []  # no search scheduled at step 1
    # before_step puts the dense theta back, pruned entries included
    hooks.before_step(2)
    for t in state.dense:
        assert torch.equal(module.parameter(t).detach(), state.dense[t])


def test_after_step_splices_back_and_prunes_from_updated_weights():
    module, search, _, _ = _tiny()
    state = _pruned_state(search, 0.5)
    hooks = _hooks(search, state)
    hooks.before_step(1)
    T = state.stats[1].threshold(state.c_rates[1])
    mask = state.masks["fc.weight"]
    pruned_idx = tuple(int(i) for i in (~mask).nonzero()[0])
    kept_idx = tuple(int(i) for i in mask.nonzero()[0])
    band_idx = tuple(int(i) for i in (~mask).nonzero()[1])
    with torch.no_grad():  # what an optimizer step might do
        w = module.parameter("fc.weight")
        w[pruned_idx] = -1.2 * T  # a pruned weight grows past 1.1 T
        w[kept_idx] = 0.85 * T  # a kept weight shrinks below 0.9 T
        w[band_idx] = 1.05 * T  # a pruned weight inside the band stays pruned
    hooks.after_step(1)
    new = hooks.state.masks["fc.weight"]
    assert bool(new[pruned_idx]) and not bool(new[kept_idx]) and not bool(new[band_idx])
    param = module.parameter("fc.weight").detach()
    assert float(param[pruned_idx]) == pytest.approx(-1.2 * T)
    assert float(param[kept_idx]) == 0.0 and float(param[band_idx]) == 0.0
    assert float(hooks.state.dense["fc.weight"][kept_idx]) == pytest.approx(0.85 * T)  # still recoverable
    assert float(hooks.state.dense["fc.weight"][band_idx]) == pytest.approx(1.05 * T)


def _record_candidates(monkeypatch, search):
    """Wraps refresh and measure to log every candidate's (c, base masks, new masks) and metric."""
    calls, metrics = [], []
    refresh, measure = search.refresh, search.constraint_set.measure

    def logging_refresh(state, layer_indices, c_rates=None, masks=None):
        out = refresh(state, layer_indices, c_rates, masks)
        calls.append((None if c_rates is None else np.array(c_rates, dtype=float), masks, out))
        return out

    def logging_measure(model):
        value = measure(model)
        metrics.append(value)
        return value

    monkeypatch.setattr(search, "refresh", logging_refresh)
    monkeypatch.setattr(search.constraint_set, "measure", logging_measure)
    return calls, metrics


def test_search_with_current_baseline_never_returns_infeasible(monkeypatch):
    module, search, _, _ = _tiny(baseline="current", bound=0.0, budget=40)
    state = _pruned_state(search, 0.001)
    before_masks = dict(state.masks)
    calls, metrics = _record_candidates(monkeypatch, search)
    record = search.search(state, [0, 1], sigma=3.0, seed=0, step=0)

    assert record["evaluations"] == 40
    assert record["baseline"] == record["metric_before"] == metrics[0]
    candidate_metrics = metrics[1:1 + record["evaluations"]]
    assert len(candidate_metrics) == 40
    infeasible = [m for m in candidate_metrics if m < record["metric_before"]]
    assert infeasible, "the test needs candidates that break the bound"
    assert record["feasible"] is True
    assert record["metric_after"] >= record["metric_before"] - 0.0  # bound 0: no drop at all
    assert record["metric_after"] == search.constraint_set.measure(module)
    assert record["cost_after"] <= record["cost_before"] + 1e-12
    assert record["cost_before"] == pytest.approx(search.cost(before_masks))
    assert record["cost_after"] == pytest.approx(search.cost(state.masks))
    assert record["c_before"] == [0.001, 0.001]
    assert record["c_after"] == state.c_rates.tolist()
    assert all(0.0 <= c <= 10.0 for c in record["c_after"])
    assert state.searches == [record]
    for t in state.masks:  # the module computes with the winner's masks
        assert torch.equal(module.parameter(t).detach(), state.dense[t] * state.masks[t])


def test_search_with_dense_baseline_respects_bound_and_finds_smaller_net():
    module, search, _, _ = _tiny(baseline="dense", bound=0.05, budget=40)
    state = _pruned_state(search, 0.001)
    record = search.search(state, [0, 1], sigma=3.0, seed=1, step=0)
    assert record["baseline"] == 1.0
    if record["feasible"]:
        assert record["metric_after"] >= 1.0 - 0.05 - 1e-9
    else:  # nothing feasible found: the state stays where it was
        assert record["c_after"] == record["c_before"] and record["cost_after"] == record["cost_before"]
    # with a bound of 100 points every candidate is feasible: the search must prune more than c = 0.001
    module, search, _, _ = _tiny(baseline="dense", bound=1.0, budget=40)
    state = _pruned_state(search, 0.001)
    record = search.search(state, [0, 1], sigma=3.0, seed=1, step=0)
    assert record["feasible"] and record["cost_after"] < 0.5 * record["cost_before"]
    assert min(record["c_after"]) > 0.5


def test_search_candidates_start_from_snapshot(monkeypatch):
    module, search, _, _ = _tiny(baseline="current", bound=0.03, budget=30)
    state = _pruned_state(search, 0.001)
    # one refresh round of training-like change so the snapshot differs from a fresh all-kept start
    with torch.no_grad():
        for t in state.dense:
            state.dense[t].mul_(1.0 + 0.05 * torch.randn(state.dense[t].shape, generator=torch.Generator().manual_seed(9)))
    snapshot = {t: m.clone() for t, m in state.masks.items()}
    calls, _ = _record_candidates(monkeypatch, search)
    record = search.search(state, [0, 1], sigma=2.0, seed=3, step=0)
    candidates = calls[:-1]  # the last call applies the winner
    assert len(candidates) == record["evaluations"] == 30
    distinct = set()
    for c_rates, base, out in candidates:
        # every candidate refreshes the pre-call masks, not its predecessor's
        assert all(torch.equal(base[t], snapshot[t]) for t in snapshot)
        distinct.add(tuple(np.round(c_rates, 12)))
    # re-evaluating the candidates in reverse order from the snapshot gives the same masks
    for c_rates, _, out in reversed(candidates):
        again = ThresholdSearch.refresh(search, state, [0, 1], c_rates, snapshot)
        assert all(torch.equal(again[t], out[t]) for t in out)
    assert len(distinct) > 5
    # evaluating candidates one after another on live masks would have differed (hysteresis)
    live = dict(snapshot)
    differs = False
    for c_rates, _, out in candidates:
        live = ThresholdSearch.refresh(search, state, [0, 1], c_rates, live)
        differs |= any(not torch.equal(live[t], out[t]) for t in out)
    assert differs, "the snapshot would make no difference on this example"
    # the winner is applied to the snapshot too
    final_c, final_base, final_out = calls[-1]
    assert np.array_equal(final_c, state.c_rates)
    assert all(torch.equal(final_base[t], snapshot[t]) for t in snapshot)
    assert all(torch.equal(state.masks[t], final_out[t]) for t in final_out)


def test_search_is_deterministic_for_a_seed():
    results = []
    for _ in range(2):
        module, search, _, _ = _tiny(baseline="current", bound=0.03, budget=25)
        state = _pruned_state(search, 0.001)
        record = search.search(state, [0, 1], sigma=2.0, seed=7, step=3)
        results.append((record, state, module))
    (r1, s1, m1), (r2, s2, m2) = results
    for key in ("c_after", "cost_after", "metric_after", "kept_fractions", "replacements", "evaluations", "step"):
        assert r1[key] == r2[key], key
    assert all(torch.equal(s1.masks[t], s2.masks[t]) for t in s1.masks)


def test_surgery_hooks_state_round_trip_and_resume():
    module, search, _, _ = _tiny(baseline="current", bound=0.03, budget=15)
    state = _pruned_state(search, 0.001)
    hooks = _hooks(search, state, prune_steps=100, calls=50)  # a search every 2 steps
    gen = torch.Generator().manual_seed(4)
    for step in (1, 2, 3):
        hooks.before_step(step)
        with torch.no_grad():
            for t in hooks.state.dense:
                module.parameter(t).add_(0.05 * torch.randn(module.parameter(t).shape, generator=gen))
        hooks.after_step(step)
    assert len(hooks.state.searches) == 1 and hooks.state.searches[0]["step"] == 2

    buffer = io.BytesIO()
    torch.save(hooks.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    other_module = copy.deepcopy(module)
    other_search = ThresholdSearch(other_module, LAYERS, search.constraint, search.constraint_set, baseline="current",
                                   dense_metric=1.0, c_max=10.0, population=4, budget=15)
    resumed = _hooks(other_search, other_search.initial_state(3.0), prune_steps=100, calls=50)
    resumed.load_state_dict(saved)
    a, b = hooks.state, resumed.state
    assert set(a.masks) == set(b.masks) == set(a.dense) == set(b.dense)
    for t in a.masks:
        assert b.masks[t].dtype == torch.bool
        assert torch.equal(a.masks[t], b.masks[t])
        assert torch.equal(a.dense[t], b.dense[t])
    assert np.array_equal(a.c_rates, b.c_rates) and b.c_rates.dtype == np.float64
    assert [(s.mean, s.std) for s in a.stats] == [(s.mean, s.std) for s in b.stats]
    assert a.searches == b.searches

    # a state loaded without serialisation does not share tensors with the original
    direct = _hooks(search, search.initial_state(3.0))
    direct.load_state_dict(hooks.state_dict())
    original = hooks.state.dense["fc.weight"].clone()
    with torch.no_grad():
        hooks.state.dense["fc.weight"].add_(1.0)
    assert torch.equal(direct.state.dense["fc.weight"], original)
    with torch.no_grad():
        hooks.state.dense["fc.weight"].copy_(original)

    # both continue identically through a step that refreshes and searches
    for h, m in ((hooks, module), (resumed, other_module)):
        h.before_step(4)
        with torch.no_grad():
            for t in h.state.dense:
                m.parameter(t).mul_(0.97)
        h.after_step(4)
    a, b = hooks.state, resumed.state
    assert len(a.searches) == len(b.searches) == 2
    assert a.searches[-1]["c_after"] == b.searches[-1]["c_after"]
    assert np.array_equal(a.c_rates, b.c_rates)
    for t in a.masks:
        assert torch.equal(a.masks[t], b.masks[t])
        assert torch.equal(a.dense[t], b.dense[t])
        assert torch.equal(module.parameter(t), other_module.parameter(t))


def test_search_schedule():
    schedule = SearchSchedule(prune_steps=20, calls=4, sigma0=2.0)
    # call 0 runs before training; the other calls - 1 are spread evenly over the phase
    assert [s for s in range(1, 40) if schedule.searches_at(s)] == [5, 10, 15]
    assert [s for s in range(1, 40) if SearchSchedule(23, 2, 1.0).searches_at(s)] == [11]
    assert not any(SearchSchedule(50, 1, 1.0).searches_at(s) for s in range(1, 60))
    assert [s for s in range(1, 10) if SearchSchedule(3, 10, 1.0).searches_at(s)] == [1, 2]  # more calls than steps
    assert schedule.sigma(0) == 2.0 and schedule.sigma(13) == 2.0 and schedule.sigma(14) == pytest.approx(0.2)


def test_selection_probability_decays_and_is_seeded():
    _, search, _, _ = _tiny()
    hooks = SurgeryHooks(search, _pruned_state(search), SearchSchedule(1000, 1, 1.0), [0.3, 3.0], seed=2)
    assert hooks.selected(0) == [0, 1]  # at the start every layer is selected
    late = [hooks.selected(s) for s in range(500, 1000)]
    conv_rate = np.mean([0 in s for s in late])
    fc_rate = np.mean([1 in s for s in late])
    # p = 1/(1 + g t) for t in [0.5, 1): conv about 0.8, fc about 0.3
    assert 0.7 < conv_rate < 0.9 and 0.2 < fc_rate < 0.4
    assert [hooks.selected(s) for s in range(600, 620)] == [hooks.selected(s) for s in range(600, 620)]


def test_search_calls_cover_every_layer_unless_the_reference_selection_is_asked(monkeypatch):
    _, search, _, _ = _tiny()
    searched = []
    monkeypatch.setattr(search, "search", lambda state, layers, **kw: searched.append(list(layers)))
    schedule = SearchSchedule(1000, 20, 1.0)
    steps = [s for s in range(1, 1000) if schedule.searches_at(s)]
    reference = SurgeryHooks(search, _pruned_state(search), schedule, [0.3, 30.0], seed=2)
    for step in steps:
        reference.after_step(step)
    # late in the run the FC layer is rarely drawn: calls are skipped (fewer than two layers selected)
    assert len(searched) < len(steps)
    searched.clear()
    every = SurgeryHooks(search, _pruned_state(search), schedule, [0.3, 30.0], seed=2, search_all=True)
    for step in steps:
        every.after_step(step)
    assert searched == [[0, 1]] * len(steps)


# ---- 6, 7. end to end ----------------------------------------------------------------------------

def _file_arrays(path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


@pytest.fixture(scope="module")
def params_run(tmp_path_factory):
    """LeNet-5 on digits, params objective, the paper's per-call baseline, the bound on the validation
    split (so the search's metric is the report's); 5 adjusting steps."""
    out = tmp_path_factory.mktemp("olmp_params")
    report = compress(EXAMPLE, method="olmp", data="digits", limit=400, epochs=1, retrain_epochs=1, search_calls=2,
                      search_budget=20, constraint_samples=128, max_accuracy_drop=2.0, constraint_baseline="current",
                      constraint_data="val", seed=0, output=out, **QUIET)
    return report, out


@pytest.fixture(scope="module")
def flops_run(tmp_path_factory):
    """flops objective; one adjusting step, so the start search's masks are the final ones."""
    out = tmp_path_factory.mktemp("olmp_flops")
    report = compress(EXAMPLE, method="olmp", data="digits", limit=128, val_fraction=0.5, epochs=1, retrain_epochs=1,
                      search_calls=1, search_budget=20, constraint_samples=64, max_accuracy_drop=2.0,
                      objective="flops", constraint_baseline="dense", seed=0, output=out, **QUIET)
    return report, out


@pytest.mark.slow
def test_pipeline_olmp_prunes_weights_and_biases(params_run):
    report, out = params_run
    olmp = report["olmp"]
    arrays = _file_arrays(report["outputs"]["onnx"])
    assert report["outputs"]["onnx"] == str(out / "model.onnx")
    assert report["method"] == "olmp" and report["target_sparsity"] is None and olmp["objective"] == "params"
    names = [row["name"] for row in olmp["layers"]]
    assert names == ["conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"]  # every layer, ends included
    zero_biases = 0
    for row in olmp["layers"]:
        assert row["bias"] == row["name"].replace("weight", "bias")
        weight, bias = arrays[row["name"]], arrays[row["bias"]]
        assert row["params"] == weight.size + bias.size
        nonzero = int(np.count_nonzero(weight) + np.count_nonzero(bias))
        assert row["kept"] == nonzero, row["name"]
        assert row["kept_fraction"] == pytest.approx(nonzero / row["params"], abs=1e-12)
        assert row["threshold"] == pytest.approx(max(row["mean"] + row["c_rate"] * row["std"], 0.0))
        assert 0 < row["kept"] < row["params"]
        zero_biases += int(bias.size - np.count_nonzero(bias))
    assert zero_biases > 0  # biases are pruned as well
    assert olmp["kept"] == sum(r["kept"] for r in olmp["layers"])
    assert olmp["params"] == sum(r["params"] for r in olmp["layers"]) == 431_080
    assert olmp["kept_fraction"] == pytest.approx(olmp["kept"] / olmp["params"])
    # all of LeNet-5's stored values are the four layers' weights and biases
    assert report["params"]["total"] == 431_080
    assert report["params"]["nonzero"] == olmp["kept"]
    assert report["compression_ratio"] == pytest.approx(report["params"]["total"] / report["params"]["nonzero"], rel=1e-12)
    assert report["compression_ratio"] > 3
    assert {layer["name"] for layer in report["layers"]} == set(names)
    for layer in report["layers"]:
        assert layer["sparsity"] == pytest.approx(1 - np.count_nonzero(arrays[layer["name"]]) / arrays[layer["name"]].size)
    assert any("OLMP constraint" in note for note in report["notes"])
    assert "Threshold search (OLMP)" in (out / "report.md").read_text()
    assert (out / "search.png").is_file() and (out / "search.png").stat().st_size > 1000


@pytest.mark.slow
def test_pipeline_olmp_searches_respect_constraint(params_run):
    report, _ = params_run
    olmp = report["olmp"]
    constraint = olmp["constraint"]
    assert constraint["metric"] == "accuracy" and constraint["baseline"] == "current"
    assert constraint["bound"] == pytest.approx(0.02)
    # 400 samples, 80 validation: the 128 requested constraint samples are the whole split
    assert constraint["data"].startswith("80 fixed samples of the validation split")
    assert constraint["dense_value"] == pytest.approx(report["metrics"]["dense"]["accuracy"], abs=1e-12)
    assert olmp["final_constraint_metric"] == pytest.approx(report["metrics"]["compressed"]["accuracy"], abs=1e-12)
    searches = olmp["searches"]
    assert searches[0]["step"] == 0 and searches[0]["c_before"] == [0.001] * 4
    assert [s["call"] for s in searches] == list(range(len(searches)))
    assert len(searches) >= 2  # the start and at least one call during adjusting
    for s in searches:
        assert s["baseline"] == s["metric_before"]  # the net just before the call
        assert s["evaluations"] == 20
        assert s["feasible"], s  # x0 is feasible under the per-call baseline
        assert s["metric_after"] >= s["baseline"] - constraint["bound"] - 1e-9
        assert s["cost_after"] <= s["cost_before"] + 1e-12
        # params objective: the cost is the kept fraction of all pruned values
        params = [r["params"] for r in olmp["layers"]]
        assert s["cost_after"] == pytest.approx(np.dot(s["kept_fractions"], params) / sum(params), abs=1e-9)
        assert all(0.0 <= c <= 10.0 for c in s["c_after"])
    assert searches[0]["cost_after"] < 0.5 * searches[0]["cost_before"]
    # the masks frozen for retraining are the ones the adjusting phase ended with
    adjust = [r for r in report["trace"] if r["phase"] == "adjust"]
    assert adjust[-1]["cost"] == pytest.approx(olmp["kept"] / olmp["params"], abs=1e-12)
    assert adjust[-1]["c_rates"] == [r["c_rate"] for r in olmp["layers"]]


@pytest.mark.slow
def test_pipeline_olmp_flops_objective(flops_run, params_run):
    report, out = flops_run
    olmp = report["olmp"]
    assert olmp["objective"] == "flops" and olmp["constraint"]["baseline"] == "dense"
    arrays = _file_arrays(report["outputs"]["onnx"])
    costs = layer_costs(load_onnx(EXAMPLE), [1, 1, 28, 28])
    for row in olmp["layers"]:
        cost = costs[row["name"]]
        assert row["macs"] == cost.macs
        # a weight's multiply-adds go when it is pruned; biases cost none
        assert row["remaining_macs"] == cost.macs_per_weight * int(np.count_nonzero(arrays[row["name"]]))
    assert olmp["macs"] == 2_293_000
    assert olmp["remaining_macs"] == sum(r["remaining_macs"] for r in olmp["layers"])
    searches = olmp["searches"]
    assert len(searches) == 1  # one adjusting step: only the start search, and no refresh after it
    mac_fraction = olmp["remaining_macs"] / olmp["macs"]
    assert searches[-1]["cost_after"] == pytest.approx(mac_fraction, abs=1e-9)
    assert searches[-1]["cost_after"] != pytest.approx(olmp["kept"] / olmp["params"], abs=1e-3)
    assert searches[-1]["cost_after"] < searches[-1]["cost_before"]
    for s in searches:
        if s["feasible"]:
            assert s["metric_after"] >= olmp["constraint"]["dense_value"] - olmp["constraint"]["bound"] - 1e-9
    adjust = [r for r in report["trace"] if r["phase"] == "adjust"]
    assert adjust[-1]["cost"] == pytest.approx(mac_fraction, abs=1e-12)
    # the params run measured its cost in kept values, not multiply-adds
    p_report, _ = params_run
    p = p_report["olmp"]
    p_adjust = [r for r in p_report["trace"] if r["phase"] == "adjust"]
    assert p_adjust[-1]["cost"] == pytest.approx(p["kept"] / p["params"], abs=1e-12)
    assert p["remaining_macs"] / p["macs"] != pytest.approx(p["kept"] / p["params"], abs=1e-3)


# ---- 8. CLI ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--method", "olmp", "--sparsity", "0.9"], "sparsity"),
    (["--method", "olmp", "--override", "conv1*=0.5"], "sparsity"),
    (["--method", "olmp", "--pattern", "2:4"], "unstructured"),
    (["--method", "magnitude", "--max-accuracy-drop", "1"], "--max-accuracy-drop"),
    (["--method", "magnitude", "--objective", "flops"], "--objective"),
    (["--method", "olmp", "--epochs", "0"], "--epochs"),
    (["--method", "olmp", "--max-accuracy-drop", "101"], "--max-accuracy-drop"),
    (["--method", "olmp", "--search-budget", "5"], "--search-budget"),
    (["--method", "olmp", "--schedule", "gradual"], "gradual"),
])
def test_cli_refuses_bad_olmp_options(tmp_path, args, message):
    result = CliRunner().invoke(main_cli(), ["run", str(EXAMPLE), "-q", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "model.onnx").exists()


def main_cli():
    from cli import main

    return main


class _Interrupt(Exception):
    pass


def _stop_after(marker: str):
    """A log callback that interrupts the run right after the line containing `marker` (its checkpoint is written)."""

    def log(message: str) -> None:
        if marker in message:
            raise _Interrupt(message)

    return log


@pytest.mark.slow
@pytest.mark.parametrize("marker", ["adjust epoch 1/2", "retrain epoch 1/2"])
def test_resume_mid_phase_matches_uninterrupted_run(tmp_path, marker):
    """Interrupted during adjusting (hysteresis state, c-rates, search records) or during retraining
    (the retrained weights must not be overwritten by the end-of-adjusting ones), then resumed:
    the written weights equal those of an uninterrupted run."""
    options = dict(method="olmp", data="digits", limit=256, val_fraction=0.5, epochs=2, retrain_epochs=2,
                   search_calls=3, search_budget=20, constraint_samples=64, progress=False, latency_runs=1)
    straight = compress(EXAMPLE, log=lambda m: None, output=tmp_path / "straight", **options)
    with pytest.raises(_Interrupt):
        compress(EXAMPLE, log=_stop_after(marker), output=tmp_path / "resumed", **options)
    resumed = compress(EXAMPLE, log=lambda m: None, output=tmp_path / "resumed", resume=True, **options)

    def weights(report):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(report["outputs"]["onnx"]).graph.initializer}

    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    def searched(report):  # everything but the wall time
        return [{k: v for k, v in call.items() if k != "seconds"} for call in report["olmp"]["searches"]]

    assert searched(resumed) == searched(straight)
