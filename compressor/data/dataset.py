"""`LoadedDataset`: what every `--data` spec loads into, plus the in-memory sample sources.

A source holds the samples of one spec (after `--limit`); a `LoadedDataset` is a view on some
of them, so `subset` (the train/validation split) shares the source instead of copying it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

# In-memory image sources precompute all model inputs when they fit this budget; beyond it
# (e.g. 1,797 digits upscaled to 3x224x224 = 1 GiB) each sample is transformed when read.
PRECOMPUTE_BUDGET_BYTES = 256 * 2**20


class SampleSource(Protocol):
    name: str  # the spec as the user gave it, e.g. "mnist-csv:data/mnist.csv.gz"
    total: int  # samples the spec holds before `--limit`
    labels: np.ndarray | None  # int64 [len], or None when unlabelled
    num_classes: int | None  # classes in the data (class folders, max label + 1), or None
    detail: str  # extra words for the description (e.g. preprocessing), may be ""
    # A task's own reader may instead offer `target(index) -> dict[str, Tensor]`: structured labels
    # (row-anchor classes, padded boxes) of fixed shapes, so that batches collate.

    def __len__(self) -> int: ...

    def sample(self, index: int) -> torch.Tensor: ...


class LoadedDataset(Dataset):
    """Model-ready samples: `ds[i]` is `(x,)` or `(x, y)` with `y` an int64 scalar tensor."""

    def __init__(self, source: SampleSource, indices: Sequence[int] | np.ndarray | None = None):
        self.source = source
        self._indices = np.arange(len(source)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)

    @property
    def labelled(self) -> bool:
        return self.source.labels is not None or hasattr(self.source, "target")

    @property
    def num_classes(self) -> int | None:
        return self.source.num_classes

    @property
    def labels(self) -> torch.Tensor | None:
        """All labels of this view as int64 [len], or None (also for a task's structured targets)."""
        if getattr(self.source, "labels", None) is None:
            return None
        return torch.from_numpy(self.source.labels[self._indices])

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int):
        index = int(self._indices[i])
        x = self.source.sample(index)
        if hasattr(self.source, "target"):
            return (x, self.source.target(index))
        if self.source.labels is None:
            return (x,)
        return (x, torch.tensor(self.source.labels[index], dtype=torch.int64))

    def subset(self, indices: Sequence[int]) -> LoadedDataset:
        """The samples at `indices` of this dataset (not of the source)."""
        return LoadedDataset(self.source, self._indices[np.asarray(indices, dtype=np.int64)])

    @property
    def description(self) -> str:
        """One line for the report, e.g. 'digits, 1797 samples, labelled, 10 classes'."""
        count = f"{len(self)} samples" if len(self) == self.source.total else f"{len(self)} of {self.source.total} samples"
        parts = [self.source.name, count, "labelled" if self.labelled else "unlabelled"]
        if self.num_classes is not None:
            parts.append(f"{self.num_classes} classes")
        if self.source.detail:
            parts.append(self.source.detail)
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"LoadedDataset({self.description})"


def stack_inputs(samples: Iterable) -> list[torch.Tensor]:
    """Samples (each a tensor, or a tuple with one tensor per model input) as one batch: a list
    with one stacked tensor per model input, ready for `module(*batch)`."""
    from torch.utils.data import default_collate

    stacked = default_collate(list(samples))
    return list(stacked) if isinstance(stacked, (list, tuple)) else [stacked]


def example_batch(data, batch: int) -> list[torch.Tensor]:
    """The first `batch` inputs of `data` (repeated when it holds fewer), stacked per model input."""
    return stack_inputs(data[i % len(data)][0] for i in range(batch))


class TensorSource:
    """Samples already in model form, held in one tensor."""

    def __init__(self, name: str, x: torch.Tensor, labels: np.ndarray | None, num_classes: int | None, total: int, detail: str = ""):
        self.name, self.x, self.labels, self.num_classes, self.total, self.detail = name, x, labels, num_classes, total, detail

    def __len__(self) -> int:
        return len(self.x)

    def sample(self, index: int) -> torch.Tensor:
        return self.x[index]


class ZipSource:
    """Samples of a multi-input model: sample i is the tuple of every part's sample i."""

    def __init__(self, name: str, parts: Sequence, labels: np.ndarray | None, num_classes: int | None, total: int,
                 detail: str = ""):
        self.name, self.parts, self.labels, self.num_classes, self.total, self.detail = name, list(parts), labels, num_classes, total, detail

    def __len__(self) -> int:
        return len(self.parts[0])

    def sample(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(part.sample(index) for part in self.parts)


class LazyImageSource:
    """Raw images [N, C, h, w] in [0, 1], transformed one at a time when read."""

    def __init__(self, name: str, images: torch.Tensor, transform: Callable, labels: np.ndarray | None,
                 num_classes: int | None, total: int, detail: str = ""):
        self.name, self.images, self.transform = name, images, transform
        self.labels, self.num_classes, self.total, self.detail = labels, num_classes, total, detail

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index : index + 1])[0]


def in_memory_image_source(name: str, images: torch.Tensor, transform, labels: np.ndarray | None,
                           num_classes: int | None, total: int, detail: str = "") -> TensorSource | LazyImageSource:
    """Precomputed when the model inputs fit `PRECOMPUTE_BUDGET_BYTES`, lazy otherwise."""
    sample_numel = int(np.prod(transform.layout.sample_shape))
    itemsize = torch.empty((), dtype=transform.dtype).element_size()
    if len(images) * sample_numel * itemsize > PRECOMPUTE_BUDGET_BYTES:
        return LazyImageSource(name, images, transform, labels, num_classes, total, detail)
    chunks = [transform(images[i : i + 512]) for i in range(0, len(images), 512)]
    x = torch.cat(chunks) if chunks else torch.empty((0, *transform.layout.sample_shape), dtype=transform.dtype)
    return TensorSource(name, x, labels, num_classes, total, detail)
