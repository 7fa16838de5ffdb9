"""Bad inputs: each ends in a clear one-line error or a recorded skip within a time bound, and
every listed video is accounted for (evaluated + skipped = listed).

Videos (corrupt, empty, non-video, audio-only, missing, FIFO, truncated), files zar wrote and
reads back (flipped bytes in a cache, a part file, a state file, a backbone; a SIGKILLed
encode), a full disk, archives (RAR/tar polyglot, ``a`` then ``a/b``, a damaged member),
downloads (https, pins, the lock file) and unsafe pickles. The reader's exactness on hard
containers and codecs is in test_video.py; zip/tar path traversal in test_archives.py.
"""
from __future__ import annotations

import ast
import errno
import hashlib
import io
import json
import logging
import os
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import ROOT, kill_when, moving_square, write_video
from videos_fixtures import LocalServer, make_rar
from zar.cli import main as zar
from zar.core.errors import UserError

FFMPEG = ["ffmpeg", "-v", "error", "-nostdin", "-y"]
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0)}
TIMEOUT = 3  # seconds the reader may spend on one video in these tests
FAST = ["--set", "run.workers=0", "--set", "run.batch_size=100", "--set", f"run.timeout={TIMEOUT}"]


# ----------------------------------------------------------------------------- helpers
def flip_tensor_bytes(path: Path, n: int = 8) -> None:
    """Flip ``n`` bytes in the middle of the largest tensor stored in a torch zip file: the
    archive stays readable (torch.load checks no CRC), only the numbers change."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert info.compress_type == zipfile.ZIP_STORED and info.file_size >= 2 * n
    data = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    torch.load(path, map_location="cpu", weights_only=True)  # still loads: the damage is silent


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def run_ffmpeg(*args) -> None:
    subprocess.run([*FFMPEG, *map(str, args)], check=True)


# ----------------------------------------------------------------------------- videos
@pytest.fixture
def videos(tmp_path, ffmpeg):
    """Two good videos and one of each kind of bad input, listed in one CSV."""
    root = tmp_path / "videos"
    rows = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        write_video(root / f"{name}.mp4", moving_square(n=24, colour=rgb, seed=i), fps=12)
        rows.append((name, f"{name}.mp4", name))
    full = root / "full.mp4"  # the index first, then cut in half: a partial file
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x72:rate=25:duration=4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-g", "25", "-movflags", "+faststart", full)
    (root / "truncated.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    data = bytearray((root / "red.mp4").read_bytes())
    data[:64] = os.urandom(64)  # the container header smashed
    (root / "corrupt.mp4").write_bytes(bytes(data))
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("<html>404 not found</html>\n" * 10)
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", root / "audio.mp4")
    os.mkfifo(root / "fifo.mp4")
    bad = {"truncated": None, "corrupt": "cannot open", "empty": "empty file", "text": "cannot open",
           "audio": "no video stream", "missing": "file not found", "fifo": "timed out"}
    rows += [(v, f"{v}.mp4", "red") for v in bad]
    lst = tmp_path / "list.csv"
    lst.write_text("video_id,path,class_name\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    classes = tmp_path / "classes.csv"
    classes.write_text("class_index,class_name,text\n" + "".join(f"{i},{n},{n} square\n" for i, n in enumerate(COLOURS)))
    return {"root": root, "list": lst, "classes": classes, "tmp": tmp_path, "bad": bad, "fifo": root / "fifo.mp4",
            "args": ["--videos", str(lst), "--root", str(root), "--backbone", "tiny"]}


def _release_fifo(fifo: Path, seconds: float = 10.0) -> None:
    """Give a reader blocked on the FIFO an end of file (it then fails and exits)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader waiting (any more)
            return
        time.sleep(0.1)


