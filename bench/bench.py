#!/usr/bin/env python3
"""aigw overhead benchmark: aigw vs bare NGINX proxy_pass, same run.

Started by bench/run.sh (``make bench``); standard library only.

What it does, on 127.0.0.1 only, in a temporary directory:

* a mock provider: a second stock nginx answering
  ``POST /v1/chat/completions`` with a canned chat.completion (~600 B) and
  ``POST /stream/v1/chat/completions`` with a canned 20-chunk SSE stream
  (chunked, like OpenAI's), both via ``return 200`` so it costs ~nothing;
* bare NGINX: ``proxy_pass`` to the mock through an ``upstream {}`` with
  ``keepalive 32``, HTTP/1.1, provider key injected with proxy_set_header,
  proxy_buffering default (non-stream) / off (stream);
* aigw: the stock nginx with build/ngx_http_ai_gateway_module.so,
  ``location /v1/ { ai_gateway; }``, two providers (``/v1`` and
  ``/stream/v1``), keepalive pool 32 (module default);
* loads each target with wrk (same ~1 KB chat body, ``--latency``), after a
  warm-up, and samples the CPU time (utime+stime from /proc/<pid>/stat) of
  the target's master and worker processes before and after each run.

Environment knobs: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (50),
BENCH_THREADS (wrk threads; 1 pinned, 2 unpinned), BENCH_WARMUP (s, 2), BENCH_PIN (1: target
nginx on CPU 1, wrk + mock on CPU 0; 0: no pinning), BENCH_ROUNDS (1; with
more, every scenario/target is measured that many times, interleaved, and the
median-RPS run is reported), BENCH_RESULTS (path of the results file,
default bench/RESULTS.md; "-" to write none).
"""

import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODULE = os.path.join(ROOT, "build", "ngx_http_ai_gateway_module.so")
NGINX = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
TASKSET = shutil.which("taskset")

DURATION = int(float(os.environ.get("BENCH_DURATION", "10")))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
WARMUP = int(float(os.environ.get("BENCH_WARMUP", "2")))
PIN = os.environ.get("BENCH_PIN", "1") != "0"
# Pinned, wrk has one core: one thread (a second only adds context
# switches on that core).  Unpinned: two.
THREADS = int(os.environ.get("BENCH_THREADS", "1" if PIN else "2"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "1")))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(HERE, "RESULTS.md"))

CPU_TARGET = 1.25      # aigw CPU per request <= 1.25 x bare
RPS_TARGET = 0.80      # aigw RPS >= 80 % of bare

PROVIDER_KEY = "sk-bench-provider-0123456789abcdef"
KEY_ENV = "AIGW_BENCH_PROVIDER_KEY"

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

MARK_BEGIN = "<!-- bench:begin (written by bench/run.sh; edits inside are lost) -->"
MARK_END = "<!-- bench:end -->"


# --------------------------------------------------------------------------
# Canned payloads
# --------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are Aria, the customer-support assistant of Northwind Outdoor "
    "Supply. Answer in the customer's language, be concise and friendly, and "
    "never invent order numbers, prices or delivery dates. If the customer "
    "asks about an order, ask for the order number and the e-mail address "
    "used at checkout. Escalate to a human agent when the customer is angry, "
    "mentions a safety issue, or asks for a refund above 200 EUR. Do not "
    "discuss competitors. Format lists with hyphens and keep answers under "
    "150 words unless the customer explicitly asks for more detail.")

USER_PROMPT = (
    "Hi! I bought the Trailblazer 2 tent last month (order NW-558213, "
    "jane.doe@example.com) and on my second trip one of the aluminium poles "
    "cracked near the hub while I was pitching it in light wind. The tent is "
    "otherwise fine and I really like it. Can I get a replacement pole sent "
    "to me, or do I need to return the whole tent? I'm leaving for a week in "
    "the mountains on the 14th so timing matters. Also, is there a repair "
    "sleeve I could carry as a backup, and would it fit the 9.5 mm poles?")


