"""What the lab's simulator patches fix, shown against upstream's simulator built as shipped:
an unset-property read drops the connection there and answers on the lab's build; a second
SetField adds a duplicate value there and replaces it on the lab's build."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from vqual_lab import manager, vcsim
from vqual_lab.component import stop_pid

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ADDRESS, PORT = "127.0.0.43", 18445


@pytest.fixture(scope="module")
def upstream(lab: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ctx = manager.context()
    built = vcsim.build(ctx.lab_dir, patched=False)
    assert built.binary.parent.name == "bin-unpatched"
    work = tmp_path_factory.mktemp("upstream-vcsim")
    cred = work / "cred.json"
    fd = os.open(cred, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"username": "bench", "password": "upstream-only"}, fh)
    with open(work / "log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(built.binary),
                "-mode",
                "vcenter",
                "-listen",
                f"{ADDRESS}:{PORT}",
                "-credentials",
                str(cred),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(work)},
            start_new_session=True,
        )
    try:
        inst = vcsim.VcsimInstance(
            key="upstream", inventory_host="upstream", mode="vcenter", address=ADDRESS, port=PORT
        )
        deadline = time.monotonic() + 30
        while not vcsim._sdk_answers(inst, timeout=1.0):
            assert proc.poll() is None and time.monotonic() < deadline, (work / "log").read_text()
            time.sleep(0.05)
        si = SmartConnect(
            host=ADDRESS,
            port=PORT,
            user="bench",
            pwd="upstream-only",
            sslContext=ssl._create_unverified_context(),
        )
        try:
            yield si
        finally:
            Disconnect(si)
    finally:
        stop_pid(proc.pid)
        proc.wait(timeout=5)


def test_unset_property_read_drops_the_connection_upstream_and_answers_patched(
    upstream: Any,
) -> None:
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _ = upstream.RetrieveContent().eventManager.latestEvent
    ctx = manager.context()
    comp = manager.component("vcsim")
    assert isinstance(comp, vcsim.VcsimComponent)
    si = vcsim.connect(ctx, comp.instance("vcenter"))
    try:
        assert si.RetrieveContent().eventManager.latestEvent is None
    finally:
        vcsim.disconnect(si)


def test_second_setfield_duplicates_upstream(upstream: Any) -> None:
    content = upstream.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    host = view.view[0]
    view.Destroy()
    cfm = content.customFieldsManager
    field = cfm.AddCustomFieldDef(name="vqual.upstream", moType=vim.HostSystem)
    cfm.SetField(entity=host, key=field.key, value="one")
    cfm.SetField(entity=host, key=field.key, value="two")
    values = [v.value for v in host.customValue if v.key == field.key]
    assert values == ["one", "two"]  # the lab's 0002 patch makes this ["two"]
