"""The non-blocking Redis client (module/ngx_http_ai_redis.c) inside the
stock nginx, against a real redis-server.

The client is driven by the test module of this folder (see
ngx_http_ai_redis_test_module.c), built by build.sh:

    GET /incr?key=k   MULTI, INCRBY k 1, PEXPIRE k 60000, EXEC
    GET /get?key=k    GET k
    GET /slow?sec=s   BLPOP on a key nobody pushes: holds the pipeline
    GET /status       is the store up (sends nothing)

Run: /usr/bin/python3 -m pytest tests/redis -q
"""

import concurrent.futures
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.path.join(ROOT, "build", "redis-test",
                      "ngx_http_ai_redis_test_module.so")
NGINX = "/usr/sbin/nginx"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

# the client's timeouts in these tests
CONNECT_TIMEOUT_MS = 200
TIMEOUT_MS = 300

# no request may take longer than this while Redis is down or stalled:
# the command timeout plus scheduling slack, far below a hang
NO_HANG_S = 1.0

# the backoff tops out at 5 s (with jitter below it)
RECOVERY_S = 8.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --- a few lines of RESP: the tests' own view of Redis --------------------

class RespError(Exception):
    pass


class Resp:
    def __init__(self, port, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")
        if password:
            self.cmd("AUTH", password)
        self.cmd("CLIENT", "SETNAME", "pytest")

    def close(self):
        self.file.close()
        self.sock.close()

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2].decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RespError("bad reply %r" % line)


class RedisServer:
    def __init__(self, workdir, password=None, unixsocket=None):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.unixsocket = unixsocket
        self.proc = None

    def start(self):
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        if self.unixsocket:
            # nginx's workers may run as another user (nobody)
            os.chmod(os.path.dirname(self.unixsocket), 0o755)
            args += ["--unixsocket", self.unixsocket,
                     "--unixsocketperm", "777"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def ready():
            try:
                r = Resp(self.port, self.password)
                r.cmd("PING")
                r.close()
                return True
            except (OSError, RespError):
                return False

        assert wait_for(ready, 10), "redis-server did not start"

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def client(self):
        return Resp(self.port, self.password)

    def nginx_clients(self):
        """The connections of everybody but the tests themselves."""
        r = self.client()
        try:
            lines = r.cmd("CLIENT", "LIST").strip().splitlines()
        finally:
            r.close()
        return [ln for ln in lines if " name=pytest " not in ln]

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)
            self.kill()


