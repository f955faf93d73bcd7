"""Every shipped YAML config is a test case.

Method configs are parsed and instantiated with their own arguments, run one forward pass, get
one backward pass in which every parameter must receive a finite gradient, then train a few
steps and get scored — with only the trainer limits and the data replaced by tiny generated data.
Data, trainer and suite configs are parsed and instantiated the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.lightning_cli import build_cli
from benchmark.suite import CONFIG_ROOT, deep_merge, expand_suite, load_yaml, set_dotted

METHOD_CONFIGS = sorted((CONFIG_ROOT / "methods").glob("*.yaml"))
DATA_CONFIGS = sorted((CONFIG_ROOT / "data").glob("*.yaml"))
TRAINER_CONFIGS = sorted((CONFIG_ROOT / "trainer").glob("*.yaml"))
SUITE_CONFIGS = sorted((CONFIG_ROOT / "suites").glob("*.yaml"))


# Each data module gets tiny data in its own layout (fixtures from tests/conftest.py) and the
# init args that point it there; method, trainer and suite tests use the paired data.
PAIRED_TINY_ARGS = {"split": "tiny", "crop_size": 32}
TINY_DATA: dict[str, tuple[str, dict]] = {
    "datamodules.paired.PairedDataModule": ("tiny_paired", PAIRED_TINY_ARGS),
    "datamodules.weakly_paired.WeaklyPairedDataModule": ("tiny_weak", {"phone": "tiny", "patch_size": 32}),
    "datamodules.unpaired.UnpairedDataModule": ("tiny_unpaired", {"split": "tiny", "crop_size": 32}),
    "datamodules.video.VideoDataModule": ("tiny_video", {"crop_size": 16, "clip_length": 3, "eval_chunk": 4}),
}


def tiny_overrides(root: Path, out_dir: Path, data_args: dict = PAIRED_TINY_ARGS) -> dict:
    return {
        "data.init_args.root": str(root),
        **{f"data.init_args.{name}": value for name, value in data_args.items()},
        "data.init_args.batch_size": 2,
        "data.init_args.num_workers": 0,
        "data.init_args.train_samples_per_epoch": 4,
        "trainer.max_steps": 2,
        "trainer.max_epochs": 1,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.logger": False,
        "trainer.enable_progress_bar": False,
        "trainer.default_root_dir": str(out_dir),
        "evaluator.out_dir": str(out_dir),
        "evaluator.metrics": ["psnr", "ssim"],
    }


def compose(*configs: Path, overrides: dict) -> dict:
    config: dict = {}
    for path in configs:
        config = deep_merge(config, load_yaml(path))
    for key, value in overrides.items():
        set_dotted(config, key, value)
    return config


def test_every_kind_of_config_ships():
    assert METHOD_CONFIGS and DATA_CONFIGS and TRAINER_CONFIGS and SUITE_CONFIGS


VIDEO_DATA = "datamodules.video.VideoDataModule"


def is_video_method(class_path: str) -> bool:
    """Whether the method consumes clips itself (it then trains and is tested on video data)."""
    import importlib

    module, name = class_path.rsplit(".", 1)
    return bool(getattr(getattr(importlib.import_module(module), name), "video", False))


@pytest.mark.parametrize("method_config", METHOD_CONFIGS, ids=lambda p: p.stem)
def test_method_config(method_config, request, tmp_path):
    declared = load_yaml(method_config)["model"]
    video = is_video_method(declared["class_path"])
    fixture, data_args = TINY_DATA[VIDEO_DATA] if video else TINY_DATA["datamodules.paired.PairedDataModule"]
    overrides = tiny_overrides(request.getfixturevalue(fixture), tmp_path, data_args)
    if "content_backbone" in (declared.get("init_args") or {}):
        # Shipped configs name the pretrained VGG-19, whose file tests do not have; a method never
        # falls back silently, so the test asks for the seeded random stand-in explicitly.
        overrides["model.init_args.content_backbone"] = "random"
    data_config = CONFIG_ROOT / ("data/demo_video.yaml" if video else "data/demo.yaml")
    config = compose(CONFIG_ROOT / "trainer/quick.yaml", method_config, data_config, overrides=overrides)
    cli = build_cli(config, run=False, save_config=False)
    model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    assert f"{type(model).__module__}.{type(model).__name__}" == declared["class_path"]
    for name, value in (declared.get("init_args") or {}).items():
        if f"model.init_args.{name}" in overrides:
            assert model.hparams[name] == overrides[f"model.init_args.{name}"], f"{name} override not applied"
            continue
        assert model.hparams.get(name, getattr(model, name, value)) == value, f"{name} not taken from the YAML"

    image = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        model.eval()
        output = model(image)
    assert output.shape == image.shape and torch.isfinite(output).all()

    if model.trainable:
        model.train()
        datamodule.setup("fit")
        batch = next(iter(datamodule.train_dataloader()))
        if model.automatic_optimization:
            loss = model.training_step(batch, 0)
            loss.backward()
            for name, parameter in model.named_parameters():
                assert parameter.grad is not None, f"{name} received no gradient"
                assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
                assert parameter.grad.abs().sum() > 0, f"{name} received an all-zero gradient"
            model.zero_grad()
        trainer.fit(model, datamodule=datamodule)
        assert trainer.global_step >= 1
    trainer.test(model, datamodule=datamodule, verbose=False)
    evaluator = next(cb for cb in trainer.callbacks if type(cb).__name__ == "Evaluator")
    expected = {"psnr", "ssim", "seconds"} | ({"warp_error", "flicker"} if video else set())
    assert set(evaluator.rows["metric"]) == expected
    assert evaluator.rows["value"].notna().all()


@pytest.mark.parametrize("data_config", DATA_CONFIGS, ids=lambda p: p.stem)
def test_data_config(data_config, request, tmp_path):
    declared = load_yaml(data_config)["data"]
    assert declared["class_path"] in TINY_DATA, f"add tiny data for {declared['class_path']} to TINY_DATA"
    fixture, data_args = TINY_DATA[declared["class_path"]]
    root = request.getfixturevalue(fixture)
    layout = (declared.get("init_args") or {}).get("layout", "generic")
    if declared["class_path"] == VIDEO_DATA and layout != "generic":  # tiny videos in the config's own layout
        from tests.conftest import write_tiny_video

        root = write_tiny_video(tmp_path / "video", layout=layout, size=(24, 32))
    config = compose(CONFIG_ROOT / "trainer/quick.yaml", CONFIG_ROOT / "methods/identity.yaml", data_config,
                     overrides=tiny_overrides(root, tmp_path, data_args))
    datamodule = build_cli(config, run=False, save_config=False).datamodule
    assert f"{type(datamodule).__module__}.{type(datamodule).__name__}" == declared["class_path"]
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    if declared["class_path"] == VIDEO_DATA:  # clips of frames; whole videos streamed in chunks
        assert batch["input"].shape[1:] == (data_args["clip_length"], 3, 16, 16)
        assert batch["target"].shape == batch["input"].shape
        datamodule.setup("test")
        batch = next(iter(datamodule.test_dataloader()))
        assert batch["protocol"] == ["f"] and batch["input"].shape[:2] == (1, data_args["eval_chunk"])
        return
    assert batch["input"].shape[1:] == (3, 32, 32) and batch["target"].shape == batch["input"].shape
    datamodule.setup("test")
    loaders = datamodule.test_dataloader()
    assert len(loaders) == len(declared["init_args"]["protocols"])
    for loader, protocol in zip(loaders, declared["init_args"]["protocols"], strict=True):
        batch = next(iter(loader))
        assert batch["protocol"][0] == str(protocol) and batch["target"].shape == batch["input"].shape


@pytest.mark.parametrize("trainer_config", TRAINER_CONFIGS, ids=lambda p: p.stem)
def test_trainer_config(trainer_config, tiny_paired, tmp_path):
    overrides = tiny_overrides(tiny_paired, tmp_path)
    overrides.pop("trainer.logger")  # keep the config's own logger choice
    config = compose(trainer_config, CONFIG_ROOT / "methods/identity.yaml", CONFIG_ROOT / "data/demo.yaml",
                     overrides=overrides)
    trainer = build_cli(config, run=False, save_config=False).trainer
    assert trainer.max_steps == 2
    assert any(type(cb).__name__ == "Evaluator" for cb in trainer.callbacks)


@pytest.mark.parametrize("suite_config", SUITE_CONFIGS, ids=lambda p: p.stem)
def test_suite_config(suite_config, request, tmp_path):
    """Every run of every suite composes and instantiates, each on tiny data in its own layout."""
    specs = expand_suite(suite_config, tmp_path / "runs")
    assert specs, "a suite must expand to at least one run"
    assert len({spec.run_id for spec in specs}) == len(specs)
    for spec in specs:
        fixture, data_args = TINY_DATA[spec.config["data"]["class_path"]]
        overrides = tiny_overrides(request.getfixturevalue(fixture), tmp_path, data_args)
        if (spec.config["model"].get("init_args") or {}).get("content_backbone") == "vgg19":
            overrides["model.init_args.content_backbone"] = "random"  # explicit, as in test_method_config
        config = spec.config
        if spec.init_from is not None:  # its source never ran here: compose it without the weights
            assert config["model"]["init_args"]["init_checkpoint"] == str(spec.init_from.checkpoint)
            overrides["model.init_args.init_checkpoint"] = None
        for key, value in overrides.items():
            set_dotted(config, key, value)
        cli = build_cli(config, run=False, save_config=False)
        assert cli.model is not None and cli.datamodule is not None
