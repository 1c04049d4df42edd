"""IncidentIQ over HTTP (the ``server`` extra: ``pip install "incidentiq[server]"``).

``incidentiq serve`` runs it; :func:`create_app` builds the FastAPI
application and :func:`serve_in_thread` runs one in the background. The
routes, sessions and error codes are described in :mod:`incidentiq.server.app`;
the typed requests and responses in :mod:`incidentiq.server.models`, which
needs no extra (the HTTP client in :mod:`incidentiq.client` uses it).

Importing this package imports nothing of the extra: the names below load
:mod:`incidentiq.server.app` on first use, and that module says which extra
to install when FastAPI, uvicorn or openenv-core is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app", "serve", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from incidentiq.server import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
