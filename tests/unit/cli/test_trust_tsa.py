"""``vqual trust tsa add|remove|list`` (VQ-94): the trust store's ``tsa`` section from the
command line, against a real TSA (the lab's OpenSSL ``ts`` TSA with its own CA, started here
on port 0, not the machine-wide lab). A change counts once a trust-admin signs the version,
as for keys; bad input is one line and exit 2 with the store unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from vqual_lab.tsa import TsaProcess, running_tsa

from qualification.cli import main
from qualification.errors import TrustError
from qualification.evidence.trusted_time import token_path
from qualification.review.pinned import choose_trust
from qualification.review.trust_history import history
from qualification.signing import Ed25519Signer, TrustStore
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import SINCE, make_keys

POLICY = "1.3.6.1.4.1.99999.1"


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaProcess]:
    with running_tsa(tmp_path_factory.mktemp("tsa"), address="127.0.0.94", port=0) as proc:
        yield proc


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir()
    make_keys(folder, pinned=True)  # signed by the test root, a trust-admin of it
    return folder


def _tsa(state: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["trust", "tsa", *args, "--state-dir", str(state)])


def _add(state: Path, tsa: TsaProcess, *extra: str) -> Result:
    return _tsa(state, "add", "--name", "Site TSA", "--url", tsa.url, "--roots",
                str(tsa.ca_file), *extra)


def _one_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_add_counts_once_signed_and_stamps_what_is_signed_later(
    state: Path, tsa: TsaProcess
) -> None:
    done = _add(state, tsa, "--policy", POLICY)
    assert done.exit_code == 0, done.output
    assert "counts once a trust-admin signs this version (vqual trust sign)" in done.stdout
    listed = _tsa(state, "list")
    assert listed.exit_code == 0
    assert "tsa: Site TSA" in listed.stdout and f"policy: {POLICY}" in listed.stdout
    assert "root: " in listed.stdout and "not signed: an unsigned change" in listed.stdout
    # unsigned, the pinned root vouches for nothing (the store differs from version 1)
    with pytest.raises(TrustError, match="not signed version"):
        choose_trust(state)

    pin_state(state)  # a trust-admin signs it: version 2
    assert "as in signed trust store version 2" in _tsa(state, "list").stdout
    assert history(state)[-1].changes[-1].startswith(f"named the TSA Site TSA ({tsa.url})")
    judged = choose_trust(state).store
    assert judged.tsa is not None and judged.tsa.url == tsa.url
    assert judged.tsa.policy == POLICY

    # What is signed from then on carries a token from it: the next trust store version.
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=Ed25519Signer.generate().public_pem(), name="Later",
                  identity="later", roles=["reviewer"], valid_from=SINCE)
    store.save()
    pin_state(state)
    sig = state / "trust-history" / "v0003.sig.json"
    assert sig.is_file() and token_path(sig).is_file()


def test_remove_and_replace(state: Path, tsa: TsaProcess) -> None:
    assert _add(state, tsa).exit_code == 0
    pin_state(state)
    again = _add(state, tsa)
    assert again.exit_code == 2
    assert "already names the TSA Site TSA" in _one_line(again)
    replaced = _tsa(state, "add", "--name", "Other TSA", "--url", tsa.url, "--roots",
                    str(tsa.ca_file), "--replace")
    assert replaced.exit_code == 0, replaced.output
    pin_state(state)
    assert history(state)[-1].changes[-1].startswith("replaced the TSA with Other TSA")
    removed = _tsa(state, "remove")
    assert removed.exit_code == 0 and "removed the TSA Other TSA" in removed.stdout
    pin_state(state)
    assert history(state)[-1].changes == (f"removed the TSA Other TSA ({tsa.url})",)
    assert choose_trust(state).store.tsa is None
    assert "no TSA" in _tsa(state, "list").stdout
    none = _tsa(state, "remove")
    assert none.exit_code == 2 and "names no TSA" in _one_line(none)


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "ftp://tsa.example.com/"], "field 'url' 'ftp://tsa.example.com/' is not http(s)"),
    (["--policy", "not-an-oid"], "field 'policy' must be a dotted OID"),
    (["--roots", "{junk}"], "field 'roots': "),
    (["--valid-from", "last tuesday"], "--valid-from: 'last tuesday' is not an ISO 8601 time"),
])
def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(
    state: Path, tsa: TsaProcess, tmp_path: Path, args: list[str], message: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    before = (state / "trust.yaml").read_bytes()
    done = _add(state, tsa, *[a.replace("{junk}", str(junk)) for a in args])
    assert done.exit_code == 2, done.output
    assert message in _one_line(done)
    assert (state / "trust.yaml").read_bytes() == before
