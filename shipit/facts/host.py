"""The ``host`` fact kind: OS, architecture, CPUs, memory, load, Pythons, apt cache age.

Gathered once per host per run, before any play; modules read it through
``PlanContext.host_facts``. Parsed shape (all keys always present)::

    {"os_id": "debian", "os_version": "12", "codename": "bookworm", "arch": "amd64",
     "machine": "x86_64", "glibc": "2.36",   # "" when getconf cannot tell (not glibc)
     "hostname": "web1", "cpus": 2,
     "mem_total": 25165824000, "mem_available": 2400000000,   # bytes
     "load": [0.1, 0.05, 0.0], "pythons": ["3.11"],           # /usr/bin/python3.X present
     "apt_pythons": ["3.11"],          # python3.X (3.8..3.16) apt can install ([] if no lists)
     "python3_candidate": "3.11.2-1+b1",   # the distro's python3 package, "" if apt cannot tell
     "caddy_candidate": "2.6.2-5",     # the caddy package apt would install, "" if none
     "apt_lists": True,                # apt has package lists (candidates above are known)
     "caddy_installed": False,         # a caddy binary on PATH (however it was installed)
     "apt_lists_age": 120,             # seconds since the apt lists were updated, -1 never
     "systemd": "252", "boot_id": "…", "uptime": 123.4,       # uptime in seconds
     "postgresql": {...}}              # see :func:`postgresql_fact`

Distro specifics live here, not in constants: Debian 12 has PostgreSQL 15, Debian 13 has 17.
"""

from __future__ import annotations

import re
from typing import Any

from shipit.facts import FactKind, FactQuery

COMMAND = r"""
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
echo "codename=${VERSION_CODENAME:-}"
printf 'arch='; dpkg --print-architecture 2>/dev/null || echo
printf 'machine='; uname -m
printf 'glibc='; getconf GNU_LIBC_VERSION 2>/dev/null | { read -r _ v _; echo "${v:-}"; }
read -r h < /proc/sys/kernel/hostname; echo "hostname=$h"
printf 'cpus='; nproc 2>/dev/null || echo 1
while read -r k v _; do
  case $k in MemTotal:) echo "mem_total_kb=$v";; MemAvailable:) echo "mem_available_kb=$v";; esac
done < /proc/meminfo
read -r a b c _ < /proc/loadavg; echo "load=$a $b $c"
printf 'pythons='; for f in /usr/bin/python3.*; do printf '%s ' "${f#/usr/bin/}"; done; echo
if ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'; then
  echo apt_lists=yes
  # apt-cache policy costs ~0.5 s of CPU on every gather: its answer is kept (root:
  # /var/cache/shipit, else ~/.cache/shipit) under a checksum of what candidates depend on
  # (the lists, dpkg's status, sources, pins, apt.conf) and reused until one of them changes
  key=$(stat -c '%n %s %y' /var/lib/apt/lists/*_Packages* /var/lib/dpkg/status /etc/apt/sources.list \
          /etc/apt/sources.list.d/* /etc/apt/preferences /etc/apt/preferences.d/* /etc/apt/apt.conf.d/* \
          2>/dev/null | cksum | { read -r c n; echo "$c-$n"; })
  if [ "$(id -u)" = 0 ]; then cache=/var/cache/shipit; else cache=${HOME:-/nonexistent}/.cache/shipit; fi
  if [ -f "$cache/apt-candidates-$key" ]; then
    cat "$cache/apt-candidates-$key"
  else
    # one apt-cache run (it may rebuild its cache each time): python3, caddy, python3.8..3.16
    candidates=$(LC_ALL=C apt-cache policy python3 caddy $(seq -f 'python3.%g' 8 16) 2>/dev/null | { p=; while read -r k v _; do
      case $k in
        Candidate:) if [ -n "$p" ] && [ "$v" != "(none)" ]; then echo "${p}_candidate=$v"; fi;;
        *:) if [ -z "$v" ]; then  # a package header (apt may add regex matches: skip them)
              case $k in python3:|caddy:|python3.[0-9]:|python3.[0-9][0-9]:) p=${k%:};; *) p=;; esac
            fi;;
      esac
    done; })
    printf '%s\n' "$candidates"
    if [ -n "$candidates" ] && mkdir -p "$cache" 2>/dev/null; then
      rm -f "$cache"/apt-candidates-*
      printf '%s\n' "$candidates" > "$cache/apt-candidates-$key.$$" && mv -f "$cache/apt-candidates-$key.$$" "$cache/apt-candidates-$key"
    fi
  fi
fi
if [ -e /var/lib/apt/periodic/shipit-update-success-stamp ]; then
  stat -c 'apt_lists_mtime=%Y' /var/lib/apt/periodic/shipit-update-success-stamp
else
  echo "apt_lists_mtime=$(ls -t /var/lib/apt/lists/*_Packages* 2>/dev/null | head -1 | xargs -r stat -c %Y)"
fi
if command -v caddy >/dev/null 2>&1; then echo caddy_installed=yes; fi
printf 'now='; date +%s
printf 'systemd='; systemctl --version 2>/dev/null | { read -r _ v _; echo "$v"; }
read -r b < /proc/sys/kernel/random/boot_id; echo "boot_id=$b"
read -r u _ < /proc/uptime; echo "uptime=$u"
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r ver cluster port status _; do
    echo "pg_cluster=$ver $cluster $port $status"; done
fi
"""