def request_body(model, stream):
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
        "user": "bench-user-42",
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{
        "index": 0,
        "message": {
            "role": "assistant",
            "content": ("Sorry about the cracked pole, Jane! You do not need "
                        "to return the tent: we will ship a replacement pole "
                        "section for free and it should arrive before the "
                        "14th. A 9.5 mm repair sleeve fits your poles."),
            "refusal": None,
        },
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {
        "prompt_tokens": 231, "completion_tokens": 47, "total_tokens": 278,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0,
                                      "audio_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}

STREAM_WORDS = ["Sorry", " about", " the", " cracked", " pole", ",", " Jane",
                "!", " We", " will", " ship", " a", " replacement", " section",
                " for", " free", "."]


def completion_json():
    return json.dumps(COMPLETION, separators=(",", ":"))


def stream_sse():
    """20 chat.completion.chunk events (role, 17 content, finish, usage-less
    stop) followed by data: [DONE]."""
    base = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk", "created": 1741569952,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_06737a9306"}
    deltas = [({"role": "assistant", "content": "", "refusal": None}, None)]
    deltas += [({"content": w}, None) for w in STREAM_WORDS]
    deltas += [({"content": " Safe travels!"}, None), ({}, "stop")]
    assert len(deltas) == 20
    out = []
    for d, fin in deltas:
        c = dict(base)
        c["choices"] = [{"index": 0, "delta": d, "logprobs": None,
                         "finish_reason": fin}]
        out.append("data: " + json.dumps(c, separators=(",", ":")) + "\n\n")
    out.append("data: [DONE]\n\n")
    return "".join(out)


def nginx_quote(s):
    # nginx single-quoted string; our payloads hold neither ' nor $ nor \.
    assert "'" not in s and "$" not in s and "\\" not in s
    return "'" + s + "'"


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def pinned(cpu, argv):
    if PIN and TASKSET and NCPU >= 2:
        return [TASKSET, "-c", str(cpu)] + argv
    return argv


COMMON_MAIN = """
worker_processes 1;
error_log %(dir)s/error.log warn;
pid %(dir)s/nginx.pid;
events { worker_connections 4096; }
"""

COMMON_HTTP = """
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
"""


class Nginx:
    def __init__(self, name, cpu, http_conf, main_extra="", env=None):
        self.name = name
        self.cpu = cpu
        self.dir = tempfile.mkdtemp(prefix="aigw-bench-%s-" % name,
                                    dir=WORKDIR)
        os.chmod(self.dir, 0o755)          # workers run as nobody
        self.conf = os.path.join(self.dir, "nginx.conf")
        text = main_extra + COMMON_MAIN + "http {\n" + COMMON_HTTP + \
            http_conf + "}\n"
        with open(self.conf, "w") as f:
            f.write(text % {"dir": self.dir})
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None

    def start(self, port):
        argv = pinned(self.cpu, [NGINX, "-p", self.dir, "-c", self.conf,
                                 "-g", "daemon off;"])
        self.proc = subprocess.Popen(argv, env=self.env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir,
                                                 "stderr.log"), "w"))
        PROCS.append(self.proc)
        if not wait_port(port, self.proc):
            raise SystemExit("bench: %s nginx did not start:\n%s%s" % (
                self.name, self.read("stderr.log"), self.read("error.log")))
        return self

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pids(self):
        """Master and its children (the workers)."""
        master = self.proc.pid
        out = [master]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            if int(fields[1]) == master:
                out.append(int(d))
        return out

    def cpu_ticks(self):
        total = 0
        for pid in self.pids():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])   # utime + stime
            if pid == self.proc.pid:
                # cutime + cstime: workers that died (and were reaped)
                # during the run still count.
                total += int(fields[13]) + int(fields[14])
        return total

    def problems(self):
        """crit/alert/emerg lines and crashes in the error log."""
        bad = []
        for line in self.read("error.log").splitlines():
            if re.search(r"\[(crit|alert|emerg)\]|exited on signal", line):
                bad.append(line)
        return bad

    def errors(self):
        return [l for l in self.read("error.log").splitlines()
                if "[error]" in l]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------

