"""The floor for every API figure: a bare Falcon 4 app returning a small JSON document.

Same framework, same gunicorn settings as the real API, but no middleware, database, Redis
or auth, so "app req/s / bare req/s" isolates what our own code costs per request.
Serve with ``gunicorn bench.bare_app:app``.
"""

from __future__ import annotations

import falcon

# Roughly the size of a small API answer (one slot), fixed so each response is identical.
DOC = {
    "id": "0191f2d4-7a3e-7c1e-9b1a-2f6d3c4b5a69",
    "stylist_id": 42,
    "start_at": "2030-01-07T09:00:00+00:00",
    "end_at": "2030-01-07T09:30:00+00:00",
    "status": "open",
}


class Slot:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = DOC


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


app = falcon.App()
app.add_route("/", Slot())
app.add_route("/slot", Slot())
app.add_route("/healthz", Health())
