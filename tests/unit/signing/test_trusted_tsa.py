"""The trust store's ``tsa`` section: the TSA's roots are entries of the store (covered by its
digest), read back as written; a malformed section is refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from qualification.errors import TrustError
from qualification.selftest.timestamp import _other_root
from qualification.signing import TrustStore
from qualification.signing.trusted_tsa import TsaEntry

SINCE = datetime(2026, 12, 1, tzinfo=UTC)


def _store(tmp_path: Path, **tsa: object) -> Path:
    doc = {"version": 1, "keys": [], "tsa": {
        "name": "Site TSA", "url": "https://tsa.example.com/", "roots": _other_root().decode(),
        "valid_from": "2026-12-01T00:00:00Z", **tsa}}
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_tsa_section_round_trips_and_its_roots_change_the_store_digest(
    tmp_path: Path,
) -> None:
    store = TrustStore.empty(tmp_path / "trust.yaml")
    store.save()
    without = store.digest
    root = _other_root().decode()
    store.tsa = TsaEntry("Site TSA", "https://tsa.example.com/", root, SINCE, "1.2.3.4")
    store.save()
    loaded = TrustStore.load(tmp_path / "trust.yaml")
    assert loaded.tsa == store.tsa and loaded.digest == store.digest != without
    assert isinstance(loaded.tsa.roots()[0], x509.Certificate)
    assert loaded.tsa.named_at(SINCE) and not loaded.tsa.named_at(datetime(2026, 1, 1, tzinfo=UTC))
    # Another root is another store.
    store.tsa = TsaEntry("Site TSA", "https://tsa.example.com/", _other_root().decode(), SINCE)
    assert store.save() != loaded.digest
    assert TrustStore.empty(tmp_path / "none.yaml").tsa is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "ftp://tsa.example.com/", "field 'url' 'ftp://tsa.example.com/' is not http"),
        ("roots", "not a certificate", "field 'roots': TSA roots: not PEM certificates"),
        ("valid_from", "2026-12-01", "field 'valid_from' must be a UTC time ending in Z"),
        ("policy", "one.two", "field 'policy' must be a dotted OID"),
        ("name", "", "field 'name' must be a non-empty string"),
        ("colour", "blue", "unknown field(s) ['colour']"),
    ],
)
def test_a_malformed_tsa_section_is_refused_naming_the_field(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    path = _store(tmp_path, **{field: value})
    with pytest.raises(TrustError) as err:
        TrustStore.load(path)
    assert message in err.value.message and err.value.where == f"{path}: tsa"
