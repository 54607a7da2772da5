"""onnx-compressor: prune ONNX vision models and write them back to ONNX.

    from compressor import compress
    report = compress("model.onnx", method="magnitude", sparsity=0.9, data="digits", epochs=5)

mirrors `compress model.onnx --method magnitude --sparsity 0.9 --data digits --epochs 5`.
"""


def compress(model, log=print, **options) -> dict:
    """Run the compression pipeline (see compressor.pipeline.CompressOptions for the options)."""
    from .pipeline import compress as run_pipeline  # imported on use: keeps `import compressor` light

    return run_pipeline(model, log=log, **options)


__all__ = ["compress"]
