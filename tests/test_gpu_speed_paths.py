"""Issue 12 (GPU training at the hardware's pace), the parts a CPU can check.

* config: ``compile`` / ``drop_last`` (``"auto"`` or a boolean) and ``compile_mode`` are validated with
  the field, the value and what is allowed; configs written before these fields keep their training hash;
* the device-side NaN guard: read once per epoch, it still names the first non-finite epoch and step
  (in the middle of an epoch, in an epoch's last step, in the compiled step), and a failed epoch is
  never logged or checkpointed; no value is read back to the host per step;
* the compiled step (``torch.compile`` runs on the CPU too): same numbers as the eager step within float
  tolerance, static shapes (the last partial batch dropped) only there, and a fallback to eager, bit for
  bit, when compilation fails;
* the helpers behind them (batch bounds, first non-finite index) as properties (hypothesis).

The compiled runs share one tiny graph (smallnet 8/8/16, batch 16, bf16 autocast), so only the first
compiles (about 40 s on a 2-core CPU without a warm inductor cache, a few seconds with one).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import COMPILE_MODES, ConfigError, TrainConfig, load_config
from harness.loss import label_smoothing_targets_other, soft_cross_entropy
from harness.runs import read_status
from harness.trainer import (
    TrainingFailed,
    _optimizer_kwargs,
    batch_bounds,
    first_nonfinite,
    resolve_compile,
    resolve_drop_last,
    train,
)
from harness.workflow import train_and_evaluate

#: 60 training images (6 per class), batch 16: 4 steps per epoch eagerly (16, 16, 16, 12), 3 with drop_last
TINY = {
    "dataset": "mnist5k", "n_per_class": 6, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 16]},
    "epochs": 2, "batch_size": 16, "lr": 0.05, "corruptions": False, "eval_batch_size": 500,
    "precision": "bf16",  # the CUDA path's autocast ("auto" is fp32 on the CPU)
    "augment": ["flip", {"kind": "crop", "params": {"padding": 2}},
                {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"}],
}


def _cfg(**over) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **over})


def _prov(run) -> dict:
    return json.loads((run / "provenance.json").read_text())


def _log(run) -> pd.DataFrame:
    return pd.read_csv(run / "epochs.csv").drop(columns="time_s")


def _metrics(run) -> dict:
    rows = json.loads((run / "metrics.json").read_text())["rows"]
    return {r["metric"]: r["value"] for r in rows if r["corruption"] is None}


def _weights(run) -> dict:
    return torch.load(run / "model.pt", weights_only=True)


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("field, value, allowed", [
    ("compile", "no", "'auto', true or false"),
    ("compile", 1, "'auto', true or false"),
    ("compile", "true", "'auto', true or false"),
    ("compile", None, "'auto', true or false"),
    ("drop_last", "sometimes", "'auto', true or false"),
    ("drop_last", 0, "'auto', true or false"),
    ("compile_mode", "fast", str(list(COMPILE_MODES))),
    ("compile_mode", True, str(list(COMPILE_MODES))),
])
def test_compile_fields_are_validated_naming_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as err:
        _cfg(**{field: value})
    msg = str(err.value)
    assert f"'{field}'" in msg and repr(value) in msg and allowed in msg


def test_compile_fields_accept_auto_and_yaml_booleans(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("compile: true\ndrop_last: false\ncompile_mode: max-autotune\n")
    cfg = load_config(path)
    assert (cfg.compile, cfg.drop_last, cfg.compile_mode) == (True, False, "max-autotune")
    assert load_config(None, ["compile=auto", "drop_last=true"]).compile == "auto"
    defaults = TrainConfig.from_dict({})
    assert (defaults.compile, defaults.drop_last, defaults.compile_mode) == ("auto", "auto", "reduce-overhead")
    assert TrainConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


#: training hashes computed before ``compile`` took "auto" and before ``compile_mode`` / ``drop_last`` existed
#: (commit 7ff5be8): a config that spells out the old behaviour keeps its hash
HASH_BEFORE = {"defaults, compile false": ({"compile": False}, "3dc99d4ca30136b5"),
               "trainer pin config, compile false": ({
                   "dataset": "mnist5k", "n_per_class": 20, "model": "smallnet", "model_kwargs": {"widths": [8, 8, 16]},
                   "epochs": 3, "batch_size": 20, "lr": 0.2, "corruptions": False, "corruption_n": 40,
                   "op_eval_bins": [10], "compile": False,
                   "augment": ["flip", {"kind": "crop", "params": {"padding": 2}},
                               {"kind": "trivial_augment", "soft": True, "mapping": "polynomial_chance"},
                               {"kind": "random_erasing", "soft": True, "params": {"p": 0.5}}]}, "7b1d73f5214d4416")}


@pytest.mark.parametrize("name", list(HASH_BEFORE))
def test_configs_written_before_the_compile_fields_keep_their_training_hash(name):
    d, before = HASH_BEFORE[name]
    cfg = TrainConfig.from_dict(d)
    assert cfg.training_hash() == before
    assert TrainConfig.from_dict({**d, "drop_last": "auto", "compile_mode": "reduce-overhead"}).training_hash() == before
    # what changes training changes the hash: compiling ("auto" compiles on CUDA), its mode, dropping batches
    for over in ({"compile": "auto"}, {"compile": True}, {"compile_mode": "default"}, {"drop_last": True},
                 {"drop_last": False}):
        assert TrainConfig.from_dict({**d, **over}).training_hash() != before, over


def test_compile_and_drop_last_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cpu) is False and resolve_compile("auto", cuda) is True
    assert resolve_compile(True, cpu) is True and resolve_compile(False, cuda) is False
    assert resolve_drop_last("auto", True) is True and resolve_drop_last("auto", False) is False
    assert resolve_drop_last(False, True) is False and resolve_drop_last(True, False) is True
    assert _optimizer_kwargs(cuda) == {"fused": True} and _optimizer_kwargs(cpu) == {}


# ------------------------------------------------------------------------------------------ helpers (properties)
@settings(deadline=None, max_examples=200)
@given(st.integers(0, 3000), st.integers(2, 700), st.booleans())
def test_batch_bounds_tile_the_epoch(n, batch, drop_last):
    bounds = batch_bounds(n, batch, drop_last)
    starts = [a for a, _ in bounds]
    assert starts == list(range(0, batch * len(bounds), batch))  # contiguous, in order, from 0
    sizes = [b - a for a, b in bounds]
    assert all(s == batch for s in sizes[:-1]) and all(2 <= s <= batch for s in sizes)
    tail = n % batch
    dropped = tail if (drop_last or tail == 1) else 0
    assert sum(sizes) == n - dropped
    assert len(bounds) == n // batch + (1 if dropped == 0 and tail else 0)
    if drop_last:
        assert set(sizes) <= {batch}


@settings(deadline=None, max_examples=200)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=64))
def test_first_nonfinite_is_the_first_nan_or_inf(values):
    expected = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    assert first_nonfinite(torch.tensor(values, dtype=torch.float32)) == expected


def test_loss_value_checks_can_be_skipped_without_changing_values():
    labels = torch.tensor([0, 3, 9, 3])
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([0.5, 1.0, 0.2, 0.7])
    for kw in ({}, {"weights": w}, {"weights": w, "normalize_weights": True}):
        t = label_smoothing_targets_other(labels, 0.1, 10)
        assert torch.equal(t, label_smoothing_targets_other(labels, 0.1, 10, validate=False))
        assert torch.equal(soft_cross_entropy(logits, t, **kw), soft_cross_entropy(logits, t, **kw, validate=False))
    with pytest.raises(ValueError, match="finite and >= 0"):
        soft_cross_entropy(logits, t, weights=-w)
    soft_cross_entropy(logits, t, weights=-w, validate=False)  # the caller vouches for its weights


# ------------------------------------------------------------------------------------------ NaN guard
@pytest.mark.parametrize("nan_at_step, epoch", [(5, 2), (3, 1), (7, 2), (0, 1)],
                         ids=["mid-epoch-2", "last-step-of-epoch-1", "last-step-of-epoch-2", "first-step"])
def test_nan_guard_names_the_first_bad_epoch_and_step_and_never_checkpoints_it(tmp_path, nan_at_step, epoch):
    run = tmp_path / "nan"
    with pytest.raises(TrainingFailed, match=f"epoch {epoch}, step {nan_at_step}"):
        train(_cfg(epochs=3), run, progress=False, nan_at_step=nan_at_step)
    status = read_status(run)
    assert status["status"] == "failed" and status["epoch"] == epoch and status["step"] == nan_at_step
    assert status["reason"] == f"non-finite loss (nan) at epoch {epoch}, step {nan_at_step}"
    good_epochs = epoch - 1
    if good_epochs:
        assert len(pd.read_csv(run / "epochs.csv")) == good_epochs
        assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == good_epochs
    else:
        assert not (run / "epochs.csv").exists() and not (run / "checkpoint.pt").exists()
    assert not (run / "model.pt").exists()
    prov = _prov(run)
    assert prov["steps_per_epoch"] == 4 and prov["drop_last"] is False and prov["compile"]["used"] is False


_HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


def _count_host_reads(monkeypatch, cfg, run) -> int:
    """Python-level calls that read a tensor's values back to the host (a synchronisation on CUDA) during
    ``train``; eager on the CPU, so every call of the trainer, loss and optimiser code is seen."""
    calls = []
    for name in _HOST_READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        train(cfg, run, progress=False)
    finally:
        monkeypatch.undo()
    return len(calls)


def test_no_value_is_read_back_per_step(tmp_path, monkeypatch):
    """Twice the data (8 steps per epoch instead of 4, one augmentation call per epoch either way): the same
    number of host reads, so none of them is per step."""
    hard = {"augment": ["flip", {"kind": "crop", "params": {"padding": 2}}], "reweight": False}
    four = _count_host_reads(monkeypatch, _cfg(**hard), tmp_path / "a")
    eight = _count_host_reads(monkeypatch, _cfg(**hard, n_per_class=12), tmp_path / "b")
    assert json.loads((tmp_path / "b" / "provenance.json").read_text())["steps_per_epoch"] == 8
    assert four == eight
    soft = {"augment": TINY["augment"], "reweight": True, "normalize_weights": True}
    assert (_count_host_reads(monkeypatch, _cfg(**soft), tmp_path / "c")
            == _count_host_reads(monkeypatch, _cfg(**soft, n_per_class=12), tmp_path / "d"))


# ------------------------------------------------------------------------------------------ compiled step
def test_compiled_step_matches_eager_and_alone_drops_the_last_batch(tmp_path):
    compiled = tmp_path / "compiled"
    train_and_evaluate(_cfg(compile=True), compiled, progress=False)
    prov = _prov(compiled)
    assert prov["compile"]["used"] is True and prov["compile"]["fallback"] is None
    assert prov["compile"]["requested"] is True and prov["compile"]["mode"] == "reduce-overhead"
    assert prov["drop_last"] is True and prov["steps_per_epoch"] == 3 and prov["fused_sgd"] is False
    assert (_log(compiled)["train_acc"] * 48).round(9).apply(float.is_integer).all()  # 3 batches of 16

    eager_auto = tmp_path / "eager_auto"  # compile "auto" on the CPU: eager, nothing dropped
    train(_cfg(), eager_auto, progress=False)
    assert _prov(eager_auto)["compile"]["used"] is False and _prov(eager_auto)["drop_last"] is False
    assert _prov(eager_auto)["steps_per_epoch"] == 4

    eager = tmp_path / "eager"  # the same batches as the compiled run, eagerly
    train_and_evaluate(_cfg(compile=False, drop_last=True), eager, progress=False)
    a, b = _log(compiled), _log(eager)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=5e-3)
    np.testing.assert_allclose(a["mean_confidence"], b["mean_confidence"], rtol=0, atol=0)  # same draws
    ma, mb = _metrics(compiled), _metrics(eager)
    assert abs(ma["accuracy"] - mb["accuracy"]) <= 0.02
    for metric in ("nll", "brier", "ece"):
        assert ma[metric] == pytest.approx(mb[metric], rel=5e-3, abs=2e-3), metric
    wa, wb = _weights(compiled), _weights(eager)
    for name in wb:
        if wb[name].is_floating_point():
            torch.testing.assert_close(wa[name], wb[name], rtol=5e-2, atol=5e-3, msg=name)


def test_nan_guard_in_the_compiled_step(tmp_path):
    run = tmp_path / "nan"
    with pytest.raises(TrainingFailed):
        train(_cfg(compile=True), run, progress=False, nan_at_step=4)  # 3 steps per epoch: epoch 2's 2nd
    status = read_status(run)
    assert (status["status"], status["epoch"], status["step"]) == ("failed", 2, 4)
    assert len(pd.read_csv(run / "epochs.csv")) == 1 and _prov(run)["compile"]["used"] is True


class _Broken:
    """Stands in for ``torch.compile``: the wrapped step runs (changing BatchNorm statistics and the RNG)
    and then raises, as a backend failing at the first call would; ``at_wrap`` fails at once."""

    def __init__(self, at_wrap: bool):
        self.at_wrap = at_wrap

    def __call__(self, module, **kwargs):
        if self.at_wrap:
            raise RuntimeError("no compiler backend here")

        def step(*args):
            module(*args)
            torch.rand(3)
            raise RuntimeError("backend exploded\nsecond line")

        return step


@pytest.mark.parametrize("at_wrap", [False, True], ids=["first-call", "wrap"])
def test_failed_compilation_falls_back_to_eager_bit_for_bit(tmp_path, monkeypatch, capsys, at_wrap):
    eager = tmp_path / "eager"
    train(_cfg(compile=False, drop_last=True), eager, progress=False)
    monkeypatch.setattr(torch, "compile", _Broken(at_wrap))
    run = tmp_path / "fallback"
    train(_cfg(compile=True), run, progress=False)
    compile_prov = _prov(run)["compile"]
    reason = "RuntimeError: " + ("no compiler backend here" if at_wrap else "backend exploded")
    assert compile_prov["used"] is False and compile_prov["fallback"] == reason
    assert "torch.compile failed" in capsys.readouterr().err
    assert _prov(run)["drop_last"] is True  # resolved when the run started; the batches stay the same
    pd.testing.assert_frame_equal(_log(run), _log(eager))
    wa, wb = _weights(run), _weights(eager)
    assert all(torch.equal(wa[k], wb[k]) for k in wb)


def test_drop_last_with_no_full_batch_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'batch_size'.*drop_last"):
        train(_cfg(batch_size=100, drop_last=True), tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "model.pt").exists()
