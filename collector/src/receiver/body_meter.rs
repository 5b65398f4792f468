//! Request bodies reserve the byte budget as they arrive.
//!
//! Counting a body against `kafka.max_bytes_in_flight` only once it has
//! been read in full would let clients sending many large bodies at once
//! (on many connections, or on many streams of one HTTP/2 connection) fill
//! memory before the budget saw any of it. So every data frame reserves its
//! bytes before the server buffers it. A frame that does not
//! fit ends the body with an overload error, which the receiver answers as
//! it answers a full budget: RESOURCE_EXHAUSTED with a `RetryInfo`, or 429
//! with `Retry-After`. The reservation travels in the request's extensions
//! and the pipeline takes it over, so a body is never counted twice.
//!
//! A body must also arrive within the receiver's `read_timeout`: otherwise
//! a client that sends half a body and stalls would keep its share of the
//! budget, and enough of them would refuse everyone else.
//!
//! For the gRPC receivers, whose methods take one message, the body ends
//! with that message. tonic inflates a gzip message as soon as it is whole
//! but waits for the end of the stream before it hands the message over,
//! and only then does the pipeline reserve its inflated size: a client that
//! sent a small compressed message and kept its stream open held up to
//! `max_message_bytes` the budget never saw, on each of its streams, until
//! the body timeout.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::codegen::http::{Extensions, Request};
use tonic::server::NamedService;

use crate::budget::{Budget, Reservation};
use crate::error::RequestError;
use crate::pipeline::Pipeline;
use crate::receiver::otlp_grpc::grpc_status;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How large a receiver's request bodies may be, and how long they may take
/// to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, after gzip decompression.
    pub max_bytes: usize,
    /// From the request's headers to the body's last byte.
    pub timeout: Duration,
}

/// The layer that meters one receiver's request bodies.
#[derive(Debug, Clone)]
pub struct Meter {
    pipeline: Arc<Pipeline>,
    /// The `receiver` label refusals are counted under.
    receiver: &'static str,
    /// How long a body may take to arrive.
    body_timeout: Duration,
    /// Whether a body ends with its first gRPC message.
    one_grpc_message: bool,
}

impl Meter {
    /// Meters bodies against `pipeline`'s budget and `body_timeout`,
    /// counting refusals under `receiver`.
    pub fn new(pipeline: Arc<Pipeline>, receiver: &'static str, body_timeout: Duration) -> Self {
        Meter {
            pipeline,
            receiver,
            body_timeout,
            one_grpc_message: false,
        }
    }

    /// The meter for unary gRPC methods: a body ends with its one
    /// message, whatever the client does with its stream after it.
    pub fn unary_grpc(mut self) -> Self {
        self.one_grpc_message = true;
        self
    }
}

impl<S> tower::Layer<S> for Meter {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            meter: self.clone(),
        }
    }
}

/// A service whose requests' bodies are metered.
#[derive(Debug, Clone)]
pub struct Metered<S> {
    inner: S,
    meter: Meter,
}

impl<S: NamedService> NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<Request<B>> for Metered<S>
where
    S: tower::Service<Request<B>>,
    B: Rebody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let held = HeldBody::new(self.meter.pipeline.budget());
        request.extensions_mut().insert(held.clone());
        let meter = self.meter.clone();
        let deadline = Box::pin(tokio::time::sleep(meter.body_timeout));
        let message = meter.one_grpc_message.then(GrpcMessage::default);
        let request = request.map(|inner| {
            B::wrap(MeteredBody {
                inner,
                held,
                meter,
                deadline,
                message,
            })
        });
        self.inner.call(request)
    }
}

/// The body types of the two servers, and how each reports a refusal.
pub trait Rebody: Body<Data = Bytes> + Unpin + Send + Sized + 'static {
    /// `metered` as a body of this type.
    fn wrap(metered: MeteredBody<Self>) -> Self;
    /// The error that ends a body cut short for `why`.
    fn refusal(why: &RequestError) -> BoxError;
}

impl Rebody for tonic::body::Body {
    fn wrap(metered: MeteredBody<Self>) -> Self {
        tonic::body::Body::new(metered)
    }

    /// tonic answers a body error that is a `Status` with that status.
    fn refusal(why: &RequestError) -> BoxError {
        Box::new(grpc_status(why))
    }
}

impl Rebody for axum::body::Body {
    fn wrap(metered: MeteredBody<Self>) -> Self {
        axum::body::Body::new(metered)
    }

    /// The handler sees only that the body failed; it asks
    /// [`HeldBody::refusal`] why.
    fn refusal(why: &RequestError) -> BoxError {
        why.to_string().into()
    }
}

/// A body that reserves each data frame's bytes before yielding it, and
/// ends at its deadline.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    held: HeldBody,
    meter: Meter,
    deadline: Pin<Box<Sleep>>,
    /// For a unary gRPC method: how far its one message has come.
    message: Option<GrpcMessage>,
}

