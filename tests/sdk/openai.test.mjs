// The official OpenAI SDK against the gateway, as users will drive it.
// Run by tests/integration/test_sdk.py with AIGW_URL set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.AIGW_URL + '/v1',
  apiKey: 'sk-client-key-not-forwarded',
  maxRetries: 0,
});

test('models.list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('gpt-4o'));
  assert.ok(ids.includes('tools'));
});

test('models.retrieve', async () => {
  const m = await client.models.retrieve('gpt-4o');
  assert.equal(m.id, 'gpt-4o');
  assert.equal(m.owned_by, 'mock');
});

test('chat.completions.create', async () => {
  const r = await client.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'system', content: 'be brief' },
               { role: 'user', content: 'hello sdk' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.content,
               'Hello from mock! You said: hello sdk');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.total_tokens > 0);
});

test('chat.completions.create stream with usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream please' }],
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, 'Hello from mock! You said: stream please');
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0);
});

test('chat.completions.stream helper with tool calls', async () => {
  const runner = client.chat.completions.stream({
    model: 'tools',
    messages: [{ role: 'user', content: 'weather?' }],
    tools: [{ type: 'function', function: {
      name: 'get_weather',
      parameters: { type: 'object',
                    properties: { city: { type: 'string' } } } } }],
  });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof JSON.parse(call.function.arguments), 'object');
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
});

test('embeddings.create', async () => {
  const r = await client.embeddings.create({
    model: 'embed', input: ['one', 'two'] });
  assert.equal(r.data.length, 2);
  assert.ok(r.data[0].embedding.length > 0);
});

test('unknown model is a NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      return true;
    });
});

test('bad request is a BadRequestError naming the field', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o', messages: [] }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal(err.param, 'messages');
      return true;
    });
});

test('provider 429 reaches the SDK as RateLimitError', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'err429', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError);
      assert.equal(err.headers.get('retry-after'), '1');
      return true;
    });
});

test('gateway 502 is an InternalServerError with an OpenAI body', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'dead', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.equal(err.status, 502);
      assert.equal(err.code, 'bad_gateway');
      return true;
    });
});

test('abort mid-stream', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create({
    model: 'slow', stream: true,
    messages: [{ role: 'user', content: 'abort me' }],
  }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const _ of stream) {
      if (++n === 1) ac.abort();
    }
  } catch (err) {
    assert.ok(err.name === 'AbortError' || err.constructor.name ===
              'APIUserAbortError', String(err));
  }
  assert.equal(n, 1);
});
