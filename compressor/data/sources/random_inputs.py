"""Random inputs for data-free runs: seeded samples, unlabelled (as onnx_import.inputs.random_inputs:
uniform [0, 1) for image-like inputs, standard normal for other float inputs, zeros for integers)."""

from __future__ import annotations

import torch

from ...onnx_import.inputs import is_image_shape


class RandomSource:
    """Sample i is drawn from its own seed, so it is the same however the data set is sliced,
    and nothing is held in memory."""

    name = "random inputs"
    labels = None
    num_classes = None
    detail = ""

    def __init__(self, sample_shape: tuple[int, ...], count: int, dtype: torch.dtype, seed: int):
        self.sample_shape, self.total, self.dtype, self.seed = sample_shape, count, dtype, seed

    def __len__(self) -> int:
        return self.total

    def sample(self, index: int) -> torch.Tensor:
        if not self.dtype.is_floating_point:
            return torch.zeros(self.sample_shape, dtype=self.dtype)  # as onnx_import.inputs.random_inputs
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % 2**63)
        if is_image_shape((1, *self.sample_shape)):
            return torch.rand(self.sample_shape, generator=generator).to(self.dtype)
        return torch.randn(self.sample_shape, generator=generator).to(self.dtype)
