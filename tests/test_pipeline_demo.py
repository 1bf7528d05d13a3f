"""Stage chaining, atomic writes and the demo job end to end."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

import harness
import mappings
from harness.cli import main
from harness.io import atomic_write_text, provenance


def _images(n=16, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_batch_pipeline_combines_stage_confidences_with_floor():
    k = 10
    pipe = harness.BatchSoftPipeline(
        [
            harness.BatchSoftAugment(k, mapping="polynomial_chance"),
            harness.BatchSoftRandomErasing(k, p=1.0, scale=(0.3, 0.8)),
            harness.BatchSoftRandomCrop(k, sigma_frac=0.3),
        ],
        num_classes=k,
    )
    x = _images(64)
    out, conf, infos = pipe(x, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert [i.stage for i in infos] == ["trivial_augment", "random_erasing", "soft_crop"]
    raw = infos[0].confidences * infos[1].confidences * infos[2].confidences
    torch.testing.assert_close(conf, raw.clamp(min=1 / k))
    assert torch.all(conf >= 1 / k) and torch.all(conf <= 1)


def test_batch_pipeline_is_reproducible_for_a_seed():
    pipe = harness.BatchSoftPipeline(
        [harness.BatchSoftAugment(10), harness.BatchSoftNoise(10, sigma_max=0.5, patch_frac=0.8)], 10
    )
    x = _images(32)
    a = pipe(x, generator=torch.Generator().manual_seed(3))
    b = pipe(x, generator=torch.Generator().manual_seed(3))
    c = pipe(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_soft_compose_per_sample():
    k = 10
    comp = harness.SoftCompose(
        [harness.SoftTrivialAugment(k), harness.SoftRandomErasing(k, p=1.0, scale=(0.1, 0.5))], k, combine="min"
    )
    torch.manual_seed(0)
    img, conf, infos = comp(_images(1)[0])
    assert img.shape == (3, 32, 32)
    assert conf == pytest.approx(max(min(i.confidence for i in infos), 1 / k))


def test_pipeline_bad_input():
    with pytest.raises(ValueError, match="combine"):
        harness.BatchSoftPipeline([], 10, combine="mean")
    with pytest.raises(ValueError, match="num_classes"):
        harness.BatchSoftPipeline([], 1)
    with pytest.raises(TypeError, match="images"):
        harness.BatchSoftPipeline([], 10)(torch.zeros(2, 3, 8, 8, dtype=torch.int32))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_provenance_records_versions_and_seed():
    p = provenance(config={"seed": 7})
    assert p["seed"] == 7
    assert p["versions"]["torch"] == torch.__version__
    assert "git_sha" in p


def test_demo_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--num-classes", "10", "--seed", "1", "--size", "32"]) == 0
    for name in ("augmentation_grid.png", "ta_confidence_table.csv", "stage_confidence_summary.csv",
                 "summary.md", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "augmentation_grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "ta_confidence_table.csv")
    # every op x signed bin: 11 signed/unsigned magnitude ops; 9 signed x 31 x 2 + 2 x 31 + 3 magnitude-free
    assert len(table) == 9 * 31 * 2 + 2 * 31 + 3
    assert set(mappings.PRESETS) <= set(table.columns)
    for name in mappings.PRESETS:
        assert table[name].between(0.1 - 1e-9, 1.0).all()
    row = table[(table.op == "Rotate") & (table.bin == 30) & (table.sign == "+")].iloc[0]
    assert row["polynomial_chance"] == pytest.approx(0.1, abs=1e-6)
    summary = pd.read_csv(out / "stage_confidence_summary.csv")
    assert summary["mean"].between(0.1, 1.0).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["mean_confidence"]) == len(summary)
    assert "git_sha" in (out / "summary.md").read_text()


def test_demo_cli_reports_missing_npz(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "x"), "--images-npz", str(tmp_path / "nope.npz")])
    assert code == 2
    assert "images_npz" in capsys.readouterr().err


def test_cli_rejects_bad_num_classes(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--out", "x", "--num-classes", "1"])
    assert "--num-classes must be an integer >= 2" in capsys.readouterr().err
