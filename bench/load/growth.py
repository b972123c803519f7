#!/usr/bin/env python3
"""Growth across repetitions per fault kind (issue 11): ``make test-growth``.

Starts aigw (the built module in the stock nginx, 2 workers, through the
integration fixtures' Gateway class) in front of the epoll mock provider
(build/load/stream_mock, whose model-name keywords inject the provider
faults), then for every fault kind: a warm-up of GROWTH_WARMUP repetitions,
a sample of the workers (RSS and open descriptors summed over the workers,
from /proc), GROWTH_REPS repetitions over GROWTH_PARALLEL parallel
connections, a 1 s pause, a second sample.  Every answer is checked (status,
and for the streams what reached the client).  Fails when a worker's
descriptors or RSS grew beyond the tolerance, an answer was unexpected, or
the error log shows a crash ("exited on signal", "[alert]").

The provider's keepalive pool is 4 per worker, so that the warm-up fills it
and the idle upstream connections it holds cannot pass for growth.

Environment: GROWTH_REPS (10000), GROWTH_WARMUP (1000), GROWTH_PARALLEL (32),
GROWTH_KINDS (comma list; all; "body never sent" runs 8x as many at once), GROWTH_RSS_KB (tolerated RSS growth per
kind, summed over the workers: 1024), GROWTH_FDS (tolerated descriptor
growth: 8).
"""

import concurrent.futures
import hashlib
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from conftest import Gateway, make_workdir  # noqa: E402

REPS = int(os.environ.get("GROWTH_REPS", "10000"))
WARMUP = int(os.environ.get("GROWTH_WARMUP", "1000"))
PARALLEL = int(os.environ.get("GROWTH_PARALLEL", "32"))
RSS_TOL = int(os.environ.get("GROWTH_RSS_KB", "1024"))
FDS_TOL = int(os.environ.get("GROWTH_FDS", "8"))
KEY = "aigw-growth-key-000000000000000000000001"
PROVIDER_KEY = "sk-growth-provider-0123456789"


def body(model, stream=False, extra=""):
    return ('{"model":"%s","messages":[{"role":"user","content":"hi"}]%s%s}'
            % (model, ',"stream":true' if stream else "", extra)).encode()


def http(b, key=KEY, length=None, ctype=b"application/json"):
    h = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
         b"Connection: close\r\nContent-Type: " + ctype + b"\r\n")
    if key:
        h += b"Authorization: Bearer " + key.encode() + b"\r\n"
    h += b"Content-Length: %d\r\n\r\n" % (len(b) if length is None
                                          else length)
    return h + b


DEEP = (b'{"model":"gpt-4o","messages":' + b"[" * 20000 + b"]" * 20000
        + b"}")

# kind: (request bytes, how to read, check(status, data) -> bool, what)
KINDS = {
    "provider reset before headers":
        (http(body("reset")), "all", lambda s, d: s == 502, "502"),
    "provider reset mid-headers":
        (http(body("resethdr")), "all", lambda s, d: s == 502, "502"),
    "provider reset mid-stream":
        (http(body("resetmid", True)), "all",
         lambda s, d: s == 200 and b"[DONE]" not in d,
         "200, stream cut, no [DONE]"),
    "client abort mid-stream":
        (http(body("slowstream", True)), "abort",
         lambda s, d: s == 200, "200, client closes after 1st event"),
    "body never sent (timeout)":
        (http(b'{"mo', length=100), "all",
         lambda s, d: s in (0, 408), "408 or close"),
    "oversized body":
        (http(b"x" * 1024, length=1048576), "all",
         lambda s, d: s == 413, "413"),
    "invalid JSON":
        (http(b'{"model":"gpt-4o","messages":'), "all",
         lambda s, d: s == 400, "400"),
    "invalid UTF-8":
        (http(b'{"model":"gpt-4o","messages":[{"role":"user",'
              b'"content":"\xff\xfe\xc3"}]}'), "all",
         lambda s, d: s == 400, "400"),
    "deep nesting":
        (http(DEEP), "all", lambda s, d: s == 400, "400"),
    "provider 429":
        (http(body("ratelimited")), "all", lambda s, d: s == 429, "429"),
    "unknown key 401":
        (http(body("gpt-4o"), key="sk-nobody-knows-this-key"), "all",
         lambda s, d: s == 401, "401"),
}


ABORTS = itertools.count()


