"""A zoo of small, randomly initialised modern architectures, and a generator of random ones.

Each :class:`ZooCase` is a factory, its example inputs (positional and keyword) and the DESIGN §3
kinds of operation it exercises; its prunable parameters are DESIGN §2's defaults
(:func:`reference.default_prunable`: every Linear / Conv / transposed-conv weight,
``nn.MultiheadAttention``'s packed ``in_proj_weight``, HF ``Conv1D``; a tied embedding / LM head is
one parameter under its first name). The models are written here after the architectures'
papers and reference code (read, not copied), at toy widths: each runs in milliseconds.

``ZOO`` maps a name to its case; ``HF_ZOO`` holds tiny HuggingFace transformers models built
from configs (no download), usable only when ``transformers`` imports (``hf_available()``).

:func:`random_network` is a hypothesis strategy for small networks that mix gates (sigmoid
products, GLU, SwiGLU), permutes with channels-last Linears, slicing, softmax attention (causal
or not), upsampling and residual adds; ``linear_only=True`` leaves out the gates and attention,
for a comparison with the older all-ones oracle (:func:`reference.autograd_effective`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from reference import default_prunable
from torch import nn

__all__ = ["HF_ZOO", "ZOO", "ZooCase", "hf_available", "random_network"]


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


def _conv_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1,
                  groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


# ----------------------------------------------------------------------------- ConvNeXt


class ConvNeXtBlock(nn.Module):
    """Liu et al. 2022: depthwise 7x7, channels-last LayerNorm (permute), Linear 4x expansion on
    the 4-D channels-last tensor, GELU, Linear back, layer scale ``gamma * x``, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class ChannelsFirstLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor, through two permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    """Patchify stem 2x2/2, two blocks at width 8 (8x8), LayerNorm + 2x2/2 downsampling to 16,
    one block (4x4: the 7x7 depthwise kernel's corner taps fall off the map), global mean,
    LayerNorm, Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 2, stride=2), ChannelsFirstLayerNorm(8))
        self.stage1 = nn.Sequential(ConvNeXtBlock(8), ConvNeXtBlock(8))
        self.down = nn.Sequential(ChannelsFirstLayerNorm(8), nn.Conv2d(8, 16, 2, stride=2))
        self.stage2 = ConvNeXtBlock(16)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(self.norm(x.mean((-2, -1))))


# ----------------------------------------------------------------------------- Swin


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, ws * ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * windows, ws * ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    """Window self-attention with a learned relative position bias (Liu et al. 2021)."""

    def __init__(self, dim: int, ws: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * ws - 1) ** 2, heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
        flat = coords.flatten(1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP on (B, H*W, C) tokens; the shifted-window
    mask keeps tokens from attending across the regions that ``torch.roll`` glued together,
    with ``mask_value`` (-100 as in the reference code, or -inf)."""

    def __init__(self, dim: int, heads: int, res: int, ws: int, shift: int,
                 mask_value: float) -> None:
        super().__init__()
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        mask = None
        if shift:
            img = torch.zeros(1, res, res, 1)
            cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
            for i, (hs, wsl) in enumerate((h, w) for h in cuts for w in cuts):
                img[:, hs, wsl, :] = i
            windows = window_partition(img, ws).squeeze(-1)
            diff = windows.unsqueeze(1) - windows.unsqueeze(2)
            mask = diff.masked_fill(diff != 0, mask_value).masked_fill(diff == 0, 0.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        h = w = self.res
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_reverse(self.attn(window_partition(y, self.ws), self.attn_mask), self.ws, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(b, length, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhoods concatenated by strided slicing, LayerNorm, Linear 4C -> 2C."""

    def __init__(self, dim: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.res, self.res, c)
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, -1).view(b, -1, 4 * c)))


class TinySwin(nn.Module):
    """Patch embedding 2x2/2 to 8x8 tokens of width 16; a window (4x4) block and a shifted one
    (shift 2); patch merging to 4x4 of width 32; one global-window block; mean over tokens;
    head."""

    def __init__(self, mask_value: float = -100.0) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 16, 2, stride=2)
        self.blocks = nn.Sequential(SwinBlock(16, 2, 8, 4, 0, mask_value),
                                    SwinBlock(16, 2, 8, 4, 2, mask_value))
        self.merge = PatchMerging(16, 8)
        self.last = SwinBlock(32, 4, 4, 4, 0, mask_value)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.last(self.merge(self.blocks(x)))
        return self.head(self.norm(x).mean(1))


# ----------------------------------------------------------------------------- ShuffleNet-v2


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet-v2 unit (Ma et al. 2018): stride 1 splits the channels in two (``chunk``) and
    transforms one half; stride 2 transforms the whole input in two branches; ``cat`` and a
    channel shuffle end both."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
                nn.BatchNorm2d(c_in), _conv_bn_relu(c_in, half, 1))
        self.branch2 = nn.Sequential(
            _conv_bn_relu(c_in if stride > 1 else half, half, 1),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            _conv_bn_relu(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class TinyShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(3, 8, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stage2 = nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1))
        self.conv5 = _conv_bn_relu(16, 32, 1)
        self.fc = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stage2(self.maxpool(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


# ----------------------------------------------------------------------------- HRNet fuse


class HRFuse(nn.Module):
    """Two resolutions exchanged as in HRNet (Wang et al. 2020): the low branch reaches the high
    one by 1x1 conv + nearest ``nn.Upsample``, the high one reaches the low one by a strided
    3x3 conv, both by ``add``; the head concatenates the high map with the bilinearly
    upsampled low map. Output: a (3, 16, 16) map."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(3, 4)
        self.high = _conv_bn_relu(4, 4)
        self.low = _conv_bn_relu(4, 8, 3, 2)
        self.low_to_high = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4),
                                         nn.Upsample(scale_factor=2, mode="nearest"))
        self.high_to_low = nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8))
        self.low_out = nn.Conv2d(8, 4, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        high, low = self.high(x), self.low(x)
        high, low = F.relu(high + self.low_to_high(low)), F.relu(low + self.high_to_low(high))
        return self.head(torch.cat([high, self.up(self.low_out(low))], dim=1))


# ----------------------------------------------------------------------------- U-Net


class TinyUNet(nn.Module):
    """Ronneberger et al. 2015 at depth 2: double 3x3 convs, max-pool down, 2x2/2 transposed
    convolutions up, ``cat`` skips, 1x1 output conv; a (2, 16, 16) map."""

    def __init__(self) -> None:
        super().__init__()

        def double(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(_conv_bn_relu(c_in, c_out), _conv_bn_relu(c_out, c_out))

        self.enc1, self.enc2, self.bottleneck = double(3, 4), double(4, 8), double(8, 16)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec2 = double(16, 8)
        self.up1 = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.dec1 = double(8, 4)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottleneck(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.out(d1)


# ----------------------------------------------------------------------------- GPT-2


class CausalSelfAttention(nn.Module):
    """GPT-2 attention: packed ``c_attn``, ``split``, heads by view/transpose, causal softmax
    attention either by ``F.scaled_dot_product_attention(is_causal=True)`` (``"sdpa"``) or
    explicitly, ``masked_fill(-inf)`` with a registered lower-triangular buffer and softmax
    (``"masked"``); ``c_proj``."""

    def __init__(self, dim: int, heads: int, context: int, attn: str) -> None:
        super().__init__()
        self.heads, self.attn = heads, attn
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        if attn == "masked":
            tril = torch.tril(torch.ones(context, context)).view(1, 1, context, context)
            self.register_buffer("bias", tril)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.size()
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        if self.attn == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context: int, attn: str) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, context, attn)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """GPT-2 layout (nanoGPT names): token and position embeddings, pre-norm blocks, final
    LayerNorm, LM head tied to the token embedding (``lm_head.weight is transformer.wte.weight``,
    one parameter named ``transformer.wte.weight``)."""

    def __init__(self, attn: str = "sdpa", vocab: int = 32, context: int = 8, dim: int = 16,
                 heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, dim),
            "wpe": nn.Embedding(context, dim),
            "h": nn.ModuleList(GPTBlock(dim, heads, context, attn) for _ in range(layers)),
            "ln_f": nn.LayerNorm(dim),
        })
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def _tokens(vocab: int = 32, length: int = 8) -> Callable[[], tuple[tuple, dict]]:
    return lambda: ((torch.randint(0, vocab, (1, length)),), {})


