"""The split audit: the committed splits pass; copies with one defect each fail, naming the file."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from zar.cli import main
from zar.splits.audit import audit
from published_sources import MIRROR, mirror_or_skip

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ROOT / "splits"


@pytest.fixture
def copy(tmp_path) -> Path:
    dest = tmp_path / "splits"
    shutil.copytree(SPLITS, dest)
    return dest


def rewrite_manifest(root: Path) -> None:
    """sha256sum-style manifest of every file but itself, written the plain way."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.name != "MANIFEST.sha256")
    (root / "MANIFEST.sha256").write_text(
        "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in files))


def edit_lines(path: Path, fn) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(fn(lines)) + "\n", encoding="utf-8")


def violations_for(root: Path, rel: str) -> list[str]:
    return [v for v in audit(root).violations if v.startswith(f"{root / rel}: ")]


@pytest.mark.slow
def test_committed_splits_pass_including_rebuild():
    mirror_or_skip()
    a = audit(SPLITS, MIRROR)
    assert a.violations == []
    assert any("rebuild" in n and "compared 49 files" in n for n in a.notes)
    assert len(a.classes) == 23 and len(a.videos) == 24


def test_without_sources_the_rebuild_is_skipped_and_said(copy, tmp_path):
    a = audit(copy, tmp_path / "no-such-dir")
    assert a.violations == []
    assert any("rebuild check skipped" in n for n in a.notes)


@pytest.mark.parametrize("leak,why", [
    ("abseiling", "Kinetics-400 class"),
    ("Abseiling", "Kinetics-400 class"),  # case-only difference
    ("dyeing hair", "renames the Kinetics-400 class 'dying hair'"),
    ("waking up", "renames the Kinetics-400 class 'baby waking up'"),
])
def test_leaked_k400_class_fails(copy, leak, why):
    rel = "k600/zeroshot/split2/classes.csv"
    edit_lines(copy / rel, lambda ls: ls[:5] + [f"4,{leak},{leak}"] + ls[6:])
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any(repr(leak) in v and why in v for v in found), found


def test_leak_into_novel_pool_fails(copy):
    rel = "k600/zeroshot/novel220.csv"
    edit_lines(copy / rel, lambda ls: ls + ["220,tying necktie,tying necktie"])
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any("'tying necktie' renames" in v for v in found)
    assert any("221 classes, expected 220" in v for v in found)


def test_duplicated_video_fails(copy):
    rel = "ucf101/zeroshot/split3/test.csv"
    edit_lines(copy / rel, lambda ls: ls[:10] + [ls[9]] + ls[10:])
    rewrite_manifest(copy)
    vid = (copy / rel).read_text().splitlines()[9].split(",")[0]
    found = violations_for(copy, rel)
    assert any(f"duplicate video {vid} (lines 10 and 11)" in v for v in found), found
    assert any("3697 videos, expected 3696" in v for v in found)


def test_wrong_count_fails(copy):
    rel = "hmdb51/zeroshot/split1/test.csv"
    edit_lines(copy / rel, lambda ls: ls[:-1])
    rewrite_manifest(copy)
    n = len((copy / rel).read_text().splitlines()) - 1
    found = violations_for(copy, rel)
    assert n == 1529 and any("1529 videos, expected 1530" in v for v in found), found
    assert any("classes without 30 test videos" in v for v in found)


def test_wrong_class_count_fails(copy):
    rel = "hmdb51/b2n/novel/classes.csv"
    edit_lines(copy / rel, lambda ls: ls[:-1])
    rewrite_manifest(copy)
    assert any("24 classes, expected 25" in v for v in violations_for(copy, rel))


def test_file_edited_without_manifest_update_fails(copy):
    rel = "README.md"
    (copy / rel).write_text((copy / rel).read_text() + "\nedited\n")
    found = audit(copy).violations
    assert found == [f"{copy / rel}: sha256 does not match MANIFEST.sha256 (file changed without updating the manifest)"]


def test_unlisted_and_missing_files_fail(copy):
    (copy / "k600/zeroshot/split1/extra.csv").write_text("x\n")
    (copy / "ucf101/b2n/novel/test.csv").unlink()
    found = audit(copy).violations
    assert any(v.startswith(f"{copy}/k600/zeroshot/split1/extra.csv: not listed in MANIFEST.sha256") for v in found)
    assert any(v.startswith(f"{copy}/k600/zeroshot/split1/extra.csv: not part of the split layout") for v in found)
    assert f"{copy}/ucf101/b2n/novel/test.csv: listed in MANIFEST.sha256 but missing" in found
    assert f"{copy}/ucf101/b2n/novel/test.csv: missing" in found


def test_base_novel_overlap_fails(copy):
    base = (copy / "ucf101/b2n/base/classes.csv").read_text().splitlines()[1].split(",")[1]
    rel = "ucf101/b2n/novel/classes.csv"
    edit_lines(copy / rel, lambda ls: ls[:1] + [f"0,{base},{base.lower()}"] + ls[2:])
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any("classes also in base/classes.csv" in v and base in v for v in found), found


def test_val_test_class_overlap_fails(copy):
    test_class = (copy / "k600/zeroshot/split1/classes.csv").read_text().splitlines()[1].split(",")[1]
    rel = "k600/zeroshot/split1/val_classes.csv"
    edit_lines(copy / rel, lambda ls: ls[:1] + [f"0,{test_class},{test_class}"] + ls[2:])
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any("validation classes that are also test classes" in v and test_class in v for v in found), found


