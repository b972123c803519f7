"""Integration harness: the built module inside the stock nginx, real
redis-server where needed, and the mock providers speaking the providers'
wire formats.  Everything listens on 127.0.0.1 and is stopped at the end."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.path.join(ROOT, "build", "ngx_http_ai_gateway_module.so")
MOCK = os.path.join(ROOT, "tests", "mocks", "mock_provider.py")
MAKE_CA = os.path.join(ROOT, "tests", "mocks", "make_test_ca.sh")
NGINX = "/usr/sbin/nginx"
PYTHON = "/usr/bin/python3"

PROVIDER_KEY = "sk-provider-SECRET-1234567890"
CLIENT_KEY = "sk-client-SECRET-abcdef"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on port %d" % port)


def make_workdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)   # nginx workers run as nobody
    return d


class Mock:
    """A mock provider process (tests/mocks/mock_provider.py)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [PYTHON, MOCK, "--port", "0"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("mock did not start: %r" % line)
        self.port = int(line.split()[1])
        self.tls = "--tls-cert" in args

    def _get(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        if self.tls:
            import ssl
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                            timeout=10, context=ctx)
        c.request(method, path)
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data) if data else None

    def requests(self):
        return self._get("GET", "/_mock/requests")

    def last(self):
        reqs = self.requests()
        assert reqs, "the mock received no request"
        return reqs[-1]

    def connections(self):
        return self._get("GET", "/_mock/connections")

    def reset(self):
        self._get("POST", "/_mock/reset")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Redis:
    """A real redis-server on a free port, in a temporary directory."""

    def __init__(self):
        self.dir = make_workdir("aigw-redis-")
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] +
                              list(args), capture_output=True, text=True,
                              timeout=10).stdout.strip()

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Gateway:
    """The stock nginx with our module, on a generated configuration."""

    def __init__(self, http_conf, server_conf="", env=None, workers=1,
                 main_conf=""):
        self.dir = make_workdir("aigw-test-")
        self.port = free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.conf, "w") as f:
            f.write(render_conf(self, http_conf, server_conf, workers,
                                main_conf))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None

    def test_config(self):
        return subprocess.run([NGINX, "-t", "-p", self.dir, "-c", self.conf],
                              env=self.env, capture_output=True, text=True)

    def start(self):
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
            env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        try:
            wait_port(self.port)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError("nginx did not start: " +
                               self.proc.stderr.read())
        return self

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            check_no_crash(self.error_log,
                           getattr(self, "expect_emerg", False))
        finally:
            if not os.environ.get("AIGW_KEEP_TEST_DIRS"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def stop_dir(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        out = ""
        for p in (self.error_log, self.access_log):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def request(self, method, path, body=None, headers=None, timeout=15):
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        h = {"Content-Type": "application/json"}
        if body is None:
            h = {}
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return Response(r.status, r.getheaders(), data)

    def chat(self, body, **kw):
        return self.request("POST", "/v1/chat/completions", body, **kw)


class Response:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.data = data

    def json(self):
        return json.loads(self.data)

    def events(self):
        """The SSE data payloads, in order."""
        out = []
        for block in self.data.decode().split("\n\n"):
            for line in block.split("\n"):
                if line.startswith("data: "):
                    out.append(line[6:])
        return out

    def __repr__(self):
        return "<%d %r>" % (self.status, self.data[:300])


def render_conf(gw, http_conf, server_conf, workers, main_conf):
    return """
load_module %(module)s;
worker_processes %(workers)d;
error_log %(error_log)s info;
pid %(dir)s/nginx.pid;
%(main_conf)s
events { worker_connections 1024; }
http {
    access_log %(access_log)s;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
%(http_conf)s
    server {
        listen 127.0.0.1:%(port)d;
%(server_conf)s
    }
}
""" % dict(module=MODULE, workers=workers, error_log=gw.error_log,
           access_log=gw.access_log, dir=gw.dir, port=gw.port,
           http_conf=http_conf, server_conf=server_conf, main_conf=main_conf)


def check_no_crash(error_log, expect_emerg=False):
    if not os.path.exists(error_log):
        return
    with open(error_log, errors="replace") as f:
        text = f.read()
    bads = ["exited on signal", "[alert]", "core dumped"]
    if not expect_emerg:
        bads.append("[emerg]")    # a refused reload logs one on purpose
    for bad in bads:
        assert bad not in text, "error log shows %r:\n%s" % (bad, text[-3000:])


@pytest.fixture(scope="session")
def mock():
    m = Mock()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def test_ca():
    d = make_workdir("aigw-ca-")
    subprocess.run(["sh", MAKE_CA, d], check=True, capture_output=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_mock(test_ca):
    m = Mock("--tls-cert", os.path.join(test_ca, "server.crt"),
             "--tls-key", os.path.join(test_ca, "server.key"))
    yield m
    m.stop()
