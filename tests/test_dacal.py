"""DACAL / MUSPE (baselines/dacal.py) and the shared global U-Net trunk (baselines/layers.py)."""

from __future__ import annotations

import itertools
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from baselines.critics import AdaptiveLambda
from baselines.dacal import (
    DACAL,
    DESIGN_NOTE,
    FUSION_MAPS,
    MAX_GAIN,
    DACALEnhancer,
    fuse,
    map_channels,
    pyramid_sizes,
    seam_score,
    split_maps,
)
from baselines.layers import GlobalUNet, symmetric_pad

pytestmark = pytest.mark.usefixtures("one_thread")

FUSIONS = tuple(FUSION_MAPS)
#: Every small DACAL below: widths that keep a training step at a few milliseconds.
TINY = {"width": 4, "critic_width": 4, "critic_features": 8, "critic_projections": 2, "w_content": 0.0,
        "coarse_size": 16, "critic_steps": 2, "lambda_cooldown": 2}


def tiny_batch(seed: int = 0, size: int = 32, batch: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input": torch.rand(batch, 3, size, size, generator=g),
            "target": torch.rand(batch, 3, size, size, generator=g), "key": [str(i) for i in range(batch)]}


class TinyUnpaired(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> dict:
        item = tiny_batch(index, batch=1)
        return {"input": item["input"][0], "target": item["target"][0], "key": str(index)}


def fit(model: DACAL, generator_steps: int) -> None:
    model.hparams.max_iterations = None
    model.max_iterations = generator_steps
    trainer = L.Trainer(max_steps=10_000, max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, DataLoader(TinyUnpaired(), batch_size=2))


# --------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------


def test_fusions_follow_their_formulas():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, 7, generator=g)
    a, b, c = (torch.randn(2, n, 5, 7, generator=g) for n in (3, 3, 1))
    r, m, w = torch.tanh(a), MAX_GAIN ** torch.tanh(b), torch.sigmoid(c)
    maps = {"add": a, "mul": b, "mul_then_add": torch.cat([b, a], 1), "parallel": torch.cat([a, b, c], 1)}
    expected = {"add": x + r, "mul": x * m, "mul_then_add": x * m + r,
                "parallel": w * (x * m) + (1 - w) * (x + r)}
    for fusion in FUSIONS:
        assert maps[fusion].shape[1] == map_channels(fusion)
        assert torch.allclose(fuse(x, maps[fusion], fusion), expected[fusion], atol=1e-6), fusion
        # Zero maps are the identity (r = 0, M = 1; any W).
        assert torch.allclose(fuse(x, torch.zeros_like(maps[fusion]), fusion), x, atol=1e-6), fusion
    gain = split_maps(torch.tensor([-50.0, 0.0, 50.0]).view(1, 3, 1, 1), "mul")["multiplicative"].flatten()
    assert gain[0] == pytest.approx(1 / MAX_GAIN, rel=1e-4) and gain[1] == 1
    assert gain[2] == pytest.approx(MAX_GAIN, rel=1e-4)
    with pytest.raises(ValueError, match="needs 7"):
        fuse(x, a, "parallel")


def test_pyramid_sizes_have_a_fixed_number_of_levels():
    assert pyramid_sizes(64, 64, 32) == [(32, 32), (64, 64)]
    assert pyramid_sizes(1411, 1411, 32) == [(32, 32), (1411, 1411)]
    assert pyramid_sizes(600, 90, 100, levels=3) == [(100, 15), (245, 37), (600, 90)]
    assert pyramid_sizes(30, 20, 32) == [(30, 20)]  # already coarse: one level
    assert pyramid_sizes(512, 384, 256, levels=1) == [(512, 384)]
    with pytest.raises(ValueError):
        pyramid_sizes(10, 10, 0)


