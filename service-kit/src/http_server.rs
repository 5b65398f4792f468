//! Serving HTTP/1 and HTTP/2 connections with the time limits a public
//! port needs, for the collector's receivers (HTTP and gRPC) and every
//! process's operations endpoint.
//!
//! `axum::serve` runs hyper without a timer, and tonic's server only
//! bounds a connection's age, so neither drops a client that opens
//! connections and sends nothing, half a request head, or nothing more
//! after its last request: each holds its connection, its buffers and,
//! under a connection limit, a slot another client needs. Here:
//!
//! - a connection that sends nothing is dropped after `read`;
//! - over HTTP/1 each request head must arrive within `read` (hyper's own
//!   header timeout);
//! - a connection with no request in flight for `idle`, or older than
//!   `max_age`, is asked to close: over HTTP/1 it is closed, over HTTP/2
//!   it gets GOAWAY, and a request that arrives meanwhile still finishes.
//!   HTTP/2 PINGs do not count as activity, as in Go's server, so a client
//!   cannot hold an idle connection open by pinging it;
//! - a connection asked to close that still has not, with nothing in
//!   flight for `read`, is dropped. Over HTTP/2 the server waits for the
//!   PING it sends after GOAWAY to come back, and a client that never
//!   reads would otherwise keep the connection for good.
//!
//! On shutdown every connection is asked to close the same way, and
//! [`serve`] returns once the requests in flight have been answered, or
//! after `drain` at the latest: a client whose network went away would
//! otherwise hold the process up until it is killed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Connections accepted but not yet taken by the server.
const ACCEPT_QUEUE: usize = 64;

/// How long [`serve`] waits for clients, and for what.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For a silent client, each HTTP/1 request head, and a connection
    /// asked to close that does not.
    pub read: Duration,
    /// With no request in flight for this long, a connection is asked to
    /// close.
    pub idle: Duration,
    /// A connection about this old is asked to close; its requests in
    /// flight finish first, and the client opens a new one for the next.
    /// Each connection's age is drawn within a tenth of it either way, as
    /// Go's gRPC server does, so that clients that connected together (to
    /// a replica that just started, say) do not all reconnect together.
    pub max_age: Option<Duration>,
    /// For the connections still open after shutdown.
    pub drain: Duration,
}

impl Deadlines {
    /// `read` for idle connections too, and no age limit: what an HTTP
    /// port needs.
    pub fn new(read: Duration, drain: Duration) -> Deadlines {
        Deadlines {
            read,
            idle: read,
            max_age: None,
            drain,
        }
    }
}

/// Which HTTP versions a port speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Versions {
    /// HTTP/1 and HTTP/2, told apart by the first bytes.
    #[default]
    Any,
    /// HTTP/2 only, as gRPC needs, with at most `max_streams` requests
    /// open at once on one connection.
    Http2 {
        /// Every open stream holds its headers and a task.
        max_streams: u32,
    },
}

/// Why a connection is asked to close.
#[derive(Debug, Clone, Copy)]
enum Close {
    Idle,
    Old,
}

/// What the server did to a connection its client kept open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// Dropped: it sent nothing for `read`.
    Silent,
    /// Asked to close: no request in flight for `idle`.
    Idle,
    /// Asked to close: older than its `max_age`.
    Old,
    /// Dropped: asked to close, it had not `read` later.
    Unresponsive,
}

impl Ending {
    /// Every ending, for counters that should show zeros from the start.
    pub const ALL: [Ending; 4] = [
        Ending::Silent,
        Ending::Idle,
        Ending::Old,
        Ending::Unresponsive,
    ];

    /// Its name as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Silent => "silent",
            Ending::Idle => "idle",
            Ending::Old => "max_age",
            Ending::Unresponsive => "unresponsive",
        }
    }
}

impl From<Close> for Ending {
    fn from(close: Close) -> Ending {
        match close {
            Close::Idle => Ending::Idle,
            Close::Old => Ending::Old,
        }
    }
}

/// Told of each [`Ending`], to count them.
pub type OnEnding = Arc<dyn Fn(Ending) + Send + Sync>;

/// The port [`serve`] serves: its name in logs, and who counts what it
/// does to connections.
#[derive(Clone)]
pub struct Port {
    /// Names the port in logs.
    pub name: &'static str,
    /// Told each time the server drops a connection, or asks one to
    /// close, that its client kept open.
    pub on_ending: Option<OnEnding>,
}

