"""`nginx -t` catches configuration mistakes with a message naming the
directive and the value."""

import pytest

from conftest import Gateway

GOOD = "ai_provider p url=http://127.0.0.1:9/v1;\n"


@pytest.mark.parametrize("conf,message", [
    (GOOD + "ai_model m nope:gpt-4o;",
     'ai_model "m": unknown provider "nope"'),
    ("ai_provider p url=ftp://example/v1;",
     'ai_provider "p": invalid url "ftp://example/v1"'),
    ("ai_provider p url=http://;", 'ai_provider "p": invalid url'),
    ("ai_provider p key_env=X;", 'ai_provider "p": missing url='),
    ("ai_provider p url=http://127.0.0.1:9 key_env=;",
     'ai_provider "p": key_env= needs the name of an environment variable'),
    ("ai_provider p url=http://127.0.0.1:9 key=sk-123;",
     "keys are not written in the configuration"),
    ("ai_provider p url=http://127.0.0.1:9 color=blue;",
     'ai_provider "p": unknown parameter "color"'),
    ("ai_provider p url=http://127.0.0.1:9 format=klingon;",
     'ai_provider "p": unknown format "klingon"'),
    ("ai_provider p url=http://127.0.0.1:9 read_timeout=soon;",
     'ai_provider "p": invalid value "soon" for read_timeout='),
    ("ai_provider p url=http://127.0.0.1:9 bogus;",
     'ai_provider "p": invalid parameter "bogus"'),
    (GOOD + "ai_provider p url=http://127.0.0.1:10;",
     'duplicate ai_provider "p"'),
    (GOOD + "ai_model m p;\nai_model m p:x;", 'duplicate ai_model "m"'),
    (GOOD + "ai_model m p alias=n;\nai_model n p;",
     'duplicate ai_model "n" (already an alias of another model)'),
    (GOOD + "ai_model m p:x weight=0;", 'ai_model "m": invalid "weight=0"'),
    (GOOD + "ai_model m weight=2 p;",
     'ai_model "m": weight= must follow a provider target'),
    (GOOD + "ai_model m p: ;", 'ai_model "m": invalid target "p:"'),
    ("ai_provider p url=https://127.0.0.1:9 "
     "ssl_trusted_certificate=/nonexistent.pem;",
     "/nonexistent.pem"),
])
def test_config_errors(conf, message):
    g = Gateway(conf, "location /v1/ { ai_gateway; }")
    try:
        r = g.test_config()
        assert r.returncode != 0
        assert message in r.stderr, r.stderr
        assert "[emerg]" in r.stderr
        assert "nginx.conf:" in r.stderr    # names the file and line
    finally:
        g.stop_dir()


def test_valid_config_and_missing_key_warning():
    g = Gateway(GOOD.replace(";", " key_env=AIGW_UNSET_VAR_X;") +
                "ai_model m p:x weight=2 p:y alias=a,b;",
                "location /v1/ { ai_gateway; }")
    try:
        r = g.test_config()
        assert r.returncode == 0, r.stderr
        assert 'environment variable "AIGW_UNSET_VAR_X" is not set' in r.stderr
    finally:
        g.stop_dir()


def test_ai_gateway_outside_location():
    g = Gateway(GOOD + "ai_gateway;", "")
    try:
        r = g.test_config()
        assert r.returncode != 0
        assert '"ai_gateway" directive is not allowed here' in r.stderr
    finally:
        g.stop_dir()
