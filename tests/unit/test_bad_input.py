"""Bad input gets a clear error: file, line, key, what was expected; exit 2, no traceback,
before any connection. One case per bad input, most of them mutations of the example
inventory (``inventories/prod.example.yml``), a lab-style native inventory, Ansible YAML and
INI inventories, the example app's ``shipit.yml`` and a small playbook.

Each case marks the offending line with ``# <-``; the test asserts a Problem at that file and
line with the expected key, then runs the real CLI (click's runner) against hosts at
127.0.0.1 port 1 and asserts exit 2 and no traceback. A few cases also run as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from shipit.app import load_app_spec
from shipit.cli import main, run_guarded
from shipit.errors import Problem, ShipitError, ValidationError
from shipit.inventory import load_inventory
from shipit.modules.registry import builtin_modules
from shipit.playbook import load_playbook

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_APP = (ROOT / "examples" / "app" / "shipit.yml").read_text()
PROD_EXAMPLE = (ROOT / "inventories" / "prod.example.yml").read_text()
MARK = "# <-"

LAB = """\
ssh:
  user: deploy
  port: 22
  key: lab.key
  known_hosts: lab.known_hosts
  connect_timeout: 5
vars: {app_port: 8000}
hosts:
  web1: {address: 127.0.0.1, port: 1, leader: true}
  web2: {address: 127.0.0.1, port: 1}
  db1: {address: 127.0.0.1, port: 1}
groups:
  web: {hosts: [web1, web2]}
  db: {hosts: [db1]}
"""

ANSIBLE = """\
all:
  vars: {app_port: 8000}
  hosts:
    lone: {ansible_host: 127.0.0.1, ansible_port: 1}
  children:
    web:
      hosts:
        web1: {ansible_host: 127.0.0.1, ansible_port: 1}
      vars: {workers: 2}
"""

INI = """\
[web]
web1 ansible_host=127.0.0.1 ansible_port=1
[db]
db1 ansible_host=127.0.0.1 ansible_port=1
[prod:children]
web
db
[web:vars]
workers=2
"""

BOOK = """\
- name: smoke
  hosts: all
  tasks:
    - name: say hi
      shell: echo hi
      when: "app_port == 8000"
    - name: a file
      file: {path: /tmp/shipit-bad-input, content: "port {{ app_port }}"}
"""

BOMB = "\n".join(
    ['lol0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" + (f"  {MARK}" if i == 4 else "")
       for i in range(1, 9)])


@dataclass(frozen=True)
class Case:
    """``kind``: which file is bad (inv, ansible, ini, app, appinv, book); ``text``: its text
    with the offending line marked; ``key``: the problem's key; ``message``: a part of it."""

    id: str
    kind: str
    text: str
    key: str
    message: str = ""


def mutate(base: str, old: str, new: str) -> str:
    assert old in base, old
    if MARK not in new:
        first, nl, rest = new.partition("\n")
        new = f"{first}  {MARK}{nl}{rest}"
    return base.replace(old, new, 1)


def inv(id: str, old: str, new: str, key: str, message: str = "") -> Case:
    return Case(id, "inv", mutate(LAB, old, new), key, message)


def app(id: str, old: str, new: str, key: str, message: str = "") -> Case:
    return Case(id, "app", mutate(EXAMPLE_APP, old, new), key, message)


def book(id: str, old: str, new: str, key: str, message: str = "") -> Case:
    return Case(id, "book", mutate(BOOK, old, new), key, message)


H1 = "  web1: {address: 127.0.0.1, port: 1, leader: true}"
HEALTH = "health: {path: /health, timeout: 40}"
PROC = '  - {name: heartbeat, command: "python -m example_app.worker", instances: 1}'
DOMAINS = "domains: [example.shipit.test]"
DB = "database: {name: example, user: example, password_secret: DB_PASSWORD}"
ENV = '  WORKER_INTERVAL: "5"'
SECRETS = "secrets: [DB_PASSWORD]"
WEB_WORKERS = "  workers: 2"

