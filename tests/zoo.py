"""A zoo of small, randomly initialised modern architectures, and a generator of random ones.

Each :class:`ZooCase` is a factory, its example inputs (positional and keyword) and the DESIGN §3
kinds of operation it exercises; its prunable parameters are DESIGN §2's defaults
(:func:`reference.default_prunable`: every Linear / Conv / transposed-conv weight,
``nn.MultiheadAttention``'s packed ``in_proj_weight``, HF ``Conv1D``; a tied embedding / LM head is
one parameter under its first name). The models (``zoo_vision.py``, ``zoo_sequence.py``) are
written after the architectures' papers and reference code (read, not copied), at toy widths:
each runs in milliseconds.

``ZOO`` maps a name to its case; ``HF_ZOO`` holds tiny HuggingFace transformers models built
from configs (no download), usable only when ``transformers`` imports (``hf_available()``).
``HAND_CASES`` (``zoo_hand.py``) are tiny models with masks whose effective masks are worked out
on paper. :func:`random_network` (``zoo_random.py``) is a hypothesis strategy for small networks
that mix gates (sigmoid products, GLU, SwiGLU), permutes with channels-last Linears, slicing,
softmax attention (causal or not), upsampling and residual adds; ``linear_only=True`` leaves out
the gates and attention, for a comparison with the older all-ones oracle
(:func:`reference.autograd_effective`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from reference import default_prunable
from torch import nn
from zoo_hand import HAND_CASES, HandCase
from zoo_random import random_network
from zoo_sequence import (
    GatedMLPs,
    MultiIO,
    TinyBert,
    TinyGPT,
    TorchEncoder,
    encoder_inputs,
    multi_inputs,
    tokens,
    tokens_with_padding,
)
from zoo_vision import (
    Conv1dNet,
    Conv3dNet,
    HRFuse,
    SENet,
    TinyConvNeXt,
    TinyMixer,
    TinyShuffleNet,
    TinySwin,
    TinyUNet,
)

__all__ = ["HAND_CASES", "HF_ZOO", "ZOO", "HandCase", "ZooCase", "hf_available",
           "random_network"]


@dataclass(frozen=True)
class ZooCase:
    """A zoo model: ``build()`` makes the module, ``inputs()`` its ``(args, kwargs)``."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], tuple[tuple, dict]]
    kinds: tuple[str, ...]
    requires: str | None = None
    slow: bool = False
    prunable: Callable[[nn.Module], list[str]] = field(default=default_prunable)

    def make(self, seed: int = 0) -> tuple[nn.Module, tuple, dict]:
        """The model (eval mode) and its example inputs, deterministically from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.build().eval()
            args, kwargs = self.inputs()
        return model, args, kwargs


def _image(c: int = 3, h: int = 16, w: int | None = None) -> Callable[[], tuple[tuple, dict]]:
    return lambda: ((torch.rand(1, c, h, h if w is None else w),), {})



_ATTN = ("contraction (QK^T, AV)", "softmax over keys")

ZOO: dict[str, ZooCase] = {case.name: case for case in (
    ZooCase("convnext", TinyConvNeXt, _image(),
            ("depthwise 7x7 conv (taps off the map)", "Linear on 4-D channels-last",
             "permute", "LayerNorm as identity", "layer scale gamma * x (constant factor)",
             "residual add", "mean over H, W")),
    ZooCase("swin", TinySwin, _image(),
            ("window partition/reverse (view, permute, reshape; rank 6)", "torch.roll",
             "strided slicing + cat (patch merging)", *_ATTN,
             "relative position bias (gathered constant, added)",
             "shifted-window mask -100 (a finite constant: no masking)", "residual add")),
    ZooCase("swin_inf", lambda: TinySwin(float("-inf")), _image(),
            ("as swin, with a -inf shifted-window mask (masked scores)",)),
    ZooCase("shufflenet", TinyShuffleNet, _image(),
            ("chunk", "cat", "channel shuffle (view, transpose)", "depthwise conv",
             "max-pool with padding")),
    ZooCase("hrnet_fuse", HRFuse, _image(),
            ("nn.Upsample nearest", "nn.Upsample bilinear", "add of resolutions", "cat",
             "strided conv")),
    ZooCase("unet", TinyUNet, _image(),
            ("ConvTranspose2d stride 2", "cat skips", "max-pool")),
    ZooCase("gpt2_sdpa", lambda: TinyGPT("sdpa"), tokens(),
            ("embedding lookup of token ids (source)", "position embedding (constant)",
             "split, view, transpose", "scaled_dot_product_attention is_causal",
             "tied LM head (one parameter, two uses)", *_ATTN)),
    ZooCase("gpt2_masked", lambda: TinyGPT("masked"), tokens(),
            ("as gpt2_sdpa with masked_fill(-inf) of a tril buffer + softmax",)),
    ZooCase("bert_mha", TinyBert, tokens_with_padding(),
            ("nn.MultiheadAttention packed in_proj_weight (q/k/v row blocks)",
             "key padding mask from an integer keyword input (-inf)",
             "embeddings: source (word) and constants (position, type)",
             "post-norm residual", "slice x[:, 0] + tanh pooler", *_ATTN)),
    ZooCase("torch_encoder", TorchEncoder, encoder_inputs,
            ("nn.TransformerEncoderLayer (fused fast path in eval)", "bool padding input",
             "pre-norm", *_ATTN)),
    ZooCase("mixer", TinyMixer, _image(),
            ("transpose + token-mixing Linear", "channel-mixing Linear", "residual add")),
    ZooCase("gated_mlp", GatedMLPs, lambda: ((torch.rand(1, 4, 8),), {}),
            ("product: GLU (value * sigmoid gate)", "product: SwiGLU (silu(a) * b)",
             "Linear on (T, D) tokens", "residual add")),
    ZooCase("se", SENet, _image(),
            ("product: squeeze-excitation sigmoid gate", "view + expand_as", "mean")),
    ZooCase("conv1d", Conv1dNet, lambda: ((torch.rand(1, 2, 16),), {}),
            ("Conv1d padding/dilation/groups/stride", "max_pool1d", "adaptive_avg_pool1d")),
    ZooCase("conv3d", Conv3dNet, lambda: ((torch.rand(1, 1, 6, 6, 6),), {}),
            ("Conv3d", "max_pool3d", "mean over 3 axes")),
    ZooCase("multi_io", MultiIO, multi_inputs,
            ("three inputs (one keyword)", "dict output", "cat", "Linear on tokens")),
)}

# ----------------------------------------------------------------------------- transformers


def hf_available() -> bool:
    """Whether ``transformers`` imports here."""
    try:
        import transformers  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


def _hf_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=16))


def _hf_gpt2(attn: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                            use_cache=False, bos_token_id=0, eos_token_id=0)
        config._attn_implementation = attn
        return GPT2LMHeadModel(config)

    return build


def _hf_vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(image_size=16, patch_size=4, hidden_size=16,
                                               num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=32, num_labels=5))


HF_ZOO: dict[str, ZooCase] = {case.name: case for case in (
    ZooCase("hf_bert", _hf_bert, tokens_with_padding(), requires="transformers",
            kinds=("HF BertModel: separate q/k/v Linears, sdpa with an additive padding mask "
                   "(finfo.min) from attention_mask", "ModelOutput (last_hidden_state, "
                   "pooler_output)", "word embedding source, position/type constants")),
    ZooCase("hf_gpt2", _hf_gpt2("sdpa"), tokens(), requires="transformers",
            kinds=("HF GPT2LMHeadModel: Conv1D (weight (in, out), addmm)", "tied LM head",
                   "causal sdpa", "ModelOutput logits")),
    ZooCase("hf_gpt2_eager", _hf_gpt2("eager"), tokens(), requires="transformers",
            kinds=("as hf_gpt2 with the eager attention (matmul, causal mask, softmax)",)),
    ZooCase("hf_vit", _hf_vit, _image(3, 16), requires="transformers",
            kinds=("HF ViTForImageClassification: patch conv, class token cat, position "
                   "embedding add, q/k/v Linears, sdpa", "ModelOutput logits")),
)}
