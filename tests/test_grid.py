"""Experiment grids: validation at the edge, arm -> TrainConfig, grid selection, results collection."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import ConfigError
from harness.evaluate import corruption_subset, stratified_indices
from harness.grid import _validate, arm_config, fitted_mapping_path, list_grids, load_grid, run_id, use_grid
from harness.results import collect_results
from harness.runs import write_json, write_status

ROOT = Path(__file__).resolve().parents[1]


def _micro() -> dict:
    return {
        "grid": "micro", "dataset": "mnist5k", "data_source": None, "seeds": [0, 1, 2],
        "run_arms": ["hard", "soft"],
        "base": {"n_per_class": 10, "model": "smallnet", "epochs": 1},
        "evaluation": {"corruption_n": 20, "corruption_severities": [1], "op_bins": [30]},
        "arms": {
            "hard": {"factors": {"label_type": "hard", "family": "random_erasing"},
                     "augment": ["flip", {"kind": "random_erasing", "soft": False}]},
            "soft": {"factors": {"label_type": "soft", "family": "random_erasing", "extra": 1.5},
                     "augment": ["flip", {"kind": "random_erasing", "soft": True}],
                     "set": {"lr": 0.01}},
        },
    }


def test_committed_grids_validate_and_params_is_quick():
    names = list_grids(ROOT / "grids")
    assert {"quick", "cifar10-cpu", "paper"} <= set(names)
    for name in names:
        grid = load_grid(ROOT / "grids" / f"{name}.yaml")
        assert len(grid.seeds) >= 5, f"{name}: the issue asks for >= 5 seeds"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quick = yaml.safe_load((ROOT / "grids" / "quick.yaml").read_text())
    assert params == quick, "params.yaml must be the quick grid (the default `dvc repro`)"


def test_quick_grid_has_the_issue_arms():
    g = load_grid(ROOT / "grids" / "quick.yaml")
    assert g.dataset == "mnist5k" and len(g.seeds) >= 5
    re_high = [a for a in g.run_arms if g.arms[a]["factors"].get("intensity") == "high"]
    cfgs = {a: arm_config(g, a, 0) for a in g.run_arms}
    for a in re_high:
        re = [s for s in cfgs[a].augment if s.kind == "random_erasing"][0]
        assert re.params["p"] == 1.0 and re.params["scale"][1] == 0.8
    assert {cfgs[a].augment[-1].soft for a in re_high} == {True, False}
    ta_soft = {s.mapping for a in g.run_arms for s in cfgs[a].augment if s.kind == "trivial_augment" and s.soft}
    assert "polynomial_chance" in ta_soft and len(ta_soft) >= 2
    assert any(c.label_smoothing > 0 for c in cfgs.values())
    assert any(g.arms[a]["factors"]["label_type"] == "hard" and g.arms[a]["factors"]["family"] == "none"
               for a in g.run_arms)


def test_arm_config_layers_base_set_dataset_and_seed():
    g = _validate(_micro(), "micro")
    hard, soft = arm_config(g, "hard", 2), arm_config(g, "soft", 1)
    assert hard.seed == 2 and soft.seed == 1
    assert hard.lr == 0.1 and soft.lr == 0.01  # arm's `set` overrides base / defaults
    assert hard.n_per_class == soft.n_per_class == 10 and hard.dataset == "mnist5k"
    assert hard.corruption_n == 20 and hard.corruption_severities == (1,) and hard.op_eval_bins == (30,)
    assert [s.soft for s in soft.augment] == [False, True]
    assert hard.training_hash() != arm_config(g, "hard", 1).training_hash()
    assert g.factor_names() == ["extra", "family", "label_type"]


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(seeds=[0, 0]), "'seeds'"),
    (lambda d: d.update(run_arms=["hard", "nope"]), r"'run_arms\[1\]'.*'nope'"),
    (lambda d: d["arms"]["hard"]["factors"].pop("label_type"), r"'arms.hard.factors.label_type'"),
    (lambda d: d["arms"]["hard"]["factors"].update(label_type="fuzzy"), "hard', 'soft', 'ls'"),
    (lambda d: d["arms"]["hard"].update(colour="red"), r"'arms.hard.colour'"),
    (lambda d: d["base"].update(epochs=0), r"arm 'hard'.*'epochs'.*>= 1"),
    (lambda d: d["base"].update(seed=3), r"'base.seed'"),
    (lambda d: d.update(dataset="imagenet"), r"'dataset'.*'imagenet'"),
    (lambda d: d.update(bogus=1), r"'bogus'"),
    (lambda d: d["evaluation"].update(corruption_n=0), r"'corruption_n'"),
    (lambda d: d["arms"]["soft"]["augment"].append({"kind": "soft_crop", "soft": True}),
     r"arm 'soft'.*sigma_frac"),
])
def test_bad_grids_name_the_field(mutate, match):
    raw = _micro()
    mutate(raw)
    with pytest.raises(ConfigError, match=match):
        _validate(raw, "micro")


def test_fitted_mapping_is_resolved_from_the_fit_stage(tmp_path, monkeypatch):
    import mappings

    raw = _micro()
    raw["arms"]["soft"]["augment"] = ["flip", {"kind": "trivial_augment", "soft": True, "mapping": "fitted:hvs"}]
    monkeypatch.chdir(tmp_path)
    g = _validate(raw, "micro")  # validation does not need the fitted file
    with pytest.raises(ConfigError, match="dvc repro fit_mappings"):
        arm_config(g, "soft", 0)
    typo = copy.deepcopy(raw)
    typo["arms"]["soft"]["augment"][1]["mapping"] = "fitted:hsv"
    with pytest.raises(ConfigError, match=r"'arms.soft.augment\[1\].mapping'.*fitted:hvs.*got 'fitted:hsv'"):
        _validate(typo, "micro")
    ms = mappings.preset("polynomial_custom", 10)
    path = fitted_mapping_path("mnist5k", "hvs")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(ms.to_dict()))
    cfg = arm_config(g, "soft", 0)
    assert mappings.from_dict(cfg.augment[1].mapping) == ms  # the run's config records the mapping itself


def test_use_grid_copies_and_validates(tmp_path):
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "micro.yaml").write_text(yaml.safe_dump(_micro()))
    params = tmp_path / "params.yaml"
    g = use_grid("micro", root=grids, params_path=params)
    assert g.name == "micro" and yaml.safe_load(params.read_text()) == _micro()
    with pytest.raises(ConfigError, match="available grids: \\['micro'\\]"):
        use_grid("nope", root=grids, params_path=params)
    bad = _micro()
    bad["seeds"] = []
    (grids / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="seeds"):
        use_grid("bad", root=grids, params_path=params)
    assert yaml.safe_load(params.read_text()) == _micro()  # a bad grid never replaces the active one


def test_paper_grid_dataset_override(tmp_path):
    params = tmp_path / "params.yaml"
    g = use_grid("paper", dataset="cifar100", root=ROOT / "grids", params_path=params)
    assert g.dataset == "cifar100" and g.reference_comparable
    with pytest.raises(ConfigError, match="datasets_allowed"):
        use_grid("paper", dataset="mnist5k", root=ROOT / "grids", params_path=params)


# ----------------------------------------------------------------------------- results table
def _fake_eval(root: Path, arm: str, seed: int, acc: float) -> None:
    d = root / "eval" / arm / f"s{seed}"
    rows = [{"metric": "accuracy", "corruption": None, "severity": None, "value": acc},
            {"metric": "accuracy", "corruption": "fog", "severity": 1, "value": acc - 0.1}]
    write_json(d / "metrics.json", {"rows": rows, "notes": []})
    write_status(d, "complete")


def test_collect_results_lists_every_cell(tmp_path):
    g = _validate(_micro(), "micro")
    _fake_eval(tmp_path, "hard", 0, 0.9)
    _fake_eval(tmp_path, "hard", 1, 0.8)
    write_status(tmp_path / "train" / "hard" / "s2", "failed", reason="non-finite loss at epoch 1, step 3")
    write_status(tmp_path / "eval" / "hard" / "s2", "failed", reason="non-finite loss at epoch 1, step 3")
    write_status(tmp_path / "train" / "soft" / "s0", "running", epoch=1)
    df = collect_results(g, tmp_path)
    assert list(df.columns[:7]) == ["run_id", "grid", "dataset", "arm", "extra", "family", "label_type"]
    assert set(df["run_id"]) == {run_id(a, s) for a in ("hard", "soft") for s in (0, 1, 2)}
    status = df.drop_duplicates("run_id").set_index("run_id")["status"]
    assert status["hard-s0"] == "complete" and status["hard-s2"] == "failed"
    assert status["soft-s0"] == "running" and status["soft-s1"] == "missing"
    failed = df[df["run_id"] == "hard-s2"]
    assert len(failed) == 1 and math.isnan(failed["value"].iloc[0]) and "non-finite" in failed["reason"].iloc[0]
    clean = df[(df["run_id"] == "hard-s1") & (df["corruption"] == "")]
    assert clean["value"].tolist() == [0.8]
    fog = df[(df["run_id"] == "hard-s1") & (df["corruption"] == "fog")]
    assert fog["severity"].tolist() == [1] and fog["value"].iloc[0] == pytest.approx(0.7)
    assert df.loc[df["arm"] == "soft", "extra"].unique().tolist() == [1.5]


# ----------------------------------------------------------------------------- evaluation subset
@settings(deadline=None, max_examples=40)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=8), frac=st.floats(0.01, 1.0), seed=st.integers(0, 3))
def test_stratified_indices_are_balanced_and_deterministic(counts, frac, seed):
    labels = np.repeat(np.arange(len(counts)), counts)  # sorted by class, like CIFAR in ../shared
    n = max(1, int(round(frac * labels.size)))
    idx = stratified_indices(labels, n, seed)
    assert idx.size == n and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, stratified_indices(labels, n, seed))
    got = np.bincount(labels[idx], minlength=len(counts))
    # every class gets min(its size, its fair share), within one image of the others
    cap = np.minimum(counts, got.max())
    assert np.all(got >= np.minimum(counts, got.max() - 1))
    assert np.all(got <= cap)


def test_corruption_subset_is_not_the_first_images():
    from harness.datasets import ArrayDataset

    labels = np.repeat(np.arange(10), 100)
    ds = ArrayDataset("t", np.zeros((1000, 4, 4, 3), np.uint8), labels, [str(i) for i in range(10)])
    sub, idx = corruption_subset(ds, 200)
    assert sub.name == "t_strat200" and np.bincount(sub.labels).tolist() == [20] * 10
    full, idx_full = corruption_subset(ds, None)
    assert full is ds and idx_full.size == 1000
    with pytest.raises(ValueError, match="n must be an int"):
        stratified_indices(labels, 0)


def test_grid_and_stage_cli_errors_are_clear(capsys, monkeypatch, tmp_path):
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_micro()))
    assert main(["stage", "train", "--seed", "0"]) == 2
    assert "--seed needs --arm" in capsys.readouterr().err
    assert main(["stage", "evaluate", "--arm", "nope"]) == 2
    assert "'nope' is not in params run_arms" in capsys.readouterr().err
    assert main(["stage", "train", "--arm", "nope", "--seed", "0"]) == 2
    assert "'nope' is not in params run_arms" in capsys.readouterr().err
    assert main(["stage", "train", "--arm", "hard", "--seed", "7"]) == 2
    assert "--seed 7 is not in params seeds" in capsys.readouterr().err
    assert main(["grid", "show"]) == 0
    assert "2 arms x 3 seeds = 6 runs" in capsys.readouterr().out
    broken = copy.deepcopy(_micro())
    broken["run_arms"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(broken))
    assert main(["stage", "results"]) == 2
    assert "'run_arms'" in capsys.readouterr().err


def test_stats_spec_is_validated_with_the_grid():
    raw = _micro()
    raw["stats"] = {"comparisons": [{"family": "re", "arm": "soft", "reference": "nope"}]}
    with pytest.raises(ConfigError, match=r"stats.comparisons\[0\].reference.*'nope'"):
        _validate(raw, "micro")
    raw["stats"] = {"comparisons": [{"family": "re", "arm": "soft", "reference": "hard"}], "n_boot": 500}
    g = _validate(raw, "micro")
    assert g.stats["n_boot"] == 500 and g.stats["alpha"] == 0.05  # defaults filled in once


def test_reference_mismatch_lists_departures_from_the_paper():
    paper = load_grid(ROOT / "grids" / "paper.yaml")
    assert paper.reference_comparable and paper.reference_mismatch() == []
    raw = yaml.safe_load((ROOT / "grids" / "paper.yaml").read_text())
    raw["base"].update(epochs=1, n_per_class=100)
    raw["evaluation"]["corruption_n"] = 200
    shrunk = _validate(raw, "shrunk")
    got = " | ".join(shrunk.reference_mismatch())
    assert "epochs = 1 (paper: 300)" in got and "n_per_class = 100" in got and "200-image subset" in got
    assert _validate(_micro(), "micro").reference_mismatch()[0].startswith("dataset 'mnist5k'")
    # the reference's RE fill (unclamped N(0, 1)) and WRN quirks (conv biases, final BN momentum 0.9) are protocol
    raw = yaml.safe_load((ROOT / "grids" / "paper.yaml").read_text())
    raw["base"].pop("model_kwargs")
    raw["arms"]["re_soft_1_08"]["augment"][-1]["params"].pop("value")
    got = _validate(raw, "no_quirks").reference_mismatch()
    assert "arm re_soft_1_08: random_erasing fills with 'zero' (paper: 'normal', per-pixel N(0, 1))" in got
    assert any(m.startswith("model_kwargs.reference_quirks is not true") for m in got) and len(got) == 2
