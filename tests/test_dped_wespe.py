"""DPED and WESPE: architectures and parameter counts against methods.md, the losses' signs and
normalisations against hand computations, and WESPE's wiring (unpaired, F optimised, two critics)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.dped as dped_module
from baselines.critics import DPEDDiscriminator
from baselines.dped import DPED, LOSS_PRESETS, DPEDGenerator, DPEDResidualBlock, texture_cross_entropy
from baselines.layers import gaussian_kernel_2d, rgb_to_gray
from baselines.losses import tv_loss
from baselines.wespe import WESPE

pytestmark = pytest.mark.usefixtures("one_thread")


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class ConstantLogits(nn.Module):
    """A stand-in critic: fixed logits whatever the input; remembers what it was shown."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.seen: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.seen.append(image.detach().clone())
        return self.logits


def _batch(n: int = 2, size: int = 24, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input": torch.rand(n, 3, size, size, generator=g), "target": torch.rand(n, 3, size, size, generator=g)}


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def test_generator_has_dpeds_401475_parameters():
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    expected = (conv(9, 3, 64) + 8 * (conv(3, 64, 64) + 2 * 64) + 2 * conv(3, 64, 64) + conv(9, 64, 3))
    assert expected == 401_475  # methods.md §4.5
    assert _count(DPEDGenerator(64)) == expected
    half = conv(9, 3, 32) + 8 * (conv(3, 32, 32) + 2 * 32) + 2 * conv(3, 32, 32) + conv(9, 32, 3)
    assert _count(DPEDGenerator(32)) == half


def test_discriminator_parameter_counts_match_the_spec():
    """methods.md §1.3: 7.36 M (gray) and 7.37 M (RGB), 87 % of them in the first FC."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    trunk = conv(5, 48, 128) + conv(3, 128, 192) + conv(3, 192, 192) + conv(3, 192, 128) + 2 * (128 + 192 + 192 + 128)
    fc1 = 7 * 7 * 128 * 1024 + 1024
    gray = conv(11, 1, 48) + trunk + fc1 + 1024 * 2 + 2
    assert (gray, gray + 11 * 11 * 2 * 48) == (7_361_122, 7_372_738)
    assert _count(DPEDDiscriminator(1, 48, "two_class")) == gray
    assert _count(DPEDDiscriminator(3, 48, "two_class")) == gray + 11 * 11 * 2 * 48
    assert _count(DPEDDiscriminator(1, 48, "logit")) == gray - 1025
    assert round(gray / 1e6, 2) == 7.36 and round((gray + 11616) / 1e6, 2) == 7.37
    assert fc1 / gray == pytest.approx(0.87, abs=0.005)
    assert [c.out_channels for c in DPEDDiscriminator(1, 24).convs] == [24, 64, 96, 96, 64]


def test_discriminator_reaches_7x7_at_100_px_and_pools_other_sizes():
    critic = DPEDDiscriminator(1, 12)
    shapes = []
    critic.norms[-1].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    assert critic(torch.rand(2, 1, 100, 100)).shape == (2, 2)
    assert critic(torch.rand(2, 1, 64, 48)).shape == (2, 2)
    assert shapes == [(7, 7), (4, 3)]  # 100 → 25 → 13 → 13 → 13 → 7 with 'SAME' padding
    assert DPEDDiscriminator(3, 12, "logit")(torch.rand(3, 3, 40, 40)).shape == (3,)


def test_dped_initialisation_and_norm_order():
    critic = DPEDDiscriminator(1, 48)
    weight = critic.fc.weight
    assert weight.abs().max() <= 0.02 and weight.std().item() == pytest.approx(0.0088, abs=0.0003)  # 2σ-truncated
    assert torch.all(critic.fc.bias == 0.01) and torch.all(critic.convs[2].bias == 0.01)
    assert isinstance(critic.norms[0], nn.Identity) and critic.norms[1].eps == 1e-3 and critic.norms[1].affine
    # conv → LReLU → IN (DPED's order): the IN output has zero mean per image and channel even
    # though the LReLU output cannot.
    x = torch.rand(1, 1, 100, 100)
    first = F.leaky_relu(critic.convs[0](F.pad(x, (3, 4, 3, 4))), 0.2)
    second = critic.norms[1](F.leaky_relu(critic.convs[1](F.pad(first, (2, 2, 2, 2))), 0.2))
    assert second.mean(dim=(2, 3)).abs().max() < 1e-5


def test_residual_block_adds_the_skip_after_the_second_relu():
    torch.manual_seed(0)
    block = DPEDResidualBlock(4)
    x = torch.randn(1, 4, 6, 6)
    h = F.relu(block.norm1(block.conv1(x)))
    expected = F.relu(block.norm2(block.conv2(h))) + x
    torch.testing.assert_close(block(x), expected)
    assert (block(x) - x).min() >= 0  # the added branch is a ReLU output


def test_generator_output_is_tanh_scaled_and_full_size():
    generator = DPEDGenerator(8)
    image = torch.rand(1, 3, 37, 53)
    out = generator(image)
    assert out.shape == image.shape
    assert out.min() >= 0.5 - 0.58 and out.max() <= 0.5 + 0.58
    with torch.no_grad():
        generator.tail.weight.zero_()
        generator.tail.bias.fill_(0.3)
    torch.testing.assert_close(generator(image), torch.full_like(image, math.tanh(0.3) * 0.58 + 0.5))


# --------------------------------------------------------------------------------------------
# DPED losses
# --------------------------------------------------------------------------------------------


def test_texture_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0], [0.0, 0.0]])
    is_dslr = torch.tensor([True, True, False])
    # p(DSLR) = 1/4 for sample 0, 3/4 for sample 1; p(enhanced) = 1/2 for sample 2. A batch sum.
    expected = -(math.log(0.25) + math.log(0.75) + math.log(0.5))
    assert texture_cross_entropy(logits, is_dslr).item() == pytest.approx(expected, rel=1e-6)
    # DPED clips p at 1e-10 before the log, so a certain-and-wrong critic costs 23.03 per sample.
    sure = torch.tensor([[0.0, 100.0]])
    assert texture_cross_entropy(sure, torch.tensor([True])).item() == pytest.approx(-math.log(1e-10), rel=1e-6)


def test_dped_texture_terms_signs_swaps_and_normalisation():
    model = DPED(width=8, discriminator_width=8, content_backbone="random")
    batch = _batch(n=4)
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5], [-1.0, 1.0]])
    log_p = torch.log_softmax(logits, dim=1)
    model.discriminator = ConstantLogits(logits)

    # G: texture = −(D cross-entropy with every input ŷ and every target "enhanced") = Σ log p_enh.
    _, terms = model.generator_loss(batch)
    assert terms["texture"].item() == pytest.approx(log_p[:, 1].sum().item(), rel=1e-6)
    with torch.no_grad():
        enhanced = model.generator(batch["input"])
    torch.testing.assert_close(model.discriminator.seen[-1], rgb_to_gray(enhanced))

    # D: the swaps come from loss_rng; DSLR (class 0) where swapped in, else enhanced (class 1).
    replay = torch.Generator()
    replay.set_state(model.loss_rng.get_state())
    is_dslr = torch.rand(4, generator=replay) < 0.5
    loss, _ = model.critic_loss(batch)
    expected = -sum(log_p[i, 0 if is_dslr[i] else 1] for i in range(4))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    shown = model.discriminator.seen[-1]
    for i in range(4):
        source = batch["target"] if is_dslr[i] else enhanced
        torch.testing.assert_close(shown[i], rgb_to_gray(source)[i])


def test_dped_total_loss_uses_the_preset_weights():
    model = DPED(width=8, discriminator_width=8, content_backbone="random", loss_preset="dped_paper", w_tv=123.0)
    assert model.loss_weights == {"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 123.0}
    assert DPED(width=8, discriminator_width=8, content_backbone="random").loss_weights == LOSS_PRESETS["dped_code"]
    loss, terms = model.generator_loss(_batch())
    expected = terms["content"] + 0.1 * terms["color"] + 0.4 * terms["texture"] + 123.0 * terms["tv"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(terms["tv"], tv_loss(model.generator(_batch()["input"]), "dped"))
    torch.testing.assert_close(model.blur.kernel(), gaussian_kernel_2d(21, 3.0, "dped").float())
    with pytest.raises(ValueError, match="loss_preset"):
        DPED(width=8, content_backbone="random", loss_preset="paper")


def test_proxy_notes_report_the_random_content_backbone(monkeypatch):
    assert DPED(width=8, discriminator_width=8, content_backbone="random").proxy_notes() == [
        "content loss on a randomly initialised VGG-19 (smoke run), not the paper's loss"]
    assert WESPE(width=8, discriminator_width=8, content_backbone="random").proxy_notes()
    # With the pretrained backbone (a stand-in here: no weight file in tests) there is no note.
    monkeypatch.setattr(dped_module, "ContentLoss", lambda *args, **kwargs: nn.Identity())
    assert DPED(width=8, discriminator_width=8, content_backbone="vgg19").proxy_notes() == []


def test_full_resolution_is_the_whole_image():
    for cls in (DPED, WESPE):
        model = cls(width=8, discriminator_width=8, content_backbone="random").eval()
        image = torch.rand(1, 3, 45, 67)
        with torch.no_grad():
            torch.testing.assert_close(model.enhance(image), model.generator(image))
        assert "whole image" in cls.full_resolution


# --------------------------------------------------------------------------------------------
# WESPE
# --------------------------------------------------------------------------------------------


def test_wespe_nets_are_separate_and_shaped_as_the_paper():
    model = WESPE(content_backbone="random")
    assert _count(model.generator) == _count(model.inverse) == 401_475
    assert model.generator is not model.inverse and model.color_critic is not model.texture_critic
    ids = [{id(p) for p in net.parameters()} for net in (model.generator, model.inverse, model.color_critic,
                                                          model.texture_critic)]
    assert sum(map(len, ids)) == len(set().union(*ids))  # nothing tied
    assert model.color_critic.convs[0].in_channels == 3 and model.texture_critic.convs[0].in_channels == 1
    assert model.color_critic.head == model.texture_critic.head == "logit"
    assert _count(model.color_critic) == 7_371_713 and _count(model.texture_critic) == 7_360_097
    generator_opt, critic_opt = model.configure_optimizers()
    in_generator_player = {id(p) for g in generator_opt.param_groups for p in g["params"]}
    in_critic_player = {id(p) for g in critic_opt.param_groups for p in g["params"]}
    assert in_generator_player == ids[0] | ids[1] and in_critic_player == ids[2] | ids[3]
    assert all(g["lr"] == 5e-4 for g in generator_opt.param_groups + critic_opt.param_groups)
    torch.testing.assert_close(model.blur.kernel(), gaussian_kernel_2d(21, 3.0, "dped").float())


def test_wespe_generator_loss_wiring_and_weights():
    model = WESPE(width=8, discriminator_width=8, content_backbone="random")
    batch = _batch()
    loss, terms = model.generator_loss(batch)
    with torch.no_grad():
        enhanced = model.generator(batch["input"])
        content = model.content_loss(model.inverse(enhanced), batch["input"])  # cycle: x vs F(G(x))
        color = F.softplus(-model.color_critic(model.blur(enhanced))).mean()  # −log σ(D_c(blur(G(x))))
        texture = F.softplus(-model.texture_critic(rgb_to_gray(enhanced))).mean()
        tv = tv_loss(enhanced, "mean_sq")
    for name, value in {"content": content, "color": color, "texture": texture, "tv": tv}.items():
        torch.testing.assert_close(terms[name].detach(), value, msg=name)
    assert loss.item() == pytest.approx((content + 5e-3 * (color + texture) + 10 * tv).item(), rel=1e-5)


def test_wespe_is_unpaired_the_generator_never_sees_the_target():
    model = WESPE(width=8, discriminator_width=8, content_backbone="random")
    batch = _batch()
    loss, _ = model.generator_loss(batch)
    shuffled = {"input": batch["input"], "target": torch.rand(5, 3, 24, 24)}  # any other target images
    torch.testing.assert_close(model.generator_loss(shuffled)[0], loss)
    assert torch.isfinite(model.critic_loss(shuffled)[0])


def test_wespe_critic_loss_by_hand():
    model = WESPE(width=8, discriminator_width=8, content_backbone="random")
    c, t = 0.7, -0.4
    model.color_critic = ConstantLogits(torch.full((4,), c))
    model.texture_critic = ConstantLogits(torch.full((4,), t))
    batch = _batch()
    loss, terms = model.critic_loss(batch)
    # Real target images labelled 1, G(x) labelled 0; each critic's BCE is a mean over its 2·B logits.
    bce = lambda z: (F.softplus(torch.tensor(-z)) + F.softplus(torch.tensor(z))) / 2  # noqa: E731
    assert terms["color"].item() == pytest.approx(bce(c).item(), rel=1e-6)
    assert loss.item() == pytest.approx((bce(c) + bce(t)).item(), rel=1e-6)
    shown_color, shown_texture = model.color_critic.seen[-1], model.texture_critic.seen[-1]
    with torch.no_grad():
        both = torch.cat([batch["target"], model.generator(batch["input"])])
    torch.testing.assert_close(shown_color, model.blur(both))
    torch.testing.assert_close(shown_texture, rgb_to_gray(both))
