import pytest
import redis
from redis.connection import parse_url

from apps.tasks.redis_urls import RedisURLError, mask_url, validate_redis_url, with_db


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("redis://localhost", "redis://localhost/2"),
        ("redis://localhost/", "redis://localhost/2"),
        ("redis://localhost:6379/0", "redis://localhost:6379/2"),
        ("redis://localhost:6379/5", "redis://localhost:6379/2"),
        ("redis://localhost:6379/2", "redis://localhost:6379/2"),
        ("redis://localhost:6379/15/", "redis://localhost:6379/2"),
        ("redis://localhost:6379?db=7", "redis://localhost:6379/2"),
        ("redis://localhost:6379/5?db=7&socket_timeout=3", "redis://localhost:6379/2?socket_timeout=3"),
        # The reference implementation's str.replace turned 0.0.0.0 into 1.0.0.0.
        ("redis://0.0.0.0:6379/0", "redis://0.0.0.0:6379/2"),
        ("redis://10.0.0.10:6379/0", "redis://10.0.0.10:6379/2"),
        ("redis://user:p%40ss%2Fw0rd@cache.internal:6380/0", "redis://user:p%40ss%2Fw0rd@cache.internal:6380/2"),
        ("redis://:secret@host/3", "redis://:secret@host/2"),
        ("rediss://default:tok@host:6390/1?ssl_cert_reqs=none", "rediss://default:tok@host:6390/2?ssl_cert_reqs=none"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/2"),
        ("redis://[2001:db8::5]/9", "redis://[2001:db8::5]/2"),
        ("unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock?db=2"),
        ("unix:///run/redis/redis.sock?db=0", "unix:///run/redis/redis.sock?db=2"),
        ("unix://:pw@/run/redis.sock?db=4&socket_timeout=2", "unix://:pw@/run/redis.sock?socket_timeout=2&db=2"),
    ],
)
def test_with_db_selects_the_database_and_keeps_the_rest(given, expected):
    assert with_db(given, 2) == expected
    assert "/0/2" not in with_db(given, 2)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://user:p%40ss@[::1]:6380/5?db=9",
        "rediss://:tok@host/1?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=3",
    ],
)
@pytest.mark.parametrize("db", [0, 1, 2, 15])
def test_redis_py_reads_the_pinned_database_and_credentials(url, db):
    original = parse_url(url)
    pinned = parse_url(with_db(url, db))
    assert pinned["db"] == db
    for key in ("host", "port", "username", "password", "path"):
        assert pinned.get(key) == original.get(key)


def test_a_redis_client_built_from_the_url_uses_the_database():
    client = redis.Redis.from_url(with_db("redis://127.0.0.1:6379/0?db=5", 2))
    assert client.connection_pool.connection_kwargs["db"] == 2


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:6379/0", "unsupported scheme 'http'"),
        ("localhost:6379", "unsupported scheme"),
        ("", "empty"),
        (" redis://localhost", "white space"),
        ("redis://localhost:notaport/0", "invalid port"),
        ("redis://localhost/cache", "must be a database number"),
        ("unix://", "needs a socket path"),
    ],
)
def test_invalid_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(RedisURLError, match=reason):
        validate_redis_url(url)


@pytest.mark.parametrize("db", [-1, 16])
def test_database_outside_range_is_refused(db):
    with pytest.raises(RedisURLError, match="outside 0-15"):
        with_db("redis://localhost", db)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:hunter2@host:6379/2", "redis://user:***@host:6379/2"),
        ("redis://:hunter2@host/2", "redis://:***@host/2"),
        ("redis://user:p%40ss:w@[::1]:6379/2", "redis://user:***@[::1]:6379/2"),
        ("unix:///s.sock?password=hunter2&db=2", "unix:///s.sock?password=***&db=2"),
        ("redis://host:6379/2", "redis://host:6379/2"),
        ("redis://justuser@host/2", "redis://justuser@host/2"),
    ],
)
def test_mask_url_hides_passwords(url, masked):
    assert mask_url(url) == masked
    assert "hunter2" not in mask_url(url)
