"""A small stateful hypervisor service over HTTP, for the test-only platform plug-in.

It is the *real endpoint* the fourth platform observes: a process of its own, started and stopped
by the test set-up by PID, holding hosts and VMs in memory and changing them on request with the
rules a hypervisor keeps (a host in maintenance takes no running VM; a host with running VMs
cannot enter maintenance; a stopped VM cannot be live-migrated). Every request but ``/health``
needs ``Authorization: Bearer <token>``, so the plug-in's secret handling is exercised too.

Run: ``python stateful_hv_service.py STATE.json READY_FILE TOKEN``. It binds 127.0.0.1 on a port
the kernel chooses and writes ``http://127.0.0.1:PORT`` to READY_FILE once it serves.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ABOUT = {"product": "Stateful test hypervisor", "version": "1.4.2", "build": "tst-20261206"}


class Refused(Exception):
    """A request the hypervisor's rules refuse (HTTP 409)."""


class State:
    """Hosts and VMs, changed under one lock."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.hosts: dict[str, dict[str, Any]] = {h["name"]: dict(h) for h in doc["hosts"]}
        self.vms: dict[str, dict[str, Any]] = {v["name"]: dict(v) for v in doc["vms"]}
        for host in self.hosts.values():
            host.setdefault("in_maintenance", False)
            host.setdefault("connected", True)

    def vm(self, name: str) -> dict[str, Any]:
        if name not in self.vms:
            raise KeyError(f"no VM named {name}")
        return self.vms[name]

    def host(self, name: str) -> dict[str, Any]:
        if name not in self.hosts:
            raise KeyError(f"no host named {name}")
        return self.hosts[name]

    def power(self, name: str, state: str) -> dict[str, Any]:
        vm = self.vm(name)
        if state not in ("running", "stopped"):
            raise Refused(f"unknown power state {state!r}")
        if state == "running" and self.host(vm["host"])["in_maintenance"]:
            raise Refused(f"host {vm['host']} is in maintenance")
        vm["power_state"] = state
        return vm

    def migrate(self, name: str, destination: str, live: bool) -> dict[str, Any]:
        vm = self.vm(name)
        dest = self.host(destination)
        running = vm["power_state"] == "running"
        if live and not running:
            raise Refused(f"VM {name} is not running: a live migration needs a running VM")
        if running and dest["in_maintenance"]:
            raise Refused(f"host {destination} is in maintenance")
        vm["host"] = destination
        return vm

    def maintenance(self, name: str, enabled: bool) -> dict[str, Any]:
        host = self.host(name)
        busy = sorted(v["name"] for v in self.vms.values()
                      if v["host"] == name and v["power_state"] == "running")
        if enabled and busy:
            raise Refused(f"host {name} still runs {', '.join(busy)}")
        host["in_maintenance"] = enabled
        return host

    def clone(self, source: str, name: str) -> dict[str, Any]:
        if name in self.vms:
            raise Refused(f"a VM named {name} exists")
        src = self.vm(source)
        copy = {**src, "name": name, "power_state": "stopped", "uuid": str(uuid.uuid4()),
                "mac": "02:00:00:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])}
        self.vms[name] = copy
        return copy

    def delete(self, name: str) -> None:
        vm = self.vm(name)
        if vm["power_state"] == "running":
            raise Refused(f"VM {name} is running")
        del self.vms[name]


def make_handler(state: State, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet: the test reads results, not logs
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            doc = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("the body is not a JSON object")
            return doc

        def _route(self, method: str) -> None:
            if self.path == "/health":
                self._send(HTTPStatus.OK, {"ok": True})
                return
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "a valid bearer token is required"})
                return
            parts = [p for p in self.path.split("/") if p]
            try:
                with state.lock:
                    self._send(HTTPStatus.OK, self._answer(method, parts))
            except KeyError as exc:
                self._send(HTTPStatus.NOT_FOUND, {"error": str(exc.args[0])})
            except Refused as exc:
                self._send(HTTPStatus.CONFLICT, {"error": str(exc)})
            except (ValueError, TypeError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

        def _answer(self, method: str, parts: list[str]) -> Any:
            match method, parts:
                case "GET", ["about"]:
                    return ABOUT
                case "GET", ["hosts"]:
                    return list(state.hosts.values())
                case "GET", ["vms"]:
                    return list(state.vms.values())
                case "POST", ["vms", name, "power"]:
                    return state.power(name, str(self._body()["state"]))
                case "POST", ["vms", name, "migrate"]:
                    body = self._body()
                    return state.migrate(name, str(body["destination"]), bool(body.get("live", True)))
                case "POST", ["vms", name, "clone"]:
                    return state.clone(name, str(self._body()["name"]))
                case "DELETE", ["vms", name]:
                    state.delete(name)
                    return {"deleted": name}
                case "POST", ["hosts", name, "maintenance"]:
                    return state.maintenance(name, bool(self._body()["enabled"]))
            raise KeyError(f"no route {method} /{'/'.join(parts)}")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._route("DELETE")

    return Handler


def main(argv: list[str]) -> int:
    state_file, ready_file, token = argv
    state = State(json.loads(Path(state_file).read_text()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, token))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    tmp = Path(ready_file + ".tmp")
    tmp.write_text(url)
    tmp.replace(ready_file)  # atomic: the waiting fixture never reads half a URL
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
