"""Category profiles: shipped us/uk, user files, a user directory that overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.errors import UsageError
from triage.hashsets import import_hashsets, load_hashset
from triage.hashsets.profiles import guess_profile, load_profile

from ._factory import md5, write_text


def test_shipped_profiles() -> None:
    us, uk = load_profile("us"), load_profile("uk")
    assert [us.label(c) for c in "01234"] == [
        "Non-Pertinent", "Child Abuse Material (CAM)", "Child Exploitive (Non-CAM) / Age Difficult",
        "CGI/Animation - Child Exploitive", "Comparison Images"]
    assert uk.label("A").startswith("Category A") and uk.label("C").startswith("Category C")
    assert us.label("9") == "9"  # unknown codes show as themselves
    assert us.source == "shipped"


def test_user_file_and_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = write_text(tmp_path / "lab.toml", 'name = "lab"\ndescription = "ours"\n[labels]\n"1" = "Cat A"\n"2" = "Cat B"\n')
    profile = load_profile(str(own))
    assert (profile.name, profile.label("2"), profile.source) == ("lab", "Cat B", str(own))
    folder = tmp_path / "profiles"
    folder.mkdir()
    write_text(folder / "us.toml", '[labels]\n"1" = "overridden"\n')
    monkeypatch.setenv("TRIAGE_PROFILE_DIR", str(folder))
    assert load_profile("us").label("1") == "overridden"
    assert load_profile("uk").label("B").startswith("Category B")  # not overridden


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[labels\n"1" = "x"', "lab.toml"),
        ('name = "x"\n', r"\[labels\]"),
        ('[labels]\n"1" = 5\n', "not a string"),
        ("name = 3\n[labels]\n'1' = 'x'\n", "must be strings"),
    ],
)
def test_bad_profile_files(tmp_path: Path, text: str, message: str) -> None:
    path = write_text(tmp_path / "lab.toml", text)
    with pytest.raises(UsageError, match=message):
        load_profile(str(path))


def test_unknown_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown category profile 'fr'"):
        load_profile("fr")
    with pytest.raises(UsageError, match="missing.toml"):
        load_profile(str(tmp_path / "missing.toml"))
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_profile(str(path))


def test_guess() -> None:
    assert guess_profile(["US"], ["1"]).name == "us"
    assert guess_profile(["UK"], ["1"]).name == "uk"
    assert guess_profile([], [None, "A", "C"]).name == "uk"
    assert guess_profile(["Default"], ["1"]) is None
    assert guess_profile(["US", "UK"], []) is None


def test_profile_stored_in_index_and_codes_unchanged(tmp_path: Path) -> None:
    csv = write_text(tmp_path / "c.csv", f"md5,category\n{md5(1)},1\n")
    lab = write_text(tmp_path / "lab.toml", '[labels]\n"1" = "Category A"\n')
    import_hashsets([csv], tmp_path / "c.tdb", profile=str(lab))
    hs = load_hashset(tmp_path / "c.tdb")
    assert hs.lookup("md5", bytes.fromhex(md5(1))) == ["1"]  # the stored code stays as written
    assert hs.label("1") == "Category A"
    assert load_hashset(tmp_path / "c.tdb", profile="us").label("1") == "Child Abuse Material (CAM)"
