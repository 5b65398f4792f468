//! How much a consumer prefetches: the settings both consumers share.
//!
//! librdkafka checks its prefetch ceiling (`queued.max.messages.kbytes`,
//! counted in decompressed bytes) before it sends a fetch, so a whole fetch
//! response lands on top of a full queue. At its default of 1 MiB of
//! compressed records per partition, six lz4 partitions (about 5×
//! compression) held about 40 MiB beside a 16 MiB ceiling; a smaller
//! per-partition fetch bounds that overshoot.

use rdkafka::ClientConfig;
use spanway_service_kit::config::ConfigError;

/// librdkafka's largest `queued.max.messages.kbytes`.
const QUEUE_MAX_KBYTES: u32 = 2_097_151;
/// librdkafka's largest `max.partition.fetch.bytes`, in KiB.
const PARTITION_MAX_KBYTES: u32 = 1_000_000_000 / 1024;

/// Checks both sizes against librdkafka's ranges, so that the error names
/// the configuration key (`kafka.<name>`) rather than librdkafka's property.
pub fn validate(queue_kbytes: u32, partition_kbytes: u32) -> Result<(), ConfigError> {
    for (key, value, max) in [
        ("kafka.fetch_queue_kbytes", queue_kbytes, QUEUE_MAX_KBYTES),
        (
            "kafka.fetch_partition_kbytes",
            partition_kbytes,
            PARTITION_MAX_KBYTES,
        ),
    ] {
        if !(1..=max).contains(&value) {
            return Err(ConfigError::invalid(
                key,
                format!("{value} is outside 1..={max} KiB"),
            ));
        }
    }
    Ok(())
}

/// Sets the prefetch ceiling and the per-partition fetch size.
pub fn apply(role: &mut ClientConfig, queue_kbytes: u32, partition_kbytes: u32) {
    role.set("queued.max.messages.kbytes", queue_kbytes.to_string())
        .set(
            "max.partition.fetch.bytes",
            (u64::from(partition_kbytes) * 1024).to_string(),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_key_and_apply_sets_bytes() {
        validate(1, 1).unwrap();
        validate(QUEUE_MAX_KBYTES, PARTITION_MAX_KBYTES).unwrap();
        let error = validate(0, 256).unwrap_err().to_string();
        assert!(error.contains("kafka.fetch_queue_kbytes"), "{error}");
        let error = validate(16_384, PARTITION_MAX_KBYTES + 1)
            .unwrap_err()
            .to_string();
        assert!(error.contains("kafka.fetch_partition_kbytes"), "{error}");
        let mut role = ClientConfig::new();
        apply(&mut role, 16_384, 256);
        assert_eq!(role.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(role.get("max.partition.fetch.bytes"), Some("262144"));
    }
}
