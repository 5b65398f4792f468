//! Request bodies reserve the byte budget as they arrive.
//!
//! A body used to count against `kafka.max_bytes_in_flight` only once it
//! had been read in full, so clients sending many large bodies at once (on
//! many connections, or on many streams of one HTTP/2 connection) could
//! fill memory before the budget saw any of it. Here every data frame
//! reserves its bytes before the server buffers it. A frame that does not
//! fit ends the body with an overload error, which the receiver answers as
//! it answers a full budget: RESOURCE_EXHAUSTED with a `RetryInfo`, or 429
//! with `Retry-After`. The reservation travels in the request's extensions
//! and the pipeline takes it over, so a body is never counted twice.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http::{Extensions, Request};
use tonic::server::NamedService;

use crate::budget::{Budget, Reservation};
use crate::error::RequestError;
use crate::pipeline::Pipeline;
use crate::receiver::otlp_grpc::grpc_status;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The layer that meters one receiver's request bodies.
#[derive(Debug, Clone)]
pub struct Meter {
    pipeline: Arc<Pipeline>,
    /// The `receiver` label refusals are counted under.
    receiver: &'static str,
}

impl Meter {
    /// Meters bodies against `pipeline`'s budget, counting refusals under
    /// `receiver`.
    pub fn new(pipeline: Arc<Pipeline>, receiver: &'static str) -> Self {
        Meter { pipeline, receiver }
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
        let request = request.map(|inner| B::wrap(MeteredBody { inner, held, meter }));
        self.inner.call(request)
    }
}

/// The body types of the two servers, and how each reports a refusal.
pub trait Rebody: Body<Data = Bytes> + Unpin + Send + Sized + 'static {
    /// `metered` as a body of this type.
    fn wrap(metered: MeteredBody<Self>) -> Self;
    /// The error that ends a body refused for want of budget.
    fn refusal() -> BoxError;
}

impl Rebody for tonic::body::Body {
    fn wrap(metered: MeteredBody<Self>) -> Self {
        tonic::body::Body::new(metered)
    }

    /// tonic answers a body error that is a `Status` with that status.
    fn refusal() -> BoxError {
        Box::new(grpc_status(&RequestError::Overloaded))
    }
}

impl Rebody for axum::body::Body {
    fn wrap(metered: MeteredBody<Self>) -> Self {
        axum::body::Body::new(metered)
    }

    /// The handler sees only that the body failed; it asks
    /// [`HeldBody::refused`] why.
    fn refusal() -> BoxError {
        Box::new(RequestError::Overloaded)
    }
}

/// A body that reserves each data frame's bytes before yielding it.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    held: HeldBody,
    meter: Meter,
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
        if this.held.lock().refused {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let mut held = this.held.lock();
            if !held.reservation.try_grow(data.len()) {
                held.refused = true;
                drop(held);
                let meter = &this.meter;
                meter
                    .pipeline
                    .count_request_refusal(meter.receiver, &RequestError::Overloaded);
                return Poll::Ready(Some(Err(B::refusal())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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
    /// The body was cut short because the budget was spent.
    refused: bool,
}

impl HeldBody {
    fn new(budget: &Budget) -> Self {
        HeldBody(Arc::new(Mutex::new(Held {
            reservation: budget.empty(),
            refused: false,
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

    /// Whether the body of the request with `extensions` failed because
    /// the budget was spent.
    pub fn refused(extensions: &Extensions) -> bool {
        extensions
            .get::<HeldBody>()
            .is_some_and(|held| held.lock().refused)
    }
}
