//! A loopback HTTP `CONNECT` proxy for tests: it records every request line it is sent, and
//! tunnels `CONNECT` only to loopback targets (127.0.0.0/8, `localhost`, `::1`). Any other
//! target is recorded and refused with 403, so a test can see where a client wanted to go
//! (e.g. `oidc.cn-north-1.amazonaws.com.cn:443`) without anything leaving the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running proxy. It serves until the test process ends.
pub struct ConnectProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    /// Starts listening on a random loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || serve(stream, &rec));
            }
        });
        ConnectProxy { url, seen }
    }

    /// Every request line received, in order (`CONNECT 127.0.0.1:4711 HTTP/1.1`, …).
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The `host:port` targets of the `CONNECT` requests received (tunnelled or refused).
    pub fn connect_targets(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|l| l.strip_prefix("CONNECT "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

fn loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(reader_side) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_side);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let request_line = line.trim_end().to_string();
    seen.lock().unwrap().push(request_line.clone());
    // the rest of the head
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut client = stream;
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "CONNECT" {
        let _ = client.write_all(
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    }
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    if !loopback(host) {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .is_err()
    {
        return;
    }
    // bytes the client sent after the head (none for a well-behaved client) go first
    let early = reader.buffer().to_vec();
    let _ = client.set_read_timeout(None);
    let (Ok(mut client_r), Ok(mut upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    if upstream_w.write_all(&early).is_err() {
        return;
    }
    let up = std::thread::spawn(move || {
        let _ = copy(&mut client_r, &mut upstream_w);
        let _ = upstream_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_r, mut client_w) = (upstream, client);
    let _ = copy(&mut upstream_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}