def mock_conf(port):
    # nginx caps one configuration token at 4 KB: the ~5 KB SSE body is
    # split over a few map-constant variables (no per-request work beyond
    # concatenating them).
    sse = stream_sse()
    parts = [sse[i:i + 3000] for i in range(0, len(sse), 3000)]
    maps = "".join("    map $server_port $mock_sse%d { default %s; }\n"
                   % (i, nginx_quote(p)) for i, p in enumerate(parts))
    ret = "".join("$mock_sse%d" % i for i in range(len(parts)))
    return maps + """
    server {
        listen 127.0.0.1:%(port)d reuseport backlog=4096;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 %(json)s;
        }
        location = /stream/v1/chat/completions {
            # sub_filter drops Content-Length: the stream goes out chunked,
            # like a real provider's SSE.
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            sub_filter_types text/event-stream;
            sub_filter_once on;
            sub_filter '[DONE]' '[DONE]';
            return 200 "%(ret)s";
        }
    }
""" % {"port": port, "json": nginx_quote(completion_json()), "ret": ret}


def bare_conf(port_ns, port_st, mock_port):
    return """
    upstream mock_provider {
        server 127.0.0.1:%(mock)d;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:%(ns)d reuseport backlog=4096;
        location /v1/ {
            proxy_pass http://mock_provider;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer %(key)s";
        }
    }
    server {
        listen 127.0.0.1:%(st)d reuseport backlog=4096;
        location /v1/ {
            proxy_pass http://mock_provider/stream/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer %(key)s";
            proxy_buffering off;
        }
    }
""" % {"mock": mock_port, "ns": port_ns, "st": port_st, "key": PROVIDER_KEY}


def aigw_conf(port, mock_port):
    return """
    ai_provider mock       url=http://127.0.0.1:%(mock)d/v1 key_env=%(env)s;
    ai_provider mockstream url=http://127.0.0.1:%(mock)d/stream/v1 key_env=%(env)s;
    ai_model gpt-4o        mock:gpt-4o-mini;
    ai_model gpt-4o-stream mockstream:gpt-4o-mini;
    server {
        listen 127.0.0.1:%(port)d reuseport backlog=4096;
        location /v1/ { ai_gateway; }
    }
""" % {"mock": mock_port, "port": port, "env": KEY_ENV}


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"bytes\\":%%d," ..
    "\\"connect\\":%%d,\\"read\\":%%d,\\"write\\":%%d,\\"status\\":%%d," ..
    "\\"timeout\\":%%d,\\"p50\\":%%d,\\"p90\\":%%d,\\"p99\\":%%d," ..
    "\\"mean\\":%%f,\\"max\\":%%d}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def wrk_script(body):
    path = os.path.join(WORKDIR, "req-%d.lua" % abs(hash(body)))
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(WRK_LUA % body)
    return path


def run_wrk(url, script, duration, capture=True):
    argv = pinned(0, [WRK, "-t", str(THREADS), "-c", str(CONNECTIONS),
                      "-d", "%ds" % duration, "--latency",
                      "--timeout", "10s", "-s", script, url])
    p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    PROCS.append(p)
    out, _ = p.communicate()
    PROCS.remove(p)
    if p.returncode != 0:
        raise SystemExit("bench: wrk failed (%d):\n%s" % (p.returncode, out))
    m = re.search(r"^BENCHJSON (.*)$", out, re.M)
    if not m:
        raise SystemExit("bench: no summary from wrk:\n" + out)
    r = json.loads(m.group(1))
    r["raw"] = out
    return r


def measure(target, url, body):
    script = wrk_script(body)
    if WARMUP > 0:
        run_wrk(url, script, WARMUP)
    pids0 = sorted(target.pids())
    t0 = target.cpu_ticks()
    w0 = time.time()
    r = run_wrk(url, script, DURATION)
    wall = time.time() - w0
    t1 = target.cpu_ticks()
    r["respawned"] = sorted(target.pids()) != pids0
    cpu_us = (t1 - t0) * 1e6 / CLK_TCK
    n = r["requests"]
    r["rps"] = n / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["cpu_us_req"] = cpu_us / n if n else float("nan")
    r["cpu_util"] = cpu_us / 1e6 / wall
    r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status",
                                     "timeout"))
    return r