CASES = [
    # -- native inventory (lab style) ------------------------------------------------------
    inv("ssh-port-zero", "  port: 22", "  port: 0", "ssh.port", "1 to 65535"),
    inv("ssh-port-huge", "  port: 22", "  port: 99999", "ssh.port", "1 to 65535"),
    inv("ssh-port-negative", "  port: 22", "  port: -22", "ssh.port", "1 to 65535"),
    inv("ssh-port-bool", "  port: 22", "  port: true", "ssh.port", "port number"),
    inv("ssh-port-string", "  port: 22", '  port: "22"', "ssh.port", "port number"),
    inv("ssh-port-float", "  port: 22", "  port: 22.5", "ssh.port", "port number"),
    inv("timeout-negative", "  connect_timeout: 5", "  connect_timeout: -1", "ssh.connect_timeout", "seconds"),
    inv("timeout-zero", "  connect_timeout: 5", "  connect_timeout: 0", "ssh.connect_timeout", "seconds"),
    inv("timeout-inf", "  connect_timeout: 5", "  connect_timeout: .inf", "ssh.connect_timeout", "seconds"),
    inv("timeout-overflow", "  connect_timeout: 5", "  connect_timeout: 1.0e+400", "ssh.connect_timeout", "seconds"),
    inv("timeout-nan", "  connect_timeout: 5", "  connect_timeout: .nan", "ssh.connect_timeout", "seconds"),
    inv("timeout-string", "  connect_timeout: 5", "  connect_timeout: abc", "ssh.connect_timeout", "seconds"),
    inv("host-port-65536", H1, "  web1: {address: 127.0.0.1, port: 65536}", "hosts.web1.port", "1 to 65535"),
    inv("host-port-list", H1, "  web1: {address: 127.0.0.1, port: [22]}", "hosts.web1.port", "port number"),
    inv("address-subshell", H1, '  web1: {address: "$(touch /tmp/pwned)"}', "hosts.web1.address"),
    inv("address-backticks", H1, '  web1: {address: "`id`"}', "hosts.web1.address"),
    inv("address-semicolon", H1, '  web1: {address: "10.0.0.1;id"}', "hosts.web1.address"),
    inv("address-option", H1, '  web1: {address: "-oProxyCommand=id"}', "hosts.web1.address"),
    inv("address-newline", H1, '  web1: {address: "10.0.0.1\\nid"}', "hosts.web1.address"),
    inv("user-backticks", H1, '  web1: {address: 127.0.0.1, user: "root`id`"}', "hosts.web1.user"),
    inv("user-space", "  user: deploy", '  user: "de ploy"', "ssh.user"),
    inv("gateway-port-zero", H1, "  web1: {address: 127.0.0.1, gateway: 'jump@bastion:0'}", "hosts.web1.gateway"),
    inv("gateway-and", H1, "  web1: {address: 127.0.0.1, gateway: 'bastion&&id'}", "hosts.web1.gateway"),
    inv("gateway-number", H1, "  web1: {address: 127.0.0.1, gateway: 5}", "hosts.web1.gateway"),
    inv("leader-string", H1, '  web1: {address: 127.0.0.1, leader: "yes"}', "hosts.web1.leader", "true or false"),
    inv("host-vars-string", H1, "  web1: {address: 127.0.0.1, vars: workers=2}", "hosts.web1.vars", "mapping"),
    inv("host-name-space", H1, '  "web 1": {address: 127.0.0.1}', "hosts.web 1", "host name"),
    inv("hosts-as-list", "hosts:\n", "hosts: [web1, web2]\nunused_hosts:\n", "hosts", "mapping"),
    inv("group-hosts-string", "  web: {hosts: [web1, web2]}", "  web: {hosts: web1}", "groups.web.hosts", "list"),
    inv("group-hosts-unknown", "  web: {hosts: [web1, web2]}", "  web: {hosts: [web1, web9]}", "groups.web.hosts", "web9"),
    inv("group-hosts-mapping-item", "  web: {hosts: [web1, web2]}", "  web: {hosts: [{web1: 1}]}", "groups.web.hosts"),
    inv("known-hosts-number", "  known_hosts: lab.known_hosts", "  known_hosts: 5", "ssh.known_hosts"),
    inv("vars-list", "vars: {app_port: 8000}", "vars: [app_port]", "vars", "mapping"),
    Case("inventory-alias-bomb", "inv", LAB + "extra:\n" + "\n".join("  " + line for line in BOMB.splitlines()),
         "", "too many alias expansions"),
    # -- Ansible YAML inventory ------------------------------------------------------------
    Case("ansible-port-abc", "ansible", mutate(ANSIBLE, "lone: {ansible_host: 127.0.0.1, ansible_port: 1}",
                                                "lone: {ansible_host: 127.0.0.1, ansible_port: abc}"),
         "all.hosts.lone.ansible_port", "port number"),
    Case("ansible-port-zero", "ansible", mutate(ANSIBLE, "lone: {ansible_host: 127.0.0.1, ansible_port: 1}",
                                                 "lone: {ansible_host: 127.0.0.1, ansible_port: 0}"),
         "all.hosts.lone.ansible_port", "1 to 65535"),
    Case("ansible-host-subshell", "ansible", mutate(ANSIBLE, "lone: {ansible_host: 127.0.0.1, ansible_port: 1}",
                                                     'lone: {ansible_host: "$(id)"}'),
         "all.hosts.lone.ansible_host"),
    Case("ansible-hosts-list", "ansible", mutate(ANSIBLE, "      hosts:\n        web1: {ansible_host: 127.0.0.1, ansible_port: 1}",
                                                  "      hosts: [web1]"),
         "all.children.web.hosts", "mapping"),
    Case("ansible-host-vars-string", "ansible", mutate(ANSIBLE, "lone: {ansible_host: 127.0.0.1, ansible_port: 1}",
                                                        "lone: ansible_host=127.0.0.1"),
         "all.hosts.lone", "mapping of host vars"),
    Case("ansible-children-list", "ansible", mutate(ANSIBLE, "  children:\n    web:", "  children: [web]\n  unused:\n    web:"),
         "all.children", "mapping"),
    Case("ansible-vars-list", "ansible", mutate(ANSIBLE, "      vars: {workers: 2}", "      vars: [workers]"),
         "all.children.web.vars", "mapping"),
    # -- Ansible INI inventory -------------------------------------------------------------
    Case("ini-port-abc", "ini", mutate(INI, "web1 ansible_host=127.0.0.1 ansible_port=1",
                                       "web1 ansible_host=127.0.0.1 ansible_port=abc"), "web1 ansible_port", "port"),
    Case("ini-port-huge", "ini", mutate(INI, "web1 ansible_host=127.0.0.1 ansible_port=1",
                                        "web1 ansible_host=127.0.0.1 ansible_port=70000"), "web1 ansible_port", "65535"),
    Case("ini-host-subshell", "ini", mutate(INI, "web1 ansible_host=127.0.0.1 ansible_port=1",
                                            "web1 ansible_host=`id` ansible_port=1"), "web1 ansible_host"),
    Case("ini-bad-section", "ini", mutate(INI, "[web:vars]", "[web:variables]"), "[web:variables]", "expected [group]"),
    Case("ini-unknown-child", "ini", mutate(INI, "db\n[web:vars]", "dbx\n[web:vars]"), "prod:children", "'dbx'"),
    Case("ini-word-without-value", "ini", mutate(INI, "db1 ansible_host=127.0.0.1 ansible_port=1",
                                                 "db1 ansible_host=127.0.0.1 oops"), "oops", "key=value"),
    Case("ini-unbalanced-quote", "ini", mutate(INI, "db1 ansible_host=127.0.0.1 ansible_port=1",
                                               "db1 ansible_host='127.0.0.1"), "db1 ansible_host='127.0.0.1", "cannot parse"),
    # -- app spec (examples/app/shipit.yml) ------------------------------------------------
    app("health-timeout-abc", HEALTH, "health: {timeout: abc}", "health.timeout", "seconds"),
    app("health-timeout-inf", HEALTH, "health: {path: /health, timeout: 1.0e+400}", "health.timeout", "seconds"),
    app("health-timeout-negative", HEALTH, "health: {path: /health, timeout: -5}", "health.timeout", "seconds"),
    app("health-timeout-nan", HEALTH, "health: {path: /health, timeout: .nan}", "health.timeout", "seconds"),
    app("health-timeout-bool", HEALTH, "health: {path: /health, timeout: true}", "health.timeout", "seconds"),
    app("health-unknown-key", HEALTH, "health: {path: /health, timeot: 5}", "health.timeot", "unknown key"),
    app("health-path-relative", HEALTH, "health: {path: health}", "health.path", "absolute URL path"),
    app("health-path-space", HEALTH, 'health: {path: "/he alth"}', "health.path", "absolute URL path"),
    app("health-path-quote", HEALTH, "health: {path: \"/h'x\"}", "health.path", "absolute URL path"),
    app("health-path-dquote", HEALTH, "health: {path: '/h\"x'}", "health.path", "absolute URL path"),
    app("health-path-subshell", HEALTH, 'health: {path: "/$(id)"}', "health.path", "absolute URL path"),
    app("health-path-semicolon", HEALTH, 'health: {path: "/a;id"}', "health.path", "absolute URL path"),
    app("health-path-braces", HEALTH, 'health: {path: "/{x}"}', "health.path", "absolute URL path"),
    app("health-path-backticks", HEALTH, 'health: {path: "/`id`"}', "health.path", "absolute URL path"),
    app("health-path-newline", HEALTH, 'health: {path: "/a\\nb"}', "health.path", "absolute URL path"),
    app("health-string", HEALTH, "health: /health", "health", "path: /health"),
    app("secrets-file-number", "secrets: [DB_PASSWORD]", "secrets: [DB_PASSWORD]\nsecrets_file: 5  # <-", "secrets_file"),
    app("instances-negative", PROC, '  - {name: heartbeat, command: "python -m w", instances: -1}',
        "processes[0].instances", "1 to 64"),
    app("instances-zero", PROC, '  - {name: heartbeat, command: "python -m w", instances: 0}',
        "processes[0].instances", "1 to 64"),
    app("instances-huge", PROC, '  - {name: heartbeat, command: "python -m w", instances: 100000}',
        "processes[0].instances", "1 to 64"),
    app("instances-string", PROC, '  - {name: heartbeat, command: "python -m w", instances: "2"}',
        "processes[0].instances", "1 to 64"),
    app("process-command-newline", PROC, '  - {name: heartbeat, command: "python -m w\\nrm -rf /"}',
        "processes[0].command", "one line"),
    app("process-command-nul", PROC, '  - {name: heartbeat, command: "python\\0 -m w"}', "processes[0].command", "NUL"),
    app("process-command-quote", PROC, "  - {name: heartbeat, command: \"echo 'x'\"}", "processes[0].command", "'"),
    app("process-command-number", PROC, "  - {name: heartbeat, command: 5}", "processes[0].command", "string"),
    app("process-name-bad", PROC, '  - {name: "Heart Beat", command: "python -m w"}', "processes[0].name", "short lowercase"),
    app("schedule-calendar-misspelt", "max_fail: 0", 'max_fail: 0\nschedule:\n'
        '  - {name: cleanup, command: "python -m c", on_calendar: dialy}  # <-',
        "schedule[0].on_calendar", "did you mean 'daily'?"),
    app("schedule-calendar-newline", "max_fail: 0", 'max_fail: 0\nschedule:\n'
        '  - {name: cleanup, command: "python -m c", on_calendar: "daily\\nhourly"}  # <-',
        "schedule[0].on_calendar", "on one line"),
    app("schedule-calendar-missing", "max_fail: 0", 'max_fail: 0\nschedule:\n'
        '  - {name: cleanup, command: "python -m c"}  # <-', "schedule[0].on_calendar", "missing"),
    app("schedule-on-bad", "max_fail: 0", 'max_fail: 0\nschedule:\n'
        '  - {name: cleanup, command: "python -m c", on_calendar: daily, on: everywhere}  # <-',
        "schedule[0].on", "leader"),
    app("schedule-timeout-bad", "max_fail: 0", 'max_fail: 0\nschedule:\n'
        '  - {name: cleanup, command: "python -m c", on_calendar: daily, timeout: forever}  # <-',
        "schedule[0].timeout", "30m"),
    app("migrate-newline", "migrate: alembic upgrade head", 'migrate: "alembic upgrade head\\nrm -rf /"', "migrate", "one line"),
    app("migrate-empty", "migrate: alembic upgrade head", 'migrate: ""', "migrate", "empty"),
    app("migrate-list", "migrate: alembic upgrade head", "migrate: [alembic, upgrade]", "migrate", "string"),
    app("migrate-timeout-negative", "migrate: alembic upgrade head", "migrate: alembic upgrade head\nmigrate_timeout: -1  # <-",
        "migrate_timeout", "seconds"),
    app("migrate-timeout-inf", "migrate: alembic upgrade head", "migrate: alembic upgrade head\nmigrate_timeout: .inf  # <-",
        "migrate_timeout", "seconds"),
    app("migrate-timeout-string", "migrate: alembic upgrade head",
        "migrate: alembic upgrade head\nmigrate_timeout: ten  # <-", "migrate_timeout", "seconds"),
    app("domains-empty", DOMAINS, "domains: []", "domains", "at least one"),
    app("domains-string", DOMAINS, "domains: example.com", "domains", "list"),
    app("domain-space", DOMAINS, 'domains: ["exa mple.com"]', "domains[0]", "domain name"),
    app("domain-subshell", DOMAINS, 'domains: ["$(id).example.com"]', "domains[0]", "domain name"),
    app("domain-backticks", DOMAINS, 'domains: ["`id`.example.com"]', "domains[0]", "domain name"),
    app("domain-semicolon", DOMAINS, 'domains: ["example.com;id"]', "domains[0]", "domain name"),
    app("domain-braces", DOMAINS, 'domains: ["example.com {"]', "domains[0]", "domain name"),
    app("domain-and", DOMAINS, 'domains: ["a.com&&id"]', "domains[0]", "domain name"),
    app("domain-leading-dash", DOMAINS, 'domains: ["-bad.example.com"]', "domains[0]", "domain name"),
    app("domain-long-label", DOMAINS, f'domains: ["{"a" * 64}.com"]', "domains[0]", "domain name"),
    app("domain-too-long", DOMAINS, f'domains: ["{".".join(["a" * 60] * 5)}"]', "domains[0]", "domain name"),
    app("domain-port", DOMAINS, 'domains: ["example.com:443"]', "domains[0]", "domain name"),
    app("domain-scheme", DOMAINS, 'domains: ["https://example.com"]', "domains[0]", "domain name"),
    app("domain-ipv6", DOMAINS, 'domains: ["::1"]', "domains[0]", "IPv4"),
    app("domain-number", DOMAINS, "domains: [5]", "domains[0]", "domain name"),
    app("domain-duplicate", DOMAINS, "domains: [a.example.com, A.example.com]", "domains[1]", "twice"),
    app("database-name-injection", DB, 'database: {name: "x; DROP TABLE t", user: example, password_secret: DB_PASSWORD}',
        "database.name", "SQL identifier"),
    app("database-name-upper", DB, "database: {name: Example, user: example, password_secret: DB_PASSWORD}",
        "database.name", "SQL identifier"),
    app("database-user-quote", DB, "database: {name: example, user: \"a'b\", password_secret: DB_PASSWORD}",
        "database.user", "SQL identifier"),
    app("database-user-postgres", DB, "database: {name: example, user: postgres, password_secret: DB_PASSWORD}",
        "database.user", "PostgreSQL"),
    app("database-secret-unlisted", DB, "database: {name: example, user: example, password_secret: NOPE}",
        "database.password_secret", "add it to secrets"),
    app("database-string", DB, "database: example", "database", "expected {name"),
    # database.backup (issue 13 item 6)
    app("database-backup-string", DB, DB[:-1] + ", backup: daily}", "database.backup",
        "expected {before_migrate: true, keep: 7}"),
    app("database-backup-unknown-key", DB, DB[:-1] + ", backup: {before_migrat: true}}",
        "database.backup.before_migrat", "did you mean 'before_migrate'"),
    app("database-backup-before-migrate-string", DB, DB[:-1] + ', backup: {before_migrate: "yes"}}',
        "database.backup.before_migrate", "expected true or false"),
    app("database-backup-keep-zero", DB, DB[:-1] + ", backup: {keep: 0}}", "database.backup.keep",
        "from 1 to 1000"),
    app("database-backup-keep-string", DB, DB[:-1] + ', backup: {keep: "7"}}', "database.backup.keep",
        "a whole number"),
    app("database-backup-misplaced", DB, DB[:-1] + ", backups: {keep: 3}}", "database.backups",
        "did you mean 'backup'"),
    app("env-key-dash", ENV, '  WORKER-INTERVAL: "5"', "env.WORKER-INTERVAL", "environment variable name"),
    app("env-key-digit", ENV, '  1WORKER: "5"', "env.1WORKER", "environment variable name"),
    # quotes and newlines are fine in env values (#11 item 6: systemd's quoting); NUL is not
    app("env-value-nul", ENV, '  WORKER_INTERVAL: "5\\0X"', "env.WORKER_INTERVAL", "NUL"),
    app("env-value-mapping", ENV, "  WORKER_INTERVAL: {a: 1}", "env.WORKER_INTERVAL", "string or number"),
    app("env-secret-unlisted", ENV, '  WORKER_INTERVAL: "{{ secrets.NOPE }}"', "env.WORKER_INTERVAL", "add NOPE to secrets:"),
    app("env-secrets-dynamic", ENV, '  WORKER_INTERVAL: "{{ secrets | tojson }}"', "env.WORKER_INTERVAL", "by its name"),
    app("env-sandbox-escape", ENV, "  WORKER_INTERVAL: \"{{ cycler.__init__.__globals__.os.popen('id').read() }}\"",
        "env.WORKER_INTERVAL", "not allowed"),
    app("env-syntax-error", ENV, '  WORKER_INTERVAL: "{{ 5"', "env.WORKER_INTERVAL", "syntax error"),
    app("env-undefined-variable", ENV, '  WORKER_INTERVAL: "{{ workers }}"', "env.WORKER_INTERVAL", "undefined variable"),
    app("secret-unused", SECRETS, "secrets: [DB_PASSWORD, API_KEY]", "secrets[1]", "map it in env: e.g. API_KEY:"),
    app("secret-bad-name", SECRETS, 'secrets: [DB_PASSWORD, "api key"]', "secrets[1]", "secret name"),
    app("secret-duplicate", SECRETS, "secrets: [DB_PASSWORD, DB_PASSWORD]", "secrets[1]", "twice"),
    app("workers-zero", WEB_WORKERS, "  workers: 0", "web.workers", "1-64"),
    app("web-port-privileged", "  port: 8000", "  port: 80", "web.port", "1024 to 65000"),
    app("memory-negative", "  memory_per_worker: 120M", "  memory_per_worker: -5", "web.memory_per_worker", "size"),
    app("keep-releases-one", "keep_releases: 4", "keep_releases: 1", "keep_releases", "2 to 1000"),
    app("serial-empty", "serial: 1", "serial: []", "serial", "batch size"),
    app("serial-zero-percent", "serial: 1", 'serial: "0%"', "serial", "batch size"),
    app("max-fail-nan", "max_fail: 0", "max_fail: .nan", "max_fail", "percentage"),
    app("memory-budget-zero", "max_fail: 0", 'max_fail: 0\nmemory_budget: "0%"  # <-', "memory_budget", "percentage"),
    app("acme-email-space", "tls: internal", 'tls: {acme_email: "ops @example.com"}', "tls.acme_email", "email"),
    app("tls-unknown", "tls: internal", "tls: letsencrypt", "tls", "internal"),
    app("name-bad", "name: example", 'name: "Ex ample"', "name", "short lowercase"),
    app("python-float", "name: example\n", "name: example\npython: 3.11  # <-\n", "python", '"3.X"'),
    app("source-missing", "name: example", "name: example\nsource: no/such/dir  # <-", "source", "no such directory"),
    app("unknown-key", "max_fail: 0", "max_fail: 0\nmax_fails: 1  # <-", "max_fails", "unknown app key"),
    app("app-alias-bomb", "max_fail: 0", "max_fail: 0\n" + BOMB.replace("lol", "x_lol"), "", "too many alias expansions"),
    # -- the inventory's app: overrides (inventories/prod.example.yml) ---------------------
    Case("override-domain", "appinv", mutate(PROD_EXAMPLE, "  domains: [example.com, www.example.com]",
                                             "  domains: [example.com, 'www.example.com;id']"), "domains[1]", "domain name"),
    Case("override-email", "appinv", mutate(PROD_EXAMPLE, "  tls: {acme_email: ops@example.com}",
                                            "  tls: {acme_email: '$(id)@example.com'}"), "tls.acme_email", "email"),
    Case("override-serial", "appinv", mutate(PROD_EXAMPLE, '  serial: [1, "50%"]', '  serial: [1, "500%"]'),
         "serial", "batch size"),
    # -- playbooks -------------------------------------------------------------------------
    book("when-division-by-zero", '      when: "app_port == 8000"', '      when: "(1 / 0) > 0"', "when", "ZeroDivisionError"),
    book("when-sandbox-escape", '      when: "app_port == 8000"', '      when: "cycler.__init__.__globals__"', "when", "not allowed"),
    book("when-list-self-init", '      when: "app_port == 8000"', '      when:\n        - "self.__init__"  # <-', "when[0]",
         "not allowed"),
    book("when-syntax", '      when: "app_port == 8000"', '      when: "app_port =="', "when", "syntax error"),
    book("param-popen", "      shell: echo hi",
         "      shell: \"echo {{ cycler.__init__.__globals__.os.popen('id').read() }}\"", "shell", "not allowed"),
    book("param-lipsum-globals", '      file: {path: /tmp/shipit-bad-input, content: "port {{ app_port }}"}',
         "      file: {path: /tmp/shipit-bad-input, content: \"{{ lipsum['__globals__'] }}\"}", "file.content", "not allowed"),
    book("param-subclasses", '      file: {path: /tmp/shipit-bad-input, content: "port {{ app_port }}"}',
         "      file: {path: /tmp/shipit-bad-input, content: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}",
         "file.content", "not allowed"),
    book("param-attr-filter", '      file: {path: /tmp/shipit-bad-input, content: "port {{ app_port }}"}',
         "      file: {path: /tmp/shipit-bad-input, content: \"{{ app_port|attr('__class__') }}\"}", "file.content",
         "not allowed"),
    book("param-syntax", "      shell: echo hi", '      shell: "echo {{ app_port"', "shell", "syntax error"),
    book("param-undefined", "      shell: echo hi", '      shell: "echo {{ nope }}"', "shell", "undefined variable"),
    Case("book-alias-bomb", "book", BOMB.replace("lol", "x_lol") + "\n", "", "too many alias expansions"),
]


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, f"exactly one {MARK!r} marker expected, got {lines}"
    return lines[0]


