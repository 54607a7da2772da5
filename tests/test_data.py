"""`compressor.data`: every `--data` source, preprocessing, seeded selection, and each user error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from compressor.data import DATA_SPEC_HELP, Preprocess, load_dataset, parse_preprocess, random_dataset, split_indices
from compressor.errors import ConfigError, DataError
from deploy.zoo.mnist import load_mnist_split, mnist_path

MNIST_5K = mnist_path()


# ---------------------------------------------------------------- helpers


def write_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def write_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def solid(rgb: tuple[int, int, int], height: int = 10, width: int = 12) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, dtype=np.uint8), (height, width, 3)).copy()


def image_folder(root: Path) -> Path:
    """cat/ (2 red images, one nested), dog/ (1 blue image), plus files the scan must ignore."""
    write_image(root / "cat" / "a.png", solid((200, 10, 20)))
    write_image(root / "cat" / "sub" / "b.png", solid((200, 10, 20)))
    write_image(root / "dog" / "c.png", solid((0, 50, 250)))
    (root / "dog" / "notes.txt").write_text("not an image")
    write_image(root / "dog" / ".hidden.png", solid((1, 1, 1)))
    return root


def mnist_rows(count: int, labels=None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(count, 784))
    labels = np.arange(count) % 10 if labels is None else np.asarray(labels)
    return pixels, labels


def write_csv(path: Path, pixels: np.ndarray, labels: np.ndarray, *, gz: bool = True, header: str | None = None,
              label_first: bool = False) -> str:
    rows = [header] if header else []
    for p, y in zip(pixels, labels):
        values = [y, *p] if label_first else [*p, y]
        rows.append(",".join(str(int(v)) for v in values))
    text = "\n".join(rows) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return f"mnist-csv:{path}"


@pytest.fixture(scope="module")
def sk_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.from_numpy(digits.images.astype(np.float32) / 16).unsqueeze(1), digits.target


# ---------------------------------------------------------------- npz


def test_npz_labelled(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 1, 4, 4))  # float64 on disk: cast to the model's dtype
    y = np.array([0, 1, 2, 0, 1, 2])
    ds = load_dataset(write_npz(tmp_path / "d.npz", x=x, y=y), input_shape=[1, 1, 4, 4], num_classes=3)
    assert len(ds) == 6 and ds.labelled and ds.num_classes == 3
    sample, label = ds[4]
    assert sample.dtype == torch.float32 and sample.shape == (1, 4, 4)
    torch.testing.assert_close(sample, torch.from_numpy(x[4]).float())
    assert label.dtype == torch.int64 and label.shape == () and int(label) == 1
    assert ds.description == f"{tmp_path / 'd.npz'}, 6 samples, labelled, 3 classes"
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 4, 4) and yb.tolist() == [0, 1, 2, 0]


def test_npz_unlabelled_integer_input(tmp_path):
    x = np.arange(10).reshape(5, 2)
    ds = load_dataset(write_npz(tmp_path / "d.npz", x=x), input_shape=[1, 2], input_dtype=torch.int64)
    assert not ds.labelled and ds.num_classes is None
    (sample,) = ds[2]
    assert sample.dtype == torch.int64 and sample.tolist() == [4, 5]
    assert "unlabelled" in ds.description


def test_npz_float_labels_that_are_integral_are_accepted(tmp_path):
    path = write_npz(tmp_path / "d.npz", x=np.zeros((3, 2), np.float32), y=np.array([0.0, 2.0, 1.0]))
    assert load_dataset(path, input_shape=[1, 2]).labels.tolist() == [0, 2, 1]


# ---------------------------------------------------------------- image folders


def test_image_folder_rgb_labels_and_values(tmp_path):
    ds = load_dataset(str(image_folder(tmp_path / "imgs")), input_shape=[1, 3, 8, 8], num_classes=5)
    assert len(ds) == 3 and ds.labels.tolist() == [0, 0, 1] and ds.num_classes == 2
    x, y = ds[2]
    assert x.shape == (3, 8, 8) and int(y) == 1
    torch.testing.assert_close(x[:, 3, 3], torch.tensor([0, 50, 250]) / 255)  # resized 10x12 -> 8x8, still solid
    assert ds.description.endswith("3 samples, labelled, 2 classes")


def test_image_folder_bgr_mean_std_and_grey(tmp_path):
    root = image_folder(tmp_path / "imgs")
    pre = parse_preprocess("mean=0.5/0.25/0,std=0.5/0.25/1,order=bgr")
    x, _ = load_dataset(str(root), input_shape=[1, 3, 8, 8], preprocess=pre)[0]
    bgr = torch.tensor([20, 10, 200]) / 255
    expected = (bgr - torch.tensor([0.5, 0.25, 0.0])) / torch.tensor([0.5, 0.25, 1.0])
    torch.testing.assert_close(x[:, 0, 0], expected)
    # A 1-channel model gets grey (ITU-R 601-2 luma, Pillow's "L" conversion).
    grey, _ = load_dataset(str(root), input_shape=[1, 1, 8, 8])[0]
    luma = (200 * 299 + 10 * 587 + 20 * 114) // 1000
    torch.testing.assert_close(grey[0, 0, 0], torch.tensor(luma / 255), atol=1.5 / 255, rtol=0)


def test_image_folder_resize_then_centre_crop(tmp_path):
    pixels = np.zeros((32, 32), np.uint8)
    pixels[:, 16:] = 255  # left half black, right half white
    write_image(tmp_path / "imgs" / "only" / "half.png", pixels)
    root = str(tmp_path / "imgs")
    # size = the image size: no resize, the centre 8x8 crop is columns 12..19.
    x, _ = load_dataset(root, input_shape=[1, 1, 8, 8], preprocess=parse_preprocess("size=32x32"))[0]
    torch.testing.assert_close(x[0, 0], torch.tensor([0.0] * 4 + [1.0] * 4))
    # Downscaling is antialiased bilinear, then the crop.
    x, _ = load_dataset(root, input_shape=[1, 1, 8, 8], preprocess=parse_preprocess("size=16"))[0]
    image = torch.from_numpy(pixels / 255).float().view(1, 1, 32, 32)
    expected = F.interpolate(image, size=(16, 16), mode="bilinear", antialias=True)[0, :, 4:12, 4:12]
    torch.testing.assert_close(x, expected)


def test_image_folder_unlabelled_and_lazy_decoding(tmp_path):
    write_image(tmp_path / "flat" / "a.png", solid((9, 9, 9)))
    broken = write_image(tmp_path / "flat" / "b.png", solid((9, 9, 9)))
    ds = load_dataset(str(tmp_path / "flat"), input_shape=[1, 3, 4, 4])
    assert not ds.labelled and ds.num_classes is None and len(ds) == 2
    broken.write_bytes(broken.read_bytes()[:40])  # truncated after the scan: found when read
    assert ds[0][0].shape == (3, 4, 4)
    with pytest.raises(DataError, match="cannot decode image .*b.png"):
        ds[1]


# ---------------------------------------------------------------- digits


def test_digits_native_size_is_exact(sk_digits):
    images, target = sk_digits
    ds = load_dataset("digits", input_shape=[1, 1, 8, 8], num_classes=10)
    assert len(ds) == 1797 and ds.num_classes == 10 and ds.labels.tolist() == target.tolist()
    torch.testing.assert_close(ds[5][0], images[5])
    assert ds.description == "digits, 1797 samples, labelled, 10 classes"


def test_digits_upscaled_replicated_normalised(sk_digits):
    images, _ = sk_digits
    pre = parse_preprocess("imagenet")
    x, y = load_dataset("digits", input_shape=[1, 3, 28, 28], preprocess=pre)[7]
    up = F.interpolate(images[7:8], size=(28, 28), mode="bilinear", align_corners=False)[0]
    expected = (up.expand(3, -1, -1) - torch.tensor(pre.mean).view(3, 1, 1)) / torch.tensor(pre.std).view(3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert int(y) == 7


def test_digits_layouts_and_crop(sk_digits):
    images, _ = sk_digits
    nchw = load_dataset("digits", input_shape=[1, 3, 12, 12], limit=5)
    nhwc = load_dataset("digits", input_shape=[1, 12, 12, 3], limit=5)
    torch.testing.assert_close(nhwc[0][0], nchw[0][0].permute(1, 2, 0))
    flat = load_dataset("digits", input_shape=[1, 64])  # LeNet-300-100 style: pixels row-major
    torch.testing.assert_close(flat[9][0], images[9].reshape(64))
    grey_nhw = load_dataset("digits", input_shape=[1, 8, 8])
    torch.testing.assert_close(grey_nhw[9][0], images[9, 0])
    cropped = load_dataset("digits", input_shape=[1, 1, 8, 8], preprocess=parse_preprocess("size=16"))[3][0]
    torch.testing.assert_close(cropped, F.interpolate(images[3:4], size=(16, 16), mode="bilinear")[0, :, 4:12, 4:12])


def test_lazy_and_precomputed_sources_agree(monkeypatch):
    import compressor.data.dataset as dataset_module

    eager = load_dataset("digits", input_shape=[1, 3, 16, 16], limit=20, preprocess=parse_preprocess("mean=0.5,std=0.2"))
    monkeypatch.setattr(dataset_module, "PRECOMPUTE_BUDGET_BYTES", 0)
    lazy = load_dataset("digits", input_shape=[1, 3, 16, 16], limit=20, preprocess=parse_preprocess("mean=0.5,std=0.2"))
    assert type(eager.source).__name__ == "TensorSource" and type(lazy.source).__name__ == "LazyImageSource"
    for i in (0, 13):
        torch.testing.assert_close(lazy[i][0], eager[i][0])
        assert int(lazy[i][1]) == int(eager[i][1])


# ---------------------------------------------------------------- mnist-csv


def test_mnist_csv_values_labels_and_formats(tmp_path):
    pixels, labels = mnist_rows(4, [3, 1, 4, 1])
    for spec in (
        write_csv(tmp_path / "a.csv.gz", pixels, labels),
        write_csv(tmp_path / "b.csv", pixels, labels, gz=False),
        write_csv(tmp_path / "c.csv", pixels, labels, header="label," + ",".join(f"pixel{i}" for i in range(784)), label_first=True),
    ):
        ds = load_dataset(spec, input_shape=[1, 1, 28, 28], num_classes=10)
        assert ds.labels.tolist() == [3, 1, 4, 1] and ds.num_classes == 5
        torch.testing.assert_close(ds[2][0], torch.from_numpy(pixels[2].reshape(1, 28, 28) / 255).float())


def test_mnist_csv_resized_and_flat(tmp_path):
    pixels, labels = mnist_rows(2)
    spec = write_csv(tmp_path / "m.csv.gz", pixels, labels)
    image = torch.from_numpy(pixels[1].reshape(1, 1, 28, 28) / 255).float()
    big = load_dataset(spec, input_shape=[1, 1, 32, 32])[1][0]
    torch.testing.assert_close(big, F.interpolate(image, size=(32, 32), mode="bilinear")[0])
    flat = load_dataset(spec, input_shape=[1, 784])[1][0]
    torch.testing.assert_close(flat, image.reshape(784))


@pytest.mark.skipif(not MNIST_5K.exists(), reason=f"shared MNIST subset not found at {MNIST_5K} (set COMPRESSOR_SHARED_DATA)")
def test_real_mnist_subset():
    ds = load_dataset(f"mnist-csv:{MNIST_5K}", input_shape=[1, 1, 28, 28], num_classes=10)
    assert len(ds) == 5000 and ds.num_classes == 10
    assert ds.labels.bincount().tolist() == [500] * 10
    x, _ = ds[123]
    assert x.shape == (1, 28, 28) and 0 <= float(x.min()) and float(x.max()) == 1.0
    limited = load_dataset(f"mnist-csv:{MNIST_5K}", input_shape=[1, 784], num_classes=10, limit=200, seed=3)
    assert len(limited) == 200 and set(limited.labels.tolist()) == set(range(10))  # file is class-sorted
    assert limited.description == f"mnist-csv:{MNIST_5K}, 200 of 5000 samples, labelled, 10 classes"


@pytest.mark.skipif(not MNIST_5K.exists(), reason=f"shared MNIST subset not found at {MNIST_5K} (set COMPRESSOR_SHARED_DATA)")
def test_mnist_split_of_tests_and_benchmarks_is_the_data_source_shuffled():
    x_train, y_train, x_test, y_test = load_mnist_split()
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28) and x_train.dtype == np.float32
    ds = load_dataset(f"mnist-csv:{MNIST_5K}", input_shape=[1, 1, 28, 28], num_classes=10)
    order = np.random.default_rng(0).permutation(5000)
    np.testing.assert_array_equal(x_test, np.stack([ds[int(i)][0].numpy() for i in order[4000:]]))
    np.testing.assert_array_equal(y_train, ds.labels.numpy()[order[:4000]])


# ---------------------------------------------------------------- random inputs


def test_random_dataset():
    ds = random_dataset([1, 3, 4, 4], 5, seed=2)
    assert len(ds) == 5 and not ds.labelled and ds.description == "random inputs, 5 samples, unlabelled"
    (a,) = ds[3]
    assert a.shape == (3, 4, 4) and a.dtype == torch.float32
    torch.testing.assert_close(random_dataset([1, 3, 4, 4], 5, seed=2)[3][0], a)
    torch.testing.assert_close(ds.subset([3])[0][0], a)  # a sample does not depend on the view
    assert not torch.equal(random_dataset([1, 3, 4, 4], 5, seed=3)[3][0], a)
    assert random_dataset([1, 4], 2, torch.float16)[0][0].dtype == torch.float16


# ---------------------------------------------------------------- preprocess


def test_parse_preprocess_full_and_defaults():
    pre = parse_preprocess("size=224x200,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,order=bgr,scale=65535")
    assert pre == Preprocess(size=(224, 200), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), channel_order="bgr", scale=65535.0)
    assert parse_preprocess("") == parse_preprocess(None) == Preprocess(None, (0.0,), (1.0,), "rgb", 255.0)
    assert parse_preprocess("size=32").size == (32, 32)
    assert parse_preprocess("imagenet,std=1").std == (1.0,) and parse_preprocess("imagenet").mean == (0.485, 0.456, 0.406)
    assert pre.describe() == "resize 224x200, mean 0.485/0.456/0.406, std 0.229/0.224/0.225, bgr, scale 1/65535"
    assert "--preprocess" in DATA_SPEC_HELP and "mnist-csv:PATH" in DATA_SPEC_HELP


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour=rgb", "unknown item 'colour=rgb'"),
        ("mean", "unknown item 'mean'"),
        ("size=1x2,size=3x4", "size is given twice"),
        ("size=big", "expected HxW"),
        ("mean=a/b", "expected numbers separated by '/'"),
        ("std=0.5/0", "std values must be positive"),
        ("order=hsv", "channel order must be 'rgb' or 'bgr'"),
        ("scale=0", "scale must be positive"),
    ],
)
def test_parse_preprocess_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_preprocess(text)


@pytest.mark.parametrize(
    "shape, text, message",
    [
        ([1, 1, 8, 8], "mean=0.1/0.2", "mean has 2 values but the model input takes 1 channel"),
        ([1, 1, 8, 8], "order=bgr", "order=bgr needs a 3-channel model input; 'input' has 1"),
        ([1, 1, 28, 28], "size=20x20", r"size=20x20 is smaller than the model input 'input' \(28x28\)"),
        ([1, 1000], "", "takes 1000 values per sample, not a square grey or RGB image"),
        ([1, 2, 3, 4, 5], "", "image data cannot feed the model input 'input' of shape 1x2x3x4x5"),
    ],
)
def test_preprocess_conflicts_with_model(shape, text, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", input_shape=shape, preprocess=parse_preprocess(text))


def test_image_sources_need_float_inputs():
    with pytest.raises(DataError, match="takes int64 values; image sources produce floats"):
        load_dataset("digits", input_shape=[1, 1, 8, 8], input_dtype=torch.int64)


def test_npz_refuses_preprocessing(tmp_path):
    path = write_npz(tmp_path / "d.npz", x=np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="--preprocess does not apply to .npz"):
        load_dataset(path, input_shape=[1, 3], preprocess=parse_preprocess("mean=0.5"))
    assert len(load_dataset(path, input_shape=[1, 3], preprocess=Preprocess())) == 2  # the defaults are fine


# ---------------------------------------------------------------- limit and split


def test_limit_is_seeded_and_covers_sorted_classes(tmp_path):
    y = np.repeat(np.arange(4), 25)  # class-sorted
    path = write_npz(tmp_path / "d.npz", x=np.arange(100, dtype=np.float32).reshape(100, 1), y=y)
    a = load_dataset(path, input_shape=[1, 1], limit=20, seed=1)
    b = load_dataset(path, input_shape=[1, 1], limit=20, seed=1)
    c = load_dataset(path, input_shape=[1, 1], limit=20, seed=2)
    values = [float(a[i][0]) for i in range(len(a))]
    assert len(a) == 20 and values == [float(b[i][0]) for i in range(20)] and values == sorted(values)
    assert values != [float(c[i][0]) for i in range(20)]
    assert set(a.labels.tolist()) == {0, 1, 2, 3}
    assert a.labels.tolist() == [int(v) // 25 for v in values]  # labels stay with their samples
    assert len(load_dataset(path, input_shape=[1, 1], limit=1000)) == 100
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        load_dataset(path, input_shape=[1, 1], limit=0)


def test_split_deterministic_disjoint_and_sized():
    train, val = split_indices(100, 0.2, seed=7)
    assert (train, val) == split_indices(100, 0.2, seed=7)
    assert split_indices(100, 0.2, seed=8) != (train, val)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val) and sorted(train + val) == list(range(100))
    assert split_indices(10, 0.01, seed=0)[1].__len__() == 1  # a non-zero fraction keeps at least one
    assert split_indices(5, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])


def test_subset_views_share_the_source(tmp_path):
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    ds = load_dataset(write_npz(tmp_path / "d.npz", x=x, y=np.arange(10) % 2), input_shape=[1, 1])
    train_idx, val_idx = split_indices(len(ds), 0.3, seed=0)
    val = ds.subset(val_idx)
    assert [float(val[i][0]) for i in range(len(val))] == [float(v) for v in val_idx]
    assert val.subset([1])[0][0].item() == float(val_idx[1])
    assert val.description.endswith("3 of 10 samples, labelled, 2 classes")


@pytest.mark.parametrize(
    "n, fraction, message",
    [(1, 0.5, "leaves no training samples"), (10, 1.0, r"must be in \[0, 1\)"), (10, -0.1, r"must be in \[0, 1\)")],
)
def test_split_errors(n, fraction, message):
    with pytest.raises(DataError, match=message):
        split_indices(n, fraction, seed=0)


# ---------------------------------------------------------------- spec and file errors


def test_spec_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    cases = {
        "imagenet": "unknown data spec or missing path 'imagenet'",
        str(tmp_path / "missing.npz"): "data file not found: .*missing.npz",
        f"mnist-csv:{tmp_path / 'missing.csv'}": "data file not found: .*missing.csv",
        "mnist-csv:": "mnist-csv: needs a path",
        str(tmp_path / "nowhere"): "unknown data spec or missing path",
        str(tmp_path / "notes.txt"): "notes.txt is not a known format",
        str(tmp_path / "junk.npz"): "cannot read .*junk.npz as .npz",
        write_npz(tmp_path / "noxs.npz", inputs=np.zeros(3)): r"has no array 'x' \(arrays: inputs\)",
    }
    for spec, message in cases.items():
        with pytest.raises(DataError, match=message):
            load_dataset(spec, input_shape=[1, 3])


def test_shape_mismatch_names_both_shapes(tmp_path):
    path = write_npz(tmp_path / "d.npz", x=np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(DataError) as info:
        load_dataset(path, input_shape=[1, 1, 28, 28], input_name="input")
    assert str(info.value) == "data samples have shape 3x32x32 but the model input 'input' takes 1x28x28 (NCHW)"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs(tmp_path, bad):
    x = np.zeros((4, 2), np.float32)
    x[2, 1] = bad
    with pytest.raises(DataError, match=r"array x contains 1 NaN/Inf values \(first in sample 2\)"):
        load_dataset(write_npz(tmp_path / "d.npz", x=x), input_shape=[1, 2])


@pytest.mark.parametrize(
    "y, num_classes, message",
    [
        ([0, -1, 2], None, r"label -1 \(sample 1\) is out of range; labels must be 0 or more"),
        ([0, 1, 10], 10, r"label 10 \(sample 2\) is out of range; labels must be 0..9 \(the model has 10 outputs\)"),
        ([0, 1.5, 2], None, "must be integer class indices; sample 1 has label 1.5"),
        ([0, 1], None, "has 2 labels but there are 3 samples"),
        ([[1, 0], [0, 1], [1, 0]], None, r"have shape 3x2; .*one-hot"),
        ([True, False, True], None, "must be integer class indices, not bool"),
    ],
)
def test_bad_labels(tmp_path, y, num_classes, message):
    path = write_npz(tmp_path / "d.npz", x=np.zeros((3, 2), np.float32), y=np.array(y))
    with pytest.raises(DataError, match=message):
        load_dataset(path, input_shape=[1, 2], num_classes=num_classes)


def test_digits_labels_beyond_model_outputs():
    with pytest.raises(DataError, match=r"label 9 .* out of range; labels must be 0..4 \(the model has 5 outputs\)"):
        load_dataset("digits", input_shape=[1, 1, 8, 8], num_classes=5)


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the image folder .*empty is empty"):
        load_dataset(str(tmp_path / "empty"), input_shape=[1, 3, 8, 8])

    write_image(tmp_path / "a" / "cat" / "x.png", solid((1, 2, 3)))
    (tmp_path / "a" / "dog").mkdir()
    (tmp_path / "a" / "dog" / "readme.txt").write_text("-")
    with pytest.raises(DataError, match=r"class folder .*a/dog has no images"):
        load_dataset(str(tmp_path / "a"), input_shape=[1, 3, 8, 8])

    write_image(tmp_path / "b" / "cat" / "x.png", solid((1, 2, 3)))
    (tmp_path / "b" / "dog").mkdir()
    (tmp_path / "b" / "dog" / "y.jpg").write_bytes(b"this is no jpeg")
    with pytest.raises(DataError, match=r"cannot read image .*b/dog/y.jpg"):
        load_dataset(str(tmp_path / "b"), input_shape=[1, 3, 8, 8])

    for name in ("c0", "c1", "c2"):
        write_image(tmp_path / "c" / name / "x.png", solid((1, 2, 3)))
    with pytest.raises(DataError, match=r"class folder 'c2' would be label 2, out of range: .*3 class folders but the model has 2 outputs"):
        load_dataset(str(tmp_path / "c"), input_shape=[1, 3, 8, 8], num_classes=2)

    write_image(tmp_path / "d" / "cat" / "x.png", solid((1, 2, 3)))
    write_image(tmp_path / "d" / "loose.png", solid((1, 2, 3)))
    with pytest.raises(DataError, match="both class subfolders and loose images .*loose.png"):
        load_dataset(str(tmp_path / "d"), input_shape=[1, 3, 8, 8])

    with pytest.raises(DataError, match="1-channel .* or 3-channel .*; the model input 'input' has 4"):
        load_dataset(str(tmp_path / "d"), input_shape=[1, 4, 8, 8])


def test_mnist_csv_errors(tmp_path):
    pixels, labels = mnist_rows(3)
    short = tmp_path / "short.csv"
    short.write_text("1,2,3\n")
    with pytest.raises(DataError, match="line 1 has 3 values; MNIST CSV rows need 785"):
        load_dataset(f"mnist-csv:{short}", input_shape=[1, 1, 28, 28])
    bright = pixels.copy()
    bright[1, 17] = 300
    with pytest.raises(DataError, match="pixel values must be 0..255; sample 1 has 300 at pixel 17"):
        load_dataset(write_csv(tmp_path / "bright.csv.gz", bright, labels), input_shape=[1, 1, 28, 28])
    with pytest.raises(DataError, match=r"label 2 \(sample 2\) is out of range; labels must be 0..1"):
        load_dataset(write_csv(tmp_path / "ok.csv.gz", pixels, labels), input_shape=[1, 1, 28, 28], num_classes=2)
    text = tmp_path / "words.csv"
    text.write_text("1," * 784 + "one\n")
    with pytest.raises(DataError, match="not numeric CSV"):
        load_dataset(f"mnist-csv:{text}", input_shape=[1, 1, 28, 28])
    empty = tmp_path / "empty.csv.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="holds no data rows"):
        load_dataset(f"mnist-csv:{empty}", input_shape=[1, 1, 28, 28])
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(b"0," * 784 + b"1\n")[:20])
    with pytest.raises(DataError, match="cannot read .*cut.csv.gz"):
        load_dataset(f"mnist-csv:{truncated}", input_shape=[1, 1, 28, 28])
