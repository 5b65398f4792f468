//! Index templates (composable and legacy, chosen by server) and
//! tags-as-fields, against the real engines.
#![allow(clippy::unwrap_used)]

use super::common;

use std::time::Duration;

use serde_json::{Value, json};
use spanway_e2e::corpus;
use spanway_e2e::{
    Engine, create_topic, delete_prefixed, produce, require_kafka, search, wait_for_count,
};
use spanway_ingester::Ingester;
use spanway_ingester::config::{RefreshInterval, TemplateApi};
use tokio_util::sync::CancellationToken;

use common::{Names, config};

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Removes the indices and templates under the test's prefix.
async fn clean(url: &str, names: &Names) {
    delete_prefixed(url, &names.prefix).await;
}

/// Stops `ingester`, which must stop cleanly, and removes what the test wrote.
async fn stop_and_clean(ingester: Ingester, shutdown: CancellationToken, url: &str, names: &Names) {
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    clean(url, names).await;
}

/// The test's topic, one partition, holding `corpus`.
async fn topic_holding(names: &Names, corpus: &corpus::Corpus) {
    create_topic(&names.topic, 1).await;
    produce(&names.topic, &corpus.as_produce_input()).await;
}

/// The mapping of `index` and, within it, its tag fields (`tag.*`).
async fn mapped_tag_fields(url: &str, index: &str) -> (Value, Value) {
    let (_, mapping) = get(&format!("{url}/{index}/_mapping")).await;
    let fields = mapping[index]["mappings"]["properties"]["tag"]["properties"].clone();
    (mapping, fields)
}

