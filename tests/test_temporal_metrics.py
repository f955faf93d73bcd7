"""Temporal video metrics (warp_error, flicker) on synthetic videos with known camera motion.

The scene is a textured colour image with sharp-edged patches; each frame is a 48×64 window of
it under a known pan + zoom, rendered by OpenCV (not by the code under test). The known motion
gives exact flow; Farneback flow is checked against it, and both metrics must rank a flickering
copy of the video below the clean one, monotonically in the flicker strength.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from benchmark import metrics
from benchmark.results import HIGHER_IS_BETTER

H, W = 48, 64
FRAMES = 6
STRENGTHS = (0.0, 0.02, 0.05, 0.1, 0.2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one intra-op thread (see conftest.py)."""


# --------------------------------------------------------------------------------------------
# Synthetic video
# --------------------------------------------------------------------------------------------


def _scene(seed: int = 0, height: int = 200, width: int = 260) -> np.ndarray:
    """float32 HWC scene in [0.02, 0.83]: strong gray texture × smooth colour, plus sharp edges.

    The texture must have real contrast: on smooth low-contrast images Farneback flow comes out
    too short and the forward-backward check does not notice (both directions err alike).
    """
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 1, (height, width)).astype(np.float32), (0, 0), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    colour = rng.uniform(0.3, 0.9, (5, 6, 3)).astype(np.float32)
    colour = np.clip(cv2.resize(colour, (width, height), interpolation=cv2.INTER_CUBIC), 0.3, 0.9)
    scene = colour * (0.25 + 0.75 * texture[..., None])
    scene[60:140, 90:170] += np.float32([0.15, -0.1, 0.05])  # sharp-edged patches
    scene[30:90, 180:230] += np.float32([-0.1, 0.1, 0.1])
    # Top 0.83: the strongest flicker gain (1.2) stays below 1, so no clipping bends the curve.
    return np.clip(scene, 0.02, 0.83)


def _motion(t: int) -> np.ndarray:
    """Frame t's affine map, frame pixel -> scene: zoom out 2 % and pan (3, 1.5) px per frame."""
    s = 1.0 + 0.02 * t
    return np.array([[s, 0.0, 40.0 + 3.0 * t], [0.0, s, 40.0 + 1.5 * t]])


def _render(scene: np.ndarray, motion: np.ndarray) -> torch.Tensor:
    """The window of ``scene`` seen under ``motion``, quantised float32 (3, H, W)."""
    # WARP_INVERSE_MAP: the matrix maps destination (frame) pixels to source (scene) pixels.
    image = cv2.warpAffine(
        scene, motion, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )
    return metrics.quantize(torch.from_numpy(image).permute(2, 0, 1).contiguous())


def _flickering(video: list[torch.Tensor], strength: float) -> list[torch.Tensor]:
    """Frame t multiplied by ``1 + strength * (-1)^t``, clipped and quantised."""
    return [metrics.quantize(f * (1.0 + strength * (-1) ** t)) for t, f in enumerate(video)]


@pytest.fixture(scope="module")
def video() -> list[torch.Tensor]:
    scene = _scene()
    return [_render(scene, _motion(t)) for t in range(FRAMES)]


@pytest.fixture(scope="module")
def known_flows() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(flow, valid) of pairs (t-1, t), t = 1 … FRAMES-1, from the known motion."""
    return [
        metrics.motion_flow(torch.tensor(_motion(t - 1)), torch.tensor(_motion(t)), H, W)
        for t in range(1, FRAMES)
    ]


@pytest.fixture(scope="module")
def estimated_flows(video) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(flow, valid) of pairs (t-1, t) by Farneback on the clean frames."""
    return [metrics.optical_flow(video[t - 1], video[t]) for t in range(1, FRAMES)]


def _video_scores(pred, target, flows) -> dict[str, float]:
    """Both metrics averaged over the pairs of one video, as a report does."""
    per_pair = [
        metrics.temporal_scores(pred[t - 1], pred[t], target[t - 1], target[t], *flows[t - 1])
        for t in range(1, FRAMES)
    ]
    return {name: float(np.mean([p[name] for p in per_pair])) for name in per_pair[0]}


# --------------------------------------------------------------------------------------------
# motion_flow
# --------------------------------------------------------------------------------------------


def test_names_and_directions():
    assert metrics.TEMPORAL_METRIC_NAMES == ("warp_error", "flicker")
    assert all(HIGHER_IS_BETTER[name] is False for name in metrics.TEMPORAL_METRIC_NAMES)
    assert set(metrics.TEMPORAL_METRIC_NAMES) <= set(metrics.__all__)