impl Port {
    /// A port that counts nothing.
    pub fn named(name: &'static str) -> Port {
        Port {
            name,
            on_ending: None,
        }
    }

    fn ended(&self, ending: Ending) {
        if let Some(on_ending) = &self.on_ending {
            on_ending(ending);
        }
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port").field("name", &self.name).finish()
    }
}

/// Serves every connection from `connections` with `service` until
/// `shutdown`, then asks each to close and returns once they have, or
/// drops those left after `deadlines.drain`.
pub async fn serve<C, S>(
    mut connections: mpsc::Receiver<(C, SocketAddr)>,
    service: S,
    deadlines: Deadlines,
    versions: Versions,
    port: Port,
    shutdown: CancellationToken,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = port.name;
    let mut server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    match versions {
        Versions::Any => {
            server
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(deadlines.read);
        }
        Versions::Http2 { max_streams } => {
            server = server.http2_only();
            server
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(max_streams);
        }
    }
    let tasks = TaskTracker::new();
    let drained = CancellationToken::new();
    loop {
        let (connection, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = connections.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        let activity = Arc::new(Activity::new(deadlines.max_age.map(jittered)));
        let service = TowerToHyperService::new(
            service
                .clone()
                .map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let counted = activity.clone();
        let service = hyper::service::service_fn(move |request| {
            let request_guard = counted.begin();
            let response = service.call(request);
            async move {
                let response = response.await;
                drop(request_guard);
                response
            }
        });
        let connection = Heard {
            inner: connection,
            activity: activity.clone(),
        };
        let connection = server
            .serve_connection(TokioIo::new(connection), service)
            .into_owned();
        let shutdown = shutdown.clone();
        let drained = drained.clone();
        let port = port.clone();
        tasks.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // When the connection was asked to close.
            let mut closing: Option<Instant> = None;
            let result = loop {
                let deadline = match closing {
                    None => activity.next_deadline(&deadlines),
                    Some(since) => (since + deadlines.read).max(activity.idle_deadline(deadlines.read)),
                };
                tokio::select! {
                    result = connection.as_mut() => break result,
                    () = drained.cancelled() => return,
                    () = shutdown.cancelled(), if closing.is_none() => {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        if let Some(since) = closing {
                            if since.elapsed() >= deadlines.read && activity.idle_for(deadlines.read) {
                                tracing::debug!(listener, %remote, "HTTP connection dropped: asked to close, it did not");
                                port.ended(Ending::Unresponsive);
                                return;
                            }
                            continue;
                        }
                        // hyper's head timeout starts with the first byte:
                        // it waits for one to tell HTTP/1 from HTTP/2.
                        if !activity.heard.load(Ordering::Relaxed) && activity.idle_for(deadlines.read) {
                            tracing::debug!(listener, %remote, "HTTP connection dropped: nothing sent");
                            port.ended(Ending::Silent);
                            return;
                        }
                        let Some(reason) = activity.close_reason(&deadlines) else {
                            continue;
                        };
                        tracing::debug!(listener, %remote, ?reason, "HTTP connection asked to close");
                        port.ended(reason.into());
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                }
            };
            // A client that went away, or one closed for its read timeout.
            if let Err(error) = result {
                tracing::debug!(listener, %remote, %error, "HTTP connection ended");
            }
        });
    }
    tasks.close();
    if tokio::time::timeout(deadlines.drain, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener,
            connections = tasks.len(),
            drain = ?deadlines.drain,
            "connections still open after the drain; dropping them"
        );
        drained.cancel();
        tasks.wait().await;
    }
}

