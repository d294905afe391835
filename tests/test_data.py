"""Tests for odtlab.data: digits, procedural shapes, sensors, local files, partitions, tools."""

from __future__ import annotations

import ast
import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset, TensorDataset

from odtlab import data
from odtlab.data import (
    DatasetNotFound,
    InvalidDataArgument,
    InvalidDataFile,
    SensorActivity,
    SensorFeatures,
    SyntheticShapes,
    UnknownDomain,
)
from odtlab.data.domains import NEW_CLASSES, SOURCE_CLASSES, Domain
from odtlab.data.sensors import ACTIVITIES, user_style
from odtlab.data.tools import labels_of
from odtlab.errors import OdtlabError

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    centroids = torch.stack([train_x[train_y == k].mean(0) for k in range(int(train_y.max()) + 1)])
    return (torch.cdist(test_x, centroids).argmin(1) == test_y).float().mean().item()


def ridge_accuracy(train_x, train_y, test_x, test_y, lam: float = 1.0) -> float:
    """A linear classifier fitted in closed form (ridge regression on one-hot targets)."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6

    def design(x):
        return torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1).double()

    a = design(train_x)
    w = torch.linalg.solve(
        a.T @ a + lam * torch.eye(a.shape[1], dtype=torch.float64),
        a.T @ F.one_hot(train_y).double(),
    )
    return ((design(test_x) @ w).argmax(1) == test_y).float().mean().item()


def fft_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Log magnitude spectrum of the grey image: a linear model's shift-invariant view."""
    grey = images.mean(1)
    grey = grey - grey.mean((1, 2), keepdim=True)
    return torch.log1p(torch.fft.rfft2(grey).abs()).flatten(1)


def high_frequency_energy(images: torch.Tensor) -> float:
    return ((images[..., 1:, :] - images[..., :-1, :]) ** 2).mean().item()


def dominant_hz(x: torch.Tensor, rate: float) -> torch.Tensor:
    centred = x - x.mean(-1, keepdim=True)
    power = (torch.fft.rfft(centred, dim=-1).abs() ** 2).sum(1)  # summed over channels
    return power.argmax(-1).float() * rate / x.shape[-1]


# ----------------------------------------------------------------------------- package


def test_all_names_exist_and_errors_are_odtlab_errors():
    for name in data.__all__:
        assert hasattr(data, name), name
    assert issubclass(DatasetNotFound, OdtlabError) and issubclass(
        DatasetNotFound, FileNotFoundError
    )
    assert issubclass(InvalidDataArgument, ValueError) and issubclass(UnknownDomain, KeyError)
    assert issubclass(InvalidDataFile, OdtlabError)
    assert str(UnknownDomain("no such domain")) == "no such domain"


def test_data_imports_nothing_of_ours_but_errors():
    for path in (ROOT / "odtlab" / "data").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("odtlab"):
                    assert name == "odtlab.errors" or name.startswith("odtlab.data"), (path, name)


# ----------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digit_splits():
    return data.digits("train"), data.digits("test")


def test_digits_split_covers_all_images_once_and_is_stratified(digit_splits):
    train, test = digit_splits
    assert len(train) + len(test) == 1797
    both = torch.cat([train.indices, test.indices])
    assert sorted(both.tolist()) == list(range(1797))
    total = torch.bincount(torch.cat([train.y, test.y]), minlength=10)
    test_counts = torch.bincount(test.y, minlength=10)
    assert (test_counts - 0.25 * total).abs().max() <= 2
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.dim() == 0
    assert train.classes == [str(d) for d in range(10)] and train.num_classes == 10


def test_digits_split_is_fixed_by_seed(digit_splits):
    train, _ = digit_splits
    assert torch.equal(data.digits("train", seed=0).indices, train.indices)
    assert not torch.equal(data.digits("train", seed=1).indices, train.indices)


