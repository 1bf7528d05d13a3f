"""Model registry: WideResNet (METHOD.md §4.2), CIFAR ResNet-18 and a small fast CNN.

Every model maps a float batch ``[N, C, H, W]`` with values in ``[0, 1]`` to logits ``[N, K]``.
No input normalisation happens inside a model unless ``normalize=(mean, std)`` is passed to
:func:`build_model` (then a fixed, parameter-free :class:`Normalize` layer is put in front).

Registered names (:data:`MODELS`):

``wrn28_4``
    Pre-activation WideResNet-28-4, the architecture of the reference code (METHOD.md §4.2).
    Keyword arguments: ``dropout`` (default 0.3), ``reference_quirks`` (default False).
``wrn``
    Generic pre-activation WideResNet. Keyword arguments: ``depth`` (default 28, ``(depth - 4) % 6 == 0``),
    ``widen_factor`` (default 4), ``dropout`` (default 0.3), ``reference_quirks`` (default False).
``resnet18``
    ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool), post-activation BasicBlocks
    [2, 2, 2, 2], widths 64/128/256/512, 1×1-conv + BN projection shortcuts. No keyword arguments.
``smallnet``
    A fast small CNN for CPU experiments (airbench-like): conv-BN-GELU stem, three blocks of
    ``conv3×3 → max-pool 2 → BN → GELU → conv3×3 → BN → GELU``, global average pooling, linear head.
    Keyword argument: ``widths`` (default ``(48, 96, 144)``, stem width = ``widths[0] // 2``).
    About 0.47 M parameters for K = 10.

All models accept ``normalize`` (see above).

WideResNet details (METHOD.md §4.2, §7.13):

* stem 3×3 conv to 16 channels; three stages of widths ``16k, 32k, 64k`` with ``n = (depth - 4) / 6`` blocks
  each; stage strides ``s, 2, 2`` where ``s = 1`` for ``image_size < 64`` (CIFAR: 32 → 32 → 16 → 8) and
  ``s = 2`` for ``image_size >= 64`` (the reference's ``factor = 2`` for TinyImageNet: 64 → 32 → 16 → 8);
* pre-activation block ``BN-ReLU-conv3×3-Dropout-BN-ReLU-conv3×3`` plus the identity, or a 1×1 conv
  shortcut (applied to the block input ``x``) when the width or the stride changes; the stride sits on the
  first 3×3 conv (as in Zagoruyko & Komodakis);
* final ``BN-ReLU-global average pool-linear``.
* Default (clean) variant: convs without bias, every BN with PyTorch's default momentum 0.1.
  ``reference_quirks=True`` restores the reference's conv biases (stem, block and shortcut convs) and the
  final BN's ``momentum=0.9`` (PyTorch convention: running statistics dominated by the last batch;
  METHOD.md §7.13). The quirks flag changes nothing else.

Initialisation (all models): conv weights ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, conv and
linear biases zero, BN weight 1 / bias 0, linear weights PyTorch's default (Kaiming-uniform, ``a = sqrt(5)``).
Initialisation only draws from the global torch RNG, so ``torch.manual_seed(s)`` followed by ``build_model``
gives bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mappings.base import check_int
from torch import nn

__all__ = [
    "MODELS",
    "Normalize",
    "WideBasic",
    "WideResNet",
    "BasicBlock",
    "ResNet18",
    "SmallNet",
    "build_model",
    "count_parameters",
]

#: Registered model names accepted by :func:`build_model`.
MODELS: tuple[str, ...] = ("wrn28_4", "wrn", "resnet18", "smallnet")

#: BN momentum of the reference's final BatchNorm (PyTorch semantics), restored by ``reference_quirks=True``.
REFERENCE_FINAL_BN_MOMENTUM = 0.9


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _check_prob(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a float in [0, 1), got {value}")
    return float(value)


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------
class Normalize(nn.Module):
    """Fixed per-channel ``(x - mean) / std`` (buffers, no parameters). Only used when asked for."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(
                f"normalize mean and std must be non-empty and of equal length, got {mean_t.numel()} and "
                f"{std_t.numel()}"
            )
        if not bool(torch.isfinite(mean_t).all()) or not bool((std_t > 0).all()):
            raise ValueError(f"normalize needs finite means and std > 0, got mean={mean}, std={std}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            # PyTorch's default Linear init (Kaiming-uniform with a = sqrt(5)), made explicit.
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class WideBasic(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3×3(stride)-Dropout-BN-ReLU-conv3×3 (+ shortcut of ``x``)."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.dropout = nn.Dropout(p=dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=bias)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=bias)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(self.dropout(out))))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """Pre-activation WideResNet-``depth``-``widen_factor`` (METHOD.md §4.2); see the module docstring."""

    def __init__(
        self,
        num_classes: int,
        *,
        depth: int = 28,
        widen_factor: int = 4,
        dropout: float = 0.3,
        in_channels: int = 3,
        first_stride: int = 1,
        reference_quirks: bool = False,
    ) -> None:
        super().__init__()
        depth = check_int(depth, "depth", 10)
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must satisfy (depth - 4) % 6 == 0 (e.g. 10, 16, 28, 40), got {depth}")
        widen_factor = check_int(widen_factor, "widen_factor", 1)
        dropout = _check_prob(dropout, "dropout")
        reference_quirks = _check_bool(reference_quirks, "reference_quirks")
        if first_stride not in (1, 2) or isinstance(first_stride, bool):
            raise ValueError(f"first_stride must be 1 or 2, got {first_stride!r}")
        in_channels = check_int(in_channels, "in_channels", 1)
        n = (depth - 4) // 6
        bias = reference_quirks
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.depth, self.widen_factor, self.reference_quirks = depth, widen_factor, reference_quirks
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=bias)
        stages = []
        in_planes = widths[0]
        for planes, stride in zip(widths[1:], (first_stride, 2, 2), strict=True):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(in_planes, planes, stride if i == 0 else 1, dropout, bias))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        momentum = REFERENCE_FINAL_BN_MOMENTUM if reference_quirks else 0.1
        self.bn_final = nn.BatchNorm2d(widths[3], momentum=momentum)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[3], num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.relu(self.bn_final(out))
        return self.linear(torch.flatten(self.pool(out), 1))


class BasicBlock(nn.Module):
    """Post-activation ResNet basic block: conv-BN-ReLU-conv-BN (+ shortcut), ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (3×3 conv stride 1, no max-pool), widths 64–512, blocks [2, 2, 2, 2]."""

    def __init__(self, num_classes: int, *, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


def _conv_bn_gelu(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    mods: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        mods.append(nn.MaxPool2d(2))
    mods += [nn.BatchNorm2d(c_out), nn.GELU()]
    return mods


class SmallNet(nn.Module):
    """Small airbench-like CNN: stem + 3 × (conv → maxpool → BN → GELU → conv → BN → GELU), pool, linear."""

    def __init__(
        self, num_classes: int, *, in_channels: int = 3, widths: Sequence[int] = (48, 96, 144)
    ) -> None:
        super().__init__()
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) != 3:
            raise ValueError(f"widths must be a sequence of 3 ints >= 2, got {widths!r}")
        widths = tuple(check_int(w, "widths[i]", 2) for w in widths)
        stem = widths[0] // 2
        mods: list[nn.Module] = _conv_bn_gelu(in_channels, stem, pool=False)
        c_in = stem
        for w in widths:
            mods += _conv_bn_gelu(c_in, w, pool=True) + _conv_bn_gelu(w, w, pool=False)
            c_in = w
        self.features = nn.Sequential(*mods)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[-1], num_classes)
        self.widths = widths
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.pool(self.features(x)), 1))


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------
def _wrn_first_stride(image_size: int) -> int:
    # 32 px (CIFAR) and smaller (e.g. 28 px MNIST): stride 1; 64 px (TinyImageNet) and larger: stride 2,
    # the reference's ``factor = 2`` (64 -> 32 -> 16 -> 8).
    return 2 if image_size >= 64 else 1


def _build_wrn28_4(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return WideResNet(
        num_classes, depth=28, widen_factor=4, in_channels=in_channels,
        first_stride=_wrn_first_stride(image_size), **kw,
    )


def _build_wrn(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return WideResNet(num_classes, in_channels=in_channels, first_stride=_wrn_first_stride(image_size), **kw)


def _build_resnet18(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return ResNet18(num_classes, in_channels=in_channels, **kw)


def _build_smallnet(num_classes: int, in_channels: int, image_size: int, **kw: Any) -> nn.Module:
    return SmallNet(num_classes, in_channels=in_channels, **kw)


_BUILDERS: dict[str, tuple[Callable[..., nn.Module], frozenset[str]]] = {
    "wrn28_4": (_build_wrn28_4, frozenset({"dropout", "reference_quirks"})),
    "wrn": (_build_wrn, frozenset({"depth", "widen_factor", "dropout", "reference_quirks"})),
    "resnet18": (_build_resnet18, frozenset()),
    "smallnet": (_build_smallnet, frozenset({"widths"})),
}
assert tuple(_BUILDERS) == MODELS


def build_model(
    name: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model (see the module docstring for names and keyword arguments).

    Args:
        name: one of :data:`MODELS`.
        num_classes: K >= 2, the number of logits.
        in_channels: input channels C >= 1.
        image_size: input height/width (>= 8; all models end in global pooling). For WideResNets it sets
            the first-stage stride: 1 below 64 px (CIFAR 32 px), 2 from 64 px (TinyImageNet).
        normalize: ``None`` (default: inputs in [0, 1] are fed as they are) or ``(mean, std)`` per channel,
            which puts a fixed :class:`Normalize` layer in front; the result is then an ``nn.Sequential``.
        **kwargs: model-specific options; unknown ones raise ``TypeError`` naming the allowed ones.

    Returns:
        an ``nn.Module`` in training mode on the CPU, float32, mapping ``[N, C, H, W]`` to logits ``[N, K]``.
    """
    if not isinstance(name, str) or name not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; expected one of {MODELS}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes}")
    in_channels = check_int(in_channels, "in_channels", 1)
    image_size = check_int(image_size, "image_size", 8)
    builder, allowed = _BUILDERS[name]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"unknown keyword argument(s) {unknown} for model {name!r}; allowed: {sorted(allowed) or 'none'}"
        )
    model = builder(num_classes, in_channels, image_size, **kwargs)
    if normalize is not None:
        if not isinstance(normalize, (tuple, list)) or len(normalize) != 2:
            raise ValueError(f"normalize must be None or a (mean, std) pair, got {normalize!r}")
        norm = Normalize(*normalize)
        if norm.mean.numel() != in_channels:
            raise ValueError(
                f"normalize mean/std must have in_channels={in_channels} entries, got {norm.mean.numel()}"
            )
        model = nn.Sequential(norm, model)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BN running statistics are not counted)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