/// Accepts plain TCP connections on `listener` until `shutdown`, for
/// [`serve`].
pub fn accept_plain(
    listener: TcpListener,
    name: &'static str,
    shutdown: CancellationToken,
) -> mpsc::Receiver<(TcpStream, SocketAddr)> {
    let (sender, connections) = mpsc::channel(ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    if sender.send((stream, remote)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(listener = name, %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    connections
}

/// Whether a connection has requests in flight, and since when it has
/// had none.
/// `age`, give or take up to a tenth, drawn for each connection.
fn jittered(age: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Every `RandomState` is keyed anew: its hash of nothing is a fresh
    // pseudo-random number, without a random-number crate.
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // The top 53 bits as a fraction in [0, 1).
    let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
    age.mul_f64(0.9 + 0.2 * unit)
}

#[derive(Debug)]
struct Activity {
    start: Instant,
    /// This connection's age limit, if any.
    max_age: Option<Duration>,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the last request's start or end.
    last: AtomicU64,
    /// Whether the client has sent a byte.
    heard: AtomicBool,
}

impl Activity {
    fn new(max_age: Option<Duration>) -> Activity {
        Activity {
            start: Instant::now(),
            max_age,
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            heard: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        RequestGuard(self.clone())
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// When the connection will have been idle for `timeout`, if nothing
    /// happens before.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Instant::now() + timeout
        } else {
            self.last() + timeout
        }
    }

    fn idle_for(&self, timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.last().elapsed() >= timeout
    }

    /// When to look again at a connection not yet asked to close: when it
    /// will have been silent for `read` (nothing heard yet) or idle for
    /// `idle`, or reaches its age.
    fn next_deadline(&self, deadlines: &Deadlines) -> Instant {
        let quiet = if self.heard.load(Ordering::Relaxed) {
            deadlines.idle
        } else {
            deadlines.read.min(deadlines.idle)
        };
        let idle = self.idle_deadline(quiet);
        match self.max_age {
            Some(age) => idle.min(self.start + age),
            None => idle,
        }
    }

    /// Why the connection should be asked to close now, if it should.
    fn close_reason(&self, deadlines: &Deadlines) -> Option<Close> {
        if self.max_age.is_some_and(|age| self.start.elapsed() >= age) {
            Some(Close::Old)
        } else if self.idle_for(deadlines.idle) {
            Some(Close::Idle)
        } else {
            None
        }
    }
}

/// One request in flight on a connection, until dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection that notes when its client first sends something.
#[derive(Debug)]
struct Heard<C> {
    inner: C,
    activity: Arc<Activity>,
}

impl<C: AsyncRead + Unpin> AsyncRead for Heard<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before && !this.activity.heard.load(Ordering::Relaxed) {
            this.activity.heard.store(true, Ordering::Relaxed);
        }
        read
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Heard<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight_for_the_whole_timeout() {
        let timeout = Duration::from_secs(30);
        let activity = Arc::new(Activity::new(None));
        assert_eq!(activity.idle_deadline(timeout), activity.start + timeout);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(!activity.idle_for(timeout));

        let request = activity.begin();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!activity.idle_for(timeout), "a request is in flight");
        assert_eq!(activity.idle_deadline(timeout), Instant::now() + timeout);

        drop(request);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(
            !activity.idle_for(timeout),
            "counted from the request's end"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(activity.idle_for(timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_against_read_idleness_against_idle_and_age_from_the_start() {
        let deadlines = Deadlines {
            read: Duration::from_secs(30),
            idle: Duration::from_secs(300),
            max_age: None,
            drain: Duration::from_secs(15),
        };
        let activity = Arc::new(Activity::new(Some(Duration::from_secs(600))));
        let start = activity.start;
        assert_eq!(
            activity.next_deadline(&deadlines),
            start + deadlines.read,
            "nothing heard yet"
        );
        activity.heard.store(true, Ordering::Relaxed);
        assert_eq!(activity.next_deadline(&deadlines), start + deadlines.idle);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(activity.close_reason(&deadlines).is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            activity.close_reason(&deadlines),
            Some(Close::Idle)
        ));

        let busy = activity.begin();
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(
            activity.close_reason(&deadlines).is_none(),
            "a call in flight"
        );
        assert_eq!(
            activity.next_deadline(&deadlines),
            start + Duration::from_secs(600),
            "the age comes before the next idle check"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            activity.close_reason(&deadlines),
            Some(Close::Old)
        ));
        drop(busy);

        let fresh = Arc::new(Activity::new(None));
        fresh.heard.store(true, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(3_600)).await;
        let _call = fresh.begin();
        assert!(fresh.close_reason(&deadlines).is_none(), "no age limit");
    }

    #[test]
    fn ages_are_spread_within_a_tenth_either_way() {
        let age = Duration::from_secs(600);
        let ages: Vec<Duration> = (0..1_000).map(|_| jittered(age)).collect();
        let (low, high) = (age.mul_f64(0.9), age.mul_f64(1.1));
        assert!(ages.iter().all(|a| (low..=high).contains(a)), "{ages:?}");
        // Spread over the range, not bunched: some in each fifth of it.
        for fifth in 0..5 {
            let from = low + (high - low) * fifth / 5;
            let to = from + (high - low) / 5;
            assert!(
                ages.iter().any(|a| (from..to).contains(a)),
                "none in {from:?}..{to:?}"
            );
        }
    }
}
