'use strict';
// Shared by the unit tests: real SDK spans, and the vendored protobuf types to read values back.

const path = require('node:path');
const protobuf = require('protobufjs');
const { ROOT_CONTEXT, trace } = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');

const PROTO_DIR = path.resolve(__dirname, '../../../proto');
const TESTDATA = path.resolve(__dirname, '../../../testdata');

/** Runs build(tracer, setParent) under a real SDK provider; returns the finished spans. */
async function finishedSpans(build) {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'unit' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  build(provider.getTracer('unit.scope', '0.1'), (span) => trace.setSpan(ROOT_CONTEXT, span));
  await provider.forceFlush();
  const spans = memory.getFinishedSpans();
  await provider.shutdown();
  return spans;
}

let tracesData;
function decodeTracesData(bytes) {
  if (!tracesData) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
    root.loadSync('opentelemetry/proto/trace/v1/trace.proto');
    tracesData = root.lookupType('opentelemetry.proto.trace.v1.TracesData');
  }
  return tracesData.toObject(tracesData.decode(bytes), { longs: String, bytes: Buffer });
}

function spansOf(data) {
  return (data.resourceSpans || []).flatMap((rs) => (rs.scopeSpans || []).flatMap((ss) => ss.spans || []));
}

module.exports = { TESTDATA, finishedSpans, decodeTracesData, spansOf };
