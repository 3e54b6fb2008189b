"""The matcher over both set backends: verdicts, conflicts, batch lookups == one by one."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from triage.hashsets import import_hashsets, load_hashset
from triage.matching.exact import HashIndex


def _h(alg: str, n: int) -> str:
    return hashlib.new(alg, f"file-{n}".encode()).hexdigest()


def _sets(tmp_path: Path, compiled: bool):
    caid = tmp_path / "caid.csv"
    caid.write_text("MD5,SHA1,Category\n" + "".join(f"{_h('md5', i)},{_h('sha1', i)},{'ABC'[i % 3]}\n" for i in range(10))
                    + f"{_h('md5', 1)},,C\n")  # md5(1): B and C -> conflict, B wins
    vics = tmp_path / "pv.md5"
    vics.write_text("".join(f"{_h('md5', i)}  f{i}\n" for i in range(5, 15)))
    good = tmp_path / "good.md5"
    good.write_text("".join(f"{_h('md5', i)}  g{i}\n" for i in range(12, 20)))
    sets = [load_hashset(caid, kind="known-bad"), load_hashset(vics, kind="known-bad"), load_hashset(good, kind="known-good")]
    if not compiled:
        return sets
    out = []
    for s in sets:
        target = tmp_path / f"{s.name}.tdb"
        import_hashsets([s.path], target, kind=s.kind)
        out.append(load_hashset(target, kind=s.kind))
    return out


def _file(i: int) -> dict[str, str | None]:
    return {"md5": _h("md5", i), "sha1": _h("sha1", i), "sha256": _h("sha256", i)}


def test_verdicts(tmp_path: Path) -> None:
    for compiled in (False, True):
        index = HashIndex(_sets(tmp_path, compiled))
        assert index.algorithms == {"md5", "sha1"}
        category, matches = index.match(_file(1), 10)
        assert category == "B" and {(m["hashset"], m["algorithm"], m["category"]) for m in matches} == {
            ("caid", "md5", "B"), ("caid", "sha1", "B")}
        assert index.match(_file(6), 10)[0] == "A"  # CAID A beats the uncategorised pv set
        assert index.match(_file(7), 10)[0] == "B"
        category, matches = index.match(_file(13), 10)  # pv (notable) and known-good
        assert category == "notable" and {m["category"] for m in matches} == {"notable", "known-good"}
        assert index.match(_file(17), 10)[0] == "known-good"
        assert index.match(_file(30), 10) == ("unknown", [])
        assert index.match(_file(1), 0) == ("unknown", [])  # empty content never matches
        assert index.match({"md5": "not hex"}, 5) == ("unknown", [])


def test_lookup_many_equals_lookup(tmp_path: Path) -> None:
    """The sets' batch lookup (the documented library interface) answers as one by one."""
    rng = random.Random(3)
    for compiled in (False, True):
        for s in _sets(tmp_path, compiled):
            for alg in s.algorithms:
                keys = [bytes.fromhex(_h(alg, rng.randrange(40))) for _ in range(300)]
                assert [list(found) for found in s.lookup_many(alg, keys)] == \
                    [list(s.lookup(alg, k)) for k in keys]


def test_size_filter(tmp_path: Path) -> None:
    sized = tmp_path / "s.json"
    sized.write_text('{"@odata.context":"x#Media","value":[{"MD5":"%s","MediaSize":7}]}' % _h("md5", 1))
    hs = load_hashset(sized)
    assert hs.may_contain_size(7) and not hs.may_contain_size(8)
    unsized = tmp_path / "u.md5"
    unsized.write_text(f"{_h('md5', 1)}  a\n")
    assert load_hashset(unsized).may_contain_size(8)  # a set without sizes may hold any