def check_once(port, path, body, stream):
    """One request before the load: 200 and a plausible body."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path + "chat/completions", body=body,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        return "status %d: %r" % (r.status, data[:300])
    text = data.decode(errors="replace")
    if stream:
        n = text.count("chat.completion.chunk")
        if n != 20 or "data: [DONE]" not in text:
            return "stream has %d chunks, [DONE]=%s: %r" % (
                n, "data: [DONE]" in text, text[:300])
    else:
        try:
            j = json.loads(text)
        except ValueError:
            return "not JSON: %r" % text[:300]
        if j.get("object") != "chat.completion":
            return "unexpected body: %r" % text[:300]
    return None


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    v = subprocess.run([NGINX, "-v"], capture_output=True, text=True)
    nginx_v = (v.stderr or v.stdout).strip().replace("nginx version: ", "")
    wrk_v = subprocess.run([WRK, "-v"], capture_output=True, text=True)
    wrk_v = (wrk_v.stdout or wrk_v.stderr).split("\n")[0].split(" [")[0]
    return {"cpu": model, "cores": NCPU, "kernel": platform.release(),
            "nginx": nginx_v, "wrk": wrk_v, "load0": loadavg()}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    except OSError:
        return "?"


def fmt_lat(us):
    if us >= 10000:
        return "%.1f ms" % (us / 1000.0)
    return "%.2f ms" % (us / 1000.0)


def verdict(ok):
    return "PASS" if ok else "MISS"


def build_report(results, mach, notes, started):
    L = []
    L.append("Run: %s, %d s per measurement after a %d s warm-up, "
             "%d connections, %d wrk threads, %d round(s)." % (
                 started, DURATION, WARMUP, CONNECTIONS, THREADS, ROUNDS))
    L.append("")
    L.append("Machine: %s, %d cores, Linux %s, nginx %s, %s." % (
        mach["cpu"], mach["cores"], mach["kernel"], mach["nginx"],
        mach["wrk"]))
    L.append("")
    L.append("Load average (1 min) at start / end: %s / %s (other work on "
             "the machine skews the numbers; re-run when it is idle)." % (
                 mach["load0"], loadavg()))
    L.append("")
    if PIN and TASKSET and NCPU >= 2:
        L.append("Pinning: the target nginx (master + 1 worker) on CPU 1; "
                 "wrk and the mock provider (1 worker) on CPU 0. The target "
                 "has a core to itself; 'target CPU' near 100 % means the "
                 "target was the bottleneck.")
    else:
        L.append("Pinning: none (all processes share the cores).")
    L.append("")
    L.append("| scenario | target | RPS | p50 | p99 | CPU µs/req | "
             "target CPU | errors |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for scen in ("non-stream", "stream"):
        for tgt in ("mock (direct)", "bare nginx", "aigw"):
            r = results.get((scen, tgt))
            if not r:
                continue
            err = "0"
            if r["errors"]:
                err = ", ".join("%s %d" % (k, r[k]) for k in
                                ("status", "connect", "read", "write",
                                 "timeout") if r[k])
                err = "%d (%s)" % (r["errors"], err)
            L.append("| %s | %s | %.0f | %s | %s | %.1f | %.0f %% | %s |" % (
                scen, tgt, r["rps"], fmt_lat(r["p50"]), fmt_lat(r["p99"]),
                r["cpu_us_req"], r["cpu_util"] * 100, err))
    L.append("")
    L.append("| scenario | aigw ÷ bare CPU/req | target ≤ %.2f | "
             "aigw ÷ bare RPS | target ≥ %.2f |" % (CPU_TARGET, RPS_TARGET))
    L.append("| --- | ---: | --- | ---: | --- |")
    verdicts = []
    for scen in ("non-stream", "stream"):
        b = results.get((scen, "bare nginx"))
        a = results.get((scen, "aigw"))
        if not a or not b:
            continue
        cr = a["cpu_us_req"] / b["cpu_us_req"] if b["cpu_us_req"] else 0
        rr = a["rps"] / b["rps"] if b["rps"] else 0
        okc = cr <= CPU_TARGET and not a["errors"]
        okr = rr >= RPS_TARGET and not a["errors"]
        verdicts.append((scen, okc, okr))
        L.append("| %s | %.2f× | %s | %.2f | %s |" % (
            scen, cr, verdict(okc), rr, verdict(okr)))
    L.append("")
    for n in notes:
        L.append("Note: " + n)
        L.append("")
    return "\n".join(L).rstrip() + "\n", verdicts


METHOD = """\
## Method

`bench/run.sh` (`make bench`) starts, on 127.0.0.1 only, in a temporary
directory:

