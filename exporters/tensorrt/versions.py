"""TensorRT versions: from the Python package's `__version__` or from trtexec's banner.

The major version picks the API generation (deploy.md §1): 10.x builds weakly typed networks with
precision flags, 11.x only strongly typed ones whose precision comes from the ONNX types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from compressor.errors import EngineError

SUPPORTED_MAJORS = (10, 11)


@dataclass(frozen=True, order=True)
class TrtVersion:
    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def strongly_typed_only(self) -> bool:
        """11.x removed weak typing and its precision flags; later majors are assumed to keep it so."""
        return self.major >= 11


def parse_version(text: str) -> TrtVersion:
    """'10.3.0', '10.3.0.26' or '11.4.1.post1' (the package's __version__) -> TrtVersion."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise EngineError(f"cannot read a TensorRT version from {text!r}")
    return TrtVersion(int(match[1]), int(match[2]), int(match[3] or 0))


# trtexec prints "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec ..." on every start;
# 8.x packed the version as 8601 (8.6.1), 10.x and later as 100300 (10.3.0).
_BANNER = re.compile(r"\[TensorRT v(\d+)\]")
# ... and, since 8.x, a line "[I] TensorRT version: 10.3.0" once it has loaded the library.
_VERSION_LINE = re.compile(r"TensorRT version:\s*(\d+\.\d+(?:\.\d+)?)")


def version_from_trtexec(output: str) -> TrtVersion:
    line = _VERSION_LINE.search(output)
    if line:
        return parse_version(line[1])
    banner = _BANNER.search(output)
    if not banner:
        raise EngineError("trtexec printed no TensorRT version (no '[TensorRT vNNNNNN]' banner)")
    packed = int(banner[1])
    if packed >= 100000:
        return TrtVersion(packed // 10000, packed // 100 % 100, packed % 100)
    return TrtVersion(packed // 1000, packed // 100 % 10, packed % 100)


def check_supported(version: TrtVersion) -> None:
    if version.major < SUPPORTED_MAJORS[0]:
        raise EngineError(f"TensorRT {version} is too old: engines are built with TensorRT 10 or 11")
