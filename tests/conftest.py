"""Test settings shared by every test: offline, quiet, deterministic, small."""

from __future__ import annotations

import os

# Before anything imports wandb or albumentations.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Under CPU contention (DDP ranks, a second job) spinning OpenMP threads slow torch 10-30x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("QMAP_QUIET", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny tensors: extra threads only add overhead there,
    and on a shared 2-core machine a busy neighbour makes OpenMP spin-waits 10-20x slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Never read or write the user's real TORCH_HOME from a test."""
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    yield home


def _smooth_image(rng, height: int, width: int):
    """A smooth random colour image (low-frequency noise), float32 in [0, 1]."""
    import cv2
    import numpy as np

    coarse = rng.uniform(0.1, 0.8, size=(max(height // 8, 2), max(width // 8, 2), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image + rng.normal(0, 0.02, image.shape).astype(np.float32), 0, 1)


def tiny_target(image):
    """The mapping the tiny paired data asks methods to learn: brighter, warmer, more contrast."""
    import numpy as np

    gain = np.array([1.35, 1.2, 1.0], dtype=np.float32)
    return np.clip((image - 0.5) * 1.1 * gain + 0.55, 0, 1)


def write_tiny_paired(root, n_train: int = 6, n_test: int = 5, seed: int = 0):
    """Write a paired dataset in the PairedDataModule layout with a list-file split ``tiny``.

    Test images have different sizes (and one is larger than 512 px on its long side) so that
    protocols ``d`` and ``f`` differ and evaluation runs at batch size 1.
    """
    from pathlib import Path

    import cv2
    import numpy as np

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "input").mkdir(parents=True, exist_ok=True)
    (root / "target").mkdir(parents=True, exist_ok=True)
    (root / "splits" / "tiny").mkdir(parents=True, exist_ok=True)
    ids = {"train": [f"a{i:04d}" for i in range(1, n_train + 1)],
           "test": [f"a{i:04d}" for i in range(n_train + 1, n_train + n_test + 1)]}
    sizes = [(40, 56), (52, 36), (600, 90), (44, 44), (64, 48)]
    for split, split_ids in ids.items():
        for index, key in enumerate(split_ids):
            h, w = (48, 64) if split == "train" else sizes[index % len(sizes)]
            image = _smooth_image(rng, h, w)
            for folder, pixels in (("input", image), ("target", tiny_target(image))):
                bgr = cv2.cvtColor((pixels * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(root / folder / f"{key}.png"), bgr)
        (root / "splits" / "tiny" / f"{split}.txt").write_text("\n".join(split_ids) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_paired(tmp_path_factory):
    """A tiny paired dataset (6 train, 5 test images) shared by the tests that only read it."""
    return write_tiny_paired(tmp_path_factory.mktemp("tiny_paired"))


def _write_png(path, pixels) -> None:
    """float RGB in [0, 1] -> 8-bit PNG (parents created)."""
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor((pixels * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))


def write_tiny_weak(root, phone: str = "tiny", n_train: int = 6, n_test: int = 4, seed: int = 0):
    """Write weakly-paired patches in the DPED layout (WeaklyPairedDataModule, ``layout="dped"``).

    ``root/<phone>/training_data/{<phone>,canon}/N.png`` holds 48x48 training patches and
    ``root/<phone>/test_data/patches/{<phone>,canon}/N.png`` 100x100 test patches (protocol
    ``100`` requires that size); canon = :func:`tiny_target` of the phone patch.
    """
    from pathlib import Path

    import numpy as np

    root = Path(root)
    rng = np.random.default_rng(seed)
    for part, count, side in ((("training_data",), n_train, 48), (("test_data", "patches"), n_test, 100)):
        base = root.joinpath(phone, *part)
        for number in range(count):
            patch = _smooth_image(rng, side, side)
            _write_png(base / phone / f"{number}.png", patch)
            _write_png(base / "canon" / f"{number}.png", tiny_target(patch))
    return root


def write_tiny_unpaired(root, seed: int = 0):
    """Write unpaired data in both UnpairedDataModule layouts under one root.

    ``lists``: the tiny paired data (:func:`write_tiny_paired`, ids a0001-a0011) plus DPE-style
    lists in ``splits/tiny/``: ``train_input`` a0001-a0003, ``train_label`` a0004-a0006, ``test``
    a0007-a0011. ``folders``: copies of the same files, ``train_source/`` (inputs a0001-a0003),
    ``train_target/`` (targets a0004-a0006) and ``test/{input,target}/`` (a0007-a0011).
    """
    import shutil
    from pathlib import Path

    root = write_tiny_paired(Path(root), seed=seed)
    parts = {"train_input": range(1, 4), "train_label": range(4, 7), "test": range(7, 12)}
    copies = {"train_input": [("input", "train_source")], "train_label": [("target", "train_target")],
              "test": [("input", "test/input"), ("target", "test/target")]}
    for part, numbers in parts.items():
        ids = [f"a{n:04d}" for n in numbers]
        (root / "splits" / "tiny" / f"{part}.txt").write_text("\n".join(ids) + "\n")
        for source, destination in copies[part]:
            (root / destination).mkdir(parents=True, exist_ok=True)
            for key in ids:
                shutil.copyfile(root / source / f"{key}.png", root / destination / f"{key}.png")
    return root


@pytest.fixture(scope="session")
def tiny_weak(tmp_path_factory):
    """Tiny DPED-layout patches (phone ``tiny``) shared by the tests that only read them."""
    return write_tiny_weak(tmp_path_factory.mktemp("tiny_weak"))


@pytest.fixture(scope="session")
def tiny_unpaired(tmp_path_factory):
    """Tiny unpaired data in both layouts (split ``tiny``) shared by the tests that only read it."""
    return write_tiny_unpaired(tmp_path_factory.mktemp("tiny_unpaired"))


@pytest.fixture(scope="session")
def demo_all(tmp_path_factory):
    """Every demo set (``build_demo``: paired, weakly-paired, unpaired), built once per session.

    Returns build_demo's name -> folder dict. Tests only read it.
    """
    from datamodules.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo_all"), seed=0)


def save_hashed_weights(state, directory, stem: str):
    """Save a state dict under torchvision's release naming, ``<stem>-<first 8 hex of its SHA-256>.pth``.

    ``baselines.weights`` checks a file against the hash prefix in its name, so a file written
    this way passes the check exactly as a genuine torchvision release does.

    Returns:
        (path, prefix)
    """
    import hashlib
    from pathlib import Path

    import torch

    raw = Path(directory) / f"{stem}.pth.partial"
    torch.save(state, raw)
    sha = hashlib.sha256()
    with raw.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    prefix = sha.hexdigest()[:8]
    named = raw.with_name(f"{stem}-{prefix}.pth")
    raw.rename(named)
    return named, prefix


@pytest.fixture(scope="session")
def hashed_weights_writer():
    """:func:`save_hashed_weights` as a fixture, for modules that make fake torchvision releases."""
    return save_hashed_weights


def write_tiny_video(root, layout: str = "generic", n_train: int = 3, n_test: int = 2, frames: int = 6,
                     size: tuple[int, int] = (24, 32), motion: bool = True, seed: int = 0,
                     source_suffix: str = "_600"):
    """Write tiny videos in one of the VideoDataModule layouts.

    Each video is a window of ``size`` (h, w) panning over a smooth random scene by a whole number
    of pixels per frame, so frame ``t`` maps to the scene by the translation ``(dx_t, dy_t)``.
    Training videos have ``frames`` frames, test video ``i`` has ``frames + i`` (lengths differ).
    Targets are :func:`tiny_target` of the 8-bit input, except in the weakly aligned
    ``ntire_vqm`` layout, where the target window is offset by (2, 1) px and 4 px larger on each
    side (another resolution).

    Layouts: ``generic``: ``root/{train,test}/video<i>/{input,target}/%06d.png`` plus
    ``motion.json`` (``{"convention", "frames": {stem: [[1, 0, dx], [0, 1, dy]]}}``) when
    ``motion``; ``ntire_vqm``: ``root/{Training,Validation}{Source,Target}Domain/%03d/%06d.png``;
    ``intvid``: the same with ``source_suffix`` appended to the source-domain folder names.

    Returns:
        root
    """
    import json
    from pathlib import Path

    import numpy as np

    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    splits = ("train", "test") if layout == "generic" else ("Training", "Validation")
    for split, count in zip(splits, (n_train, n_test), strict=True):
        for index in range(count):
            length = frames if split == splits[0] else frames + index
            vx, vy = int(rng.integers(0, 3)), int(rng.integers(0, 2))
            scene = _smooth_image(rng, h + vy * length + 8, w + vx * length + 8)
            if layout == "generic":
                folder = root / split / f"video{index}"
                source_dir, target_dir = folder / "input", folder / "target"
            else:
                suffix = source_suffix if layout == "intvid" else ""
                source_dir = root / f"{split}SourceDomain{suffix}" / f"{index:03d}"
                target_dir = root / f"{split}TargetDomain" / f"{index:03d}"
            affines = {}
            for t in range(length):
                dx, dy = vx * t, vy * t
                frame = np.rint(scene[dy : dy + h, dx : dx + w] * 255) / 255
                if layout == "ntire_vqm":
                    target = tiny_target(scene[dy + 1 : dy + 1 + h + 4, dx + 2 : dx + 2 + w + 4])
                else:
                    target = tiny_target(frame.astype(np.float32))
                _write_png(source_dir / f"{t:06d}.png", frame)
                _write_png(target_dir / f"{t:06d}.png", target)
                affines[f"{t:06d}"] = [[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]]
            if layout == "generic" and motion:
                (source_dir.parent / "motion.json").write_text(json.dumps(
                    {"convention": "frame pixel (x right, y down, centres at integers) -> scene pixel",
                     "frames": affines}))
    return root


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory):
    """Tiny generic-layout videos (3 train x 6 frames, 2 test of 6 and 7 frames, 24x32, with
    motion.json) shared by the tests that only read them."""
    return write_tiny_video(tmp_path_factory.mktemp("tiny_video"))
