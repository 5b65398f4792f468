use super::*;

fn config() -> RetentionConfig {
    RetentionConfig {
        enabled: true,
        ..RetentionConfig::default()
    }
}

#[test]
fn time_values_use_the_largest_exact_unit() {
    let cases = [
        (Duration::from_secs(7 * 86_400), "7d"),
        (Duration::from_secs(36 * 3_600), "36h"),
        (Duration::from_secs(90 * 60), "90m"),
        (Duration::from_secs(86_401), "86401s"),
        (Duration::from_millis(1_500), "1500ms"),
        (Duration::ZERO, "0ms"),
    ];
    for (duration, text) in cases {
        assert_eq!(time_value(duration), text, "{duration:?}");
    }
}

#[test]
fn engine_comes_from_the_distribution_field() {
    let os = json!({"version": {"distribution": "opensearch", "number": "2.19.6"}});
    assert_eq!(Engine::detect(&os), Engine::OpenSearch);
    let es = json!({"version": {"number": "7.17.29", "build_flavor": "default"}});
    assert_eq!(Engine::detect(&es), Engine::Elasticsearch);
}

#[test]
fn policy_names_carry_the_prefix() {
    assert_eq!(policy_name(&Prefix::default()), "jaeger-retention");
    assert_eq!(policy_name(&Prefix::new("prod")), "prod-jaeger-retention");
}

#[test]
fn ism_policy_for_daily_indices_deletes_by_index_age() {
    let p = ism_policy(&config(), &Prefix::new("prod"), false);
    let policy = &p["policy"];
    assert_eq!(policy["default_state"], "hot");
    let states = policy["states"].as_array().unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0]["name"], "hot");
    assert_eq!(
        states[0]["actions"],
        json!([]),
        "no rollover of daily indices"
    );
    assert_eq!(
        states[0]["transitions"],
        json!([{"state_name": "delete", "conditions": {"min_index_age": "7d"}}])
    );
    assert_eq!(states[1]["name"], "delete");
    assert_eq!(states[1]["actions"], json!([{"delete": {}}]));
    assert_eq!(
        policy["ism_template"],
        json!([{
            "index_patterns": ["prod-jaeger-span-*", "prod-jaeger-service-*"],
            "priority": 100
        }])
    );
    assert!(
        policy["description"]
            .as_str()
            .unwrap()
            .contains("deleted 7d after creation")
    );
}

#[test]
fn ism_policy_for_aliases_rolls_over_then_counts_from_the_rollover() {
    let mut cfg = config();
    cfg.delete_after = Duration::from_secs(3 * 86_400);
    cfg.rollover_max_age = Duration::from_secs(6 * 3_600);
    cfg.rollover_max_size = "20gb".into();
    let p = ism_policy(&cfg, &Prefix::default(), true);
    let hot = &p["policy"]["states"][0];
    assert_eq!(
        hot["actions"],
        json!([{"rollover": {"min_index_age": "6h", "min_size": "20gb"}}])
    );
    assert_eq!(
        hot["transitions"][0]["conditions"],
        json!({"min_rollover_age": "3d"})
    );
    assert_eq!(
        p["policy"]["ism_template"][0]["index_patterns"],
        json!(["jaeger-span-*", "jaeger-service-*"])
    );
}

#[test]
fn ism_description_changes_with_every_parameter() {
    let base = ism_policy(&config(), &Prefix::default(), true);
    let mut changed = Vec::new();
    let mut cfg = config();
    cfg.delete_after = Duration::from_secs(8 * 86_400);
    changed.push(ism_policy(&cfg, &Prefix::default(), true));
    let mut cfg = config();
    cfg.rollover_max_age = Duration::from_secs(2 * 86_400);
    changed.push(ism_policy(&cfg, &Prefix::default(), true));
    let mut cfg = config();
    cfg.rollover_max_size = "10gb".into();
    changed.push(ism_policy(&cfg, &Prefix::default(), true));
    changed.push(ism_policy(&config(), &Prefix::default(), false));
    changed.push(ism_policy(&config(), &Prefix::new("x"), true));
    for other in changed {
        assert_ne!(
            other["policy"]["description"], base["policy"]["description"],
            "{other}"
        );
    }
}

#[test]
fn ilm_policy_for_daily_indices_is_a_delete_phase() {
    assert_eq!(
        ilm_policy(&config(), false),
        json!({"policy": {"phases": {
            "delete": {"min_age": "7d", "actions": {"delete": {}}}
        }}})
    );
}

#[test]
fn ilm_policy_for_aliases_rolls_over_in_the_hot_phase() {
    let mut cfg = config();
    cfg.rollover_max_size = "500mb".into();
    assert_eq!(
        ilm_policy(&cfg, true),
        json!({"policy": {"phases": {
            "hot": {"min_age": "0ms", "actions": {"rollover": {"max_age": "1d", "max_size": "500mb"}}},
            "delete": {"min_age": "7d", "actions": {"delete": {}}}
        }}})
    );
}