def test_motion_flow_matches_pointwise_inverse_map():
    a_prev, a_cur = _motion(2), _motion(3)
    flow, valid = metrics.motion_flow(torch.tensor(a_prev), torch.tensor(a_cur), H, W)
    assert flow.shape == (2, H, W) and flow.dtype == torch.float32
    assert valid.shape == (H, W) and valid.dtype == torch.bool
    for x, y in [(0, 0), (63, 0), (10, 20), (63, 47), (31, 17), (0, 47)]:
        scene_point = a_cur @ np.array([x, y, 1.0])
        # Solve A_prev [x', y', 1] = scene point for (x', y'), independently of the code.
        x_prev, y_prev = np.linalg.solve(a_prev[:, :2], scene_point - a_prev[:, 2])
        assert flow[0, y, x].item() == pytest.approx(x_prev - x, abs=1e-4)
        assert flow[1, y, x].item() == pytest.approx(y_prev - y, abs=1e-4)
        inside = 0 <= x_prev <= W - 1 and 0 <= y_prev <= H - 1
        assert bool(valid[y, x]) == inside, (x, y, x_prev, y_prev)


def test_motion_flow_pure_pan_is_exact_including_the_border():
    # Frame t sees the scene 2 px further right and 1 px further up than frame t-1.
    a_prev = torch.tensor([[1.0, 0.0, 10.0], [0.0, 1.0, 5.0]])
    a_cur = torch.tensor([[1.0, 0.0, 12.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    flow, valid = metrics.motion_flow(a_prev, a_cur, H, W)
    assert torch.equal(flow[0], torch.full((H, W), 2.0))
    assert torch.equal(flow[1], torch.full((H, W), -1.0))
    expected = torch.ones(H, W, dtype=torch.bool)
    expected[:, W - 2 :] = False  # x' = x + 2 > W - 1: entered from the right
    expected[0, :] = False  # y' = -1: entered from the top
    assert torch.equal(valid, expected)  # x' = W - 1 exactly (column W - 3) is still inside


def test_motion_flow_warps_the_clean_video(video, known_flows):
    zero = torch.zeros(2, H, W)
    everywhere = torch.ones(H, W, dtype=torch.bool)
    for t, (flow, valid) in enumerate(known_flows, start=1):
        error = metrics.warp_error(video[t - 1], video[t], flow, valid)
        assert error < 1e-4, (t, error)
        # Without motion compensation the same pair is far apart: the flow does the work.
        assert metrics.warp_error(video[t - 1], video[t], zero, everywhere) > 30 * error
        # Zoom-out and pan to the right/down: new content enters on the right and bottom edges.
        assert not valid[:, -1].any() and not valid[-1, :].any()
        assert valid[: H // 2, : W // 2].all()
        assert 0.8 < valid.float().mean().item() < 0.95


def test_motion_flow_rejects_bad_matrices():
    good = torch.tensor(_motion(0))
    with pytest.raises(ValueError, match=r"motion_prev: expected a \(2, 3\) affine matrix"):
        metrics.motion_flow(torch.eye(3), good, H, W)
    with pytest.raises(ValueError, match="motion_cur: the affine matrix is singular"):
        metrics.motion_flow(good, torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]]), H, W)
    with pytest.raises(ValueError, match="at least 1×1 px"):
        metrics.motion_flow(good, good, 0, W)


# --------------------------------------------------------------------------------------------
# Acceptance: a flickering copy scores worse, monotonically in the flicker strength
# --------------------------------------------------------------------------------------------


def _check_flicker_ranking(video, flows) -> None:
    scores = [_video_scores(_flickering(video, s), video, flows) for s in STRENGTHS]
    clean = _video_scores(video, video, flows)
    assert scores[0] == clean  # strength 0 is the target itself
    assert clean["flicker"] == 0.0  # exactly: identical frames, identical means
    for name in metrics.TEMPORAL_METRIC_NAMES:
        values = [s[name] for s in scores]
        assert all(a < b for a, b in zip(values, values[1:])), (name, values)
        assert values[1] > clean[name]  # even 2 % flicker scores worse than the target
    # Flicker in levels: gain ±s on mean levels of ~70 moves each pair by ~2 s × 70.
    assert 1.0 < scores[1]["flicker"] < 10.0 and 20.0 < scores[-1]["flicker"] < 80.0


def test_flickering_copy_ranks_below_target_with_known_motion(video, known_flows):
    _check_flicker_ranking(video, known_flows)


def test_flickering_copy_ranks_below_target_with_estimated_flow(video, estimated_flows):
    _check_flicker_ranking(video, estimated_flows)


# --------------------------------------------------------------------------------------------
# optical_flow
# --------------------------------------------------------------------------------------------


def test_optical_flow_recovers_the_known_motion(video, known_flows, estimated_flows):
    for t, ((known, known_valid), (flow, valid)) in enumerate(
        zip(known_flows, estimated_flows), start=1
    ):
        assert flow.shape == (2, H, W) and flow.dtype == torch.float32
        assert valid.shape == (H, W) and valid.dtype == torch.bool
        both = valid & known_valid
        error = (flow - known).norm(dim=0)[both]
        assert error.median().item() < 0.5, t
        assert valid.float().mean().item() > 0.8, t
        # Most pixels that entered the view are caught by the consistency/bounds test.
        entered = ~known_valid
        assert (~valid[entered]).float().mean().item() > 0.8, t
        assert metrics.warp_error(video[t - 1], video[t], flow, valid) < 1e-4, t


def test_optical_flow_of_a_static_pair_is_zero_and_valid(video):
    flow, valid = metrics.optical_flow(video[0], video[0].clone())
    # Farneback's border handling leaves small residues at the frame edges (≈ 0.05 px).
    # A residue pointing outward drops an edge pixel (out of frame): the interior stays valid.
    assert flow.abs().max().item() < 0.2 and flow.abs().median().item() < 1e-3
    assert valid[1:-1, 1:-1].all()


def _fake_farneback(monkeypatch, backward: torch.Tensor, forward: torch.Tensor):
    """Make Farneback return chosen flows; frames black (t-1) and white (t) tell the calls apart."""

    def fake(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
        # optical_flow asks for (cur, prev) -> backward and (prev, cur) -> forward.
        return (backward if first[0, 0] == 255 else forward).to(torch.float64)

    monkeypatch.setattr(metrics, "_farneback", fake)
    return torch.zeros(3, H, W), torch.ones(3, H, W)


def _constant_flow(dx: float, dy: float = 0.0) -> torch.Tensor:
    return torch.stack((torch.full((H, W), dx), torch.full((H, W), dy)))


def test_forward_backward_check_samples_forward_flow_at_the_target(monkeypatch):
    # Forward flow undoes the backward one, except in columns 30-39 of frame t-1, where it
    # points elsewhere: frame-t pixels whose back-projection x + 2 lands there are occluded.
    forward = _constant_flow(-2.0)
    forward[0, :, 30:40] = 3.0
    prev, cur = _fake_farneback(monkeypatch, _constant_flow(2.0), forward)
    flow, valid = metrics.optical_flow(prev, cur)
    torch.testing.assert_close(flow, _constant_flow(2.0))
    expected = torch.ones(H, W, dtype=torch.bool)
    expected[:, 28:38] = False  # x + 2 in [30, 40)
    expected[:, W - 2 :] = False  # x + 2 > W - 1: outside frame t-1
    assert torch.equal(valid, expected)


@pytest.mark.parametrize(("mismatch", "consistent"), [(1.0, True), (1.6, False)])
def test_forward_backward_check_thresholds(monkeypatch, mismatch, consistent):
    # |f_b + f_f|² = m² against 0.01 (10² + (10 - m)²) + 0.5: 1 < 2.31 passes, 2.56 > 2.21 fails.
    # Without the relative term (0.5 alone) m = 1 would fail; without the absolute one, both.
    prev, cur = _fake_farneback(monkeypatch, _constant_flow(10.0), _constant_flow(-10.0 + mismatch))
    _, valid = metrics.optical_flow(prev, cur)
    assert bool(valid[:, : W - 10].all()) is consistent
    assert not valid[:, W - 9 :].any()  # x + 10 > W - 1


# --------------------------------------------------------------------------------------------
# warp_previous
# --------------------------------------------------------------------------------------------


def test_warp_previous_zero_flow_is_identity(video):
    out = metrics.warp_previous(video[0], torch.zeros(2, H, W))
    assert out.dtype == video[0].dtype and out.shape == video[0].shape
    torch.testing.assert_close(out, video[0], rtol=0, atol=1e-6)


def test_warp_previous_integer_shift(video):
    prev = video[0]
    flow = torch.stack((torch.full((H, W), 2.0), torch.full((H, W), -1.0)))
    out = metrics.warp_previous(prev, flow)
    # out(x, y) = prev(x + 2, y - 1) wherever that is inside the frame.
    torch.testing.assert_close(out[:, 1:, : W - 2], prev[:, : H - 1, 2:], rtol=0, atol=1e-6)
    # Outside: the border value (border padding).
    torch.testing.assert_close(out[:, 1:, W - 1], prev[:, : H - 1, W - 1], rtol=0, atol=1e-6)


def test_warp_previous_half_pixel_is_bilinear():
    prev = torch.arange(12, dtype=torch.float64).reshape(1, 3, 4)
    flow = torch.stack((torch.full((3, 4), 0.5), torch.zeros(3, 4)))
    out = metrics.warp_previous(prev, flow)
    expected = torch.tensor([[0.5, 1.5, 2.5, 3.0], [4.5, 5.5, 6.5, 7.0], [8.5, 9.5, 10.5, 11.0]])
    torch.testing.assert_close(out[0], expected.double(), rtol=0, atol=1e-12)


def test_warp_previous_rejects_mismatched_flow(video):
    with pytest.raises(ValueError, match=r"flow: expected \(2, 48, 64\)"):
        metrics.warp_previous(video[0], torch.zeros(2, H, W + 1))


# --------------------------------------------------------------------------------------------
# warp_error and flicker: units, masks, edge cases
# --------------------------------------------------------------------------------------------


def test_warp_error_units_and_mask(video):
    prev = video[0].clamp(max=0.9)
    cur = prev + 1.0 / 255.0  # one level brighter everywhere
    zero = torch.zeros(2, H, W)
    valid = torch.ones(H, W, dtype=torch.bool)
    assert metrics.warp_error(prev, cur, zero, valid) == pytest.approx((1 / 255) ** 2, rel=1e-9)
    # Garbage at invalid pixels does not count.
    valid[:, :10] = False
    spoiled = cur.clone()
    spoiled[:, :, :10] = 0.0
    assert metrics.warp_error(prev, spoiled, zero, valid) == pytest.approx((1 / 255) ** 2, rel=1e-9)
    # Only one channel off by 3 levels: averaged over the three channels.
    one_channel = prev.clone()
    one_channel[1] += 3.0 / 255.0
    everywhere = torch.ones(H, W, dtype=torch.bool)
    assert metrics.warp_error(prev, one_channel, zero, everywhere) == pytest.approx(
        (3 / 255) ** 2 / 3, rel=1e-9
    )


def test_no_valid_pixel_gives_nan(video):
    none = torch.zeros(H, W, dtype=torch.bool)
    flow = torch.zeros(2, H, W)
    assert math.isnan(metrics.warp_error(video[0], video[1], flow, none))
    scores = metrics.temporal_scores(video[0], video[1], video[0], video[1], flow, none)
    assert list(scores) == list(metrics.TEMPORAL_METRIC_NAMES)
    assert math.isnan(scores["warp_error"]) and scores["flicker"] == 0.0


def test_flicker_units_and_weakly_aligned_target(video):
    prev = video[0]
    cur = prev + 2.0 / 255.0  # +2 levels in every channel (scene max 0.83: no clipping)
    static_target = (video[1], video[1])
    assert metrics.flicker(prev, cur, *static_target) == pytest.approx(2.0, abs=1e-9)
    # A target that brightens the same way: no flicker, even at another size.
    big = torch.nn.functional.interpolate(prev[None], size=(60, 80), mode="bilinear")[0]
    big = metrics.quantize(big.clamp(max=0.9))
    assert metrics.flicker(prev, cur, big, big + 2.0 / 255.0) == pytest.approx(0.0, abs=1e-9)
    # Opposite changes add up; one channel counts a third.
    assert metrics.flicker(prev, cur, big, big - 1.0 / 255.0) == pytest.approx(3.0, abs=1e-9)
    red = prev.clone()
    red[0] += 6.0 / 255.0
    assert metrics.flicker(prev, red, *static_target) == pytest.approx(2.0, abs=1e-9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v, f, m: metrics.warp_error(v[0], v[1][:, :-1], f, m), "pred_prev .* differ"),
        (lambda v, f, m: metrics.warp_error(v[0], v[1], f[:, :-1], m), r"flow: expected \(2, 48"),
        (lambda v, f, m: metrics.warp_error(v[0], v[1], f, m[:-1]), "valid: expected a bool"),
        (lambda v, f, m: metrics.warp_error(v[0], v[1], f, m.float()), "valid: expected a bool"),
        (lambda v, f, m: metrics.warp_error(v[0][:2], v[1][:2], f, m), r"RGB frame \(3, H, W\)"),
        (lambda v, f, m: metrics.flicker(v[0], v[1], v[0], v[1][:, 1:]), "target_prev .* differ"),
        (lambda v, f, m: metrics.flicker(v[0][None], v[1], v[0], v[1]), r"pred_prev: expected"),
        (lambda v, f, m: metrics.optical_flow(v[0], v[1][:, :, 1:]), "reference_prev .* differ"),
    ],
)
def test_mismatched_shapes_raise(video, call, message):
    flow = torch.zeros(2, H, W)
    valid = torch.ones(H, W, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        call(video, flow, valid)
