use super::*;

#[test]
fn defaults_are_valid() {
    IngesterConfig::default().validate().unwrap();
}

#[test]
fn rules_name_the_key() {
    let mut cfg = IngesterConfig::default();
    cfg.kafka.start_offset = "beginning".into();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("kafka.start_offset")
    );
    let mut cfg = IngesterConfig::default();
    cfg.elasticsearch.client.url = Some("127.0.0.1:9200".into());
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("elasticsearch.url")
    );
}

#[test]
fn stall_timeout_must_exceed_the_longest_wait() {
    let mut cfg = IngesterConfig::default();
    cfg.ops.stall_timeout = Duration::ZERO;
    fails_on(&cfg, "ops.stall_timeout");
    cfg.ops.stall_timeout = Duration::from_secs(40);
    let error = cfg.validate().unwrap_err().to_string();
    assert!(
        error.contains("ops.stall_timeout") && error.contains("bulk.request_timeout"),
        "{error}"
    );
    cfg.ops.stall_timeout = Duration::from_secs(41);
    cfg.validate().unwrap();
    cfg.kafka.drain_timeout = Duration::from_secs(41);
    cfg.kafka.session_timeout = Duration::from_secs(60);
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains("kafka.drain_timeout"), "{error}");

    let env = [("SPANWAY_OPS__STALL_TIMEOUT", "5m")].map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env).unwrap();
    assert_eq!(cfg.ops.stall_timeout, Duration::from_secs(300));
}

