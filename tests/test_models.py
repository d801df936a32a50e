"""Backbones, baselines, layers and weight loading: registry sweep, invariants and independent formulas."""

from __future__ import annotations

import copy

import pytest
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block

from workbench import models
from workbench.models.mm_vit import MultiModalViT, block_forward_with_attention, patch_grid
from workbench.models.pretrained import PretrainedWeightsError, read_state_dict, resample_pos_embed
from workbench.models.vi_cnn import VIReIDNet

MODS = ("rgb", "nir", "tir")


def make_inputs(model, b: int = 8, hw=(64, 32), seed: int = 0) -> tuple[tuple, dict]:
    """Random inputs for any registered model: (args, kwargs) for `model(*args, **kwargs)`."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, VIReIDNet):
        return (torch.randn(b, 3, *hw, generator=g), torch.arange(b) % 2), {}
    if isinstance(model, MultiModalViT):
        return ({m: torch.randn(b, 3, *hw, generator=g) for m in model.modalities},), {}
    raise AssertionError(f"no input recipe for {type(model).__name__}")


def take(args: tuple, idx: torch.Tensor) -> tuple:
    """Index the batch dimension of model inputs."""
    out = []
    for a in args:
        out.append({k: v[idx] for k, v in a.items()} if isinstance(a, dict) else a[idx])
    return tuple(out)


# ---------------------------------------------------------------- registry

def test_registry_lists_the_baselines_and_tiny_variants():
    names = models.list_models()
    for name in ("agw_r50", "vi_r50", "mm_vit_b16", "test_vi_resnet", "test_mm_vit"):
        assert name in names
    assert models.list_models("test_*") == sorted(n for n in names if n.startswith("test_"))
    assert models.list_models("*vit*") == ["mm_vit_b16", "test_mm_vit"]


def test_create_model_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match="agw_r50"):
        models.create_model("agw_r5")


def test_register_model_rejects_a_second_entry_point_with_the_same_name():
    def agw_r50():  # noqa: ANN202 - a clash on purpose
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        models.register_model(agw_r50)


# ---------------------------------------------------------------- registry sweep (timm style)

@pytest.mark.parametrize("name", models.list_models("test_*"))
def test_tiny_model_forward_backward(name):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=5).train()
    args, kwargs = make_inputs(model, b=8)
    out = model(*args, **kwargs)
    assert isinstance(out, models.ReIDOutput)
    assert out.feats.shape == (8, model.feat_dim) and out.pooled.shape == (8, model.feat_dim)
    assert out.logits.shape == (8, 5)
    for t in (out.feats, out.pooled, out.logits, *out.parts.values()):
        assert torch.isfinite(t).all()
    logits = [out.logits] + [v for k, v in out.parts.items() if k.startswith("logits_")]
    (sum(z.logsumexp(1).mean() for z in logits) + out.pooled.pow(2).mean()).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", models.list_models("test_*"))
def test_tiny_model_without_classifier_has_no_logits(name):
    model = models.create_model(name).eval()
    args, kwargs = make_inputs(model, b=2)
    with torch.no_grad():
        out = model(*args, **kwargs)
    assert out.logits is None and out.feats.shape == (2, model.feat_dim)


@pytest.mark.parametrize("name", models.list_models("test_*"))
def test_eval_features_do_not_depend_on_batch_composition(name):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=5).eval()
    args, _ = make_inputs(model, b=6, seed=1)
    with torch.no_grad():
        full = model(*args).feats
        perm = torch.tensor([4, 1, 5, 0, 3, 2])
        permuted = model(*take(args, perm)).feats
        single = torch.cat([model(*take(args, torch.tensor([i]))).feats for i in range(6)])
    torch.testing.assert_close(permuted, full[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, full, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- visible-infrared CNN

@pytest.mark.parametrize("split", ["stem", "layer2"])
def test_rgb_output_ignores_the_ir_branch_weights(split):
    torch.manual_seed(0)
    model = models.create_model("test_vi_resnet", modality_specific=split).eval()
    x = torch.randn(4, 3, 64, 32)
    modality = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        before = model(x, modality).feats
        for p in model.specific[1].parameters():  # scramble every infrared-specific weight
            p.add_(torch.randn_like(p))
        after = model(x, modality).feats
    torch.testing.assert_close(after[modality == 0], before[modality == 0])
    assert not torch.allclose(after[modality == 1], before[modality == 1])


def test_split_point_sets_which_stages_are_duplicated():
    counts = {}
    for split in ("none", "stem", "layer1", "layer4"):
        model = models.create_model("test_vi_resnet", modality_specific=split)
        counts[split] = sum(p.numel() for p in model.parameters())
        assert list(model.shared.keys()) == list(models.vi_cnn.STAGES[models.vi_cnn.SPLIT_POINTS.index(split):])
    stem = models.create_model("test_vi_resnet", modality_specific="none").shared["stem"]
    layer1 = models.create_model("test_vi_resnet", modality_specific="none").shared["layer1"]
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert counts["stem"] - counts["none"] == n(stem)
    assert counts["layer1"] - counts["stem"] == n(layer1)
    # both stems start from the same weights (AGW loads ImageNet into each copy)
    model = models.create_model("test_vi_resnet")
    for a, b in zip(model.specific[0].parameters(), model.specific[1].parameters()):
        assert a.data_ptr() != b.data_ptr() and torch.equal(a, b)


def test_single_stream_accepts_no_modality_and_two_stream_requires_it():
    single = models.create_model("test_vi_resnet", modality_specific="none").eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(single(x).feats, single(x, torch.tensor([1, 0])).feats)
    two = models.create_model("test_vi_resnet").eval()
    with pytest.raises(ValueError, match="modality is required"):
        two(x)
    with pytest.raises(ValueError, match="0 \\(rgb\\) or 1 \\(ir\\)"):
        two(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="modality must be"):
        two(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="modality_specific"):
        VIReIDNet("test_resnet", modality_specific="layer5")


def test_stage_maps_and_last_stride():
    x, mod = torch.randn(2, 3, 64, 32), torch.tensor([0, 1])
    for last_stride, factor in ((1, 1), (2, 2)):
        model = models.create_model("test_vi_resnet", last_stride=last_stride).eval()
        with torch.no_grad():
            out = model(x, mod, return_stages=True)
        l3, l4 = out.parts["layer3"].shape, out.parts["layer4"].shape
        assert (l4[2] * factor, l4[3] * factor) == (l3[2], l3[3])
        assert set(out.parts) == {"bn", "stem", "layer1", "layer2", "layer3", "layer4"}
        torch.testing.assert_close(model.forward_features(x, mod), out.parts["layer4"])
        torch.testing.assert_close(out.pooled, models.gem_pool(out.parts["layer4"], 3.0))
    assert "layer4" not in models.create_model("test_vi_resnet").eval()(x, mod).parts


def test_bnneck_and_classifier_follow_the_agw_head():
    model = models.create_model("test_vi_resnet", num_classes=7).train()
    assert not model.bnneck.bias.requires_grad and model.classifier.bias is None
    out = model(torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(out.logits, out.feats @ model.classifier.weight.t())
    bn = F.batch_norm(out.pooled, None, None, model.bnneck.weight, model.bnneck.bias, training=True)
    torch.testing.assert_close(out.feats, bn)
    plain = models.create_model("test_vi_resnet", bnneck=False).eval()
    with torch.no_grad():
        o = plain(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    torch.testing.assert_close(o.feats, o.pooled)


def test_vi_r50_is_single_stream_with_learnable_gem():
    model = models.create_model("vi_r50")
    assert not model.two_stream and isinstance(model.pool.p, torch.nn.Parameter) and model.classifier is None
    agw = models.create_model("agw_r50", num_classes=3)
    assert agw.two_stream and not isinstance(agw.pool.p, torch.nn.Parameter)
    nl = [m for m in agw.modules() if isinstance(m, models.NonLocal)]
    assert [m.in_channels for m in nl] == [512, 512, 1024, 1024, 1024]  # AGW: 2 in layer2, 3 in layer3
    assert all(m.inter_channels == 1 for m in nl)


def test_agw_r50_stage_shapes_match_the_methods_table():
    model = models.create_model("agw_r50").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 288, 144), torch.tensor([1]), return_stages=True)
    shapes = {k: tuple(v.shape[1:]) for k, v in out.parts.items() if k != "bn"}
    assert shapes == {"stem": (64, 72, 36), "layer1": (256, 72, 36), "layer2": (512, 36, 18),
                      "layer3": (1024, 18, 9), "layer4": (2048, 18, 9)}
    assert out.feats.shape == (1, 2048)


# ---------------------------------------------------------------- EfficientNet-Lite0 trunk

def test_lite0_stages_sit_at_resnet_strides_and_last_stride_one_doubles_the_final_grid():
    x, mod = torch.randn(2, 3, 128, 64), torch.tensor([0, 1])
    shapes = {}
    for last_stride in (1, 2):
        model = models.create_model("agw_lite0", last_stride=last_stride).eval()
        with torch.no_grad():
            out = model(x, mod, return_stages=True)
        shapes[last_stride] = {k: tuple(v.shape[1:]) for k, v in out.parts.items() if k != "bn"}
        assert model.stage_channels == {"stem": 16, "layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280}
    assert shapes[2] == {"stem": (16, 64, 32), "layer1": (24, 32, 16), "layer2": (40, 16, 8),
                         "layer3": (112, 8, 4), "layer4": (1280, 4, 2)}
    assert shapes[1]["layer4"] == (1280, 8, 4) and shapes[1]["layer3"] == shapes[2]["layer3"]


def test_lite0_models_follow_their_references():
    agw = models.create_model("agw_lite0", num_classes=3)
    assert agw.two_stream and list(agw.specific[0]) == ["stem"] and not isinstance(agw.pool.p, torch.nn.Parameter)
    nl = [m for m in agw.modules() if isinstance(m, models.NonLocal)]
    assert [m.in_channels for m in nl] == [40, 40, 112, 112, 112]  # AGW: after 2 blocks of layer2, 3 of layer3
    assert all(m.inter_channels == 1 for m in nl)
    vi = models.create_model("vi_lite0")
    assert not vi.two_stream and isinstance(vi.pool.p, torch.nn.Parameter) and vi.classifier is None
    # both stems are the whole stride-2 part of the trunk: the stem conv, its BN and the depthwise-separable block
    stem = agw.specific[0]["stem"]
    assert isinstance(stem[0], torch.nn.Conv2d) and stem[0].stride == (2, 2) and len(stem) == 3
    for a, b in zip(agw.specific[0].parameters(), agw.specific[1].parameters()):
        assert a.data_ptr() != b.data_ptr() and torch.equal(a, b)


@pytest.mark.parametrize("name", ["agw_lite0", "vi_lite0"])
def test_lite0_eval_features_do_not_depend_on_batch_composition(name):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=5).eval()
    x, mod = torch.randn(3, 3, 64, 32), torch.tensor([1, 0, 1])
    with torch.no_grad():
        full = model(x, mod).feats
        single = torch.cat([model(x[i:i + 1], mod[i:i + 1]).feats for i in range(3)])
    torch.testing.assert_close(single, full, atol=1e-5, rtol=1e-5)


def test_vi_trunk_without_extras_is_the_timm_backbone():
    """Shared BatchNorm, no non-local block, last stride 2: the trunk is timm's forward_features, exactly."""
    torch.manual_seed(0)
    model = models.create_model("test_vi_resnet", modality_specific="none", non_local=False, last_stride=2).eval()
    reference = timm.create_model("test_resnet", num_classes=0, global_pool="").eval()
    reference.load_state_dict(_timm_names(model))  # strict: every timm tensor is one of the trunk's
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), reference.forward_features(x))
    assert not any(isinstance(m, models.layers.ModalityBatchNorm2d) for m in model.modules())


