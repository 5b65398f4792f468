//! The bulk stage: request bodies cut to the size limits ([`body`]), the
//! per-item verdicts of a `_bulk` answer ([`response`]), and the writer
//! that resends until every document is stored or refused for good
//! ([`writer`]).

pub mod body;
pub mod buffers;
mod log_pace;
pub mod response;
pub mod writer;
