"""A smoke run of the load-proof tools (issue 11, bench/load/): the epoll
mock provider and the libcurl stream client, 50 streams through aigw.  The
full load is `make bench-load`, never part of `make test`."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, Gateway

BIN = os.path.join(ROOT, "build", "load")


@pytest.fixture(scope="module")
def stream_mock():
    exe = os.path.join(BIN, "stream_mock")
    if not os.access(exe, os.X_OK):
        pytest.skip("build/load/stream_mock is missing (make load-tools)")
    p = subprocess.Popen([exe, "-w", "1", "-k", "3", "-i", "20"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("READY"), line
    yield int(line.split()[1])
    p.terminate()
    p.wait(10)


def client(url, *args):
    r = subprocess.run([os.path.join(BIN, "stream_client"), "-u", url,
                        "-P", "1", "-a", "2"] + list(args),
                       capture_output=True, text=True, timeout=60)
    res = [json.loads(l[7:]) for l in r.stdout.splitlines()
           if l.startswith("RESULT ")]
    assert res, r.stdout + r.stderr
    return r.returncode, res[0], r.stdout


def test_every_chunk_of_every_stream_through_aigw(stream_mock):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model load mock:load-chunks4-interval20;
    ai_model cut  mock:load-reset-mid-chunks4-interval20;
""" % stream_mock, "        location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": "sk-load"}).start()
    try:
        url = "http://127.0.0.1:%d/v1/chat/completions" % g.port
        rc, res, out = client(url, "-n", "50", "-r", "500", "-k", "4",
                              "-m", "load")
        assert rc == 0, out
        assert res["ok"] == 50 and res["failed"] == 0, out
        assert res["chunks_received"] == res["chunks_expected"] == 200
        # a provider that resets mid-stream: the client sees every stream
        # fail and says so
        rc, res, out = client(url, "-n", "10", "-k", "4", "-m", "cut")
        assert rc == 1 and res["ok"] == 0 and res["failed"] == 10, out
        assert res["chunks_received"] < res["chunks_expected"]
    finally:
        g.stop()
