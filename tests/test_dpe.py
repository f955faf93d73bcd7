"""DPE: padding helpers, sizes, iBN, the adaptive λ rule, checkpoints, padded-region invariance."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from baselines.critics import AdaptiveLambda
from baselines.dpe import (
    DPE,
    DPECritic,
    GlobalUNet,
    crop_rect,
    fit_long_side,
    linear_decay_factor,
    pad_to_canvas,
    symmetric_pad,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`"),
    pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
    pytest.mark.usefixtures("one_thread"),
]

S = 64  # smallest canvas: every test but the size checks runs here


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth random images in [0.05, 0.95]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * 0.9 + 0.05


class TinyUnpaired(Dataset):
    """A fixed list of unpaired samples (input and target of different sizes)."""

    def __init__(self, n: int = 4, input_hw: tuple[int, int] = (40, 48), target_hw: tuple[int, int] = (56, 36)):
        self.x = images(n, *input_hw, seed=1)
        self.y = images(n, *target_hw, seed=2)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"input": self.x[i], "target": self.y[i], "key": f"k{i}"}


def trainer(max_steps: int = -1, max_epochs: int | None = None) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=max_epochs, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0)


# --------------------------------------------------------------------------------------------
# Pure helpers against independent references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pads", [(1, 1, 2, 2), (0, 5, 0, 9), (7, 3, 11, 0)])
def test_symmetric_pad_matches_numpy(pads):
    left, right, top, bottom = pads
    x = torch.rand(2, 3, 4, 5)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="symmetric")
    np.testing.assert_array_equal(symmetric_pad(x, left, right, top, bottom).numpy(), expected)


def test_canvas_fitting_and_cropping():
    big = torch.rand(1, 3, 700, 900)
    fitted = fit_long_side(big, 512)
    assert fitted.shape[-2:] == (398, 512)  # round(700 * 512 / 900)
    np.testing.assert_allclose(fitted.mean().item(), big.mean().item(), atol=1e-3)  # area keeps the mean
    small = torch.rand(1, 3, 30, 20)
    assert fit_long_side(small, 64) is small
    canvas, rect = pad_to_canvas(small, 64)
    assert canvas.shape[-2:] == (64, 64) and rect == (30, 20)
    assert torch.equal(crop_rect(canvas, rect), small)
    expected = np.pad(small.numpy(), ((0, 0), (0, 0), (0, 34), (0, 44)), mode="symmetric")
    np.testing.assert_array_equal(canvas.numpy(), expected)
    with pytest.raises(ValueError, match="does not fit"):
        pad_to_canvas(torch.rand(1, 3, 65, 10), 64)


def test_lr_decay_schedule():
    # Linear from 1 at epoch 75 to 0 at epoch 150, written out by hand.
    for epoch, factor in [(0, 1.0), (74, 1.0), (75, 1.0), (90, 0.8), (149, 1 / 75), (150, 0.0), (300, 0.0)]:
        assert linear_decay_factor(epoch, 75, 150) == pytest.approx(factor)
    model = DPE(variant="supervised", input_size=S)
    (opt,), (sched,) = model.configure_optimizers()
    for _ in range(90):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5 * 0.8)


# --------------------------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------------------------


def test_parameter_counts_at_paper_size():
    """methods.md §6.6: G 3.34 M (1.05 M in the 8×8 global conv), D 1.12 M, 2-way total ≈ 8.9 M."""
    generator, critic = GlobalUNet(512), DPECritic(512)
    # Convs with biases + BatchNorm γ, β (2 × 1360 channels); critic convs + InstanceNorm γ, β.
    assert n_params(generator) == 3_335_395 and round(n_params(generator) / 1e6, 2) == 3.34
    assert n_params(generator.g3) == 128 * 128 * 8 * 8 + 128 == 1_048_704
    assert generator.g3.kernel_size == (8, 8)
    assert n_params(critic) == 1_122_689 and round(n_params(critic) / 1e6, 2) == 1.12
    assert critic.head.kernel_size == (16, 16)
    model = DPE()  # gan_2way, 512
    # G_X + G_Y + two primed BN sets (2 × 2,720) + D_X + D_Y.
    assert n_params(model) == 2 * 3_335_395 + 2 * 2_720 + 2 * 1_122_689 == 8_921_608
    assert n_params(model.generator) == 3_335_395  # what run.json reports for the enhancer
    assert model.proxy_notes() == [] and DPE(input_size=128).proxy_notes()


def test_shapes_at_small_canvas_and_input_size_checks():
    generator, critic = GlobalUNet(S), DPECritic(S)
    assert generator.g3.kernel_size == (1, 1) and critic.head.kernel_size == (2, 2)
    x = torch.rand(2, 3, S, S)
    assert generator(x).shape == x.shape and critic(x).shape == (2,)
    with pytest.raises(ValueError, match="runs on"):
        generator(torch.rand(2, 3, S, S + 1))
    with pytest.raises(ValueError, match="multiple of 64"):
        GlobalUNet(100)
    with pytest.raises(ValueError, match="at least 2 images"):  # BN over one 1×1 value per channel
        generator(torch.rand(1, 3, S, S))
    generator.eval()
    assert generator(torch.rand(1, 3, S, S)).shape == (1, 3, S, S)  # running statistics: fine


def test_generator_starts_near_identity():
    """Variance scaling 1e-3 + residual output: the untrained generator barely changes its input."""
    generator = GlobalUNet(S).eval()
    x = images(1, S, S, seed=3)
    with torch.no_grad():
        assert (generator(x) - x).abs().max() < 1e-2


# --------------------------------------------------------------------------------------------
# iBN
# --------------------------------------------------------------------------------------------


def test_primed_generators_share_convs_and_own_batch_norm():
    model = DPE(input_size=S).train()
    x, rect, _ = model.canvas(images(2, 40, 48, seed=4))
    for net, primed_norms, inverse in [(model.generator, model.generator_primed_norms, False),
                                       (model.inverse_generator, model.inverse_generator_primed_norms, True)]:
        own_bn = {id(p) for p in net.norms.parameters()}
        primed_bn = {id(p) for p in primed_norms.parameters()}
        convs = [p for name, p in net.named_parameters() if not name.startswith("norms.")]
        assert own_bn and primed_bn and not own_bn & primed_bn
        # Which parameter objects does each path use? Exactly the convs + its own BN set.
        for primed, expected_bn in [(False, own_bn), (True, primed_bn)]:
            candidates = list(net.parameters()) + list(primed_norms.parameters())
            out = model.generate(x, rect, inverse=inverse, primed=primed)
            grads = torch.autograd.grad(out.square().sum(), candidates, allow_unused=True)
            used = [p for p, g in zip(candidates, grads, strict=True) if g is not None]
            assert {id(p) for p in used} == {id(p) for p in convs} | expected_bn
            used_convs = [p for p in used if id(p) not in expected_bn]
            assert len(used_convs) == len(convs) and all(p is q for p, q in zip(used_convs, convs, strict=True))
        # Running statistics: a primed call moves only the primed set's, and vice versa.
        before_own = [m.running_mean.clone() for m in net.norms.values()]
        before_primed = [m.running_mean.clone() for m in primed_norms.values()]
        with torch.no_grad():
            model.generate(x, rect, inverse=inverse, primed=True)
        assert all(torch.equal(a, m.running_mean) for a, m in zip(before_own, net.norms.values(), strict=True))
        assert not any(torch.equal(a, m.running_mean) for a, m in zip(before_primed, primed_norms.values(),
                                                                       strict=True))
        with torch.no_grad():
            model.generate(x, rect, inverse=inverse)
        assert not any(torch.equal(a, m.running_mean) for a, m in zip(before_own, net.norms.values(), strict=True))


# --------------------------------------------------------------------------------------------
# Adaptive λ (critics.AdaptiveLambda with DPE's settings)
# --------------------------------------------------------------------------------------------


def reference_lambda(penalties, lower_bound=None, initial=10.0, decay=0.99, bound=0.05, cooldown=50):
    """methods.md §1.7 written out as a plain loop (the released code's rule, plus the paper's
    decrease when ``lower_bound`` is set); returns (λ, m) after every update."""
    lam, avg, buffer, out = initial, 0.0, 0, []
    for step, p in enumerate(penalties):
        if step >= 1:  # loss_wgan_lambda_ignore = 1
            avg = decay * avg + (1 - decay) * p
            if buffer == 0 and avg > bound:
                lam, avg, buffer = lam * 2, 0.0, cooldown
            elif buffer == 0 and lower_bound is not None and avg < lower_bound:
                lam, avg, buffer = lam / 2, 0.0, cooldown
            else:
                buffer = max(buffer - 1, 0)
        out.append((lam, avg))
    return out


def test_adaptive_lambda_scripted_growth():
    model = DPE(input_size=S)
    adapter = model.lambda_y
    history = []
    for p in [100.0, 4.0, 2.0] + [10.0] * 51:
        adapter.update(torch.tensor(p))
        history.append((float(adapter.value), float(adapter.average), int(adapter.cooldown_left)))
    assert history[0] == (10.0, 0.0, 0)  # the first (huge) penalty is ignored
    assert history[1][:2] == (10.0, pytest.approx(0.04))  # m = 0.01 * 4 <= 0.05: λ stays
    assert history[2] == (20.0, 0.0, 50)  # m = 0.99 * 0.04 + 0.02 = 0.0596 > 0.05: ×2, reset, cool-down
    assert all(lam == 20.0 for lam, _, _ in history[3:53])  # waits 50 updates although m > 0.05
    assert history[52][1] > 0.05 and history[52][2] == 0
    assert history[53] == (40.0, 0.0, 50)  # grows again on the first update with the counter at 0


def test_adaptive_lambda_decrease_option_and_reference():
    shrink = AdaptiveLambda(lower_bound=0.01)
    never = AdaptiveLambda()
    for _ in range(54):
        shrink.update(0.0)
        never.update(0.0)
    assert float(never.value) == 10.0  # released code: never decreases
    assert float(shrink.value) == 2.5  # 10 -> 5 at update 2, -> 2.5 at update 54
    gen = np.random.default_rng(0)
    penalties = np.concatenate([gen.exponential(0.3, 150), gen.exponential(0.002, 150)]).tolist()
    for lower in (None, 0.01):
        adapter = AdaptiveLambda(lower_bound=lower)
        for p, (lam, avg) in zip(penalties, reference_lambda(penalties, lower_bound=lower), strict=True):
            adapter.update(p)
            assert float(adapter.value) == lam and float(adapter.average) == pytest.approx(avg, abs=1e-12)
    assert len({lam for lam, _ in reference_lambda(penalties, lower_bound=0.01)}) > 2  # both rules fired


def test_lambda_state_survives_checkpoint_resume(tmp_path):
    """Trainer.fit → checkpoint → a fresh model resumes: λ, m, counters, step counters and the
    loss generator come back; the continued run matches an uninterrupted one exactly."""
    # 8 batches of 2 per epoch: 8 critic and 2 generator steps. The checkpoint is taken at an epoch
    # boundary: Lightning restarts an interrupted epoch from its first batch, which would change
    # the data order, not the state under test.
    loader = DataLoader(TinyUnpaired(n=16), batch_size=2)

    def build() -> DPE:
        # Two-sided penalty (≈ 0.5 at the initial critic), a low bound and a short cool-down, so
        # that λ moves within a few critic steps.
        return DPE(input_size=S, critic_steps=4, penalty_mode="two_sided", lambda_upper_bound=0.01,
                   lambda_cooldown=2, lr=1e-3)

    torch.manual_seed(0)
    full = build()
    trainer(max_epochs=2).fit(full, loader)

    torch.manual_seed(0)
    first = build()
    fit = trainer(max_epochs=1)
    fit.fit(first, loader)
    path = tmp_path / "last.ckpt"
    fit.save_checkpoint(path)
    saved = {k: v.clone() for k, v in first.state_dict().items()
             if k.startswith(("lambda_", "generator_steps", "critic_updates"))}
    assert float(saved["lambda_y.value"]) > 10.0 and float(saved["lambda_y.average"]) > 0  # it moved

    resumed = build()
    assert float(resumed.lambda_y.value) == 10.0 and float(resumed.lambda_y.average) == 0.0
    trainer(max_epochs=1).fit(resumed, loader, ckpt_path=path)  # restores; nothing left to run
    for key, value in saved.items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert torch.equal(resumed.loss_rng.get_state(), first.loss_rng.get_state())

    resumed = build()
    trainer(max_epochs=2).fit(resumed, loader, ckpt_path=path)
    assert int(resumed.critic_updates) == int(full.critic_updates) == 16
    assert float(full.lambda_y.value) > float(saved["lambda_y.value"])  # λ kept moving after it
    for key, value in full.state_dict().items():  # every weight, buffer, λ and average
        assert torch.equal(resumed.state_dict()[key], value), key


# --------------------------------------------------------------------------------------------
# The padded region never matters
# --------------------------------------------------------------------------------------------


def corrupt_outside(rect_box: dict, inside: bool = False):
    """Forward hook writing large noise into a generator's output outside (or inside) the valid
    rectangle of the current call, recorded in ``rect_box``."""

    def hook(module, args, output):
        h, w = rect_box["rect"]
        noise = torch.randn(output.shape, generator=torch.Generator().manual_seed(7)) * 100
        mask = torch.zeros_like(output, dtype=torch.bool)
        mask[..., :h, :w] = True
        return torch.where(mask if inside else ~mask, output + noise, output)

    return hook


@pytest.mark.parametrize("variant", ["gan_2way", "gan_1way", "supervised"])
def test_padded_region_never_reaches_a_loss_or_the_output(variant):
    torch.manual_seed(0)
    model = DPE(variant=variant, input_size=S).train()
    if variant == "supervised":
        batch = {"input": images(2, 40, 48, seed=5), "target": images(2, 40, 48, seed=6)}
    else:  # unpaired: the two sides have different valid rectangles
        batch = {"input": images(2, 40, 48, seed=5), "target": images(2, 56, 36, seed=6)}
    box: dict = {}
    real_generate = model.generate

    def generate(canvas, rect, inverse=False, primed=False):
        box["rect"] = rect
        return real_generate(canvas, rect, inverse, primed)

    model.generate = generate  # records each call's rectangle for the hook
    rng_state = model.loss_rng.get_state()

    def losses() -> list[torch.Tensor]:
        model.loss_rng.set_state(rng_state)
        out = []
        if variant != "supervised":
            loss, terms = model.critic_loss(batch)
            out += [loss, *terms.values()]
        loss, terms = model.generator_loss(batch)
        return [*out, loss, *terms.values()]

    def output(image: torch.Tensor) -> torch.Tensor:
        box["rect"] = tuple(fit_long_side(image, S).shape[-2:])
        model.eval()
        with torch.no_grad():
            result = model(image)
        model.train()
        return result

    nets = [model.generator] + ([model.inverse_generator] if variant == "gan_2way" else [])
    clean = losses()
    # Evaluation outputs (BN running statistics: no training-mode call in between): one padded
    # image, one down-scaled first.
    inputs = [batch["input"], images(1, 100, 80, seed=8)]
    clean_out = [output(image) for image in inputs]
    handles = [net.register_forward_hook(corrupt_outside(box)) for net in nets]
    for a, b in zip(clean_out, [output(image) for image in inputs], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(clean, losses(), strict=True):
        assert torch.equal(a, b)
    canvas, rect, _ = model.canvas(batch["input"])
    box["rect"] = rect
    with torch.no_grad():
        assert (model.generator(canvas) - real_generate(canvas, rect)).abs().max() > 10  # the hook bites
    for handle in handles:
        handle.remove()
    # Control: the same corruption inside the valid rectangle does change the losses.
    handles = [net.register_forward_hook(corrupt_outside(box, inside=True)) for net in nets]
    assert not torch.equal(clean[0], losses()[0])
    for handle in handles:
        handle.remove()


# --------------------------------------------------------------------------------------------
# Evaluation sizes
# --------------------------------------------------------------------------------------------


def test_enhance_downscales_large_and_pads_small_images():
    model = DPE(variant="supervised").eval()  # paper canvas, 512
    generator = model.generator
    large = images(1, 700, 900, seed=9)
    small = images(1, 300, 200, seed=10)
    with torch.no_grad():
        out_large, out_small = model.enhance(large), model.enhance(small)
        # Independent recomputation: area down-scale, numpy symmetric pad, crop, bilinear up-scale.
        low = F.interpolate(large, size=(398, 512), mode="area")
        canvas = torch.from_numpy(np.pad(low.numpy(), ((0, 0), (0, 0), (0, 114), (0, 0)), mode="symmetric"))
        expected_large = F.interpolate(generator(canvas)[..., :398, :], size=(700, 900), mode="bilinear",
                                       align_corners=False)
        canvas = torch.from_numpy(np.pad(small.numpy(), ((0, 0), (0, 0), (0, 212), (0, 312)), mode="symmetric"))
        expected_small = generator(canvas)[..., :300, :200]
    assert out_large.shape == large.shape and out_small.shape == small.shape
    torch.testing.assert_close(out_large, expected_large)
    torch.testing.assert_close(out_small, expected_small)
    assert "down-scaled" in DPE.full_resolution and "up-scaled" in DPE.full_resolution


# --------------------------------------------------------------------------------------------
# Training steps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["gan_2way", "gan_1way", "supervised"])
def test_one_critic_then_one_generator_step(variant):
    torch.manual_seed(0)
    model = DPE(variant=variant, input_size=S, critic_steps=2, lr=1e-3)
    loader = DataLoader(TinyUnpaired(n=4, target_hw=(40, 48)), batch_size=2)

    def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in module.state_dict().items() if "running" not in k and "batches" not in k}

    generators = [model.generator] + ([model.inverse_generator] if variant == "gan_2way" else [])
    before = [weights(g) for g in generators]
    if variant == "supervised":
        trainer(2).fit(model, loader)  # a generator step on every batch, no critic
        assert model.iterations == 2 and int(model.critic_updates) == 0
    else:
        critics = [model.critic_y] + ([model.critic_x] if variant == "gan_2way" else [])
        critics_before = [weights(c) for c in critics]
        running = model.generator.norms["e1"].running_mean.clone()
        trainer(1).fit(model, loader)  # one critic step
        assert model.iterations == 0 and int(model.critic_updates) == 1
        assert all(int(a.updates) == 1 for a in [model.lambda_y] + ([model.lambda_x] if variant == "gan_2way" else []))
        for critic, old in zip(critics, critics_before, strict=True):
            assert any(not torch.equal(v, old[k]) for k, v in weights(critic).items())
        for generator, old in zip(generators, before, strict=True):  # untouched by the critic step ...
            assert all(torch.equal(v, old[k]) for k, v in weights(generator).items())
        assert not torch.equal(running, model.generator.norms["e1"].running_mean)  # ... but ran in train mode
        trainer(2).fit(model, loader)  # critic update 2 is due: a critic step, then a generator step
        assert model.iterations == 1 and int(model.critic_updates) == 2
    for generator, old in zip(generators, before, strict=True):
        assert any(not torch.equal(v, old[k]) for k, v in weights(generator).items())
    for p in model.parameters():
        assert torch.isfinite(p).all()


def test_supervised_needs_aligned_targets():
    model = DPE(variant="supervised", input_size=S).train()
    with pytest.raises(ValueError, match="aligned"):
        model.generator_loss({"input": images(2, 40, 48, seed=1), "target": images(2, 56, 36, seed=2)})
    with pytest.raises(ValueError, match="variant"):
        DPE(variant="gan_3way", input_size=S)  # type: ignore[arg-type]
    loss, _ = model.generator_loss({"input": images(2, 40, 48, seed=1), "target": images(2, 40, 48, seed=2)})
    assert math.isfinite(loss.item())


def test_per_sample_valid_sizes_keep_data_padding_out_of_every_loss():
    """Whole photos of different shapes in one batch (the FiveK path): whatever the data module
    put outside each photo's valid part changes no loss."""
    torch.manual_seed(0)
    model = DPE(variant="gan_2way", input_size=64, critic_steps=1)
    x = torch.rand(2, 3, 64, 64)
    y = torch.rand(2, 3, 64, 64)
    batch = {"input": x, "target": y, "input_hw": torch.tensor([[40, 64], [64, 30]]),
             "target_hw": torch.tensor([[64, 50], [36, 64]]), "key": ["a", "b"]}
    noisy = {**batch, "input": x.clone(), "target": y.clone()}
    for images, sizes in ((noisy["input"], batch["input_hw"]), (noisy["target"], batch["target_hw"])):
        for image, (h, w) in zip(images, sizes.tolist()):
            image[:, h:, :] = torch.rand_like(image[:, h:, :]) * 5
            image[:, :, w:] = torch.rand_like(image[:, :, w:]) * 5

    def losses(b):
        model.loss_rng.manual_seed(1)
        critic, critic_terms = model.critic_loss(b)
        generator, generator_terms = model.generator_loss(b)
        return [critic, generator, *critic_terms.values(), *generator_terms.values()]

    model.train()
    torch.manual_seed(2)
    clean = losses(batch)
    torch.manual_seed(2)
    for a, b in zip(clean, losses(noisy)):
        torch.testing.assert_close(a, b)
    # Control: the same noise inside a valid part does change the losses.
    inside = {**batch, "input": x.clone()}
    inside["input"][0, :, :10, :10] += 0.5
    torch.manual_seed(2)
    assert not torch.allclose(losses(inside)[1], clean[1])
