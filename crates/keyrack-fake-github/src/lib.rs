//! A loopback fake of GitHub's installation-token API for keyrack's tests: real HTTP on
//! 127.0.0.1, reached through `GITHUB_API_URL` exactly as keyrack reaches GitHub Enterprise.
//!
//! `POST /app/installations/{id}/access_tokens` answers like GitHub, after checking what GitHub
//! checks:
//! - the headers: `Authorization: Bearer <jwt>`, `Accept: application/vnd.github+json`,
//!   `X-GitHub-Api-Version: 2022-11-28`, a `User-Agent`;
//! - the JWT: `alg` RS256, its RSASSA-PKCS1-v1_5 SHA-256 signature **verified with the public
//!   key** registered for the app named by `iss` (app id or client id) — the fake never sees a
//!   private key — and its times: `iat` not in the future, `exp` in the future, at most 10
//!   minutes ahead and at most 10 minutes after `iat`;
//! - the installation: one registered for that app, else 404.
//!
//! A refused JWT is a 401 with GitHub's kind of message. Tokens are `ghs_` + 36 letters and
//! digits, or (with [`FakeGitHub::set_long_tokens`]) the long stateless form with dots and
//! underscores; each expires after the token lifetime (1 h unless set). Every request is
//! recorded ([`Seen`]) with the claims it carried and the answer it got.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use tiny_http::{Header, Method, Request, Response, Server};

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method and path.
    pub request: String,
    /// The JWT's `iss`, as text (numbers written as digits).
    pub iss: Option<String>,
    /// The JWT's `iat`.
    pub iat: Option<i64>,
    /// The JWT's `exp`.
    pub exp: Option<i64>,
    /// The fake's clock when it answered (unix seconds).
    pub at: i64,
    /// The status answered.
    pub status: u16,
    /// Why it was refused (empty when a token was issued).
    pub reason: String,
    /// The `User-Agent` header.
    pub user_agent: String,
}

struct App {
    key: RsaPublicKey,
    installations: Vec<u64>,
}

#[derive(Default)]
struct State {
    apps: HashMap<String, App>,
    lifetime: i64,
    long_tokens: bool,
    faults: Vec<u16>,
    issued: Vec<String>,
    seen: Vec<Seen>,
    counter: u64,
}

/// A running fake. Dropping it stops answering.
pub struct FakeGitHub {
    /// `http://127.0.0.1:PORT` (the value for `GITHUB_API_URL`).
    pub url: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl FakeGitHub {
    /// Starts the fake on a random loopback port, with no app registered.
    pub fn start() -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
        let state = Arc::new(Mutex::new(State {
            lifetime: 3600,
            ..Default::default()
        }));
        let (s, st) = (Arc::clone(&server), Arc::clone(&state));
        std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || handle(req, &st));
            }
        });
        FakeGitHub { url, state, server }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Registers an app: `issuer` is its app id (digits) or client id, `public_key_pem` its
    /// public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), `installations` where it is
    /// installed.
    pub fn add_app(&self, issuer: &str, public_key_pem: &str, installations: &[u64]) {
        let key = public_key(public_key_pem);
        self.with(|s| {
            s.apps.insert(
                issuer.to_string(),
                App {
                    key,
                    installations: installations.to_vec(),
                },
            )
        });
    }

    /// How long issued tokens live (seconds).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.with(|s| s.lifetime = secs);
    }

    /// Issue the long stateless token form (`ghs_` + dots and underscores, over 100 characters).
    pub fn set_long_tokens(&self, on: bool) {
        self.with(|s| s.long_tokens = on);
    }

    /// Answer the next requests with these statuses (before any check).
    pub fn fail_next(&self, statuses: &[u16]) {
        self.with(|s| s.faults.extend_from_slice(statuses));
    }

    /// Every token issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.with(|s| s.issued.clone())
    }

    /// Every request answered, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }
}

fn public_key(pem: &str) -> RsaPublicKey {
    let pem = pem.trim();
    let label = pem
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .expect("a PEM public key");
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body is base64");
    match label {
        "PUBLIC KEY" => RsaPublicKey::from_public_key_der(&der).expect("SPKI RSA public key"),
        "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_der(&der).expect("PKCS#1 RSA public key"),
        other => panic!("not a public key PEM: {other}"),
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn json_reply(status: u16, v: serde_json::Value) -> Reply {
    Response::from_string(v.to_string())
        .with_status_code(status)
        .with_header(Header::from_bytes("content-type", "application/json; charset=utf-8").unwrap())
}

fn github_error(status: u16, message: &str) -> Reply {
    json_reply(
        status,
        serde_json::json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.to_string(),
        }),
    )
}

