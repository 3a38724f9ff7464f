# Copyright: vqual contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

"""Target-side observations of redundant paths: bonded and teamed NICs, multipath devices.

Standard library and module_utils only (shipped inside the module payload). Bonds are read
from the kernel's own report, ``/proc/net/bonding/<bond>`` (the mode also from
``/sys/class/net/<bond>/bonding/mode`` where present); teams (libteam) from teamd's own
state, ``teamdctl <team> state dump`` for each device ``ip -j link show type team`` lists;
multipath devices from
``multipathd show maps json`` (the daemon's view: each path's device-mapper state, device
state and checker state), else from sysfs (``/sys/block/dm-*`` maps whose uuid starts with
``mpath-``, their ``slaves`` and each slave's SCSI device state). Nothing here writes.
"""

import json
import os

from ansible_collections.vqual.qualification.plugins.module_utils.host_common import (
    ObservationError,
    observation,
    read_text,
    truncate,
)

#: The kernel's mode descriptions (drivers/net/bonding/bond_procfs.c) to the mode names
#: ``ip link`` and sysfs use.
BOND_MODES = {
    "load balancing (round-robin)": "balance-rr",
    "fault-tolerance (active-backup)": "active-backup",
    "load balancing (xor)": "balance-xor",
    "fault-tolerance (broadcast)": "broadcast",
    "IEEE 802.3ad Dynamic link aggregation": "802.3ad",
    "transmit load balancing": "balance-tlb",
    "adaptive load balancing": "balance-alb",
}


def parse_proc_bonding(text):
    """One bond's ``/proc/net/bonding/<bond>`` text as a mapping.

    ``{mode, mode_text, mii_status, active_member, members: [{name, mii_status,
    link_failures}], members_up, members_down, member_count}``; a member counts as up only
    when its ``MII Status`` is ``up``.
    """
    bond = {"mode": None, "mode_text": None, "mii_status": None, "active_member": None}
    members = []
    current = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Slave Interface":
            current = {"name": value, "mii_status": None, "link_failures": None}
            members.append(current)
        elif current is None:
            if key == "Bonding Mode":
                bond["mode_text"] = value
                bond["mode"] = BOND_MODES.get(value, value)
            elif key == "MII Status":
                bond["mii_status"] = value
            elif key == "Currently Active Slave":
                bond["active_member"] = None if value == "None" else value
        elif key == "MII Status":
            current["mii_status"] = value
        elif key == "Link Failure Count" and value.isdigit():
            current["link_failures"] = int(value)
    bond["members"] = members
    bond["member_count"] = len(members)
    bond["members_up"] = [m["name"] for m in members if m["mii_status"] == "up"]
    bond["members_down"] = [m["name"] for m in members if m["mii_status"] != "up"]
    return bond


#: teamd's runner names to the bond mode names of the same behaviour, so that one site value
#: (``bond_mode``) judges bonds and teams alike; the other runners (loadbalance, random) have
#: no bonding equivalent and keep their own names.
TEAM_RUNNER_MODES = {
    "activebackup": "active-backup",
    "roundrobin": "balance-rr",
    "broadcast": "broadcast",
    "lacp": "802.3ad",
}


def _port_up(port):
    """A team port counts as up only when its link is up and so is teamd's link watch (the
    watch decides whether teamd uses the port; ethtool, arp_ping or nsna_ping)."""
    link = (port.get("link") or {}).get("up") is True
    watches = port.get("link_watches")
    return link and (watches is None or watches.get("up") is True)


