"""Hostile and malformed input (issue 14): every case is one documented error naming the
problem, never a crash, a memory bomb, a hang or a silently wrong number.

Numbers in the test names' comments refer to the cases of the issue.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import (
    ArgumentError,
    MaskError,
    MaskFileError,
    ModelSpecError,
    QuotaError,
    SparseGraphError,
)
from sparsegraph.masks.files import load_masks, read_metadata, save_masks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lenet():
    model, x = sg.build_model("lenet300")
    return sg.trace(model, x)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    return sg.trace(model, torch.zeros(1, 8))


def _canonical_masks(net, seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    return {layer.name: rng.random(layer.shape) < density for layer in net.layers}


def _crafted(masks, seed=1, values=(1, 2, 3, 128, 255)):
    """The same masks with the True bytes replaced by other nonzero bytes (np.uint8 viewed as
    bool): what a crafted file or a careless ``.view(bool)`` hands over."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, m in masks.items():
        raw = m.astype(np.uint8)
        raw[m] = rng.choice(values, size=int(m.sum()))
        out[name] = raw.view(np.bool_)
    return out


def _canonical_bytes(arr):
    arr = np.asarray(arr)
    return arr.dtype == np.bool_ and arr.flags.c_contiguous and arr.view(np.uint8).max(
        initial=0) <= 1


# ----------------------------------------------------------------- 1: bool bytes other than 0/1


def test_crafted_bool_bytes_are_normalised_on_save_and_load(tmp_path, lenet):  # 1
    canon = _canonical_masks(lenet)
    crafted = _crafted(canon)
    assert max(int(m.view(np.uint8).max()) for m in crafted.values()) == 255
    for fmt, name in (("safetensors", "m.safetensors"), ("npz", "m.npz"), ("torch", "m.pt"),
                      ("torch_prune", "p.pt"), ("ao_sparsifier", "a.pt"), ("open_lth", "lth")):
        path = save_masks(tmp_path / name, crafted, net=lenet, format=fmt)
        if fmt == "safetensors":  # the file itself holds only the bytes 0 and 1
            raw = path.read_bytes()
            (n,) = struct.unpack("<Q", raw[:8])
            assert set(raw[8 + n:]) <= {0, 1}
        back = load_masks(path, net=lenet)
        for layer in lenet.layers:
            assert _canonical_bytes(back[layer.name])
            assert np.array_equal(back[layer.name], canon[layer.name])


def _safetensors_bytes(tensors, metadata=None, pad_to=None):
    """A safetensors file written by hand (no 8-byte padding of the header, unlike the
    safetensors library), with raw bytes per tensor: ``{name: (dtype, shape, bytes)}``."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad_to is not None:
        assert len(text) <= pad_to
        text += b" " * (pad_to - len(text))
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def test_safetensors_bool_bytes_2_and_ff_read_as_true(tmp_path, small):  # 1
    canon = _canonical_masks(small, seed=3)
    for byte in (2, 0xFF):
        tensors = {n: ("BOOL", m.shape, (m.astype(np.uint8) * byte).tobytes())
                   for n, m in canon.items()}
        path = tmp_path / f"b{byte}.safetensors"
        path.write_bytes(_safetensors_bytes(tensors))
        for net in (small, None):
            back = load_masks(path, net=net)
            assert all(_canonical_bytes(v) and np.array_equal(v, canon[k])
                       for k, v in back.items())


def test_crafted_bytes_give_canonical_results_everywhere(small):  # 1 and its siblings
    """No input reaches a kernel unless it is canonical: every public function that takes
    masks gives, for crafted bytes, exactly what it gives for the canonical mask."""
    canon = _canonical_masks(small, seed=4, density=0.5)
    crafted = _crafted(canon)
    torch_crafted = {k: torch.from_numpy(v) for k, v in crafted.items()}
    for masks in (crafted, torch_crafted):
        eff_c, eff = sg.effective_masks(small, canon), sg.effective_masks(small, masks)
        assert all(_canonical_bytes(eff[k]) and np.array_equal(eff[k], eff_c[k]) for k in eff_c)
        assert sg.audit(small, masks).to_dict() == sg.audit(small, canon).to_dict()
        assert sg.audit(small, canon, effective=_crafted(eff_c)).to_dict() == sg.audit(
            small, canon).to_dict()
        assert sg.spectral(small, masks).to_dict() == sg.spectral(small, canon).to_dict()
        assert sg.path_metrics(small, masks).to_dict() == sg.path_metrics(small, canon).to_dict()
        from sparsegraph.metrics.effective import reachability

        r_c, r = reachability(small, canon), reachability(small, masks)
        assert all(np.array_equal(a, b) for a, b in zip(r_c.forward, r.forward, strict=True))
        a, b = sg.to_scipy(small, masks, layer="0.weight"), sg.to_scipy(small, canon,
                                                                        layer="0.weight")
        assert (a != b).nnz == 0
        g, h = sg.to_networkx(small, masks), sg.to_networkx(small, canon)
        assert sorted(g.edges) == sorted(h.edges)
        g, h = sg.to_igraph(small, masks), sg.to_igraph(small, canon)
        assert sorted(g.get_edgelist()) == sorted(h.get_edgelist())
        q_c = sg.quotas(small, "from_mask", masks=canon)
        assert sg.quotas(small, "from_mask", masks=masks) == q_c
        r1 = sg.random_masks(small, q_c, seed=5)
        r2 = sg.random_masks(small, sg.quotas(small, "from_mask", masks=masks), seed=5)
        assert all(np.array_equal(r1[k], r2[k]) for k in r1)
        m1 = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
        m2 = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
        m2.load_state_dict(m1.state_dict())
        sg.apply_masks(m1, canon)
        sg.apply_masks(m2, masks)
        assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(),
                                                     strict=True))
        assert all(_canonical_bytes(v) for v in sg.check_masks(small, masks).values())


def test_crafted_bytes_spectral_counts_are_right(lenet):  # 1: kept 44,364, not 55,455
    """The issue's crafted bytes [1, 3, 128, 128, 0, ...]: a kernel summing the bytes of
    8-byte words counted them as weights; the door makes them one weight each."""
    rng = np.random.default_rng(14)
    canon = {layer.name: rng.random(layer.shape) < 1 / 6 for layer in lenet.layers}
    crafted = _crafted(canon, values=(1, 3, 128))
    rep_c, rep = sg.spectral(lenet, canon), sg.spectral(lenet, crafted)
    assert rep.to_dict() == rep_c.to_dict()
    kept = sum(int(m.sum()) for m in canon.values())
    assert sg.audit(lenet, crafted).network.kept == kept
    byte_sum = sum(int(m.view(np.uint8).astype(np.int64).sum()) for m in crafted.values())
    assert byte_sum > kept  # what a byte-summing kernel would have counted


# ------------------------------------------------------- 2: sizes checked before data is read


def _npy_header(shape, descr="|b1"):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def write_deflate_bomb(path, key, n_elements):
    """An ``.npz`` whose one member declares ``n_elements`` bools in a deflate stream of a few
    MB that really expands to them (1 MiB blocks of zeros after full flushes repeat byte for
    byte). The CRC is not computed (it would take seconds); a reader that decompresses
    before checking the header finds that out only after expanding everything."""
    header = _npy_header((n_elements,))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    chunk = bytes(1 << 20)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    assert comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH) == block
    count, rest = divmod(n_elements, 1 << 20)
    data = head + block * count + comp.compress(bytes(rest)) + comp.flush()
    name = f"{key}.npy".encode()
    usize = len(header) + n_elements
    assert usize < 2**32  # no zip64 needed
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 33, 0, len(data), usize,
                        len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 33, 0, len(data),
                          usize, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    Path(path).write_bytes(local + data + central + end)


def _legacy_torch_claiming(path, numel):
    """torch's legacy (non-zip) format with a storage record that claims ``numel`` bytes."""
    torch.save({"fc1.weight": torch.zeros(1, dtype=torch.bool).expand(300, 784)}, path,
               _use_new_zipfile_serialization=False)
    raw = Path(path).read_bytes()
    old = b"X\x03\x00\x00\x00cpuq\x06K\x01Nt"
    assert old in raw and raw.endswith(struct.pack("<q", 1) + b"\x00")
    new = b"X\x03\x00\x00\x00cpuq\x06\x8a\x06" + numel.to_bytes(6, "little") + b"Nt"
    Path(path).write_bytes(raw.replace(old, new)[:-9] + struct.pack("<q", numel) + b"\x00")


