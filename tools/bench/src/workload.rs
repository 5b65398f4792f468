//! The workload: one deterministic corpus of spans, put on Kafka in the
//! encoding each ingester reads, and the same spans as ready-made bulk
//! bodies for the raw loader.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spanway_e2e::corpus::Corpus;
use spanway_ingester::document::{TagsAsFields, micros_of_timestamp, span_document_with};
use spanway_schemas::proto::otlp;
use spanway_schemas::{Encoding, SpanRecord, TraceId, decode_record, encode_trace};
use spanway_search::bulk::body::create_lines;
use spanway_search::index::{IndexNames, SpanIndexPeriod};

/// Fixed, so every run of the benchmark sends the same spans.
const SEED: u64 = 0x5eed_be4c;

/// `spans` spans in traces of `spans_per_trace` (rounded up to whole
/// traces): five services, nine attributes per span plus the service name
/// and `resource` on each span's resource, traces starting in the first
/// `window` of one UTC day (see [`spanway_e2e::corpus::generate_over`]).
pub fn corpus(
    spans: u64,
    spans_per_trace: usize,
    resource: &[(String, String)],
    window: Duration,
) -> Corpus {
    let per_trace = spans_per_trace.max(1);
    let traces = usize::try_from(spans)
        .unwrap_or(usize::MAX)
        .div_ceil(per_trace);
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    spanway_e2e::corpus::generate_over(SEED, traces, per_trace, resource, window_ns)
}

/// The default `--corpus-window`: most of a day, as the corpus always had.
pub const DEFAULT_WINDOW: Duration = Duration::from_nanos(spanway_e2e::corpus::DEFAULT_WINDOW_NS);

/// Puts the corpus's records (one trace each) in the order their traces
/// started, as live traffic reaches a topic, then shuffles each run of
/// `disorder` records (seeded, so every run sends the same order): spans
/// arrive seconds after they start, and not in the order they started.
pub fn order_by_start(corpus: &mut Corpus, disorder: usize) {
    let mut starts: HashMap<&str, u64> = HashMap::new();
    for span in corpus.spans.values() {
        let start = starts.entry(span.trace_id.as_str()).or_insert(u64::MAX);
        *start = (*start).min(span.start_us);
    }
    let mut keyed: Vec<(u64, SpanRecord)> = std::mem::take(&mut corpus.records)
        .into_iter()
        .map(|record| {
            let start = starts.get(record.key.as_str()).copied().unwrap_or(u64::MAX);
            (start, record)
        })
        .collect();
    keyed.sort_by_key(|(start, _)| *start);
    shuffle_runs(&mut keyed, disorder);
    corpus.records = keyed.into_iter().map(|(_, record)| record).collect();
}

/// Shuffles each run of `run` items in place, seeded, so that every
/// benchmark run sends the same order; runs of 0 or 1 leave the order.
fn shuffle_runs<T>(items: &mut [T], run: usize) {
    if run > 1 {
        use rand::SeedableRng as _;
        use rand::seq::SliceRandom as _;
        let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
        for chunk in items.chunks_mut(run) {
            chunk.shuffle(&mut rng);
        }
    }
}

/// The corpus as Jaeger's collector writes it to Kafka (`jaeger_proto`, its
/// `--kafka.producer.encoding=protobuf` default): one record per span, keyed
/// by trace id.
pub fn jaeger_records(corpus: &Corpus) -> anyhow::Result<Vec<SpanRecord>> {
    let mut out = Vec::with_capacity(corpus.spans.len());
    for record in &corpus.records {
        let data = otlp::TracesData::decode(&record.value[..])
            .context("corpus record is not OTLP protobuf")?;
        let trace_id = TraceId::from_hex(&record.key).context("corpus record key")?;
        out.extend(
            encode_trace(Encoding::JaegerProto, trace_id, data.resource_spans)
                .context("re-encoding the corpus as jaeger_proto")?,
        );
    }
    Ok(out)
}

/// How [`bulk_bodies`] departs from what the ingester sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct BulkShape {
    /// `index` actions without ids instead of `create` with ours.
    pub auto_ids: bool,
    /// `create` with [`short_id`]s instead of ours.
    pub short_ids: bool,
    /// Every non-binary tag as a field (`tags_as_fields.all`).
    pub tags_as_fields: bool,
    /// Ids led by the span's start time ([`time_led_id`]).
    pub time_ids: bool,
    /// Documents in their spans' start-time order, as live traffic arrives,
    /// instead of the corpus's order (traces at random times of a day).
    pub time_ordered: bool,
    /// With `time_ordered`, each run of this many documents shuffled
    /// (seeded): spans reach a writer seconds after they start, and not in
    /// the order they started.
    pub disorder: usize,
    /// Span indices by the hour of each span's start, as the ingester's
    /// `index_rollover_frequency_spans = "hour"` names them.
    pub hourly: bool,
}

