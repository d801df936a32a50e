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


class InputNorm(nn.Module):
    """Re-normalise images from one mean/std convention to another, exactly: `(x std_in + mean_in - mean) / std`.

    The workbench's visible-infrared transforms normalise with the ImageNet mean/std; a backbone whose weights were
    trained with another convention (TF EfficientNet-Lite: mean 127, std 128 on 0-255 pixels) gets its own input
    back through this fixed per-channel affine map (no parameters; buffers are not saved).

    Args:
        mean, std: the convention the backbone expects, per channel, on 0-1 pixels.
        mean_in, std_in: the convention of the incoming images.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], mean_in: tuple[float, ...],
                 std_in: tuple[float, ...]) -> None:
        super().__init__()
        if min(std) <= 0 or min(std_in) <= 0:
            raise ValueError(f"std values must be > 0, got std={std}, std_in={std_in}")
        scale = torch.tensor(std_in) / torch.tensor(std)
        shift = (torch.tensor(mean_in) - torch.tensor(mean)) / torch.tensor(std)
        self.register_buffer("scale", scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        return x * self.scale + self.shift


class ModalityRouter:
    """Which rows of the current batch belong to which modality, shared by the `ModalityBatchNorm2d` layers of one
    model. The model sets it before running its stages (`route`) and clears it after (`clear`)."""

    def __init__(self, num_modalities: int = 2) -> None:
        self.num_modalities = num_modalities
        self.groups: list[tuple[int, slice | Tensor]] | None = None

    def route(self, modality: Tensor) -> None:
        """Group the rows of a batch by modality.

        Args:
            modality: (B,) integers in [0, num_modalities). Contiguous runs ([rgb; ir], as the visible-infrared
                batches are stacked) become slices, anything else index tensors.
        """
        values = modality.tolist()
        groups: list[tuple[int, slice | Tensor]] = []
        for m in sorted(set(values)):
            rows = [i for i, v in enumerate(values) if v == m]
            if rows[-1] - rows[0] + 1 == len(rows):
                groups.append((m, slice(rows[0], rows[-1] + 1)))
            else:
                groups.append((m, torch.tensor(rows, device=modality.device)))
        self.groups = groups

    def clear(self) -> None:
        self.groups = None


class ModalityBatchNorm2d(nn.Module):
    """BatchNorm2d with batch and running statistics of its own for each modality, and one shared affine.

    Each modality's rows of a batch are normalised with that modality's batch statistics in training (which also
    update that modality's running mean and variance) and with its running statistics in evaluation; weight and
    bias are shared. Built from an existing `nn.BatchNorm2d` (timm's `BatchNormAct2d` keeps its activation):
    both modalities' running statistics start from its running statistics, the affine is its own.

    Prior art: Modality Batch Normalization (MBN; W. Li, K. Qi, W. Chen, Y. Zhou, "Bridging the Distribution Gap
    of Visible-Infrared Person Re-identification with Modality Batch Normalization", arXiv 2103.04778, 2021)
    "normalizes each modality sub-mini-batch respectively instead of the whole mini-batch" [PAPER-ABS; no code seen].
    INFERRED (our choice, the abstract does not say): the shared affine and the evaluation with each modality's own
    running statistics. Sharing the affine keeps the layer's parameters those of the shared-BN model (same optimiser
    groups, same pretrained tensors), so the switch changes statistics and nothing else; separate affines per domain
    are domain-specific BN (Chang et al., CVPR 2019), a further step towards a two-stream network.

    Args:
        bn: the BatchNorm2d to replace.
        router: the model's `ModalityRouter` (set before each forward).

    State: `weight`, `bias` (C,), `running_mean`, `running_var` (M, C), `num_batches_tracked` (M,).
    """

    def __init__(self, bn: nn.BatchNorm2d, router: ModalityRouter) -> None:
        super().__init__()
        if not bn.track_running_stats:
            raise ValueError("ModalityBatchNorm2d needs a BatchNorm with running statistics")
        m = router.num_modalities
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean.detach().clone().unsqueeze(0).repeat(m, 1))
        self.register_buffer("running_var", bn.running_var.detach().clone().unsqueeze(0).repeat(m, 1))
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked.detach().clone().repeat(m))
        # timm's BatchNormAct2d applies dropout and an activation after normalising (EfficientNet's ReLU6)
        self.post = nn.Sequential(bn.drop, bn.act) if hasattr(bn, "act") and hasattr(bn, "drop") else None
        self._router = router

    def _norm(self, x: Tensor, m: int) -> Tensor:
        factor = 0.0
        if self.training:
            self.num_batches_tracked[m].add_(1)
            factor = 1.0 / float(self.num_batches_tracked[m]) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[m], self.running_var[m], self.weight, self.bias, self.training,
                            factor, self.eps)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W), each row normalised with the statistics of its modality."""
        groups = self._router.groups
        if groups is None:
            raise RuntimeError("ModalityBatchNorm2d ran without a modality routing: call the model with its "
                               "`modality` tensor (0 = rgb, 1 = ir)")
        if len(groups) == 1:
            out = self._norm(x, groups[0][0])
        elif all(isinstance(idx, slice) for _, idx in groups):
            out = torch.cat([self._norm(x[idx], m) for m, idx in sorted(groups, key=lambda g: g[1].start)])
        else:
            out = torch.empty_like(x)
            for m, idx in groups:
                index = torch.arange(x.shape[0], device=x.device)[idx] if isinstance(idx, slice) else idx
                out = out.index_copy(0, index, self._norm(x.index_select(0, index), m))
        return self.post(out) if self.post is not None else out

    def extra_repr(self) -> str:
        return f"{self.num_features}, modalities={self.running_mean.shape[0]}, eps={self.eps}, momentum={self.momentum}"


def convert_modality_bn(module: nn.Module, router: ModalityRouter) -> int:
    """Replace every `nn.BatchNorm2d` inside `module` by a `ModalityBatchNorm2d` (in place); returns how many."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ModalityBatchNorm2d(child, router))
            count += 1
        else:
            count += convert_modality_bn(child, router)
    return count
