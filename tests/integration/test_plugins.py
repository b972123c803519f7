"""Lua-free plugins in the gateway: request and response hooks, streams,
nginx -t errors (issue 8)."""

import json
import os

import pytest

from conftest import PROVIDER_KEY, ROOT, Gateway, make_workdir

PLUGINS = os.path.join(ROOT, "lua-free-plugins", "build")


def so(name):
    return os.path.join(PLUGINS, name + ".so")


@pytest.fixture(scope="module")
def deny_file():
    d = make_workdir("aigw-deny-")
    path = os.path.join(d, "deny.txt")
    with open(path, "w") as f:
        f.write("# rules\nsecret-project: (?i)project\\s+zebra\n"
                "mock-greeting: Hello from mock\n")
    return path


@pytest.fixture(scope="module")
def pgw(mock, deny_file):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY;
    ai_plugin pii_in   %(pii)s apply=request;
    ai_plugin pii_out  %(pii)s apply=response;
    ai_plugin deny_in  %(deny)s file=%(df)s apply=request;
    ai_plugin deny_out %(deny)s file=%(df)s apply=response;
    ai_plugin policy   %(pol)s max_tokens=100 max_tokens_action=clamp;
    ai_plugin tags     %(tag)s header=X-Team:ml metadata=team:ml;
    ai_model gpt-4o  mock:gpt-4o-mock;
    ai_model slow    mock:gpt-4o-mock-chunks12;
    ai_model denied  mock:gpt-4o-mock plugins=deny_out;
""" % dict(m=mock.port, pii=so("pii_redact"), deny=so("deny_patterns"),
           df=deny_file, pol=so("param_policy"), tag=so("tag_request")),
        """
        location /v1/ {
            ai_gateway;
            ai_plugins deny_in pii_in policy tags;
        }
        location /out/v1/ {
            ai_gateway;
            ai_plugins pii_out;
        }
        location /text/v1/ {
            ai_gateway;
            ai_plugins deny_in pii_in pii_out;
        }
