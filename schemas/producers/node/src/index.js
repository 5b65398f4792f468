'use strict';
// Publishes OpenTelemetry spans to the spanway Kafka topic (contract version 1).
//
// KafkaSpanExporter is an SDK SpanExporter: one otlp_proto record per trace
// (split at span boundaries over 1,000,000 bytes), keyed by the trace id,
// partitioned with Kafka's murmur2, written by an idempotent producer with
// acks=-1. export() reports FAILED when a record was not acknowledged.

const { KafkaSpanExporter, COMPRESSIONS } = require('./exporter');
const { HEADERS, MAX_RECORD_BYTES, SpanTooLargeError, traceKey, traceValues } = require('./records');

module.exports = {
  KafkaSpanExporter,
  COMPRESSIONS,
  HEADERS,
  MAX_RECORD_BYTES,
  SpanTooLargeError,
  traceKey,
  traceValues,
};