fn lifecycle(engine: Engine, aliases: bool) -> Lifecycle {
    Lifecycle {
        engine,
        policy: policy_name(&Prefix::new("prod")),
        prefix: Prefix::new("prod"),
        aliases,
    }
}

#[test]
fn elasticsearch_templates_name_the_policy_and_the_rollover_alias() {
    let daily = lifecycle(Engine::Elasticsearch, false);
    assert_eq!(
        Value::Object(daily.index_settings(Family::Span)),
        json!({"index.lifecycle.name": "prod-jaeger-retention"})
    );
    assert!(daily.index_aliases(Family::Span).is_empty());
    let rolled = lifecycle(Engine::Elasticsearch, true);
    assert_eq!(
        Value::Object(rolled.index_settings(Family::Service)),
        json!({
            "index.lifecycle.name": "prod-jaeger-retention",
            "index.lifecycle.rollover_alias": "prod-jaeger-service-write"
        })
    );
    assert_eq!(
        Value::Object(rolled.index_aliases(Family::Service)),
        json!({"prod-jaeger-service-read": {}})
    );
}

#[test]
fn opensearch_templates_only_name_the_rollover_alias() {
    assert!(
        lifecycle(Engine::OpenSearch, false)
            .index_settings(Family::Span)
            .is_empty()
    );
    let rolled = lifecycle(Engine::OpenSearch, true);
    assert_eq!(
        Value::Object(rolled.index_settings(Family::Span)),
        json!({"plugins.index_state_management.rollover_alias": "prod-jaeger-span-write"})
    );
    assert_eq!(
        Value::Object(rolled.index_aliases(Family::Span)),
        json!({"prod-jaeger-span-read": {}})
    );
}

#[test]
fn missing_routes_are_told_from_api_errors() {
    // OpenSearch 2.19 without the ISM plugin.
    let os = r#"{"error":"no handler found for uri [/_plugins/_ism/policies/x] and method [GET]"}"#;
    assert!(route_missing(400, os, "_plugins"));
    // Elasticsearch 7.17 without x-pack: the path is read as an index.
    let es_put = r#"{"error":{"root_cause":[{"type":"invalid_index_name_exception","reason":"Invalid index name [_ilm], must not start with '_', '-', or '+'","index_uuid":"_na_","index":"_ilm"}],"type":"invalid_index_name_exception","reason":"Invalid index name [_ilm], must not start with '_', '-', or '+'","index_uuid":"_na_","index":"_ilm"},"status":400}"#;
    assert!(route_missing(400, es_put, "_ilm"));
    let es_get = r#"{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [_ilm]","index":"_ilm"}],"type":"index_not_found_exception","index":"_ilm"},"status":404}"#;
    assert!(route_missing(404, es_get, "_ilm"));
    assert!(route_missing(
        405,
        "Incorrect HTTP method for uri [/_ilm/policy/x] and method [PUT], allowed: [GET]",
        "_ilm"
    ));

    // The APIs' own errors are not a missing feature.
    let not_found = r#"{"error":{"root_cause":[{"type":"status_exception","reason":"Policy not found"}],"type":"status_exception","reason":"Policy not found"},"status":404}"#;
    assert!(!route_missing(404, not_found, "_plugins"));
    let bad_policy = r#"{"error":{"root_cause":[{"type":"x_content_parse_exception","reason":"[1:30] [policy] unknown field [phasez]"}],"type":"x_content_parse_exception"},"status":400}"#;
    assert!(!route_missing(400, bad_policy, "_ilm"));
    let other_index =
        r#"{"error":{"type":"index_not_found_exception","index":"jaeger-span-1"},"status":404}"#;
    assert!(!route_missing(404, other_index, "_ilm"));
    assert!(
        !route_missing(500, os, "_plugins"),
        "server errors are not routing"
    );
    assert!(!route_missing(403, "forbidden", "_ilm"));
}

#[test]
fn stored_ism_policies_are_updated_only_when_they_differ() {
    let ours = ism_policy(&config(), &Prefix::default(), false);
    let mut stored = json!({
        "_id": "jaeger-retention",
        "_version": 3,
        "_seq_no": 17,
        "_primary_term": 2,
        "policy": ours["policy"].clone()
    });
    assert_eq!(ism_step(&stored, &ours), IsmStep::Unchanged);
    stored["policy"]["description"] = json!("edited by hand");
    assert_eq!(
        ism_step(&stored, &ours),
        IsmStep::Update {
            seq_no: 17,
            primary_term: 2
        }
    );
}
