"""The rolling-patch timeline (VQ-69) from real patch runs on libvirt's test driver."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from qualification.evidence.reader import read_bundle
from qualification.reports.summary import render_summary
from qualification.reports.timeline import render_timeline, timeline_context
from tests.unit.reports.review_testlib import patch_run, records

SVG = "{http://www.w3.org/2000/svg}"


def test_each_host_has_its_steps_in_order_on_one_time_axis(tmp_path: Path) -> None:
    bundle = patch_run(tmp_path)
    svg = render_timeline(read_bundle(bundle).records)
    assert svg is not None
    root = ET.fromstring(svg)  # well-formed SVG
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "step"]
    for host in ("h1", "h2"):
        steps = [b for b in bars if b.get("data-host") == host]
        assert [b.get("data-step") for b in steps] == [
            "recheck", "stop_placements", "evacuate", "verify_empty", "enter_maintenance",
            "patch", "reboot", "requalify", "leave_maintenance", "health_check", "commit"]
        xs = [float(b.get("x", "0")) for b in steps]
        assert xs == sorted(xs)
    phases = {b.get("data-phase") for b in bars}
    assert phases == {"evacuate", "maintenance", "patch", "reboot", "requalify", "return"}
    # h2 is patched after h1: its first step starts after h1's last ends
    h1_end = max(float(b.get("x", "0")) for b in bars if b.get("data-host") == "h1")
    h2_start = min(float(b.get("x", "0")) for b in bars if b.get("data-host") == "h2")
    assert h2_start >= h1_end
    assert not [g for g in root.iter(f"{SVG}g") if g.get("class") == "halt"]


def test_a_halted_run_shows_where_and_why(tmp_path: Path) -> None:
    bundle = patch_run(tmp_path, running_vm=True)
    recs = read_bundle(bundle).records
    context = timeline_context(recs)
    assert context is not None
    (halt,) = context["halts"]
    assert halt["label"] == "halted at h1 evacuate"
    assert halt["reason"].startswith("migrate idle1 to h2")
    assert {b["step"] for b in context["bars"]} == {"recheck", "stop_placements"}
    html = render_summary(recs)
    assert '<section id="timeline">' in html and "halted at h1 evacuate" in html
    assert re.search(r'<section id="halted">.*not supported', html, re.DOTALL)


def test_vm_moves_are_drawn_from_the_evacuate_step_detail(tmp_path: Path) -> None:
    # The test driver cannot migrate, so the moves are added to a real run's evacuate record
    # in the form qualification.rollout.steps.evacuate writes (the vCenter simulator and the
    # lab's KVM hosts make real ones: tests/integration/test_rolling_patch_*.py).
    recs = records(patch_run(tmp_path))
    evacuate = next(r for r in recs if r["data"].get("name") == "patch.evacuate")
    evacuate["data"]["detail"] = {"app<1>": {"destination": "h2", "seconds": 1.5},
                                  "db1": {"destination": "h2", "already_there": True}}
    svg = render_timeline(recs)
    assert svg is not None
    root = ET.fromstring(svg)
    moves = [g for g in root.iter(f"{SVG}g") if g.get("class") == "move"]
    assert [(g.get("data-vm"), g.get("data-to")) for g in moves] == [("app<1>", "h2"),
                                                                     ("db1", "h2")]
    assert "app&lt;1&gt; → h2 (1.5 s)" in svg


def test_no_patch_steps_no_picture(tmp_path: Path) -> None:
    from tests.unit.evidence.evidence_testlib import make_keys
    from tests.unit.reports.review_testlib import hostile_run

    keys = make_keys(tmp_path / "state")
    assert render_timeline(read_bundle(hostile_run(tmp_path / "ev", keys, state=tmp_path / "state")).records) is None
