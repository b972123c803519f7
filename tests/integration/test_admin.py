"""The admin API behind its own key (issue 9)."""

import hashlib
import json
import os

from conftest import PROVIDER_KEY, Gateway, make_workdir

ADMIN = "aigw-admin-key-0123456789abcdef"
KEY = "aigw-admin-test-tenant-key-0000000000001"


def test_admin_api(mock):
    d = make_workdir("aigw-admin-")
    tf = os.path.join(d, "tenants.json")
    with open(tf, "w") as f:
        json.dump({"tenants": {"team": {
            "limits": {"requests_per_minute": 50},
            "keys": [{"id": "k1", "sha256":
                      hashlib.sha256(KEY.encode()).hexdigest()}]}}}, f)
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model m mock:gpt-error-500 mock:gpt-ok breaker=1/10s
             strategy=round_robin;
    ai_tenants %s;
    ai_limits zone=aigw_limits:1m;
    ai_admin_key_env AIGW_ADMIN_KEY;
    ai_metrics_zone zone=aigw_metrics:1m;
""" % (mock.port, tf), """
        location /v1/ { ai_gateway; }
        location /admin/ { ai_admin; }
        location = /metrics { ai_metrics; }
""", env={"AIGW_TEST_KEY": PROVIDER_KEY, "AIGW_ADMIN_KEY": ADMIN}).start()
    try:
        auth = {"Authorization": "Bearer " + KEY}
        for _ in range(3):
            assert g.chat({"model": "m", "messages": [
                {"role": "user", "content": "x"}]}, headers=auth).status == 200

        assert g.request("GET", "/admin/tenants").status == 401
        bad = {"Authorization": "Bearer " + KEY}
        assert g.request("GET", "/admin/tenants", headers=bad).status == 401

        h = {"Authorization": "Bearer " + ADMIN}
        t = g.request("GET", "/admin/tenants", headers=h).json()
        assert t["data"][0]["tenant"] == "team"
        k = t["data"][0]["keys"][0]
        assert k["id"] == "k1" and len(k["sha256_prefix"]) == 12
        assert KEY not in json.dumps(t)

        u = g.request("GET", "/admin/usage", headers=h).json()
        usage = u["data"][0]["usage"]
        # 3 unless the minute turned between the requests and now
        assert usage["requests_this_minute"] in (3, 0) or \
            0 < usage["requests_this_minute"] <= 3
        assert usage["tokens_today"] > 0

        b = g.request("GET", "/admin/breakers", headers=h).json()["data"]
        states = {x["upstream_model"]: x["state"] for x in b}
        assert states["gpt-error-500"] in ("open", "half_open")
        assert states["gpt-ok"] == "closed"
        assert ADMIN not in g.logs()

        m = g.request("GET", "/metrics").data.decode()
        assert "# TYPE aigw_target_breaker_open gauge" in m
        assert ('aigw_target_breaker_open{model="m",provider="mock",'
                'upstream_model="gpt-error-500",target="0"} 1') in m
        assert ('aigw_target_requests_total{model="m",provider="mock",'
                'upstream_model="gpt-ok",target="1"}') in m
    finally:
        g.stop()
