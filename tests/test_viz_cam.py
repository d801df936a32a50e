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


# -- today's algorithm as the oracle: one pytorch-grad-cam call (forward + full backward) per modality and pair -------

def old_embed(model, images, *, method=None, camid=None, plain=False):
    """The embedding as the one-map-at-a-time path computed it: one sample, no gradient."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    cams = None if camid is None else torch.tensor([camid], device=device)
    m, x = next(iter(images.items()))
    context = None if plain or not (len(images) > 1 or hasattr(model, "modalities")) else {
        k: v[None].to(device) for k, v in images.items()}
    with torch.no_grad():
        out = cam.EmbeddingModel(model, None if plain else m, method, context=context, camids=cams)(x[None].to(device))
    model.train(was)
    return out[0]


def old_compute_cam(model, images, target, *, method=None, cam_method="gradcam", camid=None, stage="layer4",
                    target_layers=None, reshape_transform=None, plain=False, scorecam_batch=32):
    """One `BaseCAM.__call__` per modality with the hooks on that modality's target layers."""
    import contextlib
    import io

    cls = cam._cam_class(cam_method)
    device = next(model.parameters()).device
    was = model.training
    cams_t = None if camid is None else torch.tensor([camid], device=device)
    context = None if plain or not (len(images) > 1 or hasattr(model, "modalities")) else {
        k: v[None].to(device) for k, v in images.items()}
    maps = {}
    try:
        for m, x in images.items():
            wrapper = cam.EmbeddingModel(model, None if plain else m, method, context=context, camids=cams_t)
            if target_layers is None:
                layers, reshape = cam.default_target(model, m, stage)
            else:
                layers, reshape = list(target_layers), reshape_transform
            engine = cls(model=wrapper, target_layers=layers, reshape_transform=reshape)
            if cam_method == "scorecam":
                engine.batch_size = scorecam_batch
            try:
                quiet = contextlib.redirect_stderr(io.StringIO()) if cam_method == "scorecam" else \
                    contextlib.nullcontext()
                with torch.enable_grad(), quiet:
                    grayscale = engine(input_tensor=x[None].to(device), targets=[target])
            finally:
                engine.activations_and_grads.release()
            maps[m] = np.nan_to_num(grayscale[0].astype(np.float32))
    finally:
        model.train(was)
    return maps


def old_query_cams(model, query, galleries, *, both=True, **kwargs):
    """[(query maps, gallery maps, cosine)] per gallery sample, each pair on its own as `pair_cams` did."""
    out = []
    for g in galleries:
        q_emb, g_emb = old_embed(model, query), old_embed(model, g)
        q_maps = old_compute_cam(model, query, cam.SimilarityTarget(g_emb), **kwargs)
        g_maps = old_compute_cam(model, g, cam.SimilarityTarget(q_emb), **kwargs) if both else {}
        out.append((q_maps, g_maps, float(torch.nn.functional.cosine_similarity(q_emb[None], g_emb[None])[0])))
    return out


def _assert_same_maps(new, old):
    assert list(new) == list(old)
    for m in old:
        assert new[m].dtype == old[m].dtype and new[m].shape == old[m].shape
        np.testing.assert_allclose(new[m], old[m], rtol=0, atol=1e-6, err_msg=m)


ORACLE_CASES = [(name, {}, cam_method) for name in ("test_mm_vit", "test_vi_resnet") for cam_method in cam.CAM_METHODS
                ] + [("test_mm_vit", {"shared_depth": depth}, cam_method) for depth in (0, 4)  # separate ViTs, one ViT
                     for cam_method in ("gradcam", "eigencam")]


