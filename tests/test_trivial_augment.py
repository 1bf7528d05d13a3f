"""Per-sample soft TrivialAugment: bit-for-bit equal to torchvision v2 ``TrivialAugmentWide``.

``SoftTrivialAugment`` draws from the global torch RNG in torchvision's order, so with the
same ``torch.manual_seed`` it must produce the same image AND leave the RNG in the same
state; on top of that it reports provenance (op, signed magnitude, severity, confidence).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode, TrivialAugmentWide

from harness.augment._common import AugmentInfo
from harness.augment.space import (
    MAGNITUDE_FREE_OPS,
    SIGNED_OPS,
    TA_OPS,
    magnitude_bins,
    severity_scalar,
)
from harness.augment.trivial import SoftTrivialAugment, apply_ta_op

ROOT = Path(__file__).resolve().parents[1]
CIFAR_TEST = Path("/work/shared/data/cifar10/test.npz")
K = 10


# ----------------------------------------------------------------------------- fixtures


class FakeMappingSet:
    """Stand-in with the ``mappings.MappingSet`` interface (used only if mappings/ is absent)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        # op-dependent weight so that tests notice swapped op ids
        self._w = torch.tensor([(i + 1) / len(TA_OPS) for i in range(len(TA_OPS))])

    def __call__(self, op_ids, magnitudes, severities):
        w = self._w.to(severities.device)[op_ids]
        c = 1.0 - (1.0 - 1.0 / self.num_classes) * w * severities.to(torch.float32) ** 2
        return c.clamp(min=1.0 / self.num_classes).to(torch.float32)

    def confidence(self, op, magnitude, severity):
        ids = torch.tensor([TA_OPS.index(op)])
        return float(self(ids, torch.tensor([float(magnitude)]), torch.tensor([float(severity)]))[0])


def make_mapping_set(num_classes: int = K):
    """The real ``mappings.preset("polynomial_chance", K)`` once mappings/presets.py exists."""
    if (ROOT / "mappings" / "presets.py").exists():
        import mappings

        return mappings.preset("polynomial_chance", num_classes)
    return FakeMappingSet(num_classes)


@pytest.fixture(scope="module")
def mapping_set():
    return make_mapping_set()


def load_images(n: int = 16) -> torch.Tensor:
    """n real CIFAR-10 test images [n, 3, 32, 32] uint8, or seeded smooth synthetic ones."""
    if CIFAR_TEST.exists():
        with np.load(CIFAR_TEST) as data:
            return torch.from_numpy(data["images"][:n]).permute(0, 3, 1, 2).contiguous()
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6.28
    freq = 1.0 + 3.0 * torch.rand(n, 3, 1, 1, generator=g)
    noise = 0.1 * torch.rand(n, 3, 32, 32, generator=g)
    img = 0.5 + 0.35 * torch.sin(freq * (xx + 0.7 * yy) * 3.14 + phase) + noise
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def images():
    return load_images(16)


# ----------------------------------------------------------------------------- torchvision equality


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_forward_equals_torchvision_bit_for_bit(images, mapping_set, dtype):
    """Same seed -> same image as TrivialAugmentWide() and the same RNG consumption."""
    x = images if dtype == torch.uint8 else images.to(torch.float32) / 255
    reference = TrivialAugmentWide()
    soft = SoftTrivialAugment(K, mapping_set)
    seen_ops = set()
    n_seeds = 700 if dtype == torch.uint8 else 250
    for seed in range(n_seeds):
        img = x[seed % len(x)]
        torch.manual_seed(seed)
        expected = reference(img)
        after_ref = torch.rand(())
        torch.manual_seed(seed)
        out, info = soft(img)
        after_ours = torch.rand(())
        assert out.dtype == img.dtype and out.shape == img.shape
        assert torch.equal(out, expected), (seed, info)
        assert torch.equal(after_ref, after_ours), f"RNG consumption differs at seed {seed} ({info.op})"
        seen_ops.add(info.op)
    assert seen_ops == set(TA_OPS)


def test_forward_equals_torchvision_one_channel_fill_and_bins(images, mapping_set):
    gray = images[:, :1]
    cases = [
        (dict(), dict(), gray),
        (dict(fill=[17.0, 90.0, 200.0]), dict(fill=[17.0, 90.0, 200.0]), images),
        (dict(num_magnitude_bins=10), dict(num_magnitude_bins=10), images),
        (
            dict(interpolation=InterpolationMode.BILINEAR),
            dict(interpolation=InterpolationMode.BILINEAR),
            images,
        ),
    ]
    for ref_kwargs, soft_kwargs, x in cases:
        reference = TrivialAugmentWide(**ref_kwargs)
        soft = SoftTrivialAugment(K, mapping_set, **soft_kwargs)
        for seed in range(150):
            img = x[seed % len(x)]
            torch.manual_seed(seed)
            expected = reference(img)
            torch.manual_seed(seed)
            out, info = soft(img)
            assert torch.equal(out, expected), (soft_kwargs, seed, info)


def test_sampled_magnitudes_are_torchvision_bins(images, mapping_set):
    soft = SoftTrivialAugment(K, mapping_set)
    torch.manual_seed(123)
    signs = {name: set() for name in SIGNED_OPS}
    for _ in range(1500):
        _, info = soft(images[0])
        bins = magnitude_bins(info.op, 31)
        if bins is None:
            assert info.magnitude == 0.0 and info.op in MAGNITUDE_FREE_OPS
            continue
        assert abs(info.magnitude) in set(bins.tolist()), info
        if info.op in SIGNED_OPS:
            signs[info.op].add(math.copysign(1.0, info.magnitude))
        else:
            assert info.magnitude >= 0
    for name, seen in signs.items():
        assert seen == {-1.0, 1.0}, name