def test_every_bad_video_is_skipped_with_its_reason_in_time(videos):
    """`zar encode`: the good and the partial videos are encoded, every other one is skipped
    with its reason; evaluated + skipped = listed; a FIFO costs two time limits, not a hang."""
    from zar.method.cache import load_cache

    out = videos["tmp"] / "emb.pt"
    t0 = time.monotonic()
    assert zar(["encode", *videos["args"], "--out", str(out), *FAST]) == 0
    elapsed = time.monotonic() - t0
    assert elapsed < 120, elapsed
    cache = load_cache(out)
    reasons = {s["video_id"]: s["reason"] for s in cache.skipped}
    assert sorted(cache.video_ids) == ["green", "red", "truncated"]
    assert set(reasons) == {v for v, why in videos["bad"].items() if why}
    for vid, why in videos["bad"].items():
        if why:
            assert why in reasons[vid], (vid, reasons[vid])
    assert len(cache.video_ids) + len(cache.skipped) == cache.n_in_shards == 9
    assert [p["video_id"] for p in cache.partial] == ["truncated"]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_encoded"] + summary["n_skipped"] == summary["n_in_shard"] == 9
    # the result says which videos it evaluated on the frames of a damaged file, and accounts for all
    result = videos["tmp"] / "r.json"
    assert zar(["tune", "--embeddings", str(out), "--videos", str(videos["list"]), "--classes", str(videos["classes"]),
                "--backbone", "tiny", "--out", str(result), *FAST]) == 0
    s = json.loads(result.read_text())
    assert s["n_evaluated"] + s["n_skipped"] == s["n_listed"] == 9
    assert s["n_partial"] == 1 and s["partial"][0]["video_id"] == "truncated"
    assert s["partial"][0]["frames_read"] < s["partial"][0]["frames_declared"] == 100


def test_a_partial_file_is_read_with_the_partial_flag(videos, tiny_model):
    from zar.method import views as V
    from zar.method.frames import prepare_video
    from zar.core.splitfiles import VideoRow

    _, pre = tiny_model
    cfg = V.ViewConfig()
    cut = prepare_video(VideoRow("truncated", str(videos["root"] / "truncated.mp4"), "red", 0), cfg, pre)
    assert cut.partial is True and cut.frames_declared == 100
    assert 0 < cut.frames_read < 60 and cut.frames_read == cut.num_frames == cut.plan.num_frames
    good = prepare_video(VideoRow("red", str(videos["root"] / "red.mp4"), "red", 0), cfg, pre)
    assert good.partial is False and good.frames_read == good.frames_declared == 24