def test_digits_normalisation_uses_train_statistics(digit_splits):
    train, test = digit_splits
    assert abs(train.x.mean().item()) < 1e-4
    assert abs(train.x.std().item() - 1) < 1e-4
    assert (test.mean, test.std) == (train.mean, train.std)
    raw = data.digits("test", normalize=False)
    assert raw.x.min() == 0 and raw.x.max() == 1
    torch.testing.assert_close(raw.x, test.x * test.std + test.mean, atol=1e-5, rtol=0)


def test_upsampled_digits_keep_labels_and_content():
    small = data.digits("test", normalize=False)
    big = data.digits("test", resolution=16, normalize=False)
    assert big[0][0].shape == (1, 16, 16)
    assert torch.equal(big.y, small.y)
    back = F.avg_pool2d(big.x, 2)  # averaging down again nearly recovers the original
    correlation = torch.corrcoef(torch.stack([back.flatten(), small.x.flatten()]))[0, 1]
    assert correlation > 0.95  # measured 0.979 (bilinear blurs a little)
    assert data.digits("train", resolution=32)[5][0].shape == (1, 32, 32)
    assert data.digits("train", resolution=4)[0][0].shape == (1, 4, 4)


def test_digits_are_learnable_by_nearest_centroid(digit_splits):
    train, test = digit_splits
    acc = nearest_centroid_accuracy(train.x.flatten(1), train.y, test.x.flatten(1), test.y)
    assert acc > 0.8  # measured 0.884


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"split": "valid"}, "split"),
        ({"resolution": 0}, "resolution"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_digits_bad_arguments_are_named(kwargs, word):
    with pytest.raises(InvalidDataArgument, match=word):
        data.digits(**kwargs)


# ----------------------------------------------------------------------------- shapes


def test_shapes_have_the_promised_shapes_and_ranges():
    ds = SyntheticShapes(30, seed=0)
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.classes == list(SOURCE_CLASSES) and ds.num_classes == 10
    assert ds.y.tolist() == [i % 10 for i in range(30)]
    assert SyntheticShapes(4, resolution=17)[0][0].shape == (3, 17, 17)
    assert "SyntheticShapes(n=30, domain='source'" in repr(ds)


def test_shapes_are_deterministic_per_index_and_independent_of_order():
    ds = SyntheticShapes(40, seed=5)
    again = SyntheticShapes(40, seed=5)
    assert torch.equal(ds.x, again.x)
    longer = SyntheticShapes(1100, seed=5)  # crosses a batch boundary
    assert torch.equal(longer.x[:40], ds.x)
    order = [39, 3, 17, 0, 3]
    x, y = ds.render(order)
    assert torch.equal(x, ds.x[order]) and torch.equal(y, ds.y[order])
    assert not torch.equal(SyntheticShapes(40, seed=6).x, ds.x)


def test_train_test_sets_are_disjoint_streams():
    train, test = data.train_test("source", 300, 100, seed=0, resolution=16)
    assert (train.stream, test.stream) == (0, 1)
    distance = torch.cdist(test.x.flatten(1), train.x.flatten(1))
    assert distance.min() > 0.5  # no test image repeats a training image
    _, same_test = data.train_test("source", 50, 100, seed=0, resolution=16)
    assert torch.equal(same_test.x, test.x)  # the test set ignores n_train


@pytest.fixture(scope="module")
def domain_samples():
    return {name: SyntheticShapes(300, domain=name, seed=1) for name in data.available_domains()}


def test_target_colors_change_the_colour_statistics(domain_samples):
    source, colors = domain_samples["source"], domain_samples["target-colors"]
    assert colors.classes == source.classes
    mean_s, mean_c = source.x.mean((0, 2, 3)), colors.x.mean((0, 2, 3))
    assert (mean_c - mean_s).abs().min() > 0.3  # measured about 0.55 per channel


def test_target_noise_has_more_high_frequency_energy(domain_samples):
    hf_source = high_frequency_energy(domain_samples["source"].x)
    hf_noise = high_frequency_energy(domain_samples["target-noise"].x)
    assert hf_noise > 4 * hf_source  # measured about 9x


def test_target_rotated_changes_only_the_rotation(domain_samples):
    source, rotated = domain_samples["source"], domain_samples["target-rotated"]
    assert data.domain("target-rotated").rotation_deg == (-180.0, 180.0)
    # Same draws: the same colours (mean per image barely moves) but different pixels.
    per_image = (source.x.mean((1, 2, 3)) - rotated.x.mean((1, 2, 3))).abs()
    assert per_image.mean() < 0.02
    assert (source.x - rotated.x).abs().mean() > 0.01


def test_new_classes_are_disjoint_from_source(domain_samples):
    new = domain_samples["target-new-classes"]
    assert set(new.classes).isdisjoint(domain_samples["source"].classes)
    assert new.classes == list(NEW_CLASSES) and new.num_classes == 5


@pytest.fixture(scope="module")
def source_split():
    return data.train_test("source", 1000, 500, seed=0)


def test_source_shapes_are_learnable(source_split):
    train, test = source_split
    acc_centroid = nearest_centroid_accuracy(train.x.flatten(1), train.y, test.x.flatten(1), test.y)
    assert acc_centroid > 0.3  # chance is 0.1; measured 0.44 (raw pixels, shapes move around)
    acc_linear = ridge_accuracy(fft_magnitude(train.x), train.y, fft_magnitude(test.x), test.y)
    assert acc_linear > 0.85  # measured 0.956 with a linear model on |FFT| (shift-invariant)


def test_new_classes_are_learnable():
    train, test = data.train_test("target-new-classes", 500, 250, seed=0)
    acc = ridge_accuracy(fft_magnitude(train.x), train.y, fft_magnitude(test.x), test.y)
    assert acc > 0.85  # measured 0.99


def test_domain_lookup_and_validation():
    with pytest.raises(UnknownDomain) as info:
        data.domain("target-colours-typo")
    for name in data.available_domains():
        assert name in str(info.value)
    with pytest.raises(UnknownDomain, match="hexagram"):
        Domain(classes=("circle", "hexagram"))
    with pytest.raises(InvalidDataArgument, match="texture"):
        Domain(texture="plaid")
    with pytest.raises(InvalidDataArgument, match="scale"):
        Domain(scale=(0.8, 0.2))
    custom = Domain(name="two", classes=("ring", "dots"), noise_std=0.0, texture="gradient")
    ds = SyntheticShapes(6, domain=custom, resolution=12)
    assert ds.classes == ["ring", "dots"] and ds.domain is custom
    assert SyntheticShapes(6, classes=["star", "arrow"]).classes == ["star", "arrow"]


@pytest.mark.parametrize(
    "kwargs, word", [({"n": 0}, "n"), ({"n": 5, "resolution": 0}, "resolution")]
)
def test_shapes_bad_arguments_are_named(kwargs, word):
    with pytest.raises(InvalidDataArgument, match=word):
        SyntheticShapes(**kwargs)


# ----------------------------------------------------------------------------- sensors


@pytest.fixture(scope="module")
def sensors():
    return SensorActivity(500, seed=0)


def test_sensor_windows_have_the_promised_shape(sensors):
    x, y = sensors[1]
    assert x.shape == (3, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sensors.classes == ["still", "walk", "run", "jump", "shake"]
    assert sensors.duration_s == pytest.approx(3.2)
    assert SensorActivity(5, channels=1)[0][0].shape == (1, 64)
    assert torch.equal(SensorActivity(20, seed=2).x, SensorActivity(20, seed=2).x)
    assert "SensorActivity(n=500" in repr(sensors)


def test_sensor_classes_have_their_dominant_frequency(sensors):
    peak = dominant_hz(sensors.x, sensors.sample_rate_hz)
    bin_hz = sensors.sample_rate_hz / sensors.length
    energy = sensors.x.var(-1).sum(-1)
    for k, name in enumerate(sensors.classes):
        if name == "still":
            continue
        median = peak[sensors.y == k].median().item()
        assert abs(median - ACTIVITIES[name].frequency_hz) <= bin_hz, name
        assert energy[sensors.y == 0].max() < energy[sensors.y == k].min() / 5  # still is quiet
    ranges = [(peak[sensors.y == k].min(), peak[sensors.y == k].max()) for k in range(1, 5)]
    ranges.sort()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # no overlap


def test_sensor_features_make_classes_separable(sensors):
    table = SensorFeatures(sensors)
    assert table.x.shape == (500, 18) and len(table.feature_names) == 18
    z_peak = table.x[:, table.feature_names.index("z_peak_hz")]
    walk = z_peak[sensors.y == 1].median().item()
    assert abs(walk - ACTIVITIES["walk"].frequency_hz) < 0.4
    test = SensorFeatures(SensorActivity(250, seed=9))
    assert ridge_accuracy(table.x, table.y, test.x, test.y) > 0.9  # measured 0.992


def test_user_style_shifts_the_statistics():
    a, b = SensorActivity(300, user=0), SensorActivity(300, user=1)
    style_a, style_b = user_style(0), user_style(1)
    assert style_a == user_style(0) and style_a != style_b
    shift = a.x.mean((0, 2)) - b.x.mean((0, 2))
    expected = torch.tensor(style_a.offset_g) - torch.tensor(style_b.offset_g)
    torch.testing.assert_close(shift, expected, atol=0.05, rtol=0)

    def run_swing(ds):  # "run" windows: their swing around the mean follows the user's gain
        run = ds.x[ds.y == 2]
        return (run - run.mean(-1, keepdim=True)).std()

    ratio = run_swing(a) / run_swing(b)
    assert ratio.item() == pytest.approx(style_a.gain / style_b.gain, rel=0.15)


def test_sensor_users_and_split_by_user():
    ds = SensorActivity(12, user=[4, 7, 9])
    assert ds.users.tolist() == [4, 7, 9] * 4
    groups = data.split_by_user(ds)
    assert groups == {4: [0, 3, 6, 9], 7: [1, 4, 7, 10], 9: [2, 5, 8, 11]}
    assert data.split_by_user(Subset(ds, [1, 2, 4])) == {7: [0, 2], 9: [1]}
    assert data.split_by_user(SensorFeatures(ds)) == groups
    with pytest.raises(InvalidDataArgument, match="users"):
        data.split_by_user(SyntheticShapes(3))


def test_sensor_bad_arguments():
    with pytest.raises(UnknownDomain, match="walk"):
        SensorActivity(5, classes=("walk", "swim"))
    with pytest.raises(InvalidDataArgument, match="Nyquist"):
        SensorActivity(5, sample_rate_hz=8.0)
    with pytest.raises(InvalidDataArgument, match="channels"):
        SensorActivity(5, channels=4)
    with pytest.raises(InvalidDataArgument, match="user"):
        SensorActivity(5, user=-2)


# ----------------------------------------------------------------------------- local files


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip_on_tiny_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 3], dtype=np.uint8)
    raw = tmp_path / "MNIST" / "raw"  # the torchvision layout is found too
    raw.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels)
    ds = data.mnist(tmp_path, "test")
    assert len(ds) == 3 and ds.classes[7] == "7"
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and int(y) == 7
    torch.testing.assert_close(x[0], torch.from_numpy(images[0] / 255.0).float())
    assert torch.equal(ds.y, torch.tensor([7, 0, 3]))
    with pytest.raises(DatasetNotFound):
        data.mnist(tmp_path, "train")