def test_seam_score_detects_tile_seams():
    h = w = 96
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    ramp = (0.002 * xx + 0.003 * yy).expand(1, 3, h, w)  # locally linear: no jump anywhere
    offsets = torch.tensor([[0.0, 0.1, -0.05], [0.08, -0.1, 0.02], [0.0, 0.05, 0.1]], dtype=torch.float64)
    tiled = ramp + offsets.repeat_interleave(32, 0).repeat_interleave(32, 1)
    assert seam_score(ramp, 32).item() < 1e-12
    assert seam_score(tiled, 32).item() > 0.02
    # A step that is not on the tile grid is not counted as a seam of that grid.
    off_grid = ramp + 0.1 * (xx >= 48)
    assert seam_score(off_grid, 32).item() < 1e-12
    assert seam_score(off_grid, 48).item() > 0.01


# --------------------------------------------------------------------------------------------
# Shared trunk: the global U-Net in layers.py
# --------------------------------------------------------------------------------------------


def test_symmetric_pad_matches_numpy():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 5), (1, 3)), mode="symmetric")
    assert np.array_equal(symmetric_pad(x, 1, 3, 2, 5).numpy(), expected)


def test_global_unet_valid_branch_reproduces_dpe_generator():
    from baselines import dpe

    torch.manual_seed(0)
    reference = dpe.GlobalUNet(64)
    shared = GlobalUNet(3, 3, 16, activation="selu", global_branch="valid", input_size=64)
    shared.load_state_dict(reference.state_dict(), strict=True)  # same names and shapes
    x = torch.rand(2, 3, 64, 64)
    for mode in (True, False):
        reference.train(mode)
        shared.train(mode)
        assert torch.allclose(reference(x), x + shared(x), atol=1e-6)


def test_global_unet_mean_branch_takes_any_size():
    net = GlobalUNet(5, 7, 4, activation="relu", global_branch="mean").eval()
    for size in ((37, 53), (16, 100), (9, 9)):
        assert net(torch.rand(1, 5, *size)).shape == (1, 7, *size)


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------

#: The 6 factors: fusion (4 values) and five switches.
SWITCHES = ("frequency_split", "sliced", "two_sided", "adaptive_penalty", "multiscale")
#: A pairwise covering design (8 of the 128 combinations): each fusion appears twice with
#: complementary switches, and the switch columns of the first rows — 0000, 0001, 0010, 0100,
#: 1000 across the four fusions — are pairwise neither equal nor complementary, so every pair of
#: values of every two factors occurs (checked below). Interactions the code has are pairwise:
#: fusion × multiscale (maps and their up-sampling), frequency_split × sliced (which critics get
#: heads), sliced × adaptive / penalty (the critic loss); no code path depends on three at once.
FIRST_ROWS = {"add": (0, 0, 0, 0, 1), "mul": (0, 0, 0, 1, 0), "mul_then_add": (0, 0, 1, 0, 0),
              "parallel": (0, 1, 0, 0, 0)}
COVERING = [(f, bits) for f, first in FIRST_ROWS.items() for bits in (first, tuple(1 - b for b in first))]


def dacal_args(fusion: str, bits: tuple[int, ...]) -> dict:
    switches = dict(zip(SWITCHES, map(bool, bits), strict=True))
    return {**TINY, "fusion": fusion, "frequency_split": switches["frequency_split"], "sliced": switches["sliced"],
            "penalty": "two_sided" if switches["two_sided"] else "one_sided",
            "adaptive_penalty": switches["adaptive_penalty"], "multiscale": switches["multiscale"]}


def test_covering_design_covers_every_pair():
    values = [FUSIONS, *[(0, 1)] * len(SWITCHES)]
    rows = [(f, *bits) for f, bits in COVERING]
    for i, j in itertools.combinations(range(len(values)), 2):
        seen = {(row[i], row[j]) for row in rows}
        assert seen == set(itertools.product(values[i], values[j])), (i, j)


def test_every_combination_builds_and_enhances():
    image = torch.rand(1, 3, 37, 53)
    for fusion in FUSIONS:
        for bits in itertools.product((0, 1), repeat=len(SWITCHES)):
            model = DACAL(**dacal_args(fusion, bits)).eval()
            with torch.no_grad():
                out = model(image)
            assert out.shape == image.shape and torch.isfinite(out).all()
            # The head starts near zero, so every variant starts near the identity.
            assert (out - image).abs().max() < 0.05, (fusion, bits)
            assert set(model.critics) == ({"color", "texture"} if bits[0] else {"image"})


