"""Pure functions over Redis URLs: validate, pin to a database, mask secrets.

The URL is never decoded and re-encoded: only the path (or the ``db`` query
option for unix sockets) is rewritten, so users, passwords with encoded
characters, IPv6 hosts, ports and query options survive untouched.
"""

from __future__ import annotations

from urllib.parse import urlsplit

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
MAX_DB = 15
MASK = "***"


class RedisURLError(ValueError):
    """A URL that redis-py could not use as a Redis server address."""


def validate_redis_url(url: str) -> str:
    """Return ``url`` unchanged if redis-py can connect with it, else raise RedisURLError."""
    if not isinstance(url, str) or not url.strip():
        raise RedisURLError("the Redis URL is empty")
    if url != url.strip():
        raise RedisURLError("the Redis URL has leading or trailing white space")
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        shown = parts.scheme or "(none)"
        raise RedisURLError(f"unsupported scheme {shown!r} in {mask_url(url)!r}: use redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        if not parts.path:
            raise RedisURLError(f"a unix:// Redis URL needs a socket path: {mask_url(url)!r}")
        return url
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError as exc:
        raise RedisURLError(f"invalid port in {mask_url(url)!r}: {exc}") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise RedisURLError(f"the path of {mask_url(url)!r} must be a database number, not {path!r}")
    return url


def with_db(url: str, db: int) -> str:
    """Return ``url`` selecting database ``db``, whatever database it named before.

    ``redis://h`` / ``redis://h/`` / ``redis://h/0`` / ``redis://h/5?db=7`` all become
    ``redis://h/<db>`` (other query options kept); ``unix://`` URLs get ``?db=<db>``.
    """
    validate_redis_url(url)
    if not 0 <= db <= MAX_DB:
        raise RedisURLError(f"database {db} is outside 0-{MAX_DB}")
    parts = urlsplit(url)
    # Edit the raw query so the user's own options keep their exact encoding.
    options = [item for item in parts.query.split("&") if item and item.split("=", 1)[0] != "db"]
    if parts.scheme == "unix":
        options.append(f"db={db}")
        path = parts.path
    else:
        path = f"/{db}"
    rebuilt = f"{parts.scheme}://{parts.netloc}{path}"
    if options:
        rebuilt += "?" + "&".join(options)
    if parts.fragment:
        rebuilt += "#" + parts.fragment
    return rebuilt


def mask_url(url: str) -> str:
    """Return ``url`` with any password (in the user info or a ``password`` option) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    options = [
        f"{item.split('=', 1)[0]}={MASK}" if item.split("=", 1)[0].lower() == "password" else item
        for item in parts.query.split("&")
        if item
    ]
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    if options:
        masked += "?" + "&".join(options)
    return masked
