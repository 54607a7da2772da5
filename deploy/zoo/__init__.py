"""The model zoo: the dense models that tests, benchmarks and the embedded example compress.

Not part of the tool: it imports from `compressor`, never the other way round.

- `models`: reference networks written from scratch (ResNet, YOLO- and UFLD-style, LeNets, a small
  MNIST ResNet), with deterministic weights (`build_reference`).
- `export`: a network to ONNX with a dynamic batch (`python -m deploy.zoo.export`).
- `training`: plain dense supervised training of a classifier.
- `examples`: the embedded example, examples/lenet5_digits.onnx (`python -m deploy.zoo.examples`).
- `mnist`: the shared MNIST-5k file (outside the checkout) and its fixed train/test split.
"""
