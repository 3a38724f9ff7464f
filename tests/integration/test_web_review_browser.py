"""The review pages in real Chromium (the harness of tests/integration/test_web_browser.py:
Debian's Chromium and chromium-driver through Selenium, headless, offline) against
``vqual serve`` on SQLite: a run whose target reported markup, and a rolling patch run on
libvirt's test driver, pushed; a reviewer reads the run summary (its first 1280x800 holds
the verdict, the counts, each failure with its reason, waived and missing; no script of the
target's runs) and the rolling patch's timeline.

Screenshots ``run-summary.png`` and ``rolling-patch-timeline.png`` are saved to
``$VQUAL_ARTEFACTS/web-review/`` when ``VQUAL_ARTEFACTS`` is set, else to the test's own
temporary directory.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, run_vqual, vqual_env
from tests.integration import test_web_browser as harness
from tests.server_testlib import serve, token_file
from tests.unit.reports.review_testlib import HOSTILE_HOST, hostile_run, patch_run
from tests.unit.server.server_testlib import make_state

pytestmark = harness.pytestmark
browser = harness.browser  # the harness's Chromium, a fixture


@dataclass
class Pages:
    url: str
    hostile: str
    patch: str
    shots: Path


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[Pages]:
    st = make_state(tmp_path)
    hostile = hostile_run(st.evidence, st.keys, state=st.state)
    patch = patch_run(tmp_path, pin=True)  # the same state: its executor key joins the store
    done = subprocess.run([str(VENV_BIN / "vqual"), "serve", "user", "add", "--user-id", "rita",
                           "--name", "Rita Reviewer", "--role", "reviewer", "--password-fd", "0"],
                          input=harness.PASSWORD + "\n", text=True, capture_output=True,
                          env=vqual_env(st.state), timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    served = serve(st.state, "--insecure-cookies")
    try:
        pusher = token_file(st.state, "ci-pipeline", "pusher")
        for change in (hostile.parent, patch.parent):
            done = run_vqual("push", str(change), "--server", served.url, state_dir=st.state,
                             VQUAL_SERVER_TOKEN_FILE=str(pusher))
            assert done.returncode == 0, done.stdout + done.stderr
        root = os.environ.get("VQUAL_ARTEFACTS")
        shots = Path(root) / "web-review" if root else tmp_path / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        yield Pages(served.url, hostile.name, patch.name, shots)
    finally:
        served.stop()


def _bottom(element: object) -> float:
    rect = element.rect  # type: ignore[attr-defined]
    return float(rect["y"]) + float(rect["height"])


def test_the_summary_first_screen_and_the_timeline_in_chromium(
    pages: Pages, browser: object
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver = browser
    find = driver.find_element  # type: ignore[attr-defined]
    harness._login(driver, pages.url, "rita")
    driver.get(f"{pages.url}/review/runs")  # type: ignore[attr-defined]
    assert pages.hostile in find(By.ID, "runs").text and pages.patch in find(By.ID, "runs").text
    driver.get(f"{pages.url}/review/runs/{pages.hostile}")  # type: ignore[attr-defined]
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018 - no script ran
    assert find(By.ID, "verdict").text == "FAIL"
    failures = find(By.ID, "failures")
    assert f"MOTD-01 MOTD-01 as approved on {HOSTILE_HOST}" in failures.text
    assert 'content differs: <script>alert("reason")</script>' in failures.text
    assert "DEV-0007" in find(By.ID, "waived").text and "HCL-01" in find(By.ID, "missing").text
    height = driver.execute_script("return window.innerHeight")  # type: ignore[attr-defined]
    for section in ("verdict", "failures", "waived", "missing"):
        assert _bottom(find(By.ID, section)) <= height, f"{section} is below the first screen"
    driver.save_screenshot(str(pages.shots / "run-summary.png"))  # type: ignore[attr-defined]

    driver.get(f"{pages.url}/review/runs/{pages.patch}/timeline")  # type: ignore[attr-defined]
    steps = driver.find_elements(By.CSS_SELECTOR, "#timeline rect.step")  # type: ignore[attr-defined]
    assert len(steps) == 22 and all(s.is_displayed() for s in steps)
    driver.save_screenshot(str(pages.shots / "rolling-patch-timeline.png"))  # type: ignore[attr-defined]
    for shot in ("run-summary.png", "rolling-patch-timeline.png"):
        assert (pages.shots / shot).read_bytes().startswith(b"\x89PNG")
