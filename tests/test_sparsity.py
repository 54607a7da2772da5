"""Sparsity patterns as projections: exact counts, tie-breaking, axes, optimality, registry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from compressor.errors import ConfigError
from compressor.onnx_import.weights import WeightInfo
from compressor.sparsity import (
    NM,
    Channel,
    Column,
    Filter,
    Unstructured,
    align_count,
    check_nm,
    get_pattern,
    global_masks,
    keep_count,
    parse_pattern,
    top_k_mask,
)


def conv_info(shape, groups=1, name="w"):
    return WeightInfo(name, "Conv", name + "_node", tuple(shape), "OIHW", 1, 0, groups)


def gemm_info(shape, trans_b, name="w"):
    # Gemm transB=1: B is [N, K], sums over axis 1; transB=0: B is [K, N], sums over axis 0
    return WeightInfo(name, "Gemm", name + "_node", tuple(shape), "NK" if trans_b else "KN", 1 if trans_b else 0, 0 if trans_b else 1)


def matmul_info(shape, name="w"):
    return WeightInfo(name, "MatMul", name + "_node", tuple(shape), "KN", len(shape) - 2, len(shape) - 1)


# ---- counting rules ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, p, keep",
    [(10, 0.0, 10), (10, 0.5, 5), (10, 0.9, 1), (10, 0.25, 8), (10, 0.35, 6), (7, 0.5, 3), (3, 0.9, 0), (1000, 0.999, 1)],
)
def test_keep_count_is_n_minus_rounded_pruned(n, p, keep):
    assert keep_count(n, p) == keep


@pytest.mark.parametrize(
    "k, n, align, expected",
    [
        (10, 20, 8, 8),  # 8 is nearer than 16
        (12, 20, 8, 16),  # tie: keep more
        (11, 12, 8, 12),  # n itself is always a candidate
        (3, 64, 8, 8),  # never below align
        (0, 64, 8, 8),
        (5, 6, 8, 6),  # fewer groups than align: keep all
        (0, 5, 1, 1),  # without alignment, still at least one group
        (64, 64, 8, 64),
    ],
)
def test_align_count(k, n, align, expected):
    assert align_count(k, n, align) == expected


def test_top_k_mask_equals_stable_sort_with_many_ties():
    gen = torch.Generator().manual_seed(0)
    for trial in range(50):
        n = int(torch.randint(1, 60, (1,), generator=gen))
        scores = torch.randint(0, 4, (n,), generator=gen).float()  # heavy ties
        for k in (0, 1, n // 3, n - 1, n):
            expected = torch.zeros(n, dtype=torch.bool)
            expected[torch.sort(-scores, stable=True).indices[:k]] = True
            assert torch.equal(top_k_mask(scores, k), expected), (trial, k)


# ---- exact keep counts ----------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.75, 0.9, 0.99])
def test_unstructured_keeps_exact_count_and_largest(p):
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(1))
    projected, mask = Unstructured().project(w, conv_info(w.shape), p)
    assert int(mask.sum()) == keep_count(w.numel(), p)
    assert mask.dtype == torch.bool and mask.shape == w.shape
    assert torch.equal(projected, torch.where(mask, w, torch.zeros(())))
    if 0 < mask.sum() < w.numel():
        assert w.abs()[mask].min() >= w.abs()[~mask].max()


@pytest.mark.parametrize(
    "pattern, axis_of, p",
    [(Filter(), "output", 0.5), (Filter(), "output", 0.3), (Channel(), "reduction", 0.5), (Channel(), "reduction", 0.75)],
)
def test_group_patterns_keep_exact_whole_slices(pattern, axis_of, p):
    w = torch.randn(12, 8, 3, 3, generator=torch.Generator().manual_seed(2))
    info = conv_info(w.shape)
    axis = info.output_axis if axis_of == "output" else info.reduction_axis
    mask = pattern.mask(w, info, p)
    per_slice = mask.movedim(axis, 0).reshape(w.shape[axis], -1)
    whole = per_slice.all(dim=1) | ~per_slice.any(dim=1)
    assert bool(whole.all()), "slices must be kept or pruned whole"
    kept = per_slice.all(dim=1)
    assert int(kept.sum()) == keep_count(w.shape[axis], p)
    norms = w.movedim(axis, 0).reshape(w.shape[axis], -1).norm(dim=1)
    assert norms[kept].min() >= norms[~kept].max()


def test_column_pattern_keeps_columns_of_the_out_by_rest_view():
    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    mask = Column().mask(w, conv_info(w.shape), 0.75)
    view = mask.reshape(6, -1)
    assert bool((view.all(dim=0) | ~view.any(dim=0)).all())
    kept = view.all(dim=0)
    assert int(kept.sum()) == keep_count(36, 0.75) == 9
    norms = w.reshape(6, -1).norm(dim=0)
    assert norms[kept].min() >= norms[~kept].max()


def test_filter_align_rounds_kept_filters():
    w = torch.randn(20, 8, 1, 1, generator=torch.Generator().manual_seed(4))
    mask = Filter(align=8).mask(w, conv_info(w.shape), 0.5)  # 10 -> 8
    assert int(mask.reshape(20, -1).all(dim=1).sum()) == 8
    assert Filter(align=8).density(0.5, conv_info(w.shape)) == pytest.approx(8 / 20)
    w = torch.randn(12, 8, 1, 1)
    mask = Filter(align=8).mask(w, conv_info(w.shape), 0.1)  # 11 -> 12 (n itself)
    assert bool(mask.all())


# ---- tie-breaking: lower flat index first ----------------------------------------------------
def test_unstructured_ties_keep_lower_flat_indices():
    w = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 0.5]])
    mask = Unstructured().mask(w, gemm_info(w.shape, trans_b=1), 0.5)
    assert mask.tolist() == [[True, True, True], [False, False, False]]


def test_nm_ties_keep_lower_indices_in_block():
    w = torch.ones(1, 8)
    w[0, 4] = -1.0  # |-1| ties with 1: position decides
    w[0, 6] = 2.0
    mask = NM().mask(w, gemm_info(w.shape, trans_b=1), 0.0)
    assert mask.tolist() == [[True, True, False, False, True, False, True, False]]


def test_group_ties_keep_lower_indices():
    w = torch.ones(4, 4)
    mask = Filter().mask(w, gemm_info(w.shape, trans_b=1), 0.5)
    assert mask.all(dim=1).tolist() == [True, True, False, False]
    mask = Channel().mask(w, gemm_info(w.shape, trans_b=1), 0.5)
    assert mask.all(dim=0).tolist() == [True, True, False, False]


# ---- N:M along the reduction axis ------------------------------------------------------------
def reference_nm(w: np.ndarray, axis: int, n: int, m: int) -> np.ndarray:
    """Loop reference: for every line along `axis`, keep the n largest |w| of each m-block."""
    mask = np.zeros(w.shape, dtype=bool)
    other = [range(s) for i, s in enumerate(w.shape) if i != axis]
    for idx in itertools.product(*other):
        for start in range(0, w.shape[axis], m):
            cells = []
            for j in range(start, start + m):
                full = list(idx)
                full.insert(axis, j)
                cells.append(tuple(full))
            order = sorted(range(m), key=lambda t: (-abs(w[cells[t]]), t))
            for t in order[:n]:
                mask[cells[t]] = True
    return mask


@pytest.mark.parametrize(
    "info",
    [
        conv_info((4, 8, 3, 3)),  # blocks along C for each (k, kh, kw)
        gemm_info((6, 8), trans_b=1),  # [N, K]: axis 1
        gemm_info((8, 6), trans_b=0),  # [K, N]: axis 0
        matmul_info((8, 6)),  # [in, out]: axis 0
        matmul_info((2, 8, 3)),  # batched constant right operand: axis -2
    ],
    ids=["conv", "gemm-transB1", "gemm-transB0", "matmul", "matmul-batched"],
)
@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 8)])
def test_nm_blocks_run_along_reduction_axis(info, n, m):
    w = torch.randn(info.shape, generator=torch.Generator().manual_seed(5))
    pattern = NM(n, m)
    projected, mask = pattern.project(w, info, 0.9)  # the requested sparsity is ignored
    assert np.array_equal(mask.numpy(), reference_nm(w.numpy(), info.reduction_axis, n, m))
    assert check_nm(projected, info, n, m) == 0
    assert int(mask.sum()) == w.numel() * n // m
    assert pattern.density(0.9, info) == n / m


def test_nm_axis_matters_for_gemm_layouts():
    # columns of a [K=4, N=2] weight: [1,2,3,4] and [8,7,6,5] -> keep 3,4 and 8,7
    w = torch.tensor([[1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [4.0, 5.0]])
    mask = NM().mask(w, gemm_info(w.shape, trans_b=0), 0.0)
    assert mask.tolist() == [[False, True], [False, True], [True, False], [True, False]]
    mask = NM().mask(w.t().contiguous(), gemm_info((2, 4), trans_b=1), 0.0)
    assert mask.t().tolist() == [[False, True], [False, True], [True, False], [True, False]]


def test_check_nm_counts_violating_blocks():
    info = conv_info((2, 8, 1, 1))
    w = torch.ones(2, 8, 1, 1)
    assert check_nm(w, info, 2, 4) == 4
    w[0, :2] = 0
    w[1, 4:7] = 0
    assert check_nm(w, info, 2, 4) == 2
    with pytest.raises(ValueError, match="not a multiple of 3"):
        check_nm(w, info, 1, 3)


def test_nm_eligibility_reasons():
    pattern = NM()
    assert pattern.eligible(conv_info((8, 3, 3, 3))) == "reduction size 3 is not a multiple of 4"
    assert pattern.eligible(conv_info((64, 2, 3, 3), groups=32)) == "grouped conv (groups=32): TensorRT never runs it sparse"
    assert pattern.eligible(conv_info((32, 1, 3, 3), groups=32)) == "depthwise conv (groups=32): TensorRT never runs it sparse"
    assert NM(allow_grouped=True).eligible(conv_info((64, 4, 3, 3), groups=16)) is None
    assert pattern.eligible(gemm_info((10, 256), trans_b=1)) is None
    assert pattern.eligible(gemm_info((10, 250), trans_b=1)) == "reduction size 250 is not a multiple of 4"
    narrow = NM(min_channels=256).eligible(conv_info((128, 512, 3, 3)))
    assert narrow == "narrow layer (512 in, 128 out, below 256): TensorRT would run it dense"
    assert NM(min_channels=256).eligible(conv_info((256, 256, 3, 3))) is None
    with pytest.raises(ConfigError, match="does not apply to 'w': reduction size 3"):
        pattern.project(torch.zeros(8, 3, 3, 3), conv_info((8, 3, 3, 3)), 0.5)


def test_channel_pattern_skips_grouped_convs():
    assert "grouped conv (groups=4)" in Channel().eligible(conv_info((16, 4, 3, 3), groups=4))
    assert Filter().eligible(conv_info((16, 4, 3, 3), groups=4)) is None


# ---- projections are Euclidean and idempotent ---------------------------------------------------
def _subset_masks(n, k) -> np.ndarray:
    """Every bool mask of length n with exactly k entries set, one per row."""
    combos = list(itertools.combinations(range(n), k))
    masks = np.zeros((len(combos), n), dtype=bool)
    for i, chosen in enumerate(combos):
        masks[i, list(chosen)] = True
    return masks


@pytest.mark.parametrize("seed", range(4))
def test_projections_are_euclidean_optimal_by_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 4, generator=gen)
    sq = w.numpy().astype(np.float64) ** 2
    info = gemm_info(w.shape, trans_b=1)  # [out=4, in=4]
    p = 0.5

    def ours(pattern):
        return float((sq * ~pattern.mask(w, info, p).numpy()).sum())

    # unstructured: every mask with the same keep-count
    best = (~_subset_masks(16, keep_count(16, p)) * sq.reshape(1, -1)).sum(axis=1).min()
    assert ours(Unstructured()) == pytest.approx(best)
    # filter (rows), channel and column (both columns here): every choice of whole slices
    two_of_four = _subset_masks(4, 2)
    rows = min(float((sq * ~m[:, None]).sum()) for m in two_of_four)
    cols = min(float((sq * ~m[None, :]).sum()) for m in two_of_four)
    assert ours(Filter()) == pytest.approx(rows)
    assert ours(Channel()) == pytest.approx(cols)
    assert ours(Column()) == pytest.approx(cols)
    # 2:4: every feasible mask, i.e. any 2 of each 4-block (here each row is one block)
    per_row = (~two_of_four[:, None, :] * sq[None, :, :]).sum(axis=2)  # [choice, row]
    nm_best = min(sum(per_row[c, r] for r, c in enumerate(choice)) for choice in itertools.product(range(6), repeat=4))
    assert ours(NM()) == pytest.approx(nm_best)


def test_structured_projections_on_a_conv_are_optimal_by_brute_force():
    w = torch.randn(3, 2, 2, 1, generator=torch.Generator().manual_seed(9))  # [K, C, kh, kw]
    sq = w.numpy().astype(np.float64) ** 2
    info = conv_info(w.shape)

    def best(masks, expand):
        return min(float((sq * ~expand(m)).sum()) for m in masks)

    def ours(pattern, p):
        return float((sq * ~pattern.mask(w, info, p).numpy()).sum())

    # filters: keep 3 - round(1.5) = 1 of 3; channels: 1 of 2; columns of [3, 4]: 2 of 4
    assert ours(Filter(), 0.5) == pytest.approx(best(_subset_masks(3, 1), lambda m: m[:, None, None, None]))
    assert ours(Channel(), 0.5) == pytest.approx(best(_subset_masks(2, 1), lambda m: m[None, :, None, None]))
    assert ours(Column(), 0.5) == pytest.approx(best(_subset_masks(4, 2), lambda m: m.reshape(1, 2, 2, 1)))


@pytest.mark.parametrize("spec", ["unstructured", "2:4", "filter", "input-channel", "column", "filter:8"])
def test_projection_is_idempotent(spec):
    pattern = parse_pattern(spec)
    w = torch.randn(16, 16, 3, 3, generator=torch.Generator().manual_seed(6))
    w[0, :5] = 0.0  # existing zeros must not disturb the fixed point
    info = conv_info(w.shape)
    once, mask1 = pattern.project(w, info, 0.6)
    twice, mask2 = pattern.project(once, info, 0.6)
    assert torch.equal(once, twice) and torch.equal(mask1, mask2)


def test_projection_keeps_dtype_device_and_has_no_grad():
    w = torch.nn.Parameter(torch.randn(8, 8).half())
    projected, mask = Unstructured().project(w, gemm_info(w.shape, 1), 0.5)
    assert projected.dtype == torch.float16 and not projected.requires_grad
    assert int(mask.sum()) == 32
    with pytest.raises(ValueError, match=r"shape \(8, 8\) but its WeightInfo says \(4, 4\)"):
        Unstructured().mask(w, gemm_info((4, 4), 1), 0.5)


def test_sparsity_out_of_range_is_a_config_error():
    w = torch.randn(4, 4)
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ConfigError):
            Unstructured().mask(w, gemm_info(w.shape, 1), bad)


# ---- global threshold -------------------------------------------------------------------------
def test_global_masks_exact_count_and_single_threshold():
    gen = torch.Generator().manual_seed(7)
    weights = {"a": torch.randn(30, 10, generator=gen), "b": torch.randn(5, 4, 3, 3, generator=gen) * 3, "c": torch.randn(7, generator=gen) * 0.1}
    masks = global_masks(weights, 0.8)
    total = sum(t.numel() for t in weights.values())
    assert sum(int(m.sum()) for m in masks.values()) == keep_count(total, 0.8)
    kept = torch.cat([weights[n].abs()[masks[n]] for n in weights])
    pruned = torch.cat([weights[n].abs()[~masks[n]] for n in weights])
    assert kept.min() >= pruned.max()
    assert masks["b"].float().mean() > masks["a"].float().mean()  # the larger layer keeps more


def test_global_masks_break_ties_by_layer_then_index():
    weights = {"first": torch.ones(3), "second": torch.ones(2, 2)}
    masks = global_masks(weights, 0.5)  # 7 entries, prune round(3.5)=4, keep 3
    assert masks["first"].tolist() == [True, True, True]
    assert not masks["second"].any()
    masks = global_masks({"second": torch.ones(2, 2), "first": torch.ones(3)}, 0.5)
    assert masks["second"].tolist() == [[True, True], [True, False]]


# ---- registry and grammar ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("unstructured", Unstructured()),
        ("irregular", Unstructured()),
        ("2:4", NM(2, 4)),
        ("1:4", NM(1, 4)),
        ("nm", NM(2, 4)),
        ("NM:1:4", NM(1, 4)),
        ("nm:n=1:m=8", NM(1, 8)),
        ("2:4:min_channels=256", NM(min_channels=256)),
        ("nm:allow_grouped=true", NM(allow_grouped=True)),
        ("filter", Filter()),
        ("filter:8", Filter(align=8)),
        ("filter:align=8", Filter(align=8)),
        ("input-channel:align=16", Channel(align=16)),
        ("column", Column()),
    ],
)
def test_parse_pattern(spec, expected):
    pattern = parse_pattern(spec)
    assert pattern == expected
    assert parse_pattern(str(pattern)) == pattern


def test_canonical_spec_strings():
    assert [str(parse_pattern(s)) for s in ("2:4", "nm:1:4", "filter", "filter:align=8", "unstructured", "2:4:min_channels=256")] == [
        "nm:2:4", "nm:1:4", "filter", "filter:8", "unstructured", "nm:2:4:min_channels=256",
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "bad sparsity pattern"),
        ("magic", "unknown sparsity pattern 'magic'"),
        ("4:4", "1 <= N < M"),
        ("2:", "bad sparsity pattern"),
        ("column:3", "takes no positional value"),
        ("nm:2:4:5", "takes no positional value"),
        ("filter:x", "must be an integer"),
        ("filter:align=0", "align must be an integer >= 1"),
        ("nm:q=1", "has no option 'q'"),
        ("nm:allow_grouped=maybe", "must be true or false"),
        ("filter:8:align=8", "given twice"),
    ],
)
def test_parse_pattern_errors_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_pattern(spec)
    assert "\n" not in str(err.value)


def test_get_pattern():
    assert get_pattern("nm", n=1, m=4) == NM(1, 4)
    assert get_pattern("filter", align=8) == Filter(8)
    with pytest.raises(ConfigError, match="no option 'align'"):
        get_pattern("column", align=8)
    with pytest.raises(ConfigError, match="unknown sparsity pattern"):
        get_pattern("blocks")