def write_case(tmp_path: Path, case: Case) -> tuple[Path, list[str]]:
    """Write the case's files; return (the bad file, CLI args that load it)."""
    inv_path = tmp_path / "inv.yml"
    inv_path.write_text(LAB)
    book_path = tmp_path / "book.yml"
    book_path.write_text(BOOK)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "shipit.yml").write_text(EXAMPLE_APP)
    if case.kind in ("inv", "ansible", "ini"):
        inv_path = tmp_path / ("hosts.ini" if case.kind == "ini" else "inv.yml")
        inv_path.write_text(case.text)
        return inv_path, ["run", "test", str(book_path), "-i", str(inv_path)]
    if case.kind == "book":
        book_path.write_text(case.text)
        return book_path, ["run", "test", str(book_path), "-i", str(inv_path)]
    if case.kind == "appinv":
        inv_path.write_text(case.text)
        return inv_path, ["deploy", "test", "--app", str(app_dir), "-i", str(inv_path)]
    (app_dir / "shipit.yml").write_text(case.text)
    return app_dir / "shipit.yml", ["deploy", "test", "--app", str(app_dir), "-i", str(inv_path)]


def load(case: Case, bad: Path, tmp_path: Path) -> None:
    if case.kind in ("inv", "ansible", "ini"):
        load_inventory(bad)
    elif case.kind == "book":
        load_playbook(bad, builtin_modules(), load_inventory(tmp_path / "inv.yml"))
    elif case.kind == "appinv":
        inventory = load_inventory(bad)
        load_app_spec(tmp_path / "app", inventory.app, inventory.path)
    else:
        load_app_spec(bad.parent)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_problem_at_its_line_and_exit_2(case: Case, tmp_path: Path) -> None:
    bad, args = write_case(tmp_path, case)
    with pytest.raises(ValidationError) as info:
        load(case, bad, tmp_path)
    assert info.value.exit_code == 2
    line = marked_line(case.text)
    where = [(p.file, p.line, p.key) for p in info.value.problems]
    matching = [p for p in info.value.problems if p.file == str(bad) and p.line == line and p.key == case.key]
    assert matching, f"expected a problem at {bad}:{line} key {case.key!r}; got {where}"
    assert all(p.line > 0 for p in matching)
    assert any(case.message in p.message for p in matching), [p.message for p in matching]

    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{bad}:{line}:" in result.output


