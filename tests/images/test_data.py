"""Image loaders on files the tests write, the built-in datasets, and the pyramid."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganlearn.images import data as D


def write_idx(path, arr):
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw)


def test_fashion_mnist_idx_loader(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    x = D.load(f"fashion-mnist:{tmp_path}")
    assert x.shape == (7, 1, 32, 32)
    # 28x28 in the middle, scaled to [-1, 1]; the 2-px border is background (-1).
    np.testing.assert_allclose(x[:, 0, 2:30, 2:30].numpy(), imgs / 255 * 2 - 1, atol=1e-6)
    assert (x[:, :, :2] == -1).all() and (x[:, :, :, 30:] == -1).all()


def test_idx_errors(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(D.DataError, match="not a uint8 IDX"):
        D.load(f"fashion-mnist:{tmp_path}")
    with pytest.raises(D.DataError, match="apt-get install dataset-fashion-mnist"):
        D.load(f"fashion-mnist:{tmp_path / 'nowhere'}")


def test_cifar10_batches_and_refuses_code(tmp_path):
    rng = np.random.default_rng(1)
    for i in (1, 2):
        arr = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
        with open(tmp_path / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": arr, b"labels": list(range(5))}, f)
    x = D.load(f"cifar10:{tmp_path}")
    assert x.shape == (10, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_allclose(x[0].numpy(), arr_first(tmp_path) / 255 * 2 - 1, atol=1e-6)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(D.DataError, match="refusing to unpickle builtins.print"):
        D.load(f"cifar10:{bad}")


def arr_first(folder):
    with open(folder / "data_batch_1", "rb") as f:
        return pickle.load(f)[b"data"][0].reshape(3, 32, 32)


def test_folder_loader(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 255, np.uint8)).save(tmp_path / "a.png")
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(sub / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    x = D.load(f"folder:{tmp_path}", resolution=8)
    assert x.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(x[0].numpy(), 1.0, atol=1e-6)  # white, centre-cropped 40x40 -> 8x8
    np.testing.assert_allclose(x[1].numpy(), -1.0, atol=1e-6)  # black
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(D.DataError, match="no image files"):
        D.load(f"folder:{empty}")


def test_builtin_datasets_shapes():
    assert D.load("digits").shape == (1797, 1, 8, 8)
    m = D.load("mnist-5k")
    assert m.shape == (5000, 1, 32, 32) and m.min() == -1 and m.max() == 1
    assert D.load("faces").shape == (100, 1, 32, 32)
    a, b = D.load_photo_crops(n=20, seed=3), D.load_photo_crops(n=20, seed=3)
    assert a.shape == (20, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, D.load_photo_crops(n=20, seed=4))
    assert D.load("digits", resolution=16, channels=3).shape == (1797, 3, 16, 16)


def test_unknown_dataset_names_choices():
    with pytest.raises(D.DataError, match="must be one of fashion-mnist, mnist-5k"):
        D.load("imagenet")
    with pytest.raises(D.DataError, match="needs a folder"):
        D.load("cifar10")


def test_pyramid_is_average_pooling():
    x = torch.randn(3, 2, 16, 16)
    p = D.pyramid(x, 3)
    assert [t.shape[-1] for t in p] == [4, 8, 16]
    assert torch.equal(p[-1], x)
    torch.testing.assert_close(p[0], F.avg_pool2d(x, 4))
    # each level's mean over a 2x2 block of the next equals the coarse pixel
    torch.testing.assert_close(p[1].mean((-1, -2)), x.mean((-1, -2)))
    with pytest.raises(D.DataError, match="levels=6 is not allowed for 16-px"):
        D.pyramid(x, 6)
