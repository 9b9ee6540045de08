//! The HTTPS front of the fake: a test CA generated at start, a server certificate it issues
//! for `127.0.0.1` and `localhost`, and a TLS listener on 127.0.0.1 that relays each
//! connection's plaintext to the fake's HTTP server (so both modes serve the same routes).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// How long one side is waited for before the other is looked at.
const TICK: Duration = Duration::from_millis(5);

pub(crate) struct Front {
    pub(crate) addr: SocketAddr,
    pub(crate) ca_file: PathBuf,
    pub(crate) failed_handshakes: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop so it sees the flag
        let _ = TcpStream::connect(self.addr);
    }
}

/// A CA and the server certificate it issued: (CA PEM, server chain, server key).
fn issue() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "keyrack-fake-aws test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    leaf.distinguished_name
        .push(DnType::CommonName, "keyrack-fake-aws");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
    (
        ca_cert.pem(),
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

impl Front {
    /// Listens on a random loopback port and relays to `plain` (the fake's HTTP server).
    pub(crate) fn start(plain: SocketAddr) -> Self {
        let (ca_pem, chain, key) = issue();
        let dir = tempfile::Builder::new()
            .prefix("fake-aws-ca")
            .tempdir()
            .expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write the CA file");
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let failed_handshakes = Arc::new(AtomicU32::new(0));
        let (st, failed) = (Arc::clone(&stop), Arc::clone(&failed_handshakes));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, failed) = (Arc::clone(&config), Arc::clone(&failed));
                std::thread::spawn(move || relay(stream, config, plain, &failed));
            }
        });
        Front {
            addr,
            ca_file,
            failed_handshakes,
            stop,
            _dir: dir,
        }
    }
}

fn waiting(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Terminates TLS on `tcp` and shuttles plaintext to and from `plain` until either side ends.
fn relay(tcp: TcpStream, config: Arc<rustls::ServerConfig>, plain: SocketAddr, failed: &AtomicU32) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(10)));
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    let Ok(mut up) = TcpStream::connect(plain) else {
        return;
    };
    let _ = tls.sock.set_read_timeout(Some(TICK));
    let _ = up.set_read_timeout(Some(TICK));
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = Instant::now();
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if up.write_all(&buf[..n]).is_err() {
                    break;
                }
                last = Instant::now();
            }
            Err(e) if waiting(&e) => {}
            Err(_) => break,
        }
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    break;
                }
                last = Instant::now();
            }
            Err(e) if waiting(&e) => {}
            Err(_) => break,
        }
        if last.elapsed() > IDLE {
            break;
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