SUBPROCESS = ["ssh-port-huge", "ansible-port-abc", "ini-port-abc", "health-timeout-inf", "when-division-by-zero",
              "inventory-alias-bomb", "env-sandbox-escape"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=SUBPROCESS)
def test_bad_input_through_a_real_process(case: Case, tmp_path: Path) -> None:
    bad, args = write_case(tmp_path, case)
    proc = subprocess.run([sys.executable, "-m", "shipit.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{bad}:{marked_line(case.text)}:" in proc.stderr


def test_json_error_document(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise ValidationError([Problem("inv.yml", 3, "ssh.port", "expected a port number from 1 to 65535, got 0")])

    with pytest.raises(SystemExit) as info:
        run_guarded(body, as_json=True)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "invalid input; nothing was touched", "problems": [
        {"file": "inv.yml", "line": 3, "key": "ssh.port", "message": "expected a port number from 1 to 65535, got 0"}]}
    assert "inv.yml:3: ssh.port:" in err and "Traceback" not in err

    def other() -> int:
        raise ShipitError("cannot reach [project] host")

    with pytest.raises(SystemExit) as info:
        run_guarded(other, as_json=True)
    out, err = capsys.readouterr()
    assert info.value.code == 1 and json.loads(out) == {"error": "cannot reach [project] host", "problems": []}
    assert "[project]" in err

    with pytest.raises(SystemExit):
        run_guarded(other)
    out, err = capsys.readouterr()
    assert out == "" and "error: cannot reach [project] host" in err


def test_error_text_keeps_square_brackets(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts: {web1: {address: 127.0.0.1}}\n'[project]': 1\n")
    result = CliRunner().invoke(main, ["run", "test", "book.yml", "-i", str(tmp_path / "inv.yml")])
    assert result.exit_code == 2 and "[project]" in result.output


def test_ansible_ini_all_children_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[all:children]\nweb\n[web]\nweb1 ansible_host=127.0.0.1 ansible_port=2222\n")
    inventory = load_inventory(path)
    assert inventory.select("web") == ["web1"] and inventory.hosts["web1"].port == 2222


def test_good_inputs_still_load(tmp_path: Path) -> None:
    load_inventory(ROOT / "inventories" / "prod.example.yml")
    spec = load_app_spec(ROOT / "examples" / "app")
    assert spec.migrate_timeout == 600 and spec.domains == ("example.shipit.test",)
    (tmp_path / "shipit.yml").write_text(EXAMPLE_APP.replace(DOMAINS, "domains: [Example.COM, '*.example.com', 10.0.0.5]")
                                         .replace(HEALTH, "health: {path: '/healthz?full=1&x=%20', timeout: 5.0}"))
    spec = load_app_spec(tmp_path)
    assert spec.domains == ("example.com", "*.example.com", "10.0.0.5")
    assert spec.health_path == "/healthz?full=1&x=%20" and spec.health_timeout == 5.0
