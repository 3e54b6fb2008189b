"""`triage hashset import|info|lookup|formats`, mounted as triage.cli will mount it, run through
``triage.cli.main`` so exit codes and one-line errors are the real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import triage.cli as cli
from triage.cli.hashset import hashset_app

from ._factory import VICS_2_MEDIA, md5, sha1, vics, write_text


@pytest.fixture(autouse=True)
def mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(group.name == "hashset" for group in cli.app.registered_groups):
        groups = list(cli.app.registered_groups)
        monkeypatch.setattr(cli.app, "registered_groups", groups)
        cli.app.add_typer(hashset_app, name="hashset")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv), cli.Environment(interactive=False))
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def _source(tmp_path: Path) -> Path:
    media = [{"MD5": md5(i), "SHA1": sha1(i), "Category": i % 3, "MediaSize": 9 + i} for i in range(1, 6)]
    media.append({"MD5": md5(1), "Category": 2})
    return write_text(tmp_path / "pv.json", vics(VICS_2_MEDIA.replace("Default", "US"), media))


def test_import_info_lookup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pv.tdb"
    code, stdout, _ = run(capsys, "hashset", "import", str(_source(tmp_path)), "--out", str(out), "--name", "PV")
    assert code == 0 and "wrote" in stdout and "1 conflicting" in stdout

    code, stdout, _ = run(capsys, "hashset", "info", str(out), "--verify")
    assert code == 0
    for text in ("PV  (known-bad, tdb", "Child Abuse Material (CAM)", "conflicts 1", "VICS 2.0 US", "OK"):
        assert text in stdout

    code, stdout, _ = run(capsys, "hashset", "info", str(out), "--json", "--conflicts")
    info = json.loads(stdout)
    assert info["name"] == "PV" and info["entries"] == 10 and info["records"] == 6
    assert info["conflict_list"] == [{"algorithm": "md5", "digest": md5(1), "categories": ["1", "2"]}]
    assert info["algorithms"]["md5"]["categories"] == {"0": 1, "1": 2, "2": 3}

    code, stdout, _ = run(capsys, "hashset", "lookup", str(out), md5(2).upper(), "0" * 31 + "1")
    assert code == 0
    assert f"{md5(2)}  found in PV (known-bad): 2 (Child Exploitive" in stdout and "not found" in stdout
    code, stdout, _ = run(capsys, "hashset", "lookup", str(out), md5(1), "--json")
    assert json.loads(stdout)["categories"] == ["1", "2"]
    code, stdout, _ = run(capsys, "hashset", "lookup", str(out), sha1(99))
    assert code == 1 and "not found" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lookup", "{out}", "xyz"], "'xyz' is not an MD5"),
        (["lookup", "{tmp}/missing.tdb", "0" * 32], "no such file"),
        (["import", "{src}", "--out", "{tmp}/x.idx"], "must end in .tdb"),
        (["import", "{src}", "--out", "{out}"], "exists; pass --force"),
        (["import", "{src}", "--out", "{tmp}/y.tdb", "--kind", "bad"], "unknown hash-set kind"),
        (["import", "{src}", "--out", "{tmp}/y.tdb", "--profile", "fr"], "unknown category profile"),
        (["import", "{src}", "--out", "{tmp}/y.tdb", "--format", "nope"], "unknown hash-set format"),
        (["import", "{tmp}/bad.md5", "--out", "{tmp}/y.tdb"], "bad.md5:2:"),
        (["info", "{src}", "--verify"], "not a compiled index"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    src = _source(tmp_path)
    out = tmp_path / "pv.tdb"
    write_text(tmp_path / "bad.md5", f"{md5(1)}  a\nnot-a-hash  b\n")
    run(capsys, "hashset", "import", str(src), "--out", str(out))
    argv = [a.format(out=out, src=src, tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, "hashset", *argv)
    assert code == 2, err
    assert err.startswith("triage: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "y.tdb").exists()


def test_lenient_import_and_damaged_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_text(tmp_path / "bad.md5", f"{md5(1)}  a\nnot-a-hash  b\n")
    out = tmp_path / "b.tdb"
    code, stdout, _ = run(capsys, "hashset", "import", str(bad), "--out", str(out), "--lenient", "--kind", "known-good")
    assert code == 0 and "skipped 1 malformed" in stdout
    data = bytearray(out.read_bytes())
    data[70] ^= 0xFF
    out.write_bytes(bytes(data))
    code, stdout, err = run(capsys, "hashset", "info", str(out), "--verify")
    assert code == 2 and "FAILED" in stdout and "does not match" in err


def test_formats_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "hashset", "formats")
    assert code == 0 and "nsrl-rds3" in stdout and "hashkeeper" in stdout and "profiles: us, uk" in stdout
    code, stdout, _ = run(capsys, "hashset", "--help")
    assert code == 0 and "import" in stdout and "lookup" in stdout