def test_mnist_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        data.mnist(tmp_path / "nowhere", "train")
    message = str(info.value)
    for part in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "nowhere",
        "LeCun",
        "never downloads",
    ):
        assert part in message
    assert isinstance(info.value, FileNotFoundError)


def test_corrupt_idx_is_refused(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 4), dtype=np.uint8))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(InvalidDataFile, match="truncated"):
        data.mnist(tmp_path, "train")


def write_cifar_batch(
    path: Path, data_rows: np.ndarray, labels: list[int], protocol: int = 2
) -> None:
    # The real batches are Python 2 pickles whose keys come back as bytes.
    path.write_bytes(pickle.dumps({b"data": data_rows, b"labels": labels}, protocol=protocol))


def test_cifar10_round_trip_on_tiny_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    rows = {k: rng.integers(0, 256, size=(2, 3072), dtype=np.uint8) for k in range(1, 6)}
    for k, block in rows.items():
        write_cifar_batch(folder / f"data_batch_{k}", block, [k, 9 - k], protocol=2 if k % 2 else 5)
    test_rows = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    write_cifar_batch(folder / "test_batch", test_rows, [0, 1, 2], protocol=4)
    train = data.cifar10(tmp_path, "train")
    assert len(train) == 10 and train.classes[0] == "airplane" and train.num_classes == 10
    assert train.y.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    x, _ = train[0]
    assert x.shape == (3, 32, 32)
    # Rows hold the red plane, then green, then blue, each row-major.
    assert x[0, 0, 1].item() == pytest.approx(rows[1][0, 1] / 255.0)
    assert x[1, 0, 0].item() == pytest.approx(rows[1][0, 1024] / 255.0)
    assert x[2, 31, 31].item() == pytest.approx(rows[1][0, 3071] / 255.0)
    test = data.cifar10(folder, "test")  # the folder itself works too
    assert len(test) == 3 and test.y.tolist() == [0, 1, 2]


