"""Errors that are the user's to fix, and how to find them behind library wrappers.

jsonargparse wraps an exception raised while it instantiates a class (a missing weight file in a
method's constructor, say) in its own error; the CLI and the suite look through the chain so the
user reads one clear message, not a traceback.
"""

from __future__ import annotations


def find_user_error(error: BaseException | None) -> BaseException | None:
    """The first missing-weights, bad-image or missing-file error (e.g. an ``init_checkpoint``
    that was never written) in ``error``'s cause/context chain, if any."""
    from baselines.weights import WeightsUnavailable
    from datamodules.io import ImageReadError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, WeightsUnavailable | ImageReadError | FileNotFoundError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