def complete(data):
    """A whole response (Content-Length or the last chunk) is in data."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[:end].lower()
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        n = int(head[i + 17:].split(b"\r\n", 1)[0])
        return len(data) >= end + 4 + n
    return data.endswith(b"\r\n0\r\n\r\n")


def one(port, req, how):
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        try:
            s.sendall(req)
        except OSError:
            pass                   # the gateway answered before all of it
        data = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            data += d
            if how == "all" and complete(data):
                break              # no wait for NGINX's lingering close
            if how == "abort" and b"data: " in data \
                    and b"\n\n" in data[data.index(b"data: "):]:
                # gone after the first event: half of them with an RST
                if next(ABORTS) & 1:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                break
    finally:
        s.close()
    status = 0
    if data.startswith(b"HTTP/1.1 "):
        status = int(data[9:12])
    return status, data


def run_kind(pools, port, kind, n):
    req, how, check, _ = KINDS[kind]
    # the timeouts wait: many more of them at once
    pool = pools[1] if kind.startswith("body never sent") else pools[0]
    bad = {}
    futs = [pool.submit(one, port, req, how) for _ in range(n)]
    for f in futs:
        try:
            st, d = f.result()
        except OSError as e:
            st, d = "error %s" % type(e).__name__, b""
        if isinstance(st, str) or not check(st, d):
            bad[st] = bad.get(st, 0) + 1
    return bad


def sample(gw):
    with open("/proc/%d/task/%d/children" % (gw.proc.pid, gw.proc.pid)) as f:
        kids = [int(p) for p in f.read().split()]
    rss = fds = 0
    for k in kids:
        with open("/proc/%d/status" % k) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        fds += len(os.listdir("/proc/%d/fd" % k))
    return rss, fds, kids


def main():
    mock_bin = os.path.join(ROOT, "build", "load", "stream_mock")
    if not os.access(mock_bin, os.X_OK):
        print("growth: %s is missing (make test-growth builds it)" % mock_bin)
        return 2
    mock = subprocess.Popen([mock_bin, "-w", "1"], stdout=subprocess.PIPE,
                            text=True)
    line = mock.stdout.readline()
    if not line.startswith("READY"):
        print("growth: the mock did not start")
        return 2
    mport = int(line.split()[1])
    d = make_workdir("aigw-growth-")
    tf = os.path.join(d, "tenants.json")
    with open(tf, "w") as f:
        json.dump({"tenants": {"t": {"keys": [
            {"id": "k", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}
        ]}}}, f)
    gw = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_GROWTH_KEY
                read_timeout=5s keepalive=4;
    ai_model gpt-4o     mock:gpt-4o-chunks3-interval1;
    ai_model reset      mock:x-reset;
    ai_model resethdr   mock:x-reset-headers;
    ai_model resetmid   mock:x-reset-mid-chunks5-interval5;
    ai_model ratelimited mock:x-error-429;
    ai_model slowstream mock:x-chunks20-interval50;
    ai_tenants %s;
""" % (mport, tf), """
        client_max_body_size 64k;
        client_body_timeout 300ms;
        location /v1/ { ai_gateway; }
""", env={"AIGW_GROWTH_KEY": PROVIDER_KEY}, workers=2,
        main_conf="worker_rlimit_nofile 8192;")
    kinds = [k.strip() for k in os.environ.get("GROWTH_KINDS", "").split(",")
             if k.strip()] or list(KINDS)
    rows = []
    failed = False
    try:
        gw.start()
        pids0 = sample(gw)[2]
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as p0, \
                concurrent.futures.ThreadPoolExecutor(8 * PARALLEL) as p1:
            pool = (p0, p1)
            # the first warm-up of everything, so that no kind pays for
            # pools another kind would have filled
            for k in kinds:
                run_kind(pool, gw.port, k, WARMUP)
            for k in kinds:
                run_kind(pool, gw.port, k, WARMUP)
                time.sleep(1)
                r0, f0, _ = sample(gw)
                t = time.time()
                bad = run_kind(pool, gw.port, k, REPS)
                secs = time.time() - t
                time.sleep(1)
                r1, f1, pids = sample(gw)
                ok = (not bad and f1 - f0 <= FDS_TOL
                      and r1 - r0 <= RSS_TOL and pids == pids0)
                failed = failed or not ok
                rows.append((k, KINDS[k][3], REPS, REPS - sum(bad.values()),
                             bad, secs, r0, r1, f0, f1, ok))
                print("%-32s %6d reps %5.1f s  RSS %d -> %d KB (%+d)  "
                      "fds %d -> %d  %s%s" % (
                          k, REPS, secs, r0, r1, r1 - r0, f0, f1,
                          "ok" if ok else "GROWTH/UNEXPECTED",
                          "" if not bad else "  unexpected: %s" % bad),
                      flush=True)
    finally:
        crashed = []
        if os.path.exists(gw.error_log):
            with open(gw.error_log, errors="replace") as f:
                crashed = [l.strip() for l in f
                           if "exited on signal" in l or "[alert]" in l]
        gw.proc.send_signal(15) if gw.proc and gw.proc.poll() is None \
            else None
        try:
            gw.proc.wait(10)
        except Exception:
            gw.proc.kill()
        gw.stop_dir()
        mock.terminate()
        mock.wait(10)
        import shutil
        shutil.rmtree(d, ignore_errors=True)

    print()
    print("| fault | expected | reps | as expected | s | worker RSS before "
          "→ after (KB) | Δ RSS | worker fds before → after |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (k, exp, n, good, bad, secs, r0, r1, f0, f1, ok) in rows:
        print("| %s | %s | %d | %d | %.1f | %d → %d | %+d | %d → %d |"
              % (k, exp, n, good, secs, r0, r1, r1 - r0, f0, f1))
    print()
    print("workers: %s at the start, crashes in the error log: %s"
          % (len(pids0) if rows else "?", crashed or "none"))
    if crashed:
        failed = True
    print("growth: %s" % ("FAIL" if failed else "PASS (tolerance: %d KB RSS,"
                          " %d descriptors per kind, summed over the workers)"
                          % (RSS_TOL, FDS_TOL)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