def test_sigkilled_encode_with_a_corrupt_part_resumes_to_the_same_cache(videos, caplog):
    """SIGKILL while `zar encode` waits on the FIFO (after the chunks before it are written),
    flip bytes inside one chunk, rerun: the corrupt chunk is removed and its videos encoded
    again, the others are reused, and the cache is bit-identical to an uninterrupted run's."""
    from zar.method.cache import load_cache

    args = ["encode", *videos["args"], *FAST, "--set", "run.chunk=1"]
    ref = videos["tmp"] / "ref.pt"
    assert zar([*args, "--out", str(ref)]) == 0
    out = videos["tmp"] / "killed.pt"
    parts = out.with_name(out.name + ".parts")
    try:  # the 8 videos listed before the FIFO are in chunks: it waits on the FIFO
        kill_when([*args, "--out", str(out)], lambda: len(list(parts.glob("part_*.pt"))) >= 8,
                  "the FIFO, 8 chunks written", limit=120)
    finally:
        _release_fifo(videos["fifo"])
    assert not out.exists()
    kept = sorted(parts.glob("part_*.pt"))
    assert len(kept) == 8
    flip_tensor_bytes(kept[0])  # the first chunk: a good video's embeddings
    cut = parts / ".part_00008.pt.k9x2ab.part"  # what a kill in the middle of writing a chunk leaves
    cut.write_bytes(kept[1].read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="zar.method.cache"):
        assert zar([*args, "--out", str(out)]) == 0
    assert f"removing corrupt chunk {kept[0]}" in caplog.text and f"removing {cut}" in caplog.text
    a, b = load_cache(ref), load_cache(out)
    assert a.video_ids == b.video_ids and a.skipped == b.skipped
    for key in ("views", "infer", "num_frames", "position"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert not parts.exists()


def test_flipped_bytes_in_a_final_cache_are_refused(videos, capsys):
    from zar.method.cache import load_cache

    out = videos["tmp"] / "emb.pt"
    assert zar(["encode", *videos["args"], "--out", str(out), *FAST]) == 0
    flip_tensor_bytes(out)
    with pytest.raises(UserError, match="corrupt embedding cache") as e:
        load_cache(out)
    assert str(out) in str(e.value) and "\n" not in str(e.value)
    rc = zar(["tune", "--embeddings", str(out), "--videos", str(videos["list"]), "--classes", str(videos["classes"]),
              "--backbone", "tiny", "--out", str(videos["tmp"] / "r.json"), *FAST])
    assert rc == 2
    assert "corrupt embedding cache" in one_line_error(capsys.readouterr().err)
    assert not (videos["tmp"] / "r.json").exists()


# ----------------------------------------------------------------------------- checkpoints
def test_flipped_bytes_in_a_state_file_are_refused(tmp_path):
    from zar.train.checkpoint import load_state, rng_state, save_state

    model = torch.nn.Linear(64, 64)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 64)).sum().backward()
    opt.step()
    state = {"format": "zar-train-state/1", "step": 3, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "rng": [rng_state()], "skipped": {}, "fingerprint": {"a": 1}}
    path = tmp_path / "state" / "step_00000003.pt"
    save_state(path, state)
    back = load_state(path)
    assert back["step"] == 3 and torch.equal(back["model"]["weight"], model.weight)
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    flip_tensor_bytes(path)
    with pytest.raises(UserError, match="corrupt `zar train` state file") as e:
        load_state(path)
    assert str(path) in str(e.value)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    from zar.model.backbone import build_model
    from zar.train.checkpoint import write_backbone

    model, _ = build_model("tiny")
    d = tmp_path_factory.mktemp("bb") / "good"
    write_backbone(d, model.state_dict(), {"arch": "ZAR-Tiny", "quick_gelu": False})
    return d


def _damaged_backbone(good: Path, dest: Path, how: str) -> Path:
    import shutil

    from safetensors.torch import load_file

    from zar.train.checkpoint import write_backbone

    shutil.copytree(good, dest)
    w, meta = dest / "model.safetensors", dest / "model.json"
    if how == "flipped":
        data = bytearray(w.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 8):
            data[i] ^= 0xFF
        w.write_bytes(bytes(data))
    elif how == "truncated":
        w.write_bytes(w.read_bytes()[:1000])
    elif how == "wrong-shapes":
        state = load_file(str(w))
        state["visual.proj"] = torch.zeros(3, 3)
        shutil.rmtree(dest)
        write_backbone(dest, state, {"arch": "ZAR-Tiny", "quick_gelu": False})
    elif how == "no-json":
        meta.unlink()
    elif how == "bad-json":
        meta.write_text("{not json")
    return dest


@pytest.mark.parametrize("how,message", [
    ("flipped", "corrupt backbone weights: sha256"), ("truncated", "corrupt backbone weights: sha256"),
    ("wrong-shapes", "weights do not fit the architecture"), ("no-json", "no model.json beside it"),
    ("bad-json", "not readable JSON"),
])
def test_a_bad_backbone_checkpoint_is_a_one_line_error(videos, backbone_dir, how, message, capsys):
    bad = _damaged_backbone(backbone_dir, videos["tmp"] / how, how)
    target = bad / "model.safetensors" if how == "no-json" else bad
    args = [a if a != "tiny" else str(target) for a in videos["args"]]
    rc = zar(["encode", *args, "--out", str(videos["tmp"] / "e.pt"), *FAST])
    assert rc == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not (videos["tmp"] / "e.pt").exists()


def test_the_backbone_records_and_checks_its_sha256(backbone_dir):
    from zar.model.backbone import build_model

    meta = json.loads((backbone_dir / "model.json").read_text())
    assert meta["weights_sha256"] == hashlib.sha256((backbone_dir / "model.safetensors").read_bytes()).hexdigest()
    build_model(str(backbone_dir))  # the good one loads


