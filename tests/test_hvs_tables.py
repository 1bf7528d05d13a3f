"""Committed human-vision tables (datasets/hvs): presence, columns, rebuild from raw trials, fit inputs."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mappings import hvs
from mappings.hvs import (
    CHANCE_BY_STUDY,
    DEFAULT_ROOT,
    DISTORTIONS,
    REQUIRED_COLUMNS,
    build_geirhos_tables,
    build_occlusion_table,
    chance_for_study,
    fit_data,
    load_hvs_table,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOFTBENCH_SHARED_HVS", REPO.parent / "shared" / "data" / "hvs"))
HAVE_SHARED = (SHARED / "human_trials.csv.gz").is_file() and (
    SHARED / "raw" / "tang2018" / "occlusion_trials.csv"
).is_file()
needs_shared = pytest.mark.skipif(
    not HAVE_SHARED, reason=f"raw HVS data not found at {SHARED} (set SOFTBENCH_SHARED_HVS to rebuild-check)"
)


# ----------------------------------------------------------------------------- committed tables
@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_committed_table_exists_with_required_columns(distortion):
    assert (DEFAULT_ROOT / f"{distortion}.csv").is_file()
    df = load_hvs_table(distortion)
    assert set(REQUIRED_COLUMNS) <= set(df.columns)
    assert len(df) >= 2 and (df["distortion"] == distortion).all()
    assert (df["n_trials"] > 0).all() and (df["n_correct"] >= 0).all()
    assert (df["n_correct"] <= df["n_trials"]).all()
    np.testing.assert_allclose(df["accuracy"], df["n_correct"] / df["n_trials"], atol=5e-7)
    for study, chance, k in zip(df["study"], df["chance"], df["n_classes"]):
        assert chance == pytest.approx(CHANCE_BY_STUDY[study])
        assert k == round(1 / chance)
    for col in ("citation", "licence", "source", "condition_unit"):
        assert df[col].map(lambda v: isinstance(v, str) and len(v) > 10).all(), col
    keys = ["study", "experiment", "condition"] + (["masked"] if distortion == "occlusion" else [])
    assert not df.duplicated(keys).any()


def test_committed_tables_citations_and_licences():
    contrast = load_hvs_table("contrast")
    cites = dict(zip(contrast["study"], contrast["citation"]))
    assert cites["geirhos2018"].startswith("Geirhos et al. 2018, NeurIPS, Generalisation in humans")
    assert cites["geirhos2021"].startswith("Geirhos et al. 2021, NeurIPS, Partial success")
    assert dict(zip(contrast["study"], contrast["licence"]))["geirhos2018"].startswith("CC BY 4.0")
    occ = load_hvs_table("occlusion")
    assert occ["citation"].iloc[0].startswith("Tang et al. 2018, PNAS")
    assert occ["licence"].iloc[0].startswith("unspecified (see source)")
    assert {"masked", "visibility_lo_pct", "visibility_hi_pct", "mean_visibility_pct"} <= set(occ.columns)
    assert set(occ["masked"]) == {0, 1}


def test_conditions_are_numeric_where_possible():
    assert load_hvs_table("contrast")["condition"].map(lambda v: isinstance(v, float)).all()
    assert math.isinf(load_hvs_table("high-pass")["condition"].max())
    assert set(load_hvs_table("colour")["condition"]) == {"colour", "greyscale"}


def test_load_unknown_distortion_lists_known_ones():
    with pytest.raises(ValueError, match="contrast") as err:
        load_hvs_table("salt-and-pepper")
    assert "occlusion" in str(err.value)


def test_load_missing_table_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_hvs_tables"):
        load_hvs_table("contrast", root=tmp_path)


def test_chance_by_study():
    assert CHANCE_BY_STUDY == {"geirhos2018": 1 / 16, "geirhos2021": 1 / 16, "tang2018": 0.2}
    assert chance_for_study("tang2018") == 0.2
    with pytest.raises(ValueError, match="no chance level"):
        chance_for_study("hendrycks2019")


# ----------------------------------------------------------------------------- building (synthetic)
def _trial(study, exp, distortion, condition, response, category, correct, subj="subject-01", rt=0.8):
    return {
        "study": study, "experiment": exp, "distortion": distortion, "condition": condition,
        "condition_label": str(condition), "coherence": np.nan, "subj": subj, "session": 1, "trial": 1,
        "rt": np.nan if response == "na" else rt, "object_response": response, "category": category,
        "correct": correct, "imagename": "x.png", "stimulus_format": "png",
        "source_file": f"raw-data/{exp}/{exp}_subject-01_session_1.csv",
    }


def test_build_geirhos_counts_no_answers_as_incorrect():
    rows = [
        _trial("geirhos2021", "contrast", "contrast", "0.1", "cat", "cat", 1),
        _trial("geirhos2021", "contrast", "contrast", "0.1", "na", "cat", 0),
        _trial("geirhos2021", "contrast", "contrast", "0.1", "dog", "cat", 0, subj="subject-02"),
        _trial("geirhos2021", "contrast", "contrast", "1.0", "cat", "cat", 1),
    ]
    tables = build_geirhos_tables(pd.DataFrame(rows))
    df = tables["contrast"]
    assert list(df["condition"]) == [0.1, 1.0]
    first = df.iloc[0]
    counts = (first["n_trials"], first["n_correct"], first["n_no_response"], first["n_subjects"])
    assert counts == (3, 1, 1, 2)
    assert first["accuracy"] == pytest.approx(1 / 3, abs=1e-6)
    assert first["chance"] == 1 / 16 and first["source"].startswith("github:bethgelab/model-vs-human@")
    bad = pd.DataFrame([_trial("geirhos2021", "contrast", "contrast", "0.1", "na", "cat", 1)])
    with pytest.raises(ValueError, match="no-answer"):
        build_geirhos_tables(bad)


def test_build_occlusion_binning_closed_on_the_right():
    def row(vis, correct, dataset="klab325v2", occluded=1, masked=0, image_id=1, subject=1):
        return {"dataset": dataset, "subject": subject, "image_id": image_id, "correct": correct,
                "occluded": occluded, "visibility_pct": vis, "masked": masked, "source_file": "f.mat"}

    rows = [
        row(0.0, 0), row(5.0, 1), row(5.01, 1), row(9.9, 0, subject=2),
        row(3.0, 1, image_id=301),  # image 301 > 300: excluded
        row(100.0, 1, dataset="klab325v3", occluded=0),
        row(np.nan, 1, dataset="klab325v3", occluded=1),  # v3 occluded trials have no visibility
        row(12.0, 1, masked=1),
    ]
    df = build_occlusion_table(pd.DataFrame(rows))
    unmasked = df[df["masked"] == 0].set_index("condition")
    assert list(unmasked.index) == [2.5, 7.5, 100.0]
    assert (unmasked.loc[2.5, "n_trials"], unmasked.loc[2.5, "n_correct"]) == (2, 1)  # 0 and 5.0
    assert (unmasked.loc[7.5, "n_trials"], unmasked.loc[7.5, "n_subjects"]) == (2, 2)  # 5.01, 9.9
    assert unmasked.loc[100.0, "experiment"] == "klab325v3"
    assert list(df[df["masked"] == 1]["condition"]) == [12.5]
    assert (df["chance"] == 0.2).all()


# ----------------------------------------------------------------------------- rebuild from raw
@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """Run scripts/build_hvs_tables.py once into a temporary folder."""
    out = tmp_path_factory.mktemp("hvs")
    script = REPO / "scripts" / "build_hvs_tables.py"
    spec = importlib.util.spec_from_file_location("build_hvs_tables", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--shared", str(SHARED), "--out", str(out)]) == 0
    return out


@needs_shared
@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_rebuilt_tables_equal_committed(rebuilt, distortion):
    pd.testing.assert_frame_equal(load_hvs_table(distortion, root=rebuilt), load_hvs_table(distortion))


@needs_shared
@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_rebuilt_counts_equal_shared_per_condition_csvs(rebuilt, distortion):
    ours = load_hvs_table(distortion, root=rebuilt)
    shared = pd.read_csv(SHARED / f"{distortion}.csv", keep_default_na=False, na_values=[""],
                         dtype={"condition": str})
    shared["condition"] = [hvs._parse_condition(distortion, v) for v in shared["condition"]]
    shared = shared.rename(columns={"dataset": "experiment"})
    keys = ["study", "experiment", "condition"] + (["masked"] if distortion == "occlusion" else [])
    merged = ours.merge(shared, on=keys, how="outer", suffixes=("", "_shared"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", keys]
    assert (merged["n_trials"] == merged["n_trials_shared"]).all()
    assert (merged["n_correct"] == merged["n_correct_shared"]).all()
    if distortion != "occlusion":
        assert (merged["n_no_response"] == merged["n_no_response_shared"]).all()


def test_build_tables_missing_shared_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="human_trials"):
        hvs.build_tables(tmp_path)


# ----------------------------------------------------------------------------- fit inputs
def test_fit_data_contrast_pools_experiments_on_strength_axis():
    x, k, n, guess = fit_data("contrast", "geirhos2018")
    df = load_hvs_table("contrast")
    df = df[df["study"] == "geirhos2018"]
    np.testing.assert_allclose(x, np.sort(1.0 - df["condition"].unique()))
    assert (n == 800 + 480).all()  # JPEG (5 observers) + PNG (3 observers) runs summed
    assert k.sum() == df["n_correct"].sum() and guess == 1 / 16
    assert np.all(np.diff(x) > 0)


def test_fit_data_rotation_folds_90_and_270():
    x, k, n, _ = fit_data("rotation", "geirhos2021")
    np.testing.assert_allclose(x, [0.0, 90.0, 180.0])
    assert list(n) == [1280, 2560, 1280]


def test_fit_data_occlusion_masked_selection_and_errors():
    x0, _, n0, g = fit_data("occlusion")
    x1, _, n1, _ = fit_data("occlusion", masked=1)
    assert g == 0.2 and x0[0] == 0.0 and x0[-1] == pytest.approx(0.975)  # 100 % and 2.5 % visible
    assert n0.sum() != n1.sum()
    with pytest.raises(ValueError, match="no chance level"):
        fit_data("contrast", "unknown-study")
    with pytest.raises(ValueError, match="no rows"):
        fit_data("contrast", "tang2018")
