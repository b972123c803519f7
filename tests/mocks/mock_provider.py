#!/usr/bin/env python3
"""Mock LLM provider for the aigw test suite (standard library only).

Reproduces the public wire formats of OpenAI (incl. Azure OpenAI paths),
Anthropic Messages and Google Gemini, with behaviour selected by keywords in
the request's model name (see Behaviour below), so that integration tests can
drive failure modes purely through gateway configuration.

Usage:
    mock_provider.py --port N [--host 127.0.0.1] [--tls-cert F --tls-key F]
                     [--require-key KEY] [--stall-seconds 30] [--slow-ms 200]
                     [--strict] [--verbose]

After listening it prints exactly one line "READY <port>" on stdout.

Control endpoints (never recorded):
    GET    /_mock/requests      every recorded request (JSON list)
    DELETE /_mock/requests      clear the list
    GET    /_mock/connections   connection / stream counters
    GET    /_mock/events        connection-level event log
    POST   /_mock/reset         clear everything
    GET    /_mock/health        "ok"
"""

import argparse
import base64
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import string
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONFIG = {
    "require_key": None,
    "stall_seconds": 30.0,
    "slow_seconds": 0.2,
    "strict": False,
    "verbose": False,
}

_ALNUM = string.ascii_letters + string.digits


def rand_id(n, alphabet=_ALNUM):
    return "".join(random.choice(alphabet) for _ in range(n))


# --------------------------------------------------------------------------
# Shared state
# --------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_conn = 0
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.gen = getattr(self, "gen", 0) + 1
            self.requests = []
            self.events = []
            self.opened = 0
            self.closed = 0
            self.active = set()
            self.aborted_streams = 0
            self.aborted_requests = 0
            self.resets = 0
            self.total_requests = 0
            self.reused = 0
            self.flaky = {}

    def flaky_fails(self, model, k):
        """-flaky<K>: the first K of every K+1 requests for this model
        name fail, the next one succeeds."""
        with self.lock:
            n = self.flaky.get(model, 0)
            self.flaky[model] = n + 1
            return n % (k + 1) < k

    def new_conn_id(self):
        with self.lock:
            self.next_conn += 1
            return self.next_conn

    def event(self, kind, **kw):
        ev = {"time": time.time(), "type": kind}
        ev.update(kw)
        with self.lock:
            self.events.append(ev)

    def note_request(self, h):
        """Called for every non-/_mock request; counts the connection as
        opened on its first such request (per reset generation)."""
        with self.lock:
            self.total_requests += 1
            if h.conn_nreq > 0:
                self.reused += 1
            h.conn_nreq += 1
            if h.conn_gen != self.gen:
                h.conn_gen = self.gen
                self.opened += 1
                self.active.add(h.conn_id)
                self.events.append({"time": time.time(), "type": "open",
                                    "conn": h.conn_id})

    def conn_closed(self, h):
        with self.lock:
            if h.conn_gen == self.gen and h.conn_id in self.active:
                self.closed += 1
                self.active.discard(h.conn_id)
                self.events.append({"time": time.time(), "type": "close",
                                    "conn": h.conn_id})

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    EVENT_NAMES = {"resets": "reset", "aborted_streams": "aborted_stream",
                   "aborted_requests": "aborted_request"}

    def bump(self, field, conn=None):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)
            self.events.append({"time": time.time(),
                                "type": self.EVENT_NAMES.get(field, field),
                                "conn": conn})

    def connections(self):
        with self.lock:
            return {
                "opened": self.opened,
                "closed": self.closed,
                "active": len(self.active),
                "aborted_streams": self.aborted_streams,
                "aborted_requests": self.aborted_requests,
                "resets": self.resets,
                "requests": self.total_requests,
                "reused": self.reused,
            }


STATE = State()


# --------------------------------------------------------------------------
# Behaviour keywords
# --------------------------------------------------------------------------

