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
