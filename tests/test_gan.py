"""The AdversarialMethod machinery: player isolation, step ratio and order, clipping, the
iteration budget, checkpoint resume, and DDP (two CPU processes) — on a toy GAN and on DPED/WESPE
at tiny widths."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from baselines.base import AdversarialMethod
from baselines.dped import DPED
from baselines.wespe import WESPE

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


class FixedPatches(Dataset):
    """``n`` distinct, fixed random (input, target) patches: a deterministic data source."""

    def __init__(self, n: int = 4, size: int = 32, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.input = torch.rand(n, 3, size, size, generator=generator)
        self.target = torch.rand(n, 3, size, size, generator=generator)

    def __len__(self) -> int:
        return len(self.input)

    def __getitem__(self, index: int) -> dict:
        return {"input": self.input[index], "target": self.target[index], "key": f"p{index}"}


def _trainer(max_steps: int, max_epochs: int = 1000, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=max_epochs, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, **kwargs)


def _tiny(cls: type[AdversarialMethod], **kwargs) -> AdversarialMethod:
    return cls(width=8, discriminator_width=8, content_backbone="random", **kwargs)


# --------------------------------------------------------------------------------------------
# A toy GAN for the step schedule and clipping
# --------------------------------------------------------------------------------------------


class ToyGAN(AdversarialMethod):
    """1×1-conv generator, linear critic, SGD with lr 1 (so a step moves by the clipped gradient)."""

    def __init__(self, critic_steps: int = 1, gradient_clip_val: float | None = None,
                 max_iterations: int | None = None) -> None:
        super().__init__(critic_steps, gradient_clip_val, max_iterations)
        torch.manual_seed(0)
        self.generator = nn.Conv2d(3, 3, 1)
        self.critic = nn.Linear(3, 1)
        self.order: list[str] = []

    def _score(self, image: torch.Tensor) -> torch.Tensor:
        return self.critic(image.mean(dim=(2, 3))).mean()

    def generator_loss(self, batch):
        self.order.append("g")
        return -100 * self._score(self.generator(batch["input"])), {}

    def critic_loss(self, batch):
        self.order.append("c")
        fake = self.generator(batch["input"]).detach()
        return 100 * (self._score(fake) - self._score(batch["target"])), {}

    def configure_optimizers(self):
        return [torch.optim.SGD(self.generator.parameters(), lr=1.0),
                torch.optim.SGD(self.critic.parameters(), lr=1.0)]


class ToyGANGeneratorFirst(ToyGAN):
    generator_first = True


@pytest.mark.parametrize(("cls", "pattern"), [(ToyGAN, "cccg"), (ToyGANGeneratorFirst, "ccgc")])
def test_critic_steps_ratio_and_order(cls, pattern):
    model = cls(critic_steps=3)
    _trainer(max_steps=100, max_epochs=1).fit(model, DataLoader(FixedPatches(6, 8), batch_size=1))
    assert "".join(model.order) == pattern * 2
    assert int(model.critic_updates) == 6 and model.iterations == 2


def test_max_iterations_counts_generator_steps():
    model = ToyGAN(max_iterations=3)
    trainer = _trainer(max_steps=1000)
    trainer.fit(model, DataLoader(FixedPatches(2, 8), batch_size=1))
    assert model.iterations == 3 and trainer.global_step == 6  # Lightning counts both optimisers


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_each_players_step(clip):
    model = ToyGAN(gradient_clip_val=clip)
    before = [p.detach().clone() for p in model.parameters()]
    _trainer(max_steps=2).fit(model, DataLoader(FixedPatches(1, 8), batch_size=1))
    moves = [(p.detach() - b).norm() for p, b in zip(model.parameters(), before, strict=True)]
    generator_move = torch.stack(moves[:2]).norm()
    critic_move = torch.stack(moves[2:]).norm()
    if clip is None:
        assert generator_move > 1e-2 and critic_move > 1e-2  # so the bound below can fail
    else:
        assert generator_move <= clip * 1.0001 and critic_move <= clip * 1.0001


# --------------------------------------------------------------------------------------------
# Player isolation on the real methods
# --------------------------------------------------------------------------------------------


def _player_names(model: AdversarialMethod, optimizer) -> set[str]:
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("cls", [DPED, WESPE])
def test_each_player_step_leaves_the_other_player_bitwise_unchanged(cls):
    model = _tiny(cls)
    records = []
    optimize = model._optimize

    def grads() -> dict:
        return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}

    def spy(optimizer, loss, *args, **kwargs):
        before, grads_before = {n: p.detach().clone() for n, p in model.named_parameters()}, grads()
        optimize(optimizer, loss, *args, **kwargs)
        records.append((optimizer, before, grads_before, grads()))

    model._optimize = spy
    trainer = _trainer(max_steps=2)
    trainer.fit(model, DataLoader(FixedPatches(2, 32), batch_size=2))
    generator_opt, critic_opt = (o for o in trainer.optimizers)
    players = {id(generator_opt): _player_names(model, generator_opt), id(critic_opt): _player_names(model, critic_opt)}
    everything = {n for n, _ in model.named_parameters()}
    assert not players[id(generator_opt)] & players[id(critic_opt)]
    assert [id(o.optimizer) for o, *_ in records] == [id(generator_opt), id(critic_opt)]  # DPED/WESPE: G first
    after = dict(model.named_parameters())
    for step, (optimizer, before, grads_before, grads_after) in enumerate(records):
        mine = players[id(optimizer.optimizer)]
        snapshot = records[step + 1][1] if step + 1 < len(records) else {n: p.detach() for n, p in after.items()}
        for name in everything - mine:
            assert torch.equal(before[name], snapshot[name]), f"{name} changed in the other player's step"
            # Toggling: the other player's gradients (None, or the leftovers of its own step)
            # are not touched by this step's backward.
            old, new = grads_before[name], grads_after[name]
            assert (old is None and new is None) or torch.equal(old, new), f"{name}: gradient touched"
        for name in mine:
            assert not torch.equal(before[name], snapshot[name]), f"{name} did not move in its own step"
    if cls is WESPE:  # tangchuanxin/WESPE#4: F must be optimised, by the generator player
        assert {n for n in everything if n.startswith("inverse.")} <= players[id(generator_opt)]


# --------------------------------------------------------------------------------------------
# Checkpoint resume
# --------------------------------------------------------------------------------------------


class _Record(L.Callback):
    """Record each iteration's logged losses; save a checkpoint after iteration ``save_after``."""

    def __init__(self, save_after: int | None = None, path: Path | None = None) -> None:
        self.save_after, self.path = save_after, path
        self.losses: dict[int, dict[str, float]] = {}
        self.saved_rng: torch.Tensor | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[module.iterations] = {k: v.item() for k, v in trainer.callback_metrics.items()
                                          if k.startswith("train/")}
        if module.iterations == self.save_after:
            trainer.save_checkpoint(self.path)
            self.saved_rng = module.loss_rng.get_state()


