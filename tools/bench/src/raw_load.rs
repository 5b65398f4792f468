//! The raw loader: the ingester's span documents (or a variant of them)
//! sent straight to `_bulk` by this process, to see what the engine can
//! take of them when nothing else is in the way, and where its time goes.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt as _;
use spanway_e2e::corpus::Corpus;
use spanway_search::index::{Family, Prefix};
use spanway_search::templates;

use crate::measure::Meter;
use crate::runs::{Destination, Options, RunResult, engine_count};

/// What a raw load changes in the ingester's documents or mapping. Each
/// answers one question about where the engine's time goes; none of them is
/// what the ingester does unless it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RawVariant {
    /// Byte for byte what the ingester sends with `tags_as_fields.learn =
    /// 0`: `create` with our ids, tags outside the fixed list in nested
    /// lists (and the same template, id filter included where the engine
    /// has it). With its default, learning, the ingester sends what
    /// `tags-as-fields` does for these spans, whose keys are all learned.
    AsIngester,
    /// `create` with a 22-character id (the span id and the document hash,
    /// 16 bytes, base64url) instead of our 66 characters (trace id, span id
    /// and hash in hex): what a shorter id would save the engine.
    ShortIds,
    /// `index` without ids: the engine makes the ids, and skips the lookup
    /// of each id that `create` costs. What Jaeger's writers send; a
    /// redelivered span is then stored twice.
    AutoIds,
    /// Every non-binary tag as an object field (`tag.*`) instead of in the
    /// nested `tags` lists (the ingester's `tags_as_fields.all`).
    TagsAsFields,
    /// [`RawVariant::TagsAsFields`], and `references` kept in `_source` but
    /// not indexed: no nested document per reference (Jaeger query reads
    /// references, never searches them).
    TagsAsFieldsRefsUnindexed,
    /// [`RawVariant::TagsAsFieldsRefsUnindexed`] with the span fields mapped
    /// as the ingester's default `span_fields = "searched"` does on this
    /// engine: what the ingester sends and installs with its defaults for
    /// these spans, whose tag keys are all learned.
    Defaults,
    /// [`RawVariant::TagsAsFields`] with the ids of [`RawVariant::ShortIds`].
    TagsAsFieldsShortIds,
    /// [`RawVariant::Defaults`] as `index` actions without ids: what the
    /// id lookup of each `create` costs the engine on these documents.
    DefaultsAutoIds,
    /// [`RawVariant::Defaults`] with each id led by the span's start time
    /// (13 hex digits of microseconds, then `_` and our id): whether ids
    /// that rise with time, as live traffic's do, make each `create`'s
    /// lookup cheaper as the index grows. Meant with `--raw-time-order`.
    DefaultsTimeIds,
    /// [`RawVariant::Defaults`] with ids of 36 characters led by the span's
    /// start time: 13 hex digits of microseconds, `_`, then the span id and
    /// hash of [`RawVariant::ShortIds`], and the id filter left off. Whether
    /// ids that rise with time and are short close the distance to
    /// [`RawVariant::DefaultsAutoIds`]. Meant with `--raw-time-order`.
    DefaultsTimeShortIds,
    /// [`RawVariant::Defaults`] into hourly span indices: whether an
    /// hour's index makes each `create`'s lookup cheaper than a day's.
    DefaultsHourly,
}

impl RawVariant {
    /// Whether the variant installs the ingester's default mapping (the
    /// `defaults` family), whatever ids it sends.
    fn is_defaults(self) -> bool {
        matches!(
            self,
            RawVariant::Defaults
                | RawVariant::DefaultsAutoIds
                | RawVariant::DefaultsTimeIds
                | RawVariant::DefaultsTimeShortIds
                | RawVariant::DefaultsHourly
        )
    }

