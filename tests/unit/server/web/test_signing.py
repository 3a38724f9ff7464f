"""E-signatures in the browser: a reviewer's "reviewed" and an approver's "approved" land in
the stored bundle as ``vqual sign`` writes them, are logged in the transparency log, and the
pulled bundle verifies offline with both; ``vqual sign``'s separation of duties holds."""

from __future__ import annotations

import html
import re
from pathlib import Path

from starlette.testclient import TestClient

from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.review.esign import sign_bundle
from qualification.server.files import unpack
from qualification.server.leaves import after_seal_leaf, leaf_hash, read_sealed
from qualification.signing import TrustStore
from tests.unit.server.web.conftest import RUN, Web
from tests.unit.server.web.web_testlib import PASSWORD, add_person, csrf_of, login


def _sign(web: Web, user: str, meaning: str, comment: str = "checked") -> int:
    client = web.client()
    login(client, user)
    page = client.get(f"/runs/{RUN}/sign?meaning={meaning}")
    assert page.status_code == 200
    got = client.post(f"/runs/{RUN}/sign?meaning={meaning}", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "user_id": user, "password": PASSWORD,
        "comment": comment})
    return got.status_code


def test_browser_signatures_verify_offline_like_vqual_signs(web: Web, tmp_path: Path) -> None:
    assert _sign(web, "rita", "reviewed") == 303
    assert _sign(web, "alan", "approved", "released") == 303
    info, tar = web.server.pull("qa", RUN)
    pulled = tmp_path / "pulled"
    unpack(tar, pulled, max_bytes=1 << 30)
    trust = TrustStore.load(web.st.state / "trust.yaml")
    result = verify_bundle(pulled, trust, workers=1)
    assert result.status == "valid", result.problems
    sigs = read_bundle(pulled).signatures
    assert [(s.data["meaning"], s.data["name"], s.data["roles"], s.data["comment"])
            for s in sigs] == [("reviewed", "Rita Reviewer", ["reviewer"], "checked"),
                               ("approved", "Alan Approver", ["approver"], "released")]
    assert {s.data["seal"] for s in sigs} == {info["seal"]}

    # The same record shape as `vqual sign` writes with a key file.
    cli = tmp_path / "cli"
    unpack(tar, cli, max_bytes=1 << 30)
    sign_bundle(cli, web.st.keys.reviewer, trust, "reviewed", "checked")
    assert sorted(read_bundle(cli).signatures[-1].data) == sorted(sigs[0].data)

    # Each signature is a leaf of the transparency log.
    sealed = read_sealed(pulled)
    for kind, line in sealed.after():
        digest = leaf_hash(after_seal_leaf(RUN, info["seal"], kind, line))
        assert web.server.inclusion(digest, 3)["index"] in (2, 3)
    assert [a[:3] for a in web.audit() if a[1] == "sign"] == [
        ("rita", "sign", "ok"), ("alan", "sign", "ok")]


def test_whoever_initiated_the_run_may_not_approve_it(web: Web) -> None:
    add_person(web.st, web.server, "jane.doe", "jane.doe", ["approver"])
    assert _sign(web, "jane.doe", "approved") == 403
    refused = [a for a in web.audit() if a[:3] == ("jane.doe", "sign", "refused")]
    assert "initiated this run and may not approve it" in refused[-1][3]


def test_signing_links_hide_once_signed_and_a_repeat_is_refused(web: Web) -> None:
    summary = f"/review/runs/{RUN}"
    rita, alan = web.client(), web.client()
    login(rita, "rita")
    login(alan, "alan")
    assert 'id="sign-reviewed"' in rita.get(summary).text
    assert _sign(web, "rita", "reviewed") == 303
    assert 'id="sign-reviewed"' not in rita.get(summary).text
    assert _sign(web, "rita", "reviewed") == 409
    page = alan.get(summary).text
    assert 'id="sign-approved"' in page and 'id="sign-rejected"' in page
    assert _sign(web, "alan", "approved") == 303
    page = alan.get(summary).text
    assert 'id="sign-approved"' not in page and 'id="sign-rejected"' not in page
    for meaning in ("approved", "rejected"):
        assert _sign(web, "alan", meaning) == 409
    refused = [a[3] for a in web.audit() if a[:3] in (("rita", "sign", "refused"),
                                                       ("alan", "sign", "refused"))]
    assert "you signed run" in refused[0] and "as reviewed already" in refused[0]
    assert all("approved already" in r for r in refused[1:]) and len(refused) == 3
    assert [s.data["meaning"] for s in read_bundle(web.server.store / "CHG0001234" / RUN)
            .signatures] == ["reviewed", "approved"]


def test_the_dialog_of_a_signature_made_already_says_who_signed_when_and_has_no_form(
        web: Web) -> None:
    add_person(web.st, web.server, "bert", "Bert Approver", ["approver"])
    rita, alan, bert = web.client(), web.client(), web.client()
    for client, user in ((rita, "rita"), (alan, "alan"), (bert, "bert")):
        login(client, user)
    dialog = f"/runs/{RUN}/sign?meaning="
    assert 'id="sign-submit"' in rita.get(dialog + "reviewed").text
    assert _sign(web, "rita", "reviewed") == 303
    assert _sign(web, "alan", "approved") == 303
    times = {s.data["meaning"]: s.time[:19].replace("T", " ") + " UTC"
             for s in read_bundle(web.server.store / "CHG0001234" / RUN).signatures}

    def done_line(client: TestClient, meaning: str) -> str:
        page = client.get(dialog + meaning)
        assert page.status_code == 200
        assert 'id="sign-submit"' not in page.text and "<form" not in page.text.split(
            'id="signing"')[1]
        (line,) = re.findall(r'<p class="refused" id="sign-done">([^<]*)</p>', page.text)
        return html.unescape(line)

    assert done_line(rita, "reviewed") == (
        f"you signed run {RUN} as reviewed already, as Rita Reviewer at {times['reviewed']}; "
        "a person signs once")
    for client in (alan, bert):  # the decision is made: no approver gets a form
        for meaning in ("approved", "rejected"):
            assert done_line(client, meaning) == (
                f"run {RUN} is approved already, by Alan Approver at {times['approved']}; "
                "it takes no further decision")
    # The POST, refused with 409, shows the same line without a form.
    again = rita.post(dialog + "reviewed", data={
        "csrf_token": csrf_of(rita.get(f"/review/runs/{RUN}").text), "user_id": "rita",
        "password": PASSWORD})
    assert again.status_code == 409 and 'id="sign-submit"' not in again.text
    assert "as Rita Reviewer at" in html.unescape(again.text)
    assert [s.data["meaning"] for s in read_bundle(web.server.store / "CHG0001234" / RUN)
            .signatures] == ["reviewed", "approved"]
