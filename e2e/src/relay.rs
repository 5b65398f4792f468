//! A TCP relay in front of a real service that a test can cut and restore:
//! the service keeps running while the network to it fails, so a fault can
//! be injected into one client without disturbing the other tests that
//! share the service.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The relay; dropping it stops accepting.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on an ephemeral loopback port and relays to `target`
    /// (`host:port`).
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (open, watcher) = watch::channel(true);
        let target = target.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watcher.borrow() {
                    // Cut: the connection is closed at once, as by a host
                    // that is gone.
                    drop(inbound);
                    continue;
                }
                let mut cut = watcher.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Relay { addr, open, accept }
    }

    /// `http://<relay address>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Relays again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
