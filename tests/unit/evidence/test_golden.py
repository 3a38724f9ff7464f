"""Every stored golden bundle (one per format version) still verifies, byte for byte as made."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification import FORMAT_VERSION
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.signing import TrustStore, keyid_of, load_public_key_pem

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
VERSIONS = sorted(p for p in GOLDEN.glob("v*") if p.is_dir())


def test_current_format_version_has_a_golden_bundle() -> None:
    assert GOLDEN / f"v{FORMAT_VERSION}" in VERSIONS


@pytest.mark.parametrize("version", VERSIONS, ids=lambda p: p.name)
def test_golden_bundle_verifies(version: Path) -> None:
    expected = json.loads((version / "expected.json").read_text())
    trust = TrustStore.load(version / "trust.yaml")
    res = verify_bundle(version / expected["bundle"], trust, workers=1)
    assert res.status == expected["status"] == "valid", res.problems
    assert res.seal_digest == expected["seal_digest"]
    assert res.trust_digest == expected["trust_digest"]
    assert res.records == expected["records"]
    assert res.counts == expected["counts"]
    assert res.planned == expected["planned"]
    got = [{k: s[k] for k in ("meaning", "name", "keyid", "seal")} for s in res.signatures]
    assert got == expected["signatures"]
    # v1 is the legacy format, without trusted time; from v2 on the tokens verify.
    assert res.format_text == expected.get("format", "format v1 (legacy)")
    assert res.trusted_time == expected.get("trusted_time", [])
    if version.name == "v1":
        assert res.no_trusted_time == "format v1 has no timestamp records"
    # The keys were thrown away after signing: the store says so.
    assert all(k.throwaway for k in trust.keys.values())
    assert any("throwaway" in w for w in res.warnings)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda p: p.name)
def test_golden_public_keys_are_the_trusted_ones(version: Path) -> None:
    trust = TrustStore.load(version / "trust.yaml")
    ids = {keyid_of(load_public_key_pem(p.read_text())) for p in version.glob("*.pub")}
    assert ids == set(trust.keys)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda p: p.name)
def test_golden_bundle_reads(version: Path) -> None:
    expected = json.loads((version / "expected.json").read_text())
    b = read_bundle(version / expected["bundle"])
    assert b.seal_digest == expected["seal_digest"]
    kinds = [r.kind for r in b.records]
    assert kinds[0] == "run.start" and "run.end" in kinds
    # From v2 on, run.end and each signature are followed by their timestamp record.
    tail = ["signature"] if version.name == "v1" else ["signature", "timestamp"]
    assert kinds[-len(tail):] == tail
    big = b.check_results[0].data["observed"]["sysctl_big"]
    assert big == "18446744073709551615"  # integers beyond 2**53 travel as strings


def test_golden_v1_keeps_its_placeholders_and_v2_refuses_them(tmp_path: Path) -> None:
    """v1 sealed JUnit and report placeholders and keeps verifying; the same placeholders
    in a v2 bundle are invalid, naming the file."""
    from qualification.evidence.bundle import BundleWriter
    from qualification.signing import Ed25519Signer

    v1 = GOLDEN / "v1"
    v1_res = verify_bundle(v1 / json.loads((v1 / "expected.json").read_text())["bundle"],
                           TrustStore.load(v1 / "trust.yaml"), workers=1)
    assert any("lists no test" in w for w in v1_res.warnings)
    signer = Ed25519Signer.generate()
    trust = TrustStore.empty(tmp_path / "trust.yaml")
    trust.add_key(public_key_pem=signer.public_pem(), name="E", identity="e@example.com",
                  roles=["executor"], valid_from=datetime(2020, 1, 1, tzinfo=UTC))
    w = BundleWriter.create(tmp_path / "ev", "CHG1", "R1", signer, "jane")
    w.append("run.start", {"planned": [{"test_id": "T-1", "target": "h", "protocol": "IQ"}]})
    w.append("check.result", {"test_id": "T-1", "target": "h", "protocol": "IQ",
                              "verdict": "pass", "raw": None})
    placeholders = v1 / json.loads((v1 / "expected.json").read_text())["bundle"]
    for name in ("junit.xml", "report.html"):
        w.add_file(name, (placeholders / name).read_bytes())
    w.seal({"pass": 1}, 1, 1, "pass")
    res = verify_bundle(w.path, trust, workers=1)
    assert res.status == "invalid" and res.format_text == "format v2"
    assert res.problems == ["junit.xml: lists no test; the records have 1 results",
                            "report.html: lists no test; the records have 1 results"]
    (w.path / "report.html").write_bytes(b"")
    res = verify_bundle(w.path, trust, workers=1)
    assert "report.html: content does not match its manifest digest" in res.problems
    assert "report.html: is empty; format v2 seals it with every test" in res.problems


@pytest.mark.parametrize(
    "version", [v for v in VERSIONS if (v / "trust-root.yaml").is_file()], ids=lambda p: p.name
)
def test_golden_bundle_verifies_through_its_pinned_root(version: Path) -> None:
    """From format v2 on the fixture carries its trust history and the pin of the root that
    signed it: the bundle verifies judged by the trust version in force, and a pin of any
    other root refuses the store."""
    from qualification.review.trust_history import rooted_store
    from qualification.signing.trust_root import TrustRoot, parse_pin

    expected = json.loads((version / "expected.json").read_text())
    pin = version / "trust-root.yaml"
    root = TrustRoot(parse_pin(pin.read_bytes(), str(pin)), f"--trust-root {pin}", pin)
    timeline = rooted_store(version, root)
    assert (timeline.root_keyid, timeline.version) == (
        expected["trust_root"]["keyid"], expected["trust_root"]["version"])
    res = verify_bundle(version / expected["bundle"], timeline, workers=1)
    assert res.status == "valid", res.problems
    assert res.seal_digest == expected["seal_digest"]
    from qualification.errors import TrustError
    from qualification.signing import Ed25519Signer
    from qualification.signing.trust_root import new_root

    other = Ed25519Signer.generate()
    stranger = TrustRoot((new_root(other.public_pem(), "Other root", datetime(2026, 1, 1,
                                                                            tzinfo=UTC)),),
                         "test", pin)
    with pytest.raises(TrustError, match="not a pinned trust root"):
        rooted_store(version, stranger)