/// The corpus's span documents for an index prefix, as `_bulk` bodies of
/// `batch` `create` actions: byte for byte what our ingester sends (same
/// document builder, same action lines), minus the few service documents.
pub fn bulk_bodies(
    corpus: &Corpus,
    prefix: &str,
    batch: usize,
    shape: BulkShape,
) -> anyhow::Result<Vec<Bytes>> {
    let period = if shape.hourly {
        SpanIndexPeriod::Hour
    } else {
        SpanIndexPeriod::Day
    };
    let names = IndexNames::new(prefix).with_span_period(period);
    let fields = TagsAsFields {
        all: shape.tags_as_fields,
        ..TagsAsFields::default()
    };
    // Each document's action and source lines, with its start time to order by.
    let mut documents: Vec<(u64, Vec<u8>)> = Vec::with_capacity(corpus.spans.len());
    for record in &corpus.records {
        for span in decode_record(Encoding::OtlpProto, &record.value)? {
            let mut doc = span_document_with(&span, span.process.as_ref(), &names, &fields);
            let start_us = micros_of_timestamp(span.start_time.as_ref());
            if shape.short_ids {
                doc.id = short_id(&doc.id)?;
            }
            if shape.time_ids {
                doc.id = time_led_id(start_us, &doc.id);
            }
            let [action, source] = create_lines(&doc);
            let mut lines = Vec::with_capacity(action.len() + source.len() + 2);
            if shape.auto_ids {
                lines.extend_from_slice(b"{\"index\":{\"_index\":");
                lines.extend_from_slice(&serde_json::to_vec(&doc.index)?);
                lines.extend_from_slice(b"}}");
            } else {
                lines.extend_from_slice(&action);
            }
            lines.push(b'\n');
            lines.extend_from_slice(&source);
            lines.push(b'\n');
            documents.push((start_us, lines));
        }
    }
    if shape.time_ordered {
        // Stable: spans that start in the same microsecond keep their order.
        documents.sort_by_key(|(start_us, _)| *start_us);
        shuffle_runs(&mut documents, shape.disorder);
    }
    Ok(documents
        .chunks(batch.max(1))
        .map(|chunk| {
            let lines: Vec<&[u8]> = chunk.iter().map(|(_, lines)| lines.as_slice()).collect();
            Bytes::from(lines.concat())
        })
        .collect())
}

/// `id` led by the span's start time: 13 hex digits of microseconds since
/// the epoch (enough until the year 2112), so that ids sort as their spans
/// started.
pub fn time_led_id(start_us: u64, id: &str) -> String {
    format!("{start_us:013x}_{id}")
}

/// Our document id (`<trace id>_<span id>_<hash>`, hex) cut to the span id
/// and the hash, 16 bytes in base64url: 22 characters instead of 66, still
/// the same for the same document.
pub fn short_id(id: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let mut parts = id.rsplitn(3, '_');
    let (Some(hash), Some(span), Some(_trace)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("document id {id} is not <trace>_<span>_<hash>");
    };
    let mut bytes = hex::decode(span).context("span id of a document id")?;
    bytes.extend(hex::decode(hash).context("hash of a document id")?);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn admin(bootstrap: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("Kafka admin client")
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let results = admin(bootstrap)?
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .with_context(|| {
            format!("creating topic {topic} (is Kafka up at {bootstrap}? `dev/services up kafka`)")
        })?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// Deletes topics, ignoring ones that do not exist.
pub async fn delete_topics(bootstrap: &str, topics: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin(bootstrap)?
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .context("deleting topics")?;
    Ok(())
}

/// Deletes a consumer group; fails while it still has members.
pub async fn delete_group(bootstrap: &str, group: &str) -> anyhow::Result<()> {
    let results = admin(bootstrap)?
        .delete_groups(
            &[group],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .with_context(|| format!("deleting group {group}"))?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("deleting group {name}: {code}"))?;
    }
    Ok(())
}

/// Produces `records` to `topic` as the topic contract's producer does
/// (murmur2 partitioner, idempotent, `acks=all`, zstd) and waits for every
/// acknowledgement. `headers: false` leaves out the contract headers, as
/// Jaeger's own collector writes none.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    records: &[SpanRecord],
    headers: bool,
    shape: &TopicShape,
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("compression.type", &shape.compression)
        .set("batch.num.messages", shape.batch_records.to_string())
        .create()
        .context("Kafka producer")?;
    for chunk in records.chunks(5000) {
        let mut deliveries = Vec::with_capacity(chunk.len());
        for record in chunk {
            let mut future = FutureRecord::to(topic)
                .key(record.key.as_bytes())
                .payload(&record.value[..]);
            if headers {
                let mut owned = OwnedHeaders::new();
                for (name, value) in record.headers {
                    owned = owned.insert(Header {
                        key: name,
                        value: Some(value),
                    });
                }
                future = future.headers(owned);
            }
            deliveries.push(producer.send(future, Duration::from_secs(60)));
        }
        // `send` enqueues only when polled: awaiting the futures one by one
        // would send one record per linger period. Polling them together
        // enqueues the whole chunk at once.
        for delivery in futures::future::join_all(deliveries).await {
            if let Err((error, _)) = delivery {
                bail!("record to {topic} not acknowledged: {error}");
            }
        }
    }
    Ok(())
}

