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


def read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """A YAML (or JSON) file's content, ``{}`` for an empty file; errors name the file."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e})") from None
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
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << bits) - 1)
