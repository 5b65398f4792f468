'use strict';
// Turns finished spans into the record keys, headers and values of the topic
// contract. Pure logic, no I/O: the exporter calls it, the unit tests drive it
// without a broker.
//
// Each trace becomes one TracesData value encoded by the SDK's own serializer
// (@opentelemetry/otlp-transformer's ProtobufTraceSerializer). A value over the
// size limit is cut at span boundaries: the trace's spans are divided into
// groups and each group is serialized on its own, so every part is a valid
// TracesData carrying its spans' resource and scope. A span that alone is over
// the limit cannot be published: SpanTooLargeError names it.

const { ProtobufTraceSerializer } = require('@opentelemetry/otlp-transformer');

/** The largest record value the contract allows, before compression. */
const MAX_RECORD_BYTES = 1_000_000;

/** Headers of every record this kit writes (UTF-8, no terminator). */
const HEADERS = Object.freeze({ encoding: 'otlp_proto', 'schema-version': '1' });

// Bytes kept free in a group's estimate for length prefixes that grow with it.
const SLACK = 64;

class SpanTooLargeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SpanTooLargeError';
  }
}

/** The record key: the trace id as 32 lowercase hex characters. */
function traceKey(traceId) {
  if (typeof traceId !== 'string' || !/^[0-9a-fA-F]{32}$/.test(traceId) || /^0+$/.test(traceId)) {
    throw new Error(`trace id ${JSON.stringify(traceId)} is not 32 hex characters of a non-zero id`);
  }
  return traceId.toLowerCase();
}

/** The spans of one export call by trace id, in the order each trace first appears. */
function groupByTrace(spans) {
  const traces = new Map();
  for (const span of spans) {
    const id = span.spanContext().traceId;
    let list = traces.get(id);
    if (!list) {
      list = [];
      traces.set(id, list);
    }
    list.push(span);
  }
  return traces;
}

// ExportTraceServiceRequest and TracesData both hold `repeated ResourceSpans
// resource_spans = 1` and nothing else, so the serializer's request bytes are
// a TracesData value as they are.
function encode(spans) {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans));
}

/**
 * The record values for the spans of one trace, each at most `limit` bytes.
 * Throws SpanTooLargeError when a single span cannot fit.
 */
function traceValues(spans, limit = MAX_RECORD_BYTES) {
  const whole = encode(spans);
  if (whole.length <= limit) return [whole];

  // Spans are packed greedily by an estimate of the bytes each adds: its own
  // encoding less the resource-and-scope envelope around it, which a group
  // carries once per resource and scope. The envelope is measured once per
  // resource and scope as 2 * size([s]) - size([s, s]). Length prefixes can
  // grow by a few bytes as a group fills, hence the slack; every group is
  // encoded and checked anyway, and halved should it still be over.
  const envelopes = new Map();
  const values = [];
  let group = [];
  let groupEnvelopes = new Set();
  let estimate = SLACK;
  for (const span of spans) {
    const single = encode([span]).length;
    if (single > limit) throw tooLarge(span, single, limit);
    const envelopeKey = envelopeKeyOf(span);
    let envelope = envelopes.get(envelopeKey);
    if (envelope === undefined) {
      envelope = Math.max(0, 2 * single - encode([span, span]).length);
      envelopes.set(envelopeKey, envelope);
    }
    const cost = single - envelope + (groupEnvelopes.has(envelopeKey) ? 0 : envelope);
    if (group.length > 0 && estimate + cost > limit) {
      values.push(...encodeChecked(group, limit));
      group = [];
      groupEnvelopes = new Set();
      estimate = SLACK + single;
    } else {
      estimate += cost;
    }
    group.push(span);
    groupEnvelopes.add(envelopeKey);
  }
  if (group.length > 0) values.push(...encodeChecked(group, limit));
  return values;
}

// What the serializer groups spans by: the resource object, then the scope.
const resourceIds = new WeakMap();
let nextResourceId = 0;
function envelopeKeyOf(span) {
  let id = resourceIds.get(span.resource);
  if (id === undefined) {
    id = nextResourceId++;
    resourceIds.set(span.resource, id);
  }
  const scope = span.instrumentationScope || {};
  return `${id}\u0000${scope.name}\u0000${scope.version || ''}\u0000${scope.schemaUrl || ''}`;
}

function encodeChecked(group, limit) {
  const value = encode(group);
  if (value.length <= limit) return [value];
  if (group.length === 1) throw tooLarge(group[0], value.length, limit);
  const middle = group.length >> 1;
  return [...encodeChecked(group.slice(0, middle), limit), ...encodeChecked(group.slice(middle), limit)];
}

function tooLarge(span, size, limit) {
  const ctx = span.spanContext();
  return new SpanTooLargeError(
    `span ${ctx.spanId} of trace ${ctx.traceId} (${JSON.stringify(span.name)}) encodes to ${size} bytes, ` +
      `over the record limit of ${limit} bytes`,
  );
}

module.exports = { MAX_RECORD_BYTES, HEADERS, SpanTooLargeError, traceKey, groupByTrace, traceValues };
