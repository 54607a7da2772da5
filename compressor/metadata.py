"""The prefix of the metadata_props this tool writes into ONNX files and reads back."""

METADATA_PREFIX = "onnx_compressor."
