"""Similarity CAMs against oracles: a model that only sees the left half, the ViT token-grid reshape, parameter
randomisation (Adebayo et al., 2018) and deletion (Samek et al., 2017) on a tiny trained model."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from workbench.models import MultiModalViT, create_model
from workbench.viz import cam


class LeftHalf(nn.Module):
    """Zero the right half of a (B, C, h, w) map: what comes after depends on the left half only."""

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[..., : x.shape[-1] // 2] = 1
        return x * mask


class LeftPoolCNN(nn.Module):
    """conv -> conv (stride 2) -> [left half] -> mean -> linear: the embedding depends on the left half only."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.left = LeftHalf()
        self.head = nn.Linear(16, 8)

    def forward(self, x):
        return self.head(self.left(self.features(x)).mean((2, 3)))


class TokenBlock(nn.Module):
    """A per-token block with a `norm1` (the layer the ViT guide hooks)."""

    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU())

    def forward(self, x):
        return x + self.mlp(self.norm1(x))


class LeftTokens(nn.Module):
    """Zero the patch tokens of the right half of a (h, w) grid (the CLS token too)."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def forward(self, t):
        h, w = self.grid
        keep = torch.zeros(h, w)
        keep[:, : w // 2] = 1
        return t * torch.cat([torch.zeros(1), keep.flatten()])[None, :, None]


class LeftPoolViT(nn.Module):
    """Patch embedding (stride <= patch) + CLS, a per-token block, then the mean of the left-half patch tokens."""

    def __init__(self, img=(128, 64), patch=8, stride=8, d=16):
        super().__init__()
        self.proj = nn.Conv2d(3, d, patch, stride)
        self.grid = ((img[0] - patch) // stride + 1, (img[1] - patch) // stride + 1)
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.block = TokenBlock(d)
        self.left = LeftTokens(self.grid)
        self.head = nn.Linear(d, 8)

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)
        t = self.left(self.block(torch.cat([self.cls.expand(len(x), -1, -1), t], dim=1)))
        return self.head(t[:, 1:].mean(1))


def _left_mass(m):
    return m[:, : m.shape[1] // 2].sum() / m.sum()


@pytest.mark.parametrize("cam_method", ["gradcam", "hirescam", "gradcam++", "scorecam"])
def test_cnn_cam_puts_its_mass_where_the_embedding_looks(cam_method):
    torch.manual_seed(0)
    model = LeftPoolCNN().eval()
    x, g = torch.randn(3, 32, 16), torch.randn(3, 32, 16)
    ref = cam.embed(model, {"x": g}, plain=True)
    # gradient x activation methods see it at the map before the mask; averaged-gradient methods after it
    layer = model.features if cam_method == "hirescam" else model.left
    maps = cam.compute_cam(model, {"x": x}, cam.SimilarityTarget(ref), cam_method=cam_method, plain=True,
                           target_layers=[layer])
    assert maps["x"].shape == (32, 16)
    assert maps["x"].max() > 0
    assert _left_mass(maps["x"]) > 0.95


def test_gradcam_is_not_spatially_faithful_before_the_mask():
    """Why the oracle hooks averaged-gradient methods after the mask: before it, Grad-CAM weights the right half's
    activations with gradients averaged over the left half (Draelos & Carin 2020), HiResCAM does not."""
    torch.manual_seed(0)
    model = LeftPoolCNN().eval()
    x, g = torch.randn(3, 32, 16), torch.randn(3, 32, 16)
    target = cam.SimilarityTarget(cam.embed(model, {"x": g}, plain=True))
    grad = cam.compute_cam(model, {"x": x}, target, plain=True, target_layers=[model.features])["x"]
    hires = cam.compute_cam(model, {"x": x}, target, plain=True, target_layers=[model.features],
                            cam_method="hirescam")["x"]
    assert _left_mass(grad) < 0.9 < _left_mass(hires)


@pytest.mark.parametrize("stride,grid", [(8, (16, 8)), (6, (21, 10))])
@pytest.mark.parametrize("cam_method", ["hirescam", "gradcam"])
def test_vit_cam_puts_its_mass_where_the_embedding_looks(stride, grid, cam_method):
    torch.manual_seed(0)
    model = LeftPoolViT(stride=stride).eval()
    assert model.grid == grid
    x, g = torch.randn(3, 128, 64), torch.randn(3, 128, 64)
    target = cam.SimilarityTarget(cam.embed(model, {"x": g}, plain=True))
    # HiResCAM at the block's norm1 (right-half tokens get no gradient); Grad-CAM after the token mask
    layer = model.block.norm1 if cam_method == "hirescam" else model.left
    maps = cam.compute_cam(model, {"x": x}, target, plain=True, cam_method=cam_method, target_layers=[layer],
                           reshape_transform=cam.TokenGridReshape(grid))
    assert maps["x"].shape == (128, 64)
    # pytorch-grad-cam stretches the token grid uniformly over the image; with overlapping patches that smears the
    # boundary column by a few pixels, hence 0.9 rather than 0.95
    assert _left_mass(maps["x"]) > (0.95 if stride == 8 else 0.9)


@pytest.mark.parametrize("grid", [(16, 8), (21, 10)])
def test_token_grid_reshape_round_trips_a_known_grid(grid):
    h, w = grid
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    code = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()  # (h*w, 2): token i is patch (i // w, i % w)
    tokens = torch.cat([torch.full((1, 2), -1.0), code])[None].repeat(2, 1, 1)  # (2, 1 + h*w, 2) with a CLS
    maps = cam.TokenGridReshape(grid)(tokens)
    assert maps.shape == (2, 2, h, w)
    assert torch.equal(maps[0, 0], rows.float()) and torch.equal(maps[0, 1], cols.float())
    back = cam.TokenGridReshape(grid).inverse(maps, tokens[:, :1])
    assert torch.equal(back, tokens)
    with pytest.raises(ValueError, match="patch grid"):
        cam.TokenGridReshape((w, h + 1))(tokens)


@pytest.mark.parametrize("stride,grid", [(16, (16, 8)), (12, (21, 10))])
def test_token_grid_reshape_inverts_the_vit_patch_embedding(stride, grid):
    """The reshape undoes MultiModalViT's own token order at 256x128, plain and overlapping patches."""
    vit = MultiModalViT("vit_tiny_patch16_224", embed_dim=16, depth=1, num_heads=2, img_size=(256, 128),
                        patch_size=16, stride=stride, modalities=("rgb",), drop_path_rate=0.0)
    assert vit.grid_size == grid
    emb = vit.embed[0]
    x = torch.randn(1, 3, 256, 128)
    tokens = emb(x)  # CLS + patches, position embedding added
    pos = emb.pos_embed
    conv = emb.proj(x)
    maps = cam.TokenGridReshape(vit.grid_size)(tokens - pos)
    torch.testing.assert_close(maps, conv)


