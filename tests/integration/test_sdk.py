"""The official SDKs (npm: openai, @anthropic-ai/sdk) driving the gateway,
streaming included."""

import os
import subprocess

import pytest

from conftest import PROVIDER_KEY, ROOT, Gateway, free_port

SDK_DIR = os.path.join(ROOT, "tests", "sdk")


@pytest.fixture(scope="module")
def sdk_gw(mock):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_provider dead url=http://127.0.0.1:%d/v1;
    ai_provider anthropic url=http://127.0.0.1:%d/v1 format=anthropic;
    ai_model claude anthropic:claude-sonnet-4;
    ai_model gpt-4o mock:gpt-4o-mock;
    ai_model tools  mock:gpt-4o-tools;
    ai_model slow   mock:gpt-4o-slow-chunks10;
    ai_model embed  mock:text-embedding-3-small;
    ai_model err429 mock:gpt-4o-error-429;
    ai_model dead   dead:gpt-4o;
""" % (mock.port, free_port(), mock.port), "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    yield g
    g.stop()


def run_node(script, gw):
    subprocess.run([os.path.join(SDK_DIR, "install.sh")], check=True)
    env = dict(os.environ, AIGW_URL="http://127.0.0.1:%d" % gw.port)
    r = subprocess.run(["node", "--test", "--test-reporter=spec",
                        os.path.join(SDK_DIR, script)],
                       env=env, capture_output=True, text=True, timeout=120)
    print(r.stdout[-5000:])
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout or "fail 0" in r.stdout


def test_openai_sdk(sdk_gw):
    run_node("openai.test.mjs", sdk_gw)


def test_anthropic_sdk(sdk_gw):
    run_node("anthropic.test.mjs", sdk_gw)
