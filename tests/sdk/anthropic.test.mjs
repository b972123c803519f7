// The official Anthropic SDK against the gateway's /v1/messages endpoint,
// routed to an Anthropic provider (native) and to an OpenAI one (translated).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  baseURL: process.env.AIGW_URL,
  apiKey: 'sk-ant-client-key-not-forwarded',
  maxRetries: 0,
});

for (const model of ['claude', 'gpt-4o']) {
  test(`messages.create via ${model}`, async () => {
    const msg = await client.messages.create({
      model, max_tokens: 100, system: 'be brief',
      messages: [{ role: 'user', content: 'hello anthropic sdk' }],
    });
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text,
                 'Hello from mock! You said: hello anthropic sdk');
    assert.equal(msg.stop_reason, 'end_turn');
    assert.ok(msg.usage.output_tokens > 0);
  });

  test(`messages.stream via ${model}`, async () => {
    const stream = client.messages.stream({
      model, max_tokens: 100,
      messages: [{ role: 'user', content: 'stream anthropic' }],
    });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(text, 'Hello from mock! You said: stream anthropic');
    assert.equal(final.content[0].text, text);
    assert.equal(final.stop_reason, 'end_turn');
  });
}

test('unknown model is a NotFoundError', async () => {
  await assert.rejects(
    client.messages.create({ model: 'nope', max_tokens: 10,
      messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError);
      assert.equal(err.status, 404);
      return true;
    });
});
