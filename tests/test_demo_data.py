"""The synthetic demo dataset: split files in the shared formats, videos that show their class."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from zar.data import demo
from zar.cli import main
from zar.data.layout import output_path
from zar.core.errors import UserError

# a small dataset for the tests that render videos (the default one is used for split files)
SMALL = {
    "finetune_classes": 8, "finetune_train_videos": 3, "finetune_val_videos": 1,
    "pool_classes": 8, "split_classes": 6, "test_videos": 2, "b2n_train_videos": 2, "shots": 1,
}
KINETICS = ("k400", "k600")


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    assert b"\r" not in raw, f"{path}: not \\n line ends"
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, r)) for r in reader]
    return header, rows


def words_of(text: str) -> set[str]:
    return set(text.split())


@pytest.fixture(scope="module")
def splits_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "splits"
    assert main(["splits", "build", "--builder", "demo", "--splits", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def small_cfg() -> demo.DemoConfig:
    return demo.config_from_dict(SMALL)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory, small_cfg) -> Path:
    root = tmp_path_factory.mktemp("demo_data")
    for ds in ("hmdb51", "k600"):
        demo.write_videos(small_cfg, ds, root / ds)
    return root


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ----------------------------------------------------------------------------- split files
def test_layout_and_formats(splits_dir):
    cfg = demo.DemoConfig()
    expected = {"README.md", "MANIFEST.sha256", "k400/classes.csv", "k400/train.csv",
                "k600/classes.csv", "k600/zeroshot/novel220.csv"}
    for ds in ("k400", "hmdb51", "ucf101"):
        expected |= {f"{ds}/b2n/base/{n}.csv" for n in ("classes", "test", "train_s1", "train_s2", "train_s3")}
        expected |= {f"{ds}/b2n/novel/{n}.csv" for n in ("classes", "test")}
    for ds in ("hmdb51", "ucf101", "k600"):
        expected |= {f"{ds}/zeroshot/split{i}/{n}.csv" for i in (1, 2, 3) for n in ("classes", "test")}
    expected |= {"hmdb51/classes.csv", "ucf101/classes.csv"}
    found = {str(p.relative_to(splits_dir)) for p in splits_dir.rglob("*") if p.is_file()}
    assert found == expected

    for rel in sorted(expected):
        path = splits_dir / rel
        if not rel.endswith(".csv"):
            continue
        ds = rel.split("/")[0]
        header, rows = read_csv(path)
        assert rows, rel
        if rel.endswith("classes.csv") or rel.endswith("novel220.csv"):
            assert header == ["class_index", "class_name", "text"], rel
            assert [int(r["class_index"]) for r in rows] == list(range(len(rows))), rel
            names = [r["class_name"] for r in rows]
            assert names == sorted(names) and len(set(names)) == len(names), rel
            for r in rows:
                # the text is the class name's words, lowercase: re-derive it per convention
                if ds == "ucf101":
                    derived = " ".join(re.findall(r"[A-Z][a-z]*", r["class_name"])).lower()
                else:
                    derived = r["class_name"].replace("_", " ")
                assert r["text"] == derived, (rel, r)
                assert re.fullmatch(r"[a-z]+( [a-z]+)+", r["text"]), (rel, r)
            continue
        assert header[:4] == ["video_id", "path", "class_name", "class_index"], rel
        _, classes = read_csv(path.parent / "classes.csv")
        keys = [(int(r["class_index"]), r["video_id"]) for r in rows]
        assert keys == sorted(keys), f"{rel}: rows not sorted by (class_index, video_id)"
        assert len({r["video_id"] for r in rows}) == len(rows), rel
        for r in rows:
            assert classes[int(r["class_index"])]["class_name"] == r["class_name"], (rel, r)
            stem, ext = r["path"].rsplit("/", 1)[1].rsplit(".", 1)
            assert stem == r["video_id"], (rel, r)
            if ds in KINETICS:
                assert ext == "mp4" and r["path"].split("/")[0] in ("train", "val", "test"), r
                assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}_\d{6}", r["video_id"]), r
            else:
                assert ext == "avi" and r["path"].split("/")[0] == r["class_name"], r
    # sizes follow the config
    _, k400 = read_csv(splits_dir / "k400/classes.csv")
    _, train = read_csv(splits_dir / "k400/train.csv")
    assert len(k400) == cfg.finetune_classes
    assert len(train) == cfg.finetune_classes * cfg.finetune_train_videos
    _, s1 = read_csv(splits_dir / "hmdb51/zeroshot/split1/classes.csv")
    _, t1 = read_csv(splits_dir / "hmdb51/zeroshot/split1/test.csv")
    assert len(s1) == cfg.split_classes and len(t1) == cfg.split_classes * cfg.test_videos


def test_manifest_checks_every_file(splits_dir):
    lines = (splits_dir / "MANIFEST.sha256").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    files = {str(p.relative_to(splits_dir)) for p in splits_dir.rglob("*") if p.is_file()}
    assert set(listed) == files - {"MANIFEST.sha256"}
    assert list(listed) == sorted(listed)
    for rel, digest in listed.items():
        assert hashlib.sha256((splits_dir / rel).read_bytes()).hexdigest() == digest, rel
    assert "synthetic" in (splits_dir / "README.md").read_text().lower()


def test_novel_classes_are_new_combinations_of_seen_words(splits_dir):
    _, finetune = read_csv(splits_dir / "k400/classes.csv")
    seen = {r["text"] for r in finetune}
    seen_words = set().union(*(words_of(t) for t in seen))
    pools = {}
    for ds in ("hmdb51", "ucf101", "k600"):
        pool = read_csv(splits_dir / (f"{ds}/zeroshot/novel220.csv" if ds == "k600" else f"{ds}/classes.csv"))[1]
        pools[ds] = {r["text"] for r in pool}
        assert not pools[ds] & seen, ds
        for i in (1, 2, 3):
            texts = {r["text"] for r in read_csv(splits_dir / f"{ds}/zeroshot/split{i}/classes.csv")[1]}
            assert texts <= pools[ds] and not texts & seen, (ds, i)
            for t in texts:
                assert words_of(t) <= seen_words, (ds, t)
    # the roles are different datasets: their pools do not overlap
    assert not pools["hmdb51"] & pools["ucf101"] and not pools["k600"] & (pools["hmdb51"] | pools["ucf101"])
    # Kinetics-600 holds the fine-tuning classes plus its novel pool
    k600 = {r["text"] for r in read_csv(splits_dir / "k600/classes.csv")[1]}
    assert k600 == seen | pools["k600"]


def test_three_zeroshot_splits_differ(splits_dir):
    for ds in ("hmdb51", "ucf101", "k600"):
        classes = [frozenset(r["class_name"] for r in read_csv(splits_dir / f"{ds}/zeroshot/split{i}/classes.csv")[1])
                   for i in (1, 2, 3)]
        assert len(set(classes)) == 3, ds
        for i in (1, 2, 3):
            _, test = read_csv(splits_dir / f"{ds}/zeroshot/split{i}/test.csv")
            assert {r["class_name"] for r in test} == classes[i - 1], (ds, i)


def test_splits_spread_their_classes_over_the_colours():
    """Each split takes its classes from the pool with colours repeating as little as possible:
    with as many classes as colours (the demo's data), every colour once."""
    from zar.data.demo.design import design_classes

    cfg = demo.load_config(Path(__file__).resolve().parents[1] / "demo/config/demo_data.yaml")
    assert cfg.split_classes == len(cfg.colours)
    design = design_classes(cfg)
    for ds, splits in design["splits"].items():
        assert len({frozenset(s) for s in splits}) == 3, ds
        for s in splits:
            assert set(s) <= set(design["pools"][ds]) and len(s) == cfg.split_classes
            assert sorted(c[0] for c in s) == sorted(cfg.colours), (ds, s)
    # fewer colours than classes: each colour as often as the pool allows (12 classes, 4 colours: 3 each)
    small = demo.config_from_dict({"colours": {"red": [200, 0, 0], "green": [0, 200, 0], "blue": [0, 0, 200],
                                               "yellow": [200, 200, 0]}, "split_classes": 12})
    for splits in design_classes(small)["splits"].values():
        counts = {}
        for c in splits[0]:
            counts[c[0]] = counts.get(c[0], 0) + 1
        assert sorted(counts.values()) == [3, 3, 3, 3]


def test_base_to_novel_lists(splits_dir):
    cfg = demo.DemoConfig()
    for ds in ("k400", "hmdb51", "ucf101"):
        b2n = splits_dir / ds / "b2n"
        base = {r["text"] for r in read_csv(b2n / "base/classes.csv")[1]}
        novel = {r["text"] for r in read_csv(b2n / "novel/classes.csv")[1]}
        full = {r["text"] for r in read_csv(splits_dir / ds / "classes.csv")[1]}
        assert base and novel and not base & novel and base | novel == full, ds
        base_words = set().union(*(words_of(t) for t in base))
        assert all(words_of(t) <= base_words for t in novel), ds
        test_ids = {r["video_id"] for r in read_csv(b2n / "base/test.csv")[1]}
        shot_lists = []
        for s in (1, 2, 3):
            _, rows = read_csv(b2n / f"base/train_s{s}.csv")
            per_class: dict[str, int] = {}
            for r in rows:
                per_class[r["class_name"]] = per_class.get(r["class_name"], 0) + 1
            assert len(per_class) == len(base) and set(per_class.values()) == {cfg.shots}, (ds, s)
            ids = frozenset(r["video_id"] for r in rows)
            assert not ids & test_ids, (ds, s)
            shot_lists.append(ids)
        assert len(set(shot_lists)) == 3, ds


def test_split_files_are_deterministic(tmp_path, splits_dir):
    again = tmp_path / "again"
    demo.write_splits(demo.DemoConfig(), again)
    files = sorted(p.relative_to(splits_dir) for p in splits_dir.rglob("*") if p.is_file())
    for rel in files:
        assert (again / rel).read_bytes() == (splits_dir / rel).read_bytes(), rel
    other = tmp_path / "other"
    demo.write_splits(demo.config_from_dict({"seed": 1}), other)
    assert (other / "k400/classes.csv").read_bytes() != (splits_dir / "k400/classes.csv").read_bytes()


# ----------------------------------------------------------------------------- config
def test_unknown_config_key_is_an_error_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 3\ncolors: {red: [255, 0, 0]}\n")
    with pytest.raises(UserError, match="colors"):
        demo.load_config(bad)
    assert main(["splits", "build", "--builder", "demo", "--splits", str(tmp_path / "x"), "--demo-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "colors" in err and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_config_overrides_and_type_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("demo_data:\n  seed: 7\n  object_size: 40\n  shapes: [circle, square, diamond]\n")
    cfg = demo.load_config(good)
    assert (cfg.seed, cfg.object_size, cfg.shapes) == (7, 40.0, ("circle", "square", "diamond"))
    assert cfg.fps == demo.DemoConfig().fps
    with pytest.raises(UserError, match="seed"):
        demo.config_from_dict({"seed": "abc"})
    with pytest.raises(UserError, match="hexagon"):
        demo.config_from_dict({"shapes": ["circle", "square", "hexagon"]})
    with pytest.raises(UserError, match="combinations"):
        demo.config_from_dict({"pool_classes": 40})


@pytest.mark.parametrize("key, value, words", [
    ("colours", {"red": [255, 0]}, "demo_data.colours"),                    # not RGB
    ("colours", {"red": [255, 0, 256]}, "<= 255"),
    ("speeds", {"slowly": 0}, "demo_data.speeds"),                          # must move
    ("train_visible", [0.5, 1.5], "demo_data.train_visible"),
    ("trail_taper", 1.0, "< 1"),
    ("hidden", "blurred", "one of absent, grey"),
    ("width", 31, ">= 32"),
    ("background_range", [50, 40], "low <= high"),                          # a rule across the pair
    ("min_frames", 50, "min_frames must be at most max_frames"),  # the default max_frames is 48
])
def test_every_demo_setting_is_bounded_and_named_with_the_file(tmp_path, key, value, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"demo_data": {key: value}}))
    with pytest.raises(UserError) as e:
        demo.load_config(bad)
    assert str(bad) in str(e.value) and words in str(e.value) and len(str(e.value).splitlines()) == 1


def test_every_demo_key_is_a_setting_with_a_description():
    from zar.core.fields import settings_fields

    declared = settings_fields(demo.DemoConfig)
    assert set(declared) == {f.name for f in dataclasses.fields(demo.DemoConfig)}
    assert all(meta["description"] for meta in declared.values())


# ----------------------------------------------------------------------------- videos
def test_videos_decode_with_planned_frames_and_size(small_root, small_cfg):
    plan = demo.plan_videos(small_cfg)
    lengths = set()
    for ds in ("hmdb51", "k600"):
        manifest = read_csv(small_root / ds / "demo_videos.csv")[1]
        assert [r["path"] for r in manifest] == [v.path for v in plan[ds]]
        for v, row in zip(plan[ds], manifest):
            path = output_path(small_root / ds, v.path)  # written in the normalised form of `zar decode`
            assert Path(v.path).suffix == (".avi" if ds == "hmdb51" else ".mp4") and path.suffix == ".mp4"
            assert row["output"] == path.relative_to(small_root / ds).as_posix()
            frames = decode(path)
            assert frames.shape == (v.num_frames, small_cfg.height, small_cfg.width, 3), v
            assert int(row["num_frames"]) == v.num_frames
            assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
            lengths.add(v.num_frames)
    assert small_cfg.short_clip_frames in lengths
    assert len(lengths) > 3  # lengths vary
    assert all(small_cfg.min_frames <= n <= small_cfg.max_frames
               for n in lengths - {small_cfg.short_clip_frames})


def test_videos_are_resumable_and_deterministic(small_root, small_cfg, tmp_path):
    raw = small_root / "k600" / "videos"
    files = sorted(raw.rglob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    removed = files[0]
    removed.unlink()
    demo.write_videos(small_cfg, "k600", small_root / "k600")  # writes only the missing one
    assert removed.is_file()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files[1:])
    assert not [p for p in raw.rglob("*") if p.name.startswith(".")]  # no temp files left
    demo.write_videos(small_cfg, "k600", tmp_path / "k600")  # a second run elsewhere: the same bytes
    for p in files:
        assert p.read_bytes() == (tmp_path / "k600" / "videos" / p.relative_to(raw)).read_bytes(), p


def test_the_same_frames_encode_to_the_same_bytes_again_and_in_another_process(small_root, small_cfg, tmp_path):
    """The demo's videos are reproducible to the byte: encoding the same clips four times in one
    process (x264's lookahead made them differ) and writing them in a fresh process give the
    bytes the fixture wrote."""
    import hashlib
    import subprocess
    import sys

    from zar.data.demo.render import render_clip, video_seed, write_video

    cfg = demo.load_config(ROOT / "demo" / "config" / "demo_data.yaml")  # the demo's 2:1 frames show it
    clips = [render_clip(cfg, v.combo, v.num_frames, video_seed(cfg, v), tuple(cfg.train_visible), cfg.train_edge)
             for v in demo.plan_videos(cfg)["k400"][:12]]
    runs = []
    for _ in range(4):
        h = hashlib.sha256()
        for clip in clips:
            write_video(clip, tmp_path / "again.mp4", cfg.fps)
            h.update((tmp_path / "again.mp4").read_bytes())
        runs.append(h.hexdigest())
    assert len(set(runs)) == 1
    code = ("import sys; from pathlib import Path; from zar.data import demo; "
            "demo.write_videos(demo.config_from_dict(eval(sys.argv[1])), 'k600', Path(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, repr(SMALL), str(tmp_path / "other")], check=True, cwd=ROOT)
    for v in demo.plan_videos(small_cfg)["k600"]:
        assert output_path(tmp_path / "other", v.path).read_bytes() == output_path(small_root / "k600", v.path).read_bytes()


def _head_centroids(frames: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: centroid (x, y) of the pixels within reach of the pure colour, and their count.

    The shape wraps around the frame edges, so the centroid is a circular mean on each axis.
    """
    dist = np.linalg.norm(frames.astype(np.float64) - rgb, axis=-1)
    mask = dist < 50
    count = mask.sum(axis=(1, 2))
    T, H, W = mask.shape
    out = []
    for axis, size in ((2, W), (1, H)):
        angle = 2 * np.pi * np.arange(size) / size
        weight = mask.sum(axis=3 - axis)  # (T, size): pixels per column / row
        mean_angle = np.arctan2(weight @ np.sin(angle), weight @ np.cos(angle))
        out.append((mean_angle % (2 * np.pi)) * size / (2 * np.pi))
    return np.stack(out, 1), count


def test_decoded_videos_show_colour_direction_speed_and_shape(small_root, small_cfg):
    plan = demo.plan_videos(small_cfg)
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    moved = {"slowly": [], "quickly": []}
    checked = 0
    for ds in ("hmdb51", "k600"):
        for v in plan[ds]:
            if v.num_frames < 12:
                continue
            colour, shape, direction, speed = v.combo
            frames = decode(output_path(small_root / ds, v.path))
            rgb = np.asarray(small_cfg.colours[colour], np.float64)
            # the named colour is the one the frame's saturated pixels are closest to
            centre, count = _head_centroids(frames, rgb)
            others = [_head_centroids(frames, np.asarray(c, np.float64))[1].sum()
                      for name, c in small_cfg.colours.items() if name != colour]
            assert count.min() > 300 and count.sum() > 5 * max(others), (v.path, count.min(), others)
            # it moves in the named direction: median frame-to-frame step, wrap-aware
            d = np.diff(centre, axis=0)
            d[:, 0] = (d[:, 0] + small_cfg.width / 2) % small_cfg.width - small_cfg.width / 2
            d[:, 1] = (d[:, 1] + small_cfg.height / 2) % small_cfg.height - small_cfg.height / 2
            med = np.median(d, axis=0)
            ux, uy = step[direction]
            along, across = med[0] * ux + med[1] * uy, abs(med[0] * uy + med[1] * ux)
            assert along > 0.5 and across < 0.3, (v.path, med)
            moved[speed].append(along)
            # and has the named shape: fill ratio of its bounding box away from the edges
            fills = []
            for f in frames:
                mask = np.linalg.norm(f.astype(np.float64) - rgb, axis=-1) < 50
                ys, xs = np.nonzero(mask)
                if xs.min() == 0 or ys.min() == 0 or xs.max() == f.shape[1] - 1 or ys.max() == f.shape[0] - 1:
                    continue
                fills.append(mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1)))
            if fills:
                lo, hi = {"square": (0.85, 1.01), "circle": (0.68, 0.85), "triangle": (0.4, 0.62)}[shape]
                assert lo < np.median(fills) < hi, (v.path, np.median(fills))
            checked += 1
    assert checked >= 20
    # the speed words mean what they say: quick steps are about 3x the slow ones
    slow, quick = np.median(moved["slowly"]), np.median(moved["quickly"])
    assert abs(slow - small_cfg.speeds["slowly"]) < 0.3 and abs(quick - small_cfg.speeds["quickly"]) < 0.6
    assert quick > 2 * slow


def test_render_is_a_pure_function_of_its_seed(small_cfg):
    combo = ("red", "circle", "left", "quickly")
    a = demo.render_clip(small_cfg, combo, 12, 5)
    assert a.shape == (12, small_cfg.height, small_cfg.width, 3) and a.dtype == np.uint8
    assert np.array_equal(a, demo.render_clip(small_cfg, combo, 12, 5))
    assert not np.array_equal(a, demo.render_clip(small_cfg, combo, 12, 6))