@pytest.mark.parametrize(("fusion", "bits"), COVERING, ids=lambda v: v if isinstance(v, str) else "".join(map(str, v)))
def test_covering_combinations_train(fusion, bits):
    torch.manual_seed(0)
    model = DACAL(**dacal_args(fusion, bits))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fit(model, generator_steps=2)
    assert model.iterations == 2 and int(model.critic_updates) == 4
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter).all(), name
    moved = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert any(n.startswith("generator.") for n in moved) and any(n.startswith("critics.") for n in moved)
    for critic in model.critics.values():
        if critic.head is not None:
            assert float(critic.head.orthogonality_error()) < 1e-4


class RecordingDACAL(DACAL):
    """Records, at the pre-step hook, that the gradients exist and no step has happened yet."""

    def critic_loss(self, batch):
        self._weights_at_loss = {n: c.head.weight.detach().clone() for n, c in self.critics.items()}
        return super().critic_loss(batch)

    def before_critic_optimizer_step(self):
        self.hook_calls = getattr(self, "hook_calls", 0) + 1
        for name, critic in self.critics.items():
            assert critic.head.weight.grad is not None
            assert torch.equal(critic.head.weight.detach(), self._weights_at_loss[name])  # not stepped yet
        super().before_critic_optimizer_step()
        for critic in self.critics.values():
            w, grad = critic.head.weight.detach(), critic.head.weight.grad
            inner = w.transpose(-1, -2) @ grad
            self.max_asymmetry = max(getattr(self, "max_asymmetry", 0.0),
                                     float((inner + inner.transpose(-1, -2)).abs().max()))


def test_stiefel_projection_runs_before_each_critic_step_and_keeps_orthogonality():
    torch.manual_seed(1)
    model = RecordingDACAL(**{**TINY, "lr": 1e-2})  # a large step: orthogonality is really tested
    fit(model, generator_steps=6)
    assert model.hook_calls == int(model.critic_updates) == 12
    assert model.max_asymmetry < 1e-5  # the gradient the optimiser saw was tangent
    for critic in model.critics.values():
        assert float(critic.head.orthogonality_error()) < 1e-4


def test_adaptive_lambda_gets_the_unweighted_synced_penalty():
    torch.manual_seed(2)
    model = DACAL(**{**TINY, "penalty": "two_sided", "lambda_initial": 1000.0})
    fed = []

    def fake_sync(value):  # stands in for the DDP mean: records the input, returns another value
        fed.append(value.detach().clone())
        return value * 0 + 0.5

    model.synced_mean = fake_sync
    batch = tiny_batch()
    for step in range(2):
        loss, terms = model.critic_loss(batch)
        # Single scale: loss = Σ_critics (−distance + λ·penalty); so "penalty" is the unweighted one.
        rebuilt = sum(-terms[f"{n}_distance"] + 1000.0 * terms[f"{n}_penalty"] for n in model.critics)
        assert loss.item() == pytest.approx(rebuilt.item(), rel=1e-5, abs=1e-6)
        model.after_critic_step()
        assert [f.item() for f in fed[-2:]] == pytest.approx([terms["color_penalty"].item(),
                                                              terms["texture_penalty"].item()])
    for adapter in model.lambdas.values():
        assert isinstance(adapter, AdaptiveLambda)
        # The first update is ignored (DPE), the second averages the *synced* value 0.5.
        assert float(adapter.average) == pytest.approx((1 - 0.99) * 0.5)
        assert float(adapter()) == 1000.0
    assert all(v.item() > 0 for v in fed)  # non-zero penalties: the checks above are not vacuous


def test_lambda_grows_on_a_scripted_penalty_sequence_only_when_adaptive():
    for adaptive in (True, False):
        model = DACAL(**{**TINY, "adaptive_penalty": adaptive, "lambda_initial": 1.0})
        model._penalties = {name: torch.tensor(0.0) for name in model.critics}
        values = [10.0] + [2.0] * 5  # first ignored; then m = 0.02, 0.0398, 0.0594 > 0.05 → λ × 2
        history = []
        for value in values:
            model._penalties = {name: torch.tensor(value) for name in model.critics}
            model.after_critic_step()
            history.append(float(model.lambdas["color"]()))
        assert history == ([1.0, 1.0, 1.0, 2.0, 2.0, 2.0] if adaptive else [1.0] * 6)


