//! SSM Parameter Store for the tests of the aws.params vault:
//!
//! - [`Moto`]: a real `moto_server` (installed by `scripts/test.sh` with pip) on 127.0.0.1,
//!   one per test binary ([`Moto::shared`]); it stops when the test process exits (its stdin
//!   closes).
//! - [`SsmFront`]: a loopback front that counts every SSM call (`X-Amz-Target`) and the names
//!   each `GetParameters` carried, forwards to moto, and can answer throttling or
//!   `AccessDeniedException` instead (moto does not enforce IAM).
//! - [`Metadata`]: the container credentials agent and the EC2 instance metadata service (IMDSv2),
//!   answering fixed credentials, for the machine-wide credential chain.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tiny_http::{Header, Method, Response, Server};

/// Starts moto's threaded server on a free loopback port, warms the SSM backend of us-east-1
/// (its first use loads AWS's public parameters, seconds), prints the port, and stops when stdin
/// closes. `-I`: no user site or current directory on the module path.
const MOTO_SCRIPT: &str = r#"
import sys, urllib.request
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
port = s.get_host_and_port()[1]
req = urllib.request.Request(
    "http://127.0.0.1:%d/" % port,
    data=b'{"Names": ["/warm"], "WithDecryption": true}',
    headers={
        "X-Amz-Target": "AmazonSSM.GetParameters",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDWARMUP/20200101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00",
    },
)
urllib.request.urlopen(req, timeout=60).read()
print(port, flush=True)
sys.stdin.read()
s.stop()
"#;

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

impl Moto {
    /// Starts a moto server (panics with the install command when moto is missing).
    pub fn start() -> Self {
        let mut child = Command::new("python3")
            .args(["-I", "-c", MOTO_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .current_dir(std::env::temp_dir())
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read moto's port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "moto did not start (is it installed? python3 -m pip install 'moto[server]', as scripts/test.sh does); it said: {line:?}"
            )
        });
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            _child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }

    /// The one moto of this test process, started on first use.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(Moto::start)
    }

    /// Calls an SSM operation on moto directly (as the team's other tools would), in us-east-1.
    /// Returns the HTTP status and the JSON answer.
    pub fn ssm(&self, operation: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, _, text) = forward(
            &self.addr,
            &[
                ("X-Amz-Target".into(), format!("AmazonSSM.{operation}")),
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ("Authorization".into(), "AWS4-HMAC-SHA256 Credential=AKIDTEST/20200101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00".into()),
            ],
            body.to_string().as_bytes(),
        )
        .expect("moto answers");
        (
            status,
            serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The type and value of a parameter (decrypted), `None` when moto does not have it.
    pub fn parameter(&self, name: &str) -> Option<(String, String)> {
        let (status, v) = self.ssm(
            "GetParameter",
            serde_json::json!({"Name": name, "WithDecryption": true}),
        );
        if status != 200 {
            return None;
        }
        Some((
            v["Parameter"]["Type"].as_str()?.to_string(),
            v["Parameter"]["Value"].as_str()?.to_string(),
        ))
    }

    /// Writes a parameter (`kind`: SecureString, String, StringList), overwriting.
    pub fn put(&self, name: &str, kind: &str, value: &str) {
        let (status, v) = self.ssm(
            "PutParameter",
            serde_json::json!({"Name": name, "Type": kind, "Value": value, "Overwrite": true}),
        );
        assert_eq!(status, 200, "moto PutParameter {name}: {v}");
    }
}

/// HTTP headers, in order.
type Headers = Vec<(String, String)>;