def _timm_names(model) -> dict:
    """The trunk's tensors under timm ResNet names (shared.stem.k -> conv1/bn1, shared.layerK.blocks -> layerK)."""
    stem = {"0": "conv1", "1": "bn1"}
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("shared.stem."):
            idx, rest = k[len("shared.stem."):].split(".", 1)
            out[f"{stem[idx]}.{rest}"] = v
        elif k.startswith("shared.layer"):
            layer, rest = k[len("shared."):].split(".blocks.", 1)
            out[f"{layer}.{rest}"] = v
    return out


# ---------------------------------------------------------------- per-modality BatchNorm

def test_modality_batchnorm_equals_one_batchnorm_per_modality():
    """Oracle: per-modality statistics are those of a plain BatchNorm that sees only that modality's rows."""
    torch.manual_seed(0)
    base = torch.nn.BatchNorm2d(4)
    base.weight.data.uniform_(0.5, 1.5)
    base.bias.data.normal_()
    router = models.layers.ModalityRouter(2)
    mbn = models.layers.ModalityBatchNorm2d(copy.deepcopy(base), router).train()
    refs = [copy.deepcopy(base).train() for _ in range(2)]
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(6, 4, 3, 2, generator=g) * (1 + torch.arange(6).view(6, 1, 1, 1))
        x[3:] += 5.0 * (step + 1)  # the infrared rows live elsewhere
        mod = torch.tensor([0, 0, 0, 1, 1, 1]) if step % 2 == 0 else torch.tensor([1, 0, 1, 0, 1, 0])
        router.route(mod)
        out = mbn(x)
        for m in range(2):
            rows = mod == m
            torch.testing.assert_close(out[rows], refs[m](x[rows]))
    for m in range(2):
        torch.testing.assert_close(mbn.running_mean[m], refs[m].running_mean)
        torch.testing.assert_close(mbn.running_var[m], refs[m].running_var)
        assert int(mbn.num_batches_tracked[m]) == int(refs[m].num_batches_tracked) == 4
    mbn.eval()
    x = torch.randn(4, 4, 3, 2, generator=g)
    router.route(torch.tensor([1, 0, 0, 1]))
    out = mbn(x)
    torch.testing.assert_close(out[[0, 3]], refs[1].eval()(x[[0, 3]]))
    torch.testing.assert_close(out[[1, 2]], refs[0].eval()(x[[1, 2]]))
    router.clear()
    with pytest.raises(RuntimeError, match="modality"):
        mbn(x)


