"""Virtual keys in the Redis key store (issue 10): keys written by
build/aigw-keys into a real redis-server, read by the gateway through its
non-blocking client, cached per worker for keys_ttl."""

import hashlib
import json
import os
import secrets
import subprocess
import threading
import time

import pytest

from conftest import PROVIDER_KEY, ROOT, Gateway, Redis, make_workdir

# the real tree's tool, also from tools/asan-test.sh's shadow root (whose
# tools/build-module.sh is a link to the real one)
AIGW_KEYS = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(
    os.path.join(ROOT, "tools", "build-module.sh")))), "build", "aigw-keys")
FILE_KEY = "aigw-file-key-0000000000000000000000001"
PREFIX = "kt"
TTL = 1.0            # keys_ttl of the gateway below, in seconds


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def tenants_file():
    t = {"tenants": {
        "team-r": {"models": ["gpt-4o"],
                   "limits": {"requests_per_minute": 1000}},
        "team-small": {"limits": {"requests_per_minute": 3}},
        "team-f": {"keys": [{"id": "file", "sha256": sha(FILE_KEY)}]}}}
    path = os.path.join(make_workdir("aigw-rk-"), "tenants.json")
    with open(path, "w") as f:
        json.dump(t, f)
    return path


def gateway(mock, redis, extra=""):
    return Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o mock:gpt-4o-mock;
    ai_model other mock:gpt-4o-mock;
    ai_tenants %s keys=redis://127.0.0.1:%d keys_prefix=%s keys_ttl=1s
               keys_timeout=300ms %s;
    ai_limits zone=aigw_limits:1m;