    fn label(self) -> &'static str {
        match self {
            RawVariant::AsIngester => "raw bulk",
            RawVariant::AutoIds => "raw bulk, auto ids",
            RawVariant::ShortIds => "raw bulk, short ids",
            RawVariant::TagsAsFields => "raw bulk, tags as fields",
            RawVariant::TagsAsFieldsRefsUnindexed => {
                "raw bulk, tags as fields, references unindexed"
            }
            RawVariant::TagsAsFieldsShortIds => "raw bulk, tags as fields, short ids",
            RawVariant::Defaults => "raw bulk, the ingester's defaults",
            RawVariant::DefaultsAutoIds => "raw bulk, the ingester's defaults, auto ids",
            RawVariant::DefaultsTimeIds => "raw bulk, the ingester's defaults, time-led ids",
            RawVariant::DefaultsTimeShortIds => {
                "raw bulk, the ingester's defaults, short time-led ids, no id filter"
            }
            RawVariant::DefaultsHourly => "raw bulk, the ingester's defaults, hourly indices",
        }
    }
}

/// The raw loader: the corpus's span documents sent straight to `_bulk`,
/// `raw_batch` per request, `raw_concurrency` requests in flight, into
/// indices made from our templates. What OpenSearch can take of these
/// documents on this machine when nothing else is in the way.
pub(crate) async fn raw_loader_run(
    options: &Options,
    corpus: &Corpus,
    expected: u64,
    variant: RawVariant,
) -> anyhow::Result<RunResult> {
    let name = format!("{} → OpenSearch", variant.label());
    tokio::time::sleep(options.settle).await;
    eprintln!("run: {name}");
    let prefix = spanway_e2e::unique_name("bench");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    install_templates(
        &client,
        &options.opensearch,
        &prefix,
        variant,
        options.raw_template_patch.as_ref(),
        options.shards,
    )
    .await?;
    let shape = crate::workload::BulkShape {
        auto_ids: matches!(variant, RawVariant::AutoIds | RawVariant::DefaultsAutoIds),
        time_ids: matches!(
            variant,
            RawVariant::DefaultsTimeIds | RawVariant::DefaultsTimeShortIds
        ),
        time_ordered: options.raw_time_order,
        disorder: options.raw_disorder,
        hourly: variant == RawVariant::DefaultsHourly,
        short_ids: matches!(
            variant,
            RawVariant::ShortIds
                | RawVariant::TagsAsFieldsShortIds
                | RawVariant::DefaultsTimeShortIds
        ),
        tags_as_fields: variant.is_defaults()
            || matches!(
                variant,
                RawVariant::TagsAsFields
                    | RawVariant::TagsAsFieldsRefsUnindexed
                    | RawVariant::TagsAsFieldsShortIds
            ),
    };
    let bodies = crate::workload::bulk_bodies(corpus, &prefix, options.raw_batch, shape)?;
    let url = format!("{}/_bulk", options.opensearch);

    let meter = Meter::start(&options.services_dir)?;
    let started = Instant::now();
    let outcome = load(&client, &url, bodies, options.raw_concurrency).await;
    let end = Instant::now();
    let costs = meter.finish(None);
    let engine_cpu_settled = meter.engine_settled().await;
    let count = engine_count(
        &client,
        &options.opensearch,
        &Prefix::new(&prefix).pattern(Family::Span),
    )
    .await;
    let work = crate::runs::index_work::read(&options.opensearch, &prefix).await;
    if !options.keep {
        spanway_e2e::delete_prefixed(&options.opensearch, &prefix).await;
    }
    let failed = outcome?;

    let order = match (options.raw_time_order, options.raw_disorder) {
        (true, 0 | 1) => "in start-time order".to_owned(),
        (true, n) => format!("in start-time order, each run of {n} shuffled"),
        (false, _) => "in the corpus's order".to_owned(),
    };
    let mut notes = vec![format!(
        "{} documents per request, {} in flight, {order}; count after the run: {count}",
        options.raw_batch, options.raw_concurrency
    )];
    if let Some(work) = &work {
        notes.push(work.describe());
    }
    if failed.0 > 0 {
        notes.push(format!(
            "INCOMPLETE: {} items refused, first: {}",
            failed.0, failed.1
        ));
    }
    Ok(RunResult {
        name,
        destination: Destination::OpenSearch,
        expected,
        spans: expected - failed.0,
        wall: end.duration_since(started),
        steady: None,
        // The loader is this process: its CPU is the measured CPU. Its peak
        // memory is the corpus held for all runs, not the loader's.
        cpu: Some(costs.own),
        peak_rss_kib: None,
        engine_cpu: costs.engine,
        engine_cpu_settled,
        kafka_cpu: costs.kafka,
        bench_cpu: None,
        others_cpu: costs.others,
        load_before: meter.load,
        load_after: costs.load,
        notes,
    })
}