def hostile_files(d):
    """{label: path} of files that claim far more than they hold."""
    d = Path(d)
    files = {}
    files["stride0_50k"] = d / "s0.pt"
    torch.save({"fc1.weight": torch.zeros(1, dtype=torch.bool).expand(50000, 50000)},
               files["stride0_50k"])
    files["stride0_2^40"] = d / "huge.pt"
    torch.save({"fc1.weight": torch.zeros(1, dtype=torch.bool).expand(2**20, 2**20)},
               files["stride0_2^40"])
    files["deflate_bomb_4e9"] = d / "bomb.npz"
    write_deflate_bomb(files["deflate_bomb_4e9"], "fc1.weight", 4 * 10**9)
    files["safetensors_huge_shape"] = d / "huge.safetensors"
    files["safetensors_huge_shape"].write_bytes(_safetensors_bytes(
        {"fc1.weight": ("BOOL", (2**20, 2**20), b"\x01")}))
    files["safetensors_past_end"] = d / "past.safetensors"
    raw = _safetensors_bytes({"fc1.weight": ("BOOL", (300, 784), bytes(300 * 784))})
    files["safetensors_past_end"].write_bytes(raw[:1000])
    files["legacy_claims_2^40"] = d / "legacy.pt"
    _legacy_torch_claiming(files["legacy_claims_2^40"], 2**40)
    return files


_MEMORY_PROBE = """
import json, resource, sys, time
import sparsegraph as sg
from sparsegraph.errors import MaskFileError
from sparsegraph.masks.files import load_masks
net = sg.trace(*sg.build_model("lenet300"))
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
load_masks(sys.argv[1], net=net)  # warm: one real file through every code path
base = peak()
out = {}
for label, path in json.loads(sys.argv[2]).items():
    for with_net in (True, False):
        t = time.perf_counter()
        try:
            load_masks(path, net=net if with_net else None)
            out[f"{label}/{with_net}"] = "read"
        except MaskFileError as exc:
            out[f"{label}/{with_net}"] = [str(exc), time.perf_counter() - t]
out["peak_over_baseline"] = peak() - base
print(json.dumps(out))
"""


def test_hostile_sizes_are_refused_in_bounded_memory(tmp_path, lenet):  # 2
    files = hostile_files(tmp_path)
    ok = save_masks(tmp_path / "ok.npz", _canonical_masks(lenet), net=lenet)
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(ok),
         json.dumps({k: str(v) for k, v in files.items()})],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": ""})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    peak = out.pop("peak_over_baseline")
    assert peak < 100 * 2**20, f"peak RSS {peak / 2**20:.0f} MB over the baseline"
    for key, value in out.items():
        assert value != "read", key
        message, seconds = value
        assert seconds < 5, (key, seconds)
        print(key, round(seconds, 4), message)
        assert "\n" not in message and Path(files[key.split("/")[0]]).name in message
        assert any(word in message for word in ("fc1.weight", "mask entries", "bytes")), message


def test_deflate_bomb_header_is_read_without_decompressing(tmp_path, lenet):  # 2 (tracemalloc)
    import tracemalloc

    path = tmp_path / "bomb.npz"
    write_deflate_bomb(path, "fc1.weight", 4 * 10**9)
    assert path.stat().st_size < 5 * 2**20
    tracemalloc.start()
    try:
        for net in (lenet, None):
            with pytest.raises(MaskFileError, match="4,000,000,000|4000000000"):
                load_masks(path, net=net)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_sizes_bounded_by_the_model_or_max_elements(tmp_path, small):  # 2
    masks = _canonical_masks(small)
    path = save_masks(tmp_path / "m.safetensors", masks)
    assert len(load_masks(path, max_elements=72)) == 2
    with pytest.raises(MaskFileError, match="72 mask entries, more than the 71"):
        load_masks(path, max_elements=71)
    torch.save({"0.weight": torch.ones(1, dtype=torch.bool).expand(6, 8),
                "2.weight": torch.from_numpy(masks["2.weight"])}, tmp_path / "e.pt")
    back = load_masks(tmp_path / "e.pt", net=small)  # a stride-0 dense mask that fits is fine
    assert back["0.weight"].all() and _canonical_bytes(back["0.weight"])


# ---------------------------------------------- 3, 8: the format from the suffix and a full parse


def _other_net():
    return sg.trace(nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)), torch.zeros(1, 8))


def test_our_safetensors_files_read_back_whatever_the_first_byte(tmp_path, small):  # 3
    """The safetensors library pads its header to 8 bytes, so its files can start with 32
    first bytes (0x80 among them, one file in 32): pad the metadata to produce each."""
    masks = _canonical_masks(small, seed=7)
    other = _other_net()
    seen = set()
    pad = 0
    while len(seen) < 32:
        path = tmp_path / f"m{pad}.safetensors"
        save_masks(path, masks, net=small, metadata={"pad": "x" * pad, "scheme": "igq"})
        first = path.read_bytes()[0]
        pad += 1
        if first in seen:
            path.unlink()
            continue
        seen.add(first)
        bare = tmp_path / f"bare{first}"  # no suffix: recognised by parsing, not by one byte
        bare.write_bytes(path.read_bytes())
        for p in (path, bare):
            meta = read_metadata(p)
            assert meta["file_format"] == "safetensors" and meta["scheme"] == "igq"
            assert meta["fingerprint"] == small.fingerprint()
            back = load_masks(p, net=small)
            assert all(np.array_equal(back[k], masks[k]) for k in masks)
            with pytest.raises(MaskFileError, match="another model"):
                load_masks(p, net=other)
    assert 0x80 in seen