""" % (mock.port, tenants_file(), redis.port, PREFIX, extra),
        "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=1).start()


@pytest.fixture(scope="module")
def redis():
    r = Redis()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def gw(mock, redis):
    g = gateway(mock, redis)
    yield g
    g.stop()


def create(redis, tenant="team-r", *args):
    p = subprocess.run([AIGW_KEYS, "create", "--redis",
                        "redis://127.0.0.1:%d" % redis.port,
                        "--prefix", PREFIX, "--tenant", tenant] + list(args),
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def revoke(redis, tenant, kid):
    p = subprocess.run([AIGW_KEYS, "revoke", "--redis",
                        "redis://127.0.0.1:%d" % redis.port,
                        "--prefix", PREFIX, "--tenant", tenant, "--id", kid],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr


def hset(redis, key, **fields):
    args = []
    for k, v in fields.items():
        args += [k, str(v)]
    redis.cli("HSET", "%s:key:%s" % (PREFIX, sha(key)), *args)


def hgetalls(redis):
    for line in redis.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_hgetall:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def chat(g, key, model="gpt-4o", timeout=15):
    return g.chat({"model": model, "max_tokens": 5,
                   "messages": [{"role": "user", "content": "hi"}]},
                  headers={"Authorization": "Bearer " + key},
                  timeout=timeout)


def test_key_created_by_aigw_keys_authenticates(gw, redis, mock):
    key = create(redis, "team-r", "--id", "svc")
    r = chat(gw, key)
    assert r.status == 200, r
    assert mock.last()["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
    # the tenant's model list applies to Redis keys too
    r = chat(gw, key, model="other")
    assert r.status == 403, r
    assert r.json()["error"]["code"] == "model_not_allowed"
    # keys of the file are untouched, x-api-key works as well
    assert chat(gw, FILE_KEY).status == 200
    r = gw.chat({"model": "gpt-4o", "messages": [{"role": "user",
                                                  "content": "hi"}]},
                headers={"x-api-key": key})
    assert r.status == 200, r


def test_positive_and_negative_answers_are_cached(gw, redis):
    key = create(redis, "team-r", "--id", "cached")
    redis.cli("CONFIG", "RESETSTAT")
    for _ in range(6):
        assert chat(gw, key).status == 200
    assert hgetalls(redis) == 1

    unknown = "aigw-" + secrets.token_urlsafe(30)
    redis.cli("CONFIG", "RESETSTAT")
    for _ in range(6):
        r = chat(gw, unknown)
        assert r.status == 401, r
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert hgetalls(redis) == 1
    # another unknown key is another question
    assert chat(gw, unknown + "x").status == 401
    assert hgetalls(redis) == 2


def test_concurrent_requests_share_one_lookup(gw, redis):
    key = create(redis, "team-r", "--id", "burst")
    redis.cli("CONFIG", "RESETSTAT")
    out = []
    lock = threading.Lock()

    def one():
        s = chat(gw, key).status
        with lock:
            out.append(s)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [200] * 20
    assert hgetalls(redis) == 1


def test_cache_is_bounded(mock, redis):
    # keys_cache=3: a flood of random keys pushes the least recently used
    # answers out, it never grows the table
    g = gateway(mock, redis, "keys_cache=3")
    rnd = lambda: "aigw-" + secrets.token_urlsafe(30)
    try:
        key = create(redis, "team-r", "--id", "lru")
        redis.cli("CONFIG", "RESETSTAT")
        assert chat(g, key).status == 200
        assert chat(g, key).status == 200
        assert hgetalls(redis) == 1
        assert chat(g, rnd()).status == 401
        assert chat(g, rnd()).status == 401          # full: key, r1, r2
        assert chat(g, key).status == 200            # used again
        assert chat(g, rnd()).status == 401          # r1 goes, not key
        assert hgetalls(redis) == 4
        assert chat(g, key).status == 200
        assert hgetalls(redis) == 4
        for _ in range(50):
            assert chat(g, rnd()).status == 401
        assert hgetalls(redis) == 54
        assert chat(g, key).status == 200            # pushed out: asked
        assert hgetalls(redis) == 55
        assert chat(g, key).status == 200
        assert hgetalls(redis) == 55
    finally:
        g.stop()


def test_revoked_key_refused_within_ttl(gw, redis):
    key = create(redis, "team-r", "--id", "leaked")
    assert chat(gw, key).status == 200
    revoke(redis, "team-r", "leaked")
    time.sleep(TTL + 0.5)
    r = chat(gw, key)
    assert r.status == 401, r
    assert r.json()["error"]["message"] == "This API key has been revoked."
    assert 'key "leaked" of tenant "team-r"' in gw.logs()
    assert "refused: revoked" in gw.logs()


def test_expired_key(gw, redis):
    key = "aigw-" + secrets.token_urlsafe(30)
    hset(redis, key, tenant="team-r", id="old", created=1, expires=2,
         revoked=0)
    r = chat(gw, key)
    assert r.status == 401, r
    assert r.json()["error"]["message"] == "This API key has expired."

    # expiry is checked at every use, not only when Redis is asked
    key = "aigw-" + secrets.token_urlsafe(30)
    hset(redis, key, tenant="team-r", id="soon", created=1,
         expires=int(time.time()) + 2, revoked=0)
    assert chat(gw, key).status == 200
    time.sleep(2.2)
    assert chat(gw, key).status == 401


def test_key_of_a_tenant_missing_from_the_file(gw, redis):
    key = "aigw-" + secrets.token_urlsafe(30)
    hset(redis, key, tenant="team-gone", id="orphan", created=1, expires=0,
         revoked=0)
    r = chat(gw, key)
    assert r.status == 401, r
    assert ('key "orphan" (sha256 %s) names tenant "team-gone", which is '
            'not in the tenants file: refused' % sha(key)[:12]) in gw.logs()


def test_malformed_entries_are_refused(gw, redis):
    bad = [dict(tenant="team-r", id="x", created=1, expires=0),   # no revoked
           dict(tenant="team-r", id="bad id", created=1, expires=0,
                revoked=0),
           dict(tenant="team-r", id="y", created=1, expires=0, revoked=0,
                limits='{"requests_per_minute": -1}'),
           dict(tenant="team-f", id="file", created=1, expires=0, revoked=0),
           dict(tenant="team-r", id="z", created="soon", expires=0,
                revoked=0)]
    for fields in bad:
        key = "aigw-" + secrets.token_urlsafe(30)
        hset(redis, key, **fields)
        r = chat(gw, key)
        assert r.status == 401, (fields, r)
    logs = gw.logs()
    assert "revoked: missing, or not 0 or 1: refused" in logs
    assert "id: not 1-64 of" in logs
    assert "limits.requests_per_minute: must not be negative" in logs
    assert "a key of the tenants file has that id" in logs
    assert "created: not a Unix time" in logs
    # a key stored as another type is a store error, not a crash
    key = "aigw-" + secrets.token_urlsafe(30)
    redis.cli("SET", "%s:key:%s" % (PREFIX, sha(key)), "x")
    assert chat(gw, key).status == 503


def test_key_limits_from_the_hash(gw, redis):
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    key = create(redis, "team-r", "--id", "two-rpm", "--rpm", "2")
    assert [chat(gw, key).status for _ in range(3)] == [200, 200, 429]
    r = chat(gw, key)
    assert "k:team-r:two-rpm" in r.json()["error"]["message"]
    # the tenant's limits bind its Redis keys too
    key = create(redis, "team-small", "--id", "any")
    assert [chat(gw, key).status for _ in range(4)] == [200, 200, 200, 429]


def test_the_key_never_reaches_redis_or_the_logs(gw, redis):
    key = create(redis, "team-r", "--id", "secret")
    mon = subprocess.Popen(["redis-cli", "-p", str(redis.port), "MONITOR"],
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert chat(gw, key).status == 200
        assert chat(gw, key + "-wrong").status == 401
        time.sleep(0.3)
    finally:
        mon.terminate()
    seen = mon.communicate(timeout=10)[0]
    assert '"HGETALL" "%s:key:%s"' % (PREFIX, sha(key)) in seen
    assert key not in seen
    assert key not in gw.logs()


def test_store_down_and_slow(mock):
    r = Redis()
    g = gateway(mock, r)
    try:
        key = create(r, "team-r", "--id", "k")
        assert chat(g, key).status == 200

        # a store that does not answer: the command times out, 503
        r.cli("CLIENT", "PAUSE", "3000", "ALL")
        t = time.time()
        res = chat(g, "aigw-" + secrets.token_urlsafe(30))
        assert time.time() - t < 2.5
        assert res.status == 503, res
        assert res.json()["error"]["code"] == "key_store_unavailable"
        time.sleep(3)

        r.kill()
        t = time.time()
        res = chat(g, "aigw-" + secrets.token_urlsafe(30))
        assert time.time() - t < 2.5
        assert res.status == 503, res
        assert res.json()["error"]["code"] == "key_store_unavailable"
        # keys of the file do not need Redis
        assert chat(g, FILE_KEY).status == 200

        r.start()                    # empty: it keeps nothing on disk
        key = create(r, "team-r", "--id", "k")
        for _ in range(100):
            if chat(g, key).status == 200:
                break
            time.sleep(0.1)
        assert chat(g, key).status == 200
        assert "the key store is unavailable" in g.logs()
    finally:
        g.stop()
        r.stop()


def test_configuration_errors(mock):
    for params, msg in [("keys_ttl=1s", "keys_* parameters need keys="),
                        ("keys=http://x", 'must start with "redis://"'),
                        ("keys=redis://127.0.0.1 keys_ttl=soon",
                         'invalid parameter "keys_ttl=soon"'),
                        ("keys=redis://127.0.0.1 keys_cache=0",
                         'invalid parameter "keys_cache=0"'),
                        ("keys=redis://127.0.0.1 cache=1",
                         'invalid parameter "cache=1"')]:
        g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1;
    ai_model gpt-4o mock:gpt-4o-mock;
    ai_tenants %s %s;
""" % (mock.port, tenants_file(), params), "location /v1/ { ai_gateway; }")
        try:
            p = g.test_config()
            assert p.returncode != 0
            assert msg in p.stderr, p.stderr
        finally:
            g.stop_dir()