# ----------------------------------------------------------------------------- BERT


class BertLayer(nn.Module):
    """Post-norm encoder layer with ``nn.MultiheadAttention`` (packed ``in_proj_weight``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ln2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        a, _ = self.attention(x, x, x, key_padding_mask=pad, need_weights=False)
        x = self.ln1(x + a)
        return self.ln2(x + self.ffn(x))


class TinyBert(nn.Module):
    """BERT layout (Devlin et al. 2019): word + position + token-type embeddings (positions and
    types from buffers: constants), LayerNorm, two post-norm MHA layers with a padding mask from
    the ``attention_mask`` keyword input (1 = token, 0 = padding), tanh pooler on the first
    token, classifier."""

    def __init__(self, vocab: int = 32, context: int = 8, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(context, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.register_buffer("position_ids", torch.arange(context).unsqueeze(0))
        self.register_buffer("token_type_ids", torch.zeros(1, context, dtype=torch.long))
        self.emb_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(BertLayer(dim, heads) for _ in range(2))
        self.pooler = nn.Linear(dim, dim)
        self.classifier = nn.Linear(dim, 3)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = input_ids.shape[1]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :t])
             + self.token_type_embeddings(self.token_type_ids[:, :t]))
        x = self.emb_norm(x)
        pad = None if attention_mask is None else attention_mask == 0
        for layer in self.layers:
            x = layer(x, pad)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def _tokens_with_padding(vocab: int = 32, length: int = 8,
                         padding: int = 2) -> Callable[[], tuple[tuple, dict]]:
    def make() -> tuple[tuple, dict]:
        mask = torch.ones(1, length, dtype=torch.long)
        mask[:, length - padding:] = 0
        return (torch.randint(0, vocab, (1, length)),), {"attention_mask": mask}

    return make


class TorchEncoder(nn.Module):
    """``nn.TransformerEncoder`` of pre-norm ``nn.TransformerEncoderLayer``s (whose eval-mode
    fast path is one fused op) with a key padding mask, mean over tokens, head."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, src_key_padding_mask=padding).mean(1))


