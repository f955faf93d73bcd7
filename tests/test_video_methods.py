"""Video on the method side: the per-frame wrapper, recurrent DACAL (state, truncated BPTT,
streaming with constant memory, fine-tuning from an image checkpoint) and the ConvGRU cell."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from baselines.base import per_frame
from baselines.dacal import DACAL, RecurrentDACAL
from baselines.layers import ConvGRUCell
from benchmark.lightning_cli import build_cli
from benchmark.suite import CONFIG_ROOT, deep_merge, load_yaml
from datamodules.video import clips_as_images

IMAGE_METHOD_CONFIGS = [path for path in sorted((CONFIG_ROOT / "methods").glob("*.yaml"))
                        if "recurrent" not in path.stem]
# Small widths where the shipped config is paper-size (the wrapper does not care about size).
SMALL = {"width": 8, "discriminator_width": 8, "critic_width": 8, "critic_features": 16}
SMALL_DACAL = {"width": 8, "critic_width": 8, "critic_features": 16, "w_content": 0.0}


def build_method(config: Path, **extra):
    declared = load_yaml(config)["model"]
    args = dict(declared.get("init_args") or {})
    for name, value in SMALL.items():
        if name in args:
            args[name] = value
    if "content_backbone" in args:
        args["content_backbone"] = "random"
    args |= extra
    full = deep_merge(load_yaml(CONFIG_ROOT / "trainer/quick.yaml"), load_yaml(CONFIG_ROOT / "data/demo.yaml"))
    full["model"] = {"class_path": declared["class_path"], "init_args": args}
    full["trainer"] |= {"accelerator": "cpu", "logger": False, "enable_progress_bar": False}
    return build_cli(full, run=False, save_config=False).model


@pytest.mark.parametrize("config", IMAGE_METHOD_CONFIGS, ids=lambda p: p.stem)
def test_per_frame_wrapper_reproduces_the_image_method_on_every_frame(config, one_thread):
    """Acceptance: every image method gets video through one wrapper, frame for frame exactly."""
    torch.manual_seed(0)
    method = build_method(config).eval()
    clip = torch.rand(2, 4, 3, 40, 56)
    with torch.no_grad():
        video = method._eval_step({"input": clip, "key": ["a", "b"], "frame_start": torch.tensor([0, 0]),
                                   "num_frames": torch.tensor([4, 4])})["pred"]
        assert video.shape == clip.shape
        for t in range(clip.shape[1]):
            image = method.enhance(clip[:, t])
            assert torch.equal(video[:, t], image), f"frame {t} differs from the image method's output"


def test_per_frame_calls_the_enhancer_once_per_frame_and_refuses_images():
    seen = []

    def enhance(frames):
        seen.append(frames.shape)
        return frames * 2

    clip = torch.rand(1, 3, 3, 8, 8)
    assert torch.equal(per_frame(enhance, clip), clip * 2)
    assert seen == [(1, 3, 8, 8)] * 3
    with pytest.raises(ValueError, match="clip"):
        per_frame(enhance, torch.rand(1, 3, 8, 8))


def test_clips_become_frames_for_image_training():
    batch = {"input": torch.rand(2, 3, 3, 8, 8), "target": torch.rand(2, 3, 3, 8, 8), "key": ["a", "b"],
             "frame_start": torch.tensor([0, 4])}
    frames = clips_as_images(batch)
    assert frames["input"].shape == (6, 3, 8, 8) and torch.equal(frames["input"][4], batch["input"][1, 1])
    assert frames["key"] == ["a", "a", "a", "b", "b", "b"] and "frame_start" not in frames


# -- ConvGRU -------------------------------------------------------------------------------------


def test_conv_gru_with_1x1_kernels_is_torch_gru_cell_at_every_pixel():
    torch.manual_seed(0)
    conv = ConvGRUCell(5, 7, kernel_size=1)
    reference = nn.GRUCell(5, 7)
    with torch.no_grad():
        reference.weight_ih.copy_(conv.input_gates.weight.flatten(1))
        reference.bias_ih.copy_(conv.input_gates.bias)
        reference.weight_hh.copy_(conv.hidden_gates.weight.flatten(1))
        reference.bias_hh.copy_(conv.hidden_gates.bias)
    x, h = torch.randn(2, 5, 3, 4), torch.randn(2, 7, 3, 4)
    expected = reference(x.permute(0, 2, 3, 1).reshape(-1, 5), h.permute(0, 2, 3, 1).reshape(-1, 7))
    got = conv(x, h).permute(0, 2, 3, 1).reshape(-1, 7)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # No state: the zero state.
    torch.testing.assert_close(conv(x), conv(x, torch.zeros_like(h)))


# -- recurrent DACAL ------------------------------------------------------------------------------


def recurrent(**extra) -> RecurrentDACAL:
    torch.manual_seed(0)
    return RecurrentDACAL(**(SMALL_DACAL | extra))


def randomise_feedback(model: RecurrentDACAL) -> None:
    """Give the zero-initialised state projection weights, so the state changes the output."""
    with torch.no_grad():
        model.generator.state_to_features.weight.normal_(std=0.3)


def test_state_carries_information_across_frames():
    model = recurrent().eval()
    randomise_feedback(model)
    clip = torch.rand(1, 3, 3, 48, 48)
    with torch.no_grad():
        video = model.generator(clip)
        first_alone = model.generator(clip[:, 2])  # the third frame as a video's first frame
    assert torch.equal(video[:, 0], model.generator(clip[:, 0]).detach())
    assert not torch.allclose(video[:, 2], first_alone), "the state must change later frames"


def test_streaming_in_chunks_equals_one_pass_over_the_whole_video():
    model = recurrent().eval()
    randomise_feedback(model)
    videos = {"v1": torch.rand(1, 8, 3, 40, 48), "v2": torch.rand(1, 5, 3, 40, 48)}
    with torch.no_grad():
        whole = {key: model.generator.clip(video)[0] for key, video in videos.items()}
        streamed = {key: torch.cat(list(model.stream(video.unbind(1))), 0).unsqueeze(0)
                    for key, video in videos.items()}
        # Chunks of 3 frames, the two videos interleaved, as the evaluation stream may deliver them.
        chunks: dict[str, list[torch.Tensor]] = {"v1": [], "v2": []}
        schedule = [("v1", 0), ("v2", 0), ("v1", 3), ("v2", 3), ("v1", 6)]
        for key, start in schedule:
            video = videos[key]
            batch = {"input": video[:, start:start + 3], "key": [key], "frame_start": torch.tensor([start]),
                     "num_frames": torch.tensor([video.shape[1]])}
            chunks[key].append(model.enhance_clip(batch))
    for key in videos:
        torch.testing.assert_close(torch.cat(chunks[key], 1), whole[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(streamed[key], whole[key], rtol=0, atol=1e-6)
    assert model._streams == {}, "a finished video's state must be dropped"
    with pytest.raises(RuntimeError, match="in order"):
        model.enhance_clip({"input": videos["v1"][:, 3:6], "key": ["v1"], "frame_start": torch.tensor([3]),
                            "num_frames": torch.tensor([8])})


def test_truncated_bptt_cuts_gradients_between_frame_blocks():
    model = recurrent(bptt_frames=None)
    randomise_feedback(model)
    model.eval()  # BatchNorm in eval: the gradient path is the recurrence only

    def gradient_to_first_frame(detach_every):
        clip = torch.rand(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        out, _ = model.generator.clip(clip, detach_every=detach_every)
        out[:, -1].sum().backward()
        return clip.grad[:, 0].abs().sum()

    assert gradient_to_first_frame(None) > 0
    assert gradient_to_first_frame(2) == 0  # frames 2-3 are a block of their own
    with pytest.raises(ValueError, match="bptt_frames"):
        RecurrentDACAL(bptt_frames=0, **SMALL_DACAL)


def test_fine_tuning_starts_from_the_image_checkpoint_as_per_frame_dacal(tmp_path):
    torch.manual_seed(3)
    image_model = DACAL(**SMALL_DACAL)
    image_model.generator_steps += 80
    path = tmp_path / "dacal.ckpt"
    torch.save({"state_dict": image_model.state_dict()}, path)
    model = RecurrentDACAL(init_checkpoint=str(path), **SMALL_DACAL).eval()
    image_model.eval()
    clip = torch.rand(1, 4, 3, 40, 56)
    with torch.no_grad():
        video = model.generator(clip)
        for t in range(clip.shape[1]):
            assert torch.equal(video[:, t], image_model(clip[:, t])), f"frame {t}"
    assert any(name.startswith("critics.color") for name in model.loaded_from_checkpoint)
    assert int(model.generator_steps) == 0, "the fine-tuning budget counts from zero"
    with pytest.raises(ValueError, match="dacal.ckpt"):
        RecurrentDACAL(init_checkpoint=str(path), **(SMALL_DACAL | {"width": 4}))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        RecurrentDACAL(init_checkpoint=str(tmp_path / "missing.ckpt"), **SMALL_DACAL)


def test_recurrent_critic_loss_adds_a_temporal_critic_and_refuses_images():
    model = recurrent()
    clip = torch.rand(2, 3, 3, 32, 32)
    loss, terms = model.critic_loss({"input": clip, "target": torch.rand_like(clip)})
    assert torch.isfinite(loss) and "temporal_distance" in terms and "color_distance" in terms
    views = model.critic_views(clip)
    assert views["temporal"].shape == (2 * 2, 3, 32, 32) and views["color"].shape == (6, 3, 32, 32)
    with pytest.raises(ValueError, match="clips"):
        model.generator_loss({"input": clip[:, 0], "target": clip[:, 0]})
    without = recurrent(temporal_critic=False)
    assert "temporal" not in without.critics
    with pytest.raises(ValueError, match="single-scale"):
        RecurrentDACAL(multiscale=True, **SMALL_DACAL)


STREAM_SCRIPT = """
import gc, json, os, sys
import torch
torch.set_num_threads(1)
from baselines.dacal import RecurrentDACAL