@pytest.mark.parametrize("name", ["test_vi_resnet", "vi_lite0"])
def test_per_modality_running_statistics_are_each_modalitys_own(name):
    """Model-level oracle: after training-mode forwards on [rgb; ir] batches, every per-modality BatchNorm holds the
    running statistics that the shared-BN model (same weights) gets from the rows of that modality alone."""
    hw = (64, 32)
    torch.manual_seed(0)
    shared = models.create_model(name, modality_specific="none").train()
    per = models.create_model(name, modality_specific="none", modality_bn="per_modality").train()
    per.load_state_dict({k: v for k, v in shared.state_dict().items() if k in per.state_dict()
                         and per.state_dict()[k].shape == v.shape}, strict=False)
    only = [copy.deepcopy(shared) for _ in range(2)]
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for _ in range(3):
            rgb, ir = torch.randn(4, 3, *hw, generator=g), torch.randn(4, 3, *hw, generator=g) * 0.5 + 1.0
            out = per(torch.cat([rgb, ir]), torch.tensor([0] * 4 + [1] * 4))
            solo = [only[0](rgb, torch.zeros(4, dtype=torch.long)), only[1](ir, torch.ones(4, dtype=torch.long))]
            torch.testing.assert_close(out.pooled, torch.cat([solo[0].pooled, solo[1].pooled]), atol=1e-4, rtol=1e-4)
    converted = {n: m for n, m in per.named_modules() if isinstance(m, models.layers.ModalityBatchNorm2d)}
    plain = [dict(o.named_modules()) for o in only]
    assert len(converted) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in shared.shared.modules())
    for n, mbn in converted.items():
        for m in range(2):
            torch.testing.assert_close(mbn.running_mean[m], plain[m][n].running_mean, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(mbn.running_var[m], plain[m][n].running_var, atol=1e-5, rtol=1e-4)


def test_per_modality_bn_needs_the_modality_and_keeps_the_parameters():
    per = models.create_model("vi_lite0", modality_bn="per_modality")
    shared = models.create_model("vi_lite0")
    assert [n for n, _ in per.named_parameters()] == [n for n, _ in shared.named_parameters()]
    with pytest.raises(ValueError, match="modality is required when modality_bn='per_modality'"):
        per(torch.randn(2, 3, 64, 32))
    with pytest.raises(ValueError, match="modality_bn must be one of"):
        models.create_model("agw_lite0", modality_bn="split")
    # two stems: the stems stay plain BatchNorm (they see one modality each), the shared stages are converted
    agw = models.create_model("test_vi_resnet", modality_bn="per_modality")
    assert not any(isinstance(m, models.layers.ModalityBatchNorm2d) for m in agw.specific.modules())
    assert any(isinstance(m, models.layers.ModalityBatchNorm2d) for m in agw.shared.modules())


# ---------------------------------------------------------------- layers

def test_gem_is_average_at_p1_and_tends_to_max():
    x = torch.rand(3, 5, 4, 4, dtype=torch.float64) + 0.5
    torch.testing.assert_close(models.gem_pool(x, 1.0), x.mean(dim=(2, 3)))
    mx = x.amax(dim=(2, 3))
    values = [models.gem_pool(x, p) for p in (1.0, 3.0, 10.0, 100.0, 1000.0)]
    for lo, hi in zip(values, values[1:]):
        assert (hi >= lo - 1e-12).all() and (hi <= mx + 1e-12).all()  # power-mean inequality
    assert ((mx - values[-1]) / mx).max() < 16 ** (1 / 1000) - 1 + 1e-9  # max * (1/HW)^(1/p) <= GeM <= max


def test_learnable_gem_exponent_gets_a_gradient():
    pool = models.GeM(3.0, learn_p=True)
    pool(torch.rand(2, 4, 3, 3) + 0.1).sum().backward()
    assert pool.p.grad is not None and pool.p.grad.abs().item() > 0
    with pytest.raises(ValueError, match="gem_p"):
        models.GeM(0.0)


@pytest.mark.parametrize("quirk,expected", [(True, 1), (False, 24)])
def test_non_local_channel_count_and_formula(quirk, expected):
    torch.manual_seed(0)
    nl = models.NonLocal(48, quirk=quirk).eval()
    assert nl.inter_channels == expected and nl.g.out_channels == expected
    x = torch.randn(2, 48, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(nl(x), x)  # zero-initialised BN: identity at start
        nl.W[1].weight.normal_()
        nl.W[1].bias.normal_()
        # independent formula: y_i = 1/N sum_j <theta_i, phi_j> g_j, z = x + BN(W y)
        th, ph, g = (conv(x).flatten(2) for conv in (nl.theta, nl.phi, nl.g))  # (B, c, N)
        n = x.shape[2] * x.shape[3]
        y = torch.einsum("bci,bcj,bdj->bdi", th, ph, g) / n
        expected_out = x + nl.W(y.reshape(2, expected, 5, 3))
        torch.testing.assert_close(nl(x), expected_out, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- multi-modal ViT

def block_params(dim: int, mlp_ratio: float) -> int:
    """Parameters of one pre-norm ViT block with qkv bias: 2 LayerNorms, qkv, proj, 2-layer MLP."""
    hidden = int(dim * mlp_ratio)
    return 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * hidden + hidden) + (hidden * dim + dim)


def test_parameter_count_follows_the_sharing_formula():
    dim, depth, ratio, patch, m, n_cam = 64, 4, 2.0, 8, 3, 5
    n_patches = 8 * 4
    embed = (3 * patch * patch * dim + dim) + dim + (1 + n_patches) * dim + n_cam * dim  # conv, cls, pos, SIE
    norm = 2 * dim
    for shared in range(depth + 1):
        model = models.create_model("test_mm_vit", shared_depth=shared, num_cameras=n_cam)
        n_embed = 1 if shared > 0 else m
        n_norm = 1 if shared == depth else m
        expected = n_embed * embed + (shared + m * (depth - shared)) * block_params(dim, ratio) + n_norm * norm
        assert sum(p.numel() for p in model.parameters()) == expected, shared
    zero, full = (models.create_model("test_mm_vit", shared_depth=s) for s in (0, depth))
    count = lambda mdl: sum(p.numel() for p in mdl.parameters())  # noqa: E731
    assert count(zero) - count(full) == (m - 1) * (embed - n_cam * dim + depth * block_params(dim, ratio) + norm)


def test_shared_part_runs_once_on_the_concatenated_batch():
    model = models.create_model("test_mm_vit", shared_depth=2).eval()
    seen = []
    hook = model.shared_blocks[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    branch_seen = []
    hook2 = model.branches[1][0].register_forward_hook(lambda mod, inp, out: branch_seen.append(inp[0].shape[0]))
    (x,), _ = make_inputs(model, b=5)
    with torch.no_grad():
        model(x)
    hook.remove()
    hook2.remove()
    assert seen == [15] and branch_seen == [5]


def test_camera_embedding_changes_outputs_only_when_cameras_are_given():
    torch.manual_seed(0)
    sie = models.create_model("test_mm_vit", num_cameras=4).eval()
    plain = models.create_model("test_mm_vit").eval()
    plain.load_state_dict({k: v for k, v in sie.state_dict().items() if "sie_embed" not in k})
    (x,), _ = make_inputs(sie, b=4)
    cams = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        no_cam = sie(x).feats
        with_cam = sie(x, cams).feats
        torch.testing.assert_close(no_cam, plain(x).feats)
        torch.testing.assert_close(plain(x, cams).feats, plain(x).feats)  # no SIE table: camids ignored
        assert not torch.allclose(no_cam, with_cam)
        torch.testing.assert_close(sie(x, cams).feats, with_cam)
        # one sample, two cameras: different features; the change is sie_coef * table[c] on every token
        one = {m: v[:1].expand(2, -1, -1, -1) for m, v in x.items()}
        two_cams = sie(one, torch.tensor([0, 1])).feats
        assert not torch.allclose(two_cams[0], two_cams[1])
    with pytest.raises(ValueError, match="camids"):
        sie(x, torch.tensor([0, 1, 2, 4]))


def test_attention_maps_are_distributions_and_match_the_reported_cls_attention():
    model = models.create_model("test_mm_vit", num_classes=3).eval()
    (x,), _ = make_inputs(model, b=2)
    with torch.no_grad():
        fast = model(x)
        out = model(x, with_attention=True, attention_blocks="all", return_tokens=True)
        last = model(x, with_attention=True)  # the explicit path in the last block only
    torch.testing.assert_close(out.feats, fast.feats, atol=1e-5, rtol=1e-5)
    assert fast.attn is None and out.attn.shape == (2, 3, 32)
    assert "attn_maps_rgb" not in last.parts and torch.allclose(last.attn, out.attn, atol=1e-6)
    t = 1 + 32
    for i, m in enumerate(MODS):
        maps = out.parts[f"attn_maps_{m}"]
        assert maps.shape == (2, 4, 2, t, t)
        torch.testing.assert_close(maps.sum(-1), torch.ones(2, 4, 2, t))
        assert (maps >= 0).all()
        torch.testing.assert_close(out.attn[:, i], maps[:, -1, :, 0, 1:].mean(1))
        tokens = out.parts[f"tokens_{m}"]
        assert tokens.shape == (2, 4, t, 64)
        torch.testing.assert_close(tokens[:, 1], out.parts[f"shared_tokens_{m}"])  # after block L_s = 2
        torch.testing.assert_close(model.norms[i](tokens[:, -1])[:, 0], out.parts[f"cls_{m}"])
        assert torch.equal(out.parts[f"final_tokens_{m}"][:, 0], out.parts[f"cls_{m}"])
    with pytest.raises(ValueError, match="attention_blocks"):
        model(x, with_attention=True, attention_blocks="first")


def test_explicit_attention_equals_timm_fused_block():
    torch.manual_seed(0)
    block = Block(dim=32, num_heads=4, qkv_bias=True).eval()
    block.attn.fused_attn = True
    x = torch.randn(3, 11, 32)
    with torch.no_grad():
        out, probs = block_forward_with_attention(block, x)
        assert block.attn.fused_attn and not block.attn.attn_drop._forward_hooks  # the hook leaves no trace
        torch.testing.assert_close(out, block(x), atol=1e-5, rtol=1e-5)
        # attention from the weights, written out: softmax(q k^T / sqrt(d))
        qkv = block.norm1(x) @ block.attn.qkv.weight.t() + block.attn.qkv.bias  # (B, T, 3*C)
        q, k, _ = qkv.split(32, dim=-1)
        q = q.reshape(3, 11, 4, 8).transpose(1, 2)
        k = k.reshape(3, 11, 4, 8).transpose(1, 2)
        torch.testing.assert_close(probs, torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1))


def test_features_concatenate_modalities_in_order_and_heads_are_per_modality():
    model = models.create_model("test_mm_vit", num_classes=4).train()
    (x,), _ = make_inputs(model, b=4)
    out = model(x)
    torch.testing.assert_close(out.feats, torch.cat([out.parts[f"cls_{m}"] for m in MODS], dim=1))
    torch.testing.assert_close(out.logits, model.classifier(model.bnneck(out.feats)))
    for i, m in enumerate(MODS):
        assert out.parts[f"logits_{m}"].shape == (4, 4)
        per_mod = model.classifiers[i](model.bnnecks[i](out.parts[f"cls_{m}"]))
        torch.testing.assert_close(out.parts[f"logits_{m}"], per_mod)
        assert out.parts[f"shared_tokens_{m}"].shape == (4, 33, 64)


def test_missing_modality_is_a_clear_error():
    model = models.create_model("test_mm_vit").eval()
    (x,), _ = make_inputs(model, b=2)
    del x["tir"]
    with pytest.raises(ValueError, match="tir"):
        model(x)
    with pytest.raises(ValueError, match="dict"):
        model(torch.randn(2, 3, 64, 32))
    two = models.create_model("test_mm_vit", modalities=("rgb", "tir"))
    assert two(x | {"tir": x["rgb"]}).feats.shape == (2, 128)


def test_other_sizes_and_overlapping_patches():
    assert patch_grid((256, 128), 16, 16) == (16, 8)
    assert patch_grid((256, 128), 16, 12) == (21, 10)  # TransReID stride variant: 210 patches
    model = models.create_model("test_mm_vit").eval()
    with torch.no_grad():  # larger input: position embedding resampled on the fly
        out = model({m: torch.randn(1, 3, 96, 48) for m in MODS}, with_attention=True)
    assert out.attn.shape == (1, 3, 12 * 6)
    strided = models.create_model("test_mm_vit", stride=4).eval()
    assert strided.grid_size == (15, 7) and strided.embed[0].pos_embed.shape == (1, 1 + 105, 64)
    with torch.no_grad():
        out = strided({m: torch.randn(1, 3, 64, 32) for m in MODS}, return_tokens=True)
    assert out.parts["tokens_rgb"].shape == (1, 4, 106, 64)
    with pytest.raises(ValueError, match="stride"):
        models.create_model("test_mm_vit", stride=9)
    with pytest.raises(ValueError, match="shared_depth"):
        models.create_model("test_mm_vit", shared_depth=5)


def test_resample_pos_embed_keeps_cls_and_constant_fields():
    pos = torch.randn(1, 1 + 16, 8)
    assert resample_pos_embed(pos, (4, 4)) is pos
    const = torch.cat([pos[:, :1], torch.full((1, 16, 8), 0.7)], dim=1)
    out = resample_pos_embed(const, (6, 3))
    assert out.shape == (1, 19, 8)
    torch.testing.assert_close(out[:, :1], pos[:, :1])
    torch.testing.assert_close(out[:, 1:], torch.full((1, 18, 8), 0.7))


@pytest.mark.slow
def test_mm_vit_b16_builds_with_the_transreid_token_layout():
    model = models.create_model("mm_vit_b16", num_classes=10).eval()
    assert model.grid_size == (16, 8) and model.shared_depth == 0 and len(model.branches) == 3
    assert model.embed_dim == 768 and model.depth == 12 and model.feat_dim == 2304
    with torch.no_grad():
        out = model({m: torch.randn(1, 3, 256, 128) for m in MODS})
    assert out.feats.shape == (1, 2304) and out.parts["shared_tokens_rgb"].shape == (1, 129, 768)


# ---------------------------------------------------------------- pretrained weights

def test_local_safetensors_and_pth_load_into_both_stems(tmp_path):
    torch.manual_seed(1)
    src = timm.create_model("test_resnet", num_classes=10)  # has an ImageNet-style fc head
    state = src.state_dict()
    safetensors.torch.save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        model = VIReIDNet("test_resnet", pretrained=str(tmp_path / name))
        report = model.load_report
        assert report.missing == () and report.unexpected == () and report.mismatched == ()
        assert set(report.skipped_head) == {"fc.weight", "fc.bias"}
        assert len(report.loaded) == len(state) - 2
        for stems in model.specific:
            torch.testing.assert_close(stems["stem"][0][0].weight, state["conv1.0.weight"])
        torch.testing.assert_close(model.shared["layer3"].blocks[0].conv2.weight, state["layer3.0.conv2.weight"])


def test_vit_checkpoint_with_another_grid_is_resampled(tmp_path):
    src = timm.create_model("vit_tiny_patch16_224", embed_dim=64, depth=4, num_heads=2, mlp_ratio=2.0,
                            patch_size=8, img_size=32, num_classes=0)  # 4x4 grid
    state = src.state_dict()
    safetensors.torch.save_file(state, tmp_path / "vit.safetensors")
    model = models.create_model("test_mm_vit", pretrained=str(tmp_path / "vit.safetensors"))
    assert model.load_report.resized == ("pos_embed",) and model.load_report.missing == ()
    expected = resample_pos_embed(state["pos_embed"], (8, 4), (4, 4))
    for embed in model.embed:
        torch.testing.assert_close(embed.pos_embed.data, expected)
    torch.testing.assert_close(model.branches[0][0].attn.qkv.weight, state["blocks.2.attn.qkv.weight"])
    torch.testing.assert_close(model.shared_blocks[1].mlp.fc1.weight, state["blocks.1.mlp.fc1.weight"])
    # overlapping patches: one interpolation from the checkpoint grid to the strided grid, as TransReID
    strided = models.create_model("test_mm_vit", stride=4, pretrained=str(tmp_path / "vit.safetensors"))
    torch.testing.assert_close(strided.embed[0].pos_embed.data, resample_pos_embed(state["pos_embed"], (15, 7)))
    torch.testing.assert_close(strided.embed[0].proj.weight, state["patch_embed.proj.weight"])
    assert strided.embed[0].proj.stride == (4, 4)


def test_missing_file_and_offline_download_errors_say_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        VIReIDNet("test_resnet", pretrained=str(tmp_path / "nowhere.safetensors"))

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PretrainedWeightsError, match="pretrained='path/to/weights.safetensors'"):
        models.load_pretrained(torch.nn.Linear(2, 2), True, timm_name="resnet50.tv_in1k")


def test_read_state_dict_rejects_non_state_dicts(tmp_path):
    torch.save({"epoch": 3, "note": "not weights"}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="state dict"):
        read_state_dict(tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="pretrained must be"):
        models.load_pretrained(torch.nn.Linear(2, 2), 3)


def test_shape_mismatches_are_reported_not_loaded():
    target = torch.nn.Sequential(torch.nn.Linear(4, 3))
    before = copy.deepcopy(target.state_dict())
    with pytest.warns(UserWarning, match="shape mismatches"):
        report = models.load_pretrained(target, {"0.weight": torch.zeros(5, 4), "0.bias": torch.ones(3),
                                                 "extra": torch.zeros(1)})
    assert report.loaded == ("0.bias",) and report.unexpected == ("extra",) and len(report.mismatched) == 1
    torch.testing.assert_close(target.state_dict()["0.weight"], before["0.weight"])
    torch.testing.assert_close(target.state_dict()["0.bias"], torch.ones(3))