def _encoder_inputs() -> tuple[tuple, dict]:
    padding = torch.zeros(1, 6, dtype=torch.bool)
    padding[:, 4:] = True
    return (torch.rand(1, 6, 16), padding), {}


# ----------------------------------------------------------------------------- MLP-Mixer


class MixerBlock(nn.Module):
    """Tolstikhin et al. 2021: token mixing (transpose, Linear over the tokens) and channel
    mixing MLPs, pre-norm, residual."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, 2 * tokens), nn.GELU(),
                                       nn.Linear(2 * tokens, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(),
                                         nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class TinyMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.blocks = nn.Sequential(MixerBlock(16, 16), MixerBlock(16, 16))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(1))


# ----------------------------------------------------------------------------- gated MLPs, SE


class GatedMLPs(nn.Module):
    """On (B, T, D) tokens: a GLU MLP (Dauphin et al. 2017; ``F.glu``: first half times the
    sigmoid of the second) and a SwiGLU MLP (Shazeer 2020; ``silu(w1 x) * w3 x``), residual."""

    def __init__(self, dim: int = 8, hidden: int = 12) -> None:
        super().__init__()
        self.glu_in = nn.Linear(dim, 2 * hidden)
        self.glu_out = nn.Linear(hidden, dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.glu_out(F.glu(self.glu_in(x), dim=-1))
        return x + self.w2(F.silu(self.w1(x)) * self.w3(x))


class SENet(nn.Module):
    """Hu et al. 2018's squeeze-excitation with Linear layers and a sigmoid gate
    (``x * y.view(b, c, 1, 1).expand_as(x)``) between two convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(3, 8)
        self.fc = nn.Sequential(nn.Linear(8, 2, bias=False), nn.ReLU(),
                                nn.Linear(2, 8, bias=False), nn.Sigmoid())
        self.conv2 = _conv_bn_relu(8, 8, 3, 2)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        b, c = x.shape[:2]
        y = self.fc(x.mean((2, 3))).view(b, c, 1, 1)
        x = self.conv2(x * y.expand_as(x))
        return self.head(x.mean((2, 3)))


# ----------------------------------------------------------------------------- 1-D, 3-D


class Conv1dNet(nn.Module):
    """Conv1d with padding, dilation, groups and stride; max-pool; adaptive average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(4, 8, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv1d(8, 8, 3, stride=2, groups=4), nn.AdaptiveAvgPool1d(1))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool3d(2)
        self.conv2 = nn.Conv3d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.pool(F.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3, 4)))


# ----------------------------------------------------------------------------- several inputs


class MultiIO(nn.Module):
    """Three inputs (an image, a token tensor, and a keyword input ``extra``) and a dict output
    ``{"logits", "aux"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.img = nn.Conv2d(3, 4, 3, padding=1)
        self.tok = nn.Linear(6, 4)
        self.extra = nn.Linear(5, 4)
        self.fuse = nn.Linear(8, 4)
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, *,
                extra: torch.Tensor) -> dict[str, torch.Tensor]:
        tok = self.tok(tokens).mean(1)
        fused = self.fuse(torch.cat([self.img(image).mean((2, 3)), tok], dim=1))
        return {"logits": self.head(fused + self.extra(extra)), "aux": self.aux(tok)}