def resident():
    gc.collect()
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

mode, warmup, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = RecurrentDACAL(width=8, critic_width=8, critic_features=16, w_content=0.0).eval()
with torch.no_grad():
    model.generator.state_to_features.weight.normal_(std=0.3)
generator = torch.Generator().manual_seed(0)
frames = (torch.rand(1, 3, 96, 128, generator=generator) for _ in range(warmup + 4 * n))
measured = {}
if mode == "stream":
    outputs = model.stream(frames)
else:  # the negative control: the same recurrence, keeping its autograd graph
    def keep_graph(frames):
        state = None
        for frame in frames:
            out, state = model.generator.step(frame, state)
            yield out
    outputs = keep_graph(frames)
for count, out in enumerate(outputs, start=1):
    del out
    if count in (warmup + n, warmup + 4 * n):
        measured[count] = resident()
print(json.dumps([measured[warmup + n], measured[warmup + 4 * n]]))
"""


def _stream_rss(mode: str, warmup: int, n: int) -> tuple[int, int]:
    """Resident memory after warm-up + N and warm-up + 4N streamed frames, in a fresh process
    (so the baseline is the model and torch, not whatever earlier tests left behind)."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, mode, str(warmup), str(n)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    after_n, after_4n = json.loads(done.stdout.strip().splitlines()[-1])
    return after_n, after_4n


