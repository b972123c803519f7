#!/usr/bin/env python3
"""Load proof (issue 11): many concurrent SSE streams through aigw and
through bare NGINX ``proxy_pass``, in the same run, against the same epoll
mock provider (bench/load/stream_mock.c), driven by the libcurl multi
client (bench/load/stream_client.c).  Started by bench/load/run.sh
(``make bench-load``); standard library only.

For every scenario (chunk interval, stream count) and target (bare nginx,
aigw), interleaved over LOAD_ROUNDS rounds: a short warm-up, then the
client opens the streams (ramping up at LOAD_RAMP streams/s), and the
target's worker processes are sampled every 0.5 s from /proc (RSS summed
over the workers, open descriptors summed over the workers) before, during
and 3 s after.  Each measurement starts the target afresh.  Memory per
stream = (RSS - RSS before) / streams held, at the sample with the most
descriptors; streams held = (descriptors - those of the fresh workers) / 2.

Soak (LOAD_SOAK=1): the peak rate of short streams through aigw is measured
for LOAD_PEAK_SECONDS (or taken from LOAD_SOAK_RPS), then aigw carries 50 %
of it for LOAD_SOAK_SECONDS while its workers' RSS and descriptors are
sampled every 10 s; growth = mean of the last minute - mean of the first.

Environment (defaults in brackets):
  LOAD_SCENARIOS     comma list of 1s,100ms [1s,100ms]
  LOAD_STREAMS_1S    streams at 1 chunk per second [20000]
  LOAD_CHUNKS_1S     chunks per stream at 1 s [45]
  LOAD_STREAMS_100MS streams at 1 chunk per 100 ms [5000]
  LOAD_CHUNKS_100MS  chunks per stream at 100 ms [150]
  LOAD_RAMP          new streams per second, all client processes [1000]
  LOAD_WORKERS       nginx worker processes, both targets [4]
  LOAD_MOCK_WORKERS  mock processes [3]
  LOAD_CLIENT_PROCS  client processes [streams / 7000, at least 1]
  LOAD_TARGETS       comma list of bare,aigw [bare,aigw]
  LOAD_ROUNDS        [1]
  LOAD_SOAK          1: the soak after the load runs; only: the soak alone [0]
  LOAD_SOAK_SECONDS  [600]
  LOAD_SOAK_RPS      the peak rate; 0: measure it [0]
  LOAD_PEAK_SECONDS  [10]
Exit status: 0 when every stream of every run delivered every chunk and no
worker crashed, 1 otherwise, 2 when something could not start.
"""

import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODULE = os.path.join(ROOT, "build", "ngx_http_ai_gateway_module.so")
BIN = os.path.join(ROOT, "build", "load")
NGINX = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
KEY_ENV = "AIGW_LOAD_PROVIDER_KEY"
PROVIDER_KEY = "sk-load-provider-0123456789"


def env_int(name, default):
    return int(float(os.environ.get(name, default)))


SCENARIOS = [s.strip() for s in
             os.environ.get("LOAD_SCENARIOS", "1s,100ms").split(",")
             if s.strip()]
STREAMS = {"1s": env_int("LOAD_STREAMS_1S", 20000),
           "100ms": env_int("LOAD_STREAMS_100MS", 5000)}
CHUNKS = {"1s": env_int("LOAD_CHUNKS_1S", 45),
          "100ms": env_int("LOAD_CHUNKS_100MS", 150)}
INTERVAL = {"1s": 1000, "100ms": 100}
RAMP = env_int("LOAD_RAMP", 1000)
WORKERS = env_int("LOAD_WORKERS", 4)
MOCK_WORKERS = env_int("LOAD_MOCK_WORKERS", 3)
CLIENT_PROCS = env_int("LOAD_CLIENT_PROCS", 0)
TARGETS = [t.strip() for t in
           os.environ.get("LOAD_TARGETS", "bare,aigw").split(",") if t.strip()]
ROUNDS = max(1, env_int("LOAD_ROUNDS", 1))
SOAK = os.environ.get("LOAD_SOAK", "0")
SOAK_SECONDS = env_int("LOAD_SOAK_SECONDS", 600)
SOAK_RPS = float(os.environ.get("LOAD_SOAK_RPS", "0"))
PEAK_SECONDS = env_int("LOAD_PEAK_SECONDS", 10)
MOCK_ADDRS = 4
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

WORKDIR = os.environ.get("LOAD_WORKDIR") or tempfile.mkdtemp(
    prefix="aigw-load-")
os.chmod(WORKDIR, 0o755)


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

class Mock:
    def __init__(self):
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "stream_mock"), "-l", str(MOCK_ADDRS),
             "-w", str(MOCK_WORKERS)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("stream_mock did not start: %r" % line)
        self.port = int(line.split()[1])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


