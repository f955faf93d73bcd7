"""Base classes every method builds on.

A method implements ``forward`` (and, when it learns, ``training_step`` and
``configure_optimizers``). Validation, test and predict steps are written once here, and
scoring happens outside the method, in ``benchmark.evaluation.Evaluator``, so that every method
is measured by the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor


class EnhancementMethod(L.LightningModule):
    """A quality-mapping method: ``forward(input) -> output``.

    Contract (design.md section 4): ``input`` is float32 RGB in [0, 1] of shape ``(B, 3, H, W)``
    and the output has the same shape, roughly in [0, 1]; the Evaluator clamps and quantises it.
    Batches are dicts with ``input``, ``target`` (when the data has one) and ``key``.

    Class attributes a method may override:
        trainable: False for reference rows that learn nothing; the suite then skips ``fit``.
        full_resolution: how protocol ``f`` is produced, printed in captions ("whole image",
            "bilateral grid predicted at low resolution, sliced at full resolution", ...).
        video: True for a method that consumes clips ``(B, T, 3, H, W)`` itself (it trains on
            clips and carries state across frames, e.g. recurrent DACAL).

    Video, for every image method without per-method code (design.md section 4): evaluation
    batches of video data are clips ``(B, T, 3, H, W)``, and ``enhance_clip`` runs ``enhance`` on
    each frame independently (:func:`per_frame`, the one per-frame wrapper). In training, the
    video data module hands an image method (``video = False``) batches of frames instead of
    clips (``datamodules.video.clips_as_images``), so it trains on video frames as on images; a
    video method gets the clips and overrides ``enhance_clip``.
    """

    trainable: ClassVar[bool] = True
    full_resolution: ClassVar[str] = "whole image"
    video: ClassVar[bool] = False

    def enhance(self, image: Tensor) -> Tensor:
        """Enhance one evaluation batch at whatever size it comes in.

        Evaluation calls this rather than ``forward`` so that a method whose paper evaluates
        differently at full resolution (e.g. down-scale, enhance, up-scale) overrides one place.
        """
        return self(image)

    def enhance_clip(self, batch: dict[str, Any]) -> Tensor:
        """Enhance one evaluation chunk of a video, ``batch["input"]`` of shape ``(B, T, 3, H, W)``.

        The default is the per-frame wrapper: every frame through :meth:`enhance` on its own,
        with no state carried between frames (so the output on each frame is exactly the image
        method's). Video methods override it; the batch also carries ``key`` (video ids),
        ``frame_start`` and ``num_frames``, which a stateful method needs to stream a video that
        arrives in consecutive chunks.
        """
        return per_frame(self.enhance, batch["input"])

    def _enhance_batch(self, batch: dict[str, Any]) -> Tensor:
        return self.enhance_clip(batch) if batch["input"].ndim == 5 else self.enhance(batch["input"])

    def _eval_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"pred": self._enhance_batch(batch)}

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        out = {"pred": self._enhance_batch(batch).clamp(0, 1), "key": batch["key"]}
        if "frame_start" in batch:
            out["frame_start"] = batch["frame_start"]
        return out

    def proxy_notes(self) -> list[str]:
        """Caption notes when this configuration is a proxy of the paper's (e.g. a content loss on
        a randomly initialised backbone in smoke runs). Suites record them in run.json and
        reports mark every row that has any."""
        return []

    def log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        """Log each loss term as ``{stage}/{name}`` (W&B groups panels by the prefix)."""
        self.log_dict({f"{stage}/{name}": value.detach() for name, value in terms.items()},
                      batch_size=batch_size, prog_bar=False)

    def configure_optimizers(self) -> Any:
        if not self.trainable:
            return None
        raise NotImplementedError(f"{type(self).__name__} learns, so it must define configure_optimizers")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} learns, so it must define training_step")


def per_frame(enhance: Callable[[Tensor], Tensor], clip: Tensor) -> Tensor:
    """Run an image enhancer on every frame of a clip independently.

    Args:
        enhance: ``(B, 3, H, W) -> (B, 3, H, W)``.
        clip: ``(B, T, 3, H, W)``.

    Returns:
        ``(B, T, 3, H, W)``: frame ``t`` is exactly ``enhance(clip[:, t])`` (one call per frame,
        never a batch of frames, so the result cannot depend on what else is in the batch).
    """
    if clip.ndim != 5:
        raise ValueError(f"expected a clip (B, T, 3, H, W), got shape {tuple(clip.shape)}")
    return torch.stack([enhance(clip[:, t]) for t in range(clip.shape[1])], dim=1)


class NonLearnedMethod(EnhancementMethod):
    """A reference row that learns nothing (identity, auto-levels, CLAHE).

    It owns one dummy buffer so that Lightning knows its device; it has no parameters.
    """

    trainable: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)


class AdversarialMethod(EnhancementMethod):
    """Adversarial training written once: two players, manual optimisation.

    A subclass defines ``generator`` (the enhancer: ``forward`` runs it), its critics,
    ``configure_optimizers`` returning exactly two optimisers — the generator player's first, the
    critic player's second (one optimiser may hold several critics as parameter groups) — plus
    optional LR schedulers, and the two losses:

        ``critic_loss(batch) -> (loss, terms)`` and ``generator_loss(batch) -> (loss, terms)``.

    Each training batch gives one critic step; every ``critic_steps``-th batch also gives one
    generator step (``generator_first`` puts it before the critic step, as DPED's code orders
    them). Each player's step runs inside ``toggled_optimizer``, so the other player's parameters
    get no gradient. Budgets count generator steps with our own counter (``iterations``):
    Lightning's ``global_step`` counts optimiser steps, twice per batch here. Set
    ``max_iterations`` to stop there.

    What a resume needs is in the checkpoint: both optimisers (Lightning), the step counters
    (buffers), adaptive penalty state (buffers of the subclass), and the random state of
    ``self.loss_rng`` — the generator every random draw of a loss must use — together with the
    global torch/NumPy/Python random states.

    Under DDP each player's backward leaves the other player's parameters without gradients, so
    DDP must look for unused parameters: use the strategy ``ddp_find_unused_parameters_true``
    (plain ``ddp`` stops at the first critic step with Lightning's error naming it).

    Args (keyword, for subclasses to expose as typed constructor arguments):
        critic_steps: critic updates per generator update.
        gradient_clip_val: clip each player's gradient norm to this value (None: no clipping).
        max_iterations: stop training after this many generator steps (None: trainer limits).
    """

    generator_first: ClassVar[bool] = False

    def __init__(self, critic_steps: int = 1, gradient_clip_val: float | None = None,
                 max_iterations: int | None = None) -> None:
        super().__init__()
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}")
        self.automatic_optimization = False
        self.critic_steps = critic_steps
        self.gradient_clip_val = gradient_clip_val
        self.max_iterations = max_iterations
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("critic_updates", torch.zeros((), dtype=torch.long))
        self.loss_rng = torch.Generator()
        self.loss_rng.manual_seed(torch.initial_seed() % (2**63))

    @property
    def iterations(self) -> int:
        """Generator steps taken so far (the budget unit reported in run.json)."""
        return int(self.generator_steps)

    def forward(self, image: Tensor) -> Tensor:
        return self.generator(image)

    def critic_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def generator_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def after_critic_step(self) -> None:
        """Hook after each critic update (adaptive penalties, manifold retractions)."""

    def before_critic_optimizer_step(self) -> None:
        """Hook between the critic's backward pass and its optimiser step, before gradient
        clipping (gradient surgery: e.g. DACAL's Stiefel projection of its projection matrices)."""

    def rand(self, *shape: int, like: Tensor) -> Tensor:
        """Uniform [0, 1) noise from ``loss_rng`` (checkpointed), on ``like``'s device and dtype."""
        return torch.rand(*shape, generator=self.loss_rng).to(like)

    def synced_mean(self, value: Tensor) -> Tensor:
        """Mean of a scalar over DDP ranks, so adaptive state stays identical on every rank."""
        if self._trainer is None or self.trainer.world_size == 1:
            return value.detach()
        return self.trainer.strategy.reduce(value.detach(), reduce_op="mean")

    def _optimize(self, optimizer: Any, loss: Tensor, before_step: Callable[[], None] | None = None) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if before_step is not None:
            before_step()
        if self.gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()

    def _generator_step(self, batch: dict[str, Any], optimizer: Any) -> dict[str, Tensor]:
        with self.toggled_optimizer(optimizer):
            loss, terms = self.generator_loss(batch)
            self._optimize(optimizer, loss)
        self.generator_steps += 1
        return {"loss_g": loss, **{f"g_{k}": v for k, v in terms.items()}}

    def _critic_step(self, batch: dict[str, Any], optimizer: Any) -> dict[str, Tensor]:
        with self.toggled_optimizer(optimizer):
            loss, terms = self.critic_loss(batch)
            self._optimize(optimizer, loss, self.before_critic_optimizer_step)
        self.critic_updates += 1
        self.after_critic_step()
        return {"loss_d": loss, **{f"d_{k}": v for k, v in terms.items()}}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_g, opt_c = self.optimizers()
        due = int(self.critic_updates + 1) % self.critic_steps == 0
        logged: dict[str, Tensor] = {}
        if due and self.generator_first:
            logged |= self._generator_step(batch, opt_g)
        logged |= self._critic_step(batch, opt_c)
        if due and not self.generator_first:
            logged |= self._generator_step(batch, opt_g)
        self.log_terms("train", logged, batch_size=batch["input"].shape[0])
        if self.max_iterations is not None and self.iterations >= self.max_iterations:
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        import random

        import numpy as np

        checkpoint["qmap_random_state"] = {
            "loss_rng": self.loss_rng.get_state(),
            "torch": torch.get_rng_state(),
            # As plain Python values: Lightning resumes with torch.load(weights_only=True) by
            # default, which refuses the ndarray inside np.random.get_state().
            "numpy": _plain_numpy_state(np.random.get_state()),
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        import random

        import numpy as np

        state = checkpoint.get("qmap_random_state")
        if state is None:
            return
        self.loss_rng.set_state(state["loss_rng"])
        torch.set_rng_state(state["torch"])
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(state["python"])


def _plain_numpy_state(state: tuple) -> tuple:
    """``np.random.get_state()`` with its key array as a list (loadable with ``weights_only``)."""
    name, keys, *rest = state
    return (name, keys.tolist(), *(item.item() if hasattr(item, "item") else item for item in rest))
