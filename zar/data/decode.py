"""``zar decode``: re-encode raw videos to a uniform, fast-to-seek form, with a manifest.

Output: ``<root>/videos/<path with suffix .mp4>``: h264 (libx264, yuv420p), constant frame
rate (the source's average rate), a keyframe at least every second, no audio, shorter side
scaled down to ``--short-side`` (never up; dimensions even). Each video is handled by ffprobe
and ffmpeg processes under one time limit (the process group is killed past it), so a
pathological file becomes a ``corrupt`` row, never a hang. The output is written to a
temporary name, decoded to the end by ffprobe and its frame count compared with what ffmpeg
wrote, and only then renamed. ``decode_manifest.csv`` records for every listed video the
source facts (fps, decoded frames, duration, codec, size, the header's frame count) and the
output's (frames, fps, width, height).
"""
from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path

from zar.data.layout import CRF, NORMALISED_MANIFEST, PRESET, output_path
from zar.data.manifest import (DECODE_COLUMNS, entry_problem, raw_path, read_manifest, write_manifest)
from zar.data.media import (ToolTimeout, container_problem, ffprobe_json, last_line, require_tool,
                            run_tool)
from zar.core.splitfiles import VideoRow
from zar.core.errors import UserError
from zar.core.files import atomic_path, read_json, write_json
from zar.core.progress import progress

log = logging.getLogger(__name__)

TRUNCATED_FRACTION = 0.9  # fewer decoded frames than this share of the promised ones: truncated
CHECKPOINT_SECONDS = 60.0


def decode_all(entries: list[VideoRow], root: Path, *, short_side: int = 256, workers: int = 1,
               timeout: float = 600.0, ffmpeg: str | None = None, ffprobe: str | None = None
               ) -> dict[str, dict]:
    """Normalise every listed video not done yet; return the manifest rows (all of them)."""
    ffmpeg = ffmpeg or require_tool("ffmpeg")
    ffprobe = ffprobe or require_tool("ffprobe")
    settings = {"short_side": short_side, "codec": "libx264", "crf": CRF, "preset": PRESET,
                "keyframe_seconds": 1}
    settings_file = root / "videos" / "settings.json"
    if settings_file.exists() and read_json(settings_file) != settings:
        raise UserError(f"{settings_file}: videos there were made with {read_json(settings_file)}; "
                        f"now asked for {settings}: use another --root or remove {root / 'videos'}")
    write_json(settings_file, settings)
    manifest = root / "decode_manifest.csv"
    rows = read_manifest(manifest)
    download = read_manifest(root / "download_manifest.csv")
    made = normalised_rows(root, short_side)
    todo = []
    for e in entries:
        why = entry_problem(e)
        old = rows.get(e.video_id)
        if why:
            rows[e.video_id] = {"video_id": e.video_id, "path": e.path, "status": "missing", "reason": why}
        elif old and old.get("status") == "ok" and output_path(root, e.path).exists():
            continue
        elif e.video_id in made and download.get(e.video_id, {}).get("source") == "synthetic":
            rows[e.video_id] = made[e.video_id]
        else:
            todo.append(e)
    log.info("%d of %d listed videos to normalise", len(todo), len(entries))

    def job(e: VideoRow) -> dict:
        src = raw_path(root, e.path)
        if not src.exists():
            d = download.get(e.video_id, {})
            reason = f"download: {d['reason']}" if d.get("status") == "missing" else "raw file not found"
            return {"status": "missing", "reason": reason}
        dst = output_path(root, e.path)
        r = normalize_video(src, dst, short_side=short_side, timeout=timeout, ffmpeg=ffmpeg,
                            ffprobe=ffprobe)
        if r["status"] == "ok":
            r["output"] = dst.relative_to(root).as_posix()
        return r

    last = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(job, e): e for e in todo}
        try:
            for fut in progress(as_completed(futures), total=len(futures), desc="decode"):
                e = futures[fut]
                rows[e.video_id] = {"video_id": e.video_id, "path": e.path, **fut.result()}
                if time.monotonic() - last > CHECKPOINT_SECONDS:
                    write_manifest(manifest, rows, DECODE_COLUMNS)
                    last = time.monotonic()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            write_manifest(manifest, rows, DECODE_COLUMNS)
            raise
    write_manifest(manifest, rows, DECODE_COLUMNS)
    return rows