CONF = """
%(load)s
worker_processes %(workers)d;
worker_rlimit_nofile %(nofile)d;
error_log %(dir)s/error.log warn;
pid %(dir)s/nginx.pid;
events { worker_connections %(conns)d; multi_accept on; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream load_mock {
%(servers)s
        keepalive 64;
    }
%(http)s
    server {
        listen 127.0.0.1:%(port)d reuseport backlog=65535;
%(server)s
    }
}
"""

BARE = """
        location /v1/ {
            proxy_pass http://load_mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer %s";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
""" % PROVIDER_KEY


def model_name(scenario):
    return "load-chunks%d-interval%d" % (CHUNKS[scenario], INTERVAL[scenario])


# the soak's streams: 5 chunks back to back (the peak is the system's, not
# a product of the concurrency and the chunk interval)
PEAK_MODEL = "load-chunks5-interval0"


class Nginx:
    def __init__(self, name, mock_port):
        self.name = name
        self.dir = os.path.join(WORKDIR, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        servers = "\n".join("        server 127.0.0.%d:%d max_fails=0;"
                            % (i + 1, mock_port) for i in range(MOCK_ADDRS))
        if name == "bare":
            load, http, server = "", "", BARE
        else:
            models = sorted(set([model_name(s) for s in STREAMS]
                                + [PEAK_MODEL]))
            load = "load_module %s;" % MODULE
            http = ("    ai_provider mock url=http://load_mock/v1 key_env=%s "
                    "read_timeout=300s;\n" % KEY_ENV)
            http += "".join("    ai_model %s mock:%s;\n" % (m, m)
                            for m in models)
            server = "        location /v1/ { ai_gateway; }\n"
        conf = CONF % dict(load=load, workers=WORKERS, nofile=NOFILE,
                           dir=self.dir, conns=NOFILE - 500, servers=servers,
                           http=http, port=self.port, server=server)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        env = dict(os.environ)
        env[KEY_ENV] = PROVIDER_KEY
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        deadline = time.time() + 15
        while len(self.workers()) < WORKERS:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("%s nginx did not start: %s"
                                   % (name, self.proc.stderr.read()))
            time.sleep(0.1)
        self.url = "http://127.0.0.1:%d/v1/chat/completions" % self.port

    def workers(self):
        try:
            with open("/proc/%d/task/%d/children"
                      % (self.proc.pid, self.proc.pid)) as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def sample(self):
        """(RSS KB summed over the workers, descriptors summed, workers)"""
        rss = fds = 0
        ws = self.workers()
        for w in ws:
            try:
                with open("/proc/%d/status" % w) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
                fds += len(os.listdir("/proc/%d/fd" % w))
            except OSError:
                pass
        return rss, fds, len(ws)

    def crashed(self):
        path = os.path.join(self.dir, "error.log")
        if not os.path.exists(path):
            return []
        with open(path, errors="replace") as f:
            return [l.strip() for l in f
                    if "exited on signal" in l or "[alert]" in l
                    or "[crit]" in l or "[emerg]" in l][:5]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client_args(url, n, conc, model, chunks, rate=RAMP, duration=0,
                procs=0):
    if procs <= 0:
        procs = CLIENT_PROCS or max(1, -(-max(n, conc) // 7000))
    return [os.path.join(BIN, "stream_client"), "-u", url,
            "-n", str(n), "-c", str(conc), "-r", str(rate), "-d",
            str(duration), "-k", str(chunks), "-m", model, "-P", str(procs),
            "-a", "16", "-A", "10", "-t", "600"]


def run_client(nginx, args, sample_every=0.5, on_sample=None):
    """Run the client while sampling the target's workers; returns
    (RESULT dict, client stdout, samples)."""
    samples = []
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while proc.poll() is None:
        s = nginx.sample()
        samples.append((time.time() - t0,) + s)
        if on_sample:
            on_sample(samples[-1])
        time.sleep(sample_every)
    out = proc.stdout.read()
    res = None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
    if res is None:
        raise RuntimeError("client gave no result:\n" + out[-2000:])
    return res, out, samples


# --------------------------------------------------------------------------
# the load proof
# --------------------------------------------------------------------------

def measure(name, mock_port, scenario):
    """One target, one scenario, on freshly started workers (so that the
    RSS growth is this run's, not memory a previous run left cached)."""
    nginx = Nginx(name, mock_port)
    try:
        return measure_on(nginx, scenario)
    finally:
        nginx.stop()


def measure_on(nginx, scenario):
    n = STREAMS[scenario]
    chunks = CHUNKS[scenario]
    model = model_name(scenario)
    fresh = nginx.sample()
    # warm-up: a few streams, so that both targets start from used workers
    run_client(nginx, client_args(nginx.url, 200, 200, model, 2, rate=2000,
                                  procs=1))
    time.sleep(2)
    before = nginx.sample()
    res, out, samples = run_client(
        nginx, client_args(nginx.url, n, n, model, chunks))
    time.sleep(3)
    after = nginx.sample()
    peak_rss = max(s[1] for s in samples) if samples else before[0]
    peak_fds = max(s[2] for s in samples) if samples else before[1]
    # streams held by the target at its busiest sample: two descriptors
    # each (client and upstream) over those of the fresh workers (the
    # warm-up's idle keepalive connections are among the upstream ones);
    # with a slow ramp not all N are open at once, and dividing by N would
    # flatter the figure
    top = max(samples, key=lambda s: s[2]) if samples else None
    held = (top[2] - fresh[1]) // 2 if top else 0
    r = dict(res)
    r.update(target=nginx.name, scenario=scenario, streams=n, chunks=chunks,
             rss_before_kb=before[0], rss_peak_kb=peak_rss,
             rss_after_kb=after[0], fds_before=before[1], fds_peak=peak_fds,
             fds_after=after[1], workers=before[2],
             kb_per_stream=(top[1] - before[0]) / float(held)
             if held > 0 else 0.0, held=held,
             all_concurrent=res["last_start_s"] < res["first_finish_s"],
             crashes=nginx.crashed())
    log("  %-5s %-6s %6d streams: ok %d failed %d, chunks %d/%d, peak %d "
        "open, TTFB p50 %.2f p99 %.2f ms, gap p50 %.1f p99 %.1f max %.1f "
        "ms, RSS %d -> %d -> %d KB (%.1f KB/stream over %d held), fds %d -> "
        "%d -> %d%s"
        % (nginx.name, scenario, n, r["ok"], r["failed"],
           r["chunks_received"], r["chunks_expected"], r["peak_active"],
           r["ttfb_p50_ms"], r["ttfb_p99_ms"], r["gap_p50_ms"],
           r["gap_p99_ms"], r["gap_max_ms"], before[0], peak_rss, after[0],
           r["kb_per_stream"], held, before[1], peak_fds, after[1],
           "" if not r["crashes"] else " CRASH: %s" % r["crashes"]))
    if r["failed"]:
        for line in out.splitlines():
            if line.startswith("error:"):
                log("    " + line)
    return r


def report(results):
    log("")
    log("| interval | target | streams | completed | failed | chunks "
        "received / expected | all open at once | TTFB p50 / p99 | gap p50 / "
        "p99 / max | worker RSS before → peak → after | KB per stream | "
        "worker fds before → peak → after |")
    log("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: "
        "| ---: | ---: |")
    for r in results:
        log("| %s | %s | %d | %d | %d | %d / %d | %s | %.2f / %.2f ms | "
            "%.0f / %.0f / %.0f ms | %.1f → %.1f → %.1f MB | %.1f | "
            "%d → %d → %d |"
            % (r["scenario"], "aigw" if r["target"] == "aigw"
               else "bare nginx", r["streams"], r["ok"], r["failed"],
               r["chunks_received"], r["chunks_expected"],
               "yes (%d)" % r["peak_active"] if r["all_concurrent"]
               else "no (peak %d)" % r["peak_active"],
               r["ttfb_p50_ms"], r["ttfb_p99_ms"], r["gap_p50_ms"],
               r["gap_p99_ms"], r["gap_max_ms"], r["rss_before_kb"] / 1024.,
               r["rss_peak_kb"] / 1024., r["rss_after_kb"] / 1024.,
               r["kb_per_stream"], r["fds_before"], r["fds_peak"],
               r["fds_after"]))
    log("")
    for sc in SCENARIOS:
        b = [r for r in results if r["scenario"] == sc
             and r["target"] == "bare"]
        a = [r for r in results if r["scenario"] == sc
             and r["target"] == "aigw"]
        if not a or not b:
            continue
        def med(rs, k):
            return statistics.median(r[k] for r in rs)
        kb_a, kb_b = med(a, "kb_per_stream"), med(b, "kb_per_stream")
        log("%s: aigw ÷ bare: memory per stream %.2f× (%.1f vs %.1f KB), "
            "TTFB p99 %.2f×, gap p99 %.3f×, spread of KB/stream aigw %s "
            "bare %s"
            % (sc, kb_a / kb_b if kb_b else 0, kb_a, kb_b,
               med(a, "ttfb_p99_ms") / max(med(b, "ttfb_p99_ms"), 1e-9),
               med(a, "gap_p99_ms") / max(med(b, "gap_p99_ms"), 1e-9),
               [round(r["kb_per_stream"], 1) for r in a],
               [round(r["kb_per_stream"], 1) for r in b]))


# --------------------------------------------------------------------------
# soak
# --------------------------------------------------------------------------

def soak(nginx):
    rps = SOAK_RPS
    if rps <= 0:
        res, _, _ = run_client(nginx, client_args(
            nginx.url, 0, 200, PEAK_MODEL, 5, rate=0,
            duration=PEAK_SECONDS, procs=1))
        rps = res["rps"]
        log("soak: peak %.0f streams/s (%s, 200 concurrent streams of 5 "
            "chunks back to back, closed loop, %d s; %d failed)"
            % (rps, nginx.name, PEAK_SECONDS, res["failed"]))
    rate = rps / 2.0
    log("soak: %d s at %.0f streams/s (50 %% of peak) through %s"
        % (SOAK_SECONDS, rate, nginx.name))
    time.sleep(2)
    rows = []
    last = [-10.0]

    def every(sample):
        if sample[0] - last[0] >= 10.0:
            last[0] = sample[0]
            rows.append(sample)
            log("  t=%4.0f s  worker RSS %.1f MB  fds %d"
                % (sample[0], sample[1] / 1024.0, sample[2]))

    res, out, _ = run_client(nginx, client_args(
        nginx.url, 0, 2000, PEAK_MODEL, 5, rate=rate,
        duration=SOAK_SECONDS, procs=1), sample_every=1.0, on_sample=every)
    first = [r for r in rows if r[0] < 60]
    lastm = [r for r in rows if r[0] >= rows[-1][0] - 60]
    g = dict(
        seconds=SOAK_SECONDS, rate=rate, peak=rps, ok=res["ok"],
        failed=res["failed"], chunks=res["chunks_received"],
        chunks_expected=res["chunks_expected"],
        rss_first=statistics.mean(r[1] for r in first),
        rss_last=statistics.mean(r[1] for r in lastm),
        fds_first=statistics.mean(r[2] for r in first),
        fds_last=statistics.mean(r[2] for r in lastm),
        rss_min=min(r[1] for r in rows), rss_max=max(r[1] for r in rows),
        ttfb_p99=res["ttfb_p99_ms"], gap_p99=res["gap_p99_ms"],
        crashes=nginx.crashed(), samples=len(rows))
    log("soak result: %d ok, %d failed, chunks %d/%d; worker RSS first "
        "minute %.1f MB, last minute %.1f MB (growth %+.1f MB, min %.1f max "
        "%.1f); fds first minute %.0f, last minute %.0f; TTFB p99 %.2f ms, "
        "gap p99 %.1f ms; %s"
        % (g["ok"], g["failed"], g["chunks"], g["chunks_expected"],
           g["rss_first"] / 1024., g["rss_last"] / 1024.,
           (g["rss_last"] - g["rss_first"]) / 1024., g["rss_min"] / 1024.,
           g["rss_max"] / 1024., g["fds_first"], g["fds_last"],
           g["ttfb_p99"], g["gap_p99"],
           "no crash" if not g["crashes"] else "CRASH %s" % g["crashes"]))
    return g


def main():
    for b in ("stream_mock", "stream_client"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            log("load: %s is missing (bench/load/run.sh builds it)" % b)
            return 2
    log("load proof: %d nginx workers per target, worker_rlimit_nofile %d, "
        "mock %d processes on 127.0.0.1-%d, client source addresses "
        "127.0.0.10-25, ramp %d streams/s, %d round(s); load average %s"
        % (WORKERS, NOFILE, MOCK_WORKERS, MOCK_ADDRS, RAMP, ROUNDS,
           open("/proc/loadavg").read().split()[0]))
    mock = Mock()
    started = []
    ok = True
    try:
        results = []
        if SOAK != "only":
            for rnd in range(ROUNDS):
                order = TARGETS if rnd % 2 == 0 else TARGETS[::-1]
                for sc in SCENARIOS:
                    for t in order:
                        r = measure(t, mock.port, sc)
                        results.append(r)
                        ok = ok and r["failed"] == 0 and not r["crashes"] \
                            and r["chunks_received"] == r["chunks_expected"]
            report(results)
        if SOAK in ("1", "only"):
            started.append(Nginx("aigw" if "aigw" in TARGETS
                                 else TARGETS[0], mock.port))
            g = soak(started[-1])
            ok = ok and g["failed"] == 0 and not g["crashes"]
    finally:
        for n in started:
            n.stop()
        mock.stop()
        if not os.environ.get("LOAD_KEEP"):
            shutil.rmtree(WORKDIR, ignore_errors=True)
    return 0 if ok else 1


def on_term(sig, frame):
    raise SystemExit(143)       # runs main's finally: everything stops


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    try:
        sys.exit(main())
    except RuntimeError as e:
        log("load: %s" % e)
        sys.exit(2)
