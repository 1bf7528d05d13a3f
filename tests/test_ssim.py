"""Batched torch SSIM vs scikit-image, SSIM op curves, SSIM mapping set and per-sample SSIM confidence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.space import GEOMETRIC_OPS, SIGNED_OPS, op_id
from harness.measure import WANG_SSIM, SSIMConfidence, op_bin_grid, ssim_op_curves, ssim_torch
from mappings import MappingSet, from_dict
from mappings.ssim import CURVE_COLUMNS, ssim_mapping_set

CIFAR = Path("/work/shared/data/cifar10/test.npz")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETTINGS = {
    "uniform7": {},
    "wang": dict(WANG_SSIM),
    "gauss_win7_reflect": {"gaussian_weights": True, "sigma": 1.5, "win_size": 7},
}


def _synthetic(n: int = 24, seed: int = 0) -> torch.Tensor:
    """Seeded smooth RGB images (Gaussian-blurred noise + a gradient), uint8 [n, 3, 32, 32]."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, 32, 32, 3))
    smooth = gaussian_filter(noise, sigma=(0, 2.0, 2.0, 0))
    ramp = np.linspace(0, 1, 32)[None, :, None, None]
    img = 0.5 + 1.5 * smooth + 0.3 * (ramp - 0.5)
    u8 = np.clip(img * 255, 0, 255).astype(np.uint8)
    return torch.from_numpy(u8).permute(0, 3, 1, 2).contiguous()


def _images(source: str, n: int = 24) -> torch.Tensor:
    if source == "cifar":
        if not CIFAR.is_file():
            pytest.skip(f"{CIFAR} not present")
        with np.load(CIFAR) as z:
            return torch.from_numpy(z["images"][:n]).permute(0, 3, 1, 2).contiguous()
    return _synthetic(n)


