"""`digits`: scikit-learn's bundled handwritten digits (1,797 images, 8x8, values 0..16, 10 classes).

Shipped inside the scikit-learn package, so it needs no download: the data set for smoke tests
and examples on any machine.
"""

from __future__ import annotations

import numpy as np
import torch

from ..dataset import in_memory_image_source
from ..preprocess import ImageTransform
from ..split import limited_indices
from ..validation import check_labels


def digits_source(transform: ImageTransform, *, num_classes: int | None, limit: int | None, seed: int, detail: str = ""):
    from sklearn.datasets import load_digits  # imported here: scikit-learn takes ~1 s to import

    digits = load_digits()
    keep = limited_indices(len(digits.images), limit, seed)
    images = torch.from_numpy(digits.images[keep].astype(np.float32) / 16.0).unsqueeze(1)
    labels = check_labels(digits.target, len(digits.images), num_classes, "digits labels")[keep]
    return in_memory_image_source("digits", images, transform, labels, 10, total=len(digits.images), detail=detail)
