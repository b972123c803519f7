"""Observability (issue 9): ai_metrics_zone / ai_metrics in the Prometheus
text format, scraped by a strict parser written here; the $ai_* log
variables in a JSON access log; request ids; counters across workers and
across `nginx -s reload`."""

import hashlib
import json
import math
import os
import re
import threading
import time

import pytest

from conftest import PROVIDER_KEY, Gateway, free_port, make_workdir

KEYS = {
    "a": "aigw-metrics-a-SECRET-00000000000000000001",
    "b": "aigw-metrics-b-SECRET-00000000000000000002",
    "frozen": "aigw-metrics-frozen-SECRET-0000000000003",
}

PRICE_IN, PRICE_OUT = 2.5, 10.0      # USD per million tokens, for gpt-4o

LOG_FORMAT = (
    "log_format aijson escape=json '{"
    '"rid":"$ai_request_id","status":"$status","pid":"$pid",'
    '"tenant":"$ai_tenant","key_id":"$ai_key_id","key_sha":"$ai_key_sha256",'
    '"model":"$ai_model","provider":"$ai_provider",'
    '"upstream_model":"$ai_upstream_model","stream":"$ai_stream",'
    '"prompt":"$ai_prompt_tokens","completion":"$ai_completion_tokens",'
    '"cached":"$ai_cached_tokens","cost":"$ai_cost","cache":"$ai_cache",'
    '"attempts":"$ai_attempts","ttfb":"$ai_ttfb",'
    '"reason":"$ai_status_reason"'
    "}';")


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def write_tenants(tenants):
    d = make_workdir("aigw-mx-tenants-")
    path = os.path.join(d, "tenants.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "tenants": tenants}, f)
    return path


def default_tenants():
    return write_tenants({
        "team-a": {"keys": [{"id": "a-main", "sha256": sha(KEYS["a"])}]},
        "team-b": {"keys": [{"id": "b-main", "sha256": sha(KEYS["b"])}]},
        "team-frozen": {"limits": {"tokens_per_day": 0},
                        "keys": [{"id": "f", "sha256": sha(KEYS["frozen"])}]},
    })


def make_gateway(mock, tenants=None, zone="ai_metrics_zone zone=aigw_mx:1m;",
                 workers=1, extra=""):
    ai_log = "ai.log"
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%(port)d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o    mock:gpt-4o-mock alias=gpt4;
    ai_model err429    mock:gpt-4o-error-429;
    ai_model slow      mock:gpt-4o-slow-chunks3;
    ai_model "we\\"ird\\\\name\\n2" mock:gpt-4o-weird;
    %(tenants)s
    ai_limits zone=aigw_limits:1m;
    ai_price gpt-4o input=%(pin)s output=%(pout)s;
    %(zone)s
    %(log_format)s
    %(extra)s
""" % dict(port=mock.port, zone=zone,
           tenants="" if tenants is False else
           "ai_tenants %s;" % (tenants or default_tenants()),
           pin=PRICE_IN, pout=PRICE_OUT, log_format=LOG_FORMAT, extra=extra),
        """
        location /v1/ { ai_gateway; access_log %s aijson; }
        location = /metrics { ai_metrics; }
""" % ai_log, env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=workers)
    g.ai_log = os.path.join(g.dir, ai_log)
    return g


@pytest.fixture
def gw(mock):
    g = make_gateway(mock, workers=2).start()
    yield g
    g.stop()


def auth(k):
    return {"Authorization": "Bearer " + KEYS[k]}


def chat(model="gpt-4o", content="hello metrics", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": content}]}
    b.update(kw)
    return b


def cost_micro(prompt, completion):
    return int(prompt * PRICE_IN + completion * PRICE_OUT + 0.5)


def stream_usage(r):
    usage = None
    for ev in r.events():
        if ev == "[DONE]":
            continue
        d = json.loads(ev)
        if d.get("usage"):
            usage = d["usage"]
    return usage


# ---- a strict parser of the Prometheus text format 0.0.4 ----------------

METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ParseError(AssertionError):
    pass


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ParseError("bad value %r" % s)
    return float(s)


def parse_labels(s, i, lineno):
    """s[i] == '{'; returns (labels, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL_RE.match(s, i)
        if not m:
            raise ParseError("line %d: bad label name at %r" % (lineno, s[i:]))
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ParseError("line %d: expected =\" after %s" % (lineno, name))
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ParseError("line %d: unterminated label value" % lineno)
            c = s[i]
            if c == "\\":
                e = s[i + 1]
                if e == "\\":
                    val.append("\\")
                elif e == '"':
                    val.append('"')
                elif e == "n":
                    val.append("\n")
                else:
                    raise ParseError("line %d: bad escape \\%s" % (lineno, e))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError("line %d: raw newline in a value" % lineno)
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ParseError("line %d: duplicate label %s" % (lineno, name))
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ParseError("line %d: expected , or } at %r" % (lineno,
                                                                 s[i:]))


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[:-len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                return base
    return name


def parse_prometheus(text):
    """Families: name -> {"type", "help", "samples": [(name, labels, v)]}.
    Strict: every line parses, every family has HELP and TYPE before its
    samples, families are contiguous, no sample is repeated, histograms are
    complete, cumulative and end in +Inf == _count."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families = {}
    types, helps = {}, {}
    order = []
    seen = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not METRIC_RE.fullmatch(name):
                    raise ParseError("line %d: bad name %r" % (lineno, name))
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ParseError("line %d: bad TYPE" % lineno)
                    if name in types:
                        raise ParseError("line %d: second TYPE" % lineno)
                    if name in families:
                        raise ParseError("line %d: TYPE after samples"
                                         % lineno)
                    types[name] = parts[3]
                else:
                    if name in helps:
                        raise ParseError("line %d: second HELP" % lineno)
                    help_text = parts[3] if len(parts) == 4 else ""
                    if re.search(r"\\[^\\n]", help_text.replace("\\\\", "")):
                        raise ParseError("line %d: bad escape in HELP"
                                         % lineno)
                    helps[name] = help_text
            continue
        m = METRIC_RE.match(line)
        if not m:
            raise ParseError("line %d: bad sample %r" % (lineno, line))
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, lineno)
        if i >= len(line) or line[i] != " ":
            raise ParseError("line %d: expected a space before the value"
                             % lineno)
        rest = line[i + 1:].split(" ")
        if len(rest) not in (1, 2) or rest[0] == "":
            raise ParseError("line %d: bad value part %r" % (lineno, rest))
        value = parse_value(rest[0])
        if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
            raise ParseError("line %d: bad timestamp" % lineno)
        fam = family_of(name, types)
        if fam not in types or fam not in helps:
            raise ParseError("line %d: %s has no HELP/TYPE before it"
                             % (lineno, fam))
        if fam not in families:
            if fam in order:
                raise ParseError("line %d: %s is not contiguous"
                                 % (lineno, fam))
            families[fam] = {"type": types[fam], "help": helps[fam],
                             "samples": []}
            order.append(fam)
        elif order[-1] != fam:
            raise ParseError("line %d: %s is not contiguous" % (lineno, fam))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError("line %d: repeated sample %r" % (lineno, key))
        seen.add(key)
        if types[fam] == "counter" and (value < 0 or math.isnan(value)):
            raise ParseError("line %d: negative counter" % lineno)
        families[fam]["samples"].append((name, labels, value))
    for name in types:
        families.setdefault(name, {"type": types[name],
                                   "help": helps.get(name), "samples": []})
        if name not in helps:
            raise ParseError("%s has a TYPE and no HELP" % name)
    for name, fam in families.items():
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None,
                                     "count": None})
        if sname == name + "_bucket":
            assert "le" in labels, "%s: a bucket without le" % name
            s["buckets"].append((parse_value(labels["le"]), value))
        elif sname == name + "_sum":
            s["sum"] = value
        elif sname == name + "_count":
            s["count"] = value
        else:
            raise ParseError("%s: stray sample %s" % (name, sname))
    for rest, s in series.items():
        b = s["buckets"]
        assert b, "%s%r: no buckets" % (name, rest)
        assert s["sum"] is not None and s["count"] is not None, (name, rest)
        les = [le for le, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), les
        assert les[-1] == math.inf, "%s%r: no +Inf bucket" % (name, rest)
        counts = [c for _, c in b]
        assert all(x <= y for x, y in zip(counts, counts[1:])), \
            "%s%r: buckets are not cumulative: %r" % (name, rest, counts)
        assert counts[-1] == s["count"], "%s: +Inf != _count" % name
        assert s["sum"] >= 0


def scrape(g):
    r = g.request("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.data.decode("utf-8")
    fams = parse_prometheus(text)
    for name in fams:
        assert name.startswith("aigw_"), name
    return fams


def value(fams, name, default=None, **labels):
    """The one sample of `name` whose labels include `labels`."""
    fam = fams[family_of(name, {k: v["type"] for k, v in fams.items()})]
    found = [v for n, l, v in fam["samples"]
             if n == name and all(l.get(k) == x for k, x in labels.items())]
    if not found:
        if default is not None:
            return default
        raise AssertionError("no %s%r" % (name, labels))
    assert len(found) == 1, (name, labels, found)
    return found[0]


def total(fams, name, **labels):
    fam = fams[family_of(name, {k: v["type"] for k, v in fams.items()})]
    return sum(v for n, l, v in fam["samples"]
               if n == name and all(l.get(k) == x for k, x in labels.items()))


def read_log(g):
    with open(g.ai_log) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_log_lines(g, n, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(g.ai_log) and len(read_log(g)) >= n:
            return read_log(g)
        time.sleep(0.05)
    raise AssertionError("fewer than %d log lines" % n)


def worker_pids(g):
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == g.proc.pid and fields[0] != "Z":
            pids.add(int(d))
    return pids


# ---- the parser itself ---------------------------------------------------

def test_parser_is_strict():
    good = ('# HELP x_total A "help" \\\\ \\n.\n# TYPE x_total counter\n'
            'x_total{a="q\\"\\\\\\n"} 1\n')
    fams = parse_prometheus(good)
    assert fams["x_total"]["samples"][0][1] == {"a": 'q"\\\n'}
    bad = [
        "x_total 1\n",                                        # no TYPE
        "# TYPE x_total counter\nx_total 1\n",                # no HELP
        '# HELP x y\n# TYPE x gauge\nx{a="b} 1\n',            # unterminated
        '# HELP x y\n# TYPE x gauge\nx{a="\\t"} 1\n',         # bad escape
        "# HELP x y\n# TYPE x gauge\nx one\n",                # bad value
        "# HELP x y\n# TYPE x gauge\nx 1\nx 1\n",             # repeated
        "# HELP h y\n# TYPE h histogram\n"                    # not cumulative
        'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
        "# HELP h y\n# TYPE h histogram\n"                    # no +Inf
        'h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
        "# HELP h y\n# TYPE h histogram\n"                    # +Inf != count
        'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 2\n',
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_prometheus(text)


# ---- metrics ---------------------------------------------------------------

def test_exact_counts_after_a_known_sequence(gw):
    prompt = completion = cost = 0

    for i in range(3):
        r = gw.chat(chat(content="request number %d" % i), headers=auth("a"))
        assert r.status == 200, r
        u = r.json()["usage"]
        prompt += u["prompt_tokens"]
        completion += u["completion_tokens"]
        cost += cost_micro(u["prompt_tokens"], u["completion_tokens"])

    r = gw.chat(chat(stream=True, stream_options={"include_usage": True}),
                headers=auth("a"))
    assert r.status == 200, r
    u = stream_usage(r)
    assert u, r
    prompt += u["prompt_tokens"]
    completion += u["completion_tokens"]
    cost += cost_micro(u["prompt_tokens"], u["completion_tokens"])

    for _ in range(2):
        assert gw.chat(chat(model="no-such-model"),
                       headers=auth("a")).status == 404
        assert gw.chat(chat(model="err429"), headers=auth("a")).status == 429

    assert gw.chat(chat(), headers=auth("frozen")).status == 429
    assert gw.chat(chat()).status == 401
    assert gw.request("GET", "/v1/nothing-here",
                      headers=auth("b")).status == 404

    f = scrape(gw)

    a = dict(model="gpt-4o", provider="mock", tenant="team-a")
    assert value(f, "aigw_requests_total", status_class="2xx", **a) == 4
    assert total(f, "aigw_requests_total", **a) == 4
    assert value(f, "aigw_requests_total", model="unknown", provider="none",
                 tenant="team-a", status_class="4xx") == 2
    assert value(f, "aigw_requests_total", model="err429", provider="mock",
                 tenant="team-a", status_class="4xx") == 2
    assert value(f, "aigw_requests_total", model="gpt-4o", provider="mock",
                 tenant="team-frozen", status_class="4xx") == 1
    assert value(f, "aigw_requests_total", model="unknown", provider="none",
                 tenant="none", status_class="4xx") == 1
    assert value(f, "aigw_requests_total", model="unknown", provider="none",
                 tenant="team-b", status_class="4xx") == 1
    assert total(f, "aigw_requests_total") == 11
    # a client's model name never becomes a label
    assert not [l for _, l, _ in f["aigw_requests_total"]["samples"]
                if l["model"] in ("no-such-model", "gpt4")]

    assert value(f, "aigw_prompt_tokens_total", **a) == prompt
    assert value(f, "aigw_completion_tokens_total", **a) == completion
    assert value(f, "aigw_cached_tokens_total", **a) == 0
    assert value(f, "aigw_cost_usd_total", **a) == pytest.approx(
        cost / 1e6, abs=1e-9)
    assert total(f, "aigw_prompt_tokens_total") == prompt
    assert value(f, "aigw_cost_usd_total", model="err429", provider="mock",
                 tenant="team-a") == 0

    assert value(f, "aigw_upstream_attempts_total", **a) == 4
    assert value(f, "aigw_upstream_attempts_total", model="err429",
                 provider="mock", tenant="team-a") == 2
    assert total(f, "aigw_upstream_attempts_total") == 6
    assert total(f, "aigw_upstream_retries_total") == 0

    assert value(f, "aigw_limit_rejections_total", tenant="team-frozen",
                 reason="tokens_per_day") == 1
    assert total(f, "aigw_limit_rejections_total") == 1
    assert f["aigw_cache_requests_total"]["samples"] == []

    m = dict(model="gpt-4o", provider="mock")
    assert value(f, "aigw_request_duration_seconds_count", **m) == 5
    assert value(f, "aigw_ttfb_seconds_count", **m) == 4
    assert value(f, "aigw_upstream_duration_seconds_count", **m) == 4
    assert value(f, "aigw_ttfb_seconds_count", model="unknown",
                 provider="none") == 0
    assert value(f, "aigw_request_duration_seconds_count", model="unknown",
                 provider="none") == 4
    assert total(f, "aigw_request_duration_seconds_count") == 11

    assert value(f, "aigw_requests_in_flight") == 0
    assert value(f, "aigw_streams_in_flight") == 0
    assert value(f, "aigw_metrics_tenants") == 3
    assert value(f, "aigw_metrics_dropped_total") == 0

    for name, fam in f.items():
        assert fam["help"], name
        if fam["type"] == "counter":
            assert name.endswith("_total"), name


def test_label_values_are_escaped(mock):
    g = make_gateway(mock, tenants=False).start()
    try:
        r = g.chat(chat(model='we"ird\\name\n2'))
        assert r.status == 200, r
        text = g.request("GET", "/metrics").data.decode()
        assert 'model="we\\"ird\\\\name\\n2"' in text
        f = parse_prometheus(text)
        assert value(f, "aigw_requests_total", model='we"ird\\name\n2',
                     provider="mock", tenant="none", status_class="2xx") == 1
        # without tenants the answer's usage is still read
        assert value(f, "aigw_prompt_tokens_total",
                     model='we"ird\\name\n2') == r.json()["usage"][
                         "prompt_tokens"]
    finally:
        g.stop()


def test_cache_results(mock):
    g = make_gateway(mock, extra="ai_cache zone=aigw_cache:1m ttl=10m;"
                     ).start()
    try:
        b = chat(content="cache me", temperature=0)
        r1 = g.chat(b, headers=auth("a"))
        r2 = g.chat(b, headers=auth("a"))
        assert r1.headers["x-aigw-cache"] == "MISS"
        assert r2.headers["x-aigw-cache"] == "HIT"
        r3 = g.chat(chat(content="random"), headers=auth("a"))
        assert r3.headers["x-aigw-cache"] == "BYPASS"
        f = scrape(g)
        for result, n in (("hit", 1), ("miss", 1), ("bypass", 1)):
            assert value(f, "aigw_cache_requests_total", model="gpt-4o",
                         tenant="team-a", result=result) == n
        # a hit spends no provider tokens and no attempt
        u1, u3 = r1.json()["usage"], r3.json()["usage"]
        assert value(f, "aigw_prompt_tokens_total", tenant="team-a") == (
            u1["prompt_tokens"] + u3["prompt_tokens"])
        assert value(f, "aigw_upstream_attempts_total", tenant="team-a") == 2
        assert [e["cache"] for e in wait_log_lines(g, 3)] == [
            "MISS", "HIT", "BYPASS"]
    finally:
        g.stop()


def test_retries_to_another_address(mock):
    dead = free_port()
    g = make_gateway(mock, extra="""
    upstream mockpool {
        server 127.0.0.1:%d max_fails=0;
        server 127.0.0.1:%d max_fails=0;
    }
    ai_provider pool url=http://mockpool/v1 key_env=AIGW_TEST_KEY;
    ai_model pooled pool:gpt-4o-mock;
""" % (dead, mock.port)).start()
    try:
        for _ in range(4):
            assert g.chat(chat(model="pooled"), headers=auth("a")).status \
                == 200
        f = scrape(g)
        attempts = value(f, "aigw_upstream_attempts_total", model="pooled")
        retries = value(f, "aigw_upstream_retries_total", model="pooled")
        assert retries >= 1 and attempts == 4 + retries
        logged = [int(e["attempts"]) for e in wait_log_lines(g, 4)]
        assert sum(logged) == attempts
    finally:
        g.stop()


def test_in_flight_requests_and_streams(gw):
    results = []

    def run():
        results.append(gw.chat(chat(model="slow", stream=True),
                               headers=auth("a")))

    t = threading.Thread(target=run)
    t.start()
    deadline = time.time() + 5
    seen = False
    while time.time() < deadline and not seen:
        f = scrape(gw)
        seen = (value(f, "aigw_streams_in_flight") == 1
                and value(f, "aigw_requests_in_flight") == 1)
        time.sleep(0.02)
    t.join()
    assert seen, "the stream was never seen in flight"
    assert results[0].status == 200
    f = scrape(gw)
    assert value(f, "aigw_requests_in_flight") == 0
    assert value(f, "aigw_streams_in_flight") == 0
    assert value(f, "aigw_requests_total", model="slow",
                 status_class="2xx") == 1
    # the client did not ask for usage: it was asked for and read anyway
    assert value(f, "aigw_completion_tokens_total", model="slow") > 0


def test_tenant_label_cap(mock):
    keys = {"t%d" % i: "aigw-cap-SECRET-key-%030d" % i for i in range(6)}
    tenants = write_tenants({
        name: {"keys": [{"id": "k", "sha256": sha(key)}]}
        for name, key in keys.items()})
    g = make_gateway(mock, tenants=tenants,
                     zone="ai_metrics_zone zone=aigw_mx:1m max_tenants=2;"
                     ).start()
    try:
        for name in sorted(keys):
            for _ in range(2):
                r = g.chat(chat(), headers={
                    "Authorization": "Bearer " + keys[name]})
                assert r.status == 200, r
        f = scrape(g)
        tenants_seen = {l["tenant"] for _, l, _ in
                        f["aigw_requests_total"]["samples"]}
        assert tenants_seen == {"t0", "t1", "other"}
        assert value(f, "aigw_requests_total", tenant="t0") == 2
        assert value(f, "aigw_requests_total", tenant="other") == 8
        assert value(f, "aigw_metrics_tenants") == 2
        # the log still names every tenant
        assert {e["tenant"] for e in wait_log_lines(g, 12)} == set(keys)
    finally:
        g.stop()


def test_full_zone_counts_what_it_drops(mock):
    keys = {"z%03d" % i: "aigw-full-SECRET-key-%030d" % i
            for i in range(120)}
    tenants = write_tenants({
        name: {"keys": [{"id": "k", "sha256": sha(key)}]}
        for name, key in keys.items()})
    g = make_gateway(mock, tenants=tenants,
                     zone="ai_metrics_zone zone=aigw_mx:32k "
                     "max_tenants=1000;").start()
    try:
        for name in sorted(keys):
            r = g.chat(chat(), headers={"Authorization": "Bearer " +
                                        keys[name]})
            assert r.status == 200, r
        f = scrape(g)
        counted = total(f, "aigw_requests_total")
        dropped = value(f, "aigw_metrics_dropped_total")
        assert dropped > 0 and counted + dropped == len(keys)
        assert value(f, "aigw_request_duration_seconds_count",
                     model="gpt-4o") == len(keys)
    finally:
        g.stop()


def test_workers_aggregate_into_one_view(gw):
    pids = set()
    sent = 0
    while len(pids) < 2 and sent < 400:
        threads = [threading.Thread(
            target=lambda: gw.chat(chat(), headers=auth("b")))
            for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent += 8
        pids = {e["pid"] for e in wait_log_lines(gw, sent)}
    assert len(pids) == 2, "one worker took every request"
    for _ in range(6):       # whichever worker answers sees every request
        f = scrape(gw)
        assert value(f, "aigw_requests_total", tenant="team-b",
                     status_class="2xx") == sent


def test_counters_survive_reload(gw):
    for _ in range(3):
        assert gw.chat(chat(), headers=auth("a")).status == 200
    # a request is counted in its log phase, which can run after the
    # client already has the answer: wait for it rather than race it
    settle(gw)
    before = scrape(gw)
    old = worker_pids(gw)
    assert len(old) == 2

    gw.reload()
    deadline = time.time() + 10
    while time.time() < deadline:
        now = worker_pids(gw)
        if len(now) == 2 and not (now & old):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the workers were not replaced")

    after = scrape(gw)
    for name in ("aigw_requests_total", "aigw_prompt_tokens_total",
                 "aigw_cost_usd_total"):
        assert after[name]["samples"] == before[name]["samples"], name

    assert gw.chat(chat(), headers=auth("a")).status == 200
    f = settle(gw)
    assert value(f, "aigw_requests_total", tenant="team-a",
                 status_class="2xx") == 4
    assert value(f, "aigw_requests_in_flight") == 0


def settle(gw, timeout=5.0):
    """A scrape once nothing is in flight (the metrics request itself
    aside) and two scrapes in a row agree."""
    deadline = time.time() + timeout
    last = None
    while True:
        f = scrape(gw)
        if (value(f, "aigw_requests_in_flight") == 0 and last is not None
                and all(f[n]["samples"] == last[n]["samples"]
                        for n in ("aigw_requests_total",))):
            return f
        if time.time() > deadline:
            return f
        last = f
        time.sleep(0.05)


def test_metrics_configuration_errors(mock):
    g = make_gateway(mock, zone="")
    try:
        r = g.test_config()
        assert r.returncode != 0
        assert "ai_metrics_zone" in r.stderr
    finally:
        g.stop_dir()
    for bad in ("ai_metrics_zone zone=x;", "ai_metrics_zone zone=x:1k;",
                "ai_metrics_zone zone=x:1m max_tenants=lots;",
                "ai_metrics_zone size=1m;"):
        g = make_gateway(mock, zone=bad)
        try:
            r = g.test_config()
            assert r.returncode != 0, bad
            assert "ai_metrics_zone" in r.stderr, r.stderr
        finally:
            g.stop_dir()


def test_metrics_method(gw):
    assert gw.request("POST", "/metrics", body="x").status == 405
    r = gw.request("HEAD", "/metrics")
    assert r.status == 200 and r.data == b""


# ---- log variables ---------------------------------------------------------

def test_json_access_log(gw):
    r1 = gw.chat(chat(), headers=auth("a"))
    assert r1.status == 200
    u1 = r1.json()["usage"]
    r2 = gw.chat(chat(model="gpt4", stream=True,
                      stream_options={"include_usage": True}),
                 headers=auth("a"))
    u2 = stream_usage(r2)
    r3 = gw.chat(chat(), headers=auth("frozen"))
    assert r3.status == 429
    r4 = gw.chat(chat(), headers={"Authorization": "Bearer sk-wrong-SECRET"})
    assert r4.status == 401

    lines = wait_log_lines(gw, 4)
    by_id = {e["rid"]: e for e in lines}
    e1 = by_id[r1.headers["x-request-id"]]
    assert e1["status"] == "200"
    assert e1["tenant"] == "team-a" and e1["key_id"] == "a-main"
    assert e1["key_sha"] == sha(KEYS["a"])[:12]
    assert e1["model"] == "gpt-4o" and e1["provider"] == "mock"
    assert e1["upstream_model"] == "gpt-4o-mock"
    assert e1["stream"] == "0"
    assert int(e1["prompt"]) == u1["prompt_tokens"]
    assert int(e1["completion"]) == u1["completion_tokens"]
    assert e1["cached"] == "0"
    assert re.fullmatch(r"\d+\.\d{6}", e1["cost"])
    assert round(float(e1["cost"]) * 1e6) == cost_micro(
        u1["prompt_tokens"], u1["completion_tokens"])
    assert e1["attempts"] == "1"
    assert int(e1["ttfb"]) >= 0
    assert e1["cache"] == "" and e1["reason"] == ""

    e2 = by_id[r2.headers["x-request-id"]]
    assert e2["model"] == "gpt4" and e2["stream"] == "1"
    assert int(e2["prompt"]) == u2["prompt_tokens"]
    assert int(e2["completion"]) == u2["completion_tokens"]

    e3 = by_id[r3.headers["x-request-id"]]
    assert e3["status"] == "429" and e3["tenant"] == "team-frozen"
    assert e3["reason"] == "limit:tokens_per_day"
    assert e3["attempts"] == "0" and e3["ttfb"] == ""
    assert e3["prompt"] == "0" and e3["cost"] == "0.000000"

    e4 = by_id[r4.headers["x-request-id"]]
    assert e4["status"] == "401" and e4["tenant"] == ""
    assert e4["key_id"] == "" and e4["model"] == ""

    # an alias is counted under the configured model's name
    f = scrape(gw)
    assert value(f, "aigw_requests_total", model="gpt-4o", tenant="team-a",
                 status_class="2xx") == 2
    assert "gpt4" not in {l["model"] for _, l, _ in
                          f["aigw_requests_total"]["samples"]}

    # no key, not even part of one, in any log
    text = open(gw.ai_log).read() + gw.logs()
    assert "SECRET" not in text
    assert PROVIDER_KEY not in text


def test_log_escapes_client_model(gw):
    r = gw.chat(chat(model='evil"\n\\model'), headers=auth("a"))
    assert r.status == 404
    e = [e for e in wait_log_lines(gw, 1)
         if e["rid"] == r.headers["x-request-id"]][0]
    assert e["model"] == 'evil"\n\\model'


# ---- request ids -----------------------------------------------------------

def test_request_id_echoed(gw, mock):
    rid = "client-ID_1.2:3"
    r = gw.chat(chat(), headers=dict(auth("a"), **{"X-Request-Id": rid}))
    assert r.status == 200
    assert r.headers["x-request-id"] == rid
    # the provider's own id is kept under another name
    assert r.headers["x-provider-request-id"].startswith("req_")
    assert [e["rid"] for e in wait_log_lines(gw, 1)] == [rid]

    r = gw.chat(chat(model="nope"), headers={"x-request-id": "x" * 128})
    assert r.headers["x-request-id"] == "x" * 128


def test_request_id_generated(gw):
    ids = set()
    for bad in (None, "", "has space", "x" * 129, "semi;colon", "é"):
        h = dict(auth("a"))
        if bad is not None:
            h["X-Request-Id"] = bad
        r = gw.chat(chat(model="nope"), headers=h)
        assert r.status == 404
        rid = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
        ids.add(rid)
    assert len(ids) == 6
    assert {e["rid"] for e in wait_log_lines(gw, 6)} == ids


def test_no_request_id_outside_the_gateway(gw):
    r = gw.request("GET", "/metrics")
    assert "x-request-id" not in r.headers
