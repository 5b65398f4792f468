//! The partitioner every producer must use.
//!
//! Records are keyed by trace id, and all spans of one trace must land on
//! one partition, because the streaming analytics job pairs client and server
//! spans within a partition. Producers in different languages therefore have
//! to agree on the hash. We use Kafka's Java default: murmur2 of the key
//! bytes, made non-negative with `& 0x7fffffff`, modulo the partition count.
//! librdkafka calls it `murmur2_random`, Java, kafkajs and kafka-python use
//! it by default, franz-go and segment's kafka-go ship it (see the README).

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` partitions.
///
/// # Panics
/// If `partitions` is zero; a topic always has at least one.
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2`; "21", "foobar" and
    /// "abc" were also run through `org.apache.kafka.common.utils.Utils.murmur2`
    /// of kafka-clients 4.1.1.
    #[test]
    fn matches_java_murmur2() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partition_is_non_negative_modulo() {
        // "21" hashes negative; the mask, not abs(), makes it positive.
        let expected = ((-973_932_308_i32 & 0x7fff_ffff) as u32) % 7;
        assert_eq!(murmur2_partition(b"21", 7), expected);
        assert_eq!(murmur2_partition(b"anything", 1), 0);
    }
}
