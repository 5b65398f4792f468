//! A stand-in for the engine: an HTTP (or HTTPS) listener that records
//! each request and answers as the test says.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// How the stand-in answers a request (with its body): status and JSON body.
pub type Respond = Arc<dyn Fn(&Seen, &[u8]) -> (u16, String) + Send + Sync>;

/// `200 {}` to everything.
pub fn ok() -> Respond {
    Arc::new(|_, _| (200, "{}".to_owned()))
}

/// One request as received: method and path, then the headers, lowercased names.
#[derive(Debug)]
pub struct Seen {
    pub line: String,
    pub headers: Vec<(String, String)>,
    /// Whether the client presented a certificate the server verified.
    pub client_certificate: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP stand-in on a free port; reports every request.
pub fn engine(respond: Respond) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let respond = respond.clone();
            std::thread::spawn(move || serve(stream, &tx, &respond, |_| false));
        }
    });
    (addr, rx)
}

/// Reads requests off one connection until it closes.
fn serve<S: Read + Write>(
    stream: S,
    tx: &mpsc::Sender<Seen>,
    respond: &Respond,
    client_certificate: fn(&S) -> bool,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let seen = Seen {
            line: line.trim_end().to_owned(),
            headers,
            client_certificate: client_certificate(reader.get_ref()),
        };
        let length: usize = seen
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let (status, answer) = respond(&seen, &body);
        if tx.send(seen).is_err() {
            return;
        }
        let out = reader.get_mut();
        write!(
            out,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        out.flush().unwrap();
    }
}

pub fn next(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// The test PKI in `tests/tls` (EC P-256, valid for a century): `ca.pem`
/// signed `server.pem` (127.0.0.1, localhost) and `client.pem`, made with
/// `openssl req -x509` and `openssl x509 -req` with the usual v3 extensions
/// (CA:TRUE on the CA; serverAuth, clientAuth on the leaves).
pub fn pki(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
}

/// An HTTPS listener with the test server certificate; with
/// `require_client_certificate`, the handshake fails without one from the
/// test CA.
pub fn tls_engine(require_client_certificate: bool) -> (SocketAddr, mpsc::Receiver<Seen>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki("server-key.pem")).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki("ca.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = Arc::new(builder.with_single_cert(chain, key).unwrap());

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let tls = rustls::StreamOwned::new(connection, stream);
            std::thread::spawn(move || {
                serve(tls, &tx, &ok(), |tls| {
                    tls.conn.peer_certificates().is_some()
                })
            });
        }
    });
    (addr, rx)
}
