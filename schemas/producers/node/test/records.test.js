'use strict';
// Keys, headers, grouping, flags and splitting, without a broker.

const test = require('node:test');
const assert = require('node:assert/strict');
const { ExportResultCode } = require('@opentelemetry/core');

const { HEADERS, KafkaSpanExporter, SpanTooLargeError, traceKey, traceValues } = require('../src');
const { groupByTrace } = require('../src/records');
const { sendBatches } = require('../src/exporter');
const { finishedSpans, decodeTracesData, spansOf } = require('./helpers');

test('keys are 32 lowercase hex characters; invalid ids are refused', () => {
  assert.equal(traceKey('5B8EFFF798038103D269B633813FC60C'), '5b8efff798038103d269b633813fc60c');
  assert.equal(traceKey('0000000000000000000000000000abcd'), '0000000000000000000000000000abcd');
  for (const bad of ['0'.repeat(32), 'abcd', 'g'.repeat(32), undefined]) {
    assert.throws(() => traceKey(bad));
  }
});

test('headers', () => {
  assert.deepEqual({ ...HEADERS }, { encoding: 'otlp_proto', 'schema-version': '1' });
});

test('one group per trace, in first-seen order', async () => {
  const spans = await finishedSpans((tracer, setParent) => {
    for (const name of ['a', 'b']) {
      const root = tracer.startSpan(name);
      tracer.startSpan(`${name}-child`, {}, setParent(root)).end();
      root.end();
    }
  });
  const groups = [...groupByTrace(spans).values()].map((g) => g.map((s) => s.name));
  assert.deepEqual(groups, [['a-child', 'a'], ['b-child', 'b']]);
});

test('a small trace is one value carrying the W3C trace flags', async () => {
  const spans = await finishedSpans((tracer, setParent) => {
    const root = tracer.startSpan('root');
    tracer.startSpan('child', {}, setParent(root)).end();
    root.end();
  });
  const values = traceValues(spans);
  assert.equal(values.length, 1);
  const decoded = spansOf(decodeTracesData(values[0]));
  assert.deepEqual(decoded.map((s) => s.name), ['child', 'root']);
  for (const [i, span] of decoded.entries()) {
    assert.equal(span.flags & 0xff, spans[i].spanContext().traceFlags);
    assert.equal(span.flags & 0x1, 1, 'sampled');
  }
});

test('an oversized trace is split at span boundaries, each part whole and within the limit', async () => {
  const spans = await finishedSpans((tracer, setParent) => {
    const root = tracer.startSpan('root');
    for (let i = 0; i < 200; i++) {
      tracer.startSpan(`s${i}`, { attributes: { blob: 'y'.repeat(300) } }, setParent(root)).end();
    }
    root.end();
  });
  const limit = 20_000;
  const values = traceValues(spans, limit);
  assert.ok(values.length > 3, `${values.length} parts`);
  const names = [];
  for (const value of values) {
    assert.ok(value.length <= limit, `${value.length} bytes`);
    const data = decodeTracesData(value);
    const rs = data.resourceSpans[0];
    assert.equal(rs.resource.attributes.find((kv) => kv.key === 'service.name').value.stringValue, 'unit');
    assert.equal(rs.scopeSpans[0].scope.name, 'unit.scope');
    names.push(...spansOf(data).map((s) => s.name));
  }
  assert.deepEqual(names, spans.map((s) => s.name));
  const total = values.reduce((n, v) => n + v.length, 0);
  assert.ok(values.length <= Math.floor(total / ((limit * 3) / 4)) + 1, 'parts are filled');
});

test('the 2,500-span big trace fits the contract limit', async () => {
  const spans = await finishedSpans((tracer, setParent) => {
    const root = tracer.startSpan('bulk');
    for (let i = 0; i < 2_499; i++) {
      tracer.startSpan(`row ${i}`, { attributes: { 'row.data': 'x'.repeat(600) } }, setParent(root)).end();
    }
    root.end();
  });
  const values = traceValues(spans);
  assert.ok(values.length >= 2);
  assert.ok(values.every((v) => v.length <= 1_000_000));
  assert.equal(values.flatMap((v) => spansOf(decodeTracesData(v))).length, 2_500);
});

test('a single span over the limit is an error naming it', async () => {
  const spans = await finishedSpans((tracer) => {
    tracer.startSpan('huge', { attributes: { blob: 'h'.repeat(5_000) } }).end();
  });
  assert.throws(() => traceValues(spans, 1_000), (error) => {
    assert.ok(error instanceof SpanTooLargeError);
    assert.match(error.message, /span [0-9a-f]{16} of trace [0-9a-f]{32} \("huge"\) encodes to \d+ bytes/);
    return true;
  });
});

test('sends are cut so no batch holds more than the limit of values', () => {
  const messages = [600, 600, 300, 100, 1_200].map((n) => ({ value: Buffer.alloc(n) }));
  const batches = sendBatches(messages, 1_000).map((b) => b.map((m) => m.value.length));
  assert.deepEqual(batches, [[600], [600, 300, 100], [1_200]]);
});

test('the exporter refuses bad options before connecting', () => {
  for (const options of [
    { brokers: [] },
    { brokers: 'b:9092', topic: '' },
    { brokers: 'b:9092', compression: 'brotli' },
    { brokers: 'b:9092', compression: 'zstd' }, // no codec registered
    { brokers: 'b:9092', deliveryTimeoutMs: 0 },
    { brokers: 'b:9092', maxRecordBytes: 1_000_001 },
  ]) {
    assert.throws(() => new KafkaSpanExporter(options), undefined, JSON.stringify(options));
  }
});

test('a span too large fails the export at once, with no broker needed', async () => {
  const spans = await finishedSpans((tracer) => {
    tracer.startSpan('huge', { attributes: { blob: 'h'.repeat(5_000) } }).end();
  });
  const exporter = new KafkaSpanExporter({ brokers: '127.0.0.1:1', topic: 't', maxRecordBytes: 1_000 });
  const result = await new Promise((resolve) => exporter.export(spans, resolve));
  assert.equal(result.code, ExportResultCode.FAILED);
  assert.match(result.error.message, /over the record limit/);
  await exporter.shutdown();
});

test('a trace of two resources splits with each span under its own resource', async () => {
  const a = await finishedSpans((tracer) => {
    for (let i = 0; i < 30; i++) tracer.startSpan(`a${i}`, { attributes: { blob: 'z'.repeat(200) } }).end();
  });
  const b = await finishedSpans((tracer) => {
    for (let i = 0; i < 30; i++) tracer.startSpan(`b${i}`, { attributes: { blob: 'z'.repeat(200) } }).end();
  });
  // Give b's spans a second resource and interleave them with a's.
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const other = resourceFromAttributes({ 'service.name': 'other' });
  const mixed = a.flatMap((span, i) => [span, Object.assign(Object.create(b[i]), { resource: other })]);
  const limit = 3_000;
  const values = traceValues(mixed, limit);
  const seen = [];
  for (const value of values) {
    assert.ok(value.length <= limit, `${value.length} bytes`);
    for (const rs of decodeTracesData(value).resourceSpans) {
      const service = rs.resource.attributes.find((kv) => kv.key === 'service.name').value.stringValue;
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans) {
          assert.equal(service, span.name.startsWith('a') ? 'unit' : 'other', span.name);
          seen.push(span.name);
        }
      }
    }
  }
  assert.deepEqual(seen.sort(), mixed.map((s) => s.name).sort());
});