@pytest.mark.parametrize("name,kwargs,cam_method", ORACLE_CASES)
def test_one_forward_per_sample_gives_the_one_map_at_a_time_maps(name, kwargs, cam_method, monkeypatch):
    """All modalities' maps from one forward (hooks on every modality's target layer), the gallery samples batched,
    one backward per target: the same maps as one pytorch-grad-cam call per modality and pair."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, **kwargs).eval()
    gen = torch.Generator().manual_seed(1)
    n = 2 if cam_method == "scorecam" else 3  # ScoreCAM: one forward per channel and map
    mods = getattr(model, "modalities", None)
    if mods is None:  # visible-infrared: an infrared query against visible gallery images
        query, galleries = {"ir": torch.randn(3, 64, 32, generator=gen)}, [
            {"rgb": torch.randn(3, 64, 32, generator=gen)} for _ in range(n)]
    else:
        query = {m: torch.randn(3, 64, 32, generator=gen) for m in mods}
        galleries = [{m: torch.randn(3, 64, 32, generator=gen) for m in mods} for _ in range(n)]
    both = cam_method in ("gradcam", "eigencam")  # the gallery side too (batched, one target each)
    # oneDNN's convolution rounds a batch of images differently from one image (~1e-7 of the embedding, up to
    # ~6e-6 on a normalised map); PyTorch's own kernel does not, so the CNN is compared with it
    if mods is None:
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    new = cam.query_cams(model, query, galleries, both=both, cam_method=cam_method)
    old = old_query_cams(model, query, galleries, both=both, cam_method=cam_method)
    assert len(new) == len(old) == n
    for pair, (q_maps, g_maps, sim) in zip(new, old):
        _assert_same_maps(pair.query_maps, q_maps)
        _assert_same_maps(pair.gallery_maps, g_maps)
        assert pair.similarity == pytest.approx(sim, abs=1e-6)
        assert not pair.query_maps.notes  # every modality reaches the embedding
    assert all(m.max() > 0 for p in new for m in p.query_maps.values())


@pytest.mark.parametrize("cam_method", ["gradcam", "hirescam"])
def test_plain_model_with_given_layers_gives_the_one_map_at_a_time_maps(cam_method):
    torch.manual_seed(0)
    model = LeftPoolViT(stride=6).eval()
    x, g = torch.randn(3, 128, 64), torch.randn(3, 128, 64)
    target = cam.SimilarityTarget(cam.embed(model, {"x": g}, plain=True))
    kwargs = dict(plain=True, cam_method=cam_method, target_layers=[model.block.norm1, model.left],
                  reshape_transform=cam.TokenGridReshape(model.grid))
    _assert_same_maps(cam.compute_cam(model, {"x": x}, target, **kwargs),
                      old_compute_cam(model, {"x": x}, target, **kwargs))


# -- a modality the embedding does not use gets an empty map and a note, whatever the method ---------------------------

class ThermalOnly:
    """An eval forward whose retrieval embedding is the thermal branch's CLS feature alone."""

    def forward_eval(self, model, images, modality, camids=None):
        from workbench.models.output import ReIDOutput

        return ReIDOutput(feats=model(images, camids=camids).parts["cls_tir"])

    def retrieval_branches(self, out):
        return {"feats": out.feats}


@pytest.mark.parametrize("cam_method", cam.CAM_METHODS)
@pytest.mark.parametrize("shared_depth", [2, 4])
def test_a_modality_the_embedding_does_not_use_gets_an_empty_map_and_a_note(shared_depth, cam_method):
    """Per-modality last blocks (L_s = 2): the other modalities' target layers are outside the embedding's graph;
    one shared ViT (L_s = 4): they are slices of the same tensor. Either way: zeros and the note, for every method
    (ScoreCAM, which perturbs the image, drew a full-strength map before), and the thermal map is the one the
    one-map-at-a-time path computes at the thermal layer."""
    torch.manual_seed(0)
    model = create_model("test_mm_vit", shared_depth=shared_depth).eval()
    gen = torch.Generator().manual_seed(2)
    q = {m: torch.randn(3, 64, 32, generator=gen) for m in model.modalities}
    g = {m: torch.randn(3, 64, 32, generator=gen) for m in model.modalities}
    method = ThermalOnly()
    pair = cam.pair_cams(model, q, g, method=method, cam_method=cam_method, scorecam_batch=64)
    for maps in (pair.query_maps, pair.gallery_maps):
        assert maps.notes == {"rgb": cam.UNREACHED, "nir": cam.UNREACHED}
        assert not maps["rgb"].any() and not maps["nir"].any() and maps["rgb"].shape == (64, 32)
        assert maps["tir"].max() > 0
    layer, reshape = cam.vit_target_layer(model, "tir")
    g_emb = cam.embed(model, g, method=method)
    expected = old_compute_cam(model, q, cam.SimilarityTarget(g_emb), method=method, cam_method=cam_method,
                               target_layers=[layer], reshape_transform=reshape, scorecam_batch=64)["tir"]
    np.testing.assert_allclose(pair.query_maps["tir"], expected, rtol=0, atol=1e-6)
    # the decision is structural: the embedding is bit-for-bit the same whatever the other modalities show
    blank = {m: (x if m == "tir" else torch.zeros_like(x)) for m, x in q.items()}
    assert torch.equal(cam.embed(model, blank, method=method), cam.embed(model, q, method=method))


