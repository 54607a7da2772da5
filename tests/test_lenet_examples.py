"""LeNet-5 / LeNet-300-100, the dense training helper, and the committed example model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

from compressor.errors import DataError
from compressor.onnx_import import load_onnx
from deploy.zoo.examples import DESCRIPTION_KEY, METADATA, digits_images, digits_split, main as examples_main, onnx_accuracy
from deploy.zoo.models import REFERENCE_MODELS, LeNet5, LeNet300, build_reference
from deploy.zoo.training import evaluate_accuracy, train_classifier

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lenet5_digits.onnx"


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_sizes(model: torch.nn.Module) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children() if _n_params(m)}


def test_lenet_parameter_counts_match_the_literature():
    # Per-layer weights + biases as in the OLMP / Han et al. tables.
    lenet5 = LeNet5()
    assert _layer_sizes(lenet5) == {"conv1": 520, "conv2": 25_050, "ip1": 400_500, "ip2": 5_010}
    assert _n_params(lenet5) == 431_080
    lenet300 = LeNet300()
    assert _layer_sizes(lenet300) == {"ip1": 235_500, "ip2": 30_100, "ip3": 1_010}
    assert _n_params(lenet300) == 266_610
    x = torch.randn(3, 1, 28, 28)
    assert lenet5(x).shape == (3, 10) and lenet300(x).shape == (3, 10)


def test_lenet_options_and_reference_entries():
    # 3x32x32 (CIFAR-sized): 32 -> 28 -> 14 -> 10 -> 5, so ip1 sees 50*5*5 features.
    m = LeNet5(num_classes=7, in_channels=3, input_size=32)
    assert m.ip1.in_features == 1250 and m(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert LeNet300(num_classes=4, in_channels=3, input_size=8)(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="input_size >= 16"):
        LeNet5(input_size=12)
    for name in ("lenet5", "lenet300"):
        assert REFERENCE_MODELS[name].input_shape == (1, 1, 28, 28)
        assert build_reference(name)(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def _digits_8x8_subset():
    x, y = digits_images(size=8)
    return x[:600], y[:600], x[600:900], y[600:900]


def _train_once():
    x_train, y_train, x_val, y_val = _digits_8x8_subset()
    torch.manual_seed(3)
    model = LeNet300(input_size=8)
    lines: list[str] = []
    history = train_classifier(
        model, x_train, y_train, epochs=6, lr=3e-3, seed=5, x_val=x_val, y_val=y_val, log=lines.append
    )
    return model, history, lines


def test_train_classifier_learns_and_is_deterministic():
    model_a, hist_a, lines = _train_once()
    model_b, hist_b, _ = _train_once()
    assert len(hist_a["train_loss"]) == len(hist_a["val_accuracy"]) == 6 and len(lines) == 6
    assert hist_a["train_loss"][-1] < hist_a["train_loss"][0] / 5
    assert hist_a["val_accuracy"][-1] > 0.8  # chance is 0.1; 0.86 at the time of writing
    assert hist_a["val_accuracy"][-1] == evaluate_accuracy(model_a, *_digits_8x8_subset()[2:])
    assert not model_a.training  # left in eval mode
    # Same seed, same start -> identical weights and history.
    assert hist_a["train_loss"] == hist_b["train_loss"] and hist_a["val_accuracy"] == hist_b["val_accuracy"]
    for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(pa, pb), name
    # Training leaves the global RNG where it was.
    state = torch.get_rng_state()
    x_train, y_train, _, _ = _digits_8x8_subset()
    train_classifier(model_b, x_train[:64], y_train[:64], epochs=1, lr=1e-3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_train_classifier_sgd_and_bad_inputs():
    x_train, y_train, x_val, y_val = _digits_8x8_subset()
    torch.manual_seed(3)
    model = LeNet300(input_size=8)
    history = train_classifier(model, x_train, y_train, epochs=6, lr=0.1, seed=5, optimizer="sgd")
    assert history["val_accuracy"] == [] and evaluate_accuracy(model, x_val, y_val) > 0.75  # 0.86
    with pytest.raises(DataError, match=r"\(600, 1, 8, 8\).*\(599,\)"):
        train_classifier(model, x_train, y_train[:-1], epochs=1, lr=1e-3, seed=0)
    with pytest.raises(DataError, match="integer class indices"):
        evaluate_accuracy(model, x_val, y_val.float())
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(model, x_train, y_train, epochs=1, lr=1e-3, seed=0, optimizer="rmsprop")


def _digits_test_split_recomputed():
    """The example's test split, rebuilt here from its documented recipe (not via digits_split)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    test = np.sort(np.random.default_rng(0).permutation(len(x))[-359:])  # the pipeline's validation split
    return x[test], torch.from_numpy(digits.target[test]).long()


def test_committed_example_model():
    proto = onnx.load(str(EXAMPLE))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in METADATA.items():
        assert props[key] == value, key
    assert props["onnx_compressor.default_preprocess"] == ""
    assert "scikit-learn digits" in props[DESCRIPTION_KEY]
    stored = float(props["onnx_compressor.example_accuracy"])
    assert stored >= 0.95

    module = load_onnx(EXAMPLE)
    assert module.input_names == ["input"] and module.output_names == ["logits"]
    assert list(module.weights) == ["conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"]
    x_test, y_test = _digits_test_split_recomputed()
    _, _, x_split, y_split = digits_split(0)
    assert torch.equal(x_test, x_split) and torch.equal(y_test, y_split)
    assert x_test.min() >= 0 and x_test.max() <= 1
    assert abs(evaluate_accuracy(module, x_test, y_test) - stored) < 1e-4
    assert abs(onnx_accuracy(EXAMPLE, x_test, y_test) - stored) < 1e-4


def test_example_cli_is_deterministic(tmp_path, capsys):
    # One epoch keeps this quick; the committed file uses the default 20.
    a, b = tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx"
    assert examples_main(["--out", str(a), "--epochs", "1", "-q"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert examples_main(["--out", str(b), "--epochs", "1", "-q"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in a.parent.iterdir()] == ["m.onnx"]  # no staging leftovers
    props = {p.key: p.value for p in onnx.load(str(a)).metadata_props}
    assert "--epochs 1" in props[DESCRIPTION_KEY] and float(props["onnx_compressor.example_accuracy"]) > 0.5
