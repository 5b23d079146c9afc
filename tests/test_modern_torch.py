"""Everything on top of the tracer works for modern models (issue 11, item 4): quotas on token
Linears and attention projections with embeddings left out, the pruners on token inputs, and
apply/extract/save/load with HF-style names and a tied embedding / LM head."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo import HF_ZOO, ZOO, hf_available

import sparsegraph as sg


def _gpt():
    model, args, _ = ZOO["gpt2_sdpa"].make(seed=0)
    return model, args[0]


class TokenClassifier(nn.Module):
    """Token ids -> embedding -> one encoder layer (nn.MultiheadAttention inside) -> classes."""

    def __init__(self, vocab: int = 30, d: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoderLayer(d, 2, 32, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(ids)).mean(1))


def test_quotas_cover_token_linears_and_attention_but_not_embeddings():
    model, ids = _gpt()
    net = sg.trace(model, ids)
    skipped = dict(net.skipped)
    assert any("constant" in why for why in skipped.values())  # the position embedding
    q = sg.quotas(net, "erk", density=0.05)
    assert set(q) == set(net.names)
    masks = sg.random_masks(net, q, seed=0)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.05 * net.params)
    vit = sg.trace(*sg.build_model("vit_tiny"))
    kinds = {n.kind for n in vit.nodes}
    assert {"matmul", "softmax", "layer"} <= kinds
    qv = sg.quotas(vit, "igq", density=0.02)
    assert all(0 < d <= 1 for d in qv.values())


@pytest.mark.parametrize("scheme", ["random", "magnitude", "snip", "grasp", "synflow", "lamp"])
def test_pruners_on_token_inputs_keep_exact_counts(scheme):
    torch.manual_seed(0)
    model = TokenClassifier()
    ids, y = torch.randint(0, 30, (4, 7)), torch.randint(0, 3, (4,))
    kw = {"data": (ids, y)} if scheme in ("snip", "grasp") else {}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        masks = sg.prune(model, scheme, density=0.2, example_input=ids[:1], rounds=5, **kw)
    net = sg.trace(model, ids[:1])
    assert list(masks) == net.names
    assert sum(int(m.sum()) for m in masks.values()) == round(0.2 * net.params)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    rep = sg.audit(net, masks)
    assert rep.network.effective <= rep.network.kept


@pytest.mark.parametrize("method", ["prune", "parametrize", "inplace"])
def test_tied_embedding_and_head_share_one_mask_through_training(method, tmp_path):
    model, ids = _gpt()
    net = sg.trace(model, ids)
    tied = [n for n in net.names if len(net.uses(n)) == 2]
    assert len(tied) == 1
    masks = sg.random_masks(net, sg.quotas(net, "uniform", density=0.3), seed=1)
    path = tmp_path / "m.safetensors"
    sg.save_masks(path, masks, net=net)
    back = sg.load_masks(path, net=net)
    sg.apply_masks(model, back, method=method)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 32
             and m.in_features != 32]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(2):
        opt.zero_grad()
        logits = model(ids)
        F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1)).backward()
        opt.step()
    with torch.no_grad():
        model(ids)  # recompute masked weights
    emb = next(m for m in model.modules() if isinstance(m, nn.Embedding)
               and m.num_embeddings == 32)
    keep = torch.from_numpy(back[tied[0]])
    assert (emb.weight[~keep] == 0).all()
    for head in heads:  # the LM head uses the same masked weight
        assert torch.equal(head.weight, emb.weight)
    out = sg.extract_masks(model)
    for name, m in back.items():
        np.testing.assert_array_equal(out[name], m, err_msg=name)


@pytest.mark.skipif(not hf_available(), reason="transformers is not installed")
def test_hf_gpt2_conv1d_names_round_trip(tmp_path):
    model, args, _ = HF_ZOO["hf_gpt2"].make(seed=0)
    net = sg.trace(model, args[0])
    conv1d = [layer for layer in net.layers if layer.transposed]
    assert conv1d and all(layer.kind == "linear" for layer in conv1d)  # HF Conv1D: (in, out)
    masks = sg.random_masks(net, sg.quotas(net, "erk", density=0.1), seed=0)
    sg.apply_masks(model, masks)
    out = sg.extract_masks(model)
    assert set(out) == set(masks)
    for name, m in masks.items():
        np.testing.assert_array_equal(out[name], m, err_msg=name)
    assert sg.audit(net, out).network.kept == sum(int(m.sum()) for m in masks.values())


def _run(*args, cwd):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sparsegraph", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_on_the_modern_builtins(tmp_path):
    gen = _run("generate", "mobilenet_v3_small", "--scheme", "erk", "--density", "0.01", "-o",
               "m.safetensors", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert "mobilenet_v3_small" in gen.stdout and (tmp_path / "m.safetensors").is_file()
    _run("generate", "vit_tiny", "--scheme", "igq", "--density", "0.05", "-o", "v.safetensors",
         cwd=tmp_path)
    audit = _run("audit", "vit_tiny", "v.safetensors", "--json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    import json

    data = json.loads(audit.stdout)
    assert 0 < data["network"]["effective"] <= data["network"]["kept"]
    assert any(r["name"].endswith("qkv.weight") for r in data["layers"])


@pytest.mark.slow
@pytest.mark.skipif(not hf_available(), reason="transformers is not installed")
def test_cli_with_a_huggingface_factory_returning_token_ids(tmp_path):
    (tmp_path / "lm.py").write_text(
        "import torch\n"
        "from transformers import GPT2Config, GPT2LMHeadModel\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=16,\n"
        "                     bos_token_id=0, eos_token_id=0)\n"
        "    return GPT2LMHeadModel(cfg).eval(), torch.randint(0, 64, (1, 8))\n")
    gen = _run("generate", "lm.py:make", "--scheme", "erk", "--density", "0.1", "-o",
               "lm.safetensors", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    audit = _run("audit", "lm.py:make", "lm.safetensors", "--json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    import json

    data = json.loads(audit.stdout)
    names = [r["name"] for r in data["layers"]]
    assert "transformer.wte.weight" in names and "transformer.h.0.attn.c_attn.weight" in names
    assert [s["name"] for s in data["skipped"]] == ["transformer.wpe.weight"]