def test_every_first_byte_value_of_a_header_length(tmp_path, small):  # 3
    """Files from a writer that does not pad (all 256 values of the first byte of the header
    length) are read as safetensors, with their metadata and the fingerprint check."""
    masks = _canonical_masks(small, seed=8)
    other = _other_net()
    tensors = {k: ("BOOL", m.shape, m.astype(np.uint8).tobytes()) for k, m in masks.items()}
    base = {"format": "sparsegraph.masks", "fingerprint": small.fingerprint(),
            "layer_names": list(masks), "layer_shapes": [list(m.shape) for m in masks.values()]}
    probe = _safetensors_bytes(tensors, {"sparsegraph": json.dumps({**base, "pad": ""})})
    (n0,) = struct.unpack("<Q", probe[:8])
    for first in range(256):
        pad = (first - n0) % 256
        meta = {"sparsegraph": json.dumps({**base, "pad": "y" * pad})}
        raw = _safetensors_bytes(tensors, meta)
        assert raw[0] == first
        for name in (f"f{first}.safetensors", f"f{first}", f"f{first}.bin"):
            path = tmp_path / name
            path.write_bytes(raw)
            info = read_metadata(path)
            assert info["file_format"] == "safetensors"
            assert info["fingerprint"] == small.fingerprint() and len(info["pad"]) == pad
            assert all(np.array_equal(load_masks(path, net=small)[k], masks[k]) for k in masks)
            with pytest.raises(MaskFileError, match="another model"):
                load_masks(path, net=other)


@pytest.mark.parametrize("written, named, real", [
    ("torch", "m.safetensors", "a torch file"),  # 8: torch 2.13's torch.load switches on it
    ("torch_legacy", "m.safetensors", "pickle"),
    ("npz", "m.safetensors", "an .npz archive"),
    ("safetensors", "m.pt", "a safetensors file"),
    ("safetensors", "m.npz", "a safetensors file"),
    ("torch", "m.npz", "a torch file"),
    ("npz", "m.pth", "an .npz archive"),
])
def test_content_that_is_not_its_suffix_is_one_clear_error(tmp_path, small, written, named,
                                                           real):  # 3, 8
    masks = _canonical_masks(small)
    src = tmp_path / {"torch": "s.pt", "torch_legacy": "s.pt", "npz": "s.npz",
                      "safetensors": "s.safetensors"}[written]
    if written == "torch_legacy":
        torch.save({k: torch.from_numpy(v) for k, v in masks.items()}, src,
                   _use_new_zipfile_serialization=False)
    else:
        save_masks(src, masks, format=written)
    path = tmp_path / named
    path.write_bytes(src.read_bytes())
    for call in (lambda: load_masks(path, net=small), lambda: read_metadata(path)):
        with pytest.raises(MaskFileError, match=real) as info:
            call()
        assert "\n" not in str(info.value) and named in str(info.value)


# ----------------------------------------------------------------- 11, 18: metadata limits


def _st_with_meta(path, small, meta_text):
    masks = _canonical_masks(small)
    tensors = {k: ("BOOL", m.shape, m.astype(np.uint8).tobytes()) for k, m in masks.items()}
    path.write_bytes(_safetensors_bytes(tensors, {"sparsegraph": meta_text}))
    return path


def _npz_with_meta(path, small, meta_text):
    masks = _canonical_masks(small)
    arrays = {**masks, "__metadata__": np.frombuffer(meta_text.encode(), dtype=np.uint8)}
    np.savez(path, **arrays)
    return path


def _torch_with_meta(path, small, meta_text):
    masks = _canonical_masks(small)
    torch.save({**{k: torch.from_numpy(v) for k, v in masks.items()}, "__metadata__": meta_text},
               path)
    return path


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("writer, suffix", [(_st_with_meta, ".safetensors"),
                                            (_npz_with_meta, ".npz"), (_torch_with_meta, ".pt")])
@pytest.mark.parametrize("meta, match", [
    (DEEP, "nested 100000 levels deep"),
    ('{"a": ' + DEEP + "}", "nested 100001 levels deep"),
    ('{"layer_shapes": [1, 2], "layer_names": ["0.weight", "2.weight"]}', "layer_shapes"),
    ('{"layer_shapes": [null]}', "layer_shapes"),
    ('{"layer_names": [1, 2]}', "layer_names"),
    ('{"layer_names": ["a"], "layer_shapes": [[1], [2]]}', "1 layer_names but 2"),
    ('{"fingerprint": 7}', "fingerprint"),
    ('{"params": ' + "9" * 300 + "}", "300 digits"),
    ('{"kept": -1}', "kept"),
    ('{"density": NaN}', "NaN"),
    ('{"density": 1e999}', "out of range"),
    ("[1, 2]", "not a JSON object"),
    ("{not json", "unreadable JSON"),
])
def test_hostile_metadata_is_one_clear_error(tmp_path, small, writer, suffix, meta,
                                             match):  # 11, 18
    path = writer(tmp_path / f"m{suffix}", small, meta)
    for call in (lambda: load_masks(path, net=small), lambda: load_masks(path),
                 lambda: read_metadata(path)):
        with pytest.raises(MaskFileError, match=match) as info:
            call()
        assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_foreign_safetensors_metadata_must_map_strings(tmp_path, small):  # 11
    masks = _canonical_masks(small)
    tensors = {k: ("BOOL", m.shape, m.astype(np.uint8).tobytes()) for k, m in masks.items()}
    (tmp_path / "a.safetensors").write_bytes(_safetensors_bytes(tensors, {"format": "pt"}))
    assert read_metadata(tmp_path / "a.safetensors")["format"] == "pt"  # HF's convention
    (tmp_path / "b.safetensors").write_bytes(_safetensors_bytes(tensors, {"x": {"y": 1}}))
    with pytest.raises(MaskFileError, match="strings to strings"):
        load_masks(tmp_path / "b.safetensors")


@pytest.mark.parametrize("report, match", [
    ('{"total": ' + "9" * 300 + ', "unpruned": 1}', "300 digits"),  # 18
    ('{"total": 1e400, "unpruned": 1}', "out of range"),
    ('{"total": "72", "unpruned": 1}', "'total' must be a non-negative number"),
    ('{"total": -72.0, "unpruned": 1}', "'total' must be a non-negative number"),
    ('{"total": 72.0}', "'total' and 'unpruned'"),
    ("[" * 20_000 + "]" * 20_000, "nested"),
    ("[" * 50_000 + "]" * 50_000, "more than the 65,536 allowed"),
    ('{"total": 72.0, "unpruned": 0.0}', "unpruned=0"),
])
def test_open_lth_report_is_checked(tmp_path, small, report, match):  # 18
    masks = _canonical_masks(small)
    path = save_masks(tmp_path / "lth", masks, format="open_lth")
    (tmp_path / "lth" / "sparsity_report.json").write_text(report)
    for call in (lambda: load_masks(tmp_path / "lth", net=small), lambda: load_masks(path),
                 lambda: read_metadata(path)):
        with pytest.raises(MaskFileError, match=match):
            call()


