'use strict';
// A small two-service program traced with the OpenTelemetry JS SDK and the kit.
//
//   run example --brokers HOST:PORT --topic TOPIC --run-id ID --out FILE
//               [--traces N] [--big-trace] [--timeout-ms MS] [--compression C]
//
// Services `frontend` and `payments` each have their own TracerProvider
// (resource service.name=<svc>, spanway.test.run=ID) with a BatchSpanProcessor
// and a KafkaSpanExporter. Per trace: frontend SERVER "GET /checkout" ->
// frontend INTERNAL "price cart" (an event, every attribute type) and frontend
// CLIENT "POST /pay" -> payments SERVER "POST /pay" (W3C context injected and
// extracted in-process; ERROR on every 5th trace) -> payments CLIENT "SELECT
// cards". --big-trace adds a trace of 2,500 spans with 600-byte attributes,
// over the record limit, which the kit must split. Every span the kit
// reported as exported is written to FILE as one ExportTraceServiceRequest
// (the SDK's protobuf serializer); stdout says `exported N spans`. Exits
// non-zero when an export failed.

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  DiagConsoleLogger,
  DiagLogLevel,
  trace,
} = require('@opentelemetry/api');
const { ExportResultCode, W3CTraceContextPropagator } = require('@opentelemetry/core');
const { ProtobufTraceSerializer } = require('@opentelemetry/otlp-transformer');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BatchSpanProcessor, TracerProvider } = require('@opentelemetry/sdk-trace');

const { KafkaSpanExporter, COMPRESSIONS } = require('../src');

const BIG_TRACE_SPANS = 2_500;
const BIG_ATTRIBUTE_BYTES = 600;

/** Passes spans to the kit and keeps those it reported as exported. */
class Recording {
  constructor(inner) {
    this.inner = inner;
    this.exported = [];
    this.failed = 0;
  }

  export(spans, resultCallback) {
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) this.exported.push(...spans);
      else this.failed += spans.length;
      resultCallback(result);
    });
  }

  forceFlush() {
    return this.inner.forceFlush();
  }

  shutdown() {
    return this.inner.shutdown();
  }
}

function providerFor(service, runId, exporter, timeoutMs) {
  return new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'spanway.test.run': runId }),
    spanProcessors: [
      // One export call must be able to hold the whole big trace, so that the
      // kit (not the processor) is what cuts it into records.
      new BatchSpanProcessor({
        exporter,
        maxQueueSize: 16_384,
        maxExportBatchSize: 8_192,
        scheduledDelayMillis: 2_000,
        exportTimeoutMillis: timeoutMs + 5_000,
      }),
    ],
  });
}

const propagator = new W3CTraceContextPropagator();

const describe = (error) => (error && error.message) || String(error || 'export failed');

function checkout(frontend, payments, n) {
  const server = frontend.startSpan(
    'GET /checkout',
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/checkout' } },
    ROOT_CONTEXT,
  );
  const serverContext = trace.setSpan(ROOT_CONTEXT, server);

  const pricing = frontend.startSpan('price cart', { kind: SpanKind.INTERNAL }, serverContext);
  pricing.setAttributes({
    'cart.currency': 'EUR',
    'cart.items': 3 + n,
    'cart.total': 42.5 + n,
    'cart.member': n % 2 === 0,
    'cart.skus': ['sku-1', 'sku-2', `sku-${n}`],
  });
  pricing.addEvent('discount applied', { 'discount.code': 'WINTER', 'discount.percent': 10 });
  pricing.end();

  const client = frontend.startSpan(
    'POST /pay',
    { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'POST', 'peer.service': 'payments' } },
    serverContext,
  );
  // In-process stand-in for an HTTP call: the client injects its context
  // into headers, the server extracts it.
  const headers = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, client), headers, defaultTextMapSetter);
  pay(payments, propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter), n % 5 === 4);
  client.end();
  server.end();
}

function pay(payments, parentContext, failing) {
  const server = payments.startSpan(
    'POST /pay',
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/pay' } },
    parentContext,
  );
  const query = payments.startSpan(
    'SELECT cards',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system': 'postgresql',
        'db.name': 'cards',
        'peer.service': 'postgresql',
        'server.address': 'db',
      },
    },
    trace.setSpan(parentContext, server),
  );
  query.end();
  if (failing) server.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' });
  server.end();
}

function bigTrace(frontend) {
  const blob = 'x'.repeat(BIG_ATTRIBUTE_BYTES);
  const root = frontend.startSpan('bulk import', { kind: SpanKind.SERVER }, ROOT_CONTEXT);
  const rootContext = trace.setSpan(ROOT_CONTEXT, root);
  for (let i = 0; i < BIG_TRACE_SPANS - 1; i++) {
    frontend.startSpan(`import row ${i}`, { attributes: { 'row.data': blob } }, rootContext).end();
  }
  root.end();
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      brokers: { type: 'string' },
      topic: { type: 'string' },
      'run-id': { type: 'string' },
      out: { type: 'string' },
      traces: { type: 'string', default: '10' },
      'big-trace': { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '30000' },
      compression: { type: 'string', default: 'gzip' },
    },
  });
  for (const name of ['brokers', 'topic', 'run-id', 'out']) {
    if (!args[name]) throw new Error(`--${name} is required`);
  }
  if (!(args.compression in COMPRESSIONS)) throw new Error(`--compression ${args.compression} is unknown`);
  diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.ERROR);
  const timeoutMs = Number(args['timeout-ms']);

  const recordings = {};
  const providers = {};
  for (const service of ['frontend', 'payments']) {
    const kit = new KafkaSpanExporter({
      brokers: args.brokers,
      topic: args.topic,
      compression: args.compression,
      deliveryTimeoutMs: timeoutMs,
      kafka: { clientId: `spanway-example-${service}` },
    });
    recordings[service] = new Recording(kit);
    providers[service] = providerFor(service, args['run-id'], recordings[service], timeoutMs);
  }
  const frontend = providers.frontend.getTracer('spanway.example.frontend', '1.0.0');
  const payments = providers.payments.getTracer('spanway.example.payments', '1.0.0');

  for (let n = 0; n < Number(args.traces); n++) checkout(frontend, payments, n);
  if (args['big-trace']) bigTrace(frontend);

  // Both providers flush at once, so a broker that cannot be reached costs
  // one delivery timeout, not one per provider.
  await Promise.all(
    Object.entries(providers).map(async ([service, provider]) => {
      // The processor passes a failed export on as a rejected flush; the
      // recording has counted it, so it is reported below, not thrown.
      await provider.forceFlush().catch((error) => console.error(`example: ${service}: flush: ${describe(error)}`));
      await provider.shutdown().catch((error) => console.error(`example: ${service}: shutdown: ${describe(error)}`));
    }),
  );

  const exported = Object.values(recordings).flatMap((r) => r.exported);
  const failed = Object.values(recordings).reduce((sum, r) => sum + r.failed, 0);
  fs.writeFileSync(args.out, ProtobufTraceSerializer.serializeRequest(exported) || new Uint8Array());
  console.log(`exported ${exported.length} spans`);
  if (failed > 0) {
    console.error(`example: ${failed} spans were not exported (see the errors above)`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`example: ${error.stack || error}`);
    process.exit(1);
  },
);
