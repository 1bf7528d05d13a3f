"""Config validation at the edge: every bad value is named with what is allowed."""

from __future__ import annotations

import pytest

from harness.config import ConfigError, StageConfig, TrainConfig, apply_overrides, load_config
from harness.pipeline_builder import build_pipeline


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig.from_dict({})
    again = TrainConfig.from_dict(cfg.as_dict())
    assert again == cfg
    assert again.training_hash() == cfg.training_hash()


def test_training_hash_ignores_evaluation_fields_only():
    base = TrainConfig.from_dict({})
    assert TrainConfig.from_dict({"eval_batch_size": 7}).training_hash() == base.training_hash()
    for evaluation_only in ({"op_eval_bins": [10]}, {"corruption_cache": "elsewhere"}, {"corruption_n": 5}):
        assert TrainConfig.from_dict(evaluation_only).training_hash() == base.training_hash()
    assert TrainConfig.from_dict({"augment_chunk": 128}).training_hash() != base.training_hash()
    assert TrainConfig.from_dict({"lr": 0.05}).training_hash() != base.training_hash()


@pytest.mark.parametrize(
    "d, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"augment_chunk": 0}, "augment_chunk"),
        ({"op_eval_bins": [31]}, "op_eval_bins"),
        ({"corruption_cache": ""}, "corruption_cache"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"lr": -1}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"model": "vit"}, "model"),
        ({"combine": "mean"}, "combine"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"label_smoothing_convention": "szegedy"}, "label_smoothing_convention"),
        ({"device": "tpu"}, "device"),
        ({"precision": "fp16"}, "precision"),
        ({"seed": -1}, "seed"),
        ({"corruption_severities": [0, 6]}, "corruption_severities"),
        ({"reweight": "yes"}, "reweight"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"augment": [{"kind": "mixup"}]}, "augment[0].kind"),
        ({"augment": [{"kind": "flip", "soft": True}]}, "augment[0].soft"),
        ({"augment": [{"kind": "crop", "strength": 2}]}, "augment[0].strength"),
        ({"augment": [{"kind": "random_erasing", "mapping": "exact_hvs"}]}, "augment[0].mapping"),
        (
            {"label_smoothing": 0.1, "augment": [{"kind": "trivial_augment", "soft": True}]},
            "label_smoothing",
        ),
    ],
)
def test_bad_values_name_the_field(d, field):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(d)
    assert field in str(info.value)


def test_overrides_dotted_and_list_index(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\naugment:\n  - flip\n  - kind: trivial_augment\n    soft: false\n")
    cfg = load_config(path, ["epochs=5", "augment.1.soft=true", "augment.1.mapping=exact_hvs", "lr=0.05"])
    assert cfg.epochs == 5 and cfg.lr == 0.05
    assert cfg.augment[1] == StageConfig("trivial_augment", True, "exact_hvs", {})
    with pytest.raises(ConfigError, match="list index"):
        apply_overrides({"augment": []}, ["augment.3.soft=true"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["epochs"])


def test_missing_or_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_pipeline_builder_passes_params_and_reports_bad_ones():
    cfg = TrainConfig.from_dict({"augment": [
        "flip",
        {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_custom"},
        {"kind": "random_erasing", "soft": True, "params": {"p": 1.0, "scale": [0.02, 0.8]},
         "mapping": {"type": "polynomial", "p_min": 0.1, "k": 1.0, "s_max": 1.0}},
    ]})
    pipe = build_pipeline(cfg.augment, 10)
    assert [type(s).__name__ for s in pipe.stages] == [
        "BatchRandomHorizontalFlip", "BatchSoftAugment", "BatchSoftRandomErasing"]
    assert pipe.stages[2].p == 1.0 and pipe.stages[2].scale == (0.02, 0.8)
    bad = TrainConfig.from_dict({"augment": [{"kind": "random_erasing", "params": {"p": 2.0}}]})
    with pytest.raises(ConfigError, match=r"augment\[0\].*p"):
        build_pipeline(bad.augment, 10)
    unknown = TrainConfig.from_dict({"augment": [{"kind": "noise", "params": {"sigma": 1.0}}]})
    with pytest.raises(ConfigError, match=r"augment\[0\]"):
        build_pipeline(unknown.augment, 10)
