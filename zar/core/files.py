"""Files written atomically, strict JSON, YAML read with a clear error, sha256 and stable hashes."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from zar.core.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no half-written file under the final name.
    A full disk (or quota) while writing becomes a one-line UserError naming ``path``.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix if suffix is not None else ".part", dir=path.parent
        )
        os.close(fd)
        tmp_path = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; final files get the usual permissions
        yield tmp_path
        os.replace(tmp_path, path)
    except Exception as e:
        if is_disk_full(e):
            raise UserError(f"no space left on device while writing {path}") from None
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it was raised from or during) is a full disk or quota."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    return False


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): a non-finite float (NaN, inf) is written as null, never as NaN."""
    return json.dumps(finite(obj), indent=indent, sort_keys=False, default=_json_default, allow_nan=False) + "\n"


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (lists, tuples and dicts walked)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):  # floats checked here, not in a call each (a prediction holds hundreds)
        return [(v if math.isfinite(v) else None) if type(v) is float else
                finite(v) if isinstance(v, (float, dict, list, tuple)) else v for v in obj]
    return obj


def _json_default(o: Any):
    import dataclasses

    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file; a missing file, a folder, unreadable or non-UTF-8 bytes are one-line
    errors naming it."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: {what} is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what} ({e.strerror or e})") from None


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """A YAML (or JSON) file's content, ``{}`` for an empty file; errors name the file."""
    import yaml

    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    return {} if data is None else data


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def stable_int(*parts: Any, bits: int = 63) -> int:
    """A deterministic integer from any printable parts (same on every machine and process)."""
    # surrogateescape: a file name that is not UTF-8 hashes as its bytes (the same on every run)
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << bits) - 1)


# ----------------------------------------------------------------------------- outputs vs inputs
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(outputs: list[tuple[Path, str]], inputs: list[Path]) -> None:
    """Refuse, before any work, an output that would replace an input (the same path, or the
    same file under another name: a link), a file output that is a folder (or a folder output
    that is a file), and an output whose nearest existing folder is a file or is not writable.
    ``outputs``: (path, "file" | "dir") pairs; ``inputs``: the files the command reads."""
    for out, kind in outputs:
        if kind == "file" and out.is_dir():
            raise UserError(f"{out}: is a folder, where a file is to be written")
        if kind == "dir" and out.exists() and not out.is_dir():
            raise UserError(f"{out}: is a file, where a folder of outputs is to be written")
        for inp in inputs:
            if _same_file(out, inp):
                raise UserError(f"{out}: this output is also an input ({inp}); writing it would destroy the input")
        parent = out.parent if kind == "file" else out
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"{out}: cannot be written: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"{out}: cannot be written: the folder {parent} is read-only")


def input_files(values: dict[str, Any], skip: tuple[str, ...] = ("out",)) -> list[Path]:
    """Every argument value (a path, or a list of them) that names an existing file: what a
    command reads, for :func:`check_outputs`."""
    found = []
    for key, value in values.items():
        if key in skip:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, os.PathLike)) and str(v) and "\0" not in str(v):
                try:
                    if Path(v).is_file():
                        found.append(Path(v))
                except (OSError, ValueError):
                    continue
    return found
