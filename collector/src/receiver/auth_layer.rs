//! The tower layer that asks for credentials, in front of every receiver,
//! HTTP and gRPC alike.
//!
//! It reads only the `Authorization` header, before any handler or
//! extractor runs: a refused request's body is never read and never reaches
//! the pipeline. A refusal is HTTP 401 with a `WWW-Authenticate` challenge
//! for each configured scheme, or gRPC UNAUTHENTICATED, and is counted by
//! receiver and reason.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::receiver::auth::{Credentials, Presented, Refusal};

/// Labels of the refusal counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnauthenticatedLabels {
    /// The listener: `otlp_http`, `otlp_grpc`, … A fixed set.
    pub receiver: &'static str,
    /// `missing`, `malformed` or `invalid`.
    pub reason: &'static str,
}

/// Requests refused for want of valid credentials.
pub type UnauthenticatedCounter = Family<UnauthenticatedLabels, Counter>;

/// How a listener answers a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP 401 with `WWW-Authenticate`.
    Http,
    /// gRPC status UNAUTHENTICATED.
    Grpc,
}

/// Which requests of a listener must authenticate, by path prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every request.
    All,
    /// Every request except those under the prefix.
    Except(&'static str),
    /// Only requests under the prefix.
    Only(&'static str),
}

impl Scope {
    /// Whether a request to `path` must authenticate.
    pub fn covers(self, path: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Except(prefix) => !path.starts_with(prefix),
            Scope::Only(prefix) => path.starts_with(prefix),
        }
    }
}

#[derive(Debug)]
struct Gate {
    credentials: Arc<Credentials>,
    receiver: &'static str,
    protocol: Protocol,
    scope: Scope,
    refused: UnauthenticatedCounter,
}

/// The tower layer that checks credentials; open (passing everything)
/// when authentication is off for the listener.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    gate: Option<Arc<Gate>>,
}

impl AuthLayer {
    /// A layer that lets every request through.
    pub fn open() -> AuthLayer {
        AuthLayer { gate: None }
    }

    /// A layer that asks the requests in `scope` for `credentials`.
    pub fn new(
        credentials: Arc<Credentials>,
        receiver: &'static str,
        protocol: Protocol,
        scope: Scope,
        refused: UnauthenticatedCounter,
    ) -> AuthLayer {
        AuthLayer {
            gate: Some(Arc::new(Gate {
                credentials,
                receiver,
                protocol,
                scope,
                refused,
            })),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    gate: Option<Arc<Gate>>,
}

impl Gate {
    fn refuse(&self, refusal: Refusal) -> Response<Body> {
        self.refused
            .get_or_create(&UnauthenticatedLabels {
                receiver: self.receiver,
                reason: refusal.reason(),
            })
            .inc();
        tracing::debug!(
            receiver = self.receiver,
            reason = refusal.reason(),
            "request refused: not authenticated"
        );
        match self.protocol {
            Protocol::Grpc => tonic::Status::unauthenticated(refusal.message()).into_http(),
            Protocol::Http => {
                let mut response = Response::new(Body::from(refusal.message()));
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                for challenge in &self.credentials.challenges {
                    headers.append(header::WWW_AUTHENTICATE, challenge.clone());
                }
                response
            }
        }
    }
}

impl<S, B> tower::Service<Request<B>> for Auth<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let gate = match &self.gate {
            Some(gate) if gate.scope.covers(request.uri().path()) => gate.clone(),
            _ => return Box::pin(self.inner.call(request)),
        };
        let presented = Presented::from_headers(request.headers());
        // The service that was made ready goes with the request; a clone
        // stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match gate.credentials.clone().check(presented).await {
                Ok(()) => inner.call(request).await,
                Err(refusal) => Ok(gate.refuse(refusal)),
            }
        })
    }
}
