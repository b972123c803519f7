"""The module under valgrind (memcheck): no definite leak and no memory
error in our code, across a reload.  Slow, so it runs only when asked:

    AIGW_VALGRIND=1 /usr/bin/python3 -m pytest -q tests/fuzz/test_valgrind.py

nginx runs in master mode (a reload needs a master: with master_process
off, SIGHUP is not handled), daemon off, one worker, under
`valgrind --trace-children=yes` with one log per process.  Requests of
each kind go through: chat, stream, Anthropic and Gemini translation
(whole and streamed), the Anthropic-compatible /v1/messages, cache hits,
the in-process engine on stories260K (when ../shared/models has it),
and errors (invalid JSON, unknown model, upstream 429/500, a stream that
breaks).  Then the configuration is reloaded (a new worker, the old one
exits), more requests, and nginx quits.  Every process's report is read:
a "definitely lost" record or a memory error whose stack holds one of our
frames (ngx_http_ai_*, ai_*, aigw_*, aie_*) fails the test; records only
in nginx's or the libraries' own frames (nginx does not free its cycle
at exit by design) are listed but allowed.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from conftest import (NGINX, PROVIDER_KEY, Gateway, mock,  # noqa: E402,F401
                      wait_port)

pytestmark = pytest.mark.skipif(
    os.environ.get("AIGW_VALGRIND") != "1" or shutil.which("valgrind") is None,
    reason="set AIGW_VALGRIND=1 (and install valgrind) to run")

MODELS = os.environ.get("AIGW_MODELS_DIR",
                        os.path.join(HERE, "..", "..", "..", "shared",
                                     "models"))
MODEL = os.path.join(MODELS, "stories260K.gguf")
HAVE_MODEL = os.path.exists(MODEL)
ENGINE_CONF = """
    ai_provider local engine model=%s threads=1 max_batch=4 ctx=256;
    ai_model tiny local;
""" % MODEL

OURS = re.compile(r"\b(ngx_http_ai_\w+|ai_\w+|aigw_\w+|aie_\w+)\b|"
                  r"ngx_http_ai_gateway_module\.so")


def http_conf(mock_port, cache_ttl="10m"):
    return """
    ai_provider mock url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY
                read_timeout=5s;
    ai_provider anthropic url=http://127.0.0.1:%(m)d/v1 format=anthropic
                key_env=AIGW_TEST_KEY max_tokens=1000;
    ai_provider gemini url=http://127.0.0.1:%(m)d/v1beta format=gemini
                key_env=AIGW_TEST_KEY;
    ai_model gpt-4o   mock:gpt-4o-mock;
    ai_model tools    mock:gpt-4o-tools;
    ai_model err429   mock:gpt-4o-error-429;
    ai_model err500   mock:gpt-4o-error-500;
    ai_model reset    mock:gpt-4o-reset;
    ai_model embed    mock:text-embedding-3-small;
    ai_model claude   anthropic:claude-sonnet-4;
    ai_model claude-broken anthropic:claude-stream-error;
    ai_model gemini   gemini:gemini-2.0-flash;
    ai_cache zone=aigw_vg_cache:1m ttl=%(ttl)s;
