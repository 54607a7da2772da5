"""Seeded sample selection: `--limit` subsets and the train/validation split.

Both use numpy's PCG64 stream so that a seed selects the same samples on every platform and
torch version.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError


def limited_indices(num_samples: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices kept by `limit`: the first `limit` after a seeded shuffle, in file order.

    Shuffling first means a limit on a class-sorted file still covers every class.
    """
    if limit is None or limit >= num_samples:
        return np.arange(num_samples)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ConfigError(f"the sample limit must be a positive integer, got {limit!r}")
    chosen = np.random.default_rng(seed).permutation(num_samples)[:limit]
    return np.sort(chosen)


def split_indices(num_samples: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) index lists, each sorted: a seeded shuffle, then the last share goes to val.

    The validation part has round(n * val_fraction) samples, at least one when val_fraction > 0;
    a split that leaves either part empty is an error.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(num_samples)
    if val_fraction == 0.0:
        return sorted(order.tolist()), []
    num_val = max(1, int(round(num_samples * val_fraction)))
    if num_val >= num_samples:
        raise DataError(
            f"a validation fraction of {val_fraction} of {num_samples} sample(s) leaves no training samples; "
            "use more data or a smaller fraction"
        )
    return sorted(order[: num_samples - num_val].tolist()), sorted(order[num_samples - num_val :].tolist())
