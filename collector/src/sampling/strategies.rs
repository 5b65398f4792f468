//! Jaeger's sampling strategies file: parsing, validation, lookup, and the
//! JSON answer of the HTTP endpoint.
//!
//! The file format and the answers follow Jaeger's file-based strategy
//! provider, so a file written for Jaeger works here unchanged:
//! ```json
//! {
//!   "default_strategy": {"type": "probabilistic", "param": 0.5,
//!     "operation_strategies": [{"operation": "/health", "type": "probabilistic", "param": 0.0}]},
//!   "service_strategies": [
//!     {"service": "checkout", "type": "ratelimiting", "param": 10},
//!     {"service": "search", "type": "probabilistic", "param": 0.8,
//!      "operation_strategies": [{"operation": "GET /q", "type": "probabilistic", "param": 0.2}]}
//!   ]
//! }
//! ```
//! Two rules of Jaeger's are kept because SDKs rely on them: a service
//! without operation strategies inherits the default's (at its own
//! probability when it is probabilistic), and a service with some gets the
//! default's for the operations it does not name.
//!
//! Where Jaeger logs a warning and carries on (an unknown `type`, a
//! rate-limiting operation strategy), this module refuses the file and names
//! the key: a typo should not silently sample at 0.1 %.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use spanway_schemas::proto::jaeger::api_v2 as jaeger;

/// The probability served when no file, or no default strategy, says
/// otherwise: Jaeger's default.
pub const DEFAULT_SAMPLING_PROBABILITY: f64 = 0.001;