""", env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    yield g
    g.stop()


def chat(text, model="gpt-4o", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": text}]}
    b.update(kw)
    return b


def test_request_redacted_clamped_tagged(pgw, mock):
    r = pgw.chat(chat("mail me at jane.doe@example.com please",
                      max_tokens=5000))
    assert r.status == 200, r
    up = mock.last()
    content = up["body"]["messages"][0]["content"]
    assert "jane.doe@example.com" not in content
    assert "[EMAIL]" in content
    assert up["body"]["max_tokens"] == 100
    assert up["headers"]["x-team"] == "ml"
    assert up["body"]["metadata"] == {"team": "ml"}


def test_request_denied_names_rule_not_text(pgw, mock):
    n = len(mock.requests())
    r = pgw.chat(chat("tell me about Project   Zebra"))
    assert r.status == 400
    e = r.json()["error"]
    assert "secret-project" in e["message"]
    assert "Zebra" not in e["message"]
    assert len(mock.requests()) == n


# Only plugins that read texts: the gateway builds no tree.  What they
# change is spliced into the client's bytes; everything else reaches the
# provider byte for byte.
TEXT_BODY = (
    '{"model":"gpt-4o","temperature":0.70,"max_tokens":100,'
    '"messages":[{"role":"system","content":"be \\"nice\\"\\n"},'
    '{"role":"user","cont\\u0065nt":[{"type":"text","text":'
    '"caf\\u00e9 \\ud83d\\ude00 mail jane.doe@example.com\\tnow"}]}],'
    '"metadata":{"k":"jane.doe@example.com"}}')


def test_text_plugins_splice_client_bytes(pgw, mock):
    r = pgw.request("POST", "/text/v1/chat/completions", TEXT_BODY)
    assert r.status == 200, r
    raw = mock.last()["raw_body"]
    # redacted in the prompt (its key was escaped), not in metadata
    want = TEXT_BODY.replace(
        'caf\\u00e9 \\ud83d\\ude00 mail jane.doe@example.com\\tnow',
        'caf\u00e9 \U0001F600 mail [EMAIL]\\tnow').replace(
        '"gpt-4o"', '"gpt-4o-mock"')
    assert raw == want, raw
    # the answer echoes the prompt: redacted on its way back
    text = r.json()["choices"][0]["message"]["content"]
    assert "[EMAIL]" in text and "jane.doe" not in text
    assert "caf\u00e9 \U0001F600" in text


def test_text_plugins_model_after_messages(pgw, mock):
    # the model name is replaced where the splice moved it
    body = ('{"messages":[{"role":"user","content":"to a@example.com and '
            'b@example.com"}],"model":"gpt-4o","stream":false}')
    r = pgw.request("POST", "/text/v1/chat/completions", body)
    assert r.status == 200, r
    assert mock.last()["raw_body"] == (
        '{"messages":[{"role":"user","content":"to [EMAIL] and [EMAIL]"}],'
        '"model":"gpt-4o-mock","stream":false}')


def test_text_plugins_escaped_answer_stream(pgw):
    body = chat('say "x"\n then jane.doe@example.com', model="slow",
                stream=True)
    r = pgw.request("POST", "/text/v1/chat/completions", body)
    assert r.status == 200
    ev = r.events()
    assert ev[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in ev[:-1] if json.loads(e)["choices"])
    assert text.startswith('Hello from mock! You said: say "x"\n then ')
    assert "[EMAIL]" in text and "jane.doe" not in text


def test_text_plugins_deny_escaped(pgw, mock):
    n = len(mock.requests())
    r = pgw.request("POST", "/text/v1/chat/completions",
                    '{"model":"gpt-4o","messages":[{"role":"user",'
                    '"content":"about Pro\\u006aect zebra"}]}')
    assert r.status == 400
    assert "secret-project" in r.json()["error"]["message"]
    assert len(mock.requests()) == n


def test_response_redacted_non_stream(pgw):
    r = pgw.request("POST", "/out/v1/chat/completions",
                    chat("jane.doe@example.com"))
    assert r.status == 200, r
    text = r.json()["choices"][0]["message"]["content"]
    assert "jane.doe@example.com" not in text and "[EMAIL]" in text


def test_response_redacted_stream_split_across_chunks(pgw):
    # the mock splits its answer into 12 chunks: the address spans several
    r = pgw.request("POST", "/out/v1/chat/completions",
                    chat("x jane.doe@example.com y", model="slow",
                         stream=True))
    assert r.status == 200
    ev = r.events()
    assert ev[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in ev[:-1] if json.loads(e)["choices"])
    assert "jane.doe@example.com" not in text
    assert "[EMAIL]" in text
    assert text.startswith("Hello from mock! You said: x ")


def test_response_denied_non_stream(pgw):
    r = pgw.chat(chat("hi", model="denied"))
    assert r.status == 400
    assert "mock-greeting" in r.json()["error"]["message"]


def test_response_denied_stream_stops_with_error(pgw):
    r = pgw.chat(chat("hi", model="denied", stream=True))
    assert r.status == 200
    ev = r.events()
    assert "[DONE]" not in ev
    assert "error" in json.loads(ev[-1])
    assert "Hello from mock" not in r.data.decode()


@pytest.mark.parametrize("line,message", [
    ("ai_plugin p /nonexistent/x.so;", "cannot"),
    ("ai_plugin p %s bogus=1;" % so("pii_redact"), "bogus"),
    ("ai_plugin p %s mode=maybe;" % so("pii_redact"), "mode"),
    ("ai_plugin p %s;" % so("deny_patterns"), "file"),
])
def test_plugin_config_errors(line, message):
    g = Gateway(line, "location /v1/ { ai_gateway; }")
    try:
        r = g.test_config()
        assert r.returncode != 0
        assert 'ai_plugin "p"' in r.stderr and message in r.stderr, r.stderr
    finally:
        g.stop_dir()


def test_unknown_plugin_in_location():
    g = Gateway("", "location /v1/ { ai_gateway; ai_plugins nope; }")
    try:
        r = g.test_config()
        assert r.returncode != 0
        assert 'unknown plugin "nope"' in r.stderr
    finally:
        g.stop_dir()
