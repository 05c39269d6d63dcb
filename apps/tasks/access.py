"""Who may read what the task layer exposes beyond a status: the bearer token check shared by
``/metrics`` and ``/health/tasks/``."""

from __future__ import annotations

import hmac

from django.http import HttpRequest


def bearer_token_matches(request: HttpRequest, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
