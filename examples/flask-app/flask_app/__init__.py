"""A small Flask app for shipit's examples: a visit counter in SQLite, built by an application
factory (Flask's ``create_app()`` pattern; the app spec says ``wsgi: flask_app:create_app()``).

``GET /health`` answers ``{"status": "ok", "release": ...}`` (503 with ``FLASK_APP_FAIL_HEALTH=1``),
``GET /`` counts the visit. The database file is ``$FLASK_APP_DB`` (in a shared dir when
deployed, so it outlives releases); its schema is created by ``python -m flask_app.schema``
(the deploy's migrate step) and again, idempotently, on first use on each host.
"""

from __future__ import annotations

import os
import socket
import sqlite3

from flask import Flask, jsonify

from flask_app.schema import connect

RELEASE = os.environ.get("SHIPIT_RELEASE", "dev")


def create_app() -> Flask:
    """The WSGI application (each gunicorn worker calls this once)."""
    app = Flask(__name__)

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        if os.environ.get("FLASK_APP_FAIL_HEALTH") == "1":
            return jsonify(status="fail", release=RELEASE), 503
        return jsonify(status="ok", release=RELEASE, pid=os.getpid())

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        try:
            with connect() as db:
                db.execute("INSERT INTO visits (release) VALUES (?)", (RELEASE,))
                visits = db.execute("SELECT count(*) FROM visits").fetchone()[0]
        except sqlite3.Error as exc:
            return jsonify(status="fail", reason=str(exc)), 503
        return jsonify(app="flaskapp", release=RELEASE, hostname=socket.gethostname(), visits=visits)

    return app
