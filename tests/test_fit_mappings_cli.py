"""`softbench fit-mappings` end to end on tiny data (SSIM and proxy sources)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mappings
from harness import fit_mappings as F
from harness.cli import main
from harness.datasets import load_dataset
from mappings.ops import TRIVIAL_AUGMENT_WIDE

TA_OPS = TRIVIAL_AUGMENT_WIDE.names


def _check_outputs(out, name, k):
    ms = mappings.from_dict(json.loads((out / f"{name}.json").read_text()))
    assert ms.num_classes == k and ms.name == name
    assert ms.sources
    assert all(v in {"ssim", "proxy", "polynomial"} or v.startswith("hvs:") for v in ms.sources.values())
    sev = np.linspace(0, 1, 11)
    for op in TA_OPS:
        c = ms(np.full(11, TA_OPS.index(op)), np.ones(11), sev)
        assert np.all(c >= 1 / k - 1e-7) and np.all(c <= 1 + 1e-7)
        assert np.all(np.diff(c) <= 1e-6), op  # fitted curves are non-increasing in severity
    table = pd.read_csv(out / f"{name}_table.csv")
    assert {"op", "severity", "point", "low", "high"} <= set(table.columns)
    pngs = sorted(out.glob(f"{name}_*.png"))
    assert len(pngs) == len(TA_OPS)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_fit_mappings_ssim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fitted"
    assert main(["fit-mappings", "--dataset", "mnist5k", "--source", "ssim", "--n-images", "12",
                 "--out", str(out), "--no-progress"]) == 0
    _check_outputs(out, "ssim", 10)


def test_fit_mappings_proxy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fitted"
    assert main(["fit-mappings", "--dataset", "mnist5k", "--source", "proxy", "--n-images", "40",
                 "--proxy-epochs", "8", "--proxy-n-per-class", "100", "--proxy-precision", "fp32",
                 "--out", str(out), "--no-progress"]) == 0
    _check_outputs(out, "proxy", 10)
    proxy = json.loads((tmp_path / "runs" / "proxy_mnist5k_seed0" / "provenance.json").read_text())
    assert proxy["precision"] == "fp32" and proxy["threads"] == 1  # the options reach the proxy run


def test_fit_mappings_hvs_with_polynomial_fallback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fitted"
    assert main(["fit-mappings", "--dataset", "mnist5k", "--source", "hvs", "--fallback", "polynomial",
                 "--n-boot", "20", "--out", str(out), "--no-progress"]) == 0
    _check_outputs(out, "hvs", 10)
    ms = mappings.from_dict(json.loads((out / "hvs.json").read_text()))
    # contrast: the LRT rejects pooling the 2018 and 2021 studies, so one study is used and named
    assert ms.sources["Contrast-"].startswith("hvs:contrast(") and ms.sources["Rotate+"].startswith("hvs:rotation")
    assert ms.sources["TranslateX-"] == "hvs:occlusion" and ms.sources["ShearX+"] == "polynomial"
    # chance-level human accuracy maps to 1/K and the ceiling to 1 (Contrast-: severity 1 = no contrast)
    assert ms.confidence("Contrast", -0.99, 1.0) < 0.2
    assert ms.confidence("Contrast", -0.0, 0.0) == 1.0
    table = pd.read_csv(out / "hvs_table.csv")
    assert {s.split("(")[0] for s in table["source"]} >= {"hvs:contrast", "hvs:occlusion", "hvs:rotation"}


def test_fit_mappings_bad_input(tmp_path, capsys):
    assert main(["fit-mappings", "--dataset", "nope", "--source", "ssim", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_measure_on_train_heldout_never_uses_test_or_proxy_images(tmp_path, monkeypatch):
    """The pipeline's measurement pool: training images outside the proxy's subset."""
    monkeypatch.chdir(tmp_path)
    seen = {}

    def spy(*, images, name, **kw):
        seen["images"] = images
        raise RuntimeError("stop after choosing the images")

    monkeypatch.setattr(F, "_ssim_source", spy)
    train, test = load_dataset("mnist5k")
    for where in ("test", "train-heldout"):
        try:
            F.fit_mappings("mnist5k", "ssim", tmp_path / where, n_images=40, proxy_n_per_class=300,
                           measure_on=where, progress=False)
        except RuntimeError:
            pass
        got = seen.pop("images").permute(0, 2, 3, 1).numpy()
        in_test = (got[:, None] == test.images[None]).all(axis=(2, 3, 4)).any(axis=1)
        proxy_rows = train.subset_indices(300, 0)
        in_proxy = (got[:, None] == train.images[proxy_rows][None]).all(axis=(2, 3, 4)).any(axis=1)
        if where == "test":
            assert in_test.all()
        else:
            assert not in_proxy.any() and not in_test.any(), "measurement must avoid test and proxy images"
    assert main(["fit-mappings", "--dataset", "mnist5k", "--source", "ssim", "--measure-on", "train-heldout",
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2  # needs --proxy-n-per-class


def test_default_output_folder_is_datasets_fitted(tmp_path, monkeypatch):
    """Fitted sets go under datasets/fitted/<dataset> of the working copy, never into the mappings package."""
    monkeypatch.chdir(tmp_path)
    assert F.default_out_dir("mnist5k", "ssim") == Path("datasets/fitted/mnist5k/ssim")

    def spy(*, images, name, **kw):
        raise RuntimeError("stop after choosing the output folder")

    monkeypatch.setattr(F, "_ssim_source", spy)
    try:
        F.fit_mappings("mnist5k", "ssim", n_images=4, progress=False)
    except RuntimeError:
        pass
    assert (tmp_path / "datasets" / "fitted" / "mnist5k" / "ssim").is_dir()
    with pytest.raises(RuntimeError, match="output folder"):  # the command's default is the same folder
        main(["fit-mappings", "--dataset", "mnist5k", "--source", "ssim", "--name", "s2", "--n-images", "2",
              "--no-progress"])
    assert (tmp_path / "datasets" / "fitted" / "mnist5k" / "s2").is_dir()