# ------------------------------------------------------------ 23, 15: dtypes of stored masks


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16,
                                   torch.float16, torch.int8, torch.uint8, torch.int64])
def test_safetensors_of_any_01_dtype_reads_correctly(tmp_path, small, dtype):  # 23
    from safetensors.torch import save_file

    masks = _canonical_masks(small, seed=9)
    save_file({k: torch.from_numpy(v).to(dtype) for k, v in masks.items()},
              str(tmp_path / "m.safetensors"))
    back = load_masks(tmp_path / "m.safetensors", net=small)
    assert all(_canonical_bytes(back[k]) and np.array_equal(back[k], masks[k]) for k in masks)
    if dtype.is_floating_point:  # not 0/1: refused by value
        save_file({"0.weight": torch.full((6, 8), 0.5).to(dtype)}, str(tmp_path / "h.safetensors"))
        with pytest.raises(MaskError, match="found 0.5"):
            load_masks(tmp_path / "h.safetensors", net=small)


def test_float8_decode_table_matches_torch():  # 23: the e4m3fn decoder against torch's
    from sparsegraph.masks._headers import _e4m3_table

    ours = _e4m3_table()
    theirs = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float().numpy()
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.array_equal(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)])


def test_unknown_safetensors_dtype_is_named(tmp_path):
    raw = _safetensors_bytes({"fc.weight": ("C64", (1,), bytes(8))})
    (tmp_path / "c.safetensors").write_bytes(raw)
    with pytest.raises(MaskFileError, match="dtype 'C64'"):
        load_masks(tmp_path / "c.safetensors")


# ----------------------------------------------------------------- 5: not a regular file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_is_refused_before_opening(tmp_path, small):  # 5
    fifo = tmp_path / "masks.safetensors"
    os.mkfifo(fifo)
    for call in (lambda: load_masks(fifo, net=small), lambda: read_metadata(fifo)):
        with pytest.raises(MaskFileError, match="not a regular file"):
            call()
    (tmp_path / "lth").mkdir()
    os.mkfifo(tmp_path / "lth" / "mask.pth")
    with pytest.raises(MaskFileError, match="not a regular file"):
        load_masks(tmp_path / "lth")
    with pytest.raises(MaskFileError, match="not a regular file"):
        load_masks("/dev/null")


# --------------------------------------------------------------------- fuzzing the readers

# CI-sized by default; HYPOTHESIS_PROFILE=thorough runs 1000 mutations per format
FUZZ_EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 40
FUZZ_FORMATS = ("safetensors", "npz", "torch", "torch_legacy", "torch_prune", "ao_sparsifier",
                "open_lth")


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory, small):
    d = tmp_path_factory.mktemp("fuzz_sources")
    masks = _canonical_masks(small, seed=11)
    out = {}
    for fmt in FUZZ_FORMATS:
        if fmt == "torch_legacy":
            path = d / "legacy.pt"
            torch.save({k: torch.from_numpy(v) for k, v in masks.items()}, path,
                       _use_new_zipfile_serialization=False)
        else:
            name = {"safetensors": "m.safetensors", "npz": "m.npz", "torch": "m.pt",
                    "torch_prune": "p.pt", "ao_sparsifier": "a.pt", "open_lth": "lth"}[fmt]
            path = save_masks(d / name, masks, net=small, format=fmt)
        out[fmt] = (path.name, path.read_bytes())
    return out


def _mutate(data: bytes, draw) -> bytes:
    raw = bytearray(data)
    kind = draw(st.sampled_from(["set", "set", "truncate", "delete", "insert", "length"]))
    if kind == "set":
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif kind == "delete":
        a = draw(st.integers(0, len(raw) - 1))
        del raw[a: a + draw(st.integers(1, 64))]
    elif kind == "insert":
        a = draw(st.integers(0, len(raw)))
        raw[a:a] = draw(st.binary(min_size=1, max_size=64))
    else:  # the 8 bytes that size the header (safetensors) or the first record (zip)
        raw[0:8] = draw(st.binary(min_size=8, max_size=8))
    return bytes(raw)


@pytest.mark.parametrize("fmt", FUZZ_FORMATS)
@settings(max_examples=FUZZ_EXAMPLES)
@given(data=st.data())
def test_fuzz_mask_file_readers(tmp_path_factory, valid_files, small, fmt, data):
    """Mutated files of every format: a read that succeeds returns canonical masks of the
    declared shapes, everything else is a SparseGraphError (never another exception)."""
    name, raw = valid_files[fmt]
    d = tmp_path_factory.mktemp("fuzz")
    bad = _mutate(raw, data.draw)
    if fmt == "open_lth":
        (d / "lth").mkdir()
        path = d / "lth" / "mask.pth"
        path.write_bytes(bad)
        mode = data.draw(st.sampled_from(["dir", "file"]))
        target = d / "lth" if mode == "dir" else path
    else:
        target = d / data.draw(st.sampled_from([name, "noext", "x.bin"]))
        target.write_bytes(bad)
    for net in (small, None):
        try:
            out = load_masks(target, net=net)
        except SparseGraphError as exc:
            assert "\n" not in str(exc)
            continue
        for key, value in out.items():
            assert _canonical_bytes(value), key
            if net is not None:
                assert value.shape == small.layer(key).shape
    try:
        read_metadata(target)
    except SparseGraphError:
        pass


# ------------------------------------------------------------------ 4: an unusable install


