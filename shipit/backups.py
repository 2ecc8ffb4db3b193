"""Backups of an app's PostgreSQL database: pure command builders (text and words, every value
quoted with :func:`shipit.quoting.q`), used by the ``db_backup`` / ``db_restore`` /
``app_pause`` modules (:mod:`shipit.modules.database`) and the ``shipit db`` verbs
(:mod:`shipit.dbcli`).

Where they live: ``/srv/<app>/backups/<name>.dump`` on the db host (the first host of the
group ``db``; :meth:`shipit.layout.Layout.backup`), a directory owned by ``postgres`` with mode
0700. ``pg_dump``, ``pg_restore`` and ``psql`` run as the ``postgres`` OS user over the local
socket with peer authentication, so no password is needed, none is in any argv, and the
dumps are written, read and pruned by that user only (root only creates the directory). They
use the distro's default cluster, as the provisioning does (postgresql-common's wrappers).

A backup is ``pg_dump -Fc`` (custom format: compressed, restorable table by table) written
to a hidden partial file and renamed when complete, so a dump cut short never looks like a
backup. Its name is the release it was taken before (``<release>.dump``: the database as it
was before that release's migrations, what ``shipit rollback --restore-db`` puts back) or
``<UTC time>-manual`` for ``shipit db backup``. Existing backups are never overwritten (a
deploy retried after a failure keeps the dump taken before its first attempt). After a new
backup the newest ``keep`` (by modification time) are kept and older ones removed.

A restore is the dump turned into SQL (``pg_restore --clean --if-exists -f``), then run by
``psql`` in one transaction that stops at the first error, after ``DROP OWNED BY`` the app's
role: all or nothing, and the database becomes exactly the backup's: objects created after
the backup (a table a later migration added) are dropped too, so that release's migrations
can run again. The app's units on the web hosts are stopped meanwhile
(:func:`pause_script`, :func:`resume_script`), as Kamal's and Dokku's docs advise for a
restore.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shipit.layout import Layout
from shipit.quoting import q

#: A backup's name: a release id (``YYYYmmddTHHMMSSZ-<hex>``) or ``YYYYmmddTHHMMSSZ-manual``.
BACKUP_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z0-9]{1,64}$")
#: Seconds a dump or a restore may take unless the caller says otherwise (the app's
#: ``migrate_timeout`` in a deploy).
DEFAULT_TIMEOUT = 600.0
#: Seconds listing the backups or stopping/starting the app's units may take.
QUICK_TIMEOUT = 60.0
DEFAULT_KEEP = 7


@dataclass(frozen=True)
class Backup:
    """One backup on the db host: ``name`` (without ``.dump``), ``size`` in bytes, ``time``
    (its modification time, UTC: when the dump finished)."""

    name: str
    size: int
    time: datetime

    def as_dict(self) -> dict[str, str | int]:
        """JSON-ready form: name, size (bytes), time (ISO 8601, UTC)."""
        return {"name": self.name, "size": self.size, "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ")}


def backup_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a backup, or None (see :data:`BACKUP_NAME`)."""
    if isinstance(name, str) and BACKUP_NAME.fullmatch(name.removesuffix(".dump")):
        return None
    return (f"expected a backup name as `shipit db backups` lists them, e.g. 20261203T101500Z-3f2a1b4c5d6e "
            f"(a release id) or 20261203T101500Z-manual; got {name!r}")


