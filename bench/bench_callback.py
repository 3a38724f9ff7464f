"""The evidence callback's overhead on an ordinary playbook: enabled against disabled.

Starts 50 sshd endpoints (bench/fleet.py) and runs an ordinary ten-task playbook (command,
ping, stat, slurp, set_fact, assert, debug...; no vqual task) over them with
``ansible-playbook``, alternately without and with ``vqual.qualification.evidence`` enabled
(its key, evidence directory and state directory set as ``vqual qualify`` sets them), under
the same Ansible settings (forks, pipelining, ControlPersist, facts off, cold SSH masters).
Prints the medians and the median of the per-round ratios. Goal: at most 5 % overhead.

    .venv/bin/python bench/bench_callback.py [--hosts 50] [--repeat 5] [--forks N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import Fleet
from bench.fleetlib import (
    BIN,
    Controller,
    ansible_env,
    become_subreaper,
    load_average,
    make_state,
    median,
    work_dir,
)

GOAL = 0.05
TASKS = [
    {"name": "run a command", "ansible.builtin.command": "/bin/true", "changed_when": False},
    {"name": "ping", "ansible.builtin.ping": {}},
    {"name": "stat a file", "ansible.builtin.stat": {"path": "/etc/hostname"}, "register": "st"},
    {"name": "read a file", "ansible.builtin.slurp": {"src": "/etc/os-release"}, "register": "osr"},
    {"name": "kernel release", "ansible.builtin.command": "uname -r", "register": "kernel",
     "changed_when": False},
    {"name": "set a fact", "ansible.builtin.set_fact": {"release": "{{ kernel.stdout }}"}},
    {"name": "assert", "ansible.builtin.assert": {"that": ["st.stat.exists", "release | length > 0"],
                                                  "quiet": True}},
    {"name": "a shell pipeline", "ansible.builtin.shell": "echo ok | tr a-z A-Z",
     "changed_when": False},
    {"name": "find files", "ansible.builtin.find": {"paths": "/etc", "patterns": "host*"}},
    {"name": "debug", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }} {{ release }}"}},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--forks", type=int, default=None)
    args = parser.parse_args()
    from qualification.execution.runner import choose_forks

    forks = args.forks or choose_forks(None)
    work = work_dir("vqual-bench-callback-")
    base = make_state(work)
    become_subreaper()
    playbook = work / "ordinary.yml"
    playbook.write_text(yaml.safe_dump([{"name": "an ordinary playbook", "hosts": "all",
                                         "gather_facts": False, "tasks": TASKS}], sort_keys=False))
    enabled = {
        "ANSIBLE_CALLBACKS_ENABLED": "vqual.qualification.evidence",
        "VQUAL_KEY_FILE": str(work / "state" / "keys" / "executor.pem"),
        "VQUAL_EVIDENCE_DIR": str(work / "evidence"),
        "VQUAL_INITIATOR": "bench",
    }
    print(f"{args.hosts} hosts, {len(TASKS)} tasks, forks {forks}; pipelining, ControlPersist; "
          f"median of {args.repeat}; load average at start {load_average()}")
    with Fleet(args.hosts) as fleet:
        ctl = Controller(exclude=[e.pid for e in fleet.endpoints])
        inventory = fleet.write_inventory()
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "--forks", str(forks),
                str(playbook)]
        off: list[float] = []
        on: list[float] = []
        for r in range(args.repeat):
            # Alternate which goes first, so a trend in the machine's load favours neither.
            order = [("off", {}), ("on", enabled)] if r % 2 == 0 else [("on", enabled), ("off", {})]
            for label, extra in order:
                env = {**ansible_env(base, work / f"cp-{label}-{r}"), **extra}
                seconds = ctl.run(argv, env).seconds
                (on if label == "on" else off).append(seconds)
                print(f"  round {r + 1}, callback {label}: {seconds:.2f} s; load {load_average()}",
                      flush=True)
        ratios = [b / a for a, b in zip(off, on, strict=True)]
        print(f"  disabled : {median(off):6.2f} s  ({', '.join(f'{s:.2f}' for s in off)})")
        print(f"  enabled  : {median(on):6.2f} s  ({', '.join(f'{s:.2f}' for s in on)})")
        print(f"overhead   : {median(ratios) - 1:+.1%} (median of per-round ratios; "
              f"ratio of medians {median(on) / median(off) - 1:+.1%}); goal <= {GOAL:.0%}; "
              f"load average at end {load_average()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
