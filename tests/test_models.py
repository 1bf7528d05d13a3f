"""Model registry (harness/models.py; METHOD.md §4.2, §7.13)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.inference import forward, resolve_precision
from harness.models import MODELS, WideResNet, build_model, count_parameters

# fast configurations for forward tests (the 28-layer WRN is only counted, and run once on 2 images)
FAST = {
    "wrn28_4": {},
    "wrn": {"depth": 10, "widen_factor": 2},
    "resnet18": {},
    "smallnet": {},
}


def _wrn_param_count(
    depth: int, k: int, num_classes: int, in_ch: int = 3, bias: bool = False, first_stride: int = 1
) -> int:
    """Independent hand count of a pre-activation WRN (convs, BN affine params, linear)."""
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    b = 1 if bias else 0
    total = in_ch * 16 * 9 + 16 * b  # stem
    c_in = 16
    for w, stride in zip(widths[1:], (first_stride, 2, 2)):
        for i in range(n):
            total += 2 * c_in + c_in * w * 9 + w * b  # bn1, conv1
            total += 2 * w + w * w * 9 + w * b  # bn2, conv2
            if i == 0 and (c_in != w or stride != 1):
                total += c_in * w + w * b  # 1x1 shortcut
            c_in = w
    total += 2 * widths[3]  # final BN
    total += widths[3] * num_classes + num_classes  # linear
    return total


def test_registry_names():
    assert MODELS == ("wrn28_4", "wrn", "resnet18", "smallnet")
    assert set(FAST) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_32px(name):
    torch.manual_seed(0)
    model = build_model(name, 7, **FAST[name]).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_wrn_64px_has_stride_two_in_first_stage():
    sizes = {}
    for image_size in (32, 64):
        model = build_model("wrn", 200, image_size=image_size, depth=10, widen_factor=1).eval()
        feats = {}
        model.layer1.register_forward_hook(lambda m, i, o: feats.__setitem__("l1", o.shape))
        model.layer3.register_forward_hook(lambda m, i, o: feats.__setitem__("l3", o.shape))
        with torch.no_grad():
            out = model(torch.rand(2, 3, image_size, image_size))
        assert out.shape == (2, 200)
        sizes[image_size] = feats
    assert sizes[32]["l1"][-1] == 32 and sizes[32]["l3"][-1] == 8
    assert sizes[64]["l1"][-1] == 32 and sizes[64]["l3"][-1] == 8  # 64 -> 32 -> 16 -> 8


@pytest.mark.parametrize("name", ["resnet18", "smallnet"])
def test_other_models_accept_64px(name):
    model = build_model(name, 200, image_size=64).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 200)


def test_wrn_small_images_use_stride_one():
    model = build_model("wrn", 10, in_channels=1, image_size=28, depth=10, widen_factor=1).eval()
    assert model.layer1[0].conv1.stride == (1, 1)
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_in_channels():
    for name in MODELS:
        model = build_model(name, 3, in_channels=1, **FAST[name]).eval()
        with torch.no_grad():
            assert model(torch.rand(1, 1, 32, 32)).shape == (1, 3)


# ---------------------------------------------------------------- parameter counts
def test_wrn28_4_parameter_count_clean():
    # exact value for K = 10 without quirks: 5,849,050 (≈ 5.85 M, METHOD.md §4.2)
    assert count_parameters(build_model("wrn28_4", 10)) == 5_849_050
    for k in (10, 100, 200):
        size = 64 if k == 200 else 32
        expected = _wrn_param_count(28, 4, k, first_stride=size // 32)
        assert count_parameters(build_model("wrn28_4", k, image_size=size)) == expected


def test_wrn28_4_parameter_count_with_quirks_matches_hand_count():
    # METHOD.md §4.2 hand count: 5.85 M (K=10), 5.88 M (K=100), 5.90 M (K=200)
    for k, millions in ((10, 5.85), (100, 5.88), (200, 5.90)):
        n = count_parameters(build_model("wrn28_4", k, reference_quirks=True))
        assert n == _wrn_param_count(28, 4, k, bias=True)
        assert round(n / 1e6, 2) == millions
    # conv biases add exactly one parameter per conv output channel
    assert count_parameters(build_model("wrn28_4", 10, reference_quirks=True)) - 5_849_050 == 4048


def test_generic_wrn_count_matches_formula():
    for depth, k in ((10, 1), (16, 2), (22, 3)):
        model = build_model("wrn", 10, depth=depth, widen_factor=k)
        assert count_parameters(model) == _wrn_param_count(depth, k, 10)


def test_resnet18_and_smallnet_counts():
    assert count_parameters(build_model("resnet18", 10)) == 11_173_962
    n_small = count_parameters(build_model("smallnet", 10))
    assert 300_000 <= n_small <= 600_000
    assert n_small == 469_858


def test_count_parameters_trainable_only():
    model = build_model("smallnet", 10)
    total = count_parameters(model)
    model.linear.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - model.linear.weight.numel()
    assert count_parameters(model) == total
    with pytest.raises(TypeError, match="model"):
        count_parameters("smallnet")


# ---------------------------------------------------------------- quirks
def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _bns(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_quirks_flag_controls_conv_bias_and_final_bn_momentum():
    clean = build_model("wrn", 10, depth=10)
    quirky = build_model("wrn", 10, depth=10, reference_quirks=True)
    assert all(c.bias is None for c in _convs(clean))
    assert all(c.bias is not None for c in _convs(quirky))
    assert clean.bn_final.momentum == pytest.approx(0.1)
    assert quirky.bn_final.momentum == pytest.approx(0.9)
    # every other BN keeps the standard momentum
    assert all(b.momentum == pytest.approx(0.1) for b in _bns(quirky) if b is not quirky.bn_final)
    assert all(b.momentum == pytest.approx(0.1) for b in _bns(clean))
    # same structure otherwise
    assert [type(m) for m in clean.modules()] == [type(m) for m in quirky.modules()]


@pytest.mark.parametrize(("quirks", "momentum"), [(False, 0.1), (True, 0.9)])
def test_final_bn_running_mean_update(quirks, momentum):
    model = build_model("wrn", 10, depth=10, reference_quirks=quirks).train()
    seen = {}
    model.bn_final.register_forward_hook(lambda m, i, o: seen.__setitem__("x", i[0].detach()))
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32))
    batch_mean = seen["x"].mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.bn_final.running_mean, momentum * batch_mean, rtol=1e-4, atol=1e-6)


def test_dropout_default_and_configurable():
    model = build_model("wrn28_4", 10)
    ps = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert ps == {0.3}
    model = build_model("wrn28_4", 10, dropout=0.0)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.0}
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 12  # one per block, 3 stages × 4


def test_wrn_block_structure():
    model = build_model("wrn28_4", 10)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [4, 4, 4]
    blk = model.layer2[0]
    assert blk.conv1.stride == (2, 2) and isinstance(blk.shortcut, nn.Conv2d)
    assert blk.shortcut.kernel_size == (1, 1)
    assert isinstance(model.layer2[1].shortcut, nn.Identity)
    assert isinstance(model.layer1[0].shortcut, nn.Conv2d)  # 16 -> 64 channels
    assert model.conv1.out_channels == 16 and model.linear.in_features == 256


def test_wideresnet_class_directly():
    m = WideResNet(10, depth=16, widen_factor=2, dropout=0.0)
    assert count_parameters(m) == _wrn_param_count(16, 2, 10)


# ---------------------------------------------------------------- channels_last, bf16, determinism
@pytest.mark.parametrize("name", MODELS)
def test_channels_last_and_bf16_autocast_forward(name):
    torch.manual_seed(1)
    model = build_model(name, 10, **FAST[name]).to(memory_format=torch.channels_last).eval()
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(x.contiguous())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == (2, 10)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    scale = ref.abs().max().item() + 1.0
    assert (out.float() - ref).abs().max().item() < 0.25 * scale


def test_bf16_autocast_backward_smallnet():
    model = build_model("smallnet", 10).to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("precision, device, resolved", [
    ("auto", "cpu", "fp32"), ("auto", "cuda", "bf16"), ("fp32", "cuda", "fp32"), ("fp32", "cpu", "fp32"),
    ("bf16", "cpu", "bf16"), ("bf16", "cuda", "bf16")])
def test_precision_auto_is_bf16_on_cuda_and_fp32_on_the_cpu(precision, device, resolved):
    assert resolve_precision(precision, device) == resolved
    assert resolve_precision(precision, torch.device(device)) == resolved


def test_forward_runs_at_the_resolved_precision_and_refuses_unknown_ones():
    model = build_model("smallnet", 10, widths=(8, 8, 8)).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert forward(model, x, precision="auto", channels_last=False).dtype == torch.float32
        assert forward(model, x, precision="fp32", channels_last=False).dtype == torch.float32
        assert forward(model, x, precision="bf16", channels_last=True).dtype == torch.bfloat16
        assert torch.equal(forward(model, x, precision="auto", channels_last=False),
                           forward(model, x, precision="fp32", channels_last=False))
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\], got 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_init(name):
    def init(seed):
        torch.manual_seed(seed)
        return build_model(name, 10, **FAST[name]).state_dict()

    a, b, c = init(3), init(3), init(4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_kaiming_init_scale_and_bn_init():
    torch.manual_seed(0)
    model = build_model("resnet18", 10)
    conv = model.layer3[0].conv1  # fan_out = 256 * 9
    expected = (2.0 / (256 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    for bn in _bns(model):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert torch.all(model.linear.bias == 0)


# ---------------------------------------------------------------- normalize option
def test_normalize_option():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    torch.manual_seed(0)
    plain = build_model("smallnet", 10).eval()
    torch.manual_seed(0)
    normed = build_model("smallnet", 10, normalize=(mean, std)).eval()
    assert count_parameters(plain) == count_parameters(normed)
    x = torch.rand(2, 3, 32, 32)
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x), plain(xn))
    with pytest.raises(ValueError, match="in_channels"):
        build_model("smallnet", 10, normalize=((0.5,), (0.2,)))
    with pytest.raises(ValueError, match="std"):
        build_model("smallnet", 10, normalize=((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)))


# ---------------------------------------------------------------- errors
def test_unknown_name_lists_models():
    with pytest.raises(ValueError, match="wrn28_4.*smallnet"):
        build_model("resnet50", 10)


def test_bad_kwargs():
    with pytest.raises(TypeError, match="depth"):
        build_model("wrn28_4", 10, depth=16)  # depth is fixed for wrn28_4
    with pytest.raises(TypeError, match="allowed"):
        build_model("resnet18", 10, dropout=0.1)
    with pytest.raises(ValueError, match="depth"):
        build_model("wrn", 10, depth=27)
    with pytest.raises(ValueError, match="dropout"):
        build_model("wrn", 10, dropout=1.5)
    with pytest.raises(TypeError, match="reference_quirks"):
        build_model("wrn", 10, reference_quirks="yes")
    with pytest.raises(ValueError, match="image_size"):
        build_model("wrn28_4", 10, image_size=4)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("smallnet", 1)
    with pytest.raises(TypeError, match="num_classes"):
        build_model("smallnet", 10.0)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("smallnet", 10, in_channels=0)
    with pytest.raises(ValueError, match="widths"):
        build_model("smallnet", 10, widths=(32, 64))