def test_multiscale_runs_the_same_levels_in_training_and_at_full_resolution():
    torch.manual_seed(3)
    enhancer = DACALEnhancer(width=4, fusion="parallel", multiscale=True, coarse_size=16, levels=2).eval()
    for size in ((32, 32), (300, 200)):
        levels = enhancer.levels(torch.rand(1, 3, *size))
        assert len(levels) == 2 and max(levels[0][0].shape[-2:]) == 16 and levels[-1][1].shape[-2:] == size
    parts = enhancer.components(torch.rand(1, 3, 40, 24))
    assert set(parts) == {"additive_component", "additive_map", "multiplicative_component", "multiplicative_map",
                          "fusion_weight", "fused"}
    assert ((parts["multiplicative_component"] > 1 / MAX_GAIN) & (parts["multiplicative_component"] < MAX_GAIN)).all()


def enhance_tiled(model: DACAL, image: torch.Tensor, tile: int) -> torch.Tensor:
    """WESPE-style patch-wise inference: non-overlapping tiles enhanced alone and stitched."""
    out = torch.empty_like(image)
    for top in range(0, image.shape[-2], tile):
        for left in range(0, image.shape[-1], tile):
            window = (..., slice(top, top + tile), slice(left, left + tile))
            out[window] = model.enhance(image[window])
    return out


def test_multiscale_whole_image_has_no_seams_unlike_patchwise_inference():
    torch.manual_seed(4)
    model = DACAL(**{**TINY, "multiscale": True})
    h = w = 96
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    image = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.6 - 0.3 * xx * yy]).unsqueeze(0)
    # Make the output depend on context, as a trained enhancer's does (the fresh one is ≈ the
    # identity), and give BatchNorm the running statistics training would have given it.
    with torch.no_grad():
        model.generator.trunk.out.weight.normal_(0, 0.3)
        for _ in range(30):
            model.generator(torch.cat([image, torch.rand(3, 3, h, w)]))
    model.eval()
    with torch.no_grad():
        whole = model.enhance(image)
        patches = enhance_tiled(model, image, 32)
    assert (whole - image).abs().mean() > 0.02  # the model does change the image
    whole_seams, patch_seams = seam_score(whole, 32).item(), seam_score(patches, 32).item()
    print(f"seam score whole {whole_seams:.5f} patch-wise {patch_seams:.5f}")
    assert patch_seams > 3 * whole_seams, (whole_seams, patch_seams)


def test_proxy_notes_and_full_resolution_describe_the_run():
    single = DACAL(**TINY)
    assert single.proxy_notes() == [DESIGN_NOTE] and "whole image" in single.full_resolution
    assert single.content_loss is None  # w_content 0 builds no VGG
    multi = DACAL(**{**TINY, "multiscale": True, "w_content": 1.0, "content_backbone": "random"})
    assert len(multi.proxy_notes()) == 2 and "random" in multi.proxy_notes()[1]
    assert "coarse to fine" in multi.full_resolution and "16 px" in multi.full_resolution
    with pytest.raises(ValueError, match="sliced"):
        DACAL(**{**TINY, "sliced": False, "feature_penalty_weight": 10.0})


def test_feature_penalty_enters_the_critic_loss():
    torch.manual_seed(5)
    plain = DACAL(**TINY)
    with_penalty = DACAL(**{**TINY, "feature_penalty_weight": 10.0})
    with_penalty.load_state_dict(plain.state_dict())
    batch = tiny_batch()
    loss_plain, _ = plain.critic_loss(batch)
    loss, terms = with_penalty.critic_loss(batch)
    assert "color_feature_penalty" in terms and terms["color_feature_penalty"] > 0
    assert loss.item() != pytest.approx(loss_plain.item())