fn handle(mut req: Request, state: &Mutex<State>) {
    let mut body = String::new();
    let _ = std::io::Read::read_to_string(req.as_reader(), &mut body);
    let reply = {
        let mut s = state.lock().unwrap();
        let mut seen = Seen {
            request: format!("{} {}", req.method(), req.url()),
            iss: None,
            iat: None,
            exp: None,
            at: now(),
            status: 0,
            reason: String::new(),
            user_agent: header(&req, "user-agent").unwrap_or_default(),
        };
        let (status, reply) = if !s.faults.is_empty() {
            let status = s.faults.remove(0);
            seen.reason = "injected fault".into();
            (status, github_error(status, "injected fault"))
        } else {
            route(&mut s, &req, &mut seen)
        };
        seen.status = status;
        s.seen.push(seen);
        reply
    };
    let _ = req.respond(reply);
}

fn route(s: &mut State, req: &Request, seen: &mut Seen) -> (u16, Reply) {
    let url = req.url().to_string();
    let installation = url
        .strip_prefix("/app/installations/")
        .and_then(|r| r.strip_suffix("/access_tokens"));
    let (Method::Post, Some(installation)) = (req.method(), installation) else {
        seen.reason = "no such route".into();
        return (404, github_error(404, "Not Found"));
    };
    let refuse = |seen: &mut Seen, status: u16, reason: &str| {
        seen.reason = reason.to_string();
        (status, github_error(status, reason))
    };
    if header(req, "accept").as_deref() != Some("application/vnd.github+json") {
        return refuse(seen, 415, "Accept must be application/vnd.github+json");
    }
    if header(req, "x-github-api-version").as_deref() != Some("2022-11-28") {
        return refuse(seen, 400, "X-GitHub-Api-Version must be 2022-11-28");
    }
    if seen.user_agent.is_empty() {
        return refuse(seen, 403, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header");
    }
    let Some(jwt) =
        header(req, "authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string))
    else {
        return refuse(seen, 401, "A JSON web token could not be decoded");
    };
    let claims = match verify(s, &jwt, seen) {
        Ok(c) => c,
        Err(reason) => return refuse(seen, 401, &reason),
    };
    let app = &s.apps[&claims];
    let Ok(id) = installation.parse::<u64>() else {
        return refuse(seen, 404, "Not Found");
    };
    if !app.installations.contains(&id) {
        return refuse(seen, 404, "Not Found");
    }
    s.counter += 1;
    let token = token(s.counter, s.long_tokens);
    let expires = jiff::Timestamp::from_second(now() + s.lifetime).unwrap();
    s.issued.push(token.clone());
    (
        201,
        json_reply(
            201,
            serde_json::json!({
                "token": token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "permissions": {"contents": "read", "metadata": "read"},
                "repository_selection": "all",
            }),
        ),
    )
}

/// Checks the JWT; returns the registered issuer it names.
fn verify(s: &State, jwt: &str, seen: &mut Seen) -> Result<String, String> {
    let undecodable = || "A JSON web token could not be decoded".to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, payload, signature] = parts[..] else {
        return Err(undecodable());
    };
    let head: serde_json::Value = b64
        .decode(head)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    let claims: serde_json::Value = b64
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(undecodable)?;
    seen.iss = match &claims["iss"] {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(t) => Some(t.clone()),
        _ => None,
    };
    seen.iat = claims["iat"].as_i64();
    seen.exp = claims["exp"].as_i64();
    if head["alg"] != "RS256" {
        return Err("A JSON web token could not be decoded (alg must be RS256)".into());
    }
    let iss = seen
        .iss
        .clone()
        .ok_or("'Issuer' claim ('iss') must be present")?;
    let app = s
        .apps
        .get(&iss)
        .ok_or_else(|| format!("Integration not found (iss {iss})"))?;
    let sig = b64.decode(signature).map_err(|_| undecodable())?;
    let sig = Signature::try_from(sig.as_slice()).map_err(|_| undecodable())?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    VerifyingKey::<Sha256>::new(app.key.clone())
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "A JSON web token could not be decoded (signature does not verify with the app's public key)".to_string())?;
    let (Some(iat), Some(exp)) = (seen.iat, seen.exp) else {
        return Err("'Issued at' and 'Expiration time' claims must be integers".into());
    };
    let now = now();
    if iat > now {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past".into(),
        );
    }
    if exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".into());
    }
    if exp > now + 600 || exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(iss)
}

fn token(counter: u64, long: bool) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let state = std::collections::hash_map::RandomState::new();
    let mut chars = String::new();
    let mut round = 0u64;
    let want = if long { 120 } else { 36 };
    while chars.len() < want {
        let mut h = state.build_hasher();
        h.write_u64(counter);
        h.write_u64(round);
        round += 1;
        for b in h.finish().to_le_bytes() {
            chars.push(ALNUM[b as usize % ALNUM.len()] as char);
        }
    }
    chars.truncate(want);
    if long {
        // the stateless form: segments joined by dots, underscores inside
        format!(
            "ghs_{}.{}_{}.{}",
            &chars[..40],
            &chars[40..60],
            &chars[60..80],
            &chars[80..]
        )
    } else {
        format!("ghs_{chars}")
    }
}