# ----------------------------------------------------------------------------- provenance


def test_info_severity_and_confidence(images, mapping_set):
    soft = SoftTrivialAugment(K, mapping_set)
    hard = SoftTrivialAugment(K, mapping_set, hard=True)
    torch.manual_seed(7)
    for i in range(300):
        img = images[i % len(images)]
        state = torch.get_rng_state()
        out, info = soft(img)
        assert isinstance(info, AugmentInfo)
        assert info.severity == severity_scalar(info.op, info.magnitude, 32, 32)
        assert 0.0 <= info.severity <= 1.0
        expected = mapping_set.confidence(info.op, info.magnitude, info.severity)
        assert info.confidence == pytest.approx(expected)
        assert 1.0 / K - 1e-6 <= info.confidence <= 1.0
        # apply() reproduces forward() from the recorded provenance
        again, info2 = soft.apply(img, info.op, info.magnitude)
        assert torch.equal(again, out) and info2 == info
        # hard: same draw, same image, confidence 1
        torch.set_rng_state(state)
        out_h, info_h = hard(img)
        assert torch.equal(out_h, out)
        assert (info_h.op, info_h.magnitude, info_h.severity) == (info.op, info.magnitude, info.severity)
        assert info_h.confidence == 1.0


def test_hard_without_mapping(images):
    aug = SoftTrivialAugment(K, None, hard=True)
    _, info = aug(images[0])
    assert info.confidence == 1.0


def test_severity_reaches_one_and_confidence_floor(images, mapping_set):
    soft = SoftTrivialAugment(K, mapping_set)
    _, info = soft.apply(images[0], "TranslateX", -32.0)
    assert info.severity == 1.0
    _, info = soft.apply(images[0], "Identity", 0.0)
    assert info.severity == 0.0 and info.confidence == pytest.approx(1.0)


@pytest.mark.parametrize("op", TA_OPS)
def test_apply_matches_functional_kernel(images, mapping_set, op):
    soft = SoftTrivialAugment(K, mapping_set)
    bins = magnitude_bins(op, 31)
    mags = [0.0] if bins is None else [float(bins[i]) for i in (0, 5, 30)]
    if op in SIGNED_OPS:
        mags += [-m for m in mags]
    for dtype in (torch.uint8, torch.float32):
        x = images[:4] if dtype == torch.uint8 else images[:4].float() / 255
        for m in mags:
            for img in list(x) + [x[0, :1]]:
                out, info = soft.apply(img, op, m)
                assert torch.equal(out, apply_ta_op(img, op, m))
                assert info.op == op and info.magnitude == m
                assert out.dtype == img.dtype and out.shape == img.shape


def test_ops_subset(images, mapping_set):
    ops = ["Rotate", "Solarize", "Identity"]
    soft = SoftTrivialAugment(K, mapping_set, ops=ops)
    torch.manual_seed(3)
    seen = {soft(images[0])[1].op for _ in range(200)}
    assert seen == set(ops)
    # a single op: the op draw is randint(1) and the rest follows torchvision's order
    only = SoftTrivialAugment(K, mapping_set, ops=["ShearX"])
    torch.manual_seed(5)
    _, info = only(images[0])
    torch.manual_seed(5)
    torch.randint(1, ())
    b = int(torch.randint(31, ()))
    sign = -1.0 if torch.rand(()) <= 0.5 else 1.0
    assert info.op == "ShearX" and info.magnitude == sign * float(magnitude_bins("ShearX")[b])


def test_input_not_modified(images, mapping_set):
    soft = SoftTrivialAugment(K, mapping_set)
    for op in TA_OPS:
        img = images[1].clone()
        soft.apply(img, op, 0.5 if op not in ("Posterize",) else 4.0)
        assert torch.equal(img, images[1])


# ----------------------------------------------------------------------------- validation


def test_bad_arguments(images, mapping_set):
    with pytest.raises(ValueError, match="num_classes"):
        SoftTrivialAugment(1, mapping_set)
    with pytest.raises(TypeError, match="num_classes"):
        SoftTrivialAugment(True, mapping_set)
    with pytest.raises(ValueError, match="op must be one of"):
        SoftTrivialAugment(K, mapping_set, ops=["Rotate", "Invert"])
    with pytest.raises(ValueError, match="duplicates"):
        SoftTrivialAugment(K, mapping_set, ops=["Rotate", "Rotate"])
    with pytest.raises(ValueError, match="at least one"):
        SoftTrivialAugment(K, mapping_set, ops=[])
    with pytest.raises(TypeError, match="ops"):
        SoftTrivialAugment(K, mapping_set, ops="Rotate")
    with pytest.raises(ValueError, match="num_magnitude_bins"):
        SoftTrivialAugment(K, mapping_set, num_magnitude_bins=1)
    with pytest.raises(ValueError, match="num_classes"):
        SoftTrivialAugment(100, mapping_set)  # mapping built for K = 10
    with pytest.raises(ValueError, match="hard=True"):
        SoftTrivialAugment(K, None)
    with pytest.raises(TypeError, match="mapping"):
        SoftTrivialAugment(K, 3.5)

    soft = SoftTrivialAugment(K, mapping_set)
    with pytest.raises(TypeError, match="uint8 or floating"):
        soft(images[0].to(torch.int32))
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        soft(images[:2])
    with pytest.raises(ValueError, match=r"C in \{1, 3\}"):
        soft(images[0, :2])
    with pytest.raises(TypeError, match="torch.Tensor"):
        soft(images[0].numpy())
    with pytest.raises(ValueError, match="op must be one of"):
        soft.apply(images[0], "Invert", 0.0)
    with pytest.raises(ValueError, match="finite"):
        soft.apply(images[0], "Rotate", float("nan"))