class _Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar10_refuses_pickles_that_run_code(tmp_path, capsys):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Sneaky(), b"labels": [0]}))
    with pytest.raises(InvalidDataFile, match="builtins.print"):
        data.cifar10(tmp_path, "test")
    assert "never run" not in capsys.readouterr().out


def test_cifar10_missing_files_say_what_and_where(tmp_path):
    with pytest.raises(DatasetNotFound) as info:
        data.cifar10(tmp_path, "train")
    message = str(info.value)
    for part in (
        "data_batch_1",
        "data_batch_5",
        "cifar-10-batches-py",
        "Krizhevsky",
        "never downloads",
    ):
        assert part in message
    with pytest.raises(InvalidDataArgument, match="split"):
        data.cifar10(tmp_path, "val")


# ----------------------------------------------------------------------------- partitions


@pytest.fixture(scope="module")
def labels_1000():
    return torch.arange(1000) % 10


def test_iid_partition_is_balanced(labels_1000):
    parts = data.partition(labels_1000, 7, seed=0)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sorted(i for p in parts for i in p) == list(range(1000))
    assert data.label_skew(labels_1000, parts) < 0.15  # sampling noise only: measured 0.106
    assert parts == data.partition(labels_1000, 7, seed=0)
    assert parts != data.partition(labels_1000, 7, seed=1)