/// How the benchmark's producer writes a topic: the codec and the records
/// per message set a consumer decompresses at once. The collector at a few
/// thousand records per second writes message sets of a few records each;
/// the default here (librdkafka's 10,000) makes sets as large as the linger
/// lets them be.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TopicShape {
    /// Compression of the benchmark topic (`compression.type`: none, gzip,
    /// snappy, lz4, zstd).
    #[arg(long = "topic-compression", default_value = "zstd")]
    pub compression: String,
    /// Records per message set at most (`batch.num.messages`), e.g. 8 for
    /// sets as small as the collector writes at 50,000 spans/s.
    #[arg(long = "topic-batch-records", default_value_t = 10_000)]
    pub batch_records: u32,
}

/// Commits offset 0 on every partition of `topic` for consumer group
/// `group`, before any member has joined.
///
/// Jaeger's v1 ingester has no option for where a new group starts and
/// sarama's default is the newest offset, so a fresh group would skip the
/// spans produced before it. A committed offset wins over that default.
pub fn commit_start_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("Kafka consumer for the offset commit")?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Offset(0))
            .context("partition list")?;
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .with_context(|| format!("committing start offsets for group {group}"))?;
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .context("reading back committed offsets")?;
    for element in committed.elements() {
        if element.offset() != Offset::Offset(0) {
            bail!(
                "group {group} partition {} has offset {:?} after the commit",
                element.partition(),
                element.offset()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_led_ids_sort_as_their_spans_started() {
        let early = time_led_id(1_769_978_286_462_535, "b_a");
        let later = time_led_id(1_769_978_286_465_536, "a_b");
        assert_eq!(early, "649c92f065647_b_a");
        assert!(early < later);
        // Until 2112 the prefix keeps its width, so text order stays time order.
        assert_eq!(time_led_id(4_500_000_000_000_000, "x").len(), 15);
    }

    #[test]
    fn short_ids_keep_span_id_and_hash() {
        let id =
            short_id("0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_00f067aa0ba902b7").unwrap();
        assert_eq!(id.len(), 22);
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .unwrap();
        assert_eq!(hex::encode(bytes), "b7ad6b716920333100f067aa0ba902b7");
        assert!(short_id("no-underscores").is_err());
        assert!(short_id("a_zz_00").is_err(), "not hex");
    }

    #[test]
    fn ordered_by_start_the_records_follow_their_traces_starts() {
        let mut corpus = corpus(200, 10, &[], DEFAULT_WINDOW);
        let before: Vec<String> = corpus.records.iter().map(|r| r.key.clone()).collect();
        order_by_start(&mut corpus, 0);
        let start_of = |key: &str| {
            corpus
                .spans
                .values()
                .filter(|s| s.trace_id == key)
                .map(|s| s.start_us)
                .min()
                .unwrap()
        };
        let starts: Vec<u64> = corpus.records.iter().map(|r| start_of(&r.key)).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        let mut after: Vec<String> = corpus.records.iter().map(|r| r.key.clone()).collect();
        assert_ne!(after, before, "the corpus's own order is not time order");
        after.sort();
        let mut sorted_before = before;
        sorted_before.sort();
        assert_eq!(after, sorted_before, "the same records");

        let mut shuffled = self::corpus(200, 10, &[], DEFAULT_WINDOW);
        order_by_start(&mut shuffled, 5);
        let starts: Vec<u64> = shuffled.records.iter().map(|r| start_of(&r.key)).collect();
        assert!(
            starts.windows(2).any(|w| w[0] > w[1]),
            "shuffled within runs"
        );
        let run_max: Vec<u64> = starts.chunks(5).map(|c| *c.iter().max().unwrap()).collect();
        let run_min: Vec<u64> = starts.chunks(5).map(|c| *c.iter().min().unwrap()).collect();
        assert!(
            run_max
                .iter()
                .zip(&run_min[1..])
                .all(|(max, next_min)| max <= next_min),
            "each run of 5 before the next"
        );
    }

    #[test]
    fn corpus_rounds_up_to_whole_traces() {
        let corpus = corpus(25, 10, &[], DEFAULT_WINDOW);
        assert_eq!(corpus.spans.len(), 30);
        assert_eq!(corpus.records.len(), 3);
    }

    #[test]
    fn same_spans_in_every_form() {
        let corpus = corpus(40, 10, &[], DEFAULT_WINDOW);
        let jaeger = jaeger_records(&corpus).unwrap();
        assert_eq!(jaeger.len(), 40);
        let bodies = bulk_bodies(&corpus, "p", 15, BulkShape::default()).unwrap();
        assert_eq!(bodies.len(), 3);
        let lines: usize = bodies
            .iter()
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .sum();
        assert_eq!(lines, 80);
        let first = bodies[0].split(|c| *c == b'\n').next().unwrap();
        assert!(String::from_utf8_lossy(first).contains(r#""_index":"p-jaeger-span-2026-02-01""#));
        assert!(String::from_utf8_lossy(first).starts_with(r#"{"create":{"_id":"#));
    }

    /// The `_index` of an action line.
    fn action_index(action: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(action).unwrap();
        let (_, target) = value.as_object().unwrap().iter().next().unwrap();
        target["_index"].as_str().unwrap().to_owned()
    }

    #[test]
    fn shapes_change_only_what_they_say() {
        let corpus = corpus(10, 10, &[], DEFAULT_WINDOW);
        let lines = |shape| {
            let bodies = bulk_bodies(&corpus, "p", 100, shape).unwrap();
            let text = String::from_utf8(bodies[0].to_vec()).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        };
        let plain = lines(BulkShape::default());
        let auto = lines(BulkShape {
            auto_ids: true,
            ..BulkShape::default()
        });
        assert_eq!(
            auto[0],
            r#"{"index":{"_index":"p-jaeger-span-2026-02-01"}}"#
        );
        assert_eq!(auto[1], plain[1], "same source");
        let hourly = lines(BulkShape {
            hourly: true,
            ..BulkShape::default()
        });
        let hour_index = action_index(&hourly[0]);
        assert!(
            hour_index.len() == "p-jaeger-span-2026-02-01-00".len()
                && hour_index.starts_with("p-jaeger-span-2026-02-01-"),
            "{hour_index}"
        );
        assert_eq!(hourly[1], plain[1], "same source");
        let fields = lines(BulkShape {
            tags_as_fields: true,
            ..BulkShape::default()
        });
        // The id hashes the source, so only its kind stays.
        assert!(fields[0].starts_with(r#"{"create":{"_id":"#));
        let source: serde_json::Value = serde_json::from_str(&fields[1]).unwrap();
        assert_eq!(source["tags"], serde_json::json!([]));
        assert!(source["tag"].as_object().is_some_and(|t| !t.is_empty()));

        let starts = |lines: &[String]| -> Vec<u64> {
            lines
                .iter()
                .skip(1)
                .step_by(2)
                .map(|source| {
                    let source: serde_json::Value = serde_json::from_str(source).unwrap();
                    source["startTime"].as_u64().unwrap()
                })
                .collect()
        };
        let ordered = lines(BulkShape {
            time_ordered: true,
            time_ids: true,
            ..BulkShape::default()
        });
        let ordered_starts = starts(&ordered);
        assert!(ordered_starts.is_sorted());
        assert!(
            !starts(&plain).is_sorted(),
            "the corpus's own order is not by time"
        );
        let mut same = starts(&plain);
        same.sort_unstable();
        assert_eq!(same, ordered_starts, "the same documents");
        let first: serde_json::Value = serde_json::from_str(&ordered[0]).unwrap();
        let id = first["create"]["_id"].as_str().unwrap();
        assert!(
            id.starts_with(&format!("{:013x}_", ordered_starts[0])),
            "{id}"
        );

        let run = 7;
        let disordered_starts = starts(&lines(BulkShape {
            time_ordered: true,
            disorder: run,
            ..BulkShape::default()
        }));
        assert!(!disordered_starts.is_sorted(), "shuffled within runs");
        for (shuffled, ordered) in disordered_starts
            .chunks(run)
            .zip(ordered_starts.chunks(run))
        {
            let mut shuffled = shuffled.to_vec();
            shuffled.sort_unstable();
            assert_eq!(shuffled, ordered, "each run holds its own documents");
        }
    }
}