@pytest.mark.parametrize("cls", [DPED, WESPE])
def test_resume_restores_optimiser_and_random_state(cls, tmp_path):
    """Train N iterations, checkpoint, go on; a fresh model resumed from the checkpoint takes the
    same next steps: equal losses, equal loss-RNG state, equal weights afterwards."""
    n, extra = 2, 2
    ckpt = tmp_path / "n.ckpt"
    loader = DataLoader(FixedPatches(4, 32), batch_size=4)  # one fixed batch, repeated

    torch.manual_seed(0)
    straight = _tiny(cls)
    record = _Record(save_after=n, path=ckpt)
    _trainer(max_steps=2 * (n + extra), callbacks=[record]).fit(straight, loader)

    torch.manual_seed(1)  # different initial weights: everything must come from the checkpoint
    resumed = _tiny(cls)
    replay = _Record()
    _trainer(max_steps=2 * (n + extra), callbacks=[replay]).fit(resumed, loader, ckpt_path=ckpt)

    assert sorted(replay.losses) == list(range(n + 1, n + extra + 1))
    for iteration in replay.losses:
        for name, value in record.losses[iteration].items():
            assert replay.losses[iteration][name] == pytest.approx(value, abs=1e-6), (iteration, name)
    assert torch.equal(torch.load(ckpt, weights_only=False)["qmap_random_state"]["loss_rng"], record.saved_rng)
    assert torch.equal(resumed.loss_rng.get_state(), straight.loss_rng.get_state())
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert resumed.iterations == straight.iterations == n + extra


# --------------------------------------------------------------------------------------------
# DDP
# --------------------------------------------------------------------------------------------

DDP_SCRIPT = """
import json, os, sys
import torch, lightning as L
from torch.utils.data import DataLoader
sys.path.insert(0, {tests!r})
from test_gan import FixedPatches
from baselines.dped import DPED

class SeenKeys(L.Callback):
    def __init__(self):
        self.keys = []
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.keys.append(list(batch["key"]))

out = sys.argv[1]
torch.set_num_threads(1)
L.seed_everything(0)
model = DPED(width=8, discriminator_width=8, content_backbone="random", max_iterations=3)
torch.save(model.state_dict(), f"{{out}}/initial{{os.environ.get('LOCAL_RANK', '0')}}.pt")
seen = SeenKeys()
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_epochs=10,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, callbacks=[seen])
trainer.fit(model, DataLoader(FixedPatches(8, 32), batch_size=2))
rank = trainer.global_rank
torch.save(model.state_dict(), f"{{out}}/rank{{rank}}.pt")
json.dump({{"keys": seen.keys, "iterations": model.iterations}}, open(f"{{out}}/rank{{rank}}.json", "w"))
"""


def test_ddp_two_cpu_ranks_end_with_identical_weights(tmp_path):
    """``strategy="ddp_find_unused_parameters_true"``: each player's backward leaves the other
    player's parameters without gradients, which plain ``ddp`` rejects (Lightning raises at the
    first critic step and names this strategy)."""
    import json

    script = tmp_path / "ddp_dped.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=str(REPO / "tests"))))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    env |= {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    initial = torch.load(tmp_path / "initial0.pt", weights_only=True)
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["iterations"] == info[1]["iterations"] == 3
    for keys0, keys1 in zip(info[0]["keys"], info[1]["keys"], strict=True):
        assert not set(keys0) & set(keys1)  # in every step each rank saw its own samples
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
    moved = [name for name in ranks[0] if name.endswith("weight") and not torch.equal(ranks[0][name], initial[name])]
    assert any(n.startswith("generator.") for n in moved) and any(n.startswith("discriminator.") for n in moved)


def test_random_state_round_trips_through_a_weights_only_load(tmp_path):
    """Every generator a run draws from is in the checkpoint, in a form that Lightning's default
    ``torch.load(weights_only=True)`` accepts."""
    import random

    import numpy as np

    model = ToyGAN()
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "state.pt")
    expected = (model.rand(5, like=torch.zeros(())), torch.rand(5), np.random.rand(5), random.random())
    model.rand(7, like=torch.zeros(())), torch.rand(3), np.random.rand(2), random.random()  # move them all on
    model.on_load_checkpoint(torch.load(tmp_path / "state.pt", weights_only=True))
    got = (model.rand(5, like=torch.zeros(())), torch.rand(5), np.random.rand(5), random.random())
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert np.array_equal(got[2], expected[2]) and got[3] == expected[3]