def test_dirichlet_skew_grows_as_alpha_shrinks(labels_1000):
    skews = {}
    for alpha in (0.1, 1.0, 100.0):
        parts = data.partition(labels_1000, 10, scheme="dirichlet", alpha=alpha, seed=0)
        assert sorted(i for p in parts for i in p) == list(range(1000))
        assert min(len(p) for p in parts) >= 1
        skews[alpha] = data.label_skew(labels_1000, parts)
    assert skews[0.1] > skews[1.0] > skews[100.0]
    assert skews[0.1] > 0.5 and skews[100.0] < 0.15  # measured 0.69 and 0.04


def test_shards_give_each_client_few_classes(labels_1000):
    parts = data.partition(labels_1000, 10, scheme="shards", shards_per_client=2, seed=0)
    assert sorted(i for p in parts for i in p) == list(range(1000))
    assert all(len(torch.unique(labels_1000[p])) <= 2 for p in parts)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    n_clients=st.integers(1, 12),
    scheme=st.sampled_from(["iid", "dirichlet", "shards"]),
    alpha=st.floats(0.05, 50.0),
    seed=st.integers(0, 2**31),
)
def test_every_index_is_assigned_exactly_once(n, n_clients, scheme, alpha, seed):
    labels = torch.arange(n) % 3
    try:
        parts = data.partition(labels, n_clients, scheme=scheme, alpha=alpha, seed=seed, min_size=0)
    except InvalidDataArgument:
        assert n_clients * (2 if scheme == "shards" else 1) > n
        return
    assert len(parts) == n_clients
    assert sorted(i for p in parts for i in p) == list(range(n))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"n_clients": 0}, "n_clients"),
        ({"n_clients": 2, "alpha": 0.0, "scheme": "dirichlet"}, "alpha"),
        ({"n_clients": 2, "scheme": "random"}, "iid"),
        ({"n_clients": 11}, "n_clients"),
    ],
)
def test_partition_bad_arguments(kwargs, word):
    with pytest.raises(InvalidDataArgument, match=word):
        data.partition(list(range(10)), **kwargs)


