"""Inference runtimes: what runs an exported ONNX file, for the export check, the example's
accuracy check and latency. A runtime other than onnxruntime on the CPU is one more registered
module.

    runtime = get_runtime("onnxruntime-cpu")
    session = runtime.open("model.onnx")        # a path, serialised bytes or an onnx.ModelProto
    outputs = session.run({"x": x})             # numpy arrays, in the graph's output order
    runtime.describe()                          # device, library versions, threads
"""

from .base import RUNTIMES, ModelSource, Runtime, RuntimeSession, get_runtime

__all__ = ["RUNTIMES", "ModelSource", "Runtime", "RuntimeSession", "get_runtime"]