def test_missing_shot_and_train_test_leak_fail(copy):
    rel = "hmdb51/b2n/base/train_s2.csv"
    test_row = (copy / "hmdb51/b2n/base/test.csv").read_text().splitlines()[1]
    edit_lines(copy / rel, lambda ls: ls[:1] + [test_row] + ls[3:])  # one video replaced, one dropped
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any("also evaluation videos" in v and test_row.split(",")[0] in v for v in found), found
    assert any("1 base classes without exactly 16 shots" in v for v in found), found


def test_video_class_not_in_list_or_wrong_index_fails(copy):
    rel = "k400/b2n/novel/test.csv"
    lines = (copy / rel).read_text().splitlines()
    base_class = (copy / "k400/b2n/base/classes.csv").read_text().splitlines()[1].split(",")[1]
    vid0, vid1 = lines[1].split(",")[0], lines[2].split(",")[0]

    def change(ls):
        a = ls[1].split(",")
        b = ls[2].split(",")
        a[2] = base_class
        b[3] = "199"
        return ls[:1] + [",".join(a), ",".join(b)] + ls[3:]

    edit_lines(copy / rel, change)
    rewrite_manifest(copy)
    found = violations_for(copy, rel)
    assert any(f"video {vid0}: class {base_class!r} is not in k400/b2n/novel/classes.csv" in v for v in found), found
    assert any(f"video {vid1}: class_index 199 is not" in v for v in found), found


def test_wrong_text_and_crlf_fail(copy):
    rel = "ucf101/classes.csv"
    edit_lines(copy / rel, lambda ls: ls[:1] + ["0,ApplyEyeMakeup,applyeyemakeup"] + ls[2:])
    rel2 = "hmdb51/b2n/base/classes.csv"
    (copy / rel2).write_bytes((copy / rel2).read_bytes().replace(b"\n", b"\r\n"))
    rewrite_manifest(copy)
    assert any("the text rule gives 'apply eye makeup'" in v for v in violations_for(copy, rel))
    assert any("carriage return" in v for v in violations_for(copy, rel2))


@pytest.mark.slow
def test_rebuild_catches_a_consistent_edit(copy):
    mirror_or_skip()
    (copy / "README.md").write_text((copy / "README.md").read_text() + "\nedited\n")
    rewrite_manifest(copy)
    found = audit(copy, MIRROR).violations
    assert found == [
        f"{copy}/MANIFEST.sha256: differs from a rebuild from the sources in {MIRROR}",
        f"{copy}/README.md: differs from a rebuild from the sources in {MIRROR}",
    ]


def test_cli_exit_codes_and_messages(copy, tmp_path, capsys):
    no_sources = str(tmp_path / "none")
    assert main(["splits", "audit", "--splits", str(copy), "--sources", no_sources]) == 0
    assert "OK" in capsys.readouterr().out
    edit_lines(copy / "hmdb51/zeroshot/split2/test.csv", lambda ls: ls + [ls[-1]])
    assert main(["splits", "audit", "--splits", str(copy), "--sources", no_sources]) == 1
    err = capsys.readouterr().err
    assert f"FAIL {copy}/hmdb51/zeroshot/split2/test.csv: sha256 does not match MANIFEST.sha256" in err
    assert f"FAIL {copy}/hmdb51/zeroshot/split2/test.csv: duplicate video" in err
    assert "violation(s)" in err
    assert main(["splits", "audit", "--splits", str(tmp_path / "nope"), "--sources", no_sources]) == 2


# ----------------------------------------------------------------------------- any folder in the layout (the demo's)
def _demo_splits(tmp_path):
    from zar.data.demo import load_config, write_splits

    out = tmp_path / "demo_splits"
    write_splits(load_config(None), out)
    return out


def _rewrite(root, rel, edit):
    import hashlib

    path = root / rel
    path.write_text(edit(path.read_text()))
    manifest = root / "MANIFEST.sha256"
    lines = []
    for line in manifest.read_text().splitlines():
        digest, name = line.split("  ", 1)
        if name == rel:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}")
    manifest.write_text("\n".join(lines) + "\n")


def test_generic_audit_passes_on_demo_splits_and_catches_leaks(tmp_path):
    from zar.splits.audit import audit_generic

    root = _demo_splits(tmp_path)
    assert audit_generic(root).violations == []
    # a fine-tuning class in a zero-shot split
    ft_class = (root / "k400/classes.csv").read_text().splitlines()[1].split(",")[1]
    rel = "k600/zeroshot/split1/classes.csv"
    _rewrite(root, rel, lambda t: t.replace(t.splitlines()[1].split(",")[1], ft_class, 1))
    v = audit_generic(root).violations
    assert any(rel in x and "fine-tuning classes" in x and ft_class in x for x in v), v


def test_generic_audit_catches_duplicates_and_stale_manifest(tmp_path):
    from zar.splits.audit import audit_generic

    root = _demo_splits(tmp_path)
    rel = "hmdb51/zeroshot/split1/test.csv"
    _rewrite(root, rel, lambda t: t + t.splitlines()[-1] + "\n")
    v = audit_generic(root).violations
    assert any(rel in x and "duplicate video" in x for x in v), v
    (root / "ucf101/zeroshot/split2/test.csv").write_text("video_id,path,class_name,class_index\n")
    v = audit_generic(root).violations
    assert any("ucf101/zeroshot/split2/test.csv" in x and "MANIFEST" in x for x in v), v
    assert any("ucf101/zeroshot/split2/test.csv" in x and "no videos" in x for x in v), v
