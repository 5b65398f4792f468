//! `otlp_proto` bytes, as a collector receives them over OTLP/gRPC and as
//! every consumer reads them from the topic: the in-place validator must
//! accept exactly what prost decodes, and no reader may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use spanway_schemas::proto::otlp;
use spanway_schemas::wire::otlp::{Message, validate};
use spanway_schemas::{Encoding, decode_record};
use spanway_streaming_analytics::span::PeerSource;

const PEERS: [PeerSource; 4] = [
    PeerSource::PeerService,
    PeerSource::Db,
    PeerSource::Messaging,
    PeerSource::ServerAddress,
];

spanway_fuzz::capped_allocator!();

fuzz_target!(|data: &[u8]| {
    spanway_fuzz::decoding(data, |data| {
        let decoded = otlp::TracesData::decode(data).is_ok();
        let validated = validate(Message::TracesData, data).is_ok();
        assert_eq!(
            decoded, validated,
            "prost and the in-place validator disagree"
        );
        let _ = decode_record(Encoding::OtlpProto, data);
        let _ = spanway_collector::grouping::encoded::group_encoded(data);
        let mut facts = Vec::new();
        let mut names = spanway_streaming_analytics::span::otlp_wire::Names::default();
        let _ = spanway_streaming_analytics::span::otlp_wire::facts_of_otlp(
            data, &PEERS, &mut names, &mut facts,
        );
    });
});
