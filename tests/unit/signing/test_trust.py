"""trust.yaml: loading, validation errors naming file and field, saving, validity at a time."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification.errors import TrustError
from qualification.signing import Ed25519Signer, TrustStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2027, 1, 1, tzinfo=UTC)


def entry(signer: Ed25519Signer, **extra: str) -> str:
    pem = textwrap.indent(signer.public_pem(), "      ")
    lines = [
        f"  - keyid: {signer.keyid}",
        "    name: Jane Doe",
        "    identity: jane.doe@example.com",
        "    roles: [reviewer, approver]",
        "    public_key: |",
        pem.rstrip("\n"),
        "    valid_from: 2026-01-01T00:00:00Z",
    ]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_load_documented_format_and_digest(tmp_path: Path) -> None:
    s = Ed25519Signer.generate()
    p = write(
        tmp_path / "trust.yaml",
        "version: 1\nkeys:\n"
        + entry(s, valid_until="2027-01-01T00:00:00Z", revoked_at="null", throwaway="false"),
    )
    store = TrustStore.load(p)
    key = store.keys[s.keyid]
    assert (key.name, key.identity, key.roles) == (
        "Jane Doe",
        "jane.doe@example.com",
        ("reviewer", "approver"),
    )
    assert key.valid_from == T0 and key.valid_until == T1 and key.revoked_at is None
    assert store.digest == hashlib.sha256(p.read_bytes()).hexdigest()
    assert store.has_role(s.keyid, "approver") and not store.has_role(s.keyid, "executor")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("version: 1", "version: 2"), "field 'version' must be 1"),
        (
            lambda t: t.replace("roles: [reviewer, approver]", "roles: [boss]"),
            r"keys\[0\]: field 'roles': unknown role 'boss'",
        ),
        (
            lambda t: t.replace("roles: [reviewer, approver]", "roles: []"),
            r"keys\[0\]: field 'roles' must be a non-empty list",
        ),
        (
            lambda t: t.replace("valid_from: 2026-01-01T00:00:00Z", "valid_from: 2026-01-01"),
            r"keys\[0\]: field 'valid_from' needs a time",
        ),
        (
            lambda t: t.replace(
                "valid_from: 2026-01-01T00:00:00Z", "valid_from: 2026-01-01T00:00:00"
            ),
            r"keys\[0\]: field 'valid_from' must end in Z",
        ),
        (
            lambda t: t.replace("valid_from: 2026-01-01T00:00:00Z", "valid_from: soon"),
            r"keys\[0\]: field 'valid_from' is not a UTC time",
        ),
        (
            lambda t: t.replace("    valid_from: 2026-01-01T00:00:00Z\n", ""),
            r"keys\[0\]: field 'valid_from' is required",
        ),
        (
            lambda t: t.replace("name: Jane Doe", "name: ''"),
            r"keys\[0\]: field 'name' must be a non-empty string",
        ),
        (
            lambda t: t.replace("keyid: ", "keyid: 00"),
            r"keys\[0\]: field 'keyid' .* does not match",
        ),
        (lambda t: t.replace("MCow", "MCox"), r"keys\[0\]: field 'public_key'"),
        (lambda t: t + "    colour: blue\n", r"keys\[0\]: unknown field\(s\) \['colour'\]"),
        (lambda t: t + "    throwaway: maybe\n", r"field 'throwaway' must be true or false"),
        (lambda t: t.replace("keys:", "extra: x\nkeys:"), r"unknown field\(s\) \[.extra.\]"),
        (lambda t: t.replace("keys:", "keys: {}\nother:"), "field .keys. must be a list"),
        (lambda t: "keys: [\n", "not valid YAML"),
        (lambda t: "- 1\n", "top level must be a mapping"),
    ],
)
def test_malformed_store_names_file_and_field(tmp_path: Path, mutate, message: str) -> None:
    s = Ed25519Signer.generate()
    p = write(tmp_path / "trust.yaml", mutate("version: 1\nkeys:\n" + entry(s)))
    with pytest.raises(TrustError, match=message) as err:
        TrustStore.load(p)
    assert str(p) in str(err.value)


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    s = Ed25519Signer.generate()
    p = write(tmp_path / "trust.yaml", "version: 1\nkeys:\n" + entry(s) + entry(s))
    with pytest.raises(TrustError, match=r"keys\[1\].keyid .* listed twice"):
        TrustStore.load(p)


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match="cannot be read"):
        TrustStore.load(tmp_path / "nope.yaml")


def test_key_status_at_judges_the_signing_time(tmp_path: Path) -> None:
    s = Ed25519Signer.generate()
    p = write(
        tmp_path / "trust.yaml",
        "version: 1\nkeys:\n"
        + entry(s, valid_until="2027-01-01T00:00:00Z", revoked_at="2026-06-01T00:00:00Z"),
    )
    store = TrustStore.load(p)
    assert store.key_status_at(s.keyid, datetime(2026, 3, 1, tzinfo=UTC)) == (True, "valid")
    ok, why = store.key_status_at(s.keyid, datetime(2025, 12, 31, tzinfo=UTC))
    assert not ok and "not valid before 2026-01-01T00:00:00Z" in why
    ok, why = store.key_status_at(s.keyid, datetime(2026, 6, 1, tzinfo=UTC))
    assert not ok and "revoked at 2026-06-01T00:00:00Z" in why
    ok, why = store.key_status_at(s.keyid, datetime(2027, 1, 1, tzinfo=UTC))
    assert not ok and "expired at 2027-01-01T00:00:00Z" in why
    ok, why = store.key_status_at("ab" * 32, datetime(2026, 3, 1, tzinfo=UTC))
    assert not ok and "not in the trust store" in why


def test_add_key_save_and_reload(tmp_path: Path) -> None:
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    store = TrustStore.empty(tmp_path / "state" / "trust.yaml")
    store.add_key(
        public_key_pem=a.public_pem(),
        name="CI",
        identity="svc-ci",
        roles=["executor"],
        valid_from=T0,
        throwaway=True,
    )
    store.add_key(
        public_key_pem="# comment line\n" + b.public_pem(),
        name="Rita",
        identity="rita",
        roles=["reviewer"],
        valid_from=T0,
        valid_until=T1,
    )
    digest = store.save()
    again = TrustStore.load(tmp_path / "state" / "trust.yaml")
    assert again.digest == digest
    assert again.keys == store.keys
    assert again.keys[a.keyid].throwaway and again.keys[b.keyid].valid_until == T1
    assert "public_key: |" in (tmp_path / "state" / "trust.yaml").read_text()
    with pytest.raises(TrustError, match="already in the trust store"):
        store.add_key(
            public_key_pem=a.public_pem(),
            name="CI",
            identity="svc-ci",
            roles=["executor"],
            valid_from=T0,
        )
    with pytest.raises(TrustError, match="unknown role"):
        store.add_key(
            public_key_pem=Ed25519Signer.generate().public_pem(),
            name="X",
            identity="x",
            roles=["admin"],
            valid_from=T0,
        )
    with pytest.raises(TrustError, match="time zone"):
        store.add_key(
            public_key_pem=Ed25519Signer.generate().public_pem(),
            name="X",
            identity="x",
            roles=["executor"],
            valid_from=datetime(2026, 1, 1),
        )


def test_revoke_keeps_earlier_signatures_valid(tmp_path: Path) -> None:
    a = Ed25519Signer.generate()
    store = TrustStore.empty(tmp_path / "trust.yaml")
    store.add_key(
        public_key_pem=a.public_pem(), name="CI", identity="ci", roles=["executor"], valid_from=T0
    )
    store.revoke(a.keyid, datetime(2026, 6, 1, tzinfo=UTC))
    store.save()
    loaded = TrustStore.load(tmp_path / "trust.yaml")
    assert loaded.key_status_at(a.keyid, datetime(2026, 5, 31, tzinfo=UTC))[0]
    assert not loaded.key_status_at(a.keyid, datetime(2026, 6, 2, tzinfo=UTC))[0]
