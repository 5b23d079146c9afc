"""sparsegraph.load_data: digits, random batches, files (read safely) and factories; SNIP and
GraSP on them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import ArgumentError
from sparsegraph.pytorch.data import load_data, output_classes


def _mlp(d_in: int = 64, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d_in, 16), nn.ReLU(), nn.Linear(16, classes))


def test_random_batches_are_shaped_seeded_and_uniform_over_classes():
    model = _mlp(12, 7)
    x = torch.zeros(1, 3, 4)
    a = load_data("random", x, model=model, batches=3, batch_size=50, seed=5)
    b = load_data("random", x, model=model, batches=3, batch_size=50, seed=5)
    c = load_data("random", x, model=model, batches=3, batch_size=50, seed=6)
    assert [tuple(xb.shape) for xb, _ in a] == [(50, 3, 4)] * 3
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b,
                                                                                     strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    labels = torch.cat([y for _, y in a])
    assert labels.dtype == torch.int64 and int(labels.min()) >= 0 and int(labels.max()) == 6
    assert "seed 5" in a.description and "7 classes" in a.description


def test_digits_raw_pixels_match_scikit_learn():
    sklearn = pytest.importorskip("sklearn.datasets")
    data = load_data("digits", torch.zeros(1, 64), model=_mlp(), batches=2, batch_size=20,
                     seed=3)
    pixels, labels = sklearn.load_digits(return_X_y=True)
    pixels = pixels / 16.0
    order = np.random.default_rng(3).permutation(len(labels))[:40]
    want = (pixels - pixels.mean()) / pixels.std()
    got = torch.cat([x for x, _ in data]).numpy()
    np.testing.assert_allclose(got, want[order], rtol=1e-6)
    assert torch.cat([y for _, y in data]).tolist() == labels[order].tolist()


def test_digits_fit_image_models_and_fewer_classes():
    pytest.importorskip("sklearn")
    model, x = sg.build_model("lenet5")
    data = load_data("digits", x, model=model, batch_size=32)
    (xb, yb), = data
    assert tuple(xb.shape) == (32, 1, 28, 28) and xb.dtype == torch.float32
    assert model(xb).shape == (32, 10)
    three = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 3))
    (xb, yb), = load_data("digits", torch.zeros(1, 3, 32, 32), model=three, batch_size=40)
    assert tuple(xb.shape) == (40, 3, 32, 32) and int(yb.max()) <= 2
    assert torch.equal(xb[:, 0], xb[:, 2])  # the gray image on every channel
    with pytest.raises(ArgumentError, match="samples asked for"):
        load_data("digits", x, model=model, batches=20, batch_size=128)


def test_npz_and_pt_files(tmp_path):
    model = _mlp(6, 4)
    x = torch.zeros(1, 6)
    xs = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    ys = np.arange(10) % 4
    np.savez(tmp_path / "d.npz", x=xs, y=ys)
    data = load_data(tmp_path / "d.npz", x, model=model, batches=2, batch_size=5)
    np.testing.assert_array_equal(torch.cat([b for b, _ in data]).numpy(), xs)
    torch.save({"inputs": torch.from_numpy(xs), "labels": torch.from_numpy(ys)},
               tmp_path / "d.pt")
    data = load_data(str(tmp_path / "d.pt"), x, model=model, batch_size=10)
    assert torch.equal(data[0][1], torch.from_numpy(ys).long())
    torch.save((torch.from_numpy(xs), torch.from_numpy(ys)), tmp_path / "pair.pt")
    assert len(load_data(str(tmp_path / "pair.pt"), x, model=model, batch_size=3,
                         batches=3)) == 3


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_files_never_run_code(tmp_path, capsys):
    model, x = _mlp(6, 4), torch.zeros(1, 6)
    np.savez(tmp_path / "obj.npz", x=np.array([_Evil()], dtype=object), y=np.zeros(1))
    with pytest.raises(ArgumentError, match="cannot read it as .npz"):
        load_data(str(tmp_path / "obj.npz"), x, model=model, batch_size=1)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"x": _Evil(), "y": 1}, fh, protocol=2)
    with pytest.raises(ArgumentError, match="weights_only=True"):
        load_data(str(tmp_path / "evil.pt"), x, model=model, batch_size=1)
    assert "executed" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.zeros((4, 5)), "y": np.zeros(4)}, r"inputs of shape \[5\]"),
        ({"x": np.zeros((4, 6)), "y": np.full(4, 9)}, r"labels must be in \[0, 4\)"),
        ({"x": np.zeros((4, 6)), "y": np.zeros(3)}, "one label per input"),
        ({"x": np.full((4, 6), np.nan), "y": np.zeros(4)}, "NaN"),
        ({"a": np.zeros((4, 6))}, "expected arrays x and y"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, kwargs, match):
    np.savez(tmp_path / "bad.npz", **kwargs)
    with pytest.raises(ArgumentError, match=match):
        load_data(str(tmp_path / "bad.npz"), torch.zeros(1, 6), model=_mlp(6, 4), batch_size=4)


def test_factories_dataset_loader_and_pair(tmp_path, monkeypatch):
    src = tmp_path / "mydata.py"
    src.write_text(
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "X = torch.randn(30, 6, generator=torch.Generator().manual_seed(0))\n"
        "Y = torch.arange(30) % 4\n"
        "def dataset():\n    return TensorDataset(X, Y)\n"
        "def loader():\n    return DataLoader(TensorDataset(X, Y), batch_size=7)\n"
        "def pair():\n    return X, Y\n"
    )
    model, x = _mlp(6, 4), torch.zeros(1, 6)
    ds = load_data(f"{src}:dataset", x, model=model, batches=2, batch_size=5, seed=1)
    assert [tuple(b.shape) for b, _ in ds] == [(5, 6), (5, 6)] and "dataset of 30" in ds.description
    dl = load_data(f"{src}:loader", x, model=model, batches=3)
    assert [b.shape[0] for b, _ in dl] == [7, 7, 7]
    monkeypatch.syspath_prepend(str(tmp_path))
    pr = load_data("mydata:pair", x, model=model, batch_size=10, batches=3)
    assert len(pr) == 3
    with pytest.raises(ArgumentError, match="no attribute 'nope'"):
        load_data(f"{src}:nope", x, model=model)
    with pytest.raises(ArgumentError, match="expected 'digits', 'random'"):
        load_data("imagenet", x, model=model)


def test_output_classes_needs_logits():
    assert output_classes(_mlp(6, 5), torch.zeros(1, 6)) == 5
    with pytest.raises(ArgumentError, match="number of classes"):
        output_classes(nn.Flatten(0), torch.zeros(1, 6))


def test_snip_and_grasp_score_on_loaded_data():
    model, x = sg.build_model("lenet5")
    data = load_data("random", x, model=model, batches=2, batch_size=8)
    net = sg.trace(model, x)
    for scheme in ("snip", "grasp"):
        masks = sg.prune(model, scheme, density=0.05, example_input=x, data=data)
        assert sum(int(m.sum()) for m in masks.values()) == round(0.05 * net.params)
    # the batches are exactly what an explicit list of (x, y) gives
    again = sg.prune(model, "snip", density=0.05, example_input=x, data=list(data))
    first = sg.prune(model, "snip", density=0.05, example_input=x, data=data)
    assert all(np.array_equal(again[k], first[k]) for k in first)