/// Sends every body; returns the number of items refused and the first reason.
async fn load(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<Bytes>,
    concurrency: usize,
) -> anyhow::Result<(u64, String)> {
    let mut responses = futures::stream::iter(bodies)
        .map(|body| async move {
            let response = client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?
                .error_for_status()?;
            response.bytes().await
        })
        .buffer_unordered(concurrency.max(1));
    let mut failed = 0;
    let mut first = String::new();
    while let Some(response) = responses.next().await {
        let body = response.context("bulk request")?;
        // Cheap check first: a clean response starts `{"took":…,"errors":false`.
        if !body.windows(15).take(64).any(|w| w == b"\"errors\":false") {
            let value: serde_json::Value = serde_json::from_slice(&body)?;
            for item in value["items"].as_array().into_iter().flatten() {
                // `create` or `index`, whichever the action was.
                let result = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .unwrap_or(&serde_json::Value::Null);
                if result["status"].as_u64().is_none_or(|s| s >= 300) {
                    failed += 1;
                    if first.is_empty() {
                        first = result["error"].to_string();
                    }
                }
            }
        }
    }
    Ok((failed, first))
}

/// Our templates for `prefix` (legacy API, as our ingester picks for
/// OpenSearch), `shards` primary shards, no replica.
async fn install_templates(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    variant: RawVariant,
    patch: Option<&serde_json::Value>,
    shards: u32,
) -> anyhow::Result<()> {
    let prefix = Prefix::new(prefix);
    let mut span = templates::span_template(&prefix, shards, 0);
    let defaults = variant.is_defaults();
    if defaults || variant == RawVariant::TagsAsFieldsRefsUnindexed {
        templates::store_references_only(&mut span);
    }
    // As the ingester decides it with `id_lookup_filter = "auto"`; a patch
    // setting the key to null measures the engine without it.
    let info: serde_json::Value = client
        .get(url)
        .send()
        .await?
        .error_for_status()
        .context("asking the engine its version")?
        .json()
        .await?;
    if variant != RawVariant::DefaultsTimeShortIds
        && templates::IdLookupFilter::Auto.wanted(Some(&info))
    {
        span["settings"][templates::ID_LOOKUP_FILTER_SETTING] = serde_json::Value::Bool(true);
    }
    if defaults {
        templates::index_searched_fields_only(
            &mut span,
            templates::doc_values_search_supported(&info),
        );
    }
    if let Some(patch) = patch {
        merge_patch(&mut span, patch);
    }
    for (name, body) in [
        (prefix.base(Family::Span), span),
        (
            prefix.base(Family::Service),
            templates::service_template(&prefix, shards, 0),
        ),
    ] {
        client
            .put(format!("{url}/_template/{name}"))
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("installing template {name}"))?;
    }
    Ok(())
}

/// RFC 7396: objects merge key by key, `null` removes a key, anything else
/// replaces.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let Some(changes) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    if let Some(fields) = target.as_object_mut() {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(
                    fields.entry(key.clone()).or_insert(serde_json::Value::Null),
                    change,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1]});
        super::merge_patch(
            &mut doc,
            &serde_json::json!({"a": {"b": null, "e": {"f": 3}}, "d": 4}),
        );
        assert_eq!(
            doc,
            serde_json::json!({"a": {"c": 2, "e": {"f": 3}}, "d": 4})
        );
    }
}