@pytest.fixture
def readonly_install(tmp_path):
    """A copy of the package that nobody can cache into: read-only, and with a regular file
    where each ``__pycache__`` would go (so even root cannot create one there)."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(ROOT / "sparsegraph", site / "sparsegraph",
                    ignore=shutil.ignore_patterns("__pycache__"))
    dirs = [p for p in (site / "sparsegraph").rglob("*") if p.is_dir()] + [site / "sparsegraph"]
    for d in dirs:
        (d / "__pycache__").write_bytes(b"")
    for p in [*dirs, *(site / "sparsegraph").rglob("*.py")]:
        p.chmod(p.stat().st_mode & ~0o222)
    yield site
    for p in [*dirs, *(site / "sparsegraph").rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def _isolated_env(tmp_path, site, **extra):
    blocker = tmp_path / "not_a_dir"  # a regular file: nothing can be created below it
    blocker.write_bytes(b"")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(blocker), TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(site))
    env.update({k: v.format(blocker=blocker) for k, v in extra.items()})
    return env


@pytest.mark.parametrize("extra", [{"NUMBA_CACHE_DIR": "{blocker}/numba"}, {}],
                         ids=["unwritable NUMBA_CACHE_DIR and HOME", "unwritable HOME"])
def test_read_only_install_falls_back_to_a_temporary_cache(tmp_path, readonly_install,
                                                           extra):  # 4
    env = _isolated_env(tmp_path, readonly_install, **extra)
    where = subprocess.run(
        [sys.executable, "-c", "import sparsegraph; print(sparsegraph.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.stdout.strip().startswith(str(readonly_install)), where.stderr
    proc = subprocess.run([sys.executable, "-m", "sparsegraph", "--help"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "generate" in proc.stdout, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warning) == 1 and "caching them in" in warning[0], proc.stderr
    fallback = Path(warning[0].split("caching them in ")[1].split(" instead")[0])
    assert fallback.parent == tmp_path / "tmp" and fallback.stat().st_mode & 0o077 == 0
    if extra:  # one real command: the kernels compile and are cached in the fallback
        proc = subprocess.run([sys.executable, "-m", "sparsegraph", "audit", "lenet300", "--json"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["network"]["params"] == 266_200
        assert list(fallback.rglob("*.nbi")), "no kernel was cached in the fallback directory"


def test_writable_cache_gives_no_warning(tmp_path):  # 4: nothing changes where numba can cache
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                           "import sparsegraph, os, sys; print(os.environ['NUMBA_CACHE_DIR'], "
                           "'numba' in sys.modules)"],
                          capture_output=True, text=True, env=env, timeout=120)
    # unchanged, and `import sparsegraph` itself still does not import numba
    assert proc.returncode == 0 and proc.stdout.split() == [str(tmp_path / "cache"), "False"], (
        proc.stderr)


def test_kernel_cache_fallback_refuses_a_directory_others_can_write(tmp_path, monkeypatch):  # 4
    import sparsegraph._numba_cache as nc

    shared = tmp_path / f"sparsegraph-numba-{os.geteuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # planted by someone else: numba's cache files are pickles
    monkeypatch.setattr(nc.tempfile, "tempdir", str(tmp_path))
    chosen = Path(nc._fallback())
    assert chosen != shared and chosen.parent == tmp_path and chosen.stat().st_mode & 0o077 == 0


# ------------------------------------------------------------------------ the command line


def cli(capsys, *argv):
    from sparsegraph.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *words):
    """Exit 2, one line on stderr, no traceback, naming each of ``words``."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a command starts building or tracing the model."""
    from sparsegraph.cli import build_parser

    def boom(*args, **kwargs):
        raise AssertionError("the command started computing before checking its outputs")

    build_parser()  # every sub-command module imported (and bound to the real one) first
    monkeypatch.setattr("sparsegraph.cli.common.load_network", boom)
    for mod in ("generate", "audit", "quotas"):
        monkeypatch.setattr(f"sparsegraph.cli.{mod}.load_net", boom)
    monkeypatch.setattr("sparsegraph.pytorch.models.resolve_model", boom)
    monkeypatch.setattr("sparsegraph.pytorch.models.build_model", boom)


GEN = ("generate", "lenet300", "--scheme", "erk", "--density", "0.05")


def _unwritable(monkeypatch, directory):
    """Make ``directory`` refuse new files: chmod for a normal user; for root (who ignores
    permissions) file creation there is made to fail as it would."""
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == directory.resolve():
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_generate_into_an_unwritable_directory(tmp_path, capsys, monkeypatch,
                                               no_compute):  # 12
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    try:
        code, _, err = cli(capsys, *GEN, "-o", locked / "m.safetensors")
        one_line_error(code, err, "-o", "cannot write in directory", "locked",
                       "Permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_save_masks_into_an_unwritable_directory(tmp_path, small, monkeypatch):  # 12
    locked = tmp_path / "locked"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    try:
        with pytest.raises(MaskFileError, match="Permission denied") as info:
            save_masks(locked / "m.safetensors", _canonical_masks(small))
        assert "m.safetensors" in str(info.value)
    finally:
        locked.chmod(0o755)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):  # 17
    import errno

    import sparsegraph.masks.files as mf

    def full_disk(fh, masks, meta):
        fh.write(b"\x10" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mf, "_write_safetensors", full_disk)
    target = tmp_path / "m.safetensors"
    code, _, err = cli(capsys, *GEN, "-o", target)
    one_line_error(code, err, "m.safetensors", "No space left on device", "Errno 28")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where, words", [
    ("missing/plot.png", ["--plot", "does not exist"]),
    ("DIR", ["--plot", "names a directory"]),
    ("DIR/", ["--plot", "names a directory"]),
    ("LOCKED/plot.png", ["--plot", "cannot write in directory"]),
])
@pytest.mark.parametrize("command", [("audit", "lenet300"),
                                     ("quotas", "lenet300", "--density", "0.1")])
def test_plot_paths_are_checked_before_computing(tmp_path, capsys, monkeypatch, no_compute,
                                                 where, words, command):  # 17
    (tmp_path / "DIR").mkdir()
    locked = tmp_path / "LOCKED"
    locked.mkdir()
    _unwritable(monkeypatch, locked)
    try:
        code, _, err = cli(capsys, *command, "--plot", str(tmp_path / where))
        one_line_error(code, err, *words)
    finally:
        locked.chmod(0o755)


def test_plot_without_matplotlib_is_one_line(capsys, monkeypatch, no_compute):  # 14
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    for command in (("audit", "lenet300"), ("quotas", "lenet300", "--density", "0.1")):
        code, _, err = cli(capsys, *command, "--plot", "x.png")
        one_line_error(code, err, "--plot", "matplotlib", "pip install 'sparsegraph-pai[plot]'")


def test_generate_into_an_existing_directory_needs_open_lth(tmp_path, capsys, lenet):  # 21
    target = tmp_path / "run"
    target.mkdir()
    code, _, err = cli(capsys, *GEN, "-o", target)
    one_line_error(code, err, "directory", "--format open_lth")
    assert list(target.iterdir()) == []
    code, out, err = cli(capsys, *GEN, "-o", target, "--format", "open_lth")
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == ["mask.pth", "sparsity_report.json"]
    assert sum(int(m.sum()) for m in load_masks(target, net=lenet).values()) == 13_310
    code, _, err = cli(capsys, *GEN, "-o", target, "--format", "open_lth")
    one_line_error(code, err, "mask.pth", "exists", "--force")
    with pytest.raises(MaskFileError, match="format='open_lth'"):
        save_masks(target, _canonical_masks(lenet))  # the library makes the same choice


def test_trailing_slash_never_makes_a_file(tmp_path, capsys, monkeypatch, lenet):  # 23
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *GEN, "-o", "newdir/")
    one_line_error(code, err, "newdir/", "directory")
    assert not Path("newdir").exists()
    with pytest.raises(MaskFileError, match="directory"):
        save_masks("newdir/", _canonical_masks(lenet))
    assert not Path("newdir").exists()
    code, _, err = cli(capsys, *GEN, "-o", "newdir/", "--format", "open_lth")
    assert code == 0, err
    assert (tmp_path / "newdir").is_dir() and (tmp_path / "newdir" / "mask.pth").is_file()


USER_MODELS = '''
import sys
import torch
from torch import nn


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 4), nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x, y):
        return self.c(self.a(x) + self.b(y))


class Quits(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 2)

    def forward(self, x):
        sys.exit(0)


def two():
    return Two()


def exits():
    sys.exit(0)


def quits():
    return Quits()
'''