def _torch_load_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for f in sorted((ROOT / "zar").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                calls.append((str(f.relative_to(ROOT)), node.lineno, node))
    return calls


def test_every_torch_load_is_weights_only():
    calls = _torch_load_calls()
    assert len(calls) >= 3  # integrity, checkpoint, vifi
    for where, line, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, (where, line)
    for f in (ROOT / "zar").rglob("*.py"):  # nor does any message suggest turning it off
        assert "weights_only=False" not in f.read_text(encoding="utf-8"), f


def test_the_content_digest_sees_values_dtypes_shapes_and_structure():
    from zar.core.integrity import digest

    base = {"a": torch.arange(6, dtype=torch.float32), "b": [1, 2.5, None, "s", True], 3: (1, 2)}
    d = digest(base)
    assert digest(dict(reversed(list(base.items())))) == d  # key order does not matter
    buf = io.BytesIO()
    torch.save(base, buf)
    buf.seek(0)
    assert digest(torch.load(buf, weights_only=True)) == d  # survives a round trip
    variants = [
        {**base, "a": torch.arange(6, dtype=torch.float32).reshape(2, 3)},
        {**base, "a": torch.arange(6, dtype=torch.float64)},
        {**base, "a": torch.tensor([0, 1, 2, 3, 4, 5.0001])},
        {**base, "b": [1, 2.5, None, "s", 1]},  # True and 1 differ
        {**base, "b": (1, 2.5, None, "s", True)},  # a tuple is not a list
        {**base, "c": None},
        {k: v for k, v in base.items() if k != 3},
    ]
    assert len({digest(v) for v in variants} | {d}) == len(variants) + 1
    with pytest.raises(TypeError):
        digest({"x": object()})


def test_a_pickled_object_in_an_embedding_cache_is_refused_and_never_run(tmp_path):
    from zar.method.cache import load_cache

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"format": "zar-checked/1", "sha256": "0" * 64, "payload": Payload()}, path)
    with pytest.raises(UserError, match="not a readable embedding cache"):
        load_cache(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- disk full
class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, path, mode="r", *a, **k):
        self.f = open(path, mode, *a, **k)

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_is_a_one_line_error_and_leaves_nothing(tmp_path, monkeypatch):
    import zar.core.integrity as integrity
    import zar.train.checkpoint as ck
    import zar.core.files as utils
    from zar.method.cache import save_cache

    for module in (integrity, utils, ck):
        monkeypatch.setattr(module, "open", _FullDisk, raising=False)
    out = tmp_path / "out"
    cases = [(out / "cache.pt", lambda p: save_cache(p, {"format": "x", "t": torch.zeros(1000)})),
             (out / "summary.json", lambda p: utils.write_json(p, {"a": 1})),
             (out / "bb" / "model.safetensors",
              lambda p: ck.write_backbone(p.parent, {"w": torch.zeros(10)}, {"arch": "A", "quick_gelu": False}))]
    for path, write in cases:
        with pytest.raises(UserError) as e:
            write(path)
        assert str(e.value) == f"no space left on device while writing {path}"
    assert not [p for p in out.rglob("*") if p.is_file()]  # no final file, no temporary left


