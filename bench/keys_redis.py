"""Cost of the Redis key store per request: a key of the tenants file, a
key of the Redis key store answered from the worker's cache, and the same
key with keys_ttl=0 (one HGETALL per request).  One worker, a local
redis-server, the mock provider, one keep-alive client sending requests
one after another; rounds interleaved, the median of each round printed.

    /usr/bin/python3 bench/keys_redis.py [rounds] [requests]
"""

import http.client
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from conftest import PROVIDER_KEY, Gateway, Mock, Redis  # noqa: E402
import test_keys_redis as t                                # noqa: E402

BODY = json.dumps({"model": "gpt-4o", "max_tokens": 5,
                   "messages": [{"role": "user", "content": "hi"}]})


def gateway(mock, redis, ttl):
    return Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o mock:gpt-4o-mock;
    ai_tenants %s keys=redis://127.0.0.1:%d keys_prefix=%s keys_ttl=%s;
""" % (mock.port, t.tenants_file(), redis.port, t.PREFIX, ttl),
        "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=1).start()


def run(g, key, n):
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        c.request("POST", "/v1/chat/completions", BODY,
                  {"Content-Type": "application/json",
                   "Authorization": "Bearer " + key})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        ts.append(time.perf_counter() - t0)
    c.close()
    return statistics.median(ts) * 1e6


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    mock, redis = Mock(), Redis()
    cached, uncached = gateway(mock, redis, "10s"), gateway(mock, redis, "0")
    try:
        key = t.create(redis, "team-f", "--id", "bench")   # no limits
        res = {"file key": [], "redis key, cached": [],
               "redis key, keys_ttl=0": []}
        for _ in range(rounds):
            res["file key"].append(run(cached, t.FILE_KEY, n))
            res["redis key, cached"].append(run(cached, key, n))
            res["redis key, keys_ttl=0"].append(run(uncached, key, n))
        for name, v in res.items():
            print("%-22s median %4.0f us  min %4.0f  max %4.0f  (%d rounds "
                  "of %d)" % (name, statistics.median(v), min(v), max(v),
                              rounds, n))
    finally:
        cached.stop()
        uncached.stop()
        redis.stop()
        mock.stop()


if __name__ == "__main__":
    main()