@pytest.fixture
def user_models(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(USER_MODELS)
    return path


def test_factory_that_exits_is_an_error(tmp_path, capsys, user_models):  # 23
    code, _, err = cli(capsys, *GEN[:1], f"{user_models}:exits", *GEN[2:], "--input-shape",
                       "1,8", "-o", tmp_path / "m.safetensors")
    one_line_error(code, err, "exits", "sys.exit(0)")
    code, _, err = cli(capsys, *GEN[:1], f"{user_models}:quits", *GEN[2:], "--input-shape",
                       "1,8", "-o", tmp_path / "m.safetensors")
    one_line_error(code, err, "sys.exit(0)")
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(ModelSpecError, match="sys.exit"):
        from sparsegraph.pytorch.models import resolve_model

        resolve_model(f"{user_models}:exits", (1, 8))


def test_two_input_model_says_how_to_give_both(tmp_path, capsys, user_models):  # 20
    spec = f"{user_models}:two"
    code, _, err = cli(capsys, "audit", spec, "--input-shape", "1,8")
    one_line_error(code, err, "takes 2 inputs (x, y)", "1 input shape was given",
                   "--input-shape 1,3,32,32 --input-shape 1,10")
    code, out, err = cli(capsys, "audit", spec, "--input-shape", "1,8", "--input-shape", "1,3",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["network"]["params"] == 8 * 4 + 3 * 4 + 4 * 2
    code, _, err = cli(capsys, "audit", spec, "--input-shape", "1,8", "--input-shape", "1,3",
                       "--input-shape", "1,3")
    one_line_error(code, err, "takes 2 inputs", "3 input shapes were given")


@pytest.mark.parametrize("shape, words", [
    ("1,3,100000,100000", ["30,000,000,000 elements", "134,217,728"]),
    ("1," + "9" * 20, ["more than 12 digits"]),
    ("1,784;1," + "4" * 10, ["elements"]),
    ("1,0", ["positive integers"]),
])
def test_example_input_size_is_bounded(capsys, shape, words):  # 13
    argv = ["audit", "lenet300"]
    for part in shape.split(";"):
        argv += ["--input-shape", part]
    code, _, err = cli(capsys, *argv)
    one_line_error(code, err, *words)
    from sparsegraph.pytorch.models import MAX_INPUT_ELEMENTS, resolve_model

    with pytest.raises(ModelSpecError, match="elements"):
        resolve_model("lenet300", (1, MAX_INPUT_ELEMENTS + 1))


def test_huge_density_grid_is_refused_at_once(capsys):  # 5
    import time

    t = time.perf_counter()
    code, _, err = cli(capsys, "compare", "lenet300", "--densities", "0.1:0.0001:100000000",
                       "--workers", "0")
    one_line_error(code, err, "at most 1000 points", "100,000,000")
    assert time.perf_counter() - t < 30
    from sparsegraph.sweep.compare import MAX_GRID_POINTS, parse_density_grid

    assert len(parse_density_grid(f"0.1:0.0001:{MAX_GRID_POINTS}")) == MAX_GRID_POINTS
    import itertools

    with pytest.raises(QuotaError, match="at most"):
        parse_density_grid(itertools.repeat(0.5))  # an endless iterable is not read forever


# --------------------------------------------------------------- 22: interrupted writes

_SIGNAL_PROBE = """
import os, signal, sys
import sparsegraph.masks.files as mf
sig = getattr(signal, sys.argv[2])
def writer(fh, masks, meta):  # the signal arrives halfway through the write
    fh.write(b"\\\\0" * 65536)
    fh.flush()
    os.kill(os.getpid(), sig)
    fh.write(b"never")
mf._write_safetensors = writer
if sys.argv[3] == "cli":
    from sparsegraph.cli import main
    sys.exit(main(["generate", "lenet300", "--scheme", "erk", "--density", "0.05", "-o",
                   sys.argv[1]]))
try:
    mf.save_masks(sys.argv[1], {"fc.weight": [[1, 0], [0, 1]]})
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("sig, how, expect", [("SIGTERM", "cli", -15),
                                              pytest.param("SIGINT", "cli", 130,
                                                           marks=pytest.mark.slow),
                                              ("SIGHUP", "lib", -1), ("SIGTERM", "lib", -15),
                                              ("SIGINT", "lib", 130)])
def test_signal_during_generate_leaves_no_temporary(tmp_path, sig, how, expect):  # 22
    """The process still ends as the signal asks (killed by SIGTERM/SIGHUP; Ctrl-C prints
    "interrupted", status 130), but the temporary file is gone and no target was made."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_PROBE, str(out / "m.safetensors"), sig, how],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, proc.stderr
    assert list(out.iterdir()) == []  # neither the target nor a temporary
    if how == "cli" and sig == "SIGINT":
        assert proc.stderr.strip() == "interrupted"


def test_stale_temporaries_of_ours_are_swept(tmp_path, small):  # 22
    import time

    from sparsegraph._atomic import STALE_SECONDS

    old = time.time() - STALE_SECONDS - 60
    stale = tmp_path / ".m.safetensors.abcd_123.sgtmp"  # left by a SIGKILL'd writer
    fresh = tmp_path / ".m.safetensors.efgh4567.sgtmp"  # a writer still at work
    others = [tmp_path / ".m.safetensors.abcd1234.tmp", tmp_path / "notours.sgtmp",
              tmp_path / ".x.abcd1234.sgtmp.bak"]
    for p in (stale, fresh, *others):
        p.write_bytes(b"partial")
        os.utime(p, (old, old))
    os.utime(fresh, None)
    save_masks(tmp_path / "other.npz", _canonical_masks(small))
    assert not stale.exists() and fresh.exists() and all(p.exists() for p in others)


# ------------------------------------------------------------- library arguments (6, 9, ...)


def test_audit_effective_is_checked_like_a_mask(small):  # 6
    masks = _canonical_masks(small, seed=12)
    eff = sg.effective_masks(small, masks)
    assert sg.audit(small, masks, effective=eff).to_dict() == sg.audit(small, masks).to_dict()
    ones = {layer.name: np.ones(layer.shape) for layer in small.layers}
    nan = {layer.name: np.full(layer.shape, np.nan) for layer in small.layers}
    for bad, match in [
        ({}, "no mask for layer '0.weight'"),
        ({"0.weight": eff["0.weight"]}, "no mask for layer '2.weight'"),
        (ones, "keeps .* weights that the mask prunes"),
        (nan, "effective: .*NaN"),
        ({**eff, "0.weight": np.ones((3, 3))}, r"effective: .*expected shape \[6, 8\]"),
        ({**eff, "9.weight": np.ones((3, 3))}, "effective: unknown layer '9.weight'"),
        ([1, 2], "effective must be a mapping"),
    ]:
        with pytest.raises(MaskError, match=match):
            sg.audit(small, masks, effective=bad)


def _bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("masks, match", [
    ({"0.weight": np.ones((4, 3)), "1.running_mean": np.ones(4)}, "is a buffer, not a parameter"),
    ({"0.weight": np.ones((4, 3)), "2.weight": np.ones((3, 3))}, r"shape \[2, 4\]"),
    ({"0.weight": np.ones((4, 3)), "2.wieght": np.ones((2, 4))}, "no such parameter"),
    ({"0.weight": np.zeros((4, 3)), "2.weight": np.full((2, 4), 0.5)}, "found 0.5"),
])
def test_apply_masks_checks_all_then_touches(masks, match):  # 9
    model = _bn_model()
    before = _state(model)
    for method in ("prune", "parametrize", "inplace"):
        with pytest.raises(MaskError, match=match):
            sg.apply_masks(model, masks, method=method, rescale=True)
        after = _state(model)
        assert list(after) == list(before)
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert not any(hasattr(m, "weight_orig") for m in model.modules())


def test_apply_masks_method_clash_is_refused_before_touching():  # 9, a sibling
    for first, second, match in [("prune", "parametrize", "pruned by torch.nn.utils.prune"),
                                 ("parametrize", "prune", "is parametrized")]:
        model = _bn_model()
        sg.apply_masks(model, {"0.weight": np.ones((4, 3))}, method=first)
        before = _state(model)
        with pytest.raises(MaskError, match=match):
            sg.apply_masks(model, {"2.weight": np.eye(2, 4), "0.weight": np.ones((4, 3))},
                           method=second)
        after = _state(model)
        assert list(after) == list(before) and all(torch.equal(before[k], after[k])
                                                   for k in before)


class _Outputs(nn.Module):
    def __init__(self, kind):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.kind = nn.Linear(4, 8), nn.Linear(8, 3), kind

    def forward(self, x):
        out = self.b(torch.relu(self.a(x)))
        if self.kind == "tuple":
            return out, x
        if self.kind == "list":
            return [out, out]
        if self.kind == "dict":
            return {"hidden": x, "logits": out}
        if self.kind == "dict_no_logits":
            return {"out": out, "hidden": x}
        return out


@pytest.mark.parametrize("method", ["snip", "grasp"])
@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "dict_no_logits"])
def test_snip_grasp_take_the_logits_of_tuple_and_dict_outputs(method, kind):  # 10
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    ref = sg.prune(_Outputs("tensor"), method, density=0.3, example_input=x[:1], data=(x, y))
    got = sg.prune(_Outputs(kind), method, density=0.3, example_input=x[:1], data=(x, y))
    assert all(np.array_equal(ref[k], got[k]) for k in ref)
    # the batches are read once: a generator works as well as a list
    gen_data = ((x[i:i + 8], y[i:i + 8]) for i in (0, 8))
    got2 = sg.prune(_Outputs(kind), method, density=0.3, example_input=x[:1], data=gen_data)
    ref2 = sg.prune(_Outputs("tensor"), method, density=0.3, example_input=x[:1],
                    data=[(x[:8], y[:8]), (x[8:], y[8:])])
    assert all(np.array_equal(ref2[k], got2[k]) for k in ref2)