def test_a_full_disk_stops_downloads_and_extraction_at_once(tmp_path, monkeypatch):
    import zar.data.archives as archives
    import zar.data.fetch as fetch

    with LocalServer() as srv:
        srv.files["/f.bin"] = b"x" * 10000
        monkeypatch.setattr(fetch, "open", _FullDisk, raising=False)
        with pytest.raises(UserError, match="^no space left on device while writing .*f.bin.part$"):
            fetch.http_download(srv.url("/f.bin"), tmp_path / "f.bin", retries=3, backoff=0.01)
        assert len(srv.gets("/f.bin")) == 1  # not retried: it cannot help
    a = tmp_path / "a.zip"
    a.write_bytes(_zip([("x/one.txt", b"1"), ("x/two.txt", b"2")]))
    monkeypatch.setattr(archives, "open", _FullDisk, raising=False)
    with pytest.raises(UserError, match="^no space left on device while extracting"):
        archives.extract(a, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_encode_on_a_full_disk_says_so_in_one_line(videos, monkeypatch, capsys):
    import zar.core.integrity as integrity

    monkeypatch.setattr(integrity, "open", _FullDisk, raising=False)
    out = videos["tmp"] / "emb.pt"
    rc = zar(["encode", *videos["args"], "--out", str(out), *FAST, "--set", "run.chunk=100"])
    assert rc == 2
    line = one_line_error(capsys.readouterr().err)
    assert "no space left on device while writing" in line and "part_00000.pt" in line


# ----------------------------------------------------------------------------- archives
def _rar_tar_polyglot(tmp_path: Path) -> Path:
    """Starts with a valid RAR archive (one harmless member) inside the name field of a tar
    header: rarfile lists the RAR, bsdtar extracts the tar (a link out, a device, a file)."""
    rar = make_rar(tmp_path / "inner.rar", {"harmless.txt": b""}).read_bytes()
    assert len(rar) < 100
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        first = tarfile.TarInfo("x" * 99)
        tf.addfile(first)
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tf.addfile(link)
        dev = tarfile.TarInfo("null")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        tf.addfile(dev)
        extra = tarfile.TarInfo("unlisted.txt")
        extra.size = 5
        tf.addfile(extra, io.BytesIO(b"hello"))
    data = bytearray(buf.getvalue())
    data[:100] = rar.ljust(100, b"\0")
    data[148:156] = b" " * 8  # the tar header checksum, recomputed over the new name field
    data[148:156] = f"{sum(data[:512]):06o}\0 ".encode()
    path = tmp_path / "UCF101.rar"
    path.write_bytes(bytes(data))
    return path


def _no_links_or_devices(root: Path) -> None:
    for p in root.rglob("*"):
        assert not p.is_symlink() and (p.is_file() or p.is_dir()), p


def test_a_rar_tar_polyglot_is_refused_and_nothing_is_extracted(tmp_path):
    from zar.data.archives import UnsafeArchiveError, extract, extract_nested

    poly = _rar_tar_polyglot(tmp_path)
    assert subprocess.run(["bsdtar", "-tf", str(poly)], capture_output=True, text=True).stdout.count("\n") == 4
    for fn in (extract, extract_nested):
        dest = tmp_path / f"out_{fn.__name__}"
        with pytest.raises(UnsafeArchiveError, match="two formats at once") as e:
            fn(poly, dest)
        assert str(poly) in str(e.value)
        assert not dest.exists()
    _no_links_or_devices(tmp_path)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["zip", "tar", "rar"])
@pytest.mark.parametrize("order", [["a", "a/b"], ["a/b", "a"]])
def test_a_file_and_a_folder_of_the_same_name_are_refused(tmp_path, fmt, order):
    from zar.data.archives import UnsafeArchiveError, extract

    members = [(n, b"data") for n in order]
    a = tmp_path / f"x.{fmt}"
    if fmt == "zip":
        a.write_bytes(_zip(members))
    elif fmt == "tar":
        a.write_bytes(_tar(members))
    else:
        make_rar(a, dict(members))
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="is a file, but") as e:
        extract(a, dest)
    assert str(a) in str(e.value)
    assert not dest.exists()


def test_a_damaged_member_removes_everything_extracted(tmp_path):
    """The second member of a zip fails its CRC after the first was written: the target
    folder is removed, and the error names the archive in one line."""
    from zar.data.archives import extract

    a = tmp_path / "d.zip"
    a.write_bytes(_zip([("first.txt", b"fine" * 100), ("second.txt", b"soon broken" * 100)]))
    data = bytearray(a.read_bytes())
    i = data.rindex(b"soon broken")
    data[i] ^= 0xFF
    a.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(UserError, match="extraction failed") as e:
        extract(a, dest)
    assert str(a) in str(e.value) and "\n" not in str(e.value)
    assert not dest.exists()


