//! What a collector left on its topic: how many records and spans, and
//! whether any span is there twice. A benchmark whose topic does not hold
//! exactly the spans the collector accepted measured a collector that
//! loses (or duplicates) data, and its rate is no result.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use spanway_schemas::Encoding;
use spanway_schemas::proto::jaeger::api_v2 as jaeger;
use spanway_schemas::proto::otlp;

/// The contents of a topic, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Records read.
    pub records: u64,
    /// Spans in them.
    pub spans: u64,
    /// Spans whose (trace id, span id) came earlier on the topic too.
    pub duplicates: u64,
    /// Records that did not decode in the expected encoding.
    pub undecodable: u64,
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", spanway_e2e::unique_name("bench-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .context("Kafka consumer for reading the topic")
}

/// Records on the topic now: the sum of the partitions' high watermarks
/// (the topic is fresh, so every record from offset 0 is the run's).
pub async fn records(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<u64> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap)?;
        let mut total = 0u64;
        for partition in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{partition}"))?;
            total += u64::try_from(high).unwrap_or(0);
        }
        Ok(total)
    })
    .await
    .context("watermark task")?
}

/// Waits until the topic's record count has not changed for `quiet`
/// (the collector has flushed what it will flush), or `limit` passes.
/// Returns the count and when it was first seen (to within one poll,
/// 250 ms plus the time a watermark request takes).
pub async fn wait_quiet(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let deadline = Instant::now() + limit;
    // Taken before the first reading: what that reading sees was there
    // already.
    let mut since = Instant::now();
    let mut last = records(bootstrap, topic, partitions).await?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = records(bootstrap, topic, partitions).await?;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    Ok((last, since))
}

/// Reads the whole topic from offset 0 and counts its spans, decoding each
/// record as `encoding` (`otlp_proto`: a trace per record; `jaeger_proto`:
/// a span per record).
pub async fn count(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    encoding: Encoding,
) -> anyhow::Result<Contents> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_all(&bootstrap, &topic, partitions, encoding))
        .await
        .context("topic reader task")?
}

fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    encoding: Encoding,
) -> anyhow::Result<Contents> {
    let consumer = consumer(bootstrap)?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)
            .context("partition list")?;
    }
    consumer.assign(&list).context("assigning partitions")?;
    let mut contents = Contents::default();
    let mut seen: HashSet<[u8; 24]> = HashSet::new();
    let mut at_end: HashSet<i32> = HashSet::new();
    // Nothing is written any more, so no read should take long.
    let deadline = Instant::now() + Duration::from_secs(300);
    while at_end.len() < usize::try_from(partitions).unwrap_or(0) {
        if Instant::now() > deadline {
            bail!("reading {topic} took over 5 minutes");
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = match message {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
                continue;
            }
            Err(error) => return Err(error).with_context(|| format!("reading {topic}")),
        };
        // A partition that reported its end and then yields more (it
        // cannot here, the writer has stopped) is simply not at the end.
        at_end.remove(&message.partition());
        contents.records += 1;
        let Some(ids) = span_ids(encoding, message.payload().unwrap_or_default()) else {
            contents.undecodable += 1;
            continue;
        };
        for id in ids {
            contents.spans += 1;
            if !seen.insert(id) {
                contents.duplicates += 1;
            }
        }
    }
    Ok(contents)
}

/// The (trace id, span id) of each span in one record; `None` if the
/// record does not decode.
fn span_ids(encoding: Encoding, value: &[u8]) -> Option<Vec<[u8; 24]>> {
    let id = |trace: &[u8], span: &[u8]| {
        let mut out = [0u8; 24];
        let trace = trace.get(..16)?;
        let span = span.get(..8)?;
        out[..16].copy_from_slice(trace);
        out[16..].copy_from_slice(span);
        Some(out)
    };
    match encoding {
        Encoding::OtlpProto => {
            let data = otlp::TracesData::decode(value).ok()?;
            data.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| id(&s.trace_id, &s.span_id))
                .collect()
        }
        Encoding::JaegerProto => {
            let span = jaeger::Span::decode(value).ok()?;
            Some(vec![id(&span.trace_id, &span.span_id)?])
        }
        Encoding::OtlpJson | Encoding::JaegerJson => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_both_encodings() {
        let span = otlp::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let data = otlp::TracesData {
            resource_spans: vec![otlp::ResourceSpans {
                scope_spans: vec![otlp::ScopeSpans {
                    spans: vec![
                        span.clone(),
                        otlp::Span {
                            span_id: vec![3; 8],
                            ..span
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let ids = span_ids(Encoding::OtlpProto, &data.encode_to_vec()).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1][16], 3);
        let jaeger_span = jaeger::Span {
            trace_id: vec![4; 16],
            span_id: vec![5; 8],
            ..Default::default()
        };
        let ids = span_ids(Encoding::JaegerProto, &jaeger_span.encode_to_vec()).unwrap();
        assert_eq!(
            ids,
            vec![[
                4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5
            ]]
        );
        assert!(span_ids(Encoding::JaegerProto, b"\xff\xff").is_none());
    }
}
