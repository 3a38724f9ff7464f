"""Tampering with a real bundle is detected and located; a crash is told apart from tampering.

The base bundle is written once by BundleWriter (run.start, an action, check results with
inline and file-stored raw output, host.skipped, run.end, a review and an approval signature).
Each mutant is a copy with one change; every one must verify as invalid and name the line or
file, except the crash cases, which must be incomplete and name the planned tests not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from qualification.evidence.bundle import BundleWriter, append_signature
from qualification.evidence.verify import VerificationResult, verify_bundle
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.dsse import RECORD_PAYLOAD_TYPE, envelope_bytes, pae
from tests.unit.evidence.evidence_testlib import Keys, build_bundle, make_keys, planned
from tests.unit.evidence.tamper_testlib import lines_of, write_lines

RESULTS = 15
# run.start, action, results, host.skipped, run.end, reviewed, approved
LINES = 1 + 1 + RESULTS + 1 + 1 + 2
FLIPS = 120
SEALED_FILES = (
    "junit.xml",
    "report.html",
    "manifest.json",
    "spec.yaml",
    "data/hcl.csv",
    "inventory.json",
)


class Base:
    def __init__(self, root: Path) -> None:
        (root / "state").mkdir()
        self.keys: Keys = make_keys(root / "state")
        w, _ = build_bundle(root / "evidence", self.keys, "run-base", results=RESULTS)
        append_signature(
            w.path, self.keys.reviewer, {"meaning": "reviewed", "name": "Rita Reviewer"}
        )
        append_signature(
            w.path, self.keys.approver, {"meaning": "approved", "name": "Anna Approver"}
        )
        self.path = w.path
        other, _ = build_bundle(root / "evidence", self.keys, "run-other", results=RESULTS)
        self.other = other.path
        crashed, _ = build_bundle(
            root / "evidence", self.keys, "run-crashed", results=6, seal=False
        )
        self.crashed = crashed.path
        self.raw_file = next(p for p in (self.path / "raw").iterdir()).relative_to(self.path)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    b = Base(tmp_path_factory.mktemp("tamper"))
    lines = (b.path / "records.jsonl").read_bytes().splitlines()
    assert len(lines) == LINES
    res = verify_bundle(b.path, b.keys.trust, workers=1)
    assert res.status == "valid", res.problems  # the control: unmodified, it verifies
    return b


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.parent.name / src.name
    shutil.copytree(src, dst)
    return dst


def check(res: VerificationResult, *fragments: str) -> None:
    assert res.status == "invalid", "tampering not detected"
    assert res.exit_code == 1
    text = "\n".join(res.problems)
    for frag in fragments:
        assert frag in text, f"{frag!r} not named in:\n{text}"


# ------------------------------------------------------------------ records.jsonl


@pytest.mark.parametrize("k", range(FLIPS))
def test_byte_flip(base: Base, tmp_path: Path, k: int) -> None:
    path = copy(base.path, tmp_path)
    data = bytearray((path / "records.jsonl").read_bytes())
    pos = k * (len(data) - 1) // (FLIPS - 1)
    data[pos] ^= 0x01
    (path / "records.jsonl").write_bytes(bytes(data))
    line_no = data[:pos].count(b"\n") + 1
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {line_no}")


@pytest.mark.parametrize("i", range(LINES - 1))
def test_record_deleted(base: Base, tmp_path: Path, i: int) -> None:
    path = copy(base.path, tmp_path)
    lines = lines_of(path)
    del lines[i]
    write_lines(path, lines)
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {i + 1}")


@pytest.mark.parametrize("i", range(LINES))
def test_record_duplicated(base: Base, tmp_path: Path, i: int) -> None:
    path = copy(base.path, tmp_path)
    lines = lines_of(path)
    lines.insert(i, lines[i])
    write_lines(path, lines)
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {i + 2}")


@pytest.mark.parametrize("i", range(LINES - 1))
def test_records_swapped(base: Base, tmp_path: Path, i: int) -> None:
    path = copy(base.path, tmp_path)
    lines = lines_of(path)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    write_lines(path, lines)
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {i + 1}")


@pytest.mark.parametrize("i", range(LINES - 2))
def test_record_copied_from_another_bundle(base: Base, tmp_path: Path, i: int) -> None:
    path = copy(base.path, tmp_path)
    lines = lines_of(path)
    lines[i] = lines_of(base.other)[i]  # validly signed by a trusted key, wrong run
    write_lines(path, lines)
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {i + 1}")


def test_every_record_resigned_with_an_untrusted_key(base: Base, tmp_path: Path) -> None:
    # A consistent forgery: chain, actor and signatures all redone with an outsider's key.
    path = copy(base.path, tmp_path)
    outsider = Ed25519Signer.generate()
    prev, out = "0" * 64, []
    for line in lines_of(path):
        rec = json.loads(base64.b64decode(json.loads(line)["payload"]))
        rec["actor"], rec["prev"] = outsider.keyid, prev
        payload = json.dumps(
            rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        sig = outsider.sign(pae(RECORD_PAYLOAD_TYPE, payload))
        new = envelope_bytes(payload, RECORD_PAYLOAD_TYPE, [(outsider.keyid, sig)])
        out.append(new)
        prev = hashlib.sha256(new).hexdigest()
    write_lines(path, out)
    res = verify_bundle(path, base.keys.trust, workers=1)
    check(res, "records.jsonl line 1 (seq 0)", "does not verify with any key in the trust store")
    assert sum("does not verify" in p for p in res.problems) == LINES


def test_record_signed_by_a_trusted_key_without_the_role(base: Base, tmp_path: Path) -> None:
    path = copy(base.path, tmp_path)
    w = BundleWriter.create(tmp_path / "x", "CHG0001234", "run-base", base.keys.reviewer, "rita")
    w.append("run.start", {"planned": planned()})
    w.close()
    lines = lines_of(path)
    lines[0] = lines_of(w.path)[0]
    write_lines(path, lines)
    check(
        verify_bundle(path, base.keys.trust, workers=1),
        "records.jsonl line 1 (seq 0)",
        "does not hold role executor",
    )


# ------------------------------------------------------------------ sealed files


@pytest.mark.parametrize("name", [*SEALED_FILES, "raw"])
@pytest.mark.parametrize("how", ["edited", "removed"])
def test_sealed_file_edited_or_removed(base: Base, tmp_path: Path, name: str, how: str) -> None:
    path = copy(base.path, tmp_path)
    rel = str(base.raw_file) if name == "raw" else name
    target = path / rel
    if how == "edited":
        target.write_bytes(target.read_bytes().replace(b"<", b"&lt;", 1) + b" ")
    else:
        target.unlink()
    res = verify_bundle(path, base.keys.trust, workers=1)
    if rel == "manifest.json":
        check(res, "manifest.json")
    else:
        check(res, rel)


@pytest.mark.parametrize(
    "rel",
    [
        "notes.txt",
        "data/extra.csv",
        "raw/" + "0" * 64 + ".txt",
        ".hidden",
        "junit.xml.bak",
        "sub/dir/file",
    ],
)
def test_unlisted_file_added(base: Base, tmp_path: Path, rel: str) -> None:
    path = copy(base.path, tmp_path)
    (path / rel).parent.mkdir(parents=True, exist_ok=True)
    (path / rel).write_bytes(b"added later")
    check(verify_bundle(path, base.keys.trust, workers=1), f"{rel}: file not listed")


def test_renderings_under_views_are_outside_the_seal(base: Base, tmp_path: Path) -> None:
    path = copy(base.path, tmp_path)
    (path / "views").mkdir()
    (path / "views" / "report.html").write_text("<p>rendered later</p>")
    assert verify_bundle(path, base.keys.trust, workers=1).status == "valid"


def test_symlinked_file_is_refused(base: Base, tmp_path: Path) -> None:
    path = copy(base.path, tmp_path)
    (path / "junit.xml").rename(tmp_path / "junit.xml")
    (path / "junit.xml").symlink_to(tmp_path / "junit.xml")
    check(verify_bundle(path, base.keys.trust, workers=1), "junit.xml")


# ------------------------------------------------------------------ crash vs tamper

MUTATE_CUT: list[Callable[[int], int]] = [
    lambda n, f=f: max(1, int(n * f)) for f in (0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
]


@pytest.mark.parametrize("cut", range(len(MUTATE_CUT)))
def test_cut_mid_line_without_run_end_is_incomplete(base: Base, tmp_path: Path, cut: int) -> None:
    path = copy(base.crashed, tmp_path)
    data = (path / "records.jsonl").read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    keep = MUTATE_CUT[cut](len(data) - 1 - last_start)
    (path / "records.jsonl").write_bytes(data[: last_start + keep])
    res = verify_bundle(path, base.keys.trust, workers=1)
    assert res.status == "incomplete", res.problems
    assert res.exit_code == 3
    # six results were written; the cut one is the sixth, so five are done
    assert res.missing_tests == planned()[5:]


def test_cut_after_run_end_is_invalid(base: Base, tmp_path: Path) -> None:
    path = copy(base.path, tmp_path)
    data = (path / "records.jsonl").read_bytes()
    (path / "records.jsonl").write_bytes(data[:-40])
    check(verify_bundle(path, base.keys.trust, workers=1), f"records.jsonl line {LINES}: is cut")


def test_damaged_line_before_a_cut_tail_is_invalid(base: Base, tmp_path: Path) -> None:
    path = copy(base.crashed, tmp_path)
    data = bytearray((path / "records.jsonl").read_bytes())
    data[100] ^= 0x01
    (path / "records.jsonl").write_bytes(bytes(data[:-50]))
    check(verify_bundle(path, base.keys.trust, workers=1), "records.jsonl line 1")


def test_unsealed_bundle_with_a_foreign_file_is_invalid(base: Base, tmp_path: Path) -> None:
    path = copy(base.crashed, tmp_path)
    (path / "notes.txt").write_text("x")
    check(verify_bundle(path, base.keys.trust, workers=1), "notes.txt: not a file a run writes")


def test_untrusted_store_gives_no_pass(base: Base, tmp_path: Path) -> None:
    empty = TrustStore.empty(tmp_path / "trust.yaml")
    empty.save()
    check(
        verify_bundle(base.path, TrustStore.load(tmp_path / "trust.yaml"), workers=1),
        "does not verify with any key in the trust store",
    )