def normalised_rows(root: Path, short_side: int) -> dict[str, dict]:
    """Manifest rows of the videos their source wrote in the normalised form already
    (``layout.NORMALISED_MANIFEST``, e.g. `zar download --source synthetic`): nothing to decode;
    only videos whose short side fits ``short_side`` qualify (decoding never scales up)."""
    path = root / NORMALISED_MANIFEST
    if not path.is_file():
        return {}
    out = {}
    for r in read_manifest_rows(path):
        w, h = int(r["width"]), int(r["height"])
        if min(w, h) > short_side or not (root / r["output"]).is_file():
            continue
        out[r["video_id"]] = {"video_id": r["video_id"], "path": r["path"], "status": "ok", "reason": "",
                              "src_fps": float(r["fps"]), "src_frames": int(r["num_frames"]), "src_codec": "h264",
                              "src_width": w, "src_height": h, "frames": int(r["num_frames"]), "fps": float(r["fps"]),
                              "width": w, "height": h, "output": r["output"], "seconds": 0.0}
    return out


def read_manifest_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- one video
def even_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output (width, height): the shorter side scaled down to ``short_side`` (never up), the
    aspect ratio kept, both even (h264 with 4:2:0 chroma needs even dimensions)."""
    short = min(width, height)
    scale = min(1.0, short_side / short)
    w, h = width * scale, height * scale
    if width <= height:
        w = 2 * max(1, int(w) // 2)
        h = 2 * max(1, round(h / 2))
    else:
        h = 2 * max(1, int(h) // 2)
        w = 2 * max(1, round(w / 2))
    return w, h


def _rate(text: str | None) -> Fraction | None:
    try:
        r = Fraction(text or "")
    except (ValueError, ZeroDivisionError):
        return None
    return r if 0 < r <= 240 else None


def probe_source(src: Path, *, timeout: float, ffprobe: str) -> dict:
    info = ffprobe_json(src, ["-show_format", "-show_streams", "-select_streams", "v:0"],
                        timeout=timeout, ffprobe=ffprobe)
    streams = info.get("streams") or []
    if not streams:
        raise RuntimeError("no video stream")
    s, fmt = streams[0], info.get("format") or {}
    fmt_name = fmt.get("format_name", "")
    if fmt_name.endswith("_pipe") or fmt_name.startswith(("image2", "png", "jpeg")):
        raise RuntimeError(f"an image ({fmt_name}), not a video")
    rate = _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate"))
    width, height = int(s.get("width") or 0), int(s.get("height") or 0)
    if width <= 0 or height <= 0:
        raise RuntimeError("video stream without a frame size")
    rotation = 0
    for sd in s.get("side_data_list") or ():
        if "rotation" in sd:
            rotation = int(float(sd["rotation"]))
    rotation = rotation or int(float((s.get("tags") or {}).get("rotate", 0) or 0))
    if abs(rotation) % 180 == 90:  # ffmpeg applies the rotation while transcoding
        width, height = height, width
    duration = float(fmt.get("duration") or s.get("duration") or 0.0)
    header = int(s["nb_frames"]) if str(s.get("nb_frames", "")).isdigit() else None
    return {"rate": rate, "width": width, "height": height, "duration": duration,
            "header_frames": header, "codec": s.get("codec_name", ""), "format": fmt_name}


def normalize_video(src: Path, dst: Path, *, short_side: int = 256, timeout: float = 600.0,
                    ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe") -> dict:
    """Normalise one video; return its manifest fields (status ok or corrupt, with reason)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    row: dict = {}

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    def corrupt(reason: str) -> dict:
        return {**row, "status": "corrupt", "reason": reason, "seconds": time.monotonic() - t0}

    why = container_problem(src)
    if why:
        return corrupt(why) if why != "file not found" else {"status": "missing", "reason": why}
    try:
        p = probe_source(src, timeout=left(), ffprobe=ffprobe)
    except ToolTimeout as e:
        return corrupt(str(e))
    except (RuntimeError, ValueError) as e:
        return corrupt(f"cannot probe: {e}")
    rate = p["rate"] or Fraction(30)
    row.update(src_fps=float(rate), src_duration=p["duration"], src_codec=p["codec"],
               src_width=p["width"], src_height=p["height"], src_header_frames=p["header_frames"])
    w, h = even_size(p["width"], p["height"], short_side)
    gop = max(1, math.floor(rate))
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
           "-i", str(src.resolve()), "-map", "0:v:0", "-vf", f"scale={w}:{h}",
           "-fps_mode", "cfr", "-r", str(rate), "-c:v", "libx264", "-preset", PRESET,
           "-crf", str(CRF), "-g", str(gop), "-pix_fmt", "yuv420p", "-threads", "1",
           "-an", "-sn", "-dn", "-movflags", "+faststart", "-progress", "pipe:1", "-nostats",
           "-f", "mp4", "-y"]
    try:
        with atomic_path(dst, suffix=".part.mp4") as tmp:  # renamed only if no exception
            _transcode_and_check(cmd, tmp, p, rate, row, left, ffprobe)
    except _Corrupt as e:
        return corrupt(str(e))
    return {**row, "status": "ok", "reason": "", "seconds": time.monotonic() - t0}


