"""The ``caddy_site`` module: one site snippet in /etc/caddy/sites/<name>.caddy, validated.

The main ``/etc/caddy/Caddyfile`` must contain the line ``import sites/*.caddy``; the module
adds it when missing. A new or changed snippet is validated before it goes live: /etc/caddy
is copied to a temporary directory, the candidate written there, and
``caddy validate --config TMP/Caddyfile --adapter caddyfile`` must pass; only then is the
snippet installed atomically (temp file + ``mv -f``) and Caddy gracefully reloaded
(``systemctl reload caddy``, which goes through Caddy's admin API) if it is running. When
validation fails the change fails with Caddy's message and the live config is untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shipit.facts import FactQuery, files
from shipit.modules import _files
from shipit.modules.base import Change, Module, Param, Plan, PlanContext, q

CADDY_DIR = "/etc/caddy"
MAIN = f"{CADDY_DIR}/Caddyfile"
IMPORT_LINE = "import sites/*.caddy"
HAS_IMPORT = f"grep -qxF {q(IMPORT_LINE)} {q(MAIN)}"
RELOAD = "if systemctl is-active --quiet caddy; then systemctl reload caddy; fi"


def validated_install(rel: str, data: bytes) -> str:
    """Copy /etc/caddy to a temp dir, put ``data`` at ``rel`` there, validate, then install."""
    live = f"{CADDY_DIR}/{rel}"
    return f"""vdir=$(mktemp -d)
trap 'rm -rf "$vdir"' EXIT
cp -a {CADDY_DIR}/. "$vdir/"
mkdir -p "$vdir/sites"
base64 -d > "$vdir/{rel}" <<'{_files.HEREDOC}'
{_files.base64_text(data)}{_files.HEREDOC}
caddy validate --config "$vdir/Caddyfile" --adapter caddyfile >&2 || {{
  echo "shipit: caddy rejected the new config; live config left untouched" >&2; exit 1; }}
rm -rf "$vdir"
trap - EXIT
mkdir -p {CADDY_DIR}/sites
{_files.install_script(live, data, "0644", "root", "root")}
{RELOAD}"""


class CaddySiteModule(Module):
    """Write a Caddyfile site snippet, validated before it replaces the live one."""

    name = "caddy_site"
    doc = "A Caddy site snippet under /etc/caddy/sites, validated, then graceful reload."
    params = {
        "name": Param(str, required=True, help="site file name without .caddy, e.g. app"),
        "content": Param(str, help="Caddyfile snippet (required unless state is absent)"),
        "state": Param(str, default="present", choices=("present", "absent")),
    }

    def check_params(self, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        errors = []
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", str(params.get("name"))):
            errors.append(("name", "expected a file name like app (letters, digits, . _ -)"))
        if params.get("state", "present") == "present" and params.get("content") is None:
            errors.append(("content", "give the site's Caddyfile snippet"))
        return errors

    def _path(self, params: Mapping[str, Any]) -> str:
        return f"{CADDY_DIR}/sites/{params['name']}.caddy"

    def facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return [files.file(self._path(params)), files.file(MAIN),
                files.check(HAS_IMPORT)]

    def diff_facts(self, params: Mapping[str, Any]) -> list[FactQuery]:
        return _files.content_queries(self._path(params))

    def plan(self, params: Mapping[str, Any], facts: Mapping[FactQuery, Any],
             ctx: PlanContext) -> Plan:
        path = self._path(params)
        if params.get("state") == "absent":
            if not facts[files.file(path)]["exists"]:
                return Plan()
            return Plan((Change(f"remove {path}", f"rm -f -- {q(path)}\n{RELOAD}"),))
        changes: list[Change] = []
        if not facts[files.file(MAIN)]["exists"]:
            return Plan(failed=f"{MAIN} not found: install Caddy first (apt: caddy)")
        if facts[files.check(HAS_IMPORT)] != 0:
            script = f"""vdir=$(mktemp -d)
trap 'rm -rf "$vdir"' EXIT
cp -a {CADDY_DIR}/. "$vdir/"
mkdir -p "$vdir/sites" {CADDY_DIR}/sites
printf '\\n%s\\n' {q(IMPORT_LINE)} >> "$vdir/Caddyfile"
caddy validate --config "$vdir/Caddyfile" --adapter caddyfile >&2
cp "$vdir/Caddyfile" {MAIN}.shipit-new
chmod 0644 {MAIN}.shipit-new
mv -f {MAIN}.shipit-new {MAIN}
{RELOAD}"""
            changes.append(Change(f"add '{IMPORT_LINE}' to {MAIN}", script))
        data = params["content"].encode("utf-8")
        file_changes, failed = _files.plan_file(path, data, "0644", "root", "root", facts, ctx)
        if failed:
            return Plan(failed=failed)
        for change in file_changes:
            if change.reason.startswith(("mode", "owner", "group")):
                changes.append(change)
            else:
                changes.append(replace(change, script=validated_install(
                    f"sites/{params['name']}.caddy", data)))
        return Plan(tuple(changes))