/// How much of a gRPC message has arrived: its 5-byte prefix (a
/// compression flag and a big-endian length), then that many bytes.
#[derive(Debug, Default)]
struct GrpcMessage {
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the message still to come, once the prefix is whole.
    remaining: Option<usize>,
}

impl GrpcMessage {
    /// Takes in the next bytes of the body.
    fn read(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.is_whole() {
            match self.remaining.as_mut() {
                Some(remaining) => {
                    let taken = data.len().min(*remaining);
                    *remaining -= taken;
                    data = &data[taken..];
                }
                None => {
                    let taken = data.len().min(5 - self.prefix_len);
                    self.prefix[self.prefix_len..self.prefix_len + taken]
                        .copy_from_slice(&data[..taken]);
                    self.prefix_len += taken;
                    data = &data[taken..];
                    if self.prefix_len == 5 {
                        let [_, a, b, c, d] = self.prefix;
                        let length = u32::from_be_bytes([a, b, c, d]);
                        self.remaining = Some(usize::try_from(length).unwrap_or(usize::MAX));
                    }
                }
            }
        }
    }

    /// Whether the whole message has arrived.
    fn is_whole(&self) -> bool {
        self.remaining == Some(0)
    }
}

impl<B: Rebody> MeteredBody<B> {
    /// Ends the body for `why`: counted, remembered for the handler, and
    /// the error its server answers with.
    fn cut(&mut self, why: Cut) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.held.lock().cut = Some(why);
        let error = why.error();
        self.meter
            .pipeline
            .count_request_refusal(self.meter.receiver, &error);
        Poll::Ready(Some(Err(B::refusal(&error))))
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Rebody,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.held.lock().cut.is_some() {
            return Poll::Ready(None);
        }
        if this.message.as_ref().is_some_and(GrpcMessage::is_whole) {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                return this.cut(Cut::TimedOut(this.meter.body_timeout));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let fits = this.held.lock().reservation.try_grow(data.len());
            if !fits {
                return this.cut(Cut::Overloaded);
            }
            if let Some(message) = &mut this.message {
                message.read(data);
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream() || self.message.as_ref().is_some_and(GrpcMessage::is_whole)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The budget a request's body holds, shared by the body and the request's
/// extensions.
#[derive(Debug, Clone)]
pub struct HeldBody(Arc<Mutex<Held>>);

#[derive(Debug)]
struct Held {
    reservation: Reservation,
    /// Why the body was cut short, if it was.
    cut: Option<Cut>,
}

/// Why a body was cut short.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The budget was spent.
    Overloaded,
    /// It did not arrive within the body timeout.
    TimedOut(Duration),
}

impl Cut {
    fn error(self) -> RequestError {
        match self {
            Cut::Overloaded => RequestError::Overloaded,
            Cut::TimedOut(after) => RequestError::BodyTimeout(after),
        }
    }
}

impl HeldBody {
    fn new(budget: &Budget) -> Self {
        HeldBody(Arc::new(Mutex::new(Held {
            reservation: budget.empty(),
            cut: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the body of the request with `extensions` holds, for the
    /// pipeline to take over; an empty reservation on `budget` when the
    /// request was not metered.
    pub fn take(extensions: &Extensions, budget: &Budget) -> Reservation {
        match extensions.get::<HeldBody>() {
            Some(held) => std::mem::replace(&mut held.lock().reservation, budget.empty()),
            None => budget.empty(),
        }
    }

    /// Why the body of the request with `extensions` was cut short, if it
    /// was: the budget was spent, or the body timeout passed.
    pub fn refusal(extensions: &Extensions) -> Option<RequestError> {
        let held = extensions.get::<HeldBody>()?;
        held.lock().cut.map(Cut::error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_message_is_whole_after_its_prefix_and_its_length_in_bytes() {
        let mut framed = vec![1, 0, 0, 1, 4];
        framed.extend(std::iter::repeat_n(b'm', 260));
        // Cut anywhere, even inside the prefix, the chunks add up.
        for cut in [0, 1, 3, 5, 6, 200, framed.len()] {
            let mut message = GrpcMessage::default();
            message.read(&framed[..cut]);
            assert!(!message.is_whole() || cut == framed.len(), "cut at {cut}");
            message.read(&framed[cut..]);
            assert!(message.is_whole(), "cut at {cut}");
        }

        let mut short = GrpcMessage::default();
        short.read(&framed[..framed.len() - 1]);
        assert!(!short.is_whole(), "one byte missing");

        let mut empty = GrpcMessage::default();
        empty.read(&[0, 0, 0]);
        assert!(!empty.is_whole(), "half a prefix");
        empty.read(&[0, 0]);
        assert!(empty.is_whole(), "a message of no bytes");

        // Bytes past the message (a second one a unary call should not
        // send) leave it whole.
        let mut more = GrpcMessage::default();
        more.read(&[framed.as_slice(), &[0, 0, 0, 0, 9, 1]].concat());
        assert!(more.is_whole());
    }
}