NGINX_CONF = """
load_module {module};
worker_processes 2;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            ai_redis_test {url} connect_timeout={ct}ms timeout={t}ms;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, workdir, url):
        self.prefix = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.log = os.path.join(self.prefix, "error.log")
        self.write_conf(url)
        self.master = None

    def write_conf(self, url):
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(module=MODULE, prefix=self.prefix,
                                      port=self.port, url=url,
                                      ct=CONNECT_TIMEOUT_MS, t=TIMEOUT_MS))

    def cmdline(self, *extra):
        return [NGINX, "-p", self.prefix, "-c", self.conf, "-e", self.log,
                *extra]

    def test_conf(self):
        return subprocess.run(self.cmdline("-t"), capture_output=True,
                              text=True)

    def start(self):
        subprocess.run(self.cmdline(), check=True)
        with open(os.path.join(self.prefix, "nginx.pid")) as f:
            self.master = int(f.read())
        assert wait_for(lambda: self.get("/status")[0] == 200, 10), \
            "nginx did not get to Redis"

    def signal(self, name):
        subprocess.run(self.cmdline("-s", name), check=True,
                       capture_output=True)

    def stopped(self):
        # the daemonized master is not our child: once it has exited it
        # may linger as a zombie until init reaps it
        try:
            with open("/proc/%d/stat" % self.master) as f:
                return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
        except FileNotFoundError:
            return True

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.master)],
                             capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def stop(self):
        if self.master and not self.stopped():
            os.kill(self.master, signal.SIGTERM)
            wait_for(self.stopped, 10)

    def get(self, path, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def timed_get(self, path):
        start = time.monotonic()
        status, body = self.get(path)
        return status, body, time.monotonic() - start

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def log_lines(self, pattern, since=0):
        return [ln for ln in self.log_text()[since:].splitlines()
                if re.search(pattern, ln)]

    def log_size(self):
        return len(self.log_text())


def per_pid(lines):
    counts = {}
    for ln in lines:
        m = re.search(r"\] (\d+)#\d+: ", ln)
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


# --- fixtures --------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def built():
    for tool in (NGINX, REDIS):
        if not os.path.exists(tool):
            pytest.skip("%s is not installed" % tool)
    subprocess.run(["sh", os.path.join(ROOT, "tests", "redis", "build.sh")],
                   check=True)
    assert os.path.exists(MODULE)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="aigw-redis-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def redis(workdir):
    r = RedisServer(workdir)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def nginx(workdir, redis):
    n = Nginx(workdir, "redis://127.0.0.1:%d" % redis.port)
    n.start()
    yield n
    n.stop()
    check_log_clean(n)


def check_log_clean(n):
    bad = n.log_lines(r"\[(alert|crit|emerg)\]|exited on signal|"
                      r"open socket|Segmentation|core dumped")
    assert not bad, "\n".join(bad)


def parallel(fn, args, threads):
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, args))


def value(body):
    m = re.match(r'\{"value":(.*)\}$', body)
    assert m, body
    return m.group(1)


# --- tests -----------------------------------------------------------------

def test_multi_exec_counts_exactly_under_concurrency(nginx, redis):
    n = 200
    results = parallel(lambda i: nginx.get("/incr?key=concurrent"),
                       range(n), n)

    assert all(status == 200 for status, _ in results), results[:5]
    counters = sorted(int(value(body)) for _, body in results)
    assert counters == list(range(1, n + 1))

    assert nginx.get("/get?key=concurrent") == (200, '{"value":"%d"}' % n)

    r = redis.client()
    ttl = r.cmd("PTTL", "concurrent")
    r.close()
    assert 0 < ttl <= 60000


def test_pipelined_on_one_connection_per_worker(nginx, redis):
    r = redis.client()
    before = int(re.search(r"total_connections_received:(\d+)",
                           r.cmd("INFO", "stats")).group(1))

    results = parallel(lambda i: nginx.get("/incr?key=p%d" % (i % 7)),
                       range(1000), 100)
    assert all(status == 200 for status, _ in results)

    after = int(re.search(r"total_connections_received:(\d+)",
                          r.cmd("INFO", "stats")).group(1))
    r.close()

    assert after == before, "the client opened new connections"
    assert len(redis.nginx_clients()) == 2, redis.nginx_clients()
    total = sum(int(value(nginx.get("/get?key=p%d" % k)[1]).strip('"'))
                for k in range(7))
    assert total == 1000


def test_unknown_key_is_nil(nginx):
    assert nginx.get("/get?key=nothing-here") == (200, '{"value":null}')


def test_large_reply_arrives_in_pieces(nginx, redis):
    big = "x" * (1 << 20)
    r = redis.client()
    r.cmd("SET", "big", big)
    r.close()

    results = parallel(lambda i: nginx.get("/get?key=big"), range(8), 8)
    assert all(res == (200, '{"value":"%s"}' % big) for res in results)
    assert nginx.get("/incr?key=after-big")[0] == 200


def test_command_timeout_answers_503_then_recovers(nginx, redis):
    status, body, took = nginx.timed_get("/slow?sec=2")
    assert status == 503
    assert '"code":"store_unavailable"' in body
    assert took < NO_HANG_S

    assert nginx.log_lines(r"\[error\].*is down.*command timed out")

    # the worker that timed out reconnects (the other one never left)
    assert wait_for(lambda: nginx.log_lines(r"\[notice\].*is up again"),
                    RECOVERY_S)
    assert nginx.get("/incr?key=after")[0] == 200


def test_commands_behind_a_timed_out_one_fail_too(nginx, redis):
    # BLPOP holds the worker's pipeline: what queues behind it on the same
    # connection gets NULL with it, and nobody waits past the timeout
    def call(path):
        return nginx.timed_get(path)

    paths = ["/slow?sec=2"] + ["/incr?key=behind"] * 30
    results = parallel(call, paths, len(paths))
    assert all(took < NO_HANG_S for _, _, took in results)
    assert results[0][0] == 503
    assert all(status in (200, 503) for status, _, _ in results)

    assert wait_for(lambda: nginx.get("/incr?key=behind")[0] == 200,
                    RECOVERY_S)


def test_redis_killed_fails_fast_and_recovers(nginx, redis):
    parallel(lambda i: nginx.get("/incr?key=k"), range(20), 20)
    mark = nginx.log_size()

    redis.kill()
    # both workers notice at once (EOF), and fail over to 503 for good
    time.sleep(0.3)

    for _ in range(20):
        status, body, took = nginx.timed_get("/incr?key=k")
        assert status == 503, body
        assert took < NO_HANG_S
        time.sleep(0.05)

    assert nginx.get("/status")[0] == 503

    redis.start()
    assert wait_for(lambda: nginx.get("/incr?key=k")[0] == 200, RECOVERY_S)
    assert wait_for(lambda: len(redis.nginx_clients()) == 2, RECOVERY_S)

    down = nginx.log_lines(r"\[error\].*aigw redis .* is down", mark)
    up = nginx.log_lines(r"\[notice\].*aigw redis .* is up again", mark)
    assert down, "the outage was not logged"
    assert all(c == 1 for c in per_pid(down).values()), down
    assert per_pid(up).keys() == per_pid(down).keys(), (down, up)


def test_redis_paused_times_out_and_recovers(nginx, redis):
    assert nginx.get("/incr?key=s")[0] == 200
    mark = nginx.log_size()

    redis.pause()
    try:
        results = parallel(lambda i: nginx.timed_get("/incr?key=s"),
                           range(20), 20)
        results += [nginx.timed_get("/incr?key=s") for _ in range(10)]
        assert all(status == 503 for status, _, _ in results)
        assert all(took < NO_HANG_S for _, _, took in results)
        # the retries during the stall (connect succeeds, PING does not)
        # stay "info"
        time.sleep(1.0)
    finally:
        redis.resume()

    assert wait_for(lambda: nginx.get("/incr?key=s")[0] == 200, RECOVERY_S)

    down = nginx.log_lines(r"\[error\].*aigw redis .* is down", mark)
    assert down
    assert all(c == 1 for c in per_pid(down).values()), down


def _hang_up(nginx, path):
    s = socket.create_connection(("127.0.0.1", nginx.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    s.close()


def test_client_gone_before_reply_cancels(nginx, redis):
    def hang_up(path):
        _hang_up(nginx, path)

    # a BLPOP and transactions, all abandoned; the transactions of its
    # worker queue behind the BLPOP (Redis ends a 0.1 s BLPOP within 0.2 s,
    # under the 300 ms command timeout: the replies do come)
    # On a loaded machine a reply can beat the hang-up being noticed: the
    # scenario is repeated until a cancellation happened (once, usually).
    paths = ["/slow?sec=0.1"] + ["/incr?key=gone"] * 50
    for _ in range(5):
        parallel(hang_up, paths, len(paths))
        time.sleep(0.5)
        if nginx.log_lines(r"request gone, command cancelled"):
            break

    # the replies came to cancelled tokens; the tokens went to new requests
    results = parallel(lambda i: nginx.get("/incr?key=gone2"), range(50), 50)
    assert all(status == 200 for status, _ in results)
    assert nginx.get("/status")[0] == 200

    check_log_clean(nginx)
    assert nginx.log_lines(r"request gone, command cancelled")
    assert not nginx.log_lines(r"is down")


def test_reload_with_pending_commands(nginx, redis):
    old = nginx.workers()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        slow = [pool.submit(nginx.get, "/slow?sec=0.1")]
        incr = [pool.submit(nginx.get, "/incr?key=rl") for _ in range(10)]
        time.sleep(0.03)
        nginx.signal("reload")
        slow = [f.result() for f in slow]
        incr = [f.result() for f in incr]

    # the old workers finished what they had queued, then left
    assert all(r == (200, '{"value":null}') for r in slow), slow
    assert all(r[0] == 200 for r in incr), incr
    assert wait_for(lambda: not set(old) & set(nginx.workers()), 5)
    assert wait_for(lambda: nginx.get("/incr?key=r")[0] == 200, 5)
    assert wait_for(lambda: len(redis.nginx_clients()) == 2, 5)


def test_graceful_quit_with_pending_commands(nginx, redis):
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        slow = [pool.submit(nginx.get, "/slow?sec=0.1")]
        incr = [pool.submit(nginx.get, "/incr?key=q") for _ in range(10)]
        time.sleep(0.03)
        nginx.signal("quit")
        slow = [f.result() for f in slow]
        incr = [f.result() for f in incr]

    assert all(r == (200, '{"value":null}') for r in slow), slow
    assert all(r[0] == 200 for r in incr), incr
    assert wait_for(nginx.stopped, 5)


def test_graceful_quit_not_delayed_by_reconnect_timer(nginx, redis):
    redis.kill()
    # let the backoff grow past a second
    time.sleep(3)
    assert nginx.get("/status")[0] == 503

    start = time.monotonic()
    nginx.signal("quit")
    assert wait_for(nginx.stopped, 5)
    assert time.monotonic() - start < NO_HANG_S


def test_auth_and_select_from_url(workdir):
    password = "s3cr3t-pa55"
    redis = RedisServer(workdir, password=password)
    redis.start()
    nginx = Nginx(workdir,
                  "redis://:%s@127.0.0.1:%d/3" % (password, redis.port))
    try:
        nginx.start()
        assert nginx.get("/incr?key=authed")[0] == 200

        r = redis.client()
        assert r.cmd("GET", "authed") is None
        r.cmd("SELECT", 3)
        assert r.cmd("GET", "authed") == "1"
        r.close()

        nginx.stop()

        # a wrong password: down, said once, without the password
        nginx.write_conf("redis://:wrong-%s@127.0.0.1:%d/3"
                         % (password, redis.port))
        subprocess.run(nginx.cmdline(), check=True)
        with open(os.path.join(nginx.prefix, "nginx.pid")) as f:
            nginx.master = int(f.read())
        time.sleep(1.5)
        status, body, took = nginx.timed_get("/incr?key=authed")
        assert status == 503 and took < NO_HANG_S

        log = nginx.log_text()
        assert password not in log
        down = nginx.log_lines(r"\[error\].*is down.*handshake refused")
        assert down, log
        assert all(c == 1 for c in per_pid(down).values()), down
    finally:
        nginx.stop()
        redis.stop()
    check_log_clean(nginx)


def test_unix_socket(workdir):
    path = os.path.join(workdir, "redis.sock")
    redis = RedisServer(workdir, unixsocket=path)
    redis.start()
    nginx = Nginx(workdir, "unix:" + path)
    try:
        nginx.start()
        results = parallel(lambda i: nginx.get("/incr?key=u"), range(50), 50)
        assert sorted(int(value(b)) for _, b in results) == \
            list(range(1, 51))
    finally:
        nginx.stop()
        redis.stop()
    check_log_clean(nginx)


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:6379", "must start with"),
    ("redis://127.0.0.1:6379/x", "invalid database number"),
    ("redis://127.0.0.1:99999", "invalid port"),
    ("redis://:@127.0.0.1", "empty password"),
])
def test_bad_urls_are_configuration_errors(workdir, url, message):
    nginx = Nginx(workdir, url)
    res = nginx.test_conf()
    assert res.returncode != 0
    assert message in res.stderr, res.stderr


def test_store_down_at_start_then_up(workdir):
    redis = RedisServer(workdir)
    nginx = Nginx(workdir, "redis://127.0.0.1:%d" % redis.port)
    subprocess.run(nginx.cmdline(), check=True)
    with open(os.path.join(nginx.prefix, "nginx.pid")) as f:
        nginx.master = int(f.read())
    try:
        assert wait_for(lambda: nginx.get("/status")[0] == 503, 5)
        status, _, took = nginx.timed_get("/incr?key=late")
        assert status == 503 and took < NO_HANG_S

        redis.start()
        assert wait_for(lambda: nginx.get("/incr?key=late")[0] == 200,
                        RECOVERY_S)
    finally:
        nginx.stop()
        redis.stop()
    check_log_clean(nginx)


@pytest.mark.skipif(not shutil.which("valgrind")
                    or os.environ.get("AIGW_VALGRIND") != "1",
                    reason="set AIGW_VALGRIND=1 (slow)")
def test_valgrind_worker(workdir, redis):
    nginx = Nginx(workdir, "redis://127.0.0.1:%d" % redis.port)
    vlog = os.path.join(workdir, "valgrind.log")
    proc = subprocess.Popen(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--log-file=" + vlog,
         *nginx.cmdline("-g", "daemon off; master_process off;")])
    try:
        assert wait_for(lambda: _status(nginx) == 200, 60)
        for i in range(50):
            assert nginx.get("/incr?key=v")[0] == 200
        assert nginx.get("/slow?sec=2")[0] == 503
        assert wait_for(lambda: _status(nginx) == 200, RECOVERY_S)
        redis.kill()
        time.sleep(0.5)
        assert nginx.get("/incr?key=v")[0] == 503
        redis.start()
        assert wait_for(lambda: _status(nginx) == 200, RECOVERY_S)
        parallel(lambda i: nginx.get("/incr?key=v"), range(20), 20)
        # cancelled tokens, then their replies
        parallel(lambda p: _hang_up(nginx, p),
                 ["/slow?sec=0.1"] + ["/incr?key=v"] * 10, 11)
        time.sleep(0.5)
        assert nginx.get("/incr?key=v")[0] == 200
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(60)

    with open(vlog) as f:
        report = f.read()
    assert "Invalid read" not in report and "Invalid write" not in report, \
        report
    assert "uninitialised" not in report, report

    # nginx itself loses a few bytes at exit (ngx_set_environment); none of
    # the lost blocks may come from the client or hiredis
    records = re.split(r"==\d+== \n", report)
    ours = [r for r in records
            if re.search(r"(definitely|indirectly|possibly) lost", r)
            and re.search(r"ngx_http_ai_redis|hiredis|redis[A-Z]", r)]
    assert not ours, "\n".join(ours)
    assert "ngx_http_ai_redis" not in report, report


def _status(nginx):
    try:
        return nginx.get("/status", timeout=2)[0]
    except OSError:
        return None
