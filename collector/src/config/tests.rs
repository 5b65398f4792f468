use super::*;

#[test]
fn defaults_are_valid() {
    CollectorConfig::default().validate().unwrap();
}

#[test]
fn rules_name_the_key() {
    let mut cfg = CollectorConfig::default();
    cfg.kafka.compression = "brotli".into();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .starts_with("configuration key kafka.compression")
    );
    let mut cfg = CollectorConfig::default();
    cfg.kafka.max_record_bytes = 2_000_000;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("kafka.max_record_bytes")
    );
    let mut cfg = CollectorConfig::default();
    cfg.otlp_grpc.max_message_bytes = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("otlp_grpc.max_message_bytes")
    );
    let mut cfg = CollectorConfig::default();
    cfg.jaeger_grpc.max_message_bytes = cfg.kafka.max_bytes_in_flight + 1;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("jaeger_grpc.max_message_bytes")
    );
    let mut cfg = CollectorConfig::default();
    cfg.otlp_http.max_request_bytes = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("otlp_http.max_request_bytes")
    );
    cfg.otlp_http.max_request_bytes = cfg.kafka.max_bytes_in_flight + 1;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(
        error.contains("kafka.max_bytes_in_flight")
            && error.contains("otlp_http.max_request_bytes"),
        "{error}"
    );
    cfg.otlp_http.enabled = false;
    assert!(
        cfg.validate().is_ok(),
        "a switched-off receiver's limit is not checked"
    );
    let mut cfg = CollectorConfig::default();
    cfg.sampling.reload_interval = Duration::ZERO;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("sampling.reload_interval")
    );
    let mut cfg = CollectorConfig::default();
    cfg.zipkin.enabled = true;
    cfg.zipkin.max_request_bytes = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("zipkin.max_request_bytes")
    );
    let mut cfg = CollectorConfig::default();
    cfg.jaeger_thrift_http.enabled = true;
    cfg.jaeger_thrift_http.max_request_bytes = cfg.kafka.max_bytes_in_flight + 1;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("jaeger_thrift_http.max_request_bytes")
    );
    let mut cfg = CollectorConfig::default();
    cfg.kafka.client.brokers.clear();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("kafka.brokers")
    );
}

#[test]
fn compression_levels_are_checked_per_codec() {
    let with = |codec: &str, level: i32| {
        let mut cfg = CollectorConfig::default();
        cfg.kafka.compression = codec.into();
        cfg.kafka.compression_level = level;
        cfg.validate()
    };
    for (codec, level) in [
        ("zstd", -1),
        ("zstd", 1),
        ("zstd", 12),
        ("gzip", 9),
        ("lz4", 0),
        ("none", -1),
    ] {
        assert!(with(codec, level).is_ok(), "{codec} {level}");
    }
    for (codec, level) in [
        ("zstd", 0),
        ("zstd", 13),
        ("gzip", 10),
        ("snappy", 1),
        ("none", 3),
    ] {
        let error = with(codec, level).unwrap_err().to_string();
        assert!(
            error.contains("kafka.compression_level"),
            "{codec} {level}: {error}"
        );
    }
}

#[test]
fn read_timeouts_and_connection_ages_are_read_and_checked() {
    let env = [
        ("SPANWAY_OTLP_GRPC__READ_TIMEOUT", "5s"),
        ("SPANWAY_ZIPKIN__READ_TIMEOUT", "2m"),
        ("SPANWAY_OTLP_GRPC__MAX_CONNECTION_AGE", "1m"),
        ("SPANWAY_JAEGER_GRPC__MAX_CONNECTION_IDLE", "90s"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg: CollectorConfig = spanway_service_kit::config::load_with_env(None, env).unwrap();
    assert_eq!(cfg.otlp_grpc.read_timeout, Duration::from_secs(5));
    assert_eq!(cfg.zipkin.read_timeout, Duration::from_secs(120));
    assert_eq!(cfg.otlp_grpc.max_connection_age, Duration::from_secs(60));
    assert_eq!(
        cfg.jaeger_grpc.max_connection_age,
        Duration::from_secs(600),
        "default"
    );
    assert_eq!(cfg.jaeger_grpc.max_connection_idle, Duration::from_secs(90));
    assert_eq!(
        cfg.otlp_grpc.max_connection_idle,
        Duration::from_secs(300),
        "default"
    );
    assert_eq!(
        cfg.otlp_http.read_timeout,
        Duration::from_secs(30),
        "default"
    );
    cfg.validate().unwrap();

    let mut cfg = CollectorConfig::default();
    cfg.jaeger_grpc.read_timeout = Duration::from_millis(500);
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains("jaeger_grpc.read_timeout"), "{error}");
    cfg.jaeger_grpc.enabled = false;
    cfg.validate().unwrap();

    let mut cfg = CollectorConfig::default();
    cfg.otlp_grpc.max_connection_age = Duration::from_millis(10);
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains("otlp_grpc.max_connection_age"), "{error}");

    let mut cfg = CollectorConfig::default();
    cfg.jaeger_grpc.max_connection_idle = Duration::ZERO;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains("jaeger_grpc.max_connection_idle"), "{error}");
}

#[test]
fn connection_limits_are_read_per_listener_and_must_allow_one() {
    let env = [
        ("SPANWAY_OTLP_GRPC__MAX_CONNECTIONS", "500"),
        ("SPANWAY_SAMPLING__MAX_CONNECTIONS", "20"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let cfg: CollectorConfig = spanway_service_kit::config::load_with_env(None, env).unwrap();
    assert_eq!(cfg.otlp_grpc.max_connections, 500);
    assert_eq!(cfg.sampling.max_connections, 20);
    assert_eq!(cfg.zipkin.max_connections, 4_096, "default");
    cfg.validate().unwrap();

    let mut cfg = CollectorConfig::default();
    cfg.jaeger_thrift_http.max_connections = 0;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(
        error.contains("jaeger_thrift_http.max_connections"),
        "{error}"
    );
    cfg.jaeger_thrift_http.enabled = false;
    cfg.validate().unwrap();

    // The Jaeger gRPC port stays open for sampling with PostSpans off.
    let mut cfg = CollectorConfig::default();
    cfg.jaeger_grpc.enabled = false;
    cfg.jaeger_grpc.max_connections = 0;
    let error = cfg.validate().unwrap_err().to_string();
    assert!(error.contains("jaeger_grpc.max_connections"), "{error}");
}