/// Why a strategies file was refused.
#[derive(Debug, thiserror::Error)]
pub enum StrategiesError {
    /// The file is not JSON of the expected shape (unknown keys included).
    #[error("not a valid strategies file: {0}")]
    Json(#[from] serde_json::Error),
    /// A value is out of range; `key` is its path in the file.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> StrategiesError {
    StrategiesError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStrategies {
    #[serde(default)]
    default_strategy: Option<FileServiceStrategy>,
    #[serde(default)]
    service_strategies: Option<Vec<FileServiceStrategy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServiceStrategy {
    #[serde(default)]
    service: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    param: f64,
    #[serde(default)]
    operation_strategies: Option<Vec<FileOperationStrategy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperationStrategy {
    operation: String,
    #[serde(rename = "type")]
    kind: String,
    param: f64,
}

/// Validated strategies, ready to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategies {
    default: jaeger::SamplingStrategyResponse,
    services: HashMap<String, jaeger::SamplingStrategyResponse>,
}

impl Default for Strategies {
    /// What is served without a file: probabilistic at
    /// [`DEFAULT_SAMPLING_PROBABILITY`] for everyone.
    fn default() -> Self {
        Strategies {
            default: probabilistic(DEFAULT_SAMPLING_PROBABILITY),
            services: HashMap::new(),
        }
    }
}

impl Strategies {
    /// Parses and validates the content of a strategies file.
    pub fn parse(json: &[u8]) -> Result<Self, StrategiesError> {
        let file: FileStrategies = serde_json::from_slice(json)?;
        let mut strategies = Strategies::default();
        if let Some(default) = &file.default_strategy {
            strategies.default = service_response(default, "default_strategy")?;
        }
        for (i, service) in file.service_strategies.iter().flatten().enumerate() {
            let key = format!("service_strategies[{i}]");
            let name = match service.service.as_deref() {
                Some(name) if !name.trim().is_empty() => name,
                _ => {
                    return Err(invalid(
                        format!("{key}.service"),
                        "a service name is required",
                    ));
                }
            };
            let mut response = service_response(service, &key)?;
            inherit_default_operations(&mut response, &strategies.default);
            if strategies
                .services
                .insert(name.to_owned(), response)
                .is_some()
            {
                return Err(invalid(
                    format!("{key}.service"),
                    format!("{name:?} is listed twice"),
                ));
            }
        }
        Ok(strategies)
    }

    /// The strategy for `service`, or the default one.
    pub fn for_service(&self, service: &str) -> &jaeger::SamplingStrategyResponse {
        self.services.get(service).unwrap_or(&self.default)
    }
}

fn probabilistic(rate: f64) -> jaeger::SamplingStrategyResponse {
    jaeger::SamplingStrategyResponse {
        strategy_type: jaeger::SamplingStrategyType::Probabilistic as i32,
        probabilistic_sampling: Some(jaeger::ProbabilisticSamplingStrategy {
            sampling_rate: rate,
        }),
        ..Default::default()
    }
}

fn check_probability(key: &str, param: f64) -> Result<f64, StrategiesError> {
    if (0.0..=1.0).contains(&param) {
        Ok(param)
    } else {
        Err(invalid(
            format!("{key}.param"),
            format!("{param} is not a probability in [0, 1]"),
        ))
    }
}

fn strategy(
    kind: &str,
    param: f64,
    key: &str,
) -> Result<jaeger::SamplingStrategyResponse, StrategiesError> {
    match kind {
        "probabilistic" => Ok(probabilistic(check_probability(key, param)?)),
        "ratelimiting" => {
            // The protocol carries an int32; a fraction would be truncated
            // without anyone noticing.
            if !(param >= 0.0 && param <= f64::from(i32::MAX) && param.fract() == 0.0) {
                return Err(invalid(
                    format!("{key}.param"),
                    format!("{param} is not a whole number of traces per second"),
                ));
            }
            Ok(jaeger::SamplingStrategyResponse {
                strategy_type: jaeger::SamplingStrategyType::RateLimiting as i32,
                rate_limiting_sampling: Some(jaeger::RateLimitingSamplingStrategy {
                    max_traces_per_second: param as i32,
                }),
                ..Default::default()
            })
        }
        other => Err(invalid(
            format!("{key}.type"),
            format!("{other:?} is not \"probabilistic\" or \"ratelimiting\""),
        )),
    }
}

fn service_response(
    service: &FileServiceStrategy,
    key: &str,
) -> Result<jaeger::SamplingStrategyResponse, StrategiesError> {
    let mut response = strategy(&service.kind, service.param, key)?;
    let operations = service.operation_strategies.as_deref().unwrap_or_default();
    if operations.is_empty() {
        return Ok(response);
    }
    let mut per_operation = jaeger::PerOperationSamplingStrategies {
        default_sampling_probability: service_probability(&response)
            .unwrap_or(DEFAULT_SAMPLING_PROBABILITY),
        ..Default::default()
    };
    for (i, operation) in operations.iter().enumerate() {
        let key = format!("{key}.operation_strategies[{i}]");
        if operation.operation.is_empty() {
            return Err(invalid(
                format!("{key}.operation"),
                "an operation name is required",
            ));
        }
        if operation.kind != "probabilistic" {
            return Err(invalid(
                format!("{key}.type"),
                format!(
                    "{:?}: operation strategies can only be \"probabilistic\" in Jaeger's protocol",
                    operation.kind
                ),
            ));
        }
        if per_operation
            .per_operation_strategies
            .iter()
            .any(|o| o.operation == operation.operation)
        {
            return Err(invalid(
                format!("{key}.operation"),
                format!("{:?} is listed twice", operation.operation),
            ));
        }
        per_operation
            .per_operation_strategies
            .push(jaeger::OperationSamplingStrategy {
                operation: operation.operation.clone(),
                probabilistic_sampling: Some(jaeger::ProbabilisticSamplingStrategy {
                    sampling_rate: check_probability(&key, operation.param)?,
                }),
            });
    }
    response.operation_sampling = Some(per_operation);
    Ok(response)
}

fn service_probability(response: &jaeger::SamplingStrategyResponse) -> Option<f64> {
    response
        .probabilistic_sampling
        .as_ref()
        .map(|p| p.sampling_rate)
}

/// Jaeger's rule: the default's operation strategies apply to every service,
/// below the service's own.
fn inherit_default_operations(
    response: &mut jaeger::SamplingStrategyResponse,
    default: &jaeger::SamplingStrategyResponse,
) {
    let Some(defaults) = &default.operation_sampling else {
        return;
    };
    let own_probability = service_probability(response);
    match &mut response.operation_sampling {
        None => {
            let mut inherited = defaults.clone();
            if let Some(rate) = own_probability {
                inherited.default_sampling_probability = rate;
            }
            response.operation_sampling = Some(inherited);
        }
        Some(own) => {
            for operation in &defaults.per_operation_strategies {
                if !own
                    .per_operation_strategies
                    .iter()
                    .any(|o| o.operation == operation.operation)
                {
                    own.per_operation_strategies.push(operation.clone());
                }
            }
        }
    }
}

/// The JSON form Jaeger's `/sampling` endpoints answer with: the protobuf
/// message in proto3 JSON with camelCase names, the enum by name and zero
/// values included, but absent messages left out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonResponse {
    strategy_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilistic_sampling: Option<JsonProbabilistic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limiting_sampling: Option<JsonRateLimiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_sampling: Option<JsonPerOperation>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonProbabilistic {
    sampling_rate: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRateLimiting {
    max_traces_per_second: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPerOperation {
    default_sampling_probability: f64,
    default_lower_bound_traces_per_second: f64,
    per_operation_strategies: Vec<JsonOperation>,
    default_upper_bound_traces_per_second: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOperation {
    operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilistic_sampling: Option<JsonProbabilistic>,
}

impl From<&jaeger::SamplingStrategyResponse> for JsonResponse {
    fn from(response: &jaeger::SamplingStrategyResponse) -> Self {
        let probabilistic = |p: &jaeger::ProbabilisticSamplingStrategy| JsonProbabilistic {
            sampling_rate: p.sampling_rate,
        };
        JsonResponse {
            strategy_type: match jaeger::SamplingStrategyType::try_from(response.strategy_type) {
                Ok(jaeger::SamplingStrategyType::RateLimiting) => "RATE_LIMITING",
                _ => "PROBABILISTIC",
            },
            probabilistic_sampling: response.probabilistic_sampling.as_ref().map(probabilistic),
            rate_limiting_sampling: response.rate_limiting_sampling.as_ref().map(|r| {
                JsonRateLimiting {
                    max_traces_per_second: r.max_traces_per_second,
                }
            }),
            operation_sampling: response
                .operation_sampling
                .as_ref()
                .map(|o| JsonPerOperation {
                    default_sampling_probability: o.default_sampling_probability,
                    default_lower_bound_traces_per_second: o.default_lower_bound_traces_per_second,
                    per_operation_strategies: o
                        .per_operation_strategies
                        .iter()
                        .map(|s| JsonOperation {
                            operation: s.operation.clone(),
                            probabilistic_sampling: s
                                .probabilistic_sampling
                                .as_ref()
                                .map(probabilistic),
                        })
                        .collect(),
                    default_upper_bound_traces_per_second: o.default_upper_bound_traces_per_second,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"{
      "default_strategy": {"type": "probabilistic", "param": 0.5,
        "operation_strategies": [
          {"operation": "/health", "type": "probabilistic", "param": 0.0},
          {"operation": "/metrics", "type": "probabilistic", "param": 0.01}
        ]},
      "service_strategies": [
        {"service": "checkout", "type": "ratelimiting", "param": 10},
        {"service": "search", "type": "probabilistic", "param": 0.8,
         "operation_strategies": [
           {"operation": "GET /q", "type": "probabilistic", "param": 0.2},
           {"operation": "/health", "type": "probabilistic", "param": 1}
         ]}
      ]
    }"#;

    fn json_of(response: &jaeger::SamplingStrategyResponse) -> serde_json::Value {
        serde_json::to_value(JsonResponse::from(response)).unwrap()
    }

    #[test]
    fn no_file_serves_jaegers_default() {
        let strategies = Strategies::default();
        assert_eq!(
            json_of(strategies.for_service("anyone")),
            json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.001}})
        );
        assert_eq!(Strategies::parse(b"{}").unwrap(), strategies);
    }

    #[test]
    fn unknown_service_gets_the_default_strategy() {
        let strategies = Strategies::parse(FILE.as_bytes()).unwrap();
        assert_eq!(
            json_of(strategies.for_service("unknown")),
            json!({
                "strategyType": "PROBABILISTIC",
                "probabilisticSampling": {"samplingRate": 0.5},
                "operationSampling": {
                    "defaultSamplingProbability": 0.5,
                    "defaultLowerBoundTracesPerSecond": 0.0,
                    "perOperationStrategies": [
                        {"operation": "/health", "probabilisticSampling": {"samplingRate": 0.0}},
                        {"operation": "/metrics", "probabilisticSampling": {"samplingRate": 0.01}}
                    ],
                    "defaultUpperBoundTracesPerSecond": 0.0
                }
            })
        );
    }

    #[test]
    fn service_without_operations_inherits_the_default_operations() {
        let strategies = Strategies::parse(FILE.as_bytes()).unwrap();
        let checkout = json_of(strategies.for_service("checkout"));
        assert_eq!(checkout["strategyType"], "RATE_LIMITING");
        assert_eq!(checkout["rateLimitingSampling"]["maxTracesPerSecond"], 10);
        assert!(checkout.get("probabilisticSampling").is_none());
        // Rate limiting has no probability of its own: the default's stays.
        assert_eq!(
            checkout["operationSampling"]["defaultSamplingProbability"],
            0.5
        );
        assert_eq!(
            checkout["operationSampling"]["perOperationStrategies"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn per_operation_strategies_merge_with_the_defaults() {
        let strategies = Strategies::parse(FILE.as_bytes()).unwrap();
        let search = strategies.for_service("search");
        let ops = &search.operation_sampling.as_ref().unwrap();
        assert_eq!(ops.default_sampling_probability, 0.8);
        let rate = |name: &str| {
            ops.per_operation_strategies
                .iter()
                .find(|o| o.operation == name)
                .and_then(|o| o.probabilistic_sampling.as_ref())
                .map(|p| p.sampling_rate)
        };
        assert_eq!(rate("GET /q"), Some(0.2));
        assert_eq!(rate("/health"), Some(1.0), "the service's own wins");
        assert_eq!(rate("/metrics"), Some(0.01), "inherited from the default");
        assert_eq!(ops.per_operation_strategies.len(), 3);
    }

    #[test]
    fn service_without_default_operations_has_none() {
        let strategies = Strategies::parse(
            br#"{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1}]}"#,
        )
        .unwrap();
        assert_eq!(
            json_of(strategies.for_service("a")),
            json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 1.0}})
        );
        assert_eq!(
            strategies
                .for_service("b")
                .probabilistic_sampling
                .as_ref()
                .unwrap()
                .sampling_rate,
            DEFAULT_SAMPLING_PROBABILITY
        );
    }

    fn error_of(json: &str) -> String {
        Strategies::parse(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn invalid_values_name_their_key() {
        assert_eq!(
            error_of(r#"{"default_strategy": {"type": "probabilistic", "param": 1.5}}"#),
            "default_strategy.param: 1.5 is not a probability in [0, 1]"
        );
        assert_eq!(
            error_of(
                r#"{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1},
                   {"service": "b", "type": "probabilistic", "param": 0.5,
                    "operation_strategies": [{"operation": "x", "type": "probabilistic", "param": -0.1}]}]}"#
            ),
            "service_strategies[1].operation_strategies[0].param: -0.1 is not a probability in [0, 1]"
        );
        assert!(
            error_of(r#"{"service_strategies": [{"service": "a", "type": "const", "param": 1}]}"#)
                .starts_with("service_strategies[0].type: \"const\" is not")
        );
        assert!(
            error_of(r#"{"service_strategies": [{"type": "probabilistic", "param": 1}]}"#)
                .starts_with("service_strategies[0].service:")
        );
        assert!(
            error_of(
                r#"{"service_strategies": [{"service": "a", "type": "ratelimiting", "param": 2.5}]}"#
            )
            .starts_with("service_strategies[0].param: 2.5 is not a whole number")
        );
        assert!(
            error_of(
                r#"{"default_strategy": {"type": "probabilistic", "param": 1,
                    "operation_strategies": [{"operation": "x", "type": "ratelimiting", "param": 3}]}}"#
            )
            .starts_with("default_strategy.operation_strategies[0].type:")
        );
        assert!(
            error_of(
                r#"{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1},
                   {"service": "a", "type": "probabilistic", "param": 1}]}"#
            )
            .contains("\"a\" is listed twice")
        );
    }

    #[test]
    fn unknown_keys_and_bad_json_are_refused() {
        assert!(
            error_of(r#"{"service_strategy": []}"#).contains("unknown field `service_strategy`"),
            "{}",
            error_of(r#"{"service_strategy": []}"#)
        );
        assert!(error_of("{").starts_with("not a valid strategies file"));
    }
}