def test_streaming_memory_stays_flat():
    """Acceptance: resident memory after warm-up for N and 4N frames within 10 %."""
    after_n, after_4n = _stream_rss("stream", warmup=10, n=30)
    assert after_4n <= 1.10 * after_n, f"RSS grew from {after_n / 2**20:.1f} to {after_4n / 2**20:.1f} MiB"
    # The measurement can fail: the same recurrence keeping its autograd graph grows far beyond 10 %.
    leak_n, leak_4n = _stream_rss("graph", warmup=10, n=30)
    assert leak_4n > 1.10 * leak_n, f"control: {leak_n / 2**20:.1f} -> {leak_4n / 2**20:.1f} MiB"


def test_an_image_method_trains_on_video_frames_and_a_video_method_on_clips(tiny_video, tmp_path):
    import lightning as L

    from benchmark.suite import set_dotted

    seen: list[tuple[int, ...]] = []

    class Shapes(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(tuple(batch["input"].shape))

    for config, extra in ((CONFIG_ROOT / "methods/hdrnet.yaml", {}),
                          (CONFIG_ROOT / "methods/dacal_recurrent.yaml",
                           {f"model.init_args.{k}": v for k, v in SMALL_DACAL.items()} | {
                               "model.init_args.content_backbone": "random", "model.init_args.critic_steps": 1})):
        full = deep_merge(deep_merge(load_yaml(CONFIG_ROOT / "trainer/quick.yaml"), load_yaml(config)),
                          load_yaml(CONFIG_ROOT / "data/demo_video.yaml"))
        overrides = {"data.init_args.root": str(tiny_video), "data.init_args.crop_size": 16,
                     "data.init_args.clip_length": 3, "data.init_args.batch_size": 2,
                     "data.init_args.train_samples_per_epoch": 4, "trainer.max_steps": 2, "trainer.max_epochs": 1,
                     "trainer.accelerator": "cpu", "trainer.enable_progress_bar": False,
                     "trainer.default_root_dir": str(tmp_path), "evaluator.out_dir": str(tmp_path)} | extra
        for key, value in overrides.items():
            set_dotted(full, key, value)
        cli = build_cli(full, run=False, save_config=False)
        seen.clear()
        cli.trainer.callbacks.append(Shapes())
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        expected = (2, 3, 3, 16, 16) if cli.model.video else (6, 3, 16, 16)
        assert seen and all(shape == expected for shape in seen), (config.stem, seen)
