"""The view sampler (docs/protocol.md §3.1)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from zar.method import views as V
from zar.core.errors import UserError


@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 100, 301])
def test_indices_in_range_sorted_and_T_long(n):
    cfg = V.ViewConfig()
    for r in cfg.rates:
        for s in range(cfg.samples_per_rate):
            idx = V.clip_indices(n, cfg, "vid", r, s)
            assert len(idx) == cfg.frames
            assert idx.min() >= 0 and idx.max() <= n - 1
            assert np.all(np.diff(idx) >= 0)
    inf = V.inference_indices(n, cfg.frames)
    assert len(inf) == cfg.frames and inf.min() >= 0 and inf.max() <= n - 1 and np.all(np.diff(inf) >= 0)


def test_short_videos_repeat_frames():
    assert V.clip_indices(1, V.ViewConfig(), "v", 1, 0).tolist() == [0] * 16
    idx = V.clip_indices(3, V.ViewConfig(), "v", 1, 0)
    assert sorted(set(idx.tolist())) == [0, 1, 2]  # all three frames used, repeated
    assert V.inference_indices(3, 16).tolist() == [int((i + 0.5) * 3 / 16) for i in range(16)]


@pytest.mark.parametrize("rate", [1, 2, 4, 8])
def test_window_spans_requested_fraction(rate):
    n, T = 800, 16
    cfg = V.ViewConfig(frames=T)
    length = n / rate
    for s in range(20):
        idx = V.clip_indices(n, cfg, f"v{s}", rate, s)
        span = idx.max() - idx.min()
        # T indices, one per segment of length/T: the span is at least (T-2) segments, at most the window
        assert span <= length
        assert span >= (T - 2) * length / T
        # consecutive indices are at most two segments apart (one index per segment)
        assert np.all(np.diff(idx) <= 2 * length / T + 1)


def test_segment_based_reference():
    """Straightforward re-implementation: one index per equal segment of the window."""
    n, T = 120, 8
    cfg = V.ViewConfig(frames=T)
    rng = np.random.default_rng(np.random.SeedSequence([0, V.stable_int("video", "abc"), 4, 2]))
    length = n / 4
    start = rng.uniform(0, n - length)
    offs = rng.uniform(0, 1, size=T)
    ref = [min(n - 1, int(np.floor(start + (i + offs[i]) * length / T))) for i in range(T)]
    assert V.clip_indices(n, cfg, "abc", 4, 2).tolist() == ref
    assert V.inference_indices(n, T).tolist() == [int((i + 0.5) * n / T) for i in range(T)]


def test_whole_video_rate_gives_different_samples():
    cfg = V.ViewConfig()
    clips = [tuple(V.clip_indices(300, cfg, "v", 1, s)) for s in range(4)]
    assert len(set(clips)) == 4


def test_seeded_by_seed_and_video_id():
    a = V.clip_indices(500, V.ViewConfig(seed=0), "a", 2, 0)
    assert np.array_equal(a, V.clip_indices(500, V.ViewConfig(seed=0), "a", 2, 0))
    assert not np.array_equal(a, V.clip_indices(500, V.ViewConfig(seed=1), "a", 2, 0))
    assert not np.array_equal(a, V.clip_indices(500, V.ViewConfig(seed=0), "b", 2, 0))
    # removing rates or crops does not change the remaining views' frames
    fewer = V.ViewConfig(rates=(1, 2), crops=1)
    assert np.array_equal(a, V.clip_indices(500, fewer, "a", 2, 0))


def test_identical_across_processes():
    code = ("import json; from zar.method import views as V; c=V.ViewConfig(); "
            "print(json.dumps({f'{r}/{s}': V.clip_indices(777, c, 'vid_x', r, s).tolist() "
            "for r in c.rates for s in range(c.samples_per_rate)}))")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in (1, 2)]
    assert outs[0] == outs[1]
    here = {f"{r}/{s}": V.clip_indices(777, V.ViewConfig(), "vid_x", r, s).tolist() for r in (1, 2, 4, 8) for s in range(4)}
    assert json.loads(outs[0]) == here


@pytest.mark.parametrize("h,w", [(256, 341), (341, 256), (256, 256), (240, 320)])
@pytest.mark.parametrize("crops", [1, 3, 5, 9])
def test_crops_inside_frame(h, w, crops):
    for pos in V.CROP_SETS[crops]:
        top, left, ch, cw = V.crop_box(h, w, 224, pos)
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch == cw == 224


def test_crop_geometry():
    # 3 crops on a landscape frame: left edge, centre, right edge at vertical centre
    assert V.crop_box(256, 341, 224, "left") == (16, 0, 224, 224)
    assert V.crop_box(256, 341, 224, "center") == (16, 58, 224, 224)
    assert V.crop_box(256, 341, 224, "right") == (16, 117, 224, 224)
    assert V.crop_box(256, 341, 224, "top") == (0, 58, 224, 224)
    assert V.crop_box(256, 341, 224, "bottom_right") == (32, 117, 224, 224)
    assert set(V.CROP_SETS[1]) < set(V.CROP_SETS[3]) < set(V.CROP_SETS[5]) < set(V.CROP_SETS[9])
    assert V.resized_shape(240, 320, 256) == (256, 341)
    with pytest.raises(ValueError):
        V.crop_box(100, 300, 224, "center")


def test_plan_and_config():
    cfg = V.ViewConfig()
    plan = V.view_plan(cfg)
    assert len(plan) == cfg.n_views == 48
    assert len({(p.rate, p.sample, p.crop) for p in plan}) == 48
    assert cfg.view_short_side(224) == 256 and cfg.view_short_side(64) == 73
    assert V.ViewConfig(crops=9, rates=(1,)).n_views == 36
    for bad in (dict(crops=4), dict(rates=()), dict(rates=(1, 1)), dict(frames=0), dict(rates=(0,))):
        with pytest.raises(UserError):
            V.ViewConfig(**bad)
