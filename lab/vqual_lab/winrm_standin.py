"""WinRM stand-in for a Hyper-V host: not Hyper-V; no real Windows endpoint can run here.

A small WS-Management server (HTTP, Basic authentication, lab only) that speaks enough of the
Windows Remote Shell protocol for pywinrm's ``Session.run_ps``: create a shell, run a
command, receive its output, signal, delete the shell. The PowerShell it "runs" is a table of
canned answers (``assets/winrm/hv1.json``) for the commands a Hyper-V adapter reads, written in
the JSON shape that Windows PowerShell 5.1's ``ConvertTo-Json`` gives the objects those cmdlets
return (enumerations as integers, one object unwrapped, no output for nothing). The output
types follow Microsoft's documentation:

- ``Get-VMHost`` (Microsoft.HyperV.PowerShell.VMHost):
  https://learn.microsoft.com/powershell/module/hyper-v/get-vmhost
- ``Get-ComputerInfo`` (Microsoft.PowerShell.Commands.ComputerInfo):
  https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-computerinfo
- ``Get-VM`` (Microsoft.HyperV.PowerShell.VirtualMachine):
  https://learn.microsoft.com/powershell/module/hyper-v/get-vm
- ``Get-VMSwitch`` (Microsoft.HyperV.PowerShell.VMSwitch):
  https://learn.microsoft.com/powershell/module/hyper-v/get-vmswitch
- ``Confirm-SecureBootUEFI`` (System.Boolean):
  https://learn.microsoft.com/powershell/module/secureboot/confirm-securebootuefi
- ``Get-WindowsFeature`` (Microsoft.Windows.ServerManager.Commands.Feature):
  https://learn.microsoft.com/powershell/module/servermanager/get-windowsfeature
- ``ConvertTo-Json`` (enums as numbers unless ``-EnumsAsStrings``; ``-Compress``):
  https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json
- The shell protocol (MS-WSMV):
  https://learn.microsoft.com/openspecs/windows_protocols/ms-wsmv/

Anything else (another cmdlet, a pipeline other than ``| ConvertTo-Json``, ``Select-Object``,
a script block) is answered with an error on stderr and exit code 1, never with invented data.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import http.server
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from vqual_lab.component import (
    ComponentStatus,
    LabContext,
    pid_start_time,
    processes_under,
    same_process,
    stop_pid,
    tail,
)
from vqual_lab.vcsim import is_loopback

ASSETS = Path(__file__).parent / "assets" / "winrm"
DEFAULT_PROFILE = ASSETS / "hv1.json"

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = f"{NS['rsp']}/Command"
ACTION_RECEIVE = f"{NS['rsp']}/Receive"
ACTION_SIGNAL = f"{NS['rsp']}/Signal"
STATE_DONE = f"{NS['rsp']}/CommandState/Done"

# Preference assignments a client may put before its command; they change nothing here.
_PREFERENCE = re.compile(r"^\$(ErrorActionPreference|ProgressPreference|WarningPreference)\s*=")
_CONVERT = re.compile(r"^ConvertTo-Json(?P<args>(\s+-(Depth\s+\d+|Compress))*)\s*$", re.IGNORECASE)
_NAME_ARG = re.compile(r"^(?:-Name\s+)?(?P<names>[\w.*-]+(?:\s*,\s*[\w.*-]+)*)$", re.IGNORECASE)


# --- the PowerShell table ----------------------------------------------------------------


@dataclass
class Result:
    """What a command wrote: stdout, stderr and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def _error(message: str) -> Result:
    return Result(stderr=f"{message}\r\n", exit_code=1)


def _match_names(objects: list[Any], names: list[str], key: str) -> list[Any]:
    """Objects whose ``key`` matches one of ``names`` (PowerShell wildcards ``*``)."""
    pats = [re.compile("^" + re.escape(n).replace(r"\*", ".*") + "$", re.IGNORECASE) for n in names]
    return [o for o in objects if any(p.match(str(o.get(key, ""))) for p in pats)]


