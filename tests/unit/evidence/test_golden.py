"""Every stored golden bundle (one per format version) still verifies, byte for byte as made."""

from __future__ import annotations

import json
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
    assert kinds[0] == "run.start" and "run.end" in kinds and kinds[-1] == "signature"
    big = b.check_results[0].data["observed"]["sysctl_big"]
    assert big == "18446744073709551615"  # integers beyond 2**53 travel as strings
