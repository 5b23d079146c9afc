"""Mask files: round trips through every format, safety against hostile pickles, atomic writes,
refusal of masks made for another model, and the adapters for formats users already have."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

import sparsegraph.masks.files as mf
from sparsegraph.errors import MaskError, MaskFileError, SparseGraphError
from sparsegraph.graph.trace import trace
from sparsegraph.masks.files import (
    FORMATS,
    from_prune_state_dict,
    from_sparsifier_state,
    load_masks,
    read_metadata,
    save_masks,
    to_sparsifier_state,
)

NAMES = {
    "safetensors": "m.safetensors",
    "npz": "m.npz",
    "torch": "m.pt",
    "torch_prune": "m_prune.pth",
    "open_lth": "lth_dir",
    "ao_sparsifier": "m_ao.pt",
}


def _mlp(out: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, out))


@pytest.fixture(scope="module")
def net():
    return trace(_mlp(), torch.zeros(1, 8))


def _random_masks(seed: int = 0, density: float = 0.4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"0.weight": rng.random((6, 8)) < density, "2.weight": rng.random((4, 6)) < density}


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(
        b[k].dtype == np.bool_ and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a
    )


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.0, 0.01, 0.5, 1.0]))
def test_round_trip_every_format(tmp_path_factory, fmt, seed, density):
    d = tmp_path_factory.mktemp(fmt)
    masks = _random_masks(seed, density)
    path = save_masks(d / NAMES[fmt], masks, format=fmt)
    assert _same(masks, load_masks(path))
    assert read_metadata(path)["file_format"] == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_net_and_inferred_format(tmp_path, net, fmt):
    masks = _random_masks(1)
    # torch tensors of other dtypes are accepted on the way in
    given_masks = {"0.weight": torch.from_numpy(masks["0.weight"]).float(),
                   "2.weight": masks["2.weight"].astype(np.uint8)}
    target = tmp_path / NAMES[fmt]
    inferred = fmt in ("safetensors", "npz", "torch")
    if fmt == "open_lth":  # an existing directory is written to only when asked for explicitly
        target.mkdir()
        with pytest.raises(MaskFileError, match="open_lth"):
            save_masks(target, given_masks, net=net)
        assert list(target.iterdir()) == []
    path = save_masks(target, given_masks, net=net, format=None if inferred else fmt)
    back = load_masks(path, net=net)
    assert _same(masks, back)


def test_metadata_recorded(tmp_path, net):
    masks = _random_masks(2)
    meta_in = {"scheme": "igq", "density": 0.4, "seed": np.int64(7), "granularity": "weight"}
    for fmt in ("safetensors", "npz", "torch"):
        path = save_masks(tmp_path / NAMES[fmt], masks, net=net, metadata=meta_in, format=fmt)
        meta = read_metadata(path)
        assert meta["scheme"] == "igq" and meta["density"] == 0.4 and meta["seed"] == 7
        assert meta["granularity"] == "weight"
        assert meta["fingerprint"] == net.fingerprint()
        assert meta["layer_names"] == ["0.weight", "2.weight"]
        assert meta["layer_shapes"] == [[6, 8], [4, 6]]
        assert meta["params"] == 72
        assert meta["kept"] == int(sum(m.sum() for m in masks.values()))
        assert meta["sparsegraph_version"] == __import__("sparsegraph").__version__


def test_safetensors_is_readable_by_plain_safetensors(tmp_path, net):
    from safetensors import safe_open

    masks = _random_masks(3)
    path = save_masks(tmp_path / "m.safetensors", masks, net=net, metadata={"scheme": "erk"})
    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["0.weight", "2.weight"]
        assert f.get_tensor("0.weight").dtype == np.bool_
        assert json.loads(f.metadata()["sparsegraph"])["scheme"] == "erk"


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "torch", "torch_prune", "ao_sparsifier"])
def test_same_masks_same_bytes(tmp_path, net, fmt):
    masks = _random_masks(4)
    a = save_masks(tmp_path / ("a_" + NAMES[fmt]), masks, net=net, format=fmt)
    b = save_masks(tmp_path / ("b_" + NAMES[fmt]), masks, net=net, format=fmt)
    assert a.read_bytes() == b.read_bytes()


def test_missing_layers_are_dense_and_order_follows_network(tmp_path, net):
    m = {"2.weight": np.zeros((4, 6), dtype=bool)}
    path = save_masks(tmp_path / "m.npz", m)
    back = load_masks(path, net=net)
    assert list(back) == ["0.weight", "2.weight"]
    assert back["0.weight"].all() and not back["2.weight"].any()


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(tmp_path, net, prefix):
    masks = _random_masks(5)
    raw = {prefix + k: torch.from_numpy(v) for k, v in masks.items()}
    torch.save(raw, tmp_path / "m.pt")
    assert _same(masks, load_masks(tmp_path / "m.pt", net=net))


def test_duplicate_keys_after_normalising_are_refused(tmp_path):
    m = np.ones((2, 2), dtype=bool)
    torch.save({"fc.weight": torch.from_numpy(m), "module.fc.weight": torch.from_numpy(m)},
               tmp_path / "m.pt")
    with pytest.raises(MaskFileError, match="fc.weight"):
        load_masks(tmp_path / "m.pt")


# ---------------------------------------------------------------------------------- adapters


def test_reads_a_real_torch_prune_state_dict(tmp_path, net):
    model = _mlp()
    prune.random_unstructured(model[0], "weight", amount=0.7)
    prune.l1_unstructured(model[2], "weight", amount=0.5)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")  # weight_orig, weight_mask, bias
    back = load_masks(tmp_path / "ckpt.pt", net=net)
    assert np.array_equal(back["0.weight"], model[0].weight_mask.numpy() != 0)
    assert np.array_equal(back["2.weight"], model[2].weight_mask.numpy() != 0)
    assert read_metadata(tmp_path / "ckpt.pt")["file_format"] == "torch_prune"
    # and the training-checkpoint layout {"state_dict": ...}
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpt2.pt")
    assert _same(back, load_masks(tmp_path / "ckpt2.pt", net=net))


def test_written_prune_state_dict_reapplies_with_torch(tmp_path):
    masks = _random_masks(6)
    path = save_masks(tmp_path / "m.pth", masks, format="torch_prune")
    sd = torch.load(path, weights_only=True)
    assert set(sd) == {"0.weight_mask", "2.weight_mask"}
    model = _mlp()
    for i in (0, 2):
        prune.custom_from_mask(model[i], "weight", sd[f"{i}.weight_mask"])
    assert _same(masks, from_prune_state_dict(model.state_dict()))


def test_ao_sparsifier_state_both_ways(tmp_path):
    from torch.ao.pruning import WeightNormSparsifier

    model = _mlp()
    sp = WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(1, 2), zeros_per_block=2)
    sp.prepare(model, config=None)
    sp.step()
    theirs = from_sparsifier_state(sp.state_dict())
    assert list(theirs) == ["0.weight", "2.weight"]
    their_mask = model[0].parametrizations.weight[0].mask.numpy() != 0
    assert np.array_equal(theirs["0.weight"], their_mask)
    # their raw state_dict holds a defaultdict, which weights_only loading cannot read
    torch.save(sp.state_dict(), tmp_path / "raw.pt")
    with pytest.raises(MaskFileError, match="defaultdict"):
        load_masks(tmp_path / "raw.pt")
    sd = sp.state_dict()
    torch.save({"state": dict(sd["state"]), "groups": sd["groups"]}, tmp_path / "plain.pt")
    assert _same(theirs, load_masks(tmp_path / "plain.pt"))
    # ours loads into a prepared sparsifier
    masks = _random_masks(7)
    path = save_masks(tmp_path / "ours.pt", masks, format="ao_sparsifier")
    model2 = _mlp()
    sp2 = WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(1, 2), zeros_per_block=2)
    sp2.prepare(model2, config=None)
    sp2.load_state_dict(torch.load(path, weights_only=True))
    for i, name in ((0, "0.weight"), (2, "2.weight")):
        assert np.array_equal(model2[i].parametrizations.weight[0].mask.numpy() != 0, masks[name])
        assert torch.equal(model2[i].weight == 0, torch.from_numpy(~masks[name])
                           | (model2[i].parametrizations.weight.original == 0))
    assert to_sparsifier_state(masks)["groups"][0]["tensor_fqn"] == "0.weight"


def test_open_lth_layout(tmp_path, net):
    masks = _random_masks(8)
    path = save_masks(tmp_path / "level_1", masks, format="open_lth")
    assert path == tmp_path / "level_1" / "mask.pth"
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.int32 for v in raw.values())
    report = json.loads((tmp_path / "level_1" / "sparsity_report.json").read_text())
    assert report == {"total": 72.0, "unpruned": float(sum(m.sum() for m in masks.values()))}
    assert _same(masks, load_masks(tmp_path / "level_1", net=net))
    assert _same(masks, load_masks(path))
    assert read_metadata(path)["sparsity_report"] == report
    # a report that disagrees with the mask is a corrupt pair
    (tmp_path / "level_1" / "sparsity_report.json").write_text('{"total": 72.0, "unpruned": 1.0}')
    with pytest.raises(MaskFileError, match="unpruned"):
        load_masks(tmp_path / "level_1")


# ------------------------------------------------------------------------------------ safety


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("layout", ["torch_zip", "torch_legacy", "bare_pickle", "npz_object"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, layout):
    marker = tmp_path / "PWNED"
    evil = _Evil(marker)
    # sanity check of the exploit itself: a plain unpickle would create the marker
    pickle.loads(pickle.dumps(evil))
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "masks.pt"
    if layout == "torch_zip":
        torch.save({"0.weight": evil}, path)
    elif layout == "torch_legacy":
        torch.save({"0.weight": evil}, path, _use_new_zipfile_serialization=False)
    elif layout == "bare_pickle":
        path.write_bytes(pickle.dumps({"0.weight": evil}, protocol=2))
    else:
        path = tmp_path / "masks.npz"
        arr = np.empty(1, dtype=object)
        arr[0] = evil
        np.savez(path, **{"0.weight": arr})
    with pytest.raises(MaskFileError, match="refused"):
        load_masks(path)
    with pytest.raises(MaskFileError, match="refused"):
        read_metadata(path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "torch", "torch_prune", "ao_sparsifier"])
def test_truncated_files_give_a_mask_file_error(tmp_path, fmt):
    path = save_masks(tmp_path / NAMES[fmt], _random_masks(9), format=fmt)
    data = path.read_bytes()
    cuts = sorted(set(range(0, len(data), max(1, len(data) // 40))) - {len(data)})
    for cut in cuts:
        bad = tmp_path / f"cut{path.suffix}"
        bad.write_bytes(data[:cut])
        with pytest.raises(MaskFileError) as info:
            load_masks(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "torch"])
@settings(max_examples=25)
@given(data=st.data())
def test_corrupted_bytes_never_escape_as_other_errors(tmp_path_factory, fmt, data):
    d = tmp_path_factory.mktemp("corrupt")
    path = save_masks(d / NAMES[fmt], _random_masks(10), format=fmt)
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:
        out = load_masks(path)
    except SparseGraphError:
        return
    assert all(v.dtype == np.bool_ for v in out.values())


def test_unknown_empty_missing(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"hello world, not a mask file")
    with pytest.raises(MaskFileError, match="unknown format"):
        load_masks(tmp_path / "junk.bin")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(MaskFileError, match="empty"):
        load_masks(tmp_path / "empty.safetensors")
    with pytest.raises(MaskFileError, match="does not exist"):
        load_masks(tmp_path / "nope.safetensors")
    with pytest.raises(MaskFileError, match="mask.pth"):
        load_masks(tmp_path)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(MaskFileError, match="neither"):
        load_masks(tmp_path / "other.zip")
    torch.save({"0.weight": "not a tensor"}, tmp_path / "str.pt")
    with pytest.raises(MaskFileError, match="not a tensor"):
        load_masks(tmp_path / "str.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(MaskFileError, match="dict"):
        load_masks(tmp_path / "list.pt")


def test_non_binary_values_are_refused(tmp_path):
    torch.save({"fc.weight": torch.tensor([[0.0, 0.5]])}, tmp_path / "m.pt")
    with pytest.raises(MaskError, match="fc.weight"):
        load_masks(tmp_path / "m.pt")
    with pytest.raises(MaskError, match="fc.weight"):
        save_masks(tmp_path / "m.safetensors", {"fc.weight": np.array([[0, 2]])})
    with pytest.raises(MaskError, match="NaN"):
        save_masks(tmp_path / "m.safetensors", {"fc.weight": np.array([[0, np.nan]])})


# ----------------------------------------------------------------------- another model


def test_mask_for_another_model_is_refused_naming_the_layers(tmp_path, net):
    other_net = trace(_mlp(out=3), torch.zeros(1, 8))
    path = save_masks(tmp_path / "m.safetensors", _random_masks(11), net=net)
    with pytest.raises(MaskFileError) as info:
        load_masks(path, net=other_net)
    msg = str(info.value)
    assert "another model" in msg and "2.weight" in msg and "[4, 6]" in msg and "[3, 6]" in msg
    assert "0.weight" not in msg.split(":", 2)[-1]  # the matching layer is not blamed
    # an extra layer and a missing layer are named too
    bigger = trace(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(),
                                 nn.Linear(4, 2)), torch.zeros(1, 8))
    with pytest.raises(MaskFileError, match=r"missing from the file: 4\.weight"):
        load_masks(path, net=bigger)
    path2 = save_masks(tmp_path / "big.npz", {n: np.ones(s.shape, bool) for n, s in
                                              zip(bigger.names, bigger.layers, strict=True)},
                       net=bigger)
    with pytest.raises(MaskFileError, match=r"not in the network: 4\.weight"):
        load_masks(path2, net=net)


def test_foreign_file_unknown_and_misshaped_keys_named(tmp_path, net):
    torch.save({"0.weight": torch.ones(6, 8), "9.weight": torch.ones(2, 2),
                "2.weight": torch.ones(4, 5)}, tmp_path / "m.pt")
    with pytest.raises(MaskFileError) as info:
        load_masks(tmp_path / "m.pt", net=net)
    msg = str(info.value)
    assert "9.weight" in msg and "2.weight" in msg and "[4, 5]" in msg and "0.weight" not in msg


# ---------------------------------------------------------------------------- atomic writes


def test_existing_file_not_overwritten_without_flag(tmp_path):
    path = save_masks(tmp_path / "m.safetensors", _random_masks(12))
    before = path.read_bytes()
    with pytest.raises(MaskFileError, match="overwrite"):
        save_masks(path, _random_masks(13))
    assert path.read_bytes() == before
    save_masks(path, _random_masks(13), overwrite=True)
    assert _same(_random_masks(13), load_masks(path))
    lth = save_masks(tmp_path / "lth", _random_masks(12), format="open_lth")
    with pytest.raises(MaskFileError, match="overwrite"):
        save_masks(tmp_path / "lth", _random_masks(13), format="open_lth")
    assert _same(_random_masks(12), load_masks(lth))


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "torch"])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch, fmt, existing):
    target = tmp_path / NAMES[fmt]
    if existing:
        save_masks(target, _random_masks(14), format=fmt)
    before = sorted(os.listdir(tmp_path))
    old = target.read_bytes() if existing else None
    real_fsync = os.fsync

    def exploding_fsync(fd):  # the data was written; the crash comes before the rename
        raise OSError("disk vanished")

    monkeypatch.setattr(mf.os, "fsync", exploding_fsync)
    with pytest.raises(OSError, match="disk vanished"):
        save_masks(target, _random_masks(15), format=fmt, overwrite=True)
    monkeypatch.setattr(mf.os, "fsync", real_fsync)
    assert sorted(os.listdir(tmp_path)) == before  # no temporary file left behind
    if existing:
        assert target.read_bytes() == old
    else:
        assert not target.exists()


def test_writer_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    def half_then_crash(fh, masks, meta):
        fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(mf, "_write_safetensors", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_masks(tmp_path / "m.safetensors", _random_masks(16))
    assert os.listdir(tmp_path) == []


def test_bad_paths_and_formats(tmp_path):
    with pytest.raises(MaskFileError, match="does not exist"):
        save_masks(tmp_path / "no" / "m.safetensors", _random_masks())
    with pytest.raises(MaskFileError, match="suffix"):
        save_masks(tmp_path / "m.txt", _random_masks())
    with pytest.raises(MaskFileError, match="known"):
        save_masks(tmp_path / "m.safetensors", _random_masks(), format="hdf5")
    with pytest.raises(MaskFileError, match="metadata"):
        save_masks(tmp_path / "m.safetensors", _random_masks(), metadata={"x": object()})
    # file mode follows the umask, not mkstemp's 0600
    p = save_masks(tmp_path / "m.safetensors", _random_masks())
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