def parse_teamdctl_state(text):
    """One team's ``teamdctl <team> state dump`` JSON as a mapping shaped like a bond's.

    ``{mode, runner, active_member, members: [{name, link_up, link_watch_up, mii_status}],
    members_up, members_down, member_count}``; ``mii_status`` is ``up`` or ``down`` (see
    :func:`_port_up`) so bonds and teams read alike.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ObservationError(f"teamdctl state dump: not JSON: {exc}") from None
    setup = data.get("setup") or {}
    runner = setup.get("runner_name")
    members = []
    for name in sorted(data.get("ports") or {}):
        port = data["ports"][name] or {}
        members.append({
            "name": name,
            "link_up": (port.get("link") or {}).get("up"),
            "link_watch_up": (port.get("link_watches") or {}).get("up"),
            "mii_status": "up" if _port_up(port) else "down",
        })
    team = {
        "mode": TEAM_RUNNER_MODES.get(runner, runner),
        "runner": runner,
        "active_member": (data.get("runner") or {}).get("active_port") or None,
        "members": members,
        "member_count": len(members),
    }
    team["members_up"] = [m["name"] for m in members if m["mii_status"] == "up"]
    team["members_down"] = [m["name"] for m in members if m["mii_status"] != "up"]
    return team


def _team_names(observer):
    """The team devices the kernel has (``ip -j link show type team``); none without ip."""
    tool = observer.which("ip")
    if tool is None:
        return [], "ip not found: teams not listed"
    rc, out, err = observer.run([tool, "-j", "link", "show", "type", "team"])
    if rc != 0:
        return [], f"ip link show type team: rc {rc}: {err.strip()}"
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return [], "ip link show type team: not JSON"
    return sorted(link["ifname"] for link in links if link.get("ifname")), None


def observe_teams(observer):
    """``({name: parse_teamdctl_state(...)}, raw lines)`` for every team device; a team whose
    teamd does not answer has no runner and no members (so its checks fail, saying why)."""
    names, note = _team_names(observer)
    raws = [note] if note else []
    teams = {}
    tool = observer.which("teamdctl") if names else None
    for name in names:
        rc, out, err = (1, "", "teamdctl not found") if tool is None else observer.run(
            [tool, name, "state", "dump"])
        if rc == 0:
            teams[name] = parse_teamdctl_state(out)
            raws.append(f"$ teamdctl {name} state dump\n{out}")
        else:
            teams[name] = {"mode": None, "runner": None, "active_member": None, "members": [],
                           "member_count": 0, "members_up": [], "members_down": [],
                           "error": f"teamdctl {name} state dump: {err.strip()}"}
            raws.append(teams[name]["error"])
    return teams, raws


def observe_bonds(observer, args):
    """Every bond and team on the host: ``{"bonds": {name: parse_proc_bonding(...)},
    "teams": {name: parse_teamdctl_state(...)}}``."""
    directory = os.path.join(observer.paths["proc"], "net", "bonding")
    method = f"host.bonds {directory}, teamdctl"
    teams, team_raws = observe_teams(observer)
    if not os.path.isdir(directory):
        raws = [f"{directory} does not exist (no bonding driver loaded)"] + team_raws
        return observation({"bonds": {}, "teams": teams}, truncate("\n".join(raws)), method)
    bonds = {}
    raws = []
    for name in sorted(os.listdir(directory)):
        text = read_text(os.path.join(directory, name))
        bond = parse_proc_bonding(text)
        sys_mode = os.path.join(observer.paths["sys_class_net"], name, "bonding", "mode")
        if os.path.isfile(sys_mode):
            # "active-backup 1": the name the kernel takes in `ip link ... mode`.
            bond["mode"] = read_text(sys_mode).split()[0]
        bonds[name] = bond
        raws.append("== %s/%s ==\n%s" % (directory, name, text))
    raws += team_raws
    return observation({"bonds": bonds, "teams": teams},
                       truncate("\n".join(raws) or "no bonds, no teams"), method)


def _path_entry(path):
    entry = {
        "dev": path.get("dev"),
        "dm_st": path.get("dm_st"),
        "dev_st": path.get("dev_st"),
        "chk_st": path.get("chk_st"),
    }
    entry["active"] = (
        entry["dm_st"] == "active"
        and entry["dev_st"] == "running"
        and entry["chk_st"] in ("ready", "ghost")
    )
    return entry


def _summarise(maps):
    for info in maps.values():
        paths = info["paths"]
        info["path_count"] = len(paths)
        info["active_paths"] = sum(1 for p in paths if p["active"])
        info["failed_paths"] = [
            "%s (%s)" % (p["dev"], "/".join(str(p[k]) for k in ("dm_st", "dev_st", "chk_st")))
            for p in paths
            if not p["active"]
        ]
    return maps


def parse_multipathd_json(text):
    """``multipathd show maps json`` as ``{map name: {wwid, sysfs, paths: [...]}}``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ObservationError("multipathd show maps json: not JSON: %s" % exc) from None
    maps = {}
    for entry in data.get("maps") or []:
        paths = [
            _path_entry(path)
            for group in entry.get("path_groups") or []
            for path in group.get("paths") or []
        ]
        maps[entry.get("name")] = {
            "wwid": entry.get("uuid"),
            "sysfs": entry.get("sysfs"),
            "source": "multipathd",
            "paths": paths,
        }
    return _summarise(maps)


def _sysfs_maps(observer):
    """Multipath maps from sysfs alone (no multipathd): slaves and their device state."""
    block = observer.paths["sys_block"]
    maps = {}
    raws = []
    for dm in sorted(d for d in os.listdir(block) if d.startswith("dm-")) if os.path.isdir(
        block
    ) else []:
        base = os.path.join(block, dm, "dm")
        try:
            uuid = read_text(os.path.join(base, "uuid")).strip()
            name = read_text(os.path.join(base, "name")).strip()
        except OSError:
            continue
        if not uuid.startswith("mpath-"):
            continue
        paths = []
        for slave in sorted(os.listdir(os.path.join(block, dm, "slaves"))):
            state_file = os.path.join(block, slave, "device", "state")
            state = read_text(state_file).strip() if os.path.isfile(state_file) else None
            # sysfs shows neither device-mapper's path state nor a checker's: the SCSI
            # device state is all there is ("n/a" says so in the record).
            entry = _path_entry({"dev": slave, "dm_st": "n/a", "dev_st": state, "chk_st": "n/a"})
            entry["active"] = state == "running"
            paths.append(entry)
            raws.append("%s %s %s state=%s" % (dm, name, slave, state))
        maps[name] = {"wwid": uuid[len("mpath-"):], "sysfs": dm, "source": "sysfs",
                      "paths": paths}
    return _summarise(maps), raws


def observe_multipath(observer, args):
    """Every multipath map: ``{"maps": {name: {wwid, paths, path_count, active_paths,
    failed_paths}}}`` from multipathd when it runs, else from sysfs."""
    tool = observer.which("multipathd")
    if tool:
        rc, out, _err = observer.run([tool, "show", "maps", "json"])
        if rc == 0 and out.lstrip().startswith("{"):
            return observation(
                {"maps": parse_multipathd_json(out)},
                truncate("$ multipathd show maps json\n" + out),
                "host.multipath multipathd show maps json",
            )
    maps, raws = _sysfs_maps(observer)
    note = "" if tool is None else "(multipathd does not answer)\n"
    return observation(
        {"maps": maps},
        truncate(note + ("\n".join(raws) or "no multipath maps in %s" % observer.paths["sys_block"])),
        "host.multipath %s" % observer.paths["sys_block"],
    )


def main(argv=None):
    """``python -m <this module> FILE``: FILE, a ``/proc/net/bonding`` text, parsed as the
    probe parses it, printed as JSON. ``vqual selftest`` (ST-OQ-35) runs the collection's own
    parser this way, in its own interpreter as on a target."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as handle:
        text = handle.read()
    sys.stdout.write(json.dumps(parse_proc_bonding(text), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