#[test]
fn max_records_is_read_as_max_documents() {
    let path = std::env::temp_dir().join(format!(
        "spanway-ingester-alias-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, "[bulk]\nmax_records = 42\n").unwrap();
    let loaded = spanway_service_kit::config::load_with_env::<IngesterConfig>(Some(&path), []);
    let _ = std::fs::remove_file(&path);
    let cfg = loaded.unwrap();
    assert_eq!(cfg.bulk.max_documents, 42);
    let mut cfg = IngesterConfig::default();
    cfg.bulk.max_documents = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("bulk.max_documents")
    );
}

#[test]
fn connection_and_index_keys_share_the_elasticsearch_section() {
    let path = std::env::temp_dir().join(format!(
        "spanway-ingester-section-{}.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "[elasticsearch]\nindex_prefix = \"prod\"\nusername = \"writer\"\ncompression = \"gzip\"\n[elasticsearch.tls]\ninsecure_skip_verify = false\n",
    )
    .unwrap();
    let env = [
        ("SPANWAY_ELASTICSEARCH__URL", "https://es:9200"),
        ("SPANWAY_ELASTICSEARCH__PASSWORD", "0123"),
        ("SPANWAY_ELASTICSEARCH__SHARDS", "3"),
        ("SPANWAY_ELASTICSEARCH__ID_LOOKUP_FILTER", "off"),
        ("SPANWAY_ELASTICSEARCH__SPAN_IDS", "engine"),
        ("SPANWAY_ELASTICSEARCH__REFRESH_INTERVAL", "2s"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let loaded = spanway_service_kit::config::load_with_env::<IngesterConfig>(Some(&path), env);
    let _ = std::fs::remove_file(&path);
    let cfg = loaded.unwrap();
    cfg.validate().unwrap();
    let client = &cfg.elasticsearch.client;
    assert_eq!(client.url.as_deref(), Some("https://es:9200"));
    assert_eq!(client.username.as_deref(), Some("writer"));
    assert_eq!(client.password.as_ref().unwrap().expose(), "0123");
    assert_eq!(
        client.compression,
        spanway_search::config::Compression::Gzip
    );
    assert_eq!(cfg.elasticsearch.index_prefix, "prod");
    assert_eq!(cfg.elasticsearch.shards, 3);
    assert_eq!(cfg.elasticsearch.id_lookup_filter, IdLookupFilter::Off);
    assert_eq!(cfg.elasticsearch.span_ids, SpanIds::Engine);
    assert_eq!(
        cfg.elasticsearch.refresh_interval,
        RefreshInterval::Every(std::time::Duration::from_secs(2))
    );
    let mut too_often = cfg.clone();
    too_often.elasticsearch.refresh_interval =
        RefreshInterval::Every(std::time::Duration::from_millis(10));
    let error = too_often.validate().unwrap_err().to_string();
    assert!(error.contains("elasticsearch.refresh_interval"), "{error}");
    let printed = format!("{cfg:?}");
    assert!(!printed.contains("0123"), "{printed}");

    let env = [(
        "SPANWAY_ELASTICSEARCH__URLS",
        "https://es-1:9200,https://es-2:9200",
    )]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env).unwrap();
    assert_eq!(
        cfg.elasticsearch.client.urls,
        ["https://es-1:9200", "https://es-2:9200"]
    );
    cfg.validate().unwrap();

    let env =
        [("SPANWAY_ELASTICSEARCH__PASWORD", "x")].map(|(k, v)| (k.to_string(), v.to_string()));
    let error = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env)
        .unwrap_err()
        .to_string();
    assert!(error.contains("pasword"), "{error}");
}

fn with_retention() -> IngesterConfig {
    let mut cfg = IngesterConfig::default();
    cfg.elasticsearch.retention.enabled = true;
    cfg
}

fn fails_on(cfg: &IngesterConfig, key: &str) {
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains(key), "{error}");
}

#[test]
fn retention_rules_name_the_key() {
    with_retention().validate().unwrap();

    let mut cfg = with_retention();
    cfg.elasticsearch.create_templates = false;
    fails_on(&cfg, "elasticsearch.retention.enabled");

    let mut cfg = with_retention();
    cfg.elasticsearch.retention.delete_after = Duration::from_secs(3_600);
    fails_on(&cfg, "elasticsearch.retention.delete_after");
    cfg.elasticsearch.use_aliases = true;
    cfg.validate().unwrap();

    cfg.elasticsearch.retention.delete_after = Duration::from_millis(1_500);
    fails_on(&cfg, "elasticsearch.retention.delete_after");

    let mut cfg = with_retention();
    cfg.elasticsearch.use_aliases = true;
    cfg.elasticsearch.retention.rollover_max_age = Duration::ZERO;
    fails_on(&cfg, "elasticsearch.retention.rollover_max_age");

    for bad in ["50", "gb", "50GB", "5.5gb", "50 gb", ""] {
        let mut cfg = with_retention();
        cfg.elasticsearch.use_aliases = true;
        cfg.elasticsearch.retention.rollover_max_size = bad.into();
        fails_on(&cfg, "elasticsearch.retention.rollover_max_size");
    }
    assert!(is_byte_size("500mb") && is_byte_size("1b") && is_byte_size("50gb"));
}

#[test]
fn retention_settings_are_ignored_while_disabled() {
    let mut cfg = IngesterConfig::default();
    cfg.elasticsearch.retention.delete_after = Duration::ZERO;
    cfg.elasticsearch.create_templates = false;
    cfg.validate().unwrap();
}

#[test]
fn fetch_sizes_outside_librdkafkas_ranges_name_the_key() {
    let mut cfg = IngesterConfig::default();
    cfg.kafka.fetch_partition_kbytes = 0;
    fails_on(&cfg, "kafka.fetch_partition_kbytes");
    cfg.kafka.fetch_partition_kbytes = 976_563;
    fails_on(&cfg, "kafka.fetch_partition_kbytes");
    cfg.kafka.fetch_partition_kbytes = 976_562;
    cfg.validate().unwrap();
    cfg.kafka.fetch_queue_kbytes = 0;
    fails_on(&cfg, "kafka.fetch_queue_kbytes");

    let env = [("SPANWAY_KAFKA__FETCH_PARTITION_KBYTES", "64")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env).unwrap();
    assert_eq!(cfg.kafka.fetch_partition_kbytes, 64);
}

#[test]
fn span_ids_are_read_by_their_documented_names() {
    for (text, expected) in [
        ("derived", SpanIds::Derived),
        ("time-led", SpanIds::TimeLed),
        ("engine", SpanIds::Engine),
    ] {
        let parsed: SpanIds = serde_json::from_value(serde_json::json!(text)).unwrap();
        assert_eq!(parsed, expected, "{text}");
    }
    assert!(serde_json::from_value::<SpanIds>(serde_json::json!("timeled")).is_err());
}

#[test]
fn the_id_filter_is_off_by_default_unless_derived_ids_are_looked_up() {
    let mut cfg = IngesterConfig::default();
    assert_eq!(cfg.elasticsearch.span_ids, SpanIds::Derived);
    assert_eq!(
        cfg.elasticsearch.effective_id_lookup_filter(),
        IdLookupFilter::Auto
    );
    cfg.elasticsearch.span_ids = SpanIds::Engine;
    assert_eq!(
        cfg.elasticsearch.effective_id_lookup_filter(),
        IdLookupFilter::Off
    );
    cfg.elasticsearch.span_ids = SpanIds::TimeLed;
    assert_eq!(
        cfg.elasticsearch.effective_id_lookup_filter(),
        IdLookupFilter::Off,
        "time-led ids are looked up without it"
    );
    cfg.elasticsearch.id_lookup_filter = IdLookupFilter::On;
    assert_eq!(
        cfg.elasticsearch.effective_id_lookup_filter(),
        IdLookupFilter::On,
        "an explicit setting stands"
    );
}

#[test]
fn hourly_span_indices_are_read_from_env_and_refused_with_aliases() {
    let env = [(
        "SPANWAY_ELASTICSEARCH__INDEX_ROLLOVER_FREQUENCY_SPANS",
        "hour",
    )]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let mut cfg = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env).unwrap();
    assert_eq!(
        cfg.elasticsearch.index_rollover_frequency_spans,
        SpanIndexPeriod::Hour
    );
    cfg.validate().unwrap();
    cfg.elasticsearch.use_aliases = true;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(
        error.contains("elasticsearch.index_rollover_frequency_spans")
            && error.contains("use_aliases"),
        "{error}"
    );

    let env = [(
        "SPANWAY_ELASTICSEARCH__INDEX_ROLLOVER_FREQUENCY_SPANS",
        "minute",
    )]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let error = spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env)
        .unwrap_err()
        .to_string();
    assert!(error.contains("minute"), "{error}");
}

#[test]
fn index_date_separator_is_read_from_env_checked_and_refused_with_aliases() {
    let load = |value: &str| {
        let env = [("SPANWAY_ELASTICSEARCH__INDEX_DATE_SEPARATOR", value)]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        spanway_service_kit::config::load_with_env::<IngesterConfig>(None, env)
    };
    assert_eq!(
        IngesterConfig::default()
            .elasticsearch
            .index_date_separator
            .as_str(),
        "-",
        "Jaeger's default"
    );
    let mut cfg = load(".").unwrap();
    assert_eq!(cfg.elasticsearch.index_date_separator.as_str(), ".");
    cfg.validate().unwrap();
    cfg.elasticsearch.use_aliases = true;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(
        error.contains("elasticsearch.index_date_separator") && error.contains("use_aliases"),
        "{error}"
    );

    let error = load("/").unwrap_err().to_string();
    // The loader names the section; the message names the setting.
    assert!(
        error.contains("elasticsearch")
            && error.contains("index date separator")
            && error.contains("'/'"),
        "the setting and the character: {error}"
    );
}