def test_the_note_is_drawn_instead_of_an_empty_map():
    maps = cam.CamMaps({"rgb": np.zeros((8, 4), np.float32)}, {"rgb": cam.UNREACHED})
    ax = cam.plot_cam(torch.zeros(3, 8, 4), maps["rgb"], title="query", note=maps.notes["rgb"])
    assert "does not reach the embedding" in ax.get_title() and "(empty map)" not in ax.get_title()
    pair = cam.PairCAM(maps, cam.CamMaps(), 0.5, {"rgb": torch.zeros(3, 8, 4)}, {"rgb": torch.zeros(3, 8, 4)})
    axes = cam.plot_pair_cams([pair])
    assert "does not reach the embedding" in axes[1][0].get_title()


# -- the target is a cosine: the map against an independent formula, with an embedding whose norm varies ---------------

class LinearEmbedding(nn.Module):
    """x (B, 3, 4, 2) -> 1x1 conv to 5 channels (the target layer, at the image size, so no resize) -> flatten ->
    linear to 6: an embedding whose norm grows with the input, so a dot product and a cosine differ."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        self.head = nn.Linear(5 * 4 * 2, 6)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def _normalise(m):
    m = m - m.min()
    return m / (1e-7 + m.max())


@pytest.mark.parametrize("cam_method", ["gradcam", "hirescam"])
def test_similarity_target_is_the_cosine_not_the_dot_product(cam_method):
    torch.manual_seed(3)
    model = LinearEmbedding().double().eval()
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        acts = model.conv(x[None])[0].numpy()  # (5, 4, 2)
        f = model(x[None])[0].numpy()
    w = model.head.weight.detach().numpy()  # (6, 40)
    ref = f + 0.3 * np.random.default_rng(0).normal(size=6) * np.linalg.norm(f)  # a reference near the embedding
    target = cam.SimilarityTarget(torch.from_numpy(ref))
    r_hat = ref / np.linalg.norm(ref)
    n = np.linalg.norm(f)
    assert float(target(torch.from_numpy(f))) == pytest.approx(f @ r_hat / n, rel=1e-6)
    assert float(target(torch.from_numpy(3 * f))) == pytest.approx(float(target(torch.from_numpy(f))), rel=1e-6)

    def expected(d_f):  # the map for the gradient d target / d embedding, by hand
        grad = (w.T @ d_f).reshape(acts.shape)  # (5, 4, 2)
        if cam_method == "gradcam":
            m = (grad.mean(axis=(1, 2))[:, None, None] * acts).sum(0)
        else:
            m = (grad * acts).sum(0)
        return _normalise(np.maximum(m, 0))

    cosine = expected(r_hat / n - (f @ r_hat) * f / n ** 3)  # d cos(f, r) / d f
    dot = expected(r_hat)  # what a dot-product target would give
    assert np.abs(cosine - dot).max() > 0.1  # the two targets draw different maps here
    got = cam.compute_cam(model, {"x": x}, target, plain=True, cam_method=cam_method, target_layers=[model.conv])
    np.testing.assert_allclose(got["x"], cosine, atol=1e-5)