def parse(stdout: str) -> dict[str, Any]:
    """Parse the ``key=value`` lines of :data:`COMMAND` into the documented shape."""
    raw: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []  # every line, for keys that repeat (pg_cluster)
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
            pairs.append((key.strip(), value.strip()))

    def num(key: str, default: float = 0) -> float:
        try:
            return float(raw.get(key, ""))
        except ValueError:
            return default

    lists_mtime = raw.get("apt_lists_mtime", "")
    now = num("now")
    return {
        "os_id": raw.get("os_id", ""),
        "os_version": raw.get("os_version", ""),
        "codename": raw.get("codename", ""),
        "arch": raw.get("arch", ""),
        "machine": raw.get("machine", ""),
        "glibc": raw.get("glibc", "") if re.fullmatch(r"[0-9]+\.[0-9]+", raw.get("glibc", "")) else "",
        "hostname": raw.get("hostname", ""),
        "cpus": int(num("cpus", 1)) or 1,
        "mem_total": int(num("mem_total_kb")) * 1024,
        "mem_available": int(num("mem_available_kb")) * 1024,
        "load": [float(x) for x in raw.get("load", "").split() if re.fullmatch(r"[0-9.]+", x)],
        "pythons": sorted(
            {p.removeprefix("python") for p in raw.get("pythons", "").split()
             if re.fullmatch(r"python3\.[0-9]+", p)},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        ),
        "apt_pythons": sorted(
            {k.removeprefix("python").removesuffix("_candidate") for k in raw
             if re.fullmatch(r"python3\.[0-9]+_candidate", k)},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        ),
        "python3_candidate": raw.get("python3_candidate", ""),
        "caddy_candidate": raw.get("caddy_candidate", ""),
        "apt_lists": raw.get("apt_lists") == "yes",
        "caddy_installed": raw.get("caddy_installed") == "yes",
        "apt_lists_age": int(now - float(lists_mtime)) if lists_mtime.isdigit() else -1,
        "systemd": raw.get("systemd", ""),
        "boot_id": raw.get("boot_id", ""),
        "uptime": num("uptime"),
        "postgresql": postgresql_fact([v for k, v in pairs if k == "pg_cluster"]),
    }


def postgresql_fact(lines: list[str]) -> dict[str, Any]:
    """The PostgreSQL clusters of a Debian host from ``pg_lsclusters -h`` (postgresql-common).

    ``lines`` are ``"<version> <cluster> <port> <status>"``. Paths follow postgresql-common's
    layout (``/etc/postgresql/<version>/<cluster>/``). The top-level keys describe the cluster
    an app's database goes into: the newest version's cluster on port 5432, else the newest.
    Shape (empty strings and ``[]`` when PostgreSQL is not installed)::

        {"version": "15", "cluster": "main", "port": 5432, "status": "online",
         "config_dir": "/etc/postgresql/15/main", "hba_file": ".../pg_hba.conf",
         "conf_d": ".../conf.d", "service": "postgresql@15-main",
         "clusters": [{...the same keys, one per cluster...}]}
    """
    clusters: list[dict[str, Any]] = []
    for line in lines:
        words = line.split()
        if len(words) < 4 or not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", words[0]) \
                or not re.fullmatch(r"[A-Za-z0-9_.-]+", words[1]) or not words[2].isdigit():
            continue
        version, name = words[0], words[1]
        config_dir = f"/etc/postgresql/{version}/{name}"
        clusters.append({"version": version, "cluster": name, "port": int(words[2]), "status": words[3],
                         "config_dir": config_dir, "hba_file": f"{config_dir}/pg_hba.conf",
                         "conf_d": f"{config_dir}/conf.d", "service": f"postgresql@{version}-{name}"})
    clusters.sort(key=lambda c: (c["port"] == 5432, tuple(int(x) for x in c["version"].split("."))),
                  reverse=True)
    empty = {"version": "", "cluster": "", "port": 0, "status": "", "config_dir": "", "hba_file": "",
             "conf_d": "", "service": ""}
    return {**(clusters[0] if clusters else empty), "clusters": clusters}


HOST = FactKind("host", lambda arg: COMMAND, parse,
                "OS, machine, glibc, CPUs, memory, load, Pythons (installed and in apt), Caddy, PostgreSQL")
KINDS = [HOST]


def host() -> FactQuery:
    """The ``host`` fact (it takes no arg): what every host is, gathered once per run."""
    return HOST.query()
