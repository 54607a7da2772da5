"""User-facing errors.

Anything the user can fix (a bad file, an unsupported operator, wrong data) raises a subclass of
`CompressorError`. The CLI prints its message as one line and exits with code 2; every other
exception is a bug in this project: the CLI names it as such, also in one line (COMPRESS_DEBUG=1
shows its traceback).
"""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): error messages are one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CompressorError(Exception):
    """An error caused by the user's input, reported as one line."""

    exit_code = 2


class ModelLoadError(CompressorError):
    """The model file is missing, unreadable, or not an ONNX model."""


class UnsupportedModelError(CompressorError):
    """The model uses operators (or opset versions) the importer does not implement."""


class ExportError(CompressorError):
    """The exported model could not be written or failed its checks."""


class DataError(CompressorError):
    """The data given for training or evaluation is missing, malformed or does not fit the model."""


class ConfigError(CompressorError):
    """Options that contradict each other or the model (bad sparsity, unknown method, ...)."""


class InferenceError(CompressorError):
    """An inference runtime refused to load or run a model; the message is its cause, on one line."""


class MissingToolError(CompressorError):
    """An optional package or program the command needs is not installed; the message names which."""


class EngineError(CompressorError):
    """An inference engine could not be built with the settings asked for (TensorRT refused, or they contradict)."""
