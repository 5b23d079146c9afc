"""Zoo models for images (see ``zoo.py``): ConvNeXt, Swin, ShuffleNet-v2, an HRNet fuse,
a U-Net, MLP-Mixer, squeeze-excitation, Conv1d and Conv3d networks, at toy widths."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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

# ----------------------------------------------------------------------------- squeeze-excitation


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