def test_snip_with_labels_that_do_not_fit_is_one_error():  # 10
    from sparsegraph.errors import TraceError

    x = torch.randn(16, 4)
    with pytest.raises(MaskError, match="data batch 0: cross entropy of logits"):
        sg.prune(_Outputs("tensor"), "snip", density=0.3, example_input=x[:1],
                 data=(x, torch.zeros(5, dtype=torch.long)))

    with pytest.raises(TraceError, match="data batch 1: the model failed on the batch: "
                                         "RuntimeError: mat1 and mat2 shapes"):
        sg.prune(_Outputs("tensor"), "grasp", density=0.3, example_input=x[:1],
                 data=[(x, torch.zeros(16, dtype=torch.long)),
                       (torch.randn(16, 5), torch.zeros(16, dtype=torch.long))])


@pytest.mark.filterwarnings("ignore:.*(beta state|deprecated).*:UserWarning")
@pytest.mark.parametrize("kind", ["float8_e4m3fn", "float8_e5m2", "bfloat16", "sparse_coo",
                                  "sparse_csr", "quantized"])
def test_odd_torch_masks_through_every_door(tmp_path, small, kind):  # 15
    canon = _canonical_masks(small, seed=13, density=0.5)

    def make(v):
        t = torch.from_numpy(v)
        if kind.startswith("float8") or kind == "bfloat16":
            return t.to(getattr(torch, kind))
        if kind == "sparse_coo":
            return t.float().to_sparse()
        if kind == "sparse_csr":
            return t.float().to_sparse_csr()
        return torch.quantize_per_tensor(t.float(), 1.0, 0, torch.qint8)

    odd = {k: make(v) for k, v in canon.items()}
    checked = sg.check_masks(small, odd)
    assert all(_canonical_bytes(checked[k]) and np.array_equal(checked[k], canon[k])
               for k in canon)
    path = save_masks(tmp_path / "m.safetensors", odd, net=small)
    assert all(np.array_equal(load_masks(path, net=small)[k], canon[k]) for k in canon)
    m1, m2 = _bn_free_pair()
    sg.apply_masks(m1, canon)
    sg.apply_masks(m2, odd)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert sg.quotas(small, "from_mask", masks=odd) == sg.quotas(small, "from_mask", masks=canon)
    assert sg.audit(small, odd).to_dict() == sg.audit(small, canon).to_dict()


def _bn_free_pair():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    b = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    b.load_state_dict(a.state_dict())
    return a, b


def test_meta_and_complex_masks_are_refused_everywhere(tmp_path, small):  # 15
    for make, match in [(lambda v: torch.from_numpy(v).to("meta"), "meta device"),
                        (lambda v: torch.from_numpy(v).to(torch.complex64), "complex64")]:
        odd = {k: make(v) for k, v in _canonical_masks(small).items()}
        for call in (lambda odd=odd: sg.check_masks(small, odd),
                     lambda odd=odd: save_masks(tmp_path / "m.safetensors", odd, net=small),
                     lambda odd=odd: sg.apply_masks(_bn_free_pair()[0], odd),
                     lambda odd=odd: sg.audit(small, odd)):
            with pytest.raises(MaskError, match=match):
                call()
        with pytest.raises(QuotaError, match=match):
            sg.quotas(small, "from_mask", masks=odd)
        assert not (tmp_path / "m.safetensors").exists()


def test_zero_size_layers_keep_nothing_and_never_divide():  # 16
    import warnings

    with warnings.catch_warnings():  # torch: "Initializing zero-element tensors is a no-op"
        warnings.simplefilter("ignore", UserWarning)
        model = nn.Sequential(nn.Linear(16, 0), nn.ReLU(), nn.Linear(0, 4), nn.ReLU(),
                              nn.Linear(4, 3))
    net = sg.trace(model, torch.zeros(1, 16))
    assert [layer.params for layer in net.layers] == [0, 0, 12]
    for scheme in ("uniform", "uniform+", "er", "erk", "er_graph", "igq"):
        q = sg.quotas(net, scheme, density=0.5)
        assert q["0.weight"] == q["2.weight"] == 1.0 and q["4.weight"] == 0.5, scheme
        masks = sg.random_masks(net, q, seed=0)
        assert [int(m.sum()) for m in masks.values()] == [0, 0, 6]
    q = sg.quotas(net, "from_mask", masks={"4.weight": np.eye(4, 3).T}, density=0.25)
    assert q["4.weight"] == 0.25
    from sparsegraph.masks.quotas import quota_counts

    assert quota_counts(net, {"4.weight": 0.5}) == {"0.weight": 0, "2.weight": 0,
                                                    "4.weight": 6}


