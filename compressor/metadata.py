"""Our entries in an ONNX model's `metadata_props`: keys under `onnx_compressor.`.

The exporter records provenance there (tool version, source file and digest, method); an example
model names its default data there, which `compress` reads when no --data is given.
"""

from __future__ import annotations

from onnx import ModelProto

METADATA_PREFIX = "onnx_compressor."


def set_metadata(model: ModelProto, entries: dict[str, object]) -> None:
    """Write `entries` (keys without the prefix) into `model`, replacing earlier entries of those names."""
    keep = [p for p in model.metadata_props if p.key.removeprefix(METADATA_PREFIX) not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in entries.items():
        model.metadata_props.add(key=METADATA_PREFIX + key, value=str(value))