def test_vit_target_layer_is_the_last_norm1_and_slices_shared_blocks():
    separate = create_model("test_mm_vit", shared_depth=2)
    layer, reshape = cam.vit_target_layer(separate, "nir")
    assert layer is separate.branches[1][-1].norm1 and reshape.chunk is None and reshape.grid == (8, 4)
    shared = create_model("test_mm_vit", shared_depth=4)
    layer, reshape = cam.vit_target_layer(shared, "tir")
    assert layer is shared.shared_blocks[-1].norm1 and reshape.chunk == (2, 3)
    t = torch.arange(3 * 2, dtype=torch.float32).repeat_interleave(33 * 4).reshape(6, 33, 4)  # batch row b = b
    assert reshape(t)[:, 0, 0, 0].tolist() == [4.0, 5.0]


def test_multimodal_cam_gives_one_map_per_modality_and_only_that_modality_moves():
    torch.manual_seed(0)
    model = create_model("test_mm_vit", num_classes=4).eval()
    q = {m: torch.randn(3, 64, 32) for m in model.modalities}
    g = {m: torch.randn(3, 64, 32) for m in model.modalities}
    pair = cam.pair_cams(model, q, g)
    assert set(pair.query_maps) == set(pair.gallery_maps) == set(model.modalities)
    assert all(m.shape == (64, 32) and np.isfinite(m).all() and m.max() > 0 for m in pair.query_maps.values())
    full = torch.nn.functional.cosine_similarity(model({k: v[None] for k, v in q.items()}).feats,
                                                 model({k: v[None] for k, v in g.items()}).feats)
    assert pair.similarity == pytest.approx(float(full[0].detach()), abs=1e-5)


def test_vi_cnn_cam_and_modality_specific_stage():
    model = create_model("test_vi_resnet", num_classes=4).eval()
    q, g = {"ir": torch.randn(3, 64, 32)}, {"rgb": torch.randn(3, 64, 32)}
    maps = cam.compute_cam(model, q, cam.SimilarityTarget(cam.embed(model, g)), stage="stem")
    assert maps["ir"].shape == (64, 32) and maps["ir"].max() == pytest.approx(1.0, abs=1e-5)
    assert cam.cnn_target_layer(model, "stem", "ir") is model.specific[1]["stem"]
    with pytest.raises(ValueError, match="modality"):
        cam.cnn_target_layer(model, "stem")
    with pytest.raises(ValueError, match="cam_method"):
        cam.compute_cam(model, q, cam.SimilarityTarget(torch.ones(96)), cam_method="bogus")


