//! Static group membership (KIP-345) for the consumers.
//!
//! A consumer that dies without leaving its group (SIGKILL, an OOM kill, a
//! node lost) keeps its partitions until the coordinator's session timeout
//! expires, 45 s by default, and nothing reads them meanwhile. With a stable
//! `group.instance.id` the restarted process is recognised as the same
//! member and gets its partitions back at once, without a rebalance.
//!
//! The price: a static member does not leave on a clean shutdown either,
//! so an instance that is stopped for good (scaled in, or replaced by a pod
//! with another name) holds its partitions until the session times out.
//! Ids must therefore outlive restarts (a StatefulSet pod name, or a
//! Deployment pod name, which a container restart keeps) and be unique in
//! the group: a second process with the same id fences the first.

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use spanway_service_kit::config::ConfigError;

/// Longest id accepted; Kafka stores it in every group metadata record.
pub const MAX_INSTANCE_ID_LEN: usize = 249;

/// Checks an instance id from `field` (e.g. `kafka.instance_id`).
pub fn validate_instance_id(field: &'static str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty() {
        return Err(ConfigError::invalid(
            field,
            "must not be empty; leave it out for dynamic membership",
        ));
    }
    if id.len() > MAX_INSTANCE_ID_LEN {
        return Err(ConfigError::invalid(
            field,
            format!(
                "is {} bytes, at most {MAX_INSTANCE_ID_LEN} are allowed",
                id.len()
            ),
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid(
            field,
            format!("{id:?} contains {c:?}; use a name such as the pod name"),
        ));
    }
    Ok(())
}

/// Sets `group.instance.id` when an id is given.
pub fn apply(config: &mut ClientConfig, instance_id: Option<&str>) {
    if let Some(id) = instance_id {
        config.set("group.instance.id", id);
    }
}

/// librdkafka gave up on a consumer for good. For a static member this is
/// what another process joining with the same `group.instance.id` causes:
/// the consumer cannot read again, and a new one with the same id would
/// fence the other in turn, so the process stops and says why.
#[derive(Debug, thiserror::Error)]
#[error("the Kafka consumer failed for good ({code:?}): {reason}{hint}")]
pub struct FatalError {
    /// librdkafka's error code.
    pub code: RDKafkaErrorCode,
    /// librdkafka's description.
    pub reason: String,
    hint: &'static str,
}

/// The client's fatal error, if it has one.
pub fn fatal_error<C: ClientContext>(client: &Client<C>) -> Option<FatalError> {
    let (code, reason) = client.fatal_error()?;
    let hint = if code == RDKafkaErrorCode::FencedInstanceId {
        "; another process in the group uses this kafka.instance_id, and each must have its own"
    } else {
        ""
    };
    Some(FatalError { code, reason, hint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_with_the_field_named() {
        assert!(validate_instance_id("kafka.instance_id", "spanway-ingester-0").is_ok());
        for bad in ["", "two words", "tab\there", &"x".repeat(250)] {
            let error = validate_instance_id("kafka.instance_id", bad).unwrap_err();
            assert!(error.to_string().contains("kafka.instance_id"), "{error}");
        }
    }

    #[test]
    fn the_id_reaches_librdkafka_only_when_set() {
        let mut config = ClientConfig::new();
        apply(&mut config, None);
        assert_eq!(config.get("group.instance.id"), None);
        apply(&mut config, Some("ingester-1"));
        assert_eq!(config.get("group.instance.id"), Some("ingester-1"));
    }
}
