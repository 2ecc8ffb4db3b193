"""The ``upload`` module: copy a local file (e.g. a release artifact) to the host, verified.

The local file's SHA-256 is compared with the host's copy (``file`` fact): equal content means
no transfer. Otherwise the executor sends it by SFTP to a temporary name in the SSH user's
home (a relative SFTP path lands in the login directory; :class:`~shipit.modules.base.Upload`),
and the change's script checks it is a regular file of that user's, checks its SHA-256
(``sha256sum -c``) on the copy it installs, and renames that copy over ``dest`` (atomic),
after setting owner/group/mode. The uploaded file is removed on every exit path.

Not under /tmp: a fixed name there (it is the artifact's digest, seen by every local user at
the first try and the same at a retry) let the app user plant a symlink or a file of its own
for SFTP to write through and for root to read back (#15).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules import _files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, Upload, q, sha256_hex


def upload_script(remote: str, sha256: str, dest: str, mode: str | None, owner: str | None,
                  group: str | None) -> str:
    """Verify ``remote`` has ``sha256``, then install it at ``dest`` atomically."""
    attrs = _files._attr_lines('"$tmp"', mode, owner, group)
    return f"""{upload_path_lines(remote)}
dest={q(dest)}
tmp=
trap 'rm -f "$src"; [ -z "$tmp" ] || rm -f "$tmp"' EXIT
[ -f "$src" ] && [ ! -L "$src" ] && [ "$(stat -c %U -- "$src")" = "$up_user" ] || {{
  echo "shipit: uploaded file $src is not a regular file of $up_user" >&2; exit 1; }}
dir=$(dirname "$dest")
[ -d "$dir" ] || {{ echo "shipit: directory $dir does not exist" >&2; exit 1; }}
tmp=$(mktemp "$dir/.shipit-XXXXXXXX")
cp -- "$src" "$tmp"
echo "{sha256}  $tmp" | sha256sum -c --quiet - >/dev/null 2>&1 || {{
  echo "shipit: uploaded file $src does not match sha256 {sha256}" >&2; exit 1; }}
{attrs}
mv -f "$tmp" "$dest"
tmp=''"""


def upload_path_lines(remote: str) -> str:
    """sh setting ``src`` (the uploaded file) and ``up_user`` (who uploaded it).

    ``remote`` is relative to the SSH user's home (SFTP's login directory): under sudo that
    user is ``$SUDO_USER``, otherwise the user running the script.
    """
    return f"""up_user=${{SUDO_USER:-$(id -un)}}
up_home=$(getent passwd "$up_user" | cut -d: -f6)
[ -n "$SUDO_USER" ] || up_home=${{HOME:-$up_home}}
src="$up_home"/{q(remote)}"""


class UploadModule(Module):
    """Send a local file to ``dest``, skipped when the host already has the same content."""

    name = "upload"
    doc = "A local file copied to the host (SFTP, sha256-verified, atomic)."
    params = {
        "src": Param(str, required=True, help="local file, relative to the playbook"),
        "dest": Param(str, required=True, help="absolute path on the host"),
        "mode": Param(str, help='octal mode as a quoted string, e.g. "0644"'),
        "owner": Param(str, help="user name owning the file"),
        "group": Param(str, help="group name owning the file"),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _files.check_path_and_mode(params, "dest")

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.file_queries(params["dest"])

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        """Fails when the local file cannot be read or ``dest`` is a directory."""
        dest, mode = params["dest"], params.get("mode")
        owner, group = params.get("owner"), params.get("group")
        local = ctx.local_path(params["src"])
        try:
            digest = sha256_hex(ctx.read_local(local))
        except OSError as exc:
            return Plan(failed=f"cannot read {params['src']}: {exc}")
        fact = facts[files.file(dest)]
        if fact["type"] == "directory":
            return Plan(failed=f"{dest} is a directory, expected a regular file")
        if fact["type"] == "file" and fact["sha256"] == digest:
            drift = _files.attr_drift(fact, mode, owner, group)
            if not drift:
                return Plan()
            return Plan((Change(", ".join(drift), _files.attr_script(dest, mode, owner, group)),))
        if fact["type"] == "file":
            reason = "content differs"
            mode = mode or fact["mode"]
            owner, group = owner or fact["owner"], group or fact["group"]
        else:
            reason = f"upload {params['src']} to {dest}"
            mode = mode or _files.DEFAULT_FILE_MODE
        remote = f".shipit-upload-{digest[:32]}"   # in the SSH user's home: see the docstring
        return Plan((Change(reason, upload_script(remote, digest, dest, mode, owner, group),
                            upload=Upload(local, remote, digest)),))
