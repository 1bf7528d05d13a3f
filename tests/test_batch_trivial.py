"""Batched soft TrivialAugment against a per-sample loop of torchvision v2 functional ops.

Every op is checked at bins 0, 1, 7, 15, 20, 23 and 30 (bin 20 of Rotate is exactly 90
degrees, which torchvision serves with ``rot90``), with both signs for signed ops, on
real CIFAR-10 test images (a seeded smooth synthetic image if the file is missing), in
uint8 and float32, 3-channel and 1-channel, against ``apply_ta_op`` (which calls
``torchvision.transforms.v2.functional`` exactly like ``TrivialAugmentWide``).

Asserted tolerances (|batched - torchvision|, pixel units: 0..255 for uint8, 0..1 for float)
and the maximum differences measured on CPU (torch 2.14.1, torchvision 0.29.1; 64 images,
32x32 and 24x32):

==============================  =================================  =================================
op                              uint8: asserted (measured)         float32: asserted (measured)
==============================  =================================  =================================
Identity                        exact (0)                          exact (0)
ShearX/Y, TranslateX/Y, Rotate  <= 0.1% pixels differ (0 pixels)   <= 0.1% pixels differ (0 pixels)
Brightness                      +-1 (0)                            1e-6 (0)
Color                           +-1 (0)                            1e-6 (0)
Contrast                        +-1 (0)                            1e-6 (0)
Sharpness                       +-1 (0)                            1e-6 (0; 1-channel: 1.2e-7)
Posterize                       exact (0)                          exact (0)
Solarize                        exact (0)                          exact (0)
AutoContrast                    exact (0)                          exact (0)
Equalize                        exact (0)                          exact (0)
==============================  =================================  =================================

Why not always "exact": NEAREST sampling picks ``round(coordinate)``, so a grid coordinate
that lands within one float32 ulp of a .5 tie could pick the neighbouring pixel if the
batched grid were computed with a different summation order; the batched path uses the
same float64 matrix formula and the same 3-term dot products as torchvision, and no pixel
differed in any measurement, but the bound leaves room for other BLAS back ends. uint8
colour ops end in a truncating ``.to(uint8)``; a value within one ulp of an integer could
flip by 1 if a reduction (contrast mean, sharpness convolution) summed in another order for
a batch. Measured: bit-identical, except 1-channel float Sharpness, where oneDNN picks a
different convolution algorithm for a batch than for a single 1-channel image (1 ulp,
1.2e-7). Equalize quantises float images to uint8 internally (torchvision's algorithm), so
its float output is a multiple of 1/255; the batched path calls the same ``F.equalize`` on
the sub-batch, hence exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from harness.augment import batched_ops
from harness.augment import ops as op_table
from harness.augment._common import BatchAugmentInfo
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.space import (
    GEOMETRIC_OPS,
    SIGNED_OPS,
    TA_OPS,
    magnitude_bins,
    op_id,
    severity_from_magnitude,
)
from harness.augment.trivial import apply_ta_op

ROOT = Path(__file__).resolve().parents[1]
CIFAR_TEST = Path("/work/shared/data/cifar10/test.npz")
K = 10
BINS = (0, 1, 7, 15, 20, 23, 30)

# (uint8 max |diff|, float max |diff|); geometric ops: max fraction of differing pixels.
TOLERANCE = {
    "Identity": (0, 0.0),
    "Brightness": (1, 1e-6),
    "Color": (1, 1e-6),
    "Contrast": (1, 1e-6),
    "Sharpness": (1, 1e-6),
    "Posterize": (0, 0.0),
    "Solarize": (0, 0.0),
    "AutoContrast": (0, 0.0),
    "Equalize": (0, 0.0),
}
GEOMETRIC_MAX_PIXEL_FRACTION = 1e-3


# ----------------------------------------------------------------------------- fixtures


class FakeMappingSet:
    """Stand-in with the ``mappings.MappingSet`` interface (used only if mappings/ is absent)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
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


def load_images(n: int = 8) -> torch.Tensor:
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
def mapping_set():
    return make_mapping_set()


@pytest.fixture(scope="module")
def images():
    return load_images(8)


@pytest.fixture(scope="module")
def aug(mapping_set):
    return BatchSoftAugment(K, mapping_set)