/// The documents of `index` (at most 200) whose nested tags hold the key `late.0`.
async fn nested_late_keys(url: &str, index: &str) -> Vec<Value> {
    let query = json!({"size": 200, "query": {"nested": {"path": "tags", "query": {"term": {"tags.key": "late.0"}}}}});
    search(url, index, query).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composable_templates_and_tags_as_fields_on_opensearch() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("composable");
    let corpus = corpus::generate(5, 20, 5);
    topic_holding(&names, &corpus).await;

    let mut cfg = config(&names, &url);
    cfg.elasticsearch.template_api = TemplateApi::Composable;
    cfg.elasticsearch.tags_as_fields.keys = vec!["attr.0".into()];
    cfg.elasticsearch.refresh_interval = RefreshInterval::Every(Duration::from_millis(1500));
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let total = corpus.spans.len() as u64;
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total
    );

    let (status, template) = get(&format!(
        "{url}/_index_template/{}-jaeger-span",
        names.prefix
    ))
    .await;
    assert_eq!(status, 200, "composable template installed: {template}");
    let (legacy_status, _) = get(&format!("{url}/_template/{}-jaeger-span", names.prefix)).await;
    assert_eq!(
        legacy_status, 404,
        "no legacy template when composable is asked for"
    );

    let index = format!("{}-jaeger-span-2026-02-01", names.prefix);
    let (_, mapping) = get(&format!("{url}/{index}/_mapping")).await;
    let properties = &mapping[&index]["mappings"]["properties"];
    assert_eq!(
        properties["tags"]["type"], "nested",
        "template mappings applied: {mapping}"
    );
    assert_eq!(properties["startTimeMillis"]["type"], "date");
    let (_, settings) = get(&format!("{url}/{index}/_settings")).await;
    assert_eq!(
        settings[&index]["settings"]["index"]["optimize_doc_id_lookup"]["fuzzy_set"]["enabled"],
        "true",
        "the id filter is on by default on OpenSearch 2.13+: {settings}"
    );
    assert_eq!(
        settings[&index]["settings"]["index"]["refresh_interval"], "1500ms",
        "the configured refresh interval: {settings}"
    );
    let service_index = format!("{}-jaeger-service-2026-02-01", names.prefix);
    let (_, settings) = get(&format!("{url}/{service_index}/_settings")).await;
    assert_eq!(
        settings[&service_index]["settings"]["index"]["refresh_interval"], "1500ms",
        "service indices refresh as often: {settings}"
    );
    assert_eq!(
        properties["tag"]["properties"]["attr@0"]["type"], "keyword",
        "dynamic template for tag.*"
    );

    let docs = search(&url, &index, json!({"size": 1})).await;
    let value = docs[0]["tag"]["attr@0"]
        .as_str()
        .expect("attr.0 stored as a field")
        .to_owned();
    assert!(
        docs[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["key"] != "attr.0"),
        "not nested as well"
    );
    let hits = search(
        &url,
        &index,
        json!({"size": 100, "query": {"term": {"tag.attr@0": value}}}),
    )
    .await;
    assert!(!hits.is_empty(), "searchable as a field");

    stop_and_clean(ingester, shutdown, &url, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_detection_keeps_legacy_templates_on_elasticsearch_7() {
    require_kafka();
    let url = Engine::Elasticsearch7.require().await;
    let names = Names::new("legacy");
    let corpus = corpus::generate(6, 5, 2);
    topic_holding(&names, &corpus).await;

    let cfg = config(&names, &url);
    assert_eq!(cfg.elasticsearch.template_api, TemplateApi::Auto);
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let total = corpus.spans.len() as u64;
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total
    );
    let template_name = format!("{}-jaeger-span", names.prefix);
    let (status, template) = get(&format!("{url}/_template/{template_name}")).await;
    assert_eq!(status, 200, "legacy template on Elasticsearch 7");
    let index_settings = &template[&template_name]["settings"]["index"];
    assert!(
        index_settings.is_object() && index_settings.get("optimize_doc_id_lookup").is_none(),
        "no OpenSearch-only id filter on Elasticsearch: {template}"
    );
    let (status, _) = get(&format!(
        "{url}/_index_template/{}-jaeger-span",
        names.prefix
    ))
    .await;
    assert_eq!(status, 404);

    stop_and_clean(ingester, shutdown, &url, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_mode_writes_through_the_write_alias_and_follows_a_rollover() {
    let url = Engine::OpenSearch.require().await;
    let names = aliases_and_rollover(&url, "aliases").await;
    clean(&url, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_8_gets_composable_templates_rollover_aliases_and_every_span() {
    let url = Engine::Elasticsearch8.require().await;
    let names = aliases_and_rollover(&url, "es8").await;
    for kind in ["span", "service"] {
        let template = format!("{}-jaeger-{kind}", names.prefix);
        let (status, body) = get(&format!("{url}/_index_template/{template}")).await;
        assert_eq!(
            status, 200,
            "composable template {template} on Elasticsearch 8"
        );
        let patterns = &body["index_templates"][0]["index_template"]["index_patterns"];
        assert!(
            patterns.to_string().contains(&format!("{template}-")),
            "{patterns}"
        );
        let (status, _) = get(&format!("{url}/_template/{template}")).await;
        assert_eq!(status, 404, "no legacy template for {template}");
    }
    let (_, mapping) = get(&format!(
        "{url}/{}-jaeger-span-000002/_mapping",
        names.prefix
    ))
    .await;
    let index = format!("{}-jaeger-span-000002", names.prefix);
    assert_eq!(
        mapping[&index]["mappings"]["properties"]["tags"]["type"], "nested",
        "the index made by the rollover has the template's mapping"
    );
    clean(&url, &names).await;
}

/// Alias mode on the engine at `url`: spans are written through the write
/// alias into `…-000001` and read through the read alias; then a bare
/// rollover of the write alias, from outside, sends the next spans into
/// `…-000002`, which the template has put under the read alias too.
/// The indices and templates are left for the caller to check and delete.
async fn aliases_and_rollover(url: &str, label: &str) -> Names {
    require_kafka();
    let names = Names::new(label);
    let corpus = corpus::generate(8, 10, 3);
    topic_holding(&names, &corpus).await;

    let mut cfg = config(&names, url);
    cfg.elasticsearch.use_aliases = true;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let total = corpus.spans.len() as u64;
    let first = format!("{}-jaeger-span-000001", names.prefix);
    assert_eq!(
        wait_for_count(url, &first, total, Duration::from_secs(120)).await,
        total
    );
    let read = format!("{}-jaeger-span-read", names.prefix);
    assert_eq!(
        spanway_e2e::count(url, &read).await,
        total,
        "readable through the read alias"
    );
    let write = format!("{}-jaeger-span-write", names.prefix);
    let (_, aliases) = get(&format!("{url}/{first}/_alias")).await;
    assert_eq!(aliases[&first]["aliases"][&write]["is_write_index"], true);
    let services = format!("{}-jaeger-service-read", names.prefix);
    assert_eq!(
        spanway_e2e::count(url, &services).await,
        corpus.pairs.len() as u64
    );

    // A bare rollover of the write alias, as an operator or a lifecycle
    // policy does it (Jaeger's rollover action also adds the new index to
    // the read alias itself): the template gives the new index the read
    // alias.
    let client = reqwest::Client::new();
    let rolled: Value = client
        .post(format!("{url}/{write}/_rollover"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = format!("{}-jaeger-span-000002", names.prefix);
    assert_eq!(rolled["rolled_over"], true, "{rolled}");
    assert_eq!(rolled["new_index"], second.as_str(), "{rolled}");
    let (_, aliases) = get(&format!("{url}/{second}/_alias")).await;
    assert_eq!(
        aliases[&second]["aliases"][&read],
        json!({}),
        "the new index is readable at once: {aliases}"
    );
    let more = corpus::generate(9, 6, 3);
    produce(&names.topic, &more.as_produce_input()).await;
    let added = more.spans.len() as u64;
    assert_eq!(
        wait_for_count(url, &second, added, Duration::from_secs(120)).await,
        added,
        "spans after the rollover go to the new write index"
    );
    assert_eq!(
        spanway_e2e::count(url, &first).await,
        total,
        "the old index keeps its spans"
    );
    assert_eq!(spanway_e2e::count(url, &read).await, total + added);

    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    names
}

/// `corpus`'s records with every `attr.N` attribute renamed `late.N`.
fn renamed_attributes(corpus: &corpus::Corpus) -> Vec<spanway_e2e::TestRecord> {
    use prost::Message as _;
    use spanway_schemas::proto::otlp;
    corpus
        .as_produce_input()
        .into_iter()
        .map(|(key, value, headers)| {
            let mut data = otlp::TracesData::decode(&value[..]).unwrap();
            for resource in &mut data.resource_spans {
                for scope in &mut resource.scope_spans {
                    for span in &mut scope.spans {
                        for kv in &mut span.attributes {
                            if let Some(n) = kv.key.strip_prefix("attr.") {
                                kv.key = format!("late.{n}");
                            }
                        }
                    }
                }
            }
            (key, data.encode_to_vec(), headers)
        })
        .collect()
}

/// Whether a stored span has `key` nested and not as a field.
fn nested_only(doc: &Value, key: &str) -> bool {
    let field = key.replace('.', "@");
    doc["tag"].get(&field).is_none()
        && doc["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|t| t["key"] == key))
}

/// Learned tag keys are fields, and span ids do not change for it (a replay
/// of every record adds nothing); an index that has run out of fields still
/// gets every span: those the engine refuses for its field limit are
/// written again with their learned fields nested, and learning stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_tag_fields_and_an_index_out_of_fields_on_opensearch() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("learned");
    let first = corpus::generate(31, 20, 5);
    topic_holding(&names, &first).await;

    // The first spans written without learning, as a version before it did.
    let mut cfg = config(&names, &url);
    cfg.elasticsearch.tags_as_fields.keys = vec![];
    cfg.elasticsearch.tags_as_fields.learn = 0;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg.clone(), shutdown.clone())
        .await
        .unwrap();
    let mut total = first.spans.len() as u64;
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total
    );
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    let index = format!("{}-jaeger-span-2026-02-01", names.prefix);
    let stored = search(&url, &index, json!({"size": 200})).await;
    assert!(stored.iter().all(|doc| nested_only(doc, "attr.3")));

    // Learning on: the same records again find the documents they were
    // stored as, and new spans have their tags as fields.
    produce(&names.topic, &first.as_produce_input()).await;
    let third = corpus::generate(33, 20, 5);
    produce(&names.topic, &third.as_produce_input()).await;
    cfg.elasticsearch.tags_as_fields.learn = 50;
    // Several requests, so that some come after learning has stopped.
    cfg.bulk.max_documents = 10;
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    total += third.spans.len() as u64;
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total,
        "the replayed spans added nothing"
    );
    let (mapping, tag_fields) = mapped_tag_fields(&url, &index).await;
    assert_eq!(
        tag_fields["attr@3"]["type"], "keyword",
        "a learned key is a field: {mapping}"
    );
    let stored = search(&url, &index, json!({"size": 300})).await;
    assert_eq!(stored.len() as u64, total);
    let new_traces: std::collections::HashSet<&str> =
        third.spans.values().map(|s| s.trace_id.as_str()).collect();
    for doc in &stored {
        let learned = new_traces.contains(doc["traceID"].as_str().unwrap());
        assert_eq!(
            doc["tag"].get("attr@3").is_some(),
            learned,
            "a field in every new span, from the first: {doc}"
        );
        assert_eq!(nested_only(doc, "attr.3"), !learned);
    }

    // The index out of fields: every further new field is refused.
    let client = reqwest::Client::new();
    let limited = client
        .put(format!("{url}/{index}/_settings"))
        .json(&json!({"index.mapping.total_fields.limit": 20}))
        .send()
        .await
        .unwrap();
    assert!(
        limited.status().is_success(),
        "{}",
        limited.text().await.unwrap()
    );
    let second = corpus::generate(32, 20, 5);
    produce(&names.topic, &renamed_attributes(&second)).await;
    total += second.spans.len() as u64;
    assert_eq!(
        wait_for_count(&url, &names.span_indices(), total, Duration::from_secs(120)).await,
        total,
        "every span with keys past the field limit is stored"
    );
    let (mapping, tag_fields) = mapped_tag_fields(&url, &index).await;
    assert!(
        tag_fields.get("late@0").is_none(),
        "no field was added past the limit: {mapping}"
    );
    let late = nested_late_keys(&url, &index).await;
    assert_eq!(late.len(), second.spans.len());
    assert!(late.iter().all(|doc| nested_only(doc, "late.5")));
    let everything = search(&url, &names.span_indices(), json!({"size": 1000})).await;
    assert_eq!(everything.len() as u64, total, "no copies");

    stop_and_clean(ingester, shutdown, &url, &names).await;
}

/// An ingester starting where others have written learns the keys the span
/// index already has as fields, rather than the first keys it sees: past
/// the limit, instances and restarts place a key alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_ingester_learns_the_keys_the_index_has_as_fields_on_opensearch() {
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let names = Names::new("adopted");
    let first = corpus::generate(41, 10, 5);
    topic_holding(&names, &first).await;
    let mut cfg = config(&names, &url);
    cfg.elasticsearch.tags_as_fields.keys = vec![];
    // Room for three keys: each span's first three attributes.
    cfg.elasticsearch.tags_as_fields.learn = 3;
    let run = |cfg, total| {
        let url = url.clone();
        let indices = names.span_indices();
        async move {
            let shutdown = CancellationToken::new();
            let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
            assert_eq!(
                wait_for_count(&url, &indices, total, Duration::from_secs(120)).await,
                total
            );
            shutdown.cancel();
            ingester.wait().await.expect("the ingester stops cleanly");
        }
    };
    let mut total = first.spans.len() as u64;
    run(cfg.clone(), total).await;
    let index = format!("{}-jaeger-span-2026-02-01", names.prefix);
    let (mapping, tag_fields) = mapped_tag_fields(&url, &index).await;
    for field in ["attr@0", "attr@1", "attr@2"] {
        assert_eq!(tag_fields[field]["type"], "keyword", "{field}: {mapping}");
    }
    assert!(tag_fields.get("attr@3").is_none(), "{mapping}");

    // A new process whose first spans carry other keys: it starts with the
    // index's three, so it has no room for these.
    let second = corpus::generate(42, 10, 5);
    produce(&names.topic, &renamed_attributes(&second)).await;
    total += second.spans.len() as u64;
    run(cfg, total).await;
    let (mapping, tag_fields) = mapped_tag_fields(&url, &index).await;
    assert!(
        tag_fields.get("late@0").is_none(),
        "a key the index did not have stayed nested: {mapping}"
    );
    let late = nested_late_keys(&url, &index).await;
    assert_eq!(late.len(), second.spans.len());
    assert!(late.iter().all(|doc| nested_only(doc, "late.0")));

    clean(&url, &names).await;
}

/// Runs an ingester configured by `configure` over `spans` on a topic of
/// its own until every span is searchable, stops it, and returns its names,
/// its span index pattern and that index's mapping.
async fn ingest_all(
    url: &str,
    name: &str,
    spans: &corpus::Corpus,
    configure: impl FnOnce(&mut spanway_ingester::config::IngesterConfig),
) -> (Names, String, Value) {
    let names = Names::new(name);
    topic_holding(&names, spans).await;
    let mut cfg = config(&names, url);
    configure(&mut cfg);
    let shutdown = CancellationToken::new();
    let ingester = Ingester::start(cfg, shutdown.clone()).await.unwrap();
    let index = names.span_indices();
    let total = spans.spans.len() as u64;
    assert_eq!(
        wait_for_count(url, &index, total, Duration::from_secs(120)).await,
        total
    );
    shutdown.cancel();
    ingester.wait().await.expect("the ingester stops cleanly");
    let _ = reqwest::Client::new()
        .post(format!("{url}/{index}/_refresh"))
        .send()
        .await;
    let (_, mapped) = get(&format!("{url}/{index}/_mapping")).await;
    (names, index, mapped)
}

/// `references = "stored"` (the default) against Jaeger's nested mapping:
/// the filters OpenSearch Dashboards' Trace Analytics puts on references
/// answer the same under both, every span reads back with the same
/// references, and only a nested query of one's own inside them needs
/// `nested`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_stored_or_nested_on_opensearch() {
    use spanway_ingester::config::ReferencesMapping;
    require_kafka();
    let url = Engine::OpenSearch.require().await;
    let spans = corpus::generate(51, 10, 5);
    let total = spans.spans.len() as u64;
    let client = reqwest::Client::new();
    let hits = |index: String, query: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client
                .post(format!("{url}/{index}/_search"))
                .json(&json!({"size": 1000, "query": query}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            let mut ids: Vec<String> = body["hits"]["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| h["_source"]["spanID"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            (status, ids)
        }
    };
    // The trace groups' filter (root spans: no references) and the service
    // map's (a term on references OR its negation), as Trace Analytics sends them.
    let roots =
        json!({"bool": {"filter": [{"bool": {"must_not": {"exists": {"field": "references"}}}}]}});
    let either = json!({"bool": {"should": [
        {"bool": {"filter": [{"bool": {"must_not": {"term": {"references": {"value": []}}}}}]}},
        {"bool": {"must": {"term": {"references": {"value": []}}}}}
    ]}});
    let parent = spans.spans.values().find_map(|s| s.parent.clone()).unwrap();
    let children =
        json!({"nested": {"path": "references", "query": {"term": {"references.spanID": parent}}}});
    let mut answers = Vec::new();
    for mapping in [ReferencesMapping::Stored, ReferencesMapping::Nested] {
        let (names, index, mapped) = ingest_all(&url, "references", &spans, |cfg| {
            cfg.elasticsearch.references = mapping;
        })
        .await;
        let references = mapped
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["mappings"]["properties"]["references"].clone())
            .next()
            .unwrap();
        let expected_type = match mapping {
            ReferencesMapping::Stored => "object",
            ReferencesMapping::Nested => "nested",
        };
        assert_eq!(references["type"], expected_type, "{mapped}");
        let stored: std::collections::BTreeMap<String, Value> =
            search(&url, &index, json!({"size": 1000}))
                .await
                .into_iter()
                .map(|doc| {
                    (
                        doc["spanID"].as_str().unwrap().to_owned(),
                        doc["references"].clone(),
                    )
                })
                .collect();
        assert_eq!(stored.len() as u64, total);
        let roots = hits(index.clone(), roots.clone()).await;
        let either = hits(index.clone(), either.clone()).await;
        let children = hits(index.clone(), children.clone()).await;
        answers.push((stored, roots, either, children));
        clean(&url, &names).await;
    }
    let (stored, nested) = (&answers[0], &answers[1]);
    assert_eq!(stored.0, nested.0, "the same references read back");
    assert_eq!(stored.1, nested.1, "Trace Analytics' root filter");
    assert_eq!(stored.2, nested.2, "Trace Analytics' service map filter");
    assert_eq!(stored.1.0, 200);
    assert_eq!(stored.2.1.len() as u64, total);
    // A nested query inside references: refused without the nested mapping,
    // the parent's children with it.
    assert_eq!(stored.3.0, 400, "{:?}", stored.3);
    let expected: Vec<String> = {
        let mut ids: Vec<String> = spans
            .spans
            .iter()
            .filter(|(_, s)| s.parent.as_deref() == Some(parent.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(nested.3, (200, expected));
}

// `span_fields = "searched"` (the default) against Jaeger's mapping on each
// engine. Elasticsearch 7 cannot search a field without its inverted index,
// so `spanID` and tag fields stay indexed there.
spanway_e2e::per_engine!(span_fields_searched_or_jaegers:
    span_fields_searched_or_jaegers_on_opensearch => OpenSearch,
    span_fields_searched_or_jaegers_on_elasticsearch_8 => Elasticsearch8,
    span_fields_searched_or_jaegers_on_elasticsearch_7 => Elasticsearch7,
);

/// What Jaeger query and OpenSearch Dashboards' Trace Analytics search,
/// sort and aggregate on answers the same under both mappings (a service's
/// traces by their newest span, the same with a tag, a span looked up by
/// `spanID`, a trace's spans newest first); only a query nobody ships, on
/// `flags`, needs `jaeger`.
async fn span_fields_searched_or_jaegers(engine: Engine) {
    use spanway_ingester::config::SpanFieldsMapping;
    require_kafka();
    let doc_values_search = engine != Engine::Elasticsearch7;
    let url = engine.require().await;
    let spans = corpus::generate(52, 10, 5);
    let client = reqwest::Client::new();
    let post = |index: String, body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client
                .post(format!("{url}/{index}/_search"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let span_ids = |answer: &Value| -> Vec<String> {
        answer["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| h["_source"]["spanID"].as_str().unwrap().to_owned())
            .collect()
    };
    let bucket_keys = |answer: &Value| -> Vec<String> {
        answer["aggregations"]["traceIDs"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let (looked_up, span) = spans.spans.iter().min_by_key(|(id, _)| *id).unwrap();
    // Jaeger query's trace search: a service's trace ids, newest first by
    // their newest span; with a tag, as a regular expression on the field
    // or in the nested list.
    let trace_search = |tag: Option<(&str, &str)>| {
        let mut must = vec![
            json!({"range": {"startTimeMillis": {"gte": 0}}}),
            json!({"match": {"process.serviceName": {"query": span.service}}}),
        ];
        if let Some((key, value)) = tag {
            must.push(json!({"bool": {"should": [
                {"regexp": {format!("tag.{}", key.replace('.', "@")): value}},
                {"nested": {"path": "tags", "query": {"bool": {"must": [
                    {"match": {"tags.key": {"query": key}}},
                    {"regexp": {"tags.value": value}}
                ]}}}}
            ]}}));
        }
        json!({"size": 0, "query": {"bool": {"must": must}},
        "aggs": {"traceIDs": {
            "terms": {"field": "traceID", "size": 1000, "order": [{"startTime": "desc"}]},
            "aggs": {"startTime": {"max": {"field": "startTime"}}}
        }}})
    };
    // Trace Analytics' span flyout and span list.
    let flyout =
        json!({"size": 1000, "query": {"bool": {"must": [{"term": {"spanID": looked_up}}]}}});
    let trace_spans = json!({"size": 1000,
        "query": {"bool": {"must": [
            {"term": {"traceID": span.trace_id}}, {"exists": {"field": "process.serviceName"}}
        ]}},
        "sort": [{"startTime": {"order": "desc"}}, {"spanID": "asc"}]});
    let by_flags = json!({"size": 1000, "query": {"term": {"flags": 1}}});
    let mut answers = Vec::new();
    for mapping in [SpanFieldsMapping::Searched, SpanFieldsMapping::Jaeger] {
        let (names, index, mapped) = ingest_all(&url, "span-fields", &spans, |cfg| {
            cfg.elasticsearch.span_fields = mapping;
        })
        .await;
        let fields = mapped
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["mappings"]["properties"].clone())
            .next()
            .unwrap();
        let searched = mapping == SpanFieldsMapping::Searched;
        let unindexed = |field: &Value| field.get("index") == Some(&Value::Bool(false));
        assert_eq!(unindexed(&fields["flags"]), searched, "{mapped}");
        assert_eq!(
            unindexed(&fields["spanID"]),
            searched && doc_values_search,
            "{mapped}"
        );
        assert_eq!(
            unindexed(&fields["tag"]["properties"]["attr@0"]),
            searched && doc_values_search,
            "{mapped}"
        );
        let documents = search(&url, &index, json!({"size": 1000})).await;
        let flagged = documents.iter().filter(|doc| doc["flags"] == 1).count();
        // A tag value of the looked-up span, and the traces of its service
        // that have a span of that service carrying it.
        let looked_up_doc = documents
            .iter()
            .find(|doc| doc["spanID"] == looked_up.as_str())
            .unwrap();
        let value = looked_up_doc["tag"]["attr@0"].as_str().unwrap().to_owned();
        let mut tagged: Vec<String> = documents
            .iter()
            .filter(|doc| {
                doc["process"]["serviceName"] == span.service.as_str()
                    && doc["tag"]["attr@0"] == value.as_str()
            })
            .map(|doc| doc["traceID"].as_str().unwrap().to_owned())
            .collect();
        tagged.sort();
        tagged.dedup();
        let (status, traces) = post(index.clone(), trace_search(None)).await;
        assert_eq!(status, 200, "{traces}");
        let (status, with_tag) = post(
            index.clone(),
            trace_search(Some(("attr.0", &regex_literal(&value)))),
        )
        .await;
        assert_eq!(status, 200, "{with_tag}");
        let mut found_tagged = bucket_keys(&with_tag);
        found_tagged.sort();
        assert_eq!(found_tagged, tagged, "traces with attr.0 = {value}");
        let (status, found) = post(index.clone(), flyout.clone()).await;
        assert_eq!((status, span_ids(&found)), (200, vec![looked_up.clone()]));
        let (status, listed) = post(index.clone(), trace_spans.clone()).await;
        assert_eq!(status, 200, "{listed}");
        let (flags_status, by_flags) = post(index.clone(), by_flags.clone()).await;
        answers.push((
            bucket_keys(&traces),
            bucket_keys(&with_tag),
            span_ids(&listed),
            (flags_status, span_ids(&by_flags).len(), flagged),
        ));
        clean(&url, &names).await;
    }
    let (searched, jaeger) = (&answers[0], &answers[1]);
    let mut expected_traces: Vec<&String> = spans
        .spans
        .values()
        .filter(|s| s.service == span.service)
        .map(|s| &s.trace_id)
        .collect();
    expected_traces.sort();
    expected_traces.dedup();
    let mut found_traces: Vec<&String> = searched.0.iter().collect();
    found_traces.sort();
    assert_eq!(found_traces, expected_traces, "every trace of the service");
    assert_eq!(searched.0, jaeger.0, "the same traces in the same order");
    assert_eq!(searched.1, jaeger.1, "the same traces with the tag");
    let in_trace = spans
        .spans
        .values()
        .filter(|s| s.trace_id == span.trace_id)
        .count();
    assert_eq!(searched.2.len(), in_trace);
    assert_eq!(searched.2, jaeger.2, "a trace's spans in the same order");
    // A query nobody ships: refused without Jaeger's mapping, answered with it.
    assert_eq!(searched.3.0, 400, "{:?}", searched.3);
    assert_eq!(jaeger.3.0, 200);
    assert_eq!(
        jaeger.3.1, jaeger.3.2,
        "every span flagged 1 found by its flags"
    );
}

/// `text` as a regular expression that matches only itself.
fn regex_literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = !c.is_ascii_alphanumeric();
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