# ----------------------------------------------------------------------------- downloads
def test_every_default_remote_is_https_and_the_published_ones_pinned():
    from zar.data.urls import DEFAULT_REMOTES

    assert all(r.url.startswith("https://") for r in DEFAULT_REMOTES.values())
    for key in ("ucf101_videos", "ucf101_splits", "hmdb51_videos", "hmdb51_splits"):
        assert len(DEFAULT_REMOTES[key].sha256 or "") == 64
    assert DEFAULT_REMOTES["hmdb51_videos"].url.startswith("https://serre-lab.clps.brown.edu/")


@pytest.fixture
def hmdb_server(tmp_path):
    inner = make_rar(tmp_path / "wave.rar", {"wave/w1.avi": b"RIFF....AVI one"})
    outer = make_rar(tmp_path / "hmdb51_org.rar", {"wave.rar": inner.read_bytes()})
    splits = make_rar(tmp_path / "s.rar", {"t/wave_test_split1.txt": b"w1.avi 2\n"})
    with LocalServer() as srv:
        srv.files["/hmdb51_org.rar"], srv.files["/test_train_splits.rar"] = outer.read_bytes(), splits.read_bytes()
        yield srv


def _sources(tmp_path: Path, srv, pins: dict | None = None) -> str:
    p = tmp_path / "sources.json"
    entries = {k: {"url": srv.url(f"/{f}")} for k, f in (("hmdb51_videos", "hmdb51_org.rar"),
                                                         ("hmdb51_splits", "test_train_splits.rar"))}
    for k, sha in (pins or {}).items():
        entries[k]["sha256"] = sha
    p.write_text(json.dumps(entries))
    return str(p)


def test_the_lock_file_pins_the_first_download_and_a_swapped_archive_stops(hmdb_server, tmp_path, capsys):
    root = tmp_path / "hmdb51"
    args = ["download", "--dataset", "hmdb51", "--root", str(root), "--sources", _sources(tmp_path, hmdb_server)]
    assert zar(args) == 0
    lock = json.loads((root / "sources.lock.json").read_text())
    real = hashlib.sha256(hmdb_server.files["/hmdb51_org.rar"]).hexdigest()
    assert lock["entries"][hmdb_server.url("/hmdb51_org.rar")]["sha256"] == real
    assert len(lock["entries"]) == 2
    # someone swaps the archive; a fresh download (markers gone) must notice
    evil = make_rar(tmp_path / "evil.rar", {"wave.rar": make_rar(tmp_path / "e2.rar", {"wave/w1.avi": b"x"}).read_bytes()})
    hmdb_server.files["/hmdb51_org.rar"] = evil.read_bytes()
    for marker in (root / "archives").glob("*.done"):
        marker.unlink()
    capsys.readouterr()
    assert zar(args) == 2
    line = one_line_error(capsys.readouterr().err)
    actual = hashlib.sha256(evil.read_bytes()).hexdigest()
    assert "sha256 mismatch" in line and real in line and actual in line and "sources.lock.json" in line
    assert (root / "archives" / "hmdb51_org.rar.bad").exists()


def test_a_known_pin_beats_the_lock(hmdb_server, tmp_path, capsys):
    root = tmp_path / "hmdb51"
    url = hmdb_server.url("/hmdb51_org.rar")
    real = hashlib.sha256(hmdb_server.files["/hmdb51_org.rar"]).hexdigest()
    root.mkdir()
    (root / "sources.lock.json").write_text(json.dumps(
        {"format": "zar-sources-lock/1", "entries": {url: {"sha256": "e" * 64, "bytes": 1}}}))
    args = ["download", "--dataset", "hmdb51", "--root", str(root),
            "--sources", _sources(tmp_path, hmdb_server, {"hmdb51_videos": real})]
    assert zar(args) == 0
    assert json.loads((root / "sources.lock.json").read_text())["entries"][url]["sha256"] == real
    # and a wrong pin stops, whatever the lock says
    for marker in (root / "archives").glob("*.done"):
        marker.unlink()
    bad = ["download", "--dataset", "hmdb51", "--root", str(root),
           "--sources", _sources(tmp_path, hmdb_server, {"hmdb51_videos": "1" * 64})]
    capsys.readouterr()
    assert zar(bad) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "expected " + "1" * 64 + " (pinned)" in line and real in line