def test_partition_works_on_datasets_and_subsets():
    ds = SyntheticShapes(40, resolution=4)
    parts = data.partition(ds, 4, scheme="dirichlet", alpha=1.0, seed=3)
    assert sorted(i for p in parts for i in p) == list(range(40))
    sub = Subset(ds, parts[0])
    assert labels_of(sub).tolist() == ds.y[parts[0]].tolist()


# ----------------------------------------------------------------------------- tools


class _ListDataset(Dataset):
    def __init__(self):
        self.items = [(torch.full((2,), float(i)), i % 2) for i in range(5)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_class_counts_and_as_tensors():
    ds = SyntheticShapes(25, classes=["circle", "ring", "star"], resolution=8)
    assert data.class_counts(ds) == {"circle": 9, "ring": 8, "star": 8}
    sub = Subset(ds, [0, 3, 4])
    assert data.class_counts(sub) == {"circle": 2, "ring": 1, "star": 0}
    X, y = data.as_tensors(sub)
    assert torch.equal(X, ds.x[[0, 3, 4]]) and y.tolist() == [0, 0, 1]
    X, y = data.as_tensors(_ListDataset())
    assert X.shape == (5, 2) and y.tolist() == [0, 1, 0, 1, 0] and y.dtype == torch.int64
    assert data.class_counts(_ListDataset()) == {"0": 3, "1": 2}
    td = TensorDataset(torch.zeros(3, 1), torch.tensor([1, 1, 0]))
    assert data.as_tensors(td)[1].tolist() == [1, 1, 0]


def test_loader_is_seeded_and_leaves_global_rng_alone():
    ds = SyntheticShapes(50, resolution=4)
    state = torch.get_rng_state()

    def order(seed):
        return [yb.tolist() for _, yb in data.loader(ds, 16, seed=seed)]

    first = order(0)
    assert first == order(0) and first != order(1)
    assert [len(b) for b in first] == [16, 16, 16, 2]
    assert torch.equal(state, torch.get_rng_state())
    plain = [yb.tolist() for _, yb in data.loader(ds, 50, shuffle=False)]
    assert plain == [ds.y.tolist()]
    with pytest.raises(InvalidDataArgument, match="batch_size"):
        data.loader(ds, 0)


def test_array_dataset_checks_its_inputs():
    with pytest.raises(InvalidDataArgument, match="labels"):
        data.ArrayDataset(torch.zeros(2, 1), torch.tensor([0, 3]), classes=["a", "b"])
    with pytest.raises(InvalidDataArgument, match="same N"):
        data.ArrayDataset(torch.zeros(3, 1), torch.tensor([0, 1]), classes=["a", "b"])
    ds = data.ArrayDataset(torch.zeros(2, 1), torch.tensor([0, 1]), classes=["a", "b"], name="Tiny")
    assert repr(ds).startswith("Tiny(n=2, classes=2)") and math.isclose(ds[1][0].item(), 0.0)