class _Corrupt(Exception):
    pass


def _transcode_and_check(cmd: list[str], tmp: Path, p: dict, rate: Fraction, row: dict, left,
                         ffprobe: str) -> None:
    """Run ffmpeg into ``tmp`` and check the result; fill ``row``; raise _Corrupt if unusable."""
    try:
        res = run_tool(cmd + [str(tmp)], left())
    except ToolTimeout as e:
        raise _Corrupt(str(e)) from None
    prog = _progress_values(res.stdout)
    if res.returncode != 0:
        raise _Corrupt(f"ffmpeg: {last_line(res.stderr) or f'exit status {res.returncode}'}")
    written = prog.get("frame", 0)
    decoded = written - prog.get("dup_frames", 0) + prog.get("drop_frames", 0)
    row["src_frames"] = decoded
    if written <= 0 or decoded <= 0:
        raise _Corrupt("no frame decodes")
    promised = p["duration"] * float(rate)
    if p["header_frames"] and not p["format"].startswith("mov"):  # mov counts edit-list cuts
        promised = max(promised, p["header_frames"])
    if decoded < TRUNCATED_FRACTION * promised - 2:
        raise _Corrupt(f"incomplete (truncated or damaged): {decoded} frames decode of about "
                       f"{round(promised)} promised")
    try:
        out = ffprobe_json(tmp, ["-count_frames", "-select_streams", "v:0", "-show_entries",
                                 "stream=nb_read_frames,width,height,avg_frame_rate"],
                           timeout=left(), ffprobe=ffprobe)
        s = (out.get("streams") or [{}])[0]
        frames = int(s.get("nb_read_frames") or 0)
    except ToolTimeout as e:
        raise _Corrupt(f"checking the output: {e}") from None
    except (RuntimeError, ValueError) as e:
        raise _Corrupt(f"output does not decode: {e}") from None
    if frames != written:
        raise _Corrupt(f"output check: ffmpeg wrote {written} frames, {frames} decode")
    row.update(frames=frames, fps=float(_rate(s.get("avg_frame_rate")) or rate),
               width=int(s.get("width") or 0), height=int(s.get("height") or 0))


def _progress_values(text: str) -> dict[str, int]:
    """The last integer value of each key in ffmpeg's ``-progress`` output."""
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition("=")
        v = v.strip()
        if v.lstrip("-").isdigit():
            out[k.strip()] = int(v)
    return out
