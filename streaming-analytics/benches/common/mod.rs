//! What the job's benches share: the job's default peer order and the
//! timing the pairing benches run with.

use spanway_streaming_analytics::edges::Rules;
use spanway_streaming_analytics::pairing::Timing;
use spanway_streaming_analytics::span::PeerSource;

/// `model.peer_attributes` as the job's defaults set it.
pub const ORDER: [PeerSource; 4] = [
    PeerSource::PeerService,
    PeerSource::Db,
    PeerSource::Messaging,
    PeerSource::ServerAddress,
];

/// One-minute windows, as long again for lateness, a 30-second pairing
/// wait and room for every span of the benches' loads.
pub fn timing() -> Timing {
    Timing {
        window_micros: 60_000_000,
        lateness_micros: 60_000_000,
        wait_micros: 30_000_000,
        max_spans: 1_000_000,
        rules: Rules::default(),
    }
}