def run_powershell(script: str, profile: dict[str, list[Any]]) -> Result:
    """Answer one PowerShell script from the canned ``profile``.

    Understood: optional ``$...Preference = ...;`` statements, then ``<cmdlet> [names]``
    piped to ``ConvertTo-Json [-Depth N] [-Compress]``. ``Get-VM``, ``Get-VMSwitch`` and
    ``Get-WindowsFeature`` take names (``-Name a,b`` or positional, ``*`` wildcards).
    """
    statements = [s.strip() for s in script.replace("\r", "").replace("\n", ";").split(";")]
    statements = [s for s in statements if s and not _PREFERENCE.match(s)]
    if len(statements) != 1:
        return _error("stand-in: only one '<cmdlet> | ConvertTo-Json' statement is answered")
    stages = [s.strip() for s in statements[0].split("|")]
    if len(stages) != 2 or not (conv := _CONVERT.match(stages[1])):
        return _error("stand-in: only '<cmdlet> | ConvertTo-Json' pipelines are answered")
    compress = "compress" in conv.group("args").lower()
    cmdlet, _, rest = stages[0].partition(" ")
    known = {k.lower(): k for k in profile if not k.startswith("_")}
    if cmdlet.lower() not in known:
        return _error(
            f"{cmdlet} : The term '{cmdlet}' is not recognized as the name of a cmdlet "
            "(WinRM stand-in: not Hyper-V)"
        )
    name = known[cmdlet.lower()]
    objects = copy.deepcopy(profile[name])
    rest = rest.strip()
    if rest:
        args = _NAME_ARG.match(rest)
        if name not in ("Get-VM", "Get-VMSwitch", "Get-WindowsFeature") or not args:
            return _error(f"stand-in: {name} arguments {rest!r} are not answered")
        names = [n.strip().strip("'\"") for n in args.group("names").split(",")]
        objects = _match_names(objects, names, "Name")
        if not objects and "*" not in rest:
            return _error(f"{name} : no object found with name '{names[0]}'")
    if not objects:
        return Result()  # ConvertTo-Json of no input writes nothing
    value: Any = objects[0] if len(objects) == 1 else objects
    if compress:
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = json.dumps(value, indent=4)
    return Result(stdout=text.replace("\n", "\r\n") + "\r\n")


def run_command(command: str, arguments: list[str], profile: dict[str, list[Any]]) -> Result:
    """Answer a Remote Shell command line: only ``powershell -EncodedCommand <base64>``."""
    parts = shlex.split(command, posix=False) + arguments
    exe = parts[0].lower() if parts else ""
    if exe in ("powershell", "powershell.exe"):
        flags = [p.lower() for p in parts[1:]]
        for flag in ("-encodedcommand", "-enc", "-e"):
            if flag in flags:
                i = flags.index(flag) + 1
                try:
                    script = base64.b64decode(parts[1 + i]).decode("utf-16-le")
                except (IndexError, ValueError):
                    return _error("stand-in: -EncodedCommand needs base64 of UTF-16LE text")
                return run_powershell(script, profile)
        return _error("stand-in: powershell is answered only with -EncodedCommand")
    return _error(
        f"'{parts[0] if parts else ''}' is not recognized as an internal or external command "
        "(WinRM stand-in: not Windows)"
    )