def _multi_inputs() -> tuple[tuple, dict]:
    return (torch.rand(1, 3, 8, 8), torch.rand(1, 4, 6)), {"extra": torch.rand(1, 5)}


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
    ZooCase("gpt2_sdpa", lambda: TinyGPT("sdpa"), _tokens(),
            ("embedding lookup of token ids (source)", "position embedding (constant)",
             "split, view, transpose", "scaled_dot_product_attention is_causal",
             "tied LM head (one parameter, two uses)", *_ATTN)),
    ZooCase("gpt2_masked", lambda: TinyGPT("masked"), _tokens(),
            ("as gpt2_sdpa with masked_fill(-inf) of a tril buffer + softmax",)),
    ZooCase("bert_mha", TinyBert, _tokens_with_padding(),
            ("nn.MultiheadAttention packed in_proj_weight (q/k/v row blocks)",
             "key padding mask from an integer keyword input (-inf)",
             "embeddings: source (word) and constants (position, type)",
             "post-norm residual", "slice x[:, 0] + tanh pooler", *_ATTN)),
    ZooCase("torch_encoder", TorchEncoder, _encoder_inputs,
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
    ZooCase("multi_io", MultiIO, _multi_inputs,
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
    ZooCase("hf_bert", _hf_bert, _tokens_with_padding(), requires="transformers",
            kinds=("HF BertModel: separate q/k/v Linears, sdpa with an additive padding mask "
                   "(finfo.min) from attention_mask", "ModelOutput (last_hidden_state, "
                   "pooler_output)", "word embedding source, position/type constants")),
    ZooCase("hf_gpt2", _hf_gpt2("sdpa"), _tokens(), requires="transformers",
            kinds=("HF GPT2LMHeadModel: Conv1D (weight (in, out), addmm)", "tied LM head",
                   "causal sdpa", "ModelOutput logits")),
    ZooCase("hf_gpt2_eager", _hf_gpt2("eager"), _tokens(), requires="transformers",
            kinds=("as hf_gpt2 with the eager attention (matmul, causal mask, softmax)",)),
    ZooCase("hf_vit", _hf_vit, _image(3, 16), requires="transformers",
            kinds=("HF ViTForImageClassification: patch conv, class token cat, position "
                   "embedding add, q/k/v Linears, sdpa", "ModelOutput logits")),
)}


# ----------------------------------------------------------------------------- random networks