- **mock provider**: a second stock nginx, 1 worker, answering
  `POST /v1/chat/completions` with a canned ~650-byte `chat.completion` and
  `POST /stream/v1/chat/completions` with a canned 20-event
  `chat.completion.chunk` SSE stream plus `data: [DONE]` (~5 KB,
  `text/event-stream`, sent chunked), both with `return 200 '...'`;
- **bare nginx**: stock nginx, 1 worker, `proxy_pass` to the mock through
  `upstream { keepalive 32; }`, `proxy_http_version 1.1`,
  `proxy_set_header Connection ""`, the provider key added with
  `proxy_set_header Authorization`; `proxy_buffering` default for
  non-streaming, `off` for streaming (separate server blocks);
- **aigw**: the same stock nginx with `ngx_http_ai_gateway_module.so`,
  1 worker, `location /v1/ { ai_gateway; }`, two providers (`.../v1` and
  `.../stream/v1`, `key_env=`) and models `gpt-4o` / `gpt-4o-stream`, default
  keepalive pool (32).

All three: `access_log off`, `keepalive_requests 1000000` (so neither wrk's
nor the upstream connections are recycled every 1000 requests),
`worker_connections 4096`, error log at `warn`.

Load: wrk with a POST of a ~1.1 KB chat request (system + user message,
`temperature`, `max_tokens`, `user`; `"stream":true` for streaming), after a
warm-up run, `--latency` (p50/p99 from wrk's histogram). Each bare/aigw
measurement gets a freshly started nginx, alone on its core (the module is
copied to the temporary directory first, so a rebuild during the run cannot
disturb it); wrk uses 1 thread when pinned (it has one core), 2 otherwise. The mock is also
loaded directly as a reference line. Every target answers one request and is
checked (200, well-formed completion / 20 chunks + `[DONE]`) before its load.

CPU per request: utime+stime of the target's master and worker processes
(`/proc/<pid>/stat`, clock ticks → µs) before and after the measured run,
divided by the requests wrk completed. "target CPU" is that CPU time over the
run's wall time (100 % = one core busy). For the mock line the target is the
mock itself.

Targets (from the issue): aigw CPU per request ≤ 1.25× bare nginx and aigw
RPS ≥ 80 % of bare nginx, for non-streaming and streaming. The bench never
fails the build; it reports PASS/MISS.
"""


def write_results(report):
    if RESULTS == "-":
        return
    block = MARK_BEGIN + "\n## Latest run\n\n" + report + MARK_END + "\n"
    text = None
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            old = f.read()
        i, j = old.find(MARK_BEGIN), old.find(MARK_END)
        if i >= 0 and j > i:
            text = old[:i] + block + old[j + len(MARK_END):].lstrip("\n")
    if text is None:
        text = ("# aigw overhead benchmark: results\n\n"
                "aigw vs bare NGINX `proxy_pass` in front of the same mock "
                "provider, measured in one run by `make bench` "
                "(`bench/run.sh`).\n\n" + block + "\n" + METHOD)
    with open(RESULTS, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------

PROCS = []
WORKDIR = None


def main():
    global WORKDIR
    if not os.path.exists(MODULE):
        raise SystemExit("bench: %s is missing; run `make module` first"
                         % MODULE)
    if not os.path.exists(WRK):
        raise SystemExit("bench: wrk not found (apt-get install wrk)")
    own_workdir = not os.environ.get("BENCH_WORKDIR")
    WORKDIR = os.environ.get("BENCH_WORKDIR") or \
        tempfile.mkdtemp(prefix="aigw-bench-")
    os.chmod(WORKDIR, 0o755)
    started = datetime.datetime.now().astimezone().strftime(
        "%Y-%m-%d %H:%M %Z")
    mach = machine()
    servers = []
    try:
        mock_port = free_port()
        bare_ns, bare_st = free_port(), free_port()
        aigw_port = free_port()

        mock = Nginx("mock", 0, mock_conf(mock_port)).start(mock_port)
        servers.append(mock)

        # A snapshot of the module: a rebuild during the run (which rewrites
        # build/*.so in place) must not pull the file from under the workers.
        module = os.path.join(WORKDIR, os.path.basename(MODULE))
        shutil.copy2(MODULE, module)

        def new_bare():
            return Nginx("bare", 1, bare_conf(bare_ns, bare_st, mock_port))

        def new_aigw():
            return Nginx("aigw", 1, aigw_conf(aigw_port, mock_port),
                         main_extra="load_module %s;\n" % module,
                         env={KEY_ENV: PROVIDER_KEY})

        # (scenario, target, factory or None for the mock, port, path, body)
        plan = []
        for scen, stream in (("non-stream", False), ("stream", True)):
            plan.append((scen, "mock (direct)", None, mock_port,
                         "/stream/v1/" if stream else "/v1/",
                         request_body("gpt-4o", stream), stream))
            plan.append((scen, "bare nginx", new_bare,
                         bare_st if stream else bare_ns, "/v1/",
                         request_body("gpt-4o", stream), stream))
            plan.append((scen, "aigw", new_aigw, aigw_port, "/v1/",
                         request_body("gpt-4o-stream" if stream else "gpt-4o",
                                      stream), stream))

        body_len = len(request_body("gpt-4o", False))
        print("bench: request body %d bytes, completion %d bytes, stream %d "
              "bytes; %d s x %d runs x %d round(s) + warm-ups"
              % (body_len, len(completion_json()), len(stream_sse()),
                 DURATION, len(plan), ROUNDS), flush=True)

        notes = []
        runs = {}
        logs = {}
        for rnd in range(ROUNDS):
            for scen, tgt, factory, port, path, body, stream in plan:
                # every target starts fresh for its measurement, alone on
                # its core: a misbehaving one cannot disturb the next.
                srv = mock
                if factory:
                    srv = factory()
                    servers.append(srv)
                    srv.start(port)
                    wait_port(port, srv.proc)
                bad = check_once(port, path, body, stream)
                if bad:
                    raise SystemExit("bench: %s / %s: sanity check failed: "
                                     "%s\n%s" % (scen, tgt, bad,
                                                 srv.read("error.log")))
                r = measure(srv, "http://127.0.0.1:%d%schat/completions"
                            % (port, path), body)
                if factory:
                    srv.stop()
                    servers.remove(srv)
                    logs.setdefault(srv.name, []).append(srv)
                if r["respawned"]:
                    notes.append("%s / %s: the target's worker changed "
                                 "during the run (crash or respawn); CPU "
                                 "includes the dead worker's time."
                                 % (scen, tgt))
                runs.setdefault((scen, tgt), []).append(r)
                print("bench: [%d/%d] %-10s %-13s %8.0f req/s  p50 %s  "
                      "p99 %s  %6.1f µs CPU/req  errors %d"
                      % (rnd + 1, ROUNDS, scen, tgt, r["rps"],
                         fmt_lat(r["p50"]), fmt_lat(r["p99"]),
                         r["cpu_us_req"], r["errors"]), flush=True)
        logs["mock"] = [mock]
        results = {}
        for k, rs in runs.items():
            rs = sorted(rs, key=lambda x: x["rps"])
            results[k] = rs[len(rs) // 2]
            if len(rs) > 1:
                cpus = ", ".join("%.1f" % x["cpu_us_req"] for x in rs)
                notes.append("%s / %s: RPS over rounds %s; CPU µs/req %s "
                             "(median-RPS run shown)."
                             % (k[0], k[1], ", ".join("%.0f" % x["rps"]
                                                      for x in rs), cpus))

        for name in ("mock", "bare", "aigw"):
            probs, errs = [], []
            for srv in logs.get(name, []):
                probs += srv.problems()
                errs += srv.errors()
                if srv.proc.poll() not in (None, 0):
                    notes.append("%s nginx exited with status %s"
                                 % (name, srv.proc.returncode))
            if probs:
                notes.append("%s error log: %d crit/alert/emerg lines, e.g. "
                             "`%s`" % (name, len(probs), probs[0][:200]))
            if errs:
                notes.append("%s error log: %d [error] lines, e.g. `%s`"
                             % (name, len(errs), errs[0][:200]))

        report, verdicts = build_report(results, mach, notes, started)
        print()
        print(report)
        for scen, okc, okr in verdicts:
            print("bench: %-10s CPU/req %s, RPS %s"
                  % (scen, verdict(okc), verdict(okr)))
        write_results(report)
        if RESULTS != "-":
            print("bench: results written to %s" % RESULTS)
    finally:
        for srv in servers:
            srv.stop()
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        if own_workdir:
            shutil.rmtree(WORKDIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