def draw(aug: BatchSoftAugment, n: int, device=None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(op_ids, magnitudes)`` from the stage protocol's ``sample_params`` dict."""
    params = aug.sample_params(n, device=device, generator=generator)
    return params["op_ids"], params["magnitudes"]


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def op_magnitudes(op: str) -> list[float]:
    bins = magnitude_bins(op, 31)
    if bins is None:
        return [0.0]
    mags = sorted({float(bins[i]) for i in BINS})
    if op in SIGNED_OPS:
        mags += [-m for m in mags if m != 0.0] + [-0.0]
    return mags


def reference(x: torch.Tensor, ops: list[str], mags: list[float], fill=None) -> torch.Tensor:
    return torch.stack([apply_ta_op(img, op, m, fill=fill) for img, op, m in zip(x, ops, mags)])


def compare(out: torch.Tensor, ref: torch.Tensor, op: str) -> tuple[float, float]:
    """Assert the per-op tolerance; return (max |diff|, fraction of differing values)."""
    assert out.dtype == ref.dtype and out.shape == ref.shape
    diff = (out.double() - ref.double()).abs()
    max_diff, frac = float(diff.max()), float((diff > 0).double().mean())
    if op in GEOMETRIC_OPS:
        assert frac <= GEOMETRIC_MAX_PIXEL_FRACTION, (op, frac, max_diff)
    else:
        tol = TOLERANCE[op][0 if out.dtype == torch.uint8 else 1]
        assert max_diff <= tol, (op, max_diff, tol)
    return max_diff, frac


# ----------------------------------------------------------------------------- per-op equivalence


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("op", TA_OPS)
def test_op_matches_torchvision_loop(aug, images, op, dtype):
    x0 = as_dtype(images, dtype)
    mags = op_magnitudes(op)
    for channels in (3, 1):
        x = x0 if channels == 3 else x0[:, :1].contiguous()
        # one batch holding every (image, magnitude) pair
        xb = x.repeat(len(mags), 1, 1, 1)
        mb = [m for m in mags for _ in range(len(x))]
        ids = torch.full((len(xb),), op_id(op))
        before = xb.clone()
        out, info = aug.apply(xb, ids, torch.tensor(mb))
        assert torch.equal(xb, before), "input modified in place"
        compare(out, reference(xb, [op] * len(xb), mb), op)
        assert info.op_ids.tolist() == ids.tolist()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
def test_mixed_batch_matches_torchvision_loop(aug, images, dtype):
    """Random ops and magnitudes in one batch: grouping by op and un-permuting are correct."""
    x = as_dtype(images, dtype).repeat(40, 1, 1, 1)  # 320 images
    g = torch.Generator().manual_seed(11)
    ids, mags = draw(aug, len(x), "cpu", g)
    out, info = aug.apply(x, ids, mags)
    ops = [TA_OPS[i] for i in ids.tolist()]
    ref = reference(x, ops, mags.tolist())
    for name in TA_OPS:
        sel = ids == op_id(name)
        if sel.any():
            compare(out[sel], ref[sel], name)
    assert torch.equal(info.magnitudes, mags)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
def test_geometric_special_angles_non_square_and_fill(mapping_set, images, dtype):
    x = as_dtype(images[:4], dtype)
    # rotate_image's fast paths (0/180 always, 90/270 on square images), odd angles
    angles = [0.0, -0.0, 90.0, -90.0, 180.0, -180.0, 270.0, 360.0, 450.0, -4.5, 135.0, 1e-3]
    xb = x.repeat(len(angles), 1, 1, 1)
    mb = [a for a in angles for _ in range(len(x))]
    aug = BatchSoftAugment(K, mapping_set)
    out, _ = aug.apply(xb, torch.full((len(xb),), op_id("Rotate")), torch.tensor(mb))
    compare(out, reference(xb, ["Rotate"] * len(xb), mb), "Rotate")
    # non-square images (grid normalised by W and H separately; no 90-degree fast path)
    rect = x[:, :, :24, :].contiguous()
    fills = (None, 0, 77, [10.0, 128.0, 250.0]) if dtype == torch.uint8 else (None, 0, 0.3, [0.1, 0.5, 0.9])
    for fill in fills:
        aug = BatchSoftAugment(K, mapping_set, fill=fill)
        for op in sorted(GEOMETRIC_OPS):
            mags = op_magnitudes(op) + ([90.0, -90.0] if op == "Rotate" else [])
            xb = rect.repeat(len(mags), 1, 1, 1)
            mb = [m for m in mags for _ in range(len(rect))]
            out, _ = aug.apply(xb, torch.full((len(xb),), op_id(op)), torch.tensor(mb))
            compare(out, reference(xb, [op] * len(xb), mb, fill=fill), op)


def test_python_mod_matches_python():
    values = [-720.5, -360.0, -270.0, -90.0, -4.5, -0.0, 0.0, 1e-9, 4.5, 90.0, 359.999, 360.0, 725.25]
    got = batched_ops.python_mod(torch.tensor(values, dtype=torch.float64), 360.0).tolist()
    assert got == [v % 360 for v in values]


# ----------------------------------------------------------------------------- provenance


def test_info_severities_and_confidences(mapping_set, images):
    aug = BatchSoftAugment(K, mapping_set)
    x = images.repeat(32, 1, 1, 1)
    g = torch.Generator().manual_seed(1)
    out, info = aug(x, g)
    assert isinstance(info, BatchAugmentInfo) and info.stage == "trivial_augment"
    assert info.op_ids.dtype == torch.int64
    for t in (info.magnitudes, info.severities, info.confidences):
        assert t.dtype == torch.float32 and t.shape == (len(x),)
    torch.testing.assert_close(
        info.severities, severity_from_magnitude(info.op_ids, info.magnitudes, 32, 32), rtol=0, atol=0
    )
    torch.testing.assert_close(
        info.confidences, mapping_set(info.op_ids, info.magnitudes, info.severities), rtol=0, atol=0
    )
    assert bool((info.confidences >= 1.0 / K - 1e-6).all() and (info.confidences <= 1.0).all())
    assert bool((info.confidences < 1.0).any())

    hard = BatchSoftAugment(K, mapping_set, hard=True)
    out_h, info_h = hard(x, torch.Generator().manual_seed(1))
    assert torch.equal(out_h, out)
    assert torch.equal(info_h.op_ids, info.op_ids) and torch.equal(info_h.severities, info.severities)
    assert torch.equal(info_h.confidences, torch.ones(len(x)))
    _, info_none = BatchSoftAugment(K, None, hard=True)(x, torch.Generator().manual_seed(1))
    assert torch.equal(info_none.confidences, torch.ones(len(x)))


def test_call_equals_sample_then_apply(aug, images):
    x = images.repeat(8, 1, 1, 1)
    out1, info1 = aug(x, torch.Generator().manual_seed(5))
    ids, mags = draw(aug, len(x), x.device, torch.Generator().manual_seed(5))
    out2, info2 = aug.apply(x, ids, mags)
    assert torch.equal(out1, out2) and torch.equal(info1.magnitudes, info2.magnitudes)


# ----------------------------------------------------------------------------- sampling


def test_sampling_reproducible_and_seed_dependent(aug, images):
    x = images.repeat(16, 1, 1, 1)
    a_out, a_info = aug(x, torch.Generator().manual_seed(42))
    b_out, b_info = aug(x, torch.Generator().manual_seed(42))
    c_out, c_info = aug(x, torch.Generator().manual_seed(43))
    assert torch.equal(a_out, b_out), "same seed must give an identical output tensor"
    assert torch.equal(a_info.op_ids, b_info.op_ids) and torch.equal(a_info.magnitudes, b_info.magnitudes)
    assert not torch.equal(a_info.op_ids, c_info.op_ids)
    assert not torch.equal(a_out, c_out)
    # the default generator follows torch.manual_seed
    torch.manual_seed(9)
    d = draw(aug, 64)
    torch.manual_seed(9)
    e = draw(aug, 64)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_sampled_values_are_bins(aug):
    ids, mags = draw(aug, 20000, "cpu", torch.Generator().manual_seed(0))
    assert ids.dtype == torch.int64 and mags.dtype == torch.float32
    for name in TA_OPS:
        m = mags[ids == op_id(name)]
        bins = magnitude_bins(name, 31)
        if bins is None:
            assert bool((m == 0).all()), name
            continue
        allowed = set(bins.to(torch.float32).tolist())
        assert set(m.abs().tolist()) == allowed, name
        if name not in SIGNED_OPS:
            assert bool((m >= 0).all()), name


def test_sampling_uniform_chi_square(aug):
    n = 56000
    ids, mags = draw(aug, n, "cpu", torch.Generator().manual_seed(2024))
    counts = torch.bincount(ids, minlength=len(TA_OPS)).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    # bins are uniform within an op (Rotate: 31 distinct magnitudes)
    rot = mags[ids == op_id("Rotate")].abs()
    _, bin_counts = torch.unique(rot, return_counts=True)
    assert len(bin_counts) == 31 and stats.chisquare(bin_counts.numpy()).pvalue > 1e-3
    # both signs of every signed op, ~50/50; unsigned / magnitude-free ops never negative
    for name in SIGNED_OPS:
        m = mags[(ids == op_id(name)) & (mags != 0)]
        neg = int((m < 0).sum())
        assert 0 < neg < len(m)
        assert stats.binomtest(neg, len(m), 0.5).pvalue > 1e-3, name
    for name in set(TA_OPS) - SIGNED_OPS:
        assert bool((mags[ids == op_id(name)] >= 0).all())


def test_ops_subset_sampling(mapping_set):
    ops = ["Rotate", "ShearX", "Solarize"]
    aug = BatchSoftAugment(K, mapping_set, ops=ops)
    ids, _ = draw(aug, 3000, "cpu", torch.Generator().manual_seed(0))
    counts = torch.bincount(ids, minlength=len(TA_OPS))
    assert {TA_OPS[i] for i in torch.nonzero(counts).flatten().tolist()} == set(ops)
    assert stats.chisquare(counts[counts > 0].numpy()).pvalue > 1e-3


def test_num_magnitude_bins(mapping_set):
    aug = BatchSoftAugment(K, mapping_set, num_magnitude_bins=5)
    ids, mags = draw(aug, 4000, "cpu", torch.Generator().manual_seed(0))
    rot = mags[ids == op_id("Rotate")].abs()
    assert set(rot.tolist()) == set(magnitude_bins("Rotate", 5).tolist())


# ----------------------------------------------------------------------------- edge cases / errors


def test_output_dtype_shape_and_empty_batch(aug, images):
    for dtype in (torch.uint8, torch.float32, torch.float64):
        x = as_dtype(images, dtype)
        out, _ = aug(x, torch.Generator().manual_seed(0))
        assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    empty = images[:0]
    out, info = aug(empty, torch.Generator().manual_seed(0))
    assert out.shape == empty.shape and info.op_ids.shape == (0,)


def test_bad_inputs(mapping_set, images):
    aug = BatchSoftAugment(K, mapping_set)
    n = len(images)
    ids = torch.zeros(n, dtype=torch.int64)
    mags = torch.zeros(n)
    with pytest.raises(TypeError, match="images must be a uint8 or floating"):
        aug.apply(images.to(torch.int32), ids, mags)
    with pytest.raises(ValueError, match=r"images must have shape \[N, C, H, W\]"):
        aug.apply(images[0], ids, mags)
    with pytest.raises(ValueError, match=r"C in \{1, 3\}"):
        aug.apply(images[:, :2], ids, mags)
    with pytest.raises(ValueError, match="op_ids must lie in"):
        aug.apply(images, torch.full((n,), len(TA_OPS)), mags)
    with pytest.raises(ValueError, match="op_ids must lie in"):
        aug.apply(images, torch.full((n,), -1), mags)
    with pytest.raises(ValueError, match="op_ids must have shape"):
        aug.apply(images, ids[:-1], mags)
    with pytest.raises(TypeError, match="op_ids must be an integer"):
        aug.apply(images, ids.float(), mags)
    with pytest.raises(ValueError, match="magnitudes must have shape"):
        aug.apply(images, ids, mags[:, None])
    with pytest.raises(ValueError, match="magnitudes must have shape"):
        aug.apply(images, ids, mags[:-1])
    with pytest.raises(ValueError, match="magnitudes must be finite"):
        aug.apply(images, ids, torch.full((n,), float("inf")))
    with pytest.raises(TypeError, match="magnitudes must be a float torch.Tensor"):
        aug.apply(images, ids, [0.0] * n)
    with pytest.raises(ValueError, match="Posterize"):
        aug.apply(images, torch.full((n,), op_id("Posterize")), torch.full((n,), 9.0))
    with pytest.raises(ValueError, match="Solarize"):
        aug.apply(images, torch.full((n,), op_id("Solarize")), torch.full((n,), 1.5))
    with pytest.raises(ValueError, match="Brightness"):
        aug.apply(images, torch.full((n,), op_id("Brightness")), torch.full((n,), -1.5))
    with pytest.raises(ValueError, match="n must be"):
        aug.sample_params(-1)

    with pytest.raises(ValueError, match="op must be one of"):
        BatchSoftAugment(K, mapping_set, ops=["ShearX", "Blur"])
    with pytest.raises(ValueError, match="num_classes"):
        BatchSoftAugment(1, mapping_set)
    with pytest.raises(ValueError, match="num_classes"):
        BatchSoftAugment(K + 1, mapping_set)
    with pytest.raises(ValueError, match="num_magnitude_bins"):
        BatchSoftAugment(K, mapping_set, num_magnitude_bins=0)
    with pytest.raises(ValueError, match="hard=True"):
        BatchSoftAugment(K, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(mapping_set, images):
    aug = BatchSoftAugment(K, mapping_set)
    x = images.repeat(32, 1, 1, 1)
    for dtype in (torch.uint8, torch.float32):
        xc = as_dtype(x, dtype)
        out_cpu, info_cpu = aug(xc, torch.Generator().manual_seed(3))
        out_gpu, info_gpu = aug(xc.cuda(), torch.Generator().manual_seed(3))
        assert out_gpu.device.type == "cuda" and info_gpu.confidences.device.type == "cuda"
        assert torch.equal(info_gpu.op_ids.cpu(), info_cpu.op_ids)
        for name in TA_OPS:
            sel = info_cpu.op_ids == op_id(name)
            if sel.any():
                compare(out_gpu.cpu()[sel], out_cpu[sel], name)


@pytest.mark.parametrize("method", ["matmul", "elementwise"])
def test_affine_grid_methods_match_torchvision_grid(method):
    """Both grid methods reproduce torchvision's per-sample bmm grid to float32 rounding.

    Bit-identical on the Intel Xeon of 2026-11-25; on an AVX-512 AMD EPYC torchvision's bmm kernel
    rounds differently (max 4.8e-7, i.e. 2-4 ulp at |x| <= 1.3, in ~8 % of the coordinates), so the
    test allows 6e-7: a grid coordinate that close to a pixel-centre boundary can move a
    nearest-neighbour sample, which the per-op image tests below bound."""
    geometry = pytest.importorskip("torchvision.transforms.v2.functional._geometry")
    if not hasattr(geometry, "_affine_grid"):
        pytest.skip("torchvision private _affine_grid not available")
    _affine_grid = geometry._affine_grid
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 6, (64,), generator=g)
    mags = (torch.rand(64, generator=g) * 2 - 1) * torch.tensor([0, 0.99, 0.99, 32, 32, 135])[ids]
    for h, w in ((32, 32), (24, 40)):
        theta = op_table.ta_inverse_affine_matrices(ids, mags, h, w).to(torch.float32).view(-1, 2, 3)
        ours = batched_ops.affine_grid(theta, h, w, method=method)
        ref = torch.cat([_affine_grid(t[None].clone(), w=w, h=h, ow=w, oh=h) for t in theta])
        torch.testing.assert_close(ours, ref, rtol=0, atol=6e-7)
    with pytest.raises(ValueError, match="method"):
        batched_ops.affine_grid(theta, h, w, method="bad")


def test_inverse_matrices_match_torchvision_formula():
    """Vectorised float64 matrices == torchvision's python-float ``_get_inverse_affine_matrix``
    (as TrivialAugmentWide calls it), and within one float32 ulp after the cast used for the grid."""
    geometry = pytest.importorskip("torchvision.transforms.v2.functional._geometry")
    if not hasattr(geometry, "_get_inverse_affine_matrix"):
        pytest.skip("torchvision private _get_inverse_affine_matrix not available")
    import math

    h, w = 24, 40
    rows, ids, mags = [], [], []
    for op in sorted(GEOMETRIC_OPS):
        for m in [float(v) for v in magnitude_bins(op, 31)] + [-7.3, 0.123, 400.0, -450.0]:
            for mag in (m, -m):
                if op.startswith("Shear"):
                    shear_deg = math.degrees(math.atan(mag))
                    shear = [shear_deg, 0.0] if op == "ShearX" else [0.0, shear_deg]
                    center, angle, translate = [0.0 - w * 0.5, 0.0 - h * 0.5], 0.0, [0.0, 0.0]
                elif op.startswith("Translate"):
                    shear, center, angle = [0.0, 0.0], [0.0, 0.0], 0.0
                    translate = [float(int(mag)), 0.0] if op == "TranslateX" else [0.0, float(int(mag))]
                else:
                    shear, center, translate, angle = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], -(mag % 360)
                rows.append(geometry._get_inverse_affine_matrix(center, angle, translate, 1.0, shear))
                ids.append(op_id(op))
                mags.append(mag)
    ours = op_table.ta_inverse_affine_matrices(
        torch.tensor(ids), torch.tensor(mags, dtype=torch.float64), h, w
    )
    ref = torch.tensor(rows, dtype=torch.float64)
    torch.testing.assert_close(ours, ref, rtol=1e-15, atol=1e-13)
    # after the float32 cast: at most one float32 ulp apart (a 1e-16 float64 difference can straddle
    # a float32 rounding boundary; whether it does depends on the CPU's vectorised sin/cos)
    o32, r32 = ours.to(torch.float32), ref.to(torch.float32)
    ulp = torch.nextafter(r32.abs(), torch.tensor(float("inf"))) - r32.abs()
    assert torch.all((o32 - r32).abs() <= ulp)