%(engine)s
""" % dict(m=mock_port, ttl=cache_ttl, engine=ENGINE_CONF if HAVE_MODEL
           else "")


class ValgrindGateway(Gateway):
    """Gateway (tests/integration/conftest.py) started under valgrind."""

    def start(self):
        self.vg_dir = os.path.join(self.dir, "vg")
        os.makedirs(self.vg_dir)
        os.chmod(self.vg_dir, 0o777)   # workers run as nobody
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=memcheck", "--trace-children=yes",
             "--leak-check=full", "--show-leak-kinds=definite",
             "--errors-for-leak-kinds=definite", "--num-callers=40",
             "--log-file=%s/vg.%%p.log" % self.vg_dir,
             NGINX, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
            env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        wait_port(self.port, timeout=120)
        return self

    def quit(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(180)

    def reports(self):
        out = {}
        for p in sorted(glob.glob(os.path.join(self.vg_dir, "vg.*.log"))):
            with open(p, errors="replace") as f:
                out[p] = f.read()
        return out


def traffic(g, round_):
    """Requests of each kind; returns the statuses seen."""
    seen = []

    def chat(model, stream=False, **kw):
        b = {"model": model, "stream": stream,
             "messages": [{"role": "user", "content": "hi %d" % round_}]}
        b.update(kw)
        r = g.request("POST", "/v1/chat/completions", b, timeout=60)
        seen.append((model, stream, r.status))
        return r

    assert chat("gpt-4o").status == 200
    assert chat("gpt-4o", stream=True,
                stream_options={"include_usage": True}).status == 200
    assert chat("tools").status == 200
    assert chat("gpt-4o", temperature=0).status == 200       # miss, stored
    assert chat("gpt-4o", temperature=0).status == 200       # hit
    assert chat("gpt-4o", stream=True, temperature=0).status == 200
    assert chat("claude").status == 200
    assert chat("claude", stream=True).status == 200
    chat("claude-broken", stream=True)
    assert chat("gemini").status == 200
    assert chat("gemini", stream=True).status == 200
    assert chat("err429").status == 429
    assert chat("err500").status in (500, 502)
    chat("reset")
    assert chat("no-such-model").status == 404
    r = g.request("POST", "/v1/chat/completions", b'{"model": "gpt-4o",',
                  timeout=60)
    assert r.status == 400
    r = g.request("POST", "/v1/embeddings",
                  {"model": "embed", "input": ["a", "b"]}, timeout=60)
    assert r.status == 200
    r = g.request("POST", "/v1/messages",
                  {"model": "claude", "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]},
                  timeout=60)
    assert r.status == 200, r
    r = g.request("POST", "/v1/messages",
                  {"model": "gpt-4o", "max_tokens": 10, "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]},
                  timeout=60)
    assert r.status == 200, r
    if HAVE_MODEL:
        assert chat("tiny", max_tokens=8).status == 200
        assert chat("tiny", stream=True, max_tokens=8).status == 200
    r = g.request("GET", "/v1/models", timeout=60)
    assert r.status == 200
    return seen


def records(text):
    """The loss records and errors of one valgrind log, as text blocks."""
    blocks, cur = [], []
    for line in text.splitlines():
        line = re.sub(r"^==\d+== ?", "", line)
        if not line.strip():
            if cur:
                blocks.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append("\n".join(cur))
    return [b for b in blocks
            if "definitely lost in loss record" in b
            or b.startswith(("Invalid ", "Conditional jump",
                             "Use of uninitialised", "Syscall param",
                             "Mismatched free", "Source and destination"))]


def test_no_definite_leaks_across_reload(mock):
    g = ValgrindGateway(http_conf(mock.port), "location /v1/ { ai_gateway; }",
                        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=1,
                        main_conf="master_process on;")
    try:
        g.start()
        traffic(g, 1)

        # reload: a new configuration (another ttl), a new worker
        with open(g.conf) as f:
            conf = f.read()
        with open(g.conf, "w") as f:
            f.write(conf.replace("ttl=10m", "ttl=5m"))
        g.reload()
        deadline = time.time() + 120
        while time.time() < deadline:
            with open(g.error_log, errors="replace") as f:
                if "gracefully shutting down" in f.read():
                    break
            time.sleep(0.5)
        time.sleep(2)
        traffic(g, 2)
        g.quit()

        reports = g.reports()
        assert len(reports) >= 3, "expected master + 2 workers: %s" % (
            list(reports),)

        ours, theirs = [], []
        for path, text in reports.items():
            assert "ERROR SUMMARY" in text, "%s did not finish" % path
            for b in records(text):
                (ours if OURS.search(b) else theirs).append(
                    "%s:\n%s" % (os.path.basename(path), b))

        summary = "\n".join(
            "%s: %s" % (os.path.basename(p), m.group(0))
            for p, t in reports.items()
            for m in re.finditer(r"definitely lost: [\d,]+ bytes in [\d,]+ "
                                 r"blocks", t))
        print("valgrind summaries:\n" + summary)
        if theirs:
            print("allowed (nginx's or libraries' own frames only):\n" +
                  "\n\n".join(theirs))

        assert not ours, ("valgrind reports in our code:\n\n" +
                          "\n\n".join(ours))[:20000]
    finally:
        if g.proc and g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait()
        g.stop()
