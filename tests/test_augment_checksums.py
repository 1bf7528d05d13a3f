"""Bit-identity pins: for a fixed seed, every augmentation stage gives the same images and
confidences (and provenance) as before the one-table / one-protocol refactor of the stages.

The digests were computed with the code as it stood before ``harness/augment/ops.py`` existed
(commit 4b93918) on the 2-core development machine (CPU, torch / torchvision of the venv). They
hash raw tensor bytes, so they pin bit-identity on that machine; a CPU with other vectorised
transcendental kernels (AVX-512 sin/cos/atan) may legitimately differ in a float32 last bit of a
geometric or float-image output. In that case regenerate them with ``python
tests/test_augment_checksums.py`` from a commit known to be good, never from the code under test.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import mappings
from harness.augment.basic import BatchRandomCrop, BatchRandomHorizontalFlip
from harness.augment.batch_trivial import BatchSoftAugment
from harness.augment.crop import BatchSoftRandomCrop, SoftRandomCrop
from harness.augment.erasing import BatchSoftRandomErasing, SoftRandomErasing
from harness.augment.noise import BatchSoftNoise, SoftNoise
from harness.augment.pipeline import BatchSoftPipeline, SoftCompose
from harness.augment.trivial import SoftTrivialAugment
from conftest import K, require_machine

#: the machine the digests were computed on (tests/conftest.py machine_fingerprint); elsewhere they skip
PINNED_ON = "AuthenticAMD | avx2 fma | torch 2.14.1+cu130"


def _images(dtype: torch.dtype, n: int = 24, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6.28
    img = 0.5 + 0.35 * torch.sin(4.0 * (xx + 0.7 * yy) * 3.14 + phase) + 0.1 * torch.rand(n, 3, size, size, generator=g)
    x = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


def _batched(stage, dtype, seed=7, n=24):
    x = _images(dtype, n=n)
    out, info = stage(x, generator=torch.Generator().manual_seed(seed))
    return _digest(out, info.op_ids, info.magnitudes, info.severities, info.confidences)


def _per_sample(stage, dtype, seed=7, n=12):
    x = _images(dtype, n=n)
    torch.manual_seed(seed)
    outs, vals = [], []
    for img in x:
        out, info = stage(img)
        outs.append(out)
        vals.append([info.magnitude, info.severity, info.confidence])
    return _digest(torch.stack(outs), torch.tensor(vals, dtype=torch.float64))


def _per_sample_ops(stage, dtype, seed=7, n=12):
    x = _images(dtype, n=n)
    torch.manual_seed(seed)
    return [stage(img)[1].op for img in x]


CASES = {
    "ta_batched": lambda dt: _batched(BatchSoftAugment(K, "polynomial_chance"), dt, n=96),
    "ta_batched_subset_fill": lambda dt: _batched(
        BatchSoftAugment(K, "exact_hvs", ops=["Rotate", "ShearY", "Solarize", "Sharpness"], num_magnitude_bins=11,
                         fill=[0.2, 0.4, 0.6] if dt != torch.uint8 else [50, 100, 150]), dt),
    "ta_per_sample": lambda dt: _per_sample(SoftTrivialAugment(K, "polynomial_chance"), dt, n=48),
    "erasing_batched": lambda dt: _batched(BatchSoftRandomErasing(K, p=0.7, scale=(0.05, 0.5), value="normal"), dt),
    "erasing_per_sample": lambda dt: _per_sample(SoftRandomErasing(K, p=0.7, scale=(0.05, 0.5), value="uniform"), dt),
    "noise_batched": lambda dt: _batched(BatchSoftNoise(K, sigma_max=0.6, patch_frac=0.7), dt),
    "noise_per_sample": lambda dt: _per_sample(SoftNoise(K, sigma_max=0.6, patch_frac=0.7), dt),
    "crop_batched": lambda dt: _batched(BatchSoftRandomCrop(K, sigma_frac=0.3, background="mean"), dt),
    "crop_per_sample": lambda dt: _per_sample(SoftRandomCrop(K, sigma_px=5.0), dt),
    "flip_batched": lambda dt: _batched(BatchRandomHorizontalFlip(0.5), dt),
    "padcrop_batched": lambda dt: _batched(BatchRandomCrop(4), dt),
}


def _pipeline(dtype):
    pipe = BatchSoftPipeline(
        [BatchRandomHorizontalFlip(), BatchRandomCrop(2), BatchSoftAugment(K),
         BatchSoftRandomErasing(K, p=0.5, value="zero"), BatchSoftNoise(K, sigma_max=0.2),
         BatchSoftRandomCrop(K, sigma_px=3.0)], K)
    out, conf, infos = pipe(_images(dtype), generator=torch.Generator().manual_seed(99))
    return _digest(out, conf, *[i.confidences for i in infos])


def _compose(dtype):
    comp = SoftCompose([SoftTrivialAugment(K), SoftRandomErasing(K, p=0.8), SoftNoise(K), SoftRandomCrop(K, sigma_px=3)],
                       K, combine="min")
    torch.manual_seed(5)
    outs, confs = [], []
    for img in _images(dtype, n=10):
        out, c, _ = comp(img)
        outs.append(out)
        confs.append(c)
    return _digest(torch.stack(outs), torch.tensor(confs, dtype=torch.float64))


CASES["pipeline_batched"] = _pipeline
CASES["compose_per_sample"] = _compose

DTYPES = {"uint8": torch.uint8, "float32": torch.float32}

# computed before the refactor (see the module docstring)
PINNED: dict[str, str] = {
    "compose_per_sample/float32": "8818d752878d35f41665592c",
    "compose_per_sample/uint8": "7696a8ca2b80eb144a0cb255",
    "crop_batched/float32": "a6a08a2c1ffbb18e862642f8",
    "crop_batched/uint8": "77f91629a847a36086ad0972",
    "crop_per_sample/float32": "8cc59e96979601ec9cf7e7ce",
    "crop_per_sample/uint8": "8b5cdc6c0d7ecd693f0d2794",
    "erasing_batched/float32": "d580009f39d956526734f30a",
    # RE "normal" on uint8 now erases the float image x / 255 with the reference's unclamped N(0, 1) fill and
    # returns float32 (METHOD §2.3): exactly the float32 case of these images, so it carries the float32 pin
    # (computed at commit 4b93918); the old uint8 pin (clamped, rounded fill) was 67fd546f0db7ae153d2d0289
    "erasing_batched/uint8": "d580009f39d956526734f30a",
    "erasing_per_sample/float32": "72311bce8f634a43c2a66548",
    "erasing_per_sample/uint8": "add2ff2bff5648dbc0ffaebd",
    "flip_batched/float32": "87f1c527bc28c2b07ef075ef",
    "flip_batched/uint8": "b123732c8d0e9e9fb5020466",
    "noise_batched/float32": "4041f97ed2ad5525fd7e2688",
    "noise_batched/uint8": "3cd054acad4c225cc979779b",
    "noise_per_sample/float32": "0218448e19fd6a9127f30937",
    "noise_per_sample/uint8": "a6bfbf8765946820c687fc0a",
    "padcrop_batched/float32": "00f38a8544521ed0141f655c",
    "padcrop_batched/uint8": "ec7a405a377916a01dba309c",
    "pipeline_batched/float32": "6845b20001e9906c072d4440",
    "pipeline_batched/uint8": "5ae8fed2bad9c6743745494b",
    "ta_batched/float32": "764a9d515aa4e8e3d05391cd",
    "ta_batched/uint8": "9e46896d40f24589e73105b9",
    "ta_batched_subset_fill/float32": "79c567972f230e08cb1492e3",
    "ta_batched_subset_fill/uint8": "67da422f994b522d672e02c3",
    "ta_per_sample/float32": "32f3d84b62dbb1b7935be4cb",
    "ta_per_sample/uint8": "5c566b9e4833e57691a05ae7",
}
PINNED_OPS: dict[str, list[str]] = {
    "ta_per_sample": ['Rotate', 'Contrast', 'Equalize', 'ShearX', 'Posterize', 'ShearY', 'Contrast', 'Sharpness', 'Posterize', 'TranslateX', 'Color', 'Posterize', 'AutoContrast', 'Posterize', 'Sharpness', 'Sharpness', 'ShearX', 'Posterize', 'Rotate', 'TranslateY', 'TranslateX', 'Brightness', 'Rotate', 'Brightness', 'Posterize', 'Brightness', 'Posterize', 'TranslateX', 'Sharpness', 'Rotate', 'TranslateY', 'ShearX', 'ShearX', 'Identity', 'Solarize', 'Rotate', 'TranslateX', 'Rotate', 'Identity', 'Equalize', 'Contrast', 'Solarize', 'ShearX', 'AutoContrast', 'AutoContrast', 'TranslateX', 'TranslateX', 'ShearY'],
}


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_stage_output_is_bit_identical_to_the_pinned_digest(case, dtype):
    require_machine(PINNED_ON)
    assert CASES[case](DTYPES[dtype]) == PINNED[f"{case}/{dtype}"]


def test_per_sample_ta_op_sequence_is_pinned():
    assert _per_sample_ops(SoftTrivialAugment(K), torch.uint8, n=48) == PINNED_OPS["ta_per_sample"]


if __name__ == "__main__":  # print the table to paste above
    for c in sorted(CASES):
        for d in sorted(DTYPES):
            print(f'    "{c}/{d}": "{CASES[c](DTYPES[d])}",')
    print(_per_sample_ops(SoftTrivialAugment(K), torch.uint8, n=48))
    assert mappings  # noqa: the presets must be importable
