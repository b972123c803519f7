#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/.

Seeds are small, real examples: the provider captures in tests/unit/data
(recorded from tests/mocks/mock_provider.py, which speaks the providers'
wire formats), requests like the integration tests send, the tenants
fixtures, and a tiny llama GGUF built here from the stories260K tokenizer
(../shared/models, or AIGW_MODELS_DIR) with 8-wide random weights.
Targets that read a header (tests/fuzz/fuzz_common.h: split point, flags)
get it prepended.  Run from anywhere; rerun after adding fixtures.
"""

import glob
import json
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "tests", "unit", "data")
MODELS = os.environ.get("AIGW_MODELS_DIR",
                        os.path.join(ROOT, "..", "shared", "models"))
OUT = os.path.join(HERE, "corpus")


def data(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def hdr(payload, split=None, flags=0):
    """The 4-byte header of fuzz_common.h: split point, flags, 0."""
    if split is None:
        split = len(payload) // 2
    return struct.pack("<HBB", split & 0xffff, flags, 0) + payload


def write(target, name, payload):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(payload)


def j(v):
    return json.dumps(v).encode()


CHAT = {"model": "gpt-4o", "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello"}], "max_tokens": 16}
CHAT_STREAM = dict(CHAT, stream=True, stream_options={"include_usage": True},
                   temperature=0, seed=7)
CHAT_TOOLS = {"model": "gpt-4o", "messages": [
    {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                 {"type": "image_url", "image_url": {
                                     "url": "data:image/png;base64,iVBORw0"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}, "required": ["city"]}}}],
    "tool_choice": "auto", "stop": ["\n\n"], "top_p": 0.5}
COMPLETION = {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon",
              "max_tokens": 5, "n": 1}
EMBED = {"model": "text-embedding-3-small", "input": ["a", "b"]}
ESCAPED = b'{"mod\\u0065l":"gpt\\u002d4o","messages":[{"role":"user",' \
          b'"content":"caf\\u00e9 \\ud83d\\ude00"}]}'

ANTHROPIC_IN = {"model": "claude-sonnet-4", "max_tokens": 64,
                "system": [{"type": "text", "text": "Be brief."}],
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "toolu_1",
                         "name": "get_weather", "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1",
                         "content": "sunny"},
                        {"type": "image", "source": {
                            "type": "base64", "media_type": "image/png",
                            "data": "iVBORw0"}}]}],
                "tools": [{"name": "get_weather", "description": "w",
                           "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "auto"}, "stop_sequences": ["END"],
                "stream": True, "temperature": 0.2}

OPENAI_CHAT_RESPONSE = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant",
                                                "content": "Hello!"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
              "prompt_tokens_details": {"cached_tokens": 1}}}
OPENAI_TOOL_RESPONSE = {
    "id": "chatcmpl-2", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "tool_calls",
                                    "message": {"role": "assistant",
                                                "content": None,
                                                "tool_calls": [{
                                                    "id": "call_1",
                                                    "type": "function",
                                                    "function": {
                                                        "name": "f",
                                                        "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
OPENAI_ERROR = {"error": {"message": "Rate limit", "type": "rate_limit_error",
                          "param": None, "code": "rate_limit_exceeded"}}


def requests():
    return {"chat": j(CHAT), "chat_stream": j(CHAT_STREAM),
            "chat_tools": j(CHAT_TOOLS), "completion": j(COMPLETION),
            "embed": j(EMBED), "escaped": ESCAPED,
            "pretty": json.dumps(CHAT_STREAM, indent=2).encode(),
            "deep": b'{"model":"m","messages":[],"x":' + b"[" * 40 +
                    b"]" * 40 + b"}",
            "numbers": b'{"model":"m","messages":[{"role":"user","content":'
                       b'"x"}],"temperature":-0.5e-3,"n":0,"seed":'
                       b'9007199254740993}'}


def gguf_read(path):
    """The metadata of a GGUF v2/v3 file: [(key, type, raw bytes)]."""
    with open(path, "rb") as f:
        b = f.read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF"
    off = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8,
             12: 8}

    def skip(t, off):
        if t in sizes:
            return off + sizes[t]
        if t == 8:
            n, = struct.unpack_from("<Q", b, off)
            return off + 8 + n
        assert t == 9
        et, n = struct.unpack_from("<IQ", b, off)
        off += 12
        for _ in range(n):
            off = skip(et, off)
        return off

    kvs = []
    for _ in range(n_kv):
        n, = struct.unpack_from("<Q", b, off)
        key = b[off + 8:off + 8 + n].decode()
        off += 8 + n
        t, = struct.unpack_from("<I", b, off)
        off += 4
        end = skip(t, off)
        kvs.append((key, t, b[off:end]))
        off = end
    return kvs


def gguf_tiny():
    """A 1-layer llama, dim 8, with the real 512-token tokenizer."""
    path = os.path.join(MODELS, "stories260K.gguf")
    if not os.path.exists(path):
        return None
    kvs = [kv for kv in gguf_read(path) if kv[0].startswith("tokenizer.")]
    vocab = 512
    dim, hidden, heads = 8, 16, 2

    def s(v):
        v = v.encode()
        return struct.pack("<Q", len(v)) + v

    def u32(v):
        return struct.pack("<I", v)

    meta = [("general.architecture", 8, s("llama")),
            ("general.name", 8, s("tiny")),
            ("general.alignment", 4, u32(32)),
            ("llama.embedding_length", 4, u32(dim)),
            ("llama.feed_forward_length", 4, u32(hidden)),
            ("llama.block_count", 4, u32(1)),
            ("llama.attention.head_count", 4, u32(heads)),
            ("llama.attention.head_count_kv", 4, u32(heads)),
            ("llama.context_length", 4, u32(32)),
            ("llama.rope.dimension_count", 4, u32(dim // heads)),
            ("llama.attention.layer_norm_rms_epsilon", 6,
             struct.pack("<f", 1e-5))] + kvs
    tensors = [("token_embd.weight", (dim, vocab)),
               ("output_norm.weight", (dim,))]
    for name, shape in (("attn_norm", (dim,)), ("attn_q", (dim, dim)),
                        ("attn_k", (dim, dim)), ("attn_v", (dim, dim)),
                        ("attn_output", (dim, dim)), ("ffn_norm", (dim,)),
                        ("ffn_gate", (dim, hidden)), ("ffn_down", (hidden, dim)),
                        ("ffn_up", (dim, hidden))):
        tensors.append(("blk.0.%s.weight" % name, shape))

    out = bytearray(struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(meta)))
    for key, t, raw in meta:
        out += s(key) + u32(t) + raw
    rnd = random.Random(1)
    blobs, offset = [], 0
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        out += s(name) + u32(len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape)
        out += u32(0) + struct.pack("<Q", offset)   # F32
        blob = struct.pack("<%df" % n,
                           *[rnd.uniform(-0.1, 0.1) for _ in range(n)])
        blob += b"\0" * (-len(blob) % 32)
        blobs.append(blob)
        offset += len(blob)
    out += b"\0" * (-len(out) % 32)
    for blob in blobs:
        out += blob
    return bytes(out)


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    reqs = requests()
    for name, body in reqs.items():
        write("fuzz_scan", name, body)
        write("fuzz_cache_key", name, body)
        write("fuzz_request_anthropic", name, body)
    write("fuzz_scan", "dup_top", b'{"model":"a","model":"b"}')
    write("fuzz_scan", "nul_escape", b'{"a":"\\u0000"}')
    write("fuzz_scan", "nul_escape_in_key", b'{"a\\u0000b":1}')
    write("fuzz_cache_key", "response", j(OPENAI_CHAT_RESPONSE))
    write("fuzz_cache_key", "response_tools", j(OPENAI_TOOL_RESPONSE))
    write("fuzz_cache_key", "embeddings_response", j(
        {"object": "list", "model": "e", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1, 2e-3]}],
         "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
    write("fuzz_request_anthropic_in", "full", j(ANTHROPIC_IN))
    write("fuzz_request_anthropic_in", "simple", j(
        {"model": "claude", "max_tokens": 5, "system": "s",
         "messages": [{"role": "user", "content": "hi"}]}))

    sse = {"anthropic": ["anthropic_claude.sse", "anthropic_claude-tools.sse",
                         "anthropic_claude-stream-error.sse"],
           "gemini": ["gemini_gemini.sse", "gemini_gemini-tools.sse",
                      "gemini_gemini-stream-error.sse"],
           "openai": ["openai_gpt.sse", "openai_gpt-tools.sse"],
           "anthropic_in": ["openai_gpt.sse", "openai_gpt-tools.sse"]}
    for fmt, files in sse.items():
        for i, name in enumerate(files):
            body = data(name)
            write("fuzz_stream_" + fmt, name, hdr(body, flags=i % 4 | 2))
    for name in sorted(set(sum(sse.values(), []))):
        body = data(name)
        write("fuzz_sse", name, hdr(body))
        write("fuzz_sse", name + "-small", hdr(body, flags=1))
    write("fuzz_sse", "fields", hdr(
        b"\xef\xbb\xbf: comment\r\nevent: a\rid: 7\ndata:x\ndata: y\n"
        b"retry: 10\n\ndata\n\n", split=9))

    # fuzz_response: flags bits 0-1 translator (0 anthropic, 1 gemini,
    # 2 openai, 3 anthropic-in), bit 2 completions, bits 4-7 status index
    # (0: 200, 11: 429, 12: 500, 15: 529)
    resp = [("anthropic_claude.json", 0, 0), ("anthropic_claude-tools.json", 0, 0),
            ("anthropic_error529.json", 0, 15), ("gemini_gemini.json", 1, 0),
            ("gemini_gemini-tools.json", 1, 0), ("gemini_error429.json", 1, 11),
            ("gemini_embed.json", 1, 0)]
    for name, fmt, st in resp:
        write("fuzz_response", name, hdr(data(name), flags=fmt | st << 4))
    write("fuzz_response", "openai_chat",
          hdr(j(OPENAI_CHAT_RESPONSE), flags=3))
    write("fuzz_response", "openai_tools",
          hdr(j(OPENAI_TOOL_RESPONSE), flags=3))
    write("fuzz_response", "openai_error",
          hdr(j(OPENAI_ERROR), flags=3 | 11 << 4))

    for name in ("tenants_valid.json", "tenants_truncated.json"):
        write("fuzz_tenants", name, data(name))
    write("fuzz_tenants", "limits", j({"requests_per_minute": 60,
                                       "tokens_per_day": 100000,
                                       "budget_per_month_usd": 12.5}))
    write("fuzz_tenants", "time", b"2025-01-31T23:59:59Z")

    write("fuzz_plugin_kv", "pii", b"mode=mask\nentities=email,phone\n"
          b"replacement=[REDACTED]")
    write("fuzz_plugin_kv", "deny", b"pattern=(?i)ignore previous\n"
          b"pattern=a=b\nstatus=403")
    write("fuzz_plugin_kv", "bad", b"=x\nkey with space=1")

    write("fuzz_plugin_json", "answer", j({
        "id": "x", "choices": [
            {"index": 1, "message": {"role": "assistant",
                                     "content": "hi \"you\" \u00e9\U0001F600"},
             "finish_reason": "stop"},
            {"message": {}, "index": 0}],
        "usage": {"a": [1]}}))
    write("fuzz_plugin_json", "chunk", j({
        "choices": [{"index": 0, "delta": {"content": "a\nb"},
                     "finish_reason": None}]}))
    write("fuzz_plugin_json", "request", j({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "x@y.com"}]}],
        "prompt": ["a"], "input": [{"content": "b"}],
        "instructions": "c"}))

    for text in ("Once upon a time, there was a little girl.",
                 "Lily said: \"Hi!\"\n\tTom smiled. caf\u00e9 \U0001F600",
                 "  two  spaces  "):
        write("fuzz_tokenizer", "text%d" % len(text), text.encode())
    write("fuzz_tokenizer", "ids", struct.pack("<8i", 1, 403, 407, 3, 260,
                                                 -1, 511, 512))

    tiny = gguf_tiny()
    if tiny is not None:
        write("fuzz_gguf", "tiny-llama.gguf", tiny)
        write("fuzz_gguf", "header-only.gguf", tiny[:2048])
    write("fuzz_gguf", "llama2c-header.bin", struct.pack(
        "<7i", 8, 16, 1, 2, 2, 512, 32) + b"\0" * 64)


if __name__ == "__main__":
    main()