def _pairs(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Originals and augmented versions: every TA op at bins 0, 4, 15, 30 with both signs."""
    x = _images(source)
    grid = op_bin_grid(31)
    grid = grid[grid["bin"].isin([0, 4, 15, 30])].reset_index(drop=True)
    rows = grid.sample(n=x.shape[0] * 3, replace=True, random_state=0)
    xs = x.repeat(3, 1, 1, 1)
    ids = torch.tensor([op_id(o) for o in rows["op"]])
    mags = torch.tensor(rows["magnitude"].to_numpy(), dtype=torch.float32)
    y, _ = BatchSoftAugment(10, None, hard=True).apply(xs, ids, mags)
    return xs, y


def _skimage(x: torch.Tensor, y: torch.Tensor, **kw) -> np.ndarray:
    a = x.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0
    b = y.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0
    return np.array([structural_similarity(a[i], b[i], data_range=1.0, channel_axis=-1, **kw)
                     for i in range(a.shape[0])])


# ------------------------------------------------------------------------------------------ ssim_torch
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("source", ["cifar", "synthetic"])
def test_ssim_matches_skimage(source, setting):
    kw = SETTINGS[setting]
    x, y = _pairs(source)
    ref = _skimage(x, y, **kw)
    got32 = ssim_torch(x, y, **kw)  # uint8 -> float32 [0, 1]
    assert got32.dtype == torch.float32 and got32.shape == (x.shape[0],)
    assert np.abs(got32.numpy() - ref).max() <= 1e-4
    got64 = ssim_torch(x.double() / 255, y.double() / 255, **kw)
    assert got64.dtype == torch.float64
    assert np.abs(got64.numpy() - ref).max() <= 1e-10
    assert ref.min() < 0.5  # the pairs span a wide SSIM range (not only near-identical images)


def test_ssim_channels_last_and_grayscale():
    x, y = _pairs("synthetic")
    nchw = ssim_torch(x, y, **WANG_SSIM)
    nhwc = ssim_torch(x.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1), channel_axis=-1, **WANG_SSIM)
    torch.testing.assert_close(nchw, nhwc, rtol=0, atol=1e-6)
    g1, g2 = x[:, :1], y[:, :1]
    ref = np.array([structural_similarity(g1[i, 0].double().numpy() / 255, g2[i, 0].double().numpy() / 255,
                                          data_range=1.0) for i in range(len(g1))])
    assert np.abs(ssim_torch(g1, g2).numpy() - ref).max() <= 1e-4


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_ssim_identity_and_symmetry(device, setting):
    kw = SETTINGS[setting]
    x, y = (t.to(device) for t in _pairs("synthetic"))
    torch.testing.assert_close(ssim_torch(x, x, **kw), torch.ones(len(x), device=device), rtol=0, atol=1e-6)
    xf = x.float() / 255
    torch.testing.assert_close(ssim_torch(xf, xf, **kw), torch.ones(len(x), device=device), rtol=0, atol=1e-6)
    torch.testing.assert_close(ssim_torch(x, y, **kw), ssim_torch(y, x, **kw), rtol=0, atol=1e-6)
    assert ssim_torch(x, y, **kw).device.type == device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ssim_cuda_matches_cpu():
    x, y = _pairs("synthetic")
    for kw in SETTINGS.values():
        torch.testing.assert_close(ssim_torch(x.cuda(), y.cuda(), **kw).cpu(), ssim_torch(x, y, **kw),
                                   rtol=0, atol=2e-5)


def test_ssim_bad_inputs():
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="same shape"):
        ssim_torch(x, x[:, :, :8])
    with pytest.raises(ValueError, match="win_size"):
        ssim_torch(x, x, win_size=6)
    with pytest.raises(ValueError, match="win_size"):
        ssim_torch(x, x, win_size=17)
    with pytest.raises(TypeError, match="x must be a uint8 or floating"):
        ssim_torch(x.int(), x)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        ssim_torch(x, x.numpy())
    with pytest.raises(ValueError, match="data_range"):
        ssim_torch(x, x, data_range=0)
    with pytest.raises(ValueError, match="channel_axis"):
        ssim_torch(x, x, channel_axis=2)
    with pytest.raises(ValueError, match="sigma"):
        ssim_torch(x, x, gaussian_weights=True, sigma=-1.0)
    with pytest.raises(ValueError, match="4-D"):
        ssim_torch(x[0], x[0])
    assert ssim_torch(x[:0], x[:0]).shape == (0,)


# ------------------------------------------------------------------------------------------ curves
@pytest.fixture(scope="module")
def tiny_curves() -> pd.DataFrame:
    x = _images("cifar", 16) if CIFAR.is_file() else _synthetic(16)
    return ssim_op_curves(x, n_images=16, num_bins=5, n_boot=20, seed=0)


def test_curves_columns_and_values(tiny_curves):
    df = tiny_curves
    assert tuple(df.columns) == CURVE_COLUMNS
    assert len(df) == len(SIGNED_OPS) * 2 * 5 + 2 * 5 + 3
    assert (df["n"] == 16).all()
    assert df.loc[df["op"] == "Identity", "ssim_mean"].item() == pytest.approx(1.0, abs=1e-6)
    bin0 = df[(df["bin"] == 0) & df["op"].isin(SIGNED_OPS)]
    np.testing.assert_allclose(bin0["ssim_mean"], 1.0, atol=1e-6)  # magnitude 0 is the clean image
    assert ((df["ci_low"] <= df["ssim_mean"] + 1e-12) & (df["ssim_mean"] <= df["ci_high"] + 1e-12)).all()
    bright = df[(df["op"] == "Brightness") & (df["sign"] == "-")].sort_values("bin")
    assert np.all(np.diff(bright["ssim_mean"].to_numpy()) < 0)  # SSIM falls with severity
    assert bright["ssim_mean"].iloc[-1] < 0.1
    # Signs: negative magnitudes for '-', the severity does not depend on the sign.
    assert (df.loc[df["sign"] == "-", "magnitude"] <= 0).all()
    plus = df[df["sign"] == "+"].set_index(["op", "bin"])["severity"]
    minus = df[df["sign"] == "-"].set_index(["op", "bin"])["severity"]
    pd.testing.assert_series_equal(plus, minus)


def test_curves_seeded_and_skimage_backend():
    x = _synthetic(4)
    a = ssim_op_curves(x, n_images=4, num_bins=2, n_boot=10, seed=3)
    b = ssim_op_curves(x, n_images=4, num_bins=2, n_boot=10, seed=3)
    pd.testing.assert_frame_equal(a, b)
    sk = ssim_op_curves(x, n_images=4, num_bins=2, n_boot=10, seed=3, backend="skimage")
    np.testing.assert_allclose(sk["ssim_mean"], a["ssim_mean"], atol=1e-4)


def test_curves_bad_inputs():
    x = _synthetic(2)
    with pytest.raises(TypeError, match="images_uint8"):
        ssim_op_curves(x.float())
    with pytest.raises(ValueError, match="n_images"):
        ssim_op_curves(x, n_images=0)
    with pytest.raises(ValueError, match="num_bins"):
        ssim_op_curves(x, num_bins=1)
    with pytest.raises(ValueError, match="n_boot"):
        ssim_op_curves(x, n_boot=2)
    with pytest.raises(ValueError, match="backend"):
        ssim_op_curves(x, backend="torchmetrics")
    with pytest.raises(ValueError, match="ssim_kwargs"):
        ssim_op_curves(x, ssim_kwargs={"data_range": 255})


# ------------------------------------------------------------------------------------------ mapping set
@pytest.mark.parametrize("monotone", ["running_min", "isotonic"])
def test_ssim_mapping_set(tiny_curves, monotone):
    k = 10
    ms = ssim_mapping_set(tiny_curves, k, monotone=monotone)
    assert isinstance(ms, MappingSet) and ms.num_classes == k
    assert "Identity" not in ms.mappings
    assert {"Brightness+", "Brightness-", "Posterize", "Solarize"} <= set(ms.mappings)
    for key, table in ms.mappings.items():
        assert table.is_monotone, key
        assert min(table.confidences) >= 1 / k - 1e-12 and max(table.confidences) <= 1.0
    # geometric ops collapse to the floor at full severity (METHOD §3.5 takeaway)
    for op in GEOMETRIC_OPS:
        assert ms.confidence(op, 1.0, 1.0) <= 0.3
    rebuilt = from_dict(json.loads(json.dumps(ms.to_dict())))
    assert rebuilt == ms
    # the mapping reproduces the clipped measured means where the curve was already monotone
    bright = tiny_curves[(tiny_curves["op"] == "Brightness") & (tiny_curves["sign"] == "-")]
    row = bright[bright["bin"] == 2].iloc[0]
    assert ms.confidence("Brightness", -0.5, float(row["severity"])) == pytest.approx(
        max(row["ssim_mean"], 1 / k), abs=1e-9)


def test_ssim_mapping_set_bad_inputs(tiny_curves):
    with pytest.raises(ValueError, match="monotone"):
        ssim_mapping_set(tiny_curves, 10, monotone="cummax")
    with pytest.raises(ValueError, match="ssim_mean"):
        ssim_mapping_set(tiny_curves.drop(columns=["ssim_mean"]), 10)
    with pytest.raises(TypeError, match="curves"):
        ssim_mapping_set(tiny_curves.to_dict(), 10)
    with pytest.raises((TypeError, ValueError), match="num_classes"):
        ssim_mapping_set(tiny_curves, 1)
    bad = tiny_curves.copy()
    bad.loc[bad.index[0], "op"] = "Blur"
    with pytest.raises(ValueError, match="unknown ops"):
        ssim_mapping_set(bad, 10)


# ------------------------------------------------------------------------------------------ per-sample
@pytest.mark.parametrize("device", DEVICES)
def test_ssim_confidence(device):
    x, y = (t.to(device) for t in _pairs("synthetic"))
    k = 10
    conf = SSIMConfidence()(x, y, k)
    assert conf.shape == (x.shape[0],) and conf.dtype == torch.float32 and conf.device.type == device
    assert bool(((conf >= 1 / k) & (conf <= 1)).all())
    assert bool((conf == 1 / k).any())  # some strongly augmented samples hit the chance floor
    torch.testing.assert_close(SSIMConfidence()(x, x, k), torch.ones(len(x), device=device), rtol=0, atol=1e-6)
    expected = ssim_torch(x, y, **WANG_SSIM).clamp(1 / k, 1)
    torch.testing.assert_close(conf, expected)
    uniform = SSIMConfidence(gaussian_weights=False, use_sample_covariance=True)(x.float() / 255, y.float() / 255, k)
    torch.testing.assert_close(uniform, ssim_torch(x, y).clamp(1 / k, 1), rtol=0, atol=1e-6)


def test_ssim_confidence_bad_inputs():
    x = _synthetic(2)
    with pytest.raises(ValueError, match="data_range"):
        SSIMConfidence(data_range=255)
    with pytest.raises((TypeError, ValueError), match="num_classes"):
        SSIMConfidence()(x, x, 1)
    with pytest.raises(TypeError, match="same dtype"):
        SSIMConfidence()(x, x.float(), 10)
    with pytest.raises(ValueError, match="same shape"):
        SSIMConfidence()(x, x[:1], 10)
