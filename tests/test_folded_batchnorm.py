"""BatchNorm put back into convolutions whose exporter folded it (compressor/training/folded_batchnorm.py):
the identity when inserted, an exact fold, masks kept, and the pipeline's --reinsert-bn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor import compress
from compressor.onnx_import import load_onnx
from compressor.training.folded_batchnorm import FoldedBatchNorm, find_sites

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.zoo.export import export_reference  # noqa: E402
from deploy.zoo.models.small_resnet import SmallResNet  # noqa: E402


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """A residual CNN exported in eval mode: every BatchNorm folded into its conv (weights and bias)."""
    torch.manual_seed(0)
    model = SmallResNet(widths=(8, 16, 16))
    with torch.no_grad():  # BatchNorm statistics away from the identity, so folding matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return export_reference(model.eval(), tmp_path_factory.mktemp("fbn") / "r.onnx", (1, 1, 28, 28), 17)


def batches(count=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 1, 28, 28, generator=g) for _ in range(count)]


def test_sites_are_the_folded_convs_only(folded):
    module = load_onnx(folded)
    sites = find_sites(module)
    convs = [i for i in module.weights.values() if i.op_type == "Conv"]
    assert len(sites) == len(convs) == 15  # stem, 12 block convs, 2 projections: each had a BatchNorm, now folded
    assert all(s.channels in (8, 16) for s in sites)


def test_inserted_norms_start_as_the_identity_and_fold_exactly(folded):
    module = load_onnx(folded)
    x = batches(1, 32, seed=1)[0]
    with torch.no_grad():
        reference = module.eval()(x).clone()
    norms = FoldedBatchNorm(module, find_sites(module))
    norms.insert(batches())
    with torch.no_grad():
        assert torch.allclose(module.eval()(x), reference, rtol=1e-4, atol=1e-5)  # inference: the identity
        module.train()
        out = module(x)  # batch statistics now: close to, not equal to, the inference output
        assert not torch.allclose(out, reference, atol=1e-6)
    # a few steps of training move the norms and the convs; the fold must compute what inference did
    opt = torch.optim.Adam([*module.parameters(), *norms.parameters()], lr=1e-2)
    for xb in batches(4, 16, seed=2):
        module.train()
        loss = module(xb).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        before = module.eval()(x).clone()
        norms.fold()
        after = module.eval()(x)
    assert not norms.inserted
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(after, reference, atol=1e-3)  # it did train


def test_fold_keeps_pruned_rows_at_zero(folded):
    module = load_onnx(folded)
    site = find_sites(module)[1]
    weight = module.parameter(site.weight)
    with torch.no_grad():
        weight[:3] = 0.0
    norms = FoldedBatchNorm(module, [site])
    norms.insert(batches())
    with torch.no_grad():
        norms.scale[0].mul_(1.7)
        norms.shift[0].add_(0.3)
    norms.fold()
    assert torch.count_nonzero(weight[:3]) == 0 and torch.count_nonzero(weight[3:]) == weight[3:].numel()


def test_the_pipeline_fine_tunes_a_folded_network_with_batchnorm_put_back(folded, tmp_path):
    """--reinsert-bn in a real run: the report's export parity holds (the exported file is the folded
    module), the log names the convs, and a resumed run ends with the same weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    lines: list[str] = []
    common = dict(method="magnitude", pattern="channel", sparsity=0.25, epochs=2, data=str(tmp_path / "d.npz"),
                  keep_ends_dense=False, reinsert_bn=True, batch_size=32, progress=False, latency_runs=3)
    compress(folded, output=tmp_path / "a", log=lines.append, **common)
    assert any("BatchNorm put back into 15 folded conv(s)" in line for line in lines), lines
    saved = json.loads((tmp_path / "a" / "report.json").read_text())
    assert saved["export_parity"] < 1e-4
    assert saved["slim"]["parity"]["max_relative_error"] < 1e-4
    again = compress(folded, output=tmp_path / "b", log=lambda m: None, **common)
    first = json.loads((tmp_path / "a" / "report.json").read_text())
    assert again["metrics"]["compressed"] == first["metrics"]["compressed"]  # deterministic


class Interrupt(Exception):
    pass


