"""The data layer on real data, and every bad input it must refuse clearly."""
import contextlib
import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from drrdn_lib import data_files, prepare
from drrdn_lib.data import DATASETS, DataError, load_dataset, stratified_split


def _image_keys(images: torch.Tensor) -> set[bytes]:
    return {bytes(row) for row in (images * 255).round().to(torch.uint8).flatten(1).numpy()}


def test_mnist5k_splits_are_real_disjoint_and_balanced():
    sizes = {"train": 3500, "val": 500, "test": 1000}
    keys = {}
    for split, n in sizes.items():
        x, y = load_dataset("mnist5k", split)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert 0.0 == x.min() and x.max() == 1.0
        assert torch.bincount(y, minlength=10).tolist() == [n // 10] * 10
        keys[split] = _image_keys(x)
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]


def test_mnist5k_matches_official_mnist_training_digits(real_data_dir):
    images, labels = data_files.read_mnist5k()
    with np.load(real_data_dir / "mnist.npz") as official:
        x_train, y_train = official["x_train"][:5848], official["y_train"][:5848]
    index = {bytes(x): int(y) for x, y in zip(x_train.reshape(len(x_train), -1), y_train)}
    found = [index.get(bytes(x)) for x in images.reshape(5000, -1)]
    assert found == labels.tolist()  # each digit is an official training digit, same label


def test_loading_is_deterministic_and_limit_is_stratified():
    x1, y1 = load_dataset("mnist5k", "train", limit=200, seed=3)
    x2, y2 = load_dataset("mnist5k", "train", limit=200, seed=3)
    x3, _ = load_dataset("mnist5k", "train", limit=200, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert torch.bincount(y1, minlength=10).tolist() == [20] * 10


@pytest.mark.parametrize("name,shape,sizes", [
    ("mnist", (1, 28, 28), {"train": 59000, "val": 1000, "test": 10000}),
    ("cifar10", (3, 32, 32), {"train": 49000, "val": 1000, "test": 10000}),
])
def test_official_datasets_load_with_official_sizes(real_data_dir, name, shape, sizes):
    for split, n in sizes.items():
        x, y = load_dataset(name, split, data_dir=real_data_dir)
        assert x.shape == (n, *shape) and y.shape == (n,)
        assert x.min() >= 0 and x.max() <= 1 and int(y.max()) == 9
    _, y_test = load_dataset(name, "test", data_dir=real_data_dir)
    assert torch.bincount(y_test).min() >= 892  # every class present, as in the official test sets


def test_official_arrays_have_official_content_hashes(real_data_dir):
    assert prepare.verify_folder(real_data_dir) == {"mnist": "ok", "cifar10": "ok"}


def test_cifar10_is_rgb_hwc_converted_to_nchw(real_data_dir):
    x, y = load_dataset("cifar10", "test", data_dir=real_data_dir, limit=10)
    raw = data_files.read_raw("cifar10", real_data_dir)
    first = torch.from_numpy(raw["x_test"][0]).permute(2, 0, 1).float() / 255
    x_all, _ = load_dataset("cifar10", "test", data_dir=real_data_dir)
    assert torch.equal(x_all[0], first)
    assert y[:0].dtype == torch.int64


def test_data_dir_comes_from_environment(real_data_dir, monkeypatch):
    monkeypatch.setenv("DRRDN_DATA", str(real_data_dir))
    x, _ = load_dataset("mnist", "val", limit=10)
    assert x.shape == (10, 1, 28, 28)


# ---- preparing official archives -------------------------------------------------------

def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))