def manual_name(now: datetime | None = None) -> str:
    """The name of a backup taken by ``shipit db backup``: ``<UTC time>-manual``."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-manual"


def _as_postgres(words: Sequence[str]) -> str:
    return "runuser -u postgres -- " + " ".join(q(w) for w in words)


def dump_argv(database: str, path: str, timeout: float) -> list[str]:
    """``pg_dump -Fc`` of ``database`` into ``path``, stopped after ``timeout`` seconds (run as
    postgres by :func:`backup_script`). Pure: words, unquoted."""
    return ["timeout", "-k", "10", str(max(1, int(timeout))), "pg_dump", "-Fc", "-d", database, "-f", path]


def restore_sql_argv(path: str, sql: str, timeout: float) -> list[str]:
    """``pg_restore --clean --if-exists`` of dump ``path`` into the SQL file ``sql`` (no
    database is touched), stopped after ``timeout`` seconds. Pure: words, unquoted."""
    return ["timeout", "-k", "10", str(max(1, int(timeout))), "pg_restore", "--clean", "--if-exists",
            "-f", sql, path]


def restore_argv(database: str, role: str, sql: str, timeout: float) -> list[str]:
    """``psql`` running, in ONE transaction that stops at the first error, ``DROP OWNED BY
    role`` (every object the app's role owns in ``database``: also what migrations created
    after the backup, which the dump does not name) and then the restore script ``sql``
    (:func:`restore_sql_argv`); stopped after ``timeout`` seconds. All or nothing: a failure
    anywhere leaves the database as it was. ``role`` is a validated SQL identifier. Pure."""
    return ["timeout", "-k", "10", str(max(1, int(timeout))), "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "--single-transaction", "-d", database, "-c", f'DROP OWNED BY "{role}"', "-f", sql]


def backup_script(layout: Layout, database: str, name: str, keep: int, timeout: float) -> str:
    """Shell taking backup ``name`` of ``database`` on the db host (as root; the dump itself as
    postgres), unless it exists, then keeping the newest ``keep``.

    Prints ``backup <name> <bytes>`` (taken) or ``exists <name>``, and ``pruned <name>`` per
    backup removed. On failure (pg_dump's error, or its ``timeout``) it removes the partial
    file, prints pg_dump's stderr and as its last line ``shipit: the backup of database …
    failed …``, and exits 1.
    """
    final, partial, folder = layout.backup(name), f"{layout.backups_dir}/.{name}.partial", layout.backups_dir
    seconds = max(1, int(timeout))
    why_timeout = q(f"it did not finish within {seconds} s")
    listing = _as_postgres(["find", folder, "-maxdepth", "1", "-type", "f", "-name", "*.dump", "-printf", "%T@ %f\\n"])
    remove = _as_postgres(["rm", "-f", "--"])
    return f"""install -d -o root -g root -m 0755 {q(layout.root)}
install -d -o postgres -g postgres -m 0700 {q(folder)}
if [ -e {q(final)} ]; then
  echo exists {q(name)}
else
  err=$(mktemp)
  if {_as_postgres(dump_argv(database, partial, timeout))} 2>"$err"; then
    {_as_postgres(["mv", "-f", "--", partial, final])}
    rm -f "$err"
    echo backup {q(name)} "$(stat -c %s {q(final)})"
  else
    rc=$?
    {_as_postgres(["rm", "-f", "--", partial])} || true
    cat "$err" >&2
    why=$(tail -n 1 "$err"); rm -f "$err"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then why={why_timeout}; fi
    echo {q(f"shipit: the backup of database {database} failed (pg_dump exit ")}"$rc): $why" >&2
    exit 1
  fi
  {listing} \\
    | sort -rn | tail -n +{int(keep) + 1} | while read -r _ old; do
    {remove} {q(folder)}/"$old" && echo pruned "${{old%.dump}}"
  done
fi
"""


def list_script(layout: Layout) -> str:
    """Shell printing ``<name>.dump<TAB><bytes><TAB><mtime epoch>`` per backup (nothing when
    there is none yet); read-only."""
    folder = q(layout.backups_dir)
    return (f"if [ -d {folder} ]; then find {folder} -maxdepth 1 -type f -name '*.dump' "
            "-printf '%f\\t%s\\t%T@\\n'; fi\n")


def parse_list(stdout: str) -> list[Backup]:
    """The backups :func:`list_script` printed, newest first (lines that do not parse, or
    names that are not backup names, are left out)."""
    out: list[Backup] = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].endswith(".dump") or not parts[1].isdigit():
            continue
        name = parts[0].removesuffix(".dump")
        if not BACKUP_NAME.fullmatch(name):
            continue
        try:
            when = datetime.fromtimestamp(float(parts[2]), UTC)
        except ValueError:
            continue
        out.append(Backup(name, int(parts[1]), when))
    return sorted(out, key=lambda b: (b.time, b.name), reverse=True)


def restore_script(layout: Layout, database: str, role: str, name: str, timeout: float) -> str:
    """Shell restoring backup ``name`` into ``database`` (its objects owned by ``role``) on the
    db host, as root; pg_restore and psql as postgres (:func:`restore_sql_argv`, then
    :func:`restore_argv`: the database becomes exactly the backup's, objects created since
    included). Exits 1 with ``shipit: no backup …`` when it is not there, or with the tools'
    stderr and a last line ``shipit: restoring … failed …`` (nothing changed: one transaction)."""
    final = layout.backup(name)
    sql = f"{layout.backups_dir}/.{name}.restore.sql"
    seconds = max(1, int(timeout))
    return f"""if [ ! -f {q(final)} ]; then
  echo {q(f"shipit: no backup {name} on this host ({final})")} >&2
  exit 1
fi
err=$(mktemp)
if {_as_postgres(restore_sql_argv(final, sql, timeout))} 2>"$err" \
    && {_as_postgres(restore_argv(database, role, sql, timeout))} 2>>"$err"; then
  rm -f "$err" {q(sql)}
  echo restored {q(name)}
else
  rc=$?
  rm -f {q(sql)}
  cat "$err" >&2
  why=$(grep -m1 -i error "$err" || tail -n 1 "$err"); rm -f "$err"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then why={q(f"it did not finish within {seconds} s")}; fi
  echo {q(f"shipit: restoring {name} into database {database} failed; nothing was changed (exit ")}"$rc): $why" >&2
  exit 1
fi
"""


def unit_patterns(layout: Layout, processes: Sequence[str]) -> list[str]:
    """The app's units on a web host as ``systemctl`` globs: the web slots and their sockets
    (a socket left listening would start its slot again on the next request), and each
    background process's instances (``processes``: process names)."""
    return [layout.web_unit("*"), layout.web_socket_unit("*"),
            *(layout.process_unit(p, "*") for p in processes)]


def pause_script(layout: Layout, processes: Sequence[str]) -> str:
    """Shell stopping the app's active units on a web host and recording them in
    :attr:`Layout.paused_units` (added to a list an interrupted restore left), so that
    :func:`resume_script` starts exactly those again. Prints ``stopped <units>``."""
    paused = q(layout.paused_units)
    patterns = " ".join(q(p) for p in unit_patterns(layout, processes))
    return f"""{{ cat {paused} 2>/dev/null || true
  systemctl list-units --plain --no-legend --state=active -- {patterns} | awk '{{print $1}}'
}} | sort -u > {paused}.tmp
mv -f {paused}.tmp {paused}
units=$(cat {paused})
if [ -n "$units" ]; then systemctl stop $units; fi
echo stopped $units
"""


def resume_script(layout: Layout) -> str:
    """Shell starting the units :func:`pause_script` recorded, then forgetting them (nothing
    when there is no record). Prints ``started <units>``."""
    paused = q(layout.paused_units)
    return f"""if [ -f {paused} ]; then
  units=$(cat {paused})
  if [ -n "$units" ]; then systemctl start $units; fi
  rm -f {paused}
  echo started $units
fi
"""


def psql_argv(database: str, role: str, psql_args: Sequence[str] = ()) -> list[str]:
    """``psql`` on ``database`` as the app's ``role``: run as the postgres OS user (peer
    authentication, no password anywhere) with the session's role set to ``role`` at
    connection (``PGOPTIONS=-c role=…``, i.e. ``SET ROLE``), so it has the app's privileges
    and the objects it creates belong to the app. ``psql_args`` are passed on (e.g. ``-c``).
    Pure: words, unquoted."""
    return ["runuser", "-u", "postgres", "--", "env", f"PGOPTIONS=-c role={role}", "psql", "-d", database,
            *psql_args]
