"""Sites and retention on a real ``vqual serve`` (uvicorn, SQLite), with the commands a site
uses: the settings file in the state directory, ``vqual serve token create --site``, ``vqual
push``/``pull`` refused across sites (exit 1, one line, audited), the audit trail exported
over HTTP as CSV, and ``vqual serve retention purge`` refused within retention and, past it,
followed by ``vqual log check`` and ``vqual serve check`` passing."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import urllib.request
from pathlib import Path

from tests.conftest import VENV_BIN, run_vqual, vqual_env
from tests.server_testlib import serve, token_file
from tests.unit.server.server_testlib import make_state
from tests.unit.server.sites_testlib import site_run

BASEL, VISP, VISP2 = ("20260301T100000Z-basel1", "20260301T110000Z-visp01",
                      "20260301T120000Z-visp02")
#: visp keeps nothing (0 days): its runs are past retention at once, no clock to wait for.
SETTINGS = """\
sites: [basel, visp]
retention:
  default_days: 3653
  sites: {visp: 0}
"""


def _vqual(state: Path, token: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_vqual(*args, state_dir=state, VQUAL_SERVER_TOKEN_FILE=str(token))


def _purge(state: Path, run: str, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "vqual"), "serve", "retention", "purge", run, "--reason",
         "retention ended", "--key", str(key), "--passphrase-fd", "0"],
        input="correct horse battery\n", text=True, capture_output=True,
        env=vqual_env(state), timeout=300, check=False)


def test_sites_and_retention_on_a_real_server(tmp_path: Path) -> None:
    st = make_state(tmp_path)
    state = st.state
    (state / "server").mkdir()
    (state / "server" / "settings.yaml").write_text(SETTINGS)
    approver = tmp_path / "approver.pem"
    done = subprocess.run(
        [str(VENV_BIN / "vqual"), "keys", "create", "--name", "Paula Purger", "--role",
         "approver", "--out", str(approver), "--passphrase-fd", "0"],
        input="correct horse battery\n", text=True, capture_output=True,
        env=vqual_env(state), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    bundles = {BASEL: site_run(st, BASEL, "basel"), VISP: site_run(st, VISP, "visp"),
               VISP2: site_run(st, VISP2, "visp")}

    no_site = run_vqual("serve", "token", "create", "--name", "x", "--role", "pusher",
                        state_dir=state)
    assert no_site.returncode == 2 and "give the account --site" in no_site.stderr
    basel_ci = token_file(state, "basel-ci", "pusher", "--site", "basel")
    visp_ci = token_file(state, "visp-ci", "pusher", "--site", "visp")
    visp_qa = token_file(state, "visp-qa", "reader", "--site", "visp")
    hq_qa = token_file(state, "hq-qa", "reader", "--site", "*")
    admin = token_file(state, "hq-admin", "admin", "--site", "*")
    served = serve(state)
    try:
        url = served.url
        assert _vqual(state, basel_ci, "push", str(bundles[BASEL]), "--server", url
                      ).returncode == 0
        refused = _vqual(state, basel_ci, "push", str(bundles[VISP]), "--server", url)
        # 403, like 401, is the caller's to fix (exit 2); one line, no traceback
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1
        assert "account basel-ci (sites: basel) may not push run " + VISP in refused.stderr
        for run in (VISP, VISP2):
            assert _vqual(state, visp_ci, "push", str(bundles[run]), "--server", url
                          ).returncode == 0
        refused = _vqual(state, visp_qa, "pull", BASEL, "--server", url, "-o",
                         str(tmp_path / "no"))
        # vqual pull reads the run's description first: refused there
        assert refused.returncode == 2 and "may not read run " + BASEL in refused.stderr
        assert _vqual(state, hq_qa, "pull", BASEL, "--server", url, "-o",
                      str(tmp_path / "got")).returncode == 0
        assert _vqual(state, hq_qa, "log", "check", str(bundles[BASEL]), "--server", url
                      ).returncode == 0  # the client has seen size 3

        request = urllib.request.Request(f"{url}/api/v1/audit?format=csv&run={BASEL}",
                                          headers={"Authorization": "Bearer "
                                                   + admin.read_text().strip()})
        with urllib.request.urlopen(request, timeout=60) as answer:
            rows = list(csv.DictReader(io.StringIO(answer.read().decode())))
        assert [(r["who"], r["action"], r["outcome"]) for r in rows
                if r["action"] != "read"] == [("hq-qa", "pull", "ok"),
                                              ("basel-ci", "push", "stored")]
        assert ("visp-qa", "read", "refused") in [(r["who"], r["action"], r["outcome"])
                                                  for r in rows]

        listed = run_vqual("serve", "retention", "list", state_dir=state)
        assert [json.loads(line)["run_id"] for line in listed.stdout.splitlines()] == [
            VISP, VISP2]
        kept = _purge(state, BASEL, approver)
        assert kept.returncode == 2 and kept.stderr.count("\n") == 1
        assert f"run {BASEL} is within its retention until " in kept.stderr
        done = _purge(state, VISP, approver)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"purged run {VISP} (seal ")
        assert done.stdout.endswith("by Paula Purger; tombstone kept; log entry 4\n")

        checked = _vqual(state, hq_qa, "log", "check", str(bundles[BASEL]), "--server", url)
        assert checked.returncode == 0, checked.stdout
        assert "log VALID at checkpoint size 4" in checked.stdout
        gone = _vqual(state, hq_qa, "pull", VISP, "--server", url, "-o", str(tmp_path / "g"))
        assert gone.returncode != 0 and "no run " + VISP in gone.stderr
        again = _vqual(state, visp_ci, "push", str(bundles[VISP]), "--server", url)
        assert again.returncode == 1 and "was purged past its retention" in again.stderr
    finally:
        served.stop()
    done = run_vqual("serve", "check", state_dir=state)
    assert (done.returncode, done.stdout) == (
        0, "consistent: 4 log entries, 4 signed checkpoints, 2 runs\n")
    audit = [json.loads(line) for line in
             run_vqual("serve", "audit", "--action", "purge", state_dir=state).stdout.splitlines()]
    assert [(r["who"], r["outcome"], r["run_id"]) for r in audit] == [
        ("Paula Purger", "ok", VISP), ("retention", "refused", BASEL)]