class Behaviour:
    """Keywords (substrings of the model name, combinable):
    -slow -stall -error-<code> -reset -reset-mid -tools -chunks<N> -long
    -stream-error
    -flaky<K>     the error applies to the first K of every K+1 requests
                  for this model name (then one success), counted per name
    -ra<N>ms      an error carries retry-after-ms: N (and retry-after in s)
    -ra<N>s       an error carries retry-after: N (seconds) only
    -radate<N>    an error carries retry-after: an HTTP date N s ahead
    -delay<MS>    wait MS before the response header
    -gap<MS>      wait MS before each stream chunk after the first
    -stallat<N>   a stream stalls (stall_seconds) before its chunk N
    """

    def __init__(self, model):
        m = (model or "").lower()
        self.slow = "-slow" in m
        self.stall = "-stall" in m
        em = re.search(r"(?<!stream)-error-(\d{3})", m)
        self.error = int(em.group(1)) if em else None
        self.reset_mid = "-reset-mid" in m
        self.reset = re.search(r"-reset(?!-mid)", m) is not None
        self.tools = "-tools" in m
        cm = re.search(r"-chunks(\d+)", m)
        self.chunks = int(cm.group(1)) if cm else None
        self.long = "-long" in m
        self.stream_error = "-stream-error" in m
        fm = re.search(r"-flaky(\d+)", m)
        self.flaky = int(fm.group(1)) if fm else None
        rm = re.search(r"-ra(\d+)(ms|s)(?![a-z])", m)
        self.ra_ms = int(rm.group(1)) if rm and rm.group(2) == "ms" else None
        self.ra_s = int(rm.group(1)) if rm and rm.group(2) == "s" else None
        dm = re.search(r"-radate(\d+)", m)
        self.ra_date = int(dm.group(1)) if dm else None
        dm = re.search(r"-delay(\d+)", m)
        self.delay = int(dm.group(1)) / 1000.0 if dm else None
        gm = re.search(r"-gap(\d+)", m)
        self.gap = int(gm.group(1)) / 1000.0 if gm else None
        sm = re.search(r"-stallat(\d+)", m)
        self.stall_at = int(sm.group(1)) if sm else None
        self.stall = self.stall and self.stall_at is None

    def retry_after_headers(self):
        if self.ra_ms is not None:
            return [("retry-after-ms", str(self.ra_ms)),
                    ("retry-after", str((self.ra_ms + 999) // 1000))]
        if self.ra_s is not None:
            return [("retry-after", str(self.ra_s))]
        if self.ra_date is not None:
            from email.utils import formatdate
            return [("retry-after",
                     formatdate(time.time() + self.ra_date, usegmt=True))]
        return None


# --------------------------------------------------------------------------
# Content generation helpers
# --------------------------------------------------------------------------

LONG_SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the mock keeps talking.",
    "Gateways must forward every byte of a long answer without truncation.",
    "This paragraph exists only to make the response body about eight kilobytes.",
    "Streaming and buffering paths should both see exactly the same content.",
]
LONG_TARGET = 8192


def est_tokens(texts):
    n = 0
    for t in texts:
        if not isinstance(t, str):
            t = str(t)
        n += len(t.split()) + len(t) // 4
    return max(1, n)


def split_even(units, n):
    out = []
    base, extra = divmod(len(units), n)
    pos = 0
    for i in range(n):
        k = base + (1 if i < extra else 0)
        out.append("".join(units[pos:pos + k]))
        pos += k
    return out


def answer_text(beh, last_user):
    text = "Hello from mock! You said: " + (last_user or "")[:40]
    if beh.long:
        parts = [text]
        i = 0
        size = len(text)
        while size < LONG_TARGET:
            s = " " + LONG_SENTENCES[i % len(LONG_SENTENCES)]
            parts.append(s)
            size += len(s)
            i += 1
        text = "".join(parts)
    return text


def make_pieces(beh, last_user, stops=None, limit=None):
    """Return (pieces, reason, matched_stop). reason in stop|length|stop_sequence."""
    text = answer_text(beh, last_user)
    reason = "stop"
    matched = None
    best = None
    for s in stops or []:
        if isinstance(s, str) and s:
            idx = text.find(s)
            if idx >= 0 and (best is None or idx < best):
                best, matched = idx, s
    if best is not None:
        text = text[:best]
        reason = "stop_sequence"
    words = re.findall(r"\s*\S+|\s+", text)
    if beh.chunks is not None:
        n = beh.chunks
        if n <= 0:
            pieces = []
        elif len(words) >= n:
            pieces = split_even(words, n)
        else:
            while len(text) < n:
                text += " ."
            pieces = split_even(list(text), n)
    elif beh.long:
        pieces = []
        cur = ""
        for w in words:
            cur += w
            if len(cur) >= 80:
                pieces.append(cur)
                cur = ""
        if cur:
            pieces.append(cur)
    else:
        pieces = words
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 \
            and limit < len(pieces):
        pieces = pieces[:limit]
        reason = "length"
        matched = None
    return pieces, reason, matched


# Tool call used by -tools.
TOOL_ARGS = {"location": "Paris, France", "unit": "celsius"}
# OpenAI streams compact JSON arguments in small fragments.
OPENAI_ARG_FRAGS = ['{"', 'location', '":"', 'Paris', ',', ' France', '","',
                    'unit', '":"', 'c', 'elsius', '"}']
# Anthropic streams "partial_json" with ": " separators, starting with "".
ANTHROPIC_ARG_FRAGS = ['', '{"location": "Par', 'is, France"',
                       ', "unit": "celsius"}']
TOOL_TOKENS = len(OPENAI_ARG_FRAGS)


def text_of(content):
    """Text of an OpenAI/Anthropic content (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for p in content:
            if isinstance(p, str):
                out.append(p)
            elif isinstance(p, dict):
                if isinstance(p.get("text"), str):
                    out.append(p["text"])
                elif p.get("type") == "tool_result":
                    out.append(text_of(p.get("content")))
        return " ".join(x for x in out if x)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return ""


def chat_texts(messages, system=None):
    texts = []
    last_user = ""
    if system is not None:
        st = text_of(system)
        if st:
            texts.append(st)
    for m in messages or []:
        if not isinstance(m, dict):
            continue
        t = text_of(m.get("content"))
        if t:
            texts.append(t)
        if m.get("role") == "user":
            last_user = t
    return texts, last_user


def gemini_texts(body):
    texts = []
    last_user = ""
    si = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(si, dict):
        for p in si.get("parts") or []:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                texts.append(p["text"])
    for c in body.get("contents") or []:
        if not isinstance(c, dict):
            continue
        t = " ".join(p["text"] for p in (c.get("parts") or [])
                     if isinstance(p, dict) and isinstance(p.get("text"), str))
        if t:
            texts.append(t)
        if c.get("role", "user") == "user":
            last_user = t
    return texts, last_user


def embedding_vector(text, dims):
    vals = []
    counter = 0
    while len(vals) < dims:
        h = hashlib.sha256(("%s|%d" % (text, counter)).encode("utf-8")).digest()
        for i in range(0, 32, 4):
            (u,) = struct.unpack("<I", h[i:i + 4])
            vals.append(u / 2147483647.5 - 1.0)
        counter += 1
    vals = vals[:dims]
    norm = sum(v * v for v in vals) ** 0.5 or 1.0
    # round-trip through float32 so the JSON and base64 forms agree exactly
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vals]


def dumps_compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def openai_tool_name(body):
    for t in body.get("tools") or []:
        if isinstance(t, dict):
            f = t.get("function") if isinstance(t.get("function"), dict) else t
            if isinstance(f.get("name"), str):
                return f["name"]
    for f in body.get("functions") or []:
        if isinstance(f, dict) and isinstance(f.get("name"), str):
            return f["name"]
    return "get_weather"


def anthropic_tool_name(body):
    for t in body.get("tools") or []:
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            return t["name"]
    return "get_weather"


def gemini_tool_name(body):
    for t in body.get("tools") or []:
        if not isinstance(t, dict):
            continue
        for f in (t.get("functionDeclarations") or t.get("function_declarations")
                  or []):
            if isinstance(f, dict) and isinstance(f.get("name"), str):
                return f["name"]
    return "get_weather"


def _stops(v):
    if isinstance(v, str):
        return [v]
    if isinstance(v, list):
        return [s for s in v if isinstance(s, str)]
    return []


# --------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------

def openai_error(code, model=""):
    table = {
        400: ("invalid_request_error", None,
              "The mock provider was asked to fail this request with 400."),
        401: ("invalid_request_error", "invalid_api_key",
              "Incorrect API key provided: sk-mock***. You can find your API "
              "key at https://platform.openai.com/account/api-keys."),
        403: ("request_forbidden", "unsupported_country_region_territory",
              "Country, region, or territory not supported"),
        404: ("invalid_request_error", "model_not_found",
              "The model `%s` does not exist or you do not have access to it."
              % model),
        429: ("requests", "rate_limit_exceeded",
              "Rate limit reached for %s in organization org-mock on requests "
              "per min (RPM): Limit 3, Used 3, Requested 1. Please try again "
              "in 1s. Visit https://platform.openai.com/account/rate-limits to "
              "learn more." % model),
        500: ("server_error", None,
              "The server had an error while processing your request. Sorry "
              "about that!"),
        502: ("server_error", None, "Bad gateway."),
        503: ("server_error", None, "The server is overloaded or not ready yet."),
    }
    typ, ecode, msg = table.get(
        code, ("server_error" if code >= 500 else "invalid_request_error", None,
               "Mock error %d." % code))
    return {"error": {"message": msg, "type": typ, "param": None, "code": ecode}}


ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "The mock provider was asked to fail this "
                                   "request with 400."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use "
                              "the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of "
                               "bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for "
                              "your organization of 50 requests per minute. "
                              "For details, refer to: https://docs.claude.com/"
                              "en/api/rate-limits."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def anthropic_error(code, message=None, etype=None, request_id=None):
    t, m = ANTHROPIC_ERRORS.get(
        code, ("api_error" if code >= 500 else "invalid_request_error",
               "Mock error %d." % code))
    return {"type": "error",
            "error": {"type": etype or t, "message": message or m},
            "request_id": request_id or "req_011C" + rand_id(20)}


GEMINI_ERRORS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check "
                                "your plan and billing details. For more "
                                "information on this error, head to: "
                                "https://ai.google.dev/gemini-api/docs/rate-limits."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report "
                      "in https://developers.generativeai.google/guide/"
                      "troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could "
                               "complete."),
}


def gemini_error(code, message=None, status=None, details=None):
    st, m = GEMINI_ERRORS.get(
        code, ("INTERNAL" if code >= 500 else "FAILED_PRECONDITION",
               "Mock error %d." % code))
    err = {"code": code, "message": message or m, "status": status or st}
    if details is None and code == 429:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": "1s"}]
    if details:
        err["details"] = details
    return {"error": err}


# --------------------------------------------------------------------------
# HTTP handler
# --------------------------------------------------------------------------

class Aborted(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-provider"
    sys_version = ""
    disable_nagle_algorithm = True

    # ---- connection lifecycle -------------------------------------------
    def setup(self):
        super().setup()
        self.conn_id = STATE.new_conn_id()
        self.conn_gen = None
        self.conn_nreq = 0
        self.server_name_hdr = "mock-provider"
        self._dead = False

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        STATE.conn_closed(self)

    def version_string(self):
        return self.server_name_hdr

    def log_message(self, fmt, *args):
        if CONFIG["verbose"]:
            super().log_message(fmt, *args)

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ---- low level I/O ---------------------------------------------------
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionError("eof in chunk")
                parts.append(data)
                self.rfile.readline(65537)
            return b"".join(parts)
        cl = self.headers.get("Content-Length")
        if cl:
            n = int(cl)
            data = self.rfile.read(n)
            if len(data) != n:
                raise ConnectionError("short body")
            return data
        return b""

    def peer_closed(self, timeout=0.0):
        """True if the peer has closed (EOF / RST / TLS close_notify)."""
        if self._dead:
            return True
        sock = self.connection
        try:
            r, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        try:
            if isinstance(sock, ssl.SSLSocket):
                dup = socket.socket(fileno=os.dup(sock.fileno()))
                try:
                    data = dup.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                finally:
                    dup.close()
                # 0x15 = TLS alert record (close_notify precedes the FIN)
                return data == b"" or data[:1] == b"\x15"
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return data == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def wait_or_abort(self, seconds):
        """Sleep `seconds`, polling for the peer closing. True if it closed."""
        end = time.monotonic() + seconds
        while True:
            rem = end - time.monotonic()
            if rem <= 0:
                return False
            closed = self.peer_closed(min(rem, 0.05))
            if closed:
                return True
            if self._readable_data_pending():
                # client pipelined data; cannot distinguish EOF by peeking
                time.sleep(min(rem, 0.05))

    def _readable_data_pending(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return bool(r)
        except (OSError, ValueError):
            return False

    def rst(self):
        """Abort the TCP connection with an RST (SO_LINGER 0 + close)."""
        STATE.bump("resets", self.conn_id)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass
        self._dead = True
        self.close_connection = True

    def _note_response(self, status, data):
        rec = getattr(self, "_rec", None)
        if rec is not None:
            if status is not None:
                rec["status"] = status
            rec["response_body"] += data.decode("utf-8", "replace")

    def send_raw(self, status, headers, body, content_type):
        self._note_response(status, body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj, headers=(), indent=None,
                  content_type="application/json"):
        if indent is None:
            text = dumps_compact(obj)
        else:
            text = json.dumps(obj, indent=indent, ensure_ascii=False) + "\n"
        self.send_raw(status, list(headers), text.encode("utf-8"), content_type)

    def start_stream(self, content_type, headers=(), status=200):
        self._note_response(status, b"")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        self._note_response(None, data)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def run_stream(self, beh, events, content_type, headers=()):
        """Send `events` (each one HTTP chunk) honouring slow/stall/reset-mid,
        detecting client aborts. Returns normally in all cases."""
        try:
            self.start_stream(content_type, headers)
            for i, ev in enumerate(events):
                if beh.reset_mid and i == 2:
                    self.rst()
                    return
                if i > 0:
                    if beh.stall and i == 1:
                        if self.wait_or_abort(CONFIG["stall_seconds"]):
                            raise Aborted()
                    if beh.stall_at is not None and i == beh.stall_at:
                        if self.wait_or_abort(CONFIG["stall_seconds"]):
                            raise Aborted()
                    if beh.gap:
                        if self.wait_or_abort(beh.gap):
                            raise Aborted()
                    if beh.slow:
                        if self.wait_or_abort(CONFIG["slow_seconds"]):
                            raise Aborted()
                    elif self.peer_closed(0):
                        raise Aborted()
                self.write_chunk(ev)
            if beh.reset_mid:
                self.rst()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (Aborted, OSError):
            STATE.bump("aborted_streams", self.conn_id)
            self.close_connection = True

    def send_partial_then_rst(self, status, obj, headers, content_type):
        body = json.dumps(obj, indent=2).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            time.sleep(0.02)
        except OSError:
            pass
        self.rst()

    # ---- dispatch ----------------------------------------------------------
    def dispatch(self):
        self._started = False
        self._rec = None
        try:
            u = urlsplit(self.path)
            path, qs = u.path, u.query
            try:
                raw = self.read_body()
            except (ValueError, ConnectionError, OSError):
                self.close_connection = True
                return
            if path == "/_mock" or path.startswith("/_mock/"):
                return self.control(path)
            STATE.note_request(self)
            raw_text = raw.decode("utf-8", "replace")
            body = None
            if raw_text.strip():
                try:
                    body = json.loads(raw_text)
                except ValueError:
                    body = raw_text
            self._rec = {
                "method": self.command,
                "path": path,
                "query": qs,
                "headers": self._headers_dict(),
                "body": body,
                "raw_body": raw_text,
                "time": time.time(),
                "conn": self.conn_id,
                "status": None,
                "response_body": "",
            }
            STATE.record(self._rec)
            self.route(path, parse_qs(qs), body)
        except OSError:
            self.close_connection = True
        except Exception:  # pragma: no cover - debugging aid
            if CONFIG["verbose"]:
                traceback.print_exc()
            self.close_connection = True
            if not self._dead:
                try:
                    self.send_json(500, {"error": {
                        "message": "mock internal error",
                        "type": "server_error", "param": None, "code": None}})
                except OSError:
                    pass

    def _headers_dict(self):
        out = {}
        for k, v in self.headers.items():
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return out

    def control(self, path):
        if path == "/_mock/requests":
            if self.command == "DELETE":
                with STATE.lock:
                    STATE.requests = []
                return self.send_json(200, {"ok": True})
            with STATE.lock:
                data = list(STATE.requests)
            return self.send_json(200, data)
        if path == "/_mock/connections":
            return self.send_json(200, STATE.connections())
        if path == "/_mock/events":
            if self.command == "DELETE":
                with STATE.lock:
                    STATE.events = []
                return self.send_json(200, {"ok": True})
            with STATE.lock:
                data = list(STATE.events)
            return self.send_json(200, data)
        if path == "/_mock/reset":
            STATE.reset()
            return self.send_json(200, {"ok": True})
        if path == "/_mock/health":
            return self.send_raw(200, [], b"ok", "text/plain")
        return self.send_json(404, {"error": "unknown control endpoint"})

    def route(self, path, query, body):
        m = re.search(r"/models/([^/:]+):([A-Za-z]+)$", path)
        if m and self.command == "POST":
            return self.gemini(m.group(1), m.group(2), query, body)
        if self.command == "POST":
            if path.endswith("/chat/completions"):
                dep = re.search(r"/deployments/([^/]+)/", path)
                return self.openai_chat(body, dep.group(1) if dep else None)
            if path.endswith("/messages/count_tokens"):
                return self.anthropic_count_tokens(body)
            if path.endswith("/v1/messages") or path == "/messages":
                return self.anthropic_messages(body)
            if path.endswith("/completions"):
                dep = re.search(r"/deployments/([^/]+)/", path)
                return self.openai_completions(body, dep.group(1) if dep else None)
            if path.endswith("/embeddings"):
                dep = re.search(r"/deployments/([^/]+)/", path)
                return self.openai_embeddings(body, dep.group(1) if dep else None)
        if self.command == "GET" and re.search(r"/models/?$", path):
            if self.headers.get("anthropic-version"):
                return self.anthropic_models()
            if "/v1beta/" in path or path.startswith("/v1beta"):
                return self.gemini_models()
            return self.openai_models()
        self._openai_headers()
        return self.send_json(404, {"error": {
            "message": "Invalid URL (%s %s)" % (self.command, path),
            "type": "invalid_request_error", "param": None, "code": None}},
            self._oa_headers, indent=4)

    # ---- common ----------------------------------------------------------
    def behaviour(self, model):
        extra = self.headers.get("x-mock-behaviour") or ""
        return Behaviour((model or "") + " " + extra)

    def pre_checks(self, beh):
        """reset / slow / stall(non-stream). Returns False if handled."""
        if beh.reset:
            self.rst()
            return False
        if beh.delay:
            if self.wait_or_abort(beh.delay):
                STATE.bump("aborted_requests", self.conn_id)
                self.close_connection = True
                return False
        if beh.slow:
            if self.wait_or_abort(CONFIG["slow_seconds"]):
                STATE.bump("aborted_requests", self.conn_id)
                self.close_connection = True
                return False
        return True

    def stall_nonstream(self, beh):
        if beh.stall:
            if self.wait_or_abort(CONFIG["stall_seconds"]):
                STATE.bump("aborted_requests", self.conn_id)
                self.close_connection = True
                return False
        return True

    # ---- OpenAI ------------------------------------------------------------
    def _openai_headers(self, extra=()):
        self.server_name_hdr = "cloudflare"
        self._oa_headers = [
            ("x-request-id", "req_" + uuid.uuid4().hex),
            ("openai-organization", "user-mock"),
            ("openai-processing-ms", str(random.randint(50, 400))),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-reset-requests", "6ms"),
        ] + list(extra)
        return self._oa_headers

    def openai_auth_ok(self):
        key = CONFIG["require_key"]
        if key is None:
            return True
        auth = self.headers.get("Authorization")
        got = None
        if auth and auth.startswith("Bearer "):
            got = auth[len("Bearer "):].strip()
        elif self.headers.get("api-key") is not None:  # Azure OpenAI
            got = self.headers.get("api-key").strip()
        if got == key:
            return True
        if got is None:
            msg = ("You didn't provide an API key. You need to provide your "
                   "API key in an Authorization header using Bearer auth (i.e. "
                   "Authorization: Bearer YOUR_KEY), or as the password field "
                   "(i.e. YOUR_KEY as username, empty password) when using "
                   "HTTPS Basic Auth. You can obtain an API key from "
                   "https://platform.openai.com/account/api-keys.")
        else:
            masked = got[:3] + "*" * max(0, len(got) - 7) + got[-4:] \
                if len(got) > 8 else "*" * len(got)
            msg = ("Incorrect API key provided: %s. You can find your API key "
                   "at https://platform.openai.com/account/api-keys." % masked)
        self._openai_headers()
        self.send_json(401, {"error": {
            "message": msg, "type": "invalid_request_error", "param": None,
            "code": "invalid_api_key"}},
            self._oa_headers + [("www-authenticate", 'Bearer realm="OpenAI API"')],
            indent=4)
        return False

    def openai_fail(self, code, model, beh=None):
        extra = []
        if code == 429:
            extra = [("retry-after", "1"), ("retry-after-ms", "1000"),
                     ("x-ratelimit-limit-requests", "3"),
                     ("x-ratelimit-remaining-requests", "0"),
                     ("x-ratelimit-reset-requests", "1s")]
        ra = beh.retry_after_headers() if beh else None
        if ra is not None:
            extra = [h for h in extra if not h[0].startswith("retry-after")]
            extra += ra
        hdrs = [h for h in self._openai_headers()
                if not (code == 429 and h[0].startswith("x-ratelimit"))] + extra
        self.send_json(code, openai_error(code, model), hdrs, indent=4)

    def openai_bad_request(self, message, param=None, code=None):
        self._openai_headers()
        self.send_json(400, {"error": {"message": message,
                                       "type": "invalid_request_error",
                                       "param": param, "code": code}},
                       self._oa_headers, indent=4)

    def _openai_common(self, body, dep):
        if not self.openai_auth_ok():
            return None
        if not isinstance(body, dict):
            self.openai_bad_request(
                "We could not parse the JSON body of your request. (HINT: This "
                "likely means you aren't using your HTTP library correctly. The "
                "OpenAI API expects a JSON payload, but what was sent was not "
                "valid JSON. If you have trouble figuring out how to fix this, "
                "please contact us through our help center at "
                "help.openai.com.)")
            return None
        model = body.get("model") if isinstance(body.get("model"), str) else None
        model = model or dep
        beh = self.behaviour(model)
        if not self.pre_checks(beh):
            return None
        if beh.error and (beh.flaky is None
                          or STATE.flaky_fails(model, beh.flaky)):
            self.openai_fail(beh.error, model or "", beh)
            return None
        if model is None:
            self.openai_bad_request("you must provide a model parameter")
            return None
        return model, beh

    def openai_chat(self, body, dep):
        r = self._openai_common(body, dep)
        if r is None:
            return
        model, beh = r
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            return self.openai_bad_request(
                "Missing required parameter: 'messages'.", "messages",
                "missing_required_parameter")
        if not msgs:
            return self.openai_bad_request(
                "Invalid 'messages': empty array. Expected an array with "
                "minimum length 1, but got an empty array instead.",
                "messages", "empty_array")
        stream = bool(body.get("stream"))
        texts, last_user = chat_texts(msgs)
        prompt_tokens = est_tokens(texts)
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        cid = "chatcmpl-" + rand_id(29)
        created = int(time.time())
        fp = "fp_" + hashlib.md5(model.encode()).hexdigest()[:10]
        if beh.tools:
            name = openai_tool_name(body)
            call_id = "call_" + rand_id(24)
            pieces = []
            finish = "tool_calls"
            completion_tokens = TOOL_TOKENS
        else:
            pieces, reason, _ = make_pieces(beh, last_user,
                                            _stops(body.get("stop")), limit)
            finish = "length" if reason == "length" else "stop"
            completion_tokens = len(pieces)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0},
        }
        hdrs = self._openai_headers()
        if not stream:
            if not self.stall_nonstream(beh):
                return
            if beh.tools:
                message = {"role": "assistant", "content": None,
                           "tool_calls": [{
                               "id": call_id, "type": "function",
                               "function": {"name": name,
                                            "arguments": "".join(OPENAI_ARG_FRAGS)}}],
                           "refusal": None, "annotations": []}
            else:
                message = {"role": "assistant", "content": "".join(pieces),
                           "refusal": None, "annotations": []}
            resp = {
                "id": cid, "object": "chat.completion", "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage, "service_tier": "default",
                "system_fingerprint": fp,
            }
            if beh.reset_mid:
                return self.send_partial_then_rst(200, resp, hdrs,
                                                  "application/json")
            return self.send_json(200, resp, hdrs, indent=2)

        so = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        include_usage = bool(so.get("include_usage"))
        obfuscate = so.get("include_obfuscation", True) is not False

        def chunk(delta, fin=None):
            d = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": model, "service_tier": "default",
                 "system_fingerprint": fp,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": fin}]}
            if include_usage:
                d["usage"] = None
            if obfuscate:
                d["obfuscation"] = hashlib.md5(
                    dumps_compact(delta).encode()).hexdigest()[:1 + len(dumps_compact(delta)) % 12]
            return "data: " + dumps_compact(d) + "\n\n"

        events = []
        if beh.tools:
            events.append(chunk({"role": "assistant", "content": None,
                                 "tool_calls": [{"index": 0, "id": call_id,
                                                 "type": "function",
                                                 "function": {"name": name,
                                                              "arguments": ""}}],
                                 "refusal": None}))
            for frag in OPENAI_ARG_FRAGS:
                events.append(chunk({"tool_calls": [
                    {"index": 0, "function": {"arguments": frag}}]}))
        else:
            events.append(chunk({"role": "assistant", "content": "",
                                 "refusal": None}))
            for p in pieces:
                events.append(chunk({"content": p}))
        if beh.stream_error:
            events = events[:3]
            events.append("data: " + dumps_compact(openai_error(500, model)) + "\n\n")
            return self.run_stream(beh, events, "text/event-stream; charset=utf-8", hdrs)
        events.append(chunk({}, finish))
        if include_usage:
            d = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": model, "service_tier": "default",
                 "system_fingerprint": fp, "choices": [], "usage": usage}
            if obfuscate:
                d["obfuscation"] = "mockusage"
            events.append("data: " + dumps_compact(d) + "\n\n")
        events.append("data: [DONE]\n\n")
        self.run_stream(beh, events, "text/event-stream; charset=utf-8", hdrs)

    def openai_completions(self, body, dep):
        r = self._openai_common(body, dep)
        if r is None:
            return
        model, beh = r
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            ptexts = [p if isinstance(p, str) else " ".join(map(str, p))
                      if isinstance(p, list) else str(p) for p in prompt]
        else:
            ptexts = [str(prompt)]
        last = ptexts[-1] if ptexts else ""
        prompt_tokens = est_tokens(ptexts)
        pieces, reason, _ = make_pieces(beh, last, _stops(body.get("stop")),
                                        body.get("max_tokens"))
        finish = "length" if reason == "length" else "stop"
        cid = "cmpl-" + rand_id(29)
        created = int(time.time())
        usage = {"prompt_tokens": prompt_tokens,
                 "completion_tokens": len(pieces),
                 "total_tokens": prompt_tokens + len(pieces)}
        hdrs = self._openai_headers()
        if not body.get("stream"):
            if not self.stall_nonstream(beh):
                return
            resp = {"id": cid, "object": "text_completion", "created": created,
                    "model": model,
                    "choices": [{"text": "".join(pieces), "index": 0,
                                 "logprobs": None, "finish_reason": finish}],
                    "usage": usage}
            if beh.reset_mid:
                return self.send_partial_then_rst(200, resp, hdrs,
                                                  "application/json")
            return self.send_json(200, resp, hdrs, indent=2)
        so = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        include_usage = bool(so.get("include_usage"))

        def chunk(text, fin=None):
            d = {"id": cid, "object": "text_completion", "created": created,
                 "choices": [{"text": text, "index": 0, "logprobs": None,
                              "finish_reason": fin}],
                 "model": model}
            if include_usage:
                d["usage"] = None
            return "data: " + dumps_compact(d) + "\n\n"

        events = [chunk(p) for p in pieces]
        events.append(chunk("", finish))
        if include_usage:
            events.append("data: " + dumps_compact({
                "id": cid, "object": "text_completion", "created": created,
                "choices": [], "model": model, "usage": usage}) + "\n\n")
        events.append("data: [DONE]\n\n")
        self.run_stream(beh, events, "text/event-stream; charset=utf-8", hdrs)

    def openai_embeddings(self, body, dep):
        r = self._openai_common(body, dep)
        if r is None:
            return
        model, beh = r
        inp = body.get("input")
        if inp is None:
            return self.openai_bad_request(
                "Missing required parameter: 'input'.", "input",
                "missing_required_parameter")
        if isinstance(inp, str):
            inputs = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            inputs = [inp]  # a single token array
        elif isinstance(inp, list):
            inputs = inp
        else:
            return self.openai_bad_request("'input' : input must be a string "
                                           "or an array", "input")
        dims = body.get("dimensions")
        if not isinstance(dims, int) or dims <= 0:
            dims = 16
        b64 = body.get("encoding_format") == "base64"
        data = []
        ntok = 0
        for i, x in enumerate(inputs):
            key = x if isinstance(x, str) else json.dumps(x)
            ntok += len(x) if isinstance(x, list) else est_tokens([key])
            vec = embedding_vector(key, dims)
            if b64:
                emb = base64.b64encode(struct.pack("<%df" % dims, *vec)).decode()
            else:
                emb = vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if not self.stall_nonstream(beh):
            return
        resp = {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": ntok, "total_tokens": ntok}}
        self.send_json(200, resp, self._openai_headers(), indent=2)

    def openai_models(self):
        if not self.openai_auth_ok():
            return
        ids = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small",
               "gpt-3.5-turbo-instruct"]
        self.send_json(200, {"object": "list", "data": [
            {"id": i, "object": "model", "created": 1715367049,
             "owned_by": "system"} for i in ids]},
            self._openai_headers(), indent=2)

    # ---- Anthropic -----------------------------------------------------------
    def _anthropic_headers(self):
        self.server_name_hdr = "cloudflare"
        rid = "req_011C" + rand_id(20)
        self._an_headers = [
            ("request-id", rid),
            ("anthropic-organization-id", str(uuid.uuid4())),
            ("anthropic-ratelimit-requests-limit", "4000"),
            ("anthropic-ratelimit-requests-remaining", "3999"),
            ("x-robots-tag", "none"),
        ]
        return self._an_headers

    def anthropic_fail(self, code, message=None, etype=None):
        hdrs = self._anthropic_headers()
        if code == 429:
            hdrs = hdrs + [("retry-after", "1"), ("x-should-retry", "true")]
        elif code >= 500:
            hdrs = hdrs + [("x-should-retry", "true")]
        self.send_json(code, anthropic_error(code, message, etype, hdrs[0][1]),
                       hdrs)

    def anthropic_auth_ok(self):
        if CONFIG["strict"] and not self.headers.get("anthropic-version"):
            self.anthropic_fail(400, "anthropic-version: header is required")
            return False
        key = CONFIG["require_key"]
        if key is None:
            return True
        got = self.headers.get("x-api-key")
        if got is None:
            self.anthropic_fail(401, "x-api-key header is required")
            return False
        if got != key:
            self.anthropic_fail(401, "invalid x-api-key")
            return False
        return True

    def anthropic_count_tokens(self, body):
        if not self.anthropic_auth_ok():
            return
        if not isinstance(body, dict):
            return self.anthropic_fail(400, "There was an error parsing the "
                                            "body of your request.")
        texts, _ = chat_texts(body.get("messages"), body.get("system"))
        self.send_json(200, {"input_tokens": est_tokens(texts)},
                       self._anthropic_headers())

    def anthropic_messages(self, body):
        if not self.anthropic_auth_ok():
            return
        if not isinstance(body, dict):
            return self.anthropic_fail(
                400, "There was an error parsing the body of your request. "
                     "Please make sure it is valid JSON.")
        model = body.get("model") if isinstance(body.get("model"), str) else None
        beh = self.behaviour(model)
        if not self.pre_checks(beh):
            return
        if beh.error:
            return self.anthropic_fail(beh.error)
        if model is None:
            return self.anthropic_fail(400, "model: Field required")
        if "max_tokens" not in body:
            return self.anthropic_fail(400, "max_tokens: Field required")
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            return self.anthropic_fail(400, "messages: Field required")
        stream = bool(body.get("stream"))
        texts, last_user = chat_texts(msgs, body.get("system"))
        input_tokens = est_tokens(texts)
        mid = "msg_01" + rand_id(22)
        if beh.tools:
            tool_id = "toolu_01" + rand_id(22)
            name = anthropic_tool_name(body)
            stop_reason, stop_seq = "tool_use", None
            output_tokens = TOOL_TOKENS
            content = [{"type": "tool_use", "id": tool_id, "name": name,
                        "input": dict(TOOL_ARGS)}]
        else:
            limit = body.get("max_tokens")
            pieces, reason, matched = make_pieces(
                beh, last_user, _stops(body.get("stop_sequences")), limit)
            stop_reason = {"stop": "end_turn", "length": "max_tokens",
                           "stop_sequence": "stop_sequence"}[reason]
            stop_seq = matched if reason == "stop_sequence" else None
            output_tokens = len(pieces)
            content = [{"type": "text", "text": "".join(pieces)}]

        def usage(out):
            return {"input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                       "ephemeral_1h_input_tokens": 0},
                    "output_tokens": out, "service_tier": "standard"}

        hdrs = self._anthropic_headers()
        if not stream:
            if not self.stall_nonstream(beh):
                return
            resp = {"id": mid, "type": "message", "role": "assistant",
                    "model": model, "content": content,
                    "stop_reason": stop_reason, "stop_sequence": stop_seq,
                    "usage": usage(output_tokens)}
            if beh.reset_mid:
                return self.send_partial_then_rst(200, resp, hdrs,
                                                  "application/json")
            return self.send_json(200, resp, hdrs)

        def ev(obj, raw=None):
            return "event: %s\ndata: %s\n\n" % (obj["type"], raw or dumps_compact(obj))

        events = [ev({"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage(1)}})]
        if beh.tools:
            events.append(ev({"type": "content_block_start", "index": 0,
                              "content_block": {"type": "tool_use", "id": tool_id,
                                                "name": name, "input": {}}}))
            events.append(ev({"type": "ping"}, '{"type": "ping"}'))
            for frag in ANTHROPIC_ARG_FRAGS:
                events.append(ev({"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "input_json_delta",
                                            "partial_json": frag}}))
        else:
            events.append(ev({"type": "content_block_start", "index": 0,
                              "content_block": {"type": "text", "text": ""}}))
            events.append(ev({"type": "ping"}, '{"type": "ping"}'))
            for p in pieces:
                events.append(ev({"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": p}}))
        if beh.stream_error:
            events = events[:5]
            events.append(ev({"type": "error", "error": {
                "type": "overloaded_error", "message": "Overloaded"}}))
            return self.run_stream(beh, events, "text/event-stream; charset=utf-8", hdrs)
        events.append(ev({"type": "content_block_stop", "index": 0}))
        events.append(ev({"type": "message_delta",
                          "delta": {"stop_reason": stop_reason,
                                    "stop_sequence": stop_seq},
                          "usage": {"output_tokens": output_tokens}}))
        events.append(ev({"type": "message_stop"}))
        self.run_stream(beh, events, "text/event-stream; charset=utf-8", hdrs)

    def anthropic_models(self):
        if not self.anthropic_auth_ok():
            return
        ids = ["claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"]
        self.send_json(200, {"data": [
            {"type": "model", "id": i, "display_name": i,
             "created_at": "2025-01-01T00:00:00Z"} for i in ids],
            "has_more": False, "first_id": ids[0], "last_id": ids[-1]},
            self._anthropic_headers())

    # ---- Gemini ------------------------------------------------------------
    def _gemini_headers(self):
        self.server_name_hdr = "scaffolding on HTTPServer2"
        return [("Vary", "Origin, X-Origin, Referer"),
                ("x-xss-protection", "0"), ("x-frame-options", "SAMEORIGIN"),
                ("x-content-type-options", "nosniff"),
                ("server-timing", "gfet4t7; dur=%d" % random.randint(100, 900))]

    def gemini_fail(self, code, message=None, status=None, details=None):
        self.send_json(code, gemini_error(code, message, status, details),
                       self._gemini_headers(), indent=2,
                       content_type="application/json; charset=UTF-8")

    def gemini_auth_ok(self, query):
        key = CONFIG["require_key"]
        if key is None:
            return True
        got = self.headers.get("x-goog-api-key")
        if got is None and query.get("key"):
            got = query["key"][0]
        if got is None:
            self.gemini_fail(
                403, "Method doesn't allow unregistered callers (callers "
                     "without established identity). Please use API Key or "
                     "other form of API consumer identity to call this API.",
                "PERMISSION_DENIED")
            return False
        if got != key:
            self.gemini_fail(
                400, "API key not valid. Please pass a valid API key.",
                "INVALID_ARGUMENT",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                  "reason": "API_KEY_INVALID",
                  "domain": "googleapis.com",
                  "metadata": {"service": "generativelanguage.googleapis.com"}}])
            return False
        return True

    def gemini(self, model, method, query, body):
        if not self.gemini_auth_ok(query):
            return
        if not isinstance(body, dict):
            return self.gemini_fail(
                400, "Invalid JSON payload received. Unexpected token.",
                "INVALID_ARGUMENT")
        beh = self.behaviour(model)
        if not self.pre_checks(beh):
            return
        if beh.error:
            return self.gemini_fail(beh.error)
        if method in ("generateContent", "streamGenerateContent"):
            return self.gemini_generate(model, method == "streamGenerateContent",
                                        query, body, beh)
        if method == "countTokens":
            texts, _ = gemini_texts(body.get("generateContentRequest") or body)
            return self.send_json(200, {"totalTokens": est_tokens(texts)},
                                  self._gemini_headers(), indent=2,
                                  content_type="application/json; charset=UTF-8")
        if method in ("embedContent", "batchEmbedContents"):
            if not self.stall_nonstream(beh):
                return
            reqs = body.get("requests") if method == "batchEmbedContents" \
                else [body]
            if not isinstance(reqs, list):
                return self.gemini_fail(400, "* BatchEmbedContentsRequest."
                                             "requests: requests is not "
                                             "specified\n", "INVALID_ARGUMENT")
            embs = []
            for r in reqs:
                r = r if isinstance(r, dict) else {}
                content = r.get("content") if isinstance(r.get("content"), dict) else {}
                text = " ".join(p.get("text", "") for p in content.get("parts") or []
                                if isinstance(p, dict))
                dims = r.get("outputDimensionality")
                if not isinstance(dims, int) or dims <= 0:
                    dims = 16
                embs.append({"values": embedding_vector(text, dims)})
            resp = {"embedding": embs[0]} if method == "embedContent" \
                else {"embeddings": embs}
            return self.send_json(200, resp, self._gemini_headers(), indent=2,
                                  content_type="application/json; charset=UTF-8")
        return self.gemini_fail(
            404, "models/%s is not found for API version v1beta, or is not "
                 "supported for %s. Call ListModels to see the list of "
                 "available models and their supported methods." % (model, method),
            "NOT_FOUND")

    def gemini_generate(self, model, stream, query, body, beh):
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            return self.gemini_fail(
                400, "* GenerateContentRequest.contents: contents is not "
                     "specified\n", "INVALID_ARGUMENT")
        texts, last_user = gemini_texts(body)
        prompt_tokens = est_tokens(texts)
        gc = body.get("generationConfig") or body.get("generation_config") or {}
        if not isinstance(gc, dict):
            gc = {}
        rid = rand_id(22, string.ascii_letters + string.digits + "-_")
        if beh.tools:
            name = gemini_tool_name(body)
            parts_list = [[{"functionCall": {"name": name,
                                             "args": dict(TOOL_ARGS)}}]]
            finish = "STOP"
            cand_tokens = [TOOL_TOKENS]
        else:
            pieces, reason, _ = make_pieces(beh, last_user,
                                            _stops(gc.get("stopSequences")),
                                            gc.get("maxOutputTokens"))
            finish = "MAX_TOKENS" if reason == "length" else "STOP"
            parts_list = [[{"text": p}] for p in pieces] or [[{"text": ""}]]
            cand_tokens = [1] * len(pieces) or [0]

        def usage(ct):
            return {"promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": ct,
                    "totalTokenCount": prompt_tokens + ct,
                    "promptTokensDetails": [{"modality": "TEXT",
                                             "tokenCount": prompt_tokens}]}

        def response(parts, fin, ct):
            cand = {"content": {"parts": parts, "role": "model"}}
            if fin:
                cand["finishReason"] = fin
            cand["index"] = 0
            return {"candidates": [cand], "usageMetadata": usage(ct),
                    "modelVersion": model, "responseId": rid}

        hdrs = self._gemini_headers()
        total = sum(cand_tokens)
        if not stream:
            if not self.stall_nonstream(beh):
                return
            if beh.tools:
                parts = parts_list[0]
            else:
                parts = [{"text": "".join(p[0]["text"] for p in parts_list)}]
            resp = response(parts, finish, total)
            if beh.reset_mid:
                return self.send_partial_then_rst(
                    200, resp, hdrs, "application/json; charset=UTF-8")
            return self.send_json(200, resp, hdrs, indent=2,
                                  content_type="application/json; charset=UTF-8")
        objs = []
        acc = 0
        for i, parts in enumerate(parts_list):
            acc += cand_tokens[i]
            last = i == len(parts_list) - 1
            objs.append(response(parts, finish if last else None, acc))
        sse = (query.get("alt") or [""])[0] == "sse"
        if sse:
            enc = lambda o: "data: " + json.dumps(o, separators=(",", ": "),
                                                  ensure_ascii=False) + "\r\n\r\n"
            events = [enc(o) for o in objs]
            if beh.stream_error:
                events = events[:2] + [enc(gemini_error(503))]
            return self.run_stream(beh, events, "text/event-stream", hdrs)
        # non-SSE streaming: a JSON array delivered incrementally
        events = []
        for i, o in enumerate(objs):
            txt = json.dumps(o, indent=2, ensure_ascii=False)
            events.append(("[" if i == 0 else "\n,\r\n") + txt)
        if beh.stream_error:
            events = events[:2] + ["\n,\r\n" + json.dumps(gemini_error(503), indent=2)]
        events.append("\n]")
        self.run_stream(beh, events, "application/json; charset=UTF-8", hdrs)

    def gemini_models(self):
        if not self.gemini_auth_ok(parse_qs(urlsplit(self.path).query)):
            return
        ids = ["gemini-2.0-flash", "gemini-2.5-flash", "text-embedding-004"]
        self.send_json(200, {"models": [
            {"name": "models/" + i, "version": "001", "displayName": i,
             "supportedGenerationMethods": ["generateContent", "countTokens"]}
            for i in ids]}, self._gemini_headers(), indent=2,
            content_type="application/json; charset=UTF-8")


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------

class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    ssl_ctx = None

    def finish_request(self, request, client_address):
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        try:
            request.settimeout(10)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError) as e:
            STATE.event("tls_handshake_failed", error=str(e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if CONFIG["verbose"]:
            super().handle_error(request, client_address)


class MockServer6(MockServer):
    address_family = socket.AF_INET6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--require-key", default=None,
                    help="require this API key (Bearer / x-api-key / "
                         "x-goog-api-key)")
    ap.add_argument("--stall-seconds", type=float, default=30.0)
    ap.add_argument("--slow-ms", type=float, default=200.0)
    ap.add_argument("--strict", action="store_true",
                    help="enforce anthropic-version header")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    CONFIG.update(require_key=a.require_key, stall_seconds=a.stall_seconds,
                  slow_seconds=a.slow_ms / 1000.0, strict=a.strict,
                  verbose=a.verbose)
    cls = MockServer6 if ":" in a.host else MockServer
    srv = cls((a.host, a.port), Handler)
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        try:
            ctx.set_alpn_protocols(["http/1.1"])
        except NotImplementedError:
            pass
        srv.ssl_ctx = ctx

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    sys.stdout.write("READY %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
