"""bench/method_seeds.py's verdicts: the claims of issue 14 checked seed by seed on given rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
method_seeds = pytest.importorskip("method_seeds")


def row(model, method, seed, *, part="tuned", hard=None, recal=None, ratio=1.0, loss=0.0):
    return {"model": model, "part": part, "method": method, "label": method, "seed": seed, "dense_accuracy": 0.97,
            "accuracy": 0.97 - loss / 100, "loss_points": loss, "hard_pruned_accuracy": hard,
            "recalibrated_accuracy": recal, "compression_ratio": ratio, "weight_sparsity": 0.8, "wall_s": 1.0}



def test_slr_must_match_admm_and_the_floor_on_every_seed():
    rows = [row("small-resnet", "slr", s, hard=0.5, recal=0.9) for s in range(3)]
    rows += [row("small-resnet", "admm", s, hard=0.6, recal=0.85) for s in range(3)]
    (verdict,) = method_seeds.verdicts(rows)
    assert verdict["holds"]  # the recalibrated figures compare (0.9 >= 0.85), the raw ones are kept too
    assert verdict["per_seed"][0] == {"slr": 0.9, "admm": 0.85, "slr_raw": 0.5, "admm_raw": 0.6}
    rows[2] = row("small-resnet", "slr", 2, hard=0.5, recal=0.79)  # one seed under 80%
    assert not method_seeds.verdicts(rows)[0]["holds"]
    # without recalibration the hard-pruned figure is the one compared
    plain = [row("small-resnet", m, 0, hard=h) for m, h in (("slr", 0.81), ("admm", 0.82))]
    assert not method_seeds.verdicts(plain)[0]["holds"]


def test_olmp_needs_the_mean_ratio_at_the_loss_and_to_beat_magnitude_on_every_seed():
    rows = [row("lenet300", "olmp", s, ratio=r, loss=l) for s, (r, l) in enumerate([(60, 0.5), (45, 1.2), (55, 0.2)])]
    rows += [row("lenet300", "magnitude", s, ratio=r) for s, r in enumerate([30, 40, 50])]
    mean, beats = method_seeds.verdicts(rows)
    assert mean["mean_ratio"] == pytest.approx(160 / 3) and mean["mean_loss_points"] == pytest.approx(1.9 / 3)
    assert mean["holds"] and beats["holds"]
    rows[-1] = row("lenet300", "magnitude", 2, ratio=56)  # magnitude wins one seed
    assert not method_seeds.verdicts(rows)[1]["holds"]
    rows[1] = row("lenet300", "olmp", 1, ratio=45, loss=3.0)  # the mean loss over the bound
    assert not method_seeds.verdicts(rows)[0]["holds"]


def test_spread_is_mean_and_range():
    assert method_seeds.spread([0.9, 0.8, 1.0]) == "90.00 [80.00, 100.00]"
    assert method_seeds.spread([None, None]) == "—"
    assert method_seeds.spread([50.0, 70.0], scale=1.0, unit="x") == "60.00x [50.00, 70.00]"
