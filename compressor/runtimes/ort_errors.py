"""onnxruntime's exception text, made into one line that keeps the cause.

onnxruntime raises messages such as
    [ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x for the following indices
     index: 0 Got: 8 Expected: 1
     Please fix either the inputs or the model.
where the first line alone does not say what was wrong.
"""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*")
_BAD_DIMS = re.compile(r"^Got invalid dimensions for input: (\S+) for the following indices$")
_BAD_INDEX = re.compile(r"^index: (\d+) Got: (\d+) Expected: (\d+)$")
# advice that ends many messages and says nothing about the cause
_BOILERPLATE = re.compile(r"^Please fix either the .* or the model\.$")
MAX_CHARS = 500


def ort_error_message(exc: BaseException | str) -> str:
    """One line for an onnxruntime exception: the status prefix dropped, every line of the
    cause kept (joined with '; '), e.g.
    'onnxruntime: invalid dimensions for input x: index 0 got 8, expected 1'."""
    text = str(exc).strip()
    if not text:
        return f"onnxruntime: {type(exc).__name__}" if isinstance(exc, BaseException) else "onnxruntime: unknown error"
    match = _PREFIX.match(text)
    code = match.group(1) if match else None
    if match:
        text = text[match.end():]
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not _BOILERPLATE.match(line)]
    if not lines:
        return f"onnxruntime: {code or 'unknown error'}"
    head = _BAD_DIMS.match(lines[0])
    indices = [_BAD_INDEX.match(line) for line in lines[1:]]
    if head and indices and all(indices):
        body = f"invalid dimensions for input {head.group(1)}: " + "; ".join(
            f"index {m.group(1)} got {m.group(2)}, expected {m.group(3)}" for m in indices
        )
    else:
        body = "; ".join(lines)
        if code and code != "FAIL":  # FAIL says nothing; NOT_IMPLEMENTED, INVALID_GRAPH, ... do
            body = f"{code}: {body}"
    line = f"onnxruntime: {body}"
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 3] + "..."