class RandomNet(nn.Module):
    """A network run from a plan: a list of ``(op, module indices, options)`` steps on an
    (N, C, H, W) activation, then a head."""

    def __init__(self, plan: list[tuple[str, tuple[int, ...], dict]], mods: list[nn.Module],
                 head: str) -> None:
        super().__init__()
        self.plan, self.mods, self.head_kind = plan, nn.ModuleList(mods), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per op
        m = self.mods
        for op, idx, opt in self.plan:
            if op == "conv":
                x = F.relu(m[idx[0]](x))
            elif op == "res":
                x = x + m[idx[0]](x)
            elif op == "se":
                gate = m[idx[0]](x.mean((2, 3), keepdim=True))
                x = (torch.sigmoid(gate) if opt["sigmoid"] else F.hardsigmoid(gate)) * x
            elif op == "glu":
                a, b = m[idx[0]](x).chunk(2, dim=1)
                x = a * torch.sigmoid(b)
            elif op == "swiglu":
                x = F.silu(m[idx[0]](x)) * m[idx[1]](x)
            elif op == "permute_linear":
                x = m[idx[0]](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            elif op == "slice":
                x = x[opt["index"]]
            elif op == "upsample":
                x = F.interpolate(x, scale_factor=2, mode=opt["mode"],
                                  **({"align_corners": False} if opt["mode"] == "bilinear"
                                     else {}))
            elif op == "pool":
                x = F.max_pool2d(x, 2) if opt["max"] else F.avg_pool2d(x, 2)
            elif op == "cat":
                x = torch.cat([x, m[idx[0]](x)], dim=1)
            elif op == "attn":
                x = self._attention(x, idx, opt)
        if self.head_kind == "flatten":
            return m[-1](torch.flatten(x, 1))
        if self.head_kind == "first":  # read one position only
            return x[:, :, 0, 0]
        return x

    def _attention(self, x: torch.Tensor, idx: tuple[int, ...], opt: dict) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = (self.mods[i](t) for i in idx[:3])
        if opt["sdpa"]:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=opt["causal"])
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(c)
            if opt["causal"]:
                causal = torch.ones(h * w, h * w, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(causal, float("-inf"))
            y = scores.softmax(-1) @ v
        y = self.mods[idx[3]](y).transpose(1, 2).reshape(b, c, h, w)
        return x + y if opt["residual"] else y


_LINEAR_OPS = ("conv", "conv", "res", "permute_linear", "slice", "upsample", "pool", "cat")
_ALL_OPS = (*_LINEAR_OPS, "se", "glu", "swiglu", "attn", "attn")


@st.composite
def random_network(draw: Any, linear_only: bool = False) -> tuple[RandomNet, torch.Tensor]:
    """A small random :class:`RandomNet` and a zero input for it (see the module docstring).

    Spatial sizes stay >= 2 before any attention or upsampling, so that no two tokens of a
    softmax fibre are copies of each other everywhere (which would cancel a key's gradient by
    the softmax's shift invariance: a symmetry, not a missing path).
    """
    c0, h0, w0 = draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 5))
    c, h, w = c0, h0, w0
    mods: list[nn.Module] = []
    plan: list[tuple[str, tuple[int, ...], dict]] = []

    def add(*ms: nn.Module) -> tuple[int, ...]:
        mods.extend(ms)
        return tuple(range(len(mods) - len(ms), len(mods)))

    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(_LINEAR_OPS if linear_only else _ALL_OPS))
        if op == "conv":
            c2, k = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
            plan.append((op, add(nn.Conv2d(c, c2, k, padding=k // 2)), {}))
            c = c2
        elif op == "res":
            plan.append((op, add(nn.Conv2d(c, c, 3, padding=1)), {}))
        elif op == "se":
            plan.append((op, add(nn.Conv2d(c, c, 1)), {"sigmoid": draw(st.booleans())}))
        elif op == "glu":
            c2 = draw(st.integers(1, 3))
            plan.append((op, add(nn.Conv2d(c, 2 * c2, 1)), {}))
            c = c2
        elif op == "swiglu":
            c2 = draw(st.integers(1, 3))
            plan.append((op, add(nn.Conv2d(c, c2, 1), nn.Conv2d(c, c2, 3, padding=1)), {}))
            c = c2
        elif op == "permute_linear":
            c2 = draw(st.integers(1, 4))
            plan.append((op, add(nn.Linear(c, c2)), {}))
            c = c2
        elif op == "slice":
            choices = [a for a, ok in (("channels", c > 1), ("rows", h > 2), ("stride", w > 3))
                       if ok]
            if not choices:
                continue
            kind = draw(st.sampled_from(choices))
            if kind == "channels":
                k = draw(st.integers(1, c - 1))
                index, c = (slice(None), slice(0, k)), k
            elif kind == "rows":
                index, h = (slice(None), slice(None), slice(1, None)), h - 1
            else:
                index, w = (Ellipsis, slice(None, None, 2)), (w + 1) // 2
            plan.append((op, (), {"index": index}))
        elif op == "upsample" and h * w <= 16:
            plan.append((op, (), {"mode": draw(st.sampled_from(["nearest", "bilinear"]))}))
            h, w = 2 * h, 2 * w
        elif op == "pool" and h >= 4 and w >= 4:
            plan.append((op, (), {"max": draw(st.booleans())}))
            h, w = h // 2, w // 2
        elif op == "cat":
            c2 = draw(st.integers(1, 2))
            plan.append((op, add(nn.Conv2d(c, c2, 1, bias=False)), {}))
            c += c2
        elif op == "attn":
            plan.append((op, add(*(nn.Linear(c, c) for _ in range(4))), {
                "sdpa": draw(st.booleans()), "causal": draw(st.booleans()),
                "residual": draw(st.booleans())}))
    if not mods:  # at least one prunable layer
        plan.append(("conv", add(nn.Conv2d(c, 2, 1)), {}))
        c = 2
    head = draw(st.sampled_from(["flatten", "map", "first"]))
    if head == "flatten":
        add(nn.Linear(c * h * w, draw(st.integers(1, 3))))
    return RandomNet(plan, mods, head).eval(), torch.zeros(1, c0, h0, w0)