# --- the WS-Management server ------------------------------------------------------------


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def _envelope(action: str, relates_to: str, body: str, extra_header: str = "") -> bytes:
    decl = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {decl}><s:Header>'
        f"<a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo>{extra_header}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(relates_to: str, code: str, text: str) -> bytes:
    esc = text.replace("&", "&amp;").replace("<", "&lt;")
    body = (
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode>"
        f"<s:Value>w:{code}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{esc}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault Code="2150858770" Machine="stand-in">'
        f"<f:Message>{esc}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


@dataclass
class _Shells:
    """Open shells and their commands' results (in memory, per server process)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    shells: dict[str, dict[str, Result]] = field(default_factory=dict)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandInServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        # One line per request, without headers (the Authorization header never reaches it).
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str = "application/soap+xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type};charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/").lower() != "/wsman":
            self._send(404, b"", "text/plain")
            return
        if not self.server.authorised(self.headers.get("Authorization", "")):
            self._send(401, b"", "text/plain")
            return
        try:
            root = ET.fromstring(raw)
        except ET.ParseError:
            self._send(400, b"", "text/plain")
            return
        header = root.find("s:Header", NS)
        action = (header.findtext("a:Action", "", NS) if header is not None else "").strip()
        message_id = (header.findtext("a:MessageID", "", NS) if header is not None else "").strip()
        selector = root.find(".//w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = (selector.text or "").strip() if selector is not None else ""
        body = root.find("s:Body", NS)
        status, reply = self.server.dispatch(action, message_id, shell_id, body)
        self._send(status, reply)


class StandInServer(http.server.ThreadingHTTPServer):
    """The WinRM stand-in's HTTP server (not Hyper-V; no real Windows endpoint can run here)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        username: str,
        password: str,
        profile: dict[str, list[Any]],
    ) -> None:
        super().__init__(address, _Handler)
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._expected = f"Basic {token}"
        self.profile = profile
        self.state = _Shells()

    def authorised(self, header: str) -> bool:
        return secrets.compare_digest(header.strip().encode(), self._expected.encode())

    def dispatch(
        self, action: str, message_id: str, shell_id: str, body: ET.Element | None
    ) -> tuple[int, bytes]:
        """Answer one WS-Management request: (HTTP status, SOAP envelope)."""
        st = self.state
        if action == ACTION_CREATE:
            new_id = str(uuid.uuid4()).upper()
            with st.lock:
                st.shells[new_id] = {}
            created = (
                "<x:ResourceCreated><a:Address>http://stand-in/wsman</a:Address>"
                f"<a:ReferenceParameters><w:ResourceURI>{SHELL_URI}</w:ResourceURI>"
                f'<w:SelectorSet><w:Selector Name="ShellId">{new_id}</w:Selector>'
                "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                f"<rsp:Shell><rsp:ShellId>{new_id}</rsp:ShellId>"
                f"<rsp:ResourceUri>{SHELL_URI}</rsp:ResourceUri></rsp:Shell>"
            )
            return 200, _envelope(f"{ACTION_CREATE}Response", message_id, created)
        with st.lock:
            commands = st.shells.get(shell_id)
        if commands is None:
            return 500, _fault(message_id, "InvalidSelectors", f"no shell {shell_id!r}")
        if action == ACTION_DELETE:
            with st.lock:
                st.shells.pop(shell_id, None)
            return 200, _envelope(f"{ACTION_DELETE}Response", message_id, "")
        if action == ACTION_COMMAND and body is not None:
            line = body.find("rsp:CommandLine", NS)
            command = (line.findtext("rsp:Command", "", NS) if line is not None else "").strip()
            args = (
                [a.text or "" for a in line.findall("rsp:Arguments", NS)]
                if line is not None
                else []
            )
            command_id = str(uuid.uuid4()).upper()
            result = run_command(command.strip('"'), args, self.profile)
            with st.lock:
                commands[command_id] = result
            return 200, _envelope(
                f"{ACTION_COMMAND}Response",
                message_id,
                f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                "</rsp:CommandResponse>",
            )
        if action == ACTION_RECEIVE and body is not None:
            desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
            command_id = desired.get("CommandId", "") if desired is not None else ""
            with st.lock:
                received = commands.get(command_id)
            if received is None:
                return 500, _fault(message_id, "InvalidParameter", f"no command {command_id!r}")
            streams = ""
            for name, text in (("stdout", received.stdout), ("stderr", received.stderr)):
                if text:
                    data = base64.b64encode(text.encode("utf-8")).decode()
                    streams += (
                        f'<rsp:Stream Name="{name}" CommandId="{command_id}">{data}</rsp:Stream>'
                    )
                streams += f'<rsp:Stream Name="{name}" CommandId="{command_id}" End="true"/>'
            done = (
                f'<rsp:CommandState CommandId="{command_id}" State="{STATE_DONE}">'
                f"<rsp:ExitCode>{received.exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
            return 200, _envelope(
                f"{ACTION_RECEIVE}Response",
                message_id,
                f"<rsp:ReceiveResponse>{streams}{done}</rsp:ReceiveResponse>",
            )
        if action == ACTION_SIGNAL and body is not None:
            signal = body.find("rsp:Signal", NS)
            command_id = signal.get("CommandId", "") if signal is not None else ""
            with st.lock:
                commands.pop(command_id, None)
            return 200, _envelope(f"{ACTION_SIGNAL}Response", message_id, "<rsp:SignalResponse/>")
        return 500, _fault(message_id, "ActionNotSupported", f"stand-in: action {action!r}")


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """The canned answers in ``path``, with ``overrides`` applied.

    ``overrides`` maps a cmdlet to either a full list of objects, or a dict of properties
    merged into each of its objects (for example ``{"Get-VMHost": {"EnableEnhancedSessionMode":
    True}}`` to provoke a finding).
    """
    data = json.loads(path.read_text())
    profile: dict[str, list[Any]] = {k: v for k, v in data.items() if not k.startswith("_")}
    for cmdlet, change in (overrides or {}).items():
        if cmdlet not in profile:
            raise BadInputError(f"winrm stand-in: no canned cmdlet {cmdlet!r}", where=str(path))
        if isinstance(change, list):
            profile[cmdlet] = change
        elif isinstance(change, dict):
            for obj in profile[cmdlet]:
                if not isinstance(obj, dict):
                    raise BadInputError(f"winrm stand-in: {cmdlet} returns no objects to merge")
                obj.update(change)
        else:
            raise BadInputError(f"winrm stand-in: override of {cmdlet} must be a list or dict")
    return profile


def serve(argv: list[str] | None = None) -> None:
    """``python -m vqual_lab.winrm_standin --listen ADDR:PORT --credentials F
    --profile P``: serve until SIGTERM. The credentials file is JSON with username, password."""
    import signal

    ap = argparse.ArgumentParser(description="WinRM stand-in (not Hyper-V)")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--credentials", required=True, type=Path)
    ap.add_argument("--profile", required=True, type=Path)
    ns = ap.parse_args(argv)
    host, _, port = ns.listen.rpartition(":")
    cred = json.loads(ns.credentials.read_text())
    profile = json.loads(ns.profile.read_text())
    server = StandInServer((host, int(port)), cred["username"], cred["password"], profile)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"winrm stand-in ready http://{host}:{port}/wsman (not Hyper-V)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("winrm stand-in stopping", flush=True)


# --- the lab component --------------------------------------------------------------------


def _answers(address: str, port: int, timeout: float = 1.0) -> bool:
    """True if an HTTP server answers on /wsman (with 401: no credentials sent)."""
    import http.client

    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("POST", "/wsman", body=b"", headers={"Content-Length": "0"})
        return conn.getresponse().status == 401
    except OSError:
        return False
    finally:
        conn.close()


# What a site would commit as the approved values of its Hyper-V host (``vqual_expected``,
# read by the value_from tests of specs/hyperv-host.yaml). The lab's "site" approved the
# stand-in's default profile (assets/winrm/hv1.json): written here, never read back from the
# stand-in, so a changed profile shows up as a finding.
LAB_EXPECTED: dict[str, Any] = {
    "windows_product": "Windows Server 2019 Datacenter",
    "windows_build": "17763",
    "cumulative_update": "KB5005568",
    "numa_spanning": True,
    "migration_subnets": ["10.10.20.0/24"],
    "vswitch_types": {"vSwitch-Production": "External", "vSwitch-Management": "External"},
    "vswitch_management_os": {"vSwitch-Production": False, "vSwitch-Management": True},
    "hyperv_administrators": ["LAB\\hv-admins"],
    "cluster_network_roles": {"Cluster": 1, "Client": 3},
    "ntp_server": "ntp1.example.org,0x9",
}
LAB_CLUSTER = "lab-hyperv"


class WinRMStandIn:
    """LabComponent ``winrm``: a WinRM stand-in for a Hyper-V host.

    Not Hyper-V; no real Windows endpoint can run here. It answers pywinrm over HTTP with
    Basic authentication (lab only) from canned, documented output shapes.
    """

    name = "winrm"

    def __init__(
        self,
        address: str | None = None,
        port: int | None = None,
        inventory_host: str = "winrm-hv1",
        profile: Path = DEFAULT_PROFILE,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Address and port default to ``$VQUAL_LAB_WINRM`` (``127.0.0.151:25985``, for a
        second lab beside the first), else 127.0.0.51:5985."""
        env_address, _, env_port = os.environ.get("VQUAL_LAB_WINRM", "").rpartition(":")
        if env_port and not env_port.isdigit():
            raise BadInputError("VQUAL_LAB_WINRM is not <127.x.y.z>:<port>", where="lab winrm")
        address = address or env_address or "127.0.0.51"
        port = port or (int(env_port) if env_port else 5985)
        if not is_loopback(address):
            raise BadInputError(f"winrm stand-in: address {address} is not in 127.0.0.0/8")
        self.address = address
        self.port = port
        self.inventory_host = inventory_host
        self.profile = profile
        self.overrides = overrides or {}
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/wsman"

    def _dir(self, ctx: LabContext) -> Path:
        return ctx.run_dir / "winrm"

    def credentials_file(self, ctx: LabContext) -> Path:
        """The 0600 JSON file ``{"username", "password"}`` for this lab run."""
        return self._dir(ctx) / "credentials.json"

    def read_credentials(self, ctx: LabContext) -> tuple[str, str]:
        """(username, password) of the running stand-in.

        Raises:
            BadInputError: The file is missing (the lab is not up).
        """
        path = self.credentials_file(ctx)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(
                f"no stand-in credentials ({exc}); is the lab up?", where=str(path)
            ) from exc
        return str(data["username"]), str(data["password"])

    def _recorded(self, ctx: LabContext) -> dict[str, Any]:
        rec: dict[str, Any] = ctx.state().get(self.name, {})
        return rec

    def _alive(self, ctx: LabContext) -> bool:
        rec = self._recorded(ctx)
        return bool(rec) and same_process(int(rec["pid"]), rec.get("start"))

    def up(self, ctx: LabContext) -> ComponentStatus:
        if self._alive(ctx) and _answers(self.address, self.port):
            return ComponentStatus(self.name, "running", f"already running: {self.url}")
        if self._recorded(ctx):
            self.down(ctx)
        run = self._dir(ctx)
        run.mkdir(parents=True, exist_ok=True)
        os.chmod(run, 0o700)
        profile = load_profile(self.profile, self.overrides)
        (run / "profile.json").write_text(json.dumps(profile, indent=1))
        cred = self.credentials_file(ctx)
        fd = os.open(cred.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {
                    "username": f"vqual-lab-{secrets.token_hex(3)}",
                    "password": secrets.token_urlsafe(18),
                },
                fh,
            )
        os.replace(cred.with_suffix(".tmp"), cred)
        log = run / "winrm.log"
        cmd = [
            sys.executable,
            "-m",
            "vqual_lab.winrm_standin",
            "--listen",
            f"{self.address}:{self.port}",
            "--credentials",
            str(cred),
            "--profile",
            str(run / "profile.json"),
        ]
        # The server imports this package: run it from wherever this module was imported.
        pkg_root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (pkg_root, os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=run,
                env=env,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        ctx.update_state(
            self.name, {"pid": proc.pid, "start": pid_start_time(proc.pid), "url": self.url}
        )
        deadline = time.monotonic() + 15.0
        while not _answers(self.address, self.port):
            if (
                not same_process(proc.pid, pid_start_time(proc.pid))
                or proc.poll() is not None
                or time.monotonic() > deadline
            ):
                return ComponentStatus(
                    self.name, "failed", f"stand-in did not answer at {self.url}", tail(log)
                )
            time.sleep(0.05)
        return ComponentStatus(self.name, "running", f"{self.url} (stand-in, not Hyper-V)")

    def down(self, ctx: LabContext) -> ComponentStatus:
        rec = self._recorded(ctx)
        if rec:
            pid = int(rec["pid"])
            if same_process(pid, rec.get("start")) and not stop_pid(pid):
                return ComponentStatus(self.name, "failed", f"could not stop pid {pid}")
            child = self._children.pop(pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=1)
        ctx.update_state(self.name, None)
        shutil.rmtree(self._dir(ctx), ignore_errors=True)
        left = [p for p in processes_under([self._dir(ctx)])]
        if left:
            return ComponentStatus(self.name, "failed", f"processes left behind: {left}")
        return ComponentStatus(self.name, "stopped", "stopped" if rec else "was not running")

    def status(self, ctx: LabContext) -> ComponentStatus:
        alive = self._alive(ctx)
        if alive and _answers(self.address, self.port):
            return ComponentStatus(self.name, "running", f"{self.url} (stand-in, not Hyper-V)")
        if not alive:
            return ComponentStatus(self.name, "stopped", "not running")
        return ComponentStatus(
            self.name, "failed", f"not answering at {self.url}", tail(self._dir(ctx) / "winrm.log")
        )

    def inventory(self, ctx: LabContext) -> dict[str, Any]:
        """Group ``hyperv_hosts``; credentials through Ansible's ``file`` lookup."""
        lookup = f"(lookup('ansible.builtin.file', '{self.credentials_file(ctx)}') | from_json)"
        host_vars = {
            # The adapter talks WinRM from the controller; Ansible's own winrm connection
            # would need a real PowerShell host, which the stand-in is not.
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vqual_target_kinds": ["hyperv_host"],
            "vqual_winrm_host": self.address,
            "vqual_winrm_port": self.port,
            "vqual_winrm_scheme": "http",
            "vqual_winrm_transport": "basic",
            "vqual_winrm_username": "{{ " + lookup + ".username }}",
            "vqual_winrm_password": "{{ " + lookup + ".password }}",
            "vqual_lab_simulator": "WinRM stand-in (not Hyper-V)",
        }
        # Group values as a site commits them: the approved values and the host's cluster
        # (a one-node cluster: the homogeneity tests compare it with itself).
        group_vars = {"vqual_expected": copy.deepcopy(LAB_EXPECTED), "vqual_cluster": LAB_CLUSTER}
        return {
            "groups": {
                "hyperv_hosts": {"hosts": {self.inventory_host: host_vars}, "vars": group_vars}
            }
        }


if __name__ == "__main__":
    serve()
