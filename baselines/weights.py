"""The one place pretrained weights are loaded (LPIPS backbones, VGG content losses).

Nothing here downloads. Weights are torchvision's release files, found in torchvision's own
cache (``$TORCH_HOME/hub/checkpoints/``, the directory ``torch.hub`` would download into) or at an
explicit path, and checked against the SHA-256 prefix that torchvision puts in each file name
(``alexnet-owt-7be5be79.pth`` → the file's digest starts with ``7be5be79``), exactly as
``torch.hub``'s ``check_hash`` does. A missing or foreign file raises :class:`WeightsUnavailable`
naming the file, the directory it belongs in, and the URL to fetch it from on a connected
machine — so no number is ever computed from the wrong weights (design.md section 6).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

DOWNLOAD_ROOT = "https://download.pytorch.org/models/"

# Short name -> torchvision release file name. The hex part of the name is the SHA-256 prefix.
TORCHVISION_WEIGHTS: dict[str, str] = {
    "alexnet": "alexnet-owt-7be5be79.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}

# The same rule as torch.hub's HASH_REGEX, anchored to the end: hex digits after the last '-'.
_HASH_PREFIX = re.compile(r"-([0-9a-f]+)\.pth$")

# (resolved path, size, mtime_ns) -> hex digest; a 550 MB VGG file is hashed once per process.
_DIGEST_CACHE: dict[tuple[str, int, int], str] = {}


class WeightsUnavailable(RuntimeError):
    """A pretrained weight file is missing or is not the torchvision release it claims to be."""


def weights_url(filename: str) -> str:
    """Return the torchvision download URL of a release file name."""
    return DOWNLOAD_ROOT + filename


def checkpoint_dir() -> Path:
    """Return torchvision's weight cache, ``torch.hub.get_dir()/checkpoints``.

    Read at call time, so a ``TORCH_HOME`` set after import (as the tests do) is honoured.
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def expected_hash_prefix(filename: str) -> str:
    """Return the SHA-256 prefix encoded in a torchvision file name.

    Args:
        filename: A torchvision release name such as ``vgg19-dcbb9e9d.pth``.

    Raises:
        ValueError: The name carries no hash prefix (a programming error, not a user's file).
    """
    match = _HASH_PREFIX.search(filename)
    if match is None:
        raise ValueError(f"{filename!r} carries no '-<hex>.pth' hash prefix")
    return match.group(1)


def sha256_of(path: str | Path) -> str:
    """Return the hex SHA-256 of a file, cached per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _DIGEST_CACHE.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        digest = _DIGEST_CACHE[key] = sha.hexdigest()
    return digest


def _where_to_get_it(filename: str) -> str:
    return (
        f"Put the torchvision release file {filename} in {checkpoint_dir()}{os.sep} "
        f"(TORCH_HOME/hub/checkpoints; TORCH_HOME={os.environ.get('TORCH_HOME', 'unset')}) "
        f"or pass its path explicitly. Fetch it on a connected machine from "
        f"{weights_url(filename)}"
    )


def verified_weights_path(filename: str, path: str | Path | None = None) -> Path:
    """Locate a torchvision weight file and check its SHA-256 prefix. Never downloads.

    Args:
        filename: The torchvision release name; its hex part is the expected hash prefix.
        path: An explicit file to use instead of ``checkpoint_dir() / filename``. It is checked
            against ``filename``'s hash prefix all the same, whatever it is called.

    Returns:
        The path of the verified file.

    Raises:
        WeightsUnavailable: The file does not exist, or its digest does not start with the
            prefix (a truncated download, or not the torchvision release).
    """
    prefix = expected_hash_prefix(filename)
    file = Path(path) if path is not None else checkpoint_dir() / filename
    if not file.is_file():
        raise WeightsUnavailable(
            f"pretrained weights {filename} not found: no file at {file}. "
            + _where_to_get_it(filename)
        )
    digest = sha256_of(file)
    if not digest.startswith(prefix):
        raise WeightsUnavailable(
            f"{file}: wrong hash: expected prefix {prefix}, got {digest[: len(prefix)]} — "
            f"the file is corrupt or not the torchvision release {filename}. "
            + _where_to_get_it(filename)
        )
    return file


def load_torchvision_state_dict(
    name: str, path: str | Path | None = None
) -> dict[str, torch.Tensor]:
    """Load a verified torchvision state dict by short name.

    Args:
        name: A key of :data:`TORCHVISION_WEIGHTS` (``alexnet``, ``vgg16``, ``vgg19``).
        path: An explicit weight file (see :func:`verified_weights_path`).

    Returns:
        The state dict, on the CPU, loaded with ``weights_only=True`` (no pickled code runs).

    Raises:
        KeyError: ``name`` is not a known torchvision network.
        WeightsUnavailable: The file is missing or fails the hash check.
    """
    if name not in TORCHVISION_WEIGHTS:
        raise KeyError(f"unknown network {name!r}; known: {sorted(TORCHVISION_WEIGHTS)}")
    file = verified_weights_path(TORCHVISION_WEIGHTS[name], path)
    return torch.load(file, map_location="cpu", weights_only=True)