def test_hooks_are_removed_even_when_the_cam_fails():
    model = LeftPoolCNN().eval()
    with pytest.raises(ValueError, match="dimensions"):
        cam.compute_cam(model, {"x": torch.randn(3, 32, 16)}, cam.SimilarityTarget(torch.ones(5)), plain=True,
                        target_layers=[model.left])
    assert not model.left._forward_hooks


# -- a tiny model trained on synthetic identities: a coloured 8x8 patch and a random distractor on noise -------------

class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.top = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(32, 16)

    def forward(self, x):
        return self.head(self.top(self.body(x)).mean((2, 3)))


COLOURS = torch.tensor([[2.0, -2, -2], [-2, 2, -2], [-2, -2, 2], [2, 2, -2], [-2, 2, 2], [2, -2, 2]])


def _images(labels, gen):
    x = 0.3 * torch.randn(len(labels), 3, 32, 16, generator=gen)
    for i, lab in enumerate(labels.tolist()):
        r, c = torch.randint(0, 24, (1,), generator=gen).item(), torch.randint(0, 8, (1,), generator=gen).item()
        x[i, :, r:r + 8, c:c + 8] = COLOURS[lab][:, None, None]
        r, c = torch.randint(0, 26, (1,), generator=gen).item(), torch.randint(0, 10, (1,), generator=gen).item()
        x[i, :, r:r + 6, c:c + 6] += 1.5 * torch.randn(3, 1, 1, generator=gen)  # a distractor of random colour
    return x


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net, clf = TinyNet(), nn.Linear(16, len(COLOURS))
    opt = torch.optim.Adam(list(net.parameters()) + list(clf.parameters()), lr=1e-2)
    for _ in range(40):
        y = torch.randint(0, len(COLOURS), (32,), generator=gen)
        loss = nn.functional.cross_entropy(clf(net(_images(y, gen))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels = torch.arange(len(COLOURS))
    return net.eval(), _images(labels, gen), _images(labels, gen)  # queries and same-identity galleries


def _cams(model, queries, galleries):
    out = []
    for q, g in zip(queries, galleries):
        target = cam.SimilarityTarget(cam.embed(model, {"x": g}, plain=True))
        out.append(cam.compute_cam(model, {"x": q}, target, plain=True, target_layers=[model.top])["x"])
    return out


def test_cam_changes_when_the_top_layers_are_randomised(trained):
    """Adebayo et al. (2018), cascading randomisation: re-initialise the layers above the first conv, from the top.
    The maps must change (rank correlation well below 1) and stop finding what the trained model uses (deleting
    the randomised model's top pixels hurts the trained model's similarity less)."""
    net, queries, galleries = trained
    cams = _cams(net, queries, galleries)
    assert all(np.array_equal(a, b) for a, b in zip(cams, _cams(net, queries, galleries)))  # deterministic
    randomised = TinyNet()
    randomised.load_state_dict(net.state_dict())
    torch.manual_seed(1)
    for layer in (randomised.head, randomised.top[0], randomised.body[2]):
        layer.reset_parameters()
    rand_cams = _cams(randomised.eval(), queries, galleries)
    rho = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(cams, rand_cams)]
    assert np.nanmean(rho) < 0.6, rho

    def drop(maps):
        return np.mean([cam.deletion_check(net, {"x": q}, cam.embed(net, {"x": g}, plain=True), c, plain=True).cam_drop
                        for q, g, c in zip(queries, galleries, maps)])

    assert drop(rand_cams) < 0.5 * drop(cams)


def test_deleting_top_cam_pixels_lowers_similarity_more_than_random_pixels(trained):
    net, queries, galleries = trained
    cams = _cams(net, queries, galleries)
    results = [cam.deletion_check(net, {"x": q}, cam.embed(net, {"x": g}, plain=True), c, fraction=0.1,
                                  plain=True) for q, g, c in zip(queries, galleries, cams)]
    cam_drop = np.mean([r.cam_drop for r in results])
    random_drop = np.mean([r.random_drop for r in results])
    assert cam_drop > 2 * random_drop and cam_drop > 0.05, (cam_drop, random_drop)


def test_single_modality_vit_takes_the_multimodal_path():
    model = create_model("test_mm_vit", modalities=("tir",)).eval()
    x = {"tir": torch.randn(3, 64, 32)}
    emb = cam.embed(model, x)
    torch.testing.assert_close(emb, model({"tir": x["tir"][None]}).feats[0].detach())
    maps = cam.compute_cam(model, x, cam.SimilarityTarget(emb + 0.1))
    assert list(maps) == ["tir"] and maps["tir"].shape == (64, 32)
