"""Damaged models never end in a traceback: every command answers one line and exit code 2
(or works, when the damage left a valid model), and never touches its input.

Variants of real models: truncated files, bytes flipped at seeded positions, and declared input
shapes mangled (wrong rank, wrong channels, zero-sized). The models are the project's example
and third-party files from the corpus (tests/corpus), where it is available.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from cli import main

ROOT = Path(__file__).resolve().parents[1]
FUZZ_SEEDS = (0, 1)


def _corpus_models() -> list[Path]:
    from corpus_models import available_models

    return [path for _, path in available_models(max_bytes=4_000_000)]


def _sources() -> list[Path]:
    return [ROOT / "examples" / "lenet5_digits.onnx", *_corpus_models()]


def _truncated(data: bytes, seed: int) -> bytes:
    cut = [len(data) // 2, len(data) // 7][seed % 2]
    return data[:cut]


def _bit_flipped(data: bytes, seed: int) -> bytes:
    """Even seeds: two flips in the first KiB (graph structure, names, types). Odd seeds: the top
    exponent bit of 8 float-aligned bytes in the second half (weights turn huge, inf or NaN)."""
    rng = np.random.default_rng(seed)
    raw = bytearray(data)
    if seed % 2 == 0:
        for position in rng.integers(0, min(len(raw), 1024), 2):
            raw[int(position)] ^= 1 << int(rng.integers(0, 8))
    else:
        for position in rng.integers(len(raw) // 2, len(raw), 8):
            raw[int(position) | 3] ^= 0x40  # little-endian float32: byte 3 holds sign and exponent
    return bytes(raw)


def _shape_mangled(data: bytes, seed: int) -> bytes:
    model = onnx.load_from_string(data)
    initializers = {t.name for t in model.graph.initializer}
    value = next(v for v in model.graph.input if v.name not in initializers)
    dims = value.type.tensor_type.shape.dim
    if seed % 2 == 0:  # wrong rank
        dims.add().dim_value = 5
    elif len(dims) > 1:  # wrong channel count, or zero-sized
        dims[1].Clear()
        dims[1].dim_value = 0 if len(dims) == 2 else 7
    return model.SerializeToString()


VARIANTS = {"truncated": _truncated, "bitflip": _bit_flipped, "shape": _shape_mangled}


def _one_line_or_success(result, what: str) -> None:
    assert "Traceback" not in (result.stderr + result.stdout), what
    assert result.exit_code in (0, 2), f"{what}: exit {result.exit_code}: {result.stderr[-500:]}"
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {result.stderr!r}"


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_damaged_models_get_one_line_and_exit_2(tmp_path, variant):
    runner = CliRunner()
    refused = 0
    sources = _sources()
    for source in sources:
        for seed in FUZZ_SEEDS:
            damaged = tmp_path / f"{source.stem}-{variant}-{seed}.onnx"
            damaged.write_bytes(VARIANTS[variant](source.read_bytes(), seed))
            digest = hashlib.sha256(damaged.read_bytes()).hexdigest()
            for command in (["inspect", str(damaged)], ["check", str(damaged)],
                            [str(damaged), "--sparsity", "0.5", "--latency-runs", "5", "-q", "-o", str(tmp_path / "out")]):
                result = runner.invoke(main, command)
                _one_line_or_success(result, f"{' '.join(command[:1])} on {damaged.name}")
                refused += result.exit_code == 2
            assert hashlib.sha256(damaged.read_bytes()).hexdigest() == digest  # the input is never modified
    if variant in ("truncated", "shape"):  # these never leave a model that runs as declared
        assert refused >= 2 * len(sources) * len(FUZZ_SEEDS)