/// Sends one HTTP/1.1 POST to `addr` and reads the whole answer: (status, headers, body).
fn forward(
    addr: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<(u16, Headers, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("POST / HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        if !matches!(
            k.to_ascii_lowercase().as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "expect"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let start = eol + 2;
            out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
            rest = &rest[(start + size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok((status, headers, body))
}

/// One SSM call the front saw.
#[derive(Clone, Debug)]
pub struct SsmCall {
    /// The operation (`GetParameters`, `PutParameter`, …).
    pub operation: String,
    /// The names it carried (`Names` or `Name`).
    pub names: Vec<String>,
    /// The region of its SigV4 credential scope.
    pub region: String,
    /// The access key id it was signed with.
    pub access_key_id: String,
}

#[derive(Default)]
struct FrontState {
    calls: Vec<SsmCall>,
    throttle: u32,
    /// (operation, only calls carrying this name, message)
    deny: Vec<(String, Option<String>, String)>,
}

/// A front for SSM: counts calls, forwards them to moto, or answers faults.
pub struct SsmFront {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<FrontState>>,
    server: Arc<Server>,
}

impl Drop for SsmFront {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn json_error(status: u16, code: &str, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(serde_json::json!({"__type": code, "message": message}).to_string())
        .with_status_code(status)
        .with_header(Header::from_bytes("content-type", "application/x-amz-json-1.1").unwrap())
        .with_header(
            Header::from_bytes(
                "x-amzn-ErrorType",
                format!("{code}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
            )
            .unwrap(),
        )
}

impl SsmFront {
    /// Starts a front forwarding to `upstream` (`127.0.0.1:PORT` of moto; `None`: every call
    /// not answered by a fault gets 503).
    pub fn start(upstream: Option<&str>) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
        let state = Arc::new(Mutex::new(FrontState::default()));
        let (s, st) = (Arc::clone(&server), Arc::clone(&state));
        let upstream = upstream.map(str::to_string);
        std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let st = Arc::clone(&st);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let mut body = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut body);
                    let headers: Vec<(String, String)> = req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_string(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect();
                    let get = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let operation = get("x-amz-target")
                        .trim_start_matches("AmazonSSM.")
                        .to_string();
                    let scope = get("authorization");
                    let credential = scope
                        .split("Credential=")
                        .nth(1)
                        .and_then(|c| c.split([',', ' ']).next())
                        .unwrap_or_default()
                        .to_string();
                    let mut parts = credential.split('/');
                    let access_key_id = parts.next().unwrap_or_default().to_string();
                    let region = parts.nth(1).unwrap_or_default().to_string();
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let mut names: Vec<String> = v["Names"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(n) = v["Name"].as_str() {
                        names.push(n.to_string());
                    }
                    let fault = {
                        let mut s = st.lock().unwrap();
                        let denied = s
                            .deny
                            .iter()
                            .find(|(op, name, _)| {
                                op == &operation && name.as_ref().is_none_or(|n| names.contains(n))
                            })
                            .map(|(_, _, m)| m.clone());
                        s.calls.push(SsmCall {
                            operation: operation.clone(),
                            names,
                            region,
                            access_key_id,
                        });
                        if s.throttle > 0 {
                            s.throttle -= 1;
                            Some(json_error(400, "ThrottlingException", "Rate exceeded"))
                        } else {
                            denied.map(|m| json_error(400, "AccessDeniedException", &m))
                        }
                    };
                    if let Some(reply) = fault {
                        let _ = req.respond(reply);
                        return;
                    }
                    let Some(up) = upstream else {
                        let _ = req.respond(json_error(503, "ServiceUnavailable", "no upstream"));
                        return;
                    };
                    match forward(&up, &headers, &body) {
                        Ok((status, hs, text)) => {
                            let mut r = Response::from_data(text).with_status_code(status);
                            for (k, v) in hs {
                                if k.eq_ignore_ascii_case("content-type")
                                    || k.eq_ignore_ascii_case("x-amzn-errortype")
                                {
                                    r = r.with_header(Header::from_bytes(k, v).unwrap());
                                }
                            }
                            let _ = req.respond(r);
                        }
                        Err(e) => {
                            let _ = req.respond(json_error(502, "BadGateway", &e.to_string()));
                        }
                    }
                });
            }
        });
        SsmFront { url, state, server }
    }

    /// The environment that points keyrack's SSM calls here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("AWS_ENDPOINT_URL_SSM".into(), self.url.clone())]
    }

    /// Every call seen so far.
    pub fn calls(&self) -> Vec<SsmCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls of one operation seen so far.
    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Forgets the calls seen.
    pub fn reset(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// The next `n` calls answer `ThrottlingException`.
    pub fn throttle_next(&self, n: u32) {
        self.state.lock().unwrap().throttle = n;
    }

    /// Calls of `operation` answer `AccessDeniedException` with `message` from now on.
    pub fn deny(&self, operation: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .deny
            .push((operation.into(), None, message.into()));
    }

    /// Calls of `operation` that carry the parameter `name` answer `AccessDeniedException` (as
    /// AWS refuses a whole `GetParameters` batch when one of its names is denied).
    pub fn deny_name(&self, operation: &str, name: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .deny
            .push((operation.into(), Some(name.into()), message.into()));
    }

    /// Stops denying.
    pub fn allow_all(&self) {
        self.state.lock().unwrap().deny.clear();
    }
}

/// One request the metadata fake saw.
#[derive(Clone, Debug)]
pub struct MetadataRequest {
    /// `GET` / `PUT`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The `Authorization` header (container credentials).
    pub authorization: Option<String>,
    /// The `X-aws-ec2-metadata-token` header (IMDSv2).
    pub imds_token: Option<String>,
}

/// A loopback stand-in for the ECS container credentials agent (`GET /creds`, checks the
/// `Authorization` token) and EC2 instance metadata, IMDSv2 (`PUT /latest/api/token`, then the
/// role under `/latest/meta-data/iam/security-credentials/`). Both answer the same credentials.
pub struct Metadata {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The access key id it hands out.
    pub access_key_id: String,
    seen: Arc<Mutex<Vec<MetadataRequest>>>,
    server: Arc<Server>,
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

const IMDS_TOKEN: &str = "imds-session-token";

impl Metadata {
    /// Starts it; the container route wants `Authorization: <container_token>`.
    pub fn start(container_token: &str) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, rec) = (Arc::clone(&server), Arc::clone(&seen));
        let token = container_token.to_string();
        let akid = "ASIAMETADATA0000001".to_string();
        let akid2 = akid.clone();
        std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let header = |name: &str| {
                    req.headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.as_str().to_string())
                };
                let seen_req = MetadataRequest {
                    method: req.method().to_string(),
                    path: req.url().to_string(),
                    authorization: header("authorization"),
                    imds_token: header("x-aws-ec2-metadata-token"),
                };
                rec.lock().unwrap().push(seen_req.clone());
                let creds = serde_json::json!({
                    "Code": "Success",
                    "AccessKeyId": akid2,
                    "SecretAccessKey": "metadata-secret",
                    "Token": "metadata-session",
                    "Expiration": "2099-01-01T00:00:00Z",
                })
                .to_string();
                let text = |status: u16, body: &str| {
                    Response::from_string(body.to_string()).with_status_code(status)
                };
                let imds_ok = seen_req.imds_token.as_deref() == Some(IMDS_TOKEN);
                let reply = match (req.method(), seen_req.path.as_str()) {
                    (Method::Get, "/creds")
                        if seen_req.authorization.as_deref() == Some(&token) =>
                    {
                        text(200, &creds)
                    }
                    (Method::Get, "/creds") => text(401, "bad token"),
                    (Method::Put, "/latest/api/token") => text(200, IMDS_TOKEN),
                    (Method::Get, "/latest/meta-data/iam/security-credentials/") if imds_ok => {
                        text(200, "ci-runner-role\n")
                    }
                    (Method::Get, "/latest/meta-data/iam/security-credentials/ci-runner-role")
                        if imds_ok =>
                    {
                        text(200, &creds)
                    }
                    _ => text(401, "unauthorized"),
                };
                let _ = req.respond(reply);
            }
        });
        Metadata {
            url,
            access_key_id: akid,
            seen,
            server,
        }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<MetadataRequest> {
        self.seen.lock().unwrap().clone()
    }
}