def test_a_resumed_phase_ends_with_the_weights_of_an_uninterrupted_one(folded, tmp_path, monkeypatch):
    """The norms put back live for the whole run; the checkpoint holds the unfolded weights and the
    norms' state, so a resumed run goes on with the same norms and, folded at the end (`close`),
    ends with the weights of the uninterrupted run."""
    from torch.utils.data import TensorDataset

    from compressor.objectives import ClassificationObjective
    from compressor.training import Checkpoint, MaskSet, OptimizerConfig, Session, TrainConfig
    from compressor.training import session as session_module

    g = torch.Generator().manual_seed(3)
    data = TensorDataset(torch.randn(48, 1, 28, 28, generator=g), torch.randint(0, 10, (48,), generator=g))
    config = TrainConfig(batch_size=16, seed=1, folded_batchnorm=True)

    def run(checkpoint=None, resume=False):
        module = load_onnx(folded)
        weight = next(iter(module.weights))
        masks = MaskSet({weight: torch.rand(module.parameter(weight).shape, generator=torch.Generator().manual_seed(0)) > 0.5})
        session = Session(module, ClassificationObjective(), data, data, config=config, checkpoint=checkpoint, resume=resume)
        session.train("finetune", 3, OptimizerConfig(name="adam", lr=1e-3), masks=masks)
        assert session.norms is not None and session.norms.inserted
        session.close()
        assert session.norms is None
        return module, session, masks

    reference, session, masks = run()
    want = {k: v.clone() for k, v in reference.onnx_parameters().items()}
    pruned = ~next(iter(masks.masks.values()))
    assert torch.count_nonzero(reference.parameter(next(iter(masks.masks))).detach()[pruned]) == 0

    real, calls = session_module.train_one_epoch, []

    def dies_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupt
        return real(*args, **kwargs)

    checkpoint = Checkpoint(tmp_path / "ckpt.pt", {"run": 1})
    monkeypatch.setattr(session_module, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(Interrupt):
        run(checkpoint)
    monkeypatch.setattr(session_module, "train_one_epoch", real)
    resumed, again, _ = run(checkpoint, resume=True)
    for name, value in want.items():
        assert torch.allclose(resumed.onnx_parameters()[name], value, rtol=1e-5, atol=1e-6), name
    assert [r["train_loss"] for r in again.trace] == pytest.approx([r["train_loss"] for r in session.trace], rel=1e-5)


@pytest.mark.filterwarnings("ignore:ONNX Preprocess - Removing mutation")
def test_a_graph_that_keeps_its_batchnorm_has_no_site_and_says_so(tmp_path):
    """An exporter that keeps BatchNormalization nodes (training-mode export here; paddle2onnx does the
    same): nothing is put back, and the run says why instead of staying silent."""
    torch.manual_seed(0)
    model = SmallResNet(widths=(8, 16, 16))
    path = tmp_path / "bn.onnx"
    torch.onnx.export(model.train(), (torch.randn(2, 1, 28, 28),), str(path), dynamo=False, opset_version=17,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    module = load_onnx(path)
    assert any(n.op_type == "BatchNormalization" for n in module.onnx_model.graph.node)
    assert find_sites(module) == []
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((32, 1, 28, 28)).astype(np.float32), y=rng.integers(0, 10, 32))
    lines: list[str] = []
    compress(path, method="magnitude", sparsity=0.5, epochs=1, data=str(tmp_path / "d.npz"), reinsert_bn=True,
             batch_size=16, output=tmp_path / "o", progress=False, latency_runs=3, log=lines.append)
    assert any("--reinsert-bn: no folded conv" in line for line in lines), lines


def site_statistics(module, sites, data):
    return FoldedBatchNorm(module, sites).measure(data)


def test_recalibration_gives_every_channel_back_its_statistics_and_keeps_zeros(folded):
    """After a change to the weights (here: rows zeroed and rows rescaled, as pruning does), the
    recalibrated network's site outputs have the mean and variance they had before, measured on
    the same batches; zeroed weights stay zero and a whole pruned row keeps its bias."""
    module = load_onnx(folded)
    sites = find_sites(module)
    data = batches(4, 16, seed=3)
    targets = site_statistics(module, sites, data)
    with torch.no_grad():
        for k, site in enumerate(sites):
            weight = module.parameter(site.weight)
            weight.mul_((torch.rand(weight.shape, generator=torch.Generator().manual_seed(k)) > 0.5).float() * 0.6)
        dead = module.parameter(sites[2].weight)
        dead[0] = 0.0  # a whole output channel pruned: its output is its bias alone
    dead_bias = float(module.parameter(sites[2].bias)[0].detach())
    zeros = {s.weight: module.parameter(s.weight) == 0 for s in sites}
    drifted = site_statistics(module, sites, data)
    assert max(float((d[0] - t[0]).abs().max()) for d, t in zip(drifted, targets)) > 0.2  # the change moved them
    FoldedBatchNorm(module, sites).recalibrate(data, targets)
    after = site_statistics(module, sites, data)
    for k, ((mean, var), (target_mean, target_var)) in enumerate(zip(after, targets)):
        live = torch.ones_like(mean, dtype=torch.bool)
        if k == 2:
            live[0] = False
        # batch statistics during recalibration, running (whole-set) ones after: close, not equal
        assert torch.allclose(mean[live], target_mean[live], atol=0.05 + 0.05 * float(target_var.sqrt().max())), k
        assert torch.allclose(var[live].sqrt(), target_var[live].sqrt(), rtol=0.1, atol=0.05), k
    for s in sites:
        assert torch.equal(module.parameter(s.weight) == 0, zeros[s.weight])
    assert float(module.parameter(sites[2].bias)[0].detach()) == pytest.approx(dead_bias, abs=1e-6)


def test_recalibrate_bn_in_a_run_reports_both_moments(folded, tmp_path):
    """--recalibrate-bn: the hard-pruned metrics are reported as they were, the recalibrated ones
    beside them; at 80% the recalibrated network is closer to the dense model's outputs."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)  # no labels: distillation, whose loss says how far from the dense model
    common = dict(method="magnitude", sparsity=0.8, epochs=0, retrain_epochs=0, data=str(tmp_path / "d.npz"),
                  batch_size=16, progress=False, stages=("load", "data", "plan", "prune", "verify", "export", "report"))
    lines: list[str] = []
    plain = compress(folded, output=tmp_path / "a", log=lambda m: None, **common)
    report = compress(folded, output=tmp_path / "b", log=lines.append, recalibrate_bn=True, **common)
    assert any("BatchNorm recalibrated after pruning: 15 conv(s)" in line for line in lines), lines
    after = report["after_pruning"]
    assert after["metrics"] == plain["after_pruning"]["metrics"]  # the plain hard-pruned figure is unchanged
    assert "recalibrated" not in plain["after_pruning"]
    assert after["recalibrated"]["relative_l2"] < 0.8 * after["metrics"]["relative_l2"]
    assert report["metrics"]["compressed"]["relative_l2"] == pytest.approx(after["recalibrated"]["relative_l2"], rel=1e-4)
    assert report["export_parity"] < 1e-4
    markdown = (tmp_path / "b" / "report.md").read_text()
    assert "BatchNorm recalibration" in markdown


def test_slr_trains_the_normalised_network_throughout_and_exports_the_plain_graph(folded, tmp_path):
    """--reinsert-bn with a penalty method: the norms stay in through the penalty phase, hard pruning
    (recalibrated: their running statistics re-estimated) and retraining, and are folded once at
    the end; exact sparsity, the export matches the module, and the report has both moments."""
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((96, 1, 28, 28)).astype(np.float32), y=rng.integers(0, 10, 96))
    lines: list[str] = []
    report = compress(folded, output=tmp_path / "s", log=lines.append, method="slr", sparsity=0.7, epochs=2,
                      retrain_epochs=1, rho_growth=4.0, data=str(tmp_path / "d.npz"), keep_ends_dense=False,
                      reinsert_bn=True, recalibrate_bn=True, batch_size=32, progress=False,
                      stages=("load", "data", "plan", "prune", "verify", "export", "report"))
    assert sum("BatchNorm put back into 15 folded conv(s)" in line for line in lines) == 1, lines  # once per run
    assert any("BatchNorm recalibrated after pruning: 15 conv(s)" in line for line in lines), lines
    assert "recalibrated" in report["after_pruning"]
    assert report["export_parity"] < 1e-4
    assert abs(report["sparsity"] - 0.7) < 0.01
