"""Building blocks of the AGW-family re-identification heads: GeM pooling, non-local block, BN-neck.

References:
    * GeM: Radenovic et al., "Fine-tuning CNN Image Retrieval with No Human Annotation", TPAMI 2018;
      used with p=3 by AGW (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
      [CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::embed_net.forward] and with a learnable p by DAKD
      [CODE: Fouroy4/DAKD, resnet.py::GeneralizedMeanPoolingP].
    * Non-local: Wang et al., "Non-local Neural Networks", CVPR 2018 (dot-product form, normalised by N), as used by
      AGW [CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::Non_local].
    * BN-neck: Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification", CVPRW 2019.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gem_pool(x: Tensor, p: float | Tensor = 3.0, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling over the spatial grid.

    `GeM(x)_c = (mean_{h,w} clamp(x_chw, eps)^p)^(1/p)`. p=1 is average pooling of the (clamped) map and p -> inf
    tends to max pooling. The clamp follows DAKD [CODE: Fouroy4/DAKD, resnet.py::GeneralizedMeanPoolingP]; AGW adds
    1e-12 inside the root instead [CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py] -- identical for the
    non-negative (post-ReLU) maps both apply it to, up to that epsilon.

    Args:
        x: (B, C, H, W) feature map.
        p: pooling exponent (> 0), a float or a 1-element tensor (learnable).
        eps: lower clamp so that fractional powers stay finite.

    Returns:
        (B, C) pooled feature.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D feature map (B, C, H, W), got shape {tuple(x.shape)}")
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling module, `(B, C, H, W) -> (B, C)`, with a fixed (AGW) or learnable (DAKD) exponent.

    Args:
        p: initial exponent; AGW and DAKD both use 3.
        learn_p: make p a parameter (DAKD) instead of a constant (AGW).
        eps: clamp floor (DAKD uses 1e-6).
    """

    def __init__(self, p: float = 3.0, learn_p: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"gem_p must be > 0 (1 = average pooling, large = max pooling), got {p}")
        self.eps = eps
        if learn_p:
            self.p = nn.Parameter(torch.full((1,), float(p)))
        else:
            self.register_buffer("p", torch.full((1,), float(p)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return gem_pool(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, learn_p={isinstance(self.p, nn.Parameter)}, eps={self.eps}"


class NonLocal(nn.Module):
    """Dot-product non-local block with a zero-initialised residual branch.

    `z = x + BN(W(y))`, `y_i = (1/N) sum_j theta(x_i)^T phi(x_j) g(x_j)`, N = H*W. The BN after W starts at zero
    weight and bias so the block is the identity at initialisation [CODE: mangye16/Cross-Modal-Re-ID-baseline,
    model.py::Non_local].

    Args:
        in_channels: C of the input map.
        quirk: True keeps the reference code's `inter_channels = reduc_ratio // reduc_ratio = 1` (AGW, DAKD and
            their descendants); False uses `in_channels // 2` as in the non-local paper.
    """

    def __init__(self, in_channels: int, quirk: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = 1 if quirk else max(1, in_channels // 2)
        self.g = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, kernel_size=1), nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        b, _, h, w = x.shape
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, c)
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, c)
        phi = self.phi(x).flatten(2)  # (B, c, N)
        affinity = theta @ phi / (h * w)  # (B, N, N), dot product normalised by N (no softmax)
        y = (affinity @ g).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.W(y)


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose shift is frozen at zero (BN-neck), `(B, D) -> (B, D)`.

    Weight 1 / bias 0 at init and `bias.requires_grad = False` [CODE: Fouroy4/DAKD, model.py; 924973292/TOP-ReID,
    modeling/make_model.py]. (AGW draws the initial weight from N(1, 0.01) instead; the difference vanishes after the
    first steps and is not reproduced.)
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(False)


def bias_free_classifier(in_dim: int, num_classes: int) -> nn.Linear:
    """Linear identity classifier without bias, weights ~ N(0, 0.001^2) as AGW / TransReID initialise it.

    [CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::weights_init_classifier;
    924973292/TOP-ReID, modeling/make_model.py::weights_init_classifier]
    """
    fc = nn.Linear(in_dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


def l2_normalize(x: Tensor, dim: int = -1) -> Tensor:
    """Unit-length rows, `x / max(||x||, 1e-12)`."""
    return F.normalize(x, dim=dim)
