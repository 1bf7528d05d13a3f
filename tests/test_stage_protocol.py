"""Every augmentation stage follows one protocol: ``sample_params`` / ``apply`` / ``forward``."""

from __future__ import annotations

import inspect

import pytest
import torch

from harness.augment._common import AugmentInfo, BatchAugmentInfo, BatchStage, SampleStage
from harness.augment.crop import SoftRandomCrop
from harness.augment.erasing import SoftRandomErasing
from harness.augment.noise import SoftNoise
from harness.augment.trivial import SoftTrivialAugment
from harness.pipeline_builder import _CLASSES, build_stage
from harness.config import StageConfig

K = 10
BATCHED = {
    "flip": lambda: _CLASSES["flip"](0.5),
    "crop": lambda: _CLASSES["crop"](3),
    "trivial_augment": lambda: _CLASSES["trivial_augment"](K),
    "random_erasing": lambda: _CLASSES["random_erasing"](K, p=0.8, value="normal"),
    "noise": lambda: _CLASSES["noise"](K, patch_frac=0.5),
    "soft_crop": lambda: _CLASSES["soft_crop"](K, sigma_px=4.0),
}
PER_SAMPLE = {
    "trivial_augment": lambda: SoftTrivialAugment(K),
    "random_erasing": lambda: SoftRandomErasing(K, p=0.8, value="uniform"),
    "noise": lambda: SoftNoise(K, patch_frac=0.5),
    "soft_crop": lambda: SoftRandomCrop(K, sigma_px=4.0),
}


def _images(n=12):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 16, 20), dtype=torch.uint8, generator=g)


def test_the_builder_knows_every_batched_stage_by_its_stage_name():
    assert set(_CLASSES) == set(BATCHED)
    for kind, cls in _CLASSES.items():
        assert issubclass(cls, BatchStage) and cls.stage == kind
        assert isinstance(build_stage(StageConfig(kind=kind, soft=False, params=_min_params(kind)), K), cls)


def _min_params(kind):
    return {"sigma_px": 2.0} if kind == "soft_crop" else {}


@pytest.mark.parametrize("kind", sorted(BATCHED))
def test_batched_forward_is_apply_of_sample_params(kind):
    stage = BATCHED[kind]()
    x = _images()
    out, info = stage(x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    params = stage.sample_params(len(x), x.shape[-2], x.shape[-1], x.device, g)
    assert isinstance(params, dict)
    out2, info2 = stage.apply(x, **params, generator=g)
    assert isinstance(info, BatchAugmentInfo) and info.stage == stage.stage
    assert torch.equal(out, out2) and torch.equal(info.confidences, info2.confidences)
    assert torch.equal(info.magnitudes, info2.magnitudes)
    sig = inspect.signature(type(stage).sample_params)
    assert list(sig.parameters)[:6] == ["self", "n", "height", "width", "device", "generator"]
    assert "generator" in inspect.signature(type(stage).apply).parameters


@pytest.mark.parametrize("kind", sorted(PER_SAMPLE))
def test_per_sample_forward_is_apply_of_sample_params(kind):
    stage = PER_SAMPLE[kind]()
    assert isinstance(stage, SampleStage) and stage.stage == kind
    for img in _images(6):
        torch.manual_seed(11)
        out, info = stage(img)
        torch.manual_seed(11)
        params = stage.sample_params(img)
        out2, info2 = stage.apply(img, **params)
        assert isinstance(info, AugmentInfo) and info == info2
        assert torch.equal(out, out2)
        torch.manual_seed(11)
        assert stage.make_params(img).keys() == params.keys()