@pytest.fixture(scope="module")
def official_mnist_idx(real_data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist_idx")
    raw = data_files.read_raw("mnist", real_data_dir)
    for key, stem in data_files.MNIST_IDX.items():
        _write_idx(folder / f"{stem}.gz", raw[key])
    return folder


def test_prepare_mnist_from_idx_round_trips_verified(official_mnist_idx, tmp_path):
    written = prepare.prepare("mnist", official_mnist_idx, tmp_path)
    assert written == [tmp_path / "mnist.npz"]
    x, y = load_dataset("mnist", "test", data_dir=tmp_path)
    assert x.shape == (10000, 1, 28, 28)
    x_idx, _ = load_dataset("mnist", "test", data_dir=official_mnist_idx)  # IDX read directly
    assert torch.equal(x, x_idx)


def test_prepare_cifar10_from_python_batches_round_trips_verified(real_data_dir, tmp_path):
    raw = data_files.read_raw("cifar10", real_data_dir)
    batches = tmp_path / "src" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    chunks = [("data_batch_%d" % (i + 1), slice(10000 * i, 10000 * (i + 1)), "train") for i in range(5)]
    for name, rows, split in chunks + [("test_batch", slice(None), "test")]:
        flat = raw[f"x_{split}"][rows].transpose(0, 3, 1, 2).reshape(-1, 3072)
        with open(batches / name, "wb") as handle:
            pickle.dump({b"data": flat, b"labels": raw[f"y_{split}"][rows].tolist()}, handle)
    written = prepare.prepare("cifar10", tmp_path / "src", tmp_path / "out")
    assert [p.name for p in written] == list(data_files.CIFAR_NPZ)
    assert prepare.verify_folder(tmp_path / "out")["cifar10"] == "ok"


def test_prepare_refuses_data_that_is_not_official(official_mnist_idx, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(official_mnist_idx, damaged)
    images = data_files.read_idx(damaged / "t10k-images-idx3-ubyte").copy()
    images[0, 0, 0] ^= 1
    _write_idx(damaged / "t10k-images-idx3-ubyte.gz", images)
    with pytest.raises(DataError, match="x_test.*not the official release"):
        prepare.prepare("mnist", damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_command_line_reports_errors_without_traceback(tmp_path, capsys):
    assert prepare.main(["mnist", "--source", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err


# ---- bad input ---------------------------------------------------------------------------

def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match="unknown dataset 'svhn'.*cifar10.*mnist5k"):
        load_dataset("svhn", "train")
    assert set(DATASETS) == {"mnist5k", "mnist", "cifar10", "toy"}


def test_unknown_split_and_bad_limit():
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_dataset("mnist5k", "valid")
    with pytest.raises(DataError, match="limit=501 is larger than the mnist5k val split \\(500"):
        load_dataset("mnist5k", "val", limit=501)
    for bad in (0, -5, 2.5, "10"):
        with pytest.raises(DataError, match="limit must be a positive integer"):
            load_dataset("mnist5k", "val", limit=bad)
    with pytest.raises(DataError, match="only apply to the toy dataset"):
        load_dataset("mnist5k", "val", dim=3)


def test_missing_files_name_the_file_and_how_to_obtain_it(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*prepare mnist"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="cifar10_train_part1.npz.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", "train", data_dir=tmp_path / "nowhere")


def test_corrupt_or_truncated_npz_is_reported(real_data_dir, tmp_path):
    blob = (real_data_dir / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_truncated_idx_is_reported(tmp_path):
    _write_idx(tmp_path / "t.gz", np.zeros((3, 28, 28), np.uint8))
    raw = gzip.decompress((tmp_path / "t.gz").read_bytes())
    (tmp_path / "t").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated"):
        data_files.read_idx(tmp_path / "t")


def _fake_mnist(tmp_path, **overrides):
    arrays = {"x_train": np.zeros((60000, 28, 28), np.uint8),
              "y_train": (np.arange(60000) % 10).astype(np.uint8),
              "x_test": np.zeros((10000, 28, 28), np.uint8),
              "y_test": (np.arange(10000) % 10).astype(np.uint8)}
    arrays.update(overrides)
    np.savez(tmp_path / "mnist.npz", **arrays)


@pytest.mark.parametrize("overrides,message", [
    ({"x_test": np.zeros((10000, 28, 27), np.uint8)}, "expected images \\(10000, 28, 28\\)"),
    ({"x_test": np.zeros((10000, 28, 28), np.float32)}, "expected uint8"),
    ({"y_test": np.full(10000, 10, np.uint8)}, "labels must be 0-9, found 10"),
    ({"y_train": np.zeros(59999, np.uint8)}, "labels \\(60000,\\)"),
])
def test_wrong_shapes_dtypes_and_labels_are_refused(tmp_path, overrides, message):
    _fake_mnist(tmp_path, **overrides)
    with pytest.raises(DataError, match=message):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_stratified_split_is_exact_and_deterministic():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    kept, held = stratified_split(labels, 10, seed=1)
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 100
    assert np.array_equal(held, stratified_split(labels, 10, seed=1)[1])


def test_toy_splits_are_seeded_samples_of_the_tsipras_distribution():
    x, y = load_dataset("toy", "train", limit=4000, dim=20, seed=1)
    assert x.shape == (4000, 21) and x.dtype == torch.float32 and y.dtype == torch.int64
    sign = 2.0 * y - 1
    assert set(x[:, 0].unique().tolist()) == {-1.0, 1.0}
    assert abs((x[:, 0] == sign).float().mean().item() - 0.95) < 0.02  # robust feature, p=0.95
    x_again, _ = load_dataset("toy", "train", limit=4000, dim=20, seed=1)
    x_test, _ = load_dataset("toy", "test", limit=4000, dim=20, seed=1)
    assert torch.equal(x, x_again) and not torch.equal(x, x_test)
    with pytest.raises(ValueError, match="p"):
        load_dataset("toy", "train", limit=10, p=1.5)


def test_mnist5k_comes_in_mixed_class_order():
    _, y = load_dataset("mnist5k", "train")
    assert len(torch.unique(y[:50])) == 10  # the file is sorted by class; the loader is not


# ---- files are verified, once per version of the file -------------------------------------

SMALL = {"x_train": (200, 4, 4), "x_test": (50, 4, 4)}


def _small_mnist(seed: int, zero_labels: str | None = None) -> dict:
    """Random uint8 arrays shaped like a tiny MNIST (200 train, 50 test, 4 x 4 images)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split in ("train", "test"):
        shape = SMALL[f"x_{split}"]
        arrays[f"x_{split}"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"y_{split}"] = (np.arange(shape[0]) % 10).astype(np.uint8)
        if zero_labels == split:
            arrays[f"y_{split}"][:] = 0
    return arrays


@pytest.fixture
def small_official(monkeypatch):
    """Pretend the official MNIST is a tiny random one; returns its arrays (hashes patched in)."""
    from drrdn_lib import data

    official = _small_mnist(0)
    monkeypatch.setitem(data_files.SHAPES, "mnist", ((4, 4), 200, 50))
    monkeypatch.setitem(data.VAL_SIZE, "mnist", 20)
    monkeypatch.setitem(data_files.CONTENT_SHA256, "mnist",
                        {key: data_files.content_sha256(a) for key, a in official.items()})
    calls = []
    real = data_files.content_sha256
    monkeypatch.setattr(data_files, "content_sha256", lambda a: calls.append(1) or real(a))
    return official, calls


def test_a_replaced_file_is_checked_again_not_served_from_cache(tmp_path, small_official):
    official, _ = small_official
    np.savez(tmp_path / "mnist.npz", **official)
    x, _ = load_dataset("mnist", "test", data_dir=tmp_path)
    assert torch.equal(x, torch.from_numpy(official["x_test"]).float().unsqueeze(1) / 255)
    np.savez(tmp_path / "mnist.npz", **_small_mnist(1))  # same names, shapes and size
    with pytest.raises(DataError, match="x_train: got .*; x_test: got .*copy them again from "
                                        "../shared/data.*prepare mnist --source DIR"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_a_file_with_the_wrong_content_hash_is_refused(tmp_path, small_official):
    tampered = _small_mnist(0)
    tampered["x_test"][0, 0, 0] ^= 1
    np.savez(tmp_path / "mnist.npz", **tampered)
    with pytest.raises(DataError, match=rf"mnist in {tmp_path} does not match the official data "
                                        r"\(x_test: got [0-9a-f]{16}\.\.\., expected"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_a_verified_file_is_hashed_once(tmp_path, small_official):
    from drrdn_lib import data

    official, calls = small_official
    np.savez(tmp_path / "mnist.npz", **official)
    load_dataset("mnist", "train", data_dir=tmp_path)
    assert len(calls) == 4  # one per array
    load_dataset("mnist", "test", data_dir=tmp_path)
    data._cached_splits.cache_clear()  # the arrays are read again, but not hashed again
    load_dataset("mnist", "val", data_dir=tmp_path)
    assert len(calls) == 4


@pytest.mark.parametrize("split", ["train", "test"])
def test_all_zero_labels_are_refused(tmp_path, small_official, split):
    np.savez(tmp_path / "mnist.npz", **_small_mnist(0, zero_labels=split))
    with pytest.raises(DataError, match=f"mnist {split} in .*every label is 0.*no real labels"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_prepare_keeps_the_previous_good_file_when_a_write_fails(tmp_path, monkeypatch):
    good = _small_mnist(0)
    [path] = prepare.write_npz("mnist", good, tmp_path)
    before = path.read_bytes()

    def full_disk_midway(file, **arrays):
        """Write the start of an archive, then fail as a full disk would."""
        with contextlib.ExitStack() as stack:
            stream = file if hasattr(file, "write") else stack.enter_context(open(file, "wb"))
            stream.write(b"PK\x03\x04 the first bytes of a zip")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez_compressed", full_disk_midway)
    with pytest.raises(OSError, match="mnist.npz: the disk is full: free space"):
        prepare.write_npz("mnist", _small_mnist(1), tmp_path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz"]


# ---- the official test split shipped in the repository (data/mnist_test.npz) --------------


def _shipped():
    from drrdn_lib.data import REPO_DATA_DIR
    return REPO_DATA_DIR / data_files.MNIST_TEST_NPZ


def test_shipped_mnist_test_is_the_official_test_set_by_content_hash():
    arrays = data_files.read_mnist_test(_shipped())
    assert arrays["x_test"].shape == (10000, 28, 28) and arrays["x_test"].dtype == np.uint8
    assert arrays["y_test"].shape == (10000,) and arrays["y_test"].dtype == np.uint8
    for key in ("x_test", "y_test"):
        assert data_files.content_sha256(arrays[key]) == data_files.CONTENT_SHA256["mnist"][key]
    assert prepare.verify_folder(_shipped().parent)["mnist_test"] == "ok"


def test_test_split_loads_from_a_folder_with_only_mnist_test_npz(tmp_path):
    shutil.copy(_shipped(), tmp_path / "mnist_test.npz")
    x, y = load_dataset("mnist", "test", data_dir=tmp_path)
    raw = data_files.read_mnist_test(_shipped())
    assert x.shape == (10000, 1, 28, 28) and y.dtype == torch.int64
    assert torch.equal((x * 255).round().to(torch.uint8).squeeze(1), torch.from_numpy(raw["x_test"]))
    assert y.tolist() == raw["y_test"].tolist()
    x_sub, y_sub = load_dataset("mnist", "test", data_dir=tmp_path, limit=100, seed=1)
    assert x_sub.shape == (100, 1, 28, 28) and len(torch.unique(y_sub)) == 10


def test_train_split_without_training_files_says_what_to_do(tmp_path):
    shutil.copy(_shipped(), tmp_path / "mnist_test.npz")
    for split in ("train", "val"):
        with pytest.raises(DataError, match="missing .*train-images-idx3-ubyte.*prepare mnist "
                                            "--source DIR.*ships only the official test split"):
            load_dataset("mnist", split, data_dir=tmp_path)


def test_test_split_falls_back_to_the_repository_copy(tmp_path):
    x, _ = load_dataset("mnist", "test", data_dir=tmp_path, limit=20)  # empty folder
    assert x.shape == (20, 1, 28, 28)


def test_a_tampered_mnist_test_npz_is_refused(tmp_path):
    arrays = data_files.read_mnist_test(_shipped())
    arrays["x_test"][0, 0, 0] ^= 1
    np.savez_compressed(tmp_path / "mnist_test.npz", **arrays)
    with pytest.raises(DataError, match=r"mnist in .*mnist_test.npz does not match the official "
                                        r"data \(x_test: got"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_full_mnist_and_the_shipped_file_hold_the_same_test_digits(real_data_dir):
    from drrdn_lib.data import _split_arrays
    x_full, _ = _split_arrays("mnist", str(real_data_dir), "test")
    x_shipped, _ = data_files.read_mnist_test(_shipped()).values()
    assert np.array_equal(x_full, x_shipped)


def test_prepare_mnist_test_regenerates_the_shipped_arrays(real_data_dir, tmp_path):
    assert prepare.main(["mnist-test", "--source", str(real_data_dir), "--out", str(tmp_path)]) == 0
    made, shipped = (data_files.read_mnist_test(p) for p in (tmp_path / "mnist_test.npz", _shipped()))
    assert all(np.array_equal(made[k], shipped[k]) for k in ("x_test", "y_test"))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path):
    """The official CIFAR-10 batches are pickles: they are read by an unpickler that rebuilds
    only numpy arrays and plain types, so a doctored file cannot run code."""
    marker = tmp_path / "marker"

    class RunsCode:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    with open(batches / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": RunsCode(), b"labels": [0]}, handle)
    with pytest.raises(DataError, match="asks for builtins.exec.*refused"):
        data_files.read_cifar_batches(batches)
    assert not marker.exists()
