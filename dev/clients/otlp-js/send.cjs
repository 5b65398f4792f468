// Sends a few traces to an OTLP/HTTP endpoint with the OpenTelemetry JS SDK's
// JSON exporter, then prints every span it finished as one JSON line on
// stdout, so that a test can compare what reached Kafka with what was sent.
//
// usage: node send.cjs <url, e.g. http://127.0.0.1:4318/v1/traces> <traces> <spans per trace>
'use strict';

const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { Resource } = require('@opentelemetry/resources');

const [url, tracesArg, spansArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node send.cjs URL [traces] [spans-per-trace]');
  process.exit(2);
}
const traces = Number(tracesArg || 3);
const spansPerTrace = Number(spansArg || 3);

// Records every finished span as the SDK hands it to the exporter.
const finished = [];
const recorder = {
  onStart() {},
  onEnd(span) { finished.push(span); },
  forceFlush() { return Promise.resolve(); },
  shutdown() { return Promise.resolve(); },
};

let exportFailure = null;
const exporter = new OTLPTraceExporter({ url, timeoutMillis: 20000 });
const original = exporter.export.bind(exporter);
exporter.export = (spans, done) => original(spans, (result) => {
  if (result.code !== 0) exportFailure = result.error || new Error('export failed');
  done(result);
});

const provider = new BasicTracerProvider({
  resource: new Resource({ 'service.name': 'js-client', 'deployment.environment': 'test' }),
});
provider.addSpanProcessor(recorder);
// One batch for everything: a request that mixes several traces.
provider.addSpanProcessor(new BatchSpanProcessor(exporter, { maxExportBatchSize: 1000, scheduledDelayMillis: 60000 }));
const tracer = provider.getTracer('spanway-test', '1.0.0');

for (let t = 0; t < traces; t++) {
  const root = tracer.startSpan(`root-${t}`, {
    kind: api.SpanKind.SERVER,
    attributes: { 'http.method': 'GET', 'http.status_code': 200, 'retry': false, 'ratio': 0.5 },
  });
  const ctx = api.trace.setSpan(api.context.active(), root);
  for (let s = 1; s < spansPerTrace; s++) {
    const child = tracer.startSpan(`child-${t}-${s}`, { kind: api.SpanKind.CLIENT, attributes: { 'peer.service': 'db', 'tags': ['a', 'b'] } }, ctx);
    child.addEvent('query', { 'db.statement': 'select 1' });
    if (s === 1) child.setStatus({ code: api.SpanStatusCode.ERROR, message: 'boom' });
    child.end();
  }
  root.end();
}

function nanos(hr) {
  return (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
}

(async () => {
  await provider.forceFlush();
  await provider.shutdown();
  if (exportFailure) {
    console.error(`export failed: ${exportFailure.message || exportFailure}`);
    process.exit(1);
  }
  for (const span of finished) {
    const ctx = span.spanContext();
    console.log(JSON.stringify({
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      parentSpanId: span.parentSpanId || '',
      name: span.name,
      kind: span.kind,
      startTimeUnixNano: nanos(span.startTime),
      endTimeUnixNano: nanos(span.endTime),
      attributes: span.attributes,
      events: span.events.map((e) => ({ name: e.name, timeUnixNano: nanos(e.time), attributes: e.attributes || {} })),
      status: { code: span.status.code, message: span.status.message || '' },
      resource: span.resource.attributes,
      scope: { name: span.instrumentationLibrary.name, version: span.instrumentationLibrary.version || '' },
    }));
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