@pytest.mark.parametrize("call", [
    lambda p: load_masks(p, net="lenet300"),
    lambda p: sg.audit("lenet300", {}),
    lambda p: sg.effective_masks("lenet300", {}),
    lambda p: sg.spectral("lenet300", {}),
    lambda p: sg.check_masks("lenet300", {}),
    lambda p: save_masks(p, {}, net="lenet300"),
    lambda p: sg.audit(nn.Linear(3, 2), {}),
], ids=["load_masks", "audit", "effective_masks", "spectral", "check_masks", "save_masks",
        "audit(module)"])
def test_a_name_or_module_where_a_network_is_expected(tmp_path, small, call):  # 19
    path = save_masks(tmp_path / "m.safetensors", _canonical_masks(small))
    with pytest.raises(ArgumentError, match="expected a Network from sparsegraph.trace") as info:
        call(path)
    msg = str(info.value)
    assert "sg.trace(" in msg
    if "lenet300" in msg:
        assert "sg.build_model('lenet300')" in msg


def test_layer_spectrum_with_crafted_bytes(small):  # 1, a sibling: the segfault path
    """``layer_spectrum`` takes one mask directly: it too goes through the door (the kernel
    that lists a mask's positions sums the bytes of 8-byte words)."""
    from sparsegraph.metrics.spectral import layer_spectrum

    rng = np.random.default_rng(15)
    layer = small.layer("0.weight")
    for _ in range(5):
        canon = rng.random(layer.shape) < 0.6
        crafted = _crafted({"m": canon}, seed=int(rng.integers(1 << 30)))["m"]
        assert layer_spectrum(layer, crafted) == layer_spectrum(layer, canon)
        assert layer_spectrum(layer, torch.from_numpy(crafted)).kept == int(canon.sum())
    with pytest.raises(MaskError, match=r"expected shape \[6, 8\]"):
        layer_spectrum(layer, np.ones((8, 6), bool))


def test_open_lth_pair_is_written_together(tmp_path, small, monkeypatch):  # a sibling of 9
    import sparsegraph.masks.files as mf

    real = mf._atomic_write

    def fail_on_report(path, write, overwrite):
        if path.name == "sparsity_report.json":
            raise MaskFileError(f"cannot write {path}: [Errno 28] No space left on device")
        real(path, write, overwrite)

    monkeypatch.setattr(mf, "_atomic_write", fail_on_report)
    with pytest.raises(MaskFileError, match="No space"):
        save_masks(tmp_path / "run", _canonical_masks(small), format="open_lth")
    assert list(tmp_path.iterdir()) == []  # neither a lone mask.pth nor the new directory


def test_loaded_torch_masks_do_not_map_the_file(tmp_path, small):  # a sibling of 2
    masks = _canonical_masks(small, seed=16)
    path = save_masks(tmp_path / "m.pt", masks)
    back = load_masks(path)
    path.write_bytes(b"")  # truncated in place: a view of the old mapping would fault
    assert all(v.flags.owndata and np.array_equal(v, masks[k]) for k, v in back.items())


def _cli_hostile_files(d, lenet):
    d = Path(d)
    masks = _canonical_masks(lenet, seed=17)
    tensors = {k: ("BOOL", m.shape, m.astype(np.uint8).tobytes()) for k, m in masks.items()}
    out = {}
    out["deep metadata"] = d / "deep.safetensors"
    out["deep metadata"].write_bytes(_safetensors_bytes(tensors, {"sparsegraph": DEEP}))
    out["layer_shapes [1, 2]"] = d / "ls.safetensors"
    out["layer_shapes [1, 2]"].write_bytes(_safetensors_bytes(
        tensors, {"sparsegraph": json.dumps({"layer_shapes": [1, 2], "fingerprint": "x"})}))
    out["layer_shapes [null]"] = d / "null.npz"
    np.savez(out["layer_shapes [null]"], **masks,
             __metadata__=np.frombuffer(b'{"layer_shapes": [null]}', dtype=np.uint8))
    save_masks(d / "lth", masks, format="open_lth")
    (d / "lth" / "sparsity_report.json").write_text(
        '{"total": ' + "9" * 300 + ', "unpruned": 1}')
    out["open_lth 300 digits"] = d / "lth"
    out["torch named safetensors"] = d / "t.safetensors"
    torch.save({k: torch.from_numpy(v) for k, v in masks.items()}, out["torch named safetensors"])
    out.update({k: v for k, v in hostile_files(d).items() if k in ("stride0_50k",
                                                                   "deflate_bomb_4e9")})
    if hasattr(os, "mkfifo"):
        out["named pipe"] = d / "pipe.safetensors"
        os.mkfifo(out["named pipe"])
    return out


def test_hostile_files_on_the_command_line(tmp_path, capsys, lenet):  # 2, 3, 5, 8, 11, 18
    expected = {"deep metadata": "nested", "layer_shapes [1, 2]": "layer_shapes",
                "layer_shapes [null]": "layer_shapes", "open_lth 300 digits": "300 digits",
                "torch named safetensors": "is a torch file", "stride0_50k": "shape differs",
                "deflate_bomb_4e9": "shape differs", "named pipe": "not a regular file"}
    for label, path in _cli_hostile_files(tmp_path, lenet).items():
        for command in ("audit", "spectral"):
            code, _, err = cli(capsys, command, "lenet300", path)
            one_line_error(code, err, expected[label], path.name)


@pytest.mark.parametrize("fmt", ["npz", "torch"])
def test_zip_needing_a_newer_version_is_a_mask_file_error(tmp_path, valid_files, small, fmt):
    """Found by the thorough fuzz profile: zipfile raises NotImplementedError for an archive
    whose central directory asks for extract version 6.4."""
    name, raw = valid_files[fmt]
    data = bytearray(raw)
    at = data.index(b"PK\x01\x02")
    data[at + 6: at + 8] = struct.pack("<H", 64)
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(MaskFileError, match="corrupt or truncated zip archive"):
        load_masks(tmp_path / name, net=small)


def test_stored_names_with_control_characters_stay_on_one_line(tmp_path, small, capsys):
    """Found by the thorough fuzz profile: a key holding a newline broke the one-line rule."""
    torch.save({"0.weight": torch.ones(6, 8), "evil\n.weight": torch.ones(2, 2)},
               tmp_path / "m.pt")
    with pytest.raises(MaskFileError) as info:
        load_masks(tmp_path / "m.pt", net=small)
    assert "\n" not in str(info.value) and "'evil\\n.weight'" in str(info.value)
    net_path = tmp_path / "net.py"
    net_path.write_text("import torch.nn as nn\ndef make():\n    return nn.Sequential("
                        "nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))\n")
    code, _, err = cli(capsys, "audit", f"{net_path}:make", tmp_path / "m.pt",
                       "--input-shape", "1,8")
    one_line_error(code, err, "not in the network")
