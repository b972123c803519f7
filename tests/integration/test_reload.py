"""nginx -s reload with changed models: in-flight streams finish on the old
configuration, new requests see the new one, shared state survives."""

import json
import threading
import time

from conftest import PROVIDER_KEY, Gateway


def test_reload_under_a_running_stream(mock):
    http = """
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model slow mock:gpt-4o-slow-chunks10;
    ai_model det  mock:gpt-4o-mock;
    ai_cache zone=aigw_cache:1m;
""" % mock.port
    g = Gateway(http, "location /v1/ { ai_gateway; }",
                env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=2).start()
    try:
        body = {"model": "det", "temperature": 0,
                "messages": [{"role": "user", "content": "survive"}]}
        assert g.chat(body).headers["x-aigw-cache"] == "MISS"

        result = {}

        def stream():
            result["r"] = g.chat({"model": "slow", "stream": True,
                                  "messages": [{"role": "user",
                                                "content": "long one"}]},
                                 timeout=30)

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.5)

        with open(g.conf) as f:
            conf = f.read()
        conf = conf.replace("ai_model det ", "ai_model added mock:added;\n"
                            "    ai_model det ")
        with open(g.conf, "w") as f:
            f.write(conf)
        g.reload()

        deadline = time.time() + 10
        while time.time() < deadline:
            r = g.chat({"model": "added", "messages": [
                {"role": "user", "content": "x"}]})
            if r.status == 200:
                break
            time.sleep(0.1)
        assert r.status == 200
        assert mock.last()["body"]["model"] == "added"

        t.join(30)
        r = result["r"]
        assert r.status == 200
        ev = r.events()
        assert ev[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content")
                       or "" for e in ev[:-1])
        assert text == "Hello from mock! You said: long one"

        # the cache zone survived the reload
        assert g.chat(body).headers["x-aigw-cache"] == "HIT"
    finally:
        g.stop()
