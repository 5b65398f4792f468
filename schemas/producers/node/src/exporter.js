'use strict';
// The SpanExporter that writes finished spans to Kafka as the topic contract says.
//
// Guarantee: export() reports SUCCESS only when every record of the call was
// acknowledged by all in-sync replicas (acks=-1) within the delivery timeout.
// Anything else (a broker that cannot be reached, a record refused, a span too
// large to publish, a timeout) is FAILED, with the reason passed as the
// result's error and logged by the OpenTelemetry diag logger; the SDK's
// processors do not retry, so FAILED means those spans are not known to be
// on the topic. A send still in flight when the timeout passes is not
// cancelled (kafkajs cannot): it may still land, and shutdown() waits for it.

const { diag } = require('@opentelemetry/api');
const { ExportResultCode } = require('@opentelemetry/core');
const { CompressionCodecs, CompressionTypes, Kafka, Partitioners, logLevel } = require('kafkajs');

const { HEADERS, MAX_RECORD_BYTES, SpanTooLargeError, groupByTrace, traceKey, traceValues } = require('./records');

const COMPRESSIONS = Object.freeze({
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
});

class KafkaSpanExporter {
  /**
   * @param {object} options
   * @param {string[]|string} options.brokers  host:port of one or more brokers
   * @param {string} [options.topic='jaeger-spans']
   * @param {'gzip'|'none'|'snappy'|'lz4'|'zstd'} [options.compression='gzip'] kafkajs ships
   *   gzip only; the others need their codec registered in kafkajs's CompressionCodecs first
   * @param {number} [options.deliveryTimeoutMs=30000] how long an export may wait for its acks
   * @param {number} [options.maxRecordBytes=1000000] the split threshold, at most 1,000,000
   * @param {object} [options.kafka] further kafkajs client options (clientId, ssl, sasl...)
   */
  constructor(options) {
    const {
      brokers,
      topic = 'jaeger-spans',
      compression = 'gzip',
      deliveryTimeoutMs = 30_000,
      maxRecordBytes = MAX_RECORD_BYTES,
      kafka = {},
    } = options || {};
    const brokerList = typeof brokers === 'string' ? brokers.split(',').filter(Boolean) : brokers;
    if (!Array.isArray(brokerList) || brokerList.length === 0) {
      throw new Error('brokers is empty: give host:port of at least one broker');
    }
    if (!topic) throw new Error('topic is empty');
    if (!(compression in COMPRESSIONS)) {
      throw new Error(`compression ${JSON.stringify(compression)} is not one of ${Object.keys(COMPRESSIONS).join(', ')}`);
    }
    const codec = COMPRESSIONS[compression];
    if (codec !== CompressionTypes.None) {
      try {
        CompressionCodecs[codec]();
      } catch (error) {
        throw new Error(`compression ${compression} has no codec registered in kafkajs: ${error.message}`);
      }
    }
    if (!(Number.isInteger(deliveryTimeoutMs) && deliveryTimeoutMs > 0)) {
      throw new Error(`deliveryTimeoutMs ${deliveryTimeoutMs} must be a positive integer`);
    }
    if (!(Number.isInteger(maxRecordBytes) && maxRecordBytes > 0 && maxRecordBytes <= MAX_RECORD_BYTES)) {
      throw new Error(`maxRecordBytes ${maxRecordBytes} must be in 1..${MAX_RECORD_BYTES}`);
    }

    this._topic = topic;
    this._compression = codec;
    this._timeoutMs = deliveryTimeoutMs;
    this._limit = maxRecordBytes;
    const client = new Kafka({
      clientId: 'spanway-kafka-exporter',
      logLevel: logLevel.ERROR,
      // Connection attempts give up well within one delivery timeout, so a
      // broker that cannot be reached fails the export instead of hanging it.
      connectionTimeout: Math.min(deliveryTimeoutMs, 10_000),
      requestTimeout: deliveryTimeoutMs,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: Math.max(500, deliveryTimeoutMs / 4) },
      ...kafka,
      brokers: brokerList,
    });
    this._producer = client.producer({
      // Kafka's Java murmur2 partitioner (the default of kafkajs 2; named so
      // that kafkajs does not warn about the change of default).
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      // kafkajs keeps sequence numbers right only with one request in flight
      // per connection when idempotent.
      maxInFlightRequests: 1,
    });
    this._connected = null;
    this._inFlight = new Set();
    this._closed = false;
  }

  export(spans, resultCallback) {
    if (this._closed) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('export after shutdown') });
      return;
    }
    this._export(spans).then(
      () => resultCallback({ code: ExportResultCode.SUCCESS }),
      (error) => {
        diag.error(`spanway kafka exporter: ${spans.length} spans not published: ${error.message}`);
        resultCallback({ code: ExportResultCode.FAILED, error });
      },
    );
  }

  async _export(spans) {
    const messages = [];
    const tooLarge = [];
    for (const [traceId, traceSpans] of groupByTrace(spans)) {
      let values;
      try {
        values = traceValues(traceSpans, this._limit);
      } catch (error) {
        if (!(error instanceof SpanTooLargeError)) throw error;
        tooLarge.push(`trace ${traceId}: ${error.message}`);
        continue;
      }
      const key = traceKey(traceId);
      for (const value of values) messages.push({ key, value, headers: { ...HEADERS } });
    }
    if (messages.length > 0) await this._send(messages);
    if (tooLarge.length > 0) {
      // The other traces were published; the call still fails, naming what was not.
      throw new SpanTooLargeError(tooLarge.join('; '));
    }
  }

  _send(messages) {
    const send = (async () => {
      await this._connect();
      for (const batch of sendBatches(messages, this._limit)) {
        await this._producer.send({
          topic: this._topic,
          messages: batch,
          acks: -1,
          timeout: this._timeoutMs,
          compression: this._compression,
        });
      }
    })();
    this._inFlight.add(send);
    const settled = () => this._inFlight.delete(send);
    send.then(settled, settled);
    return withDeadline(send, this._timeoutMs, `${messages.length} records`);
  }

  _connect() {
    if (!this._connected) {
      this._connected = this._producer.connect().catch((error) => {
        this._connected = null; // the next export tries again
        throw error;
      });
    }
    return this._connected;
  }

  /** Waits until the sends in flight are acknowledged or failed, at most the delivery timeout. */
  async forceFlush() {
    const pending = [...this._inFlight].map((p) => p.catch(() => {}));
    if (pending.length > 0) {
      await withDeadline(Promise.all(pending), this._timeoutMs, 'sends in flight').catch((error) =>
        diag.error(`spanway kafka exporter: flush: ${error.message}`),
      );
    }
  }

  async shutdown() {
    if (this._closed) return;
    this._closed = true;
    await this.forceFlush();
    await this._producer.disconnect().catch((error) =>
      diag.error(`spanway kafka exporter: disconnect: ${error.message}`),
    );
  }
}

// kafkajs puts all messages of one send() for a partition into one record
// batch, and the broker refuses a batch over its message.max.bytes (1,048,588
// by default, after compression). Sending at most `limit` bytes of values at a
// time keeps every batch within it whatever the codec achieves.
function sendBatches(messages, limit) {
  const batches = [];
  let batch = [];
  let bytes = 0;
  for (const message of messages) {
    if (batch.length > 0 && bytes + message.value.length > limit) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(message);
    bytes += message.value.length;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} not acknowledged within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

module.exports = { KafkaSpanExporter, COMPRESSIONS, sendBatches };
