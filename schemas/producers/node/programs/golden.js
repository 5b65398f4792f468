'use strict';
// Publishes the golden otlp_proto traces through the kit, one export call per trace.
//
//   run golden --brokers HOST:PORT --topic TOPIC --testdata DIR [--timeout-ms MS]
//
// Each DIR/<name>.otlp_proto.value.bin is decoded with protobufjs (from the
// .proto files vendored in schemas/proto) into the SDK's finished-span data
// (ReadableSpan) with every field the value carries, then exported with
// KafkaSpanExporter. A reader of TOPIC must then find the key, headers,
// partition and spans DIR/<name>.otlp_proto.json states. Exits non-zero unless
// every export succeeded.

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const protobuf = require('protobufjs');
const { createTraceState } = require('@opentelemetry/api');
const { ExportResultCode } = require('@opentelemetry/core');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const { KafkaSpanExporter } = require('../src');

const PROTO_DIR = path.resolve(__dirname, '../../../proto');
// Span.flags bit 9: the parent (or link) context came from another process.
const IS_REMOTE = 0x200;

function loadTracesData() {
  const root = new protobuf.Root();
  // Imports inside the vendored files are relative to the proto root.
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
  root.loadSync('opentelemetry/proto/trace/v1/trace.proto', { keepCase: false });
  return root.lookupType('opentelemetry.proto.trace.v1.TracesData');
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const bigint = (value) => BigInt(value || 0);
const hrTime = (nanos) => [Number(bigint(nanos) / 1_000_000_000n), Number(bigint(nanos) % 1_000_000_000n)];

function valueOf(anyValue) {
  if (!anyValue) return undefined;
  if (anyValue.stringValue !== undefined) return anyValue.stringValue;
  if (anyValue.boolValue !== undefined) return anyValue.boolValue;
  // Numbers beyond 2^53 lose precision: JS attribute values are doubles.
  if (anyValue.intValue !== undefined) return Number(anyValue.intValue);
  if (anyValue.doubleValue !== undefined) return anyValue.doubleValue;
  if (anyValue.bytesValue !== undefined) return new Uint8Array(anyValue.bytesValue);
  if (anyValue.arrayValue !== undefined) return (anyValue.arrayValue.values || []).map(valueOf);
  if (anyValue.kvlistValue !== undefined) return attributes(anyValue.kvlistValue.values);
  return undefined;
}

function attributes(keyValues) {
  const out = {};
  for (const kv of keyValues || []) out[kv.key] = valueOf(kv.value);
  return out;
}

function context(traceId, spanId, flags, traceState) {
  return {
    traceId: hex(traceId),
    spanId: hex(spanId),
    traceFlags: (flags || 0) & 0xff,
    isRemote: Boolean((flags || 0) & IS_REMOTE),
    ...(traceState ? { traceState: createTraceState(traceState) } : {}),
  };
}

function readableSpans(data) {
  const spans = [];
  for (const rs of data.resourceSpans || []) {
    // The serializer groups spans by resource object, so one per ResourceSpans.
    const resource = resourceFromAttributes(attributes(rs.resource && rs.resource.attributes), {
      schemaUrl: rs.schemaUrl || undefined,
    });
    for (const ss of rs.scopeSpans || []) {
      const scope = {
        name: (ss.scope && ss.scope.name) || '',
        version: (ss.scope && ss.scope.version) || undefined,
        schemaUrl: ss.schemaUrl || undefined,
      };
      const scopeAttributes = attributes(ss.scope && ss.scope.attributes);
      if (Object.keys(scopeAttributes).length > 0) scope.attributes = scopeAttributes;
      for (const s of ss.spans || []) {
        const spanContext = context(s.traceId, s.spanId, (s.flags || 0) & 0xff, s.traceState);
        const start = hrTime(s.startTimeUnixNano);
        const end = hrTime(s.endTimeUnixNano);
        const durationNanos = bigint(s.endTimeUnixNano) - bigint(s.startTimeUnixNano);
        const status = s.status || {};
        spans.push({
          name: s.name || '',
          // OTLP kinds are the API's plus one (0 = unspecified, read as internal).
          kind: Math.max(0, (s.kind || 0) - 1),
          spanContext: () => spanContext,
          parentSpanContext:
            s.parentSpanId && s.parentSpanId.length > 0
              ? context(s.traceId, s.parentSpanId, (s.flags || 0) & IS_REMOTE)
              : undefined,
          startTime: start,
          endTime: end,
          duration: hrTime(durationNanos),
          ended: true,
          // OTLP and API status codes share their numbers.
          status: { code: status.code || 0, ...(status.message ? { message: status.message } : {}) },
          attributes: attributes(s.attributes),
          links: (s.links || []).map((link) => ({
            context: context(link.traceId, link.spanId, link.flags, link.traceState),
            attributes: attributes(link.attributes),
            droppedAttributesCount: link.droppedAttributesCount || 0,
          })),
          events: (s.events || []).map((event) => ({
            name: event.name || '',
            time: hrTime(event.timeUnixNano),
            attributes: attributes(event.attributes),
            droppedAttributesCount: event.droppedAttributesCount || 0,
          })),
          resource,
          instrumentationScope: scope,
          droppedAttributesCount: s.droppedAttributesCount || 0,
          droppedEventsCount: s.droppedEventsCount || 0,
          droppedLinksCount: s.droppedLinksCount || 0,
        });
      }
    }
  }
  return spans;
}

function exportOnce(exporter, spans) {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      brokers: { type: 'string' },
      topic: { type: 'string' },
      testdata: { type: 'string' },
      'timeout-ms': { type: 'string', default: '30000' },
    },
  });
  for (const name of ['brokers', 'topic', 'testdata']) {
    if (!args[name]) throw new Error(`--${name} is required`);
  }
  const manifests = fs
    .readdirSync(args.testdata)
    .filter((f) => f.endsWith('.otlp_proto.json'))
    .sort();
  if (manifests.length === 0) throw new Error(`no *.otlp_proto.json in ${args.testdata}`);

  const TracesData = loadTracesData();
  const exporter = new KafkaSpanExporter({
    brokers: args.brokers,
    topic: args.topic,
    deliveryTimeoutMs: Number(args['timeout-ms']),
  });
  let failed = 0;
  for (const manifestFile of manifests) {
    const name = manifestFile.slice(0, -'.json'.length);
    const manifest = JSON.parse(fs.readFileSync(path.join(args.testdata, manifestFile), 'utf8'));
    const value = fs.readFileSync(path.join(args.testdata, `${name}.value.bin`));
    const data = TracesData.toObject(TracesData.decode(value), { longs: String, bytes: Buffer });
    const spans = readableSpans(data);
    const result = await exportOnce(exporter, spans);
    const ok = result.code === ExportResultCode.SUCCESS;
    console.log(`${name}: key ${manifest.key}: ${spans.length} spans exported: ${ok ? 'ok' : 'FAILED'}`);
    if (!ok) {
      console.error(`golden: ${name}: ${result.error && result.error.message}`);
      failed += 1;
    }
  }
  await exporter.shutdown();
  if (failed > 0) {
    console.error(`golden: ${failed} of ${manifests.length} exports failed`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`golden: ${error.stack || error}`);
    process.exit(1);
  },
);
