"""`compressor.files`: atomic writes, report JSON, and a model file's size and digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.files import file_bytes, sha256_file, write_atomic, write_json_atomic, write_text_atomic


def test_atomic_writes_replace_the_file_and_leave_nothing_else(tmp_path):
    target = tmp_path / "sub" / "report.md"
    write_text_atomic(target, "old")
    assert write_atomic(target, b"new") == target and target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]


def test_json_holds_numpy_torch_and_paths(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.int64(3), "c": torch.tensor([1, 2]),
                                                   "d": Path("x/y")})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": 3, "c": [1, 2], "d": "x/y"}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json_atomic(tmp_path / "bad.json", {"a": object()})
    assert not (tmp_path / "bad.json").exists()


def test_digest_and_size_count_the_external_data_file(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x" * 3000)
    assert sha256_file(model) == hashlib.sha256(b"x" * 3000).hexdigest()
    assert file_bytes(model) == 3000
    (tmp_path / "m.onnx.data").write_bytes(b"y" * 20)
    assert file_bytes(model) == 3020
