//! A loopback fake of AWS IAM Identity Center and STS for keyrack's tests: real HTTP on
//! 127.0.0.1, reached through `AWS_ENDPOINT_URL_SSO_OIDC`, `AWS_ENDPOINT_URL_SSO` and
//! `AWS_ENDPOINT_URL_STS` exactly as keyrack and botocore reach AWS.
//!
//! - SSO OIDC: `POST /client/register`, `GET /authorize` (redirects to the loopback callback like
//!   a signed-in user approving), `POST /device_authorization`, `GET /device?user_code=` (the user
//!   approving), `POST /token` (device code, authorization code with PKCE verification, refresh
//!   token).
//!
//! Browser authorizations (authorize hits and device approvals) and consent pages are counted
//! apart: in [`ConsentMode::NewClient`] (the default) the "Allow <client> to access your data?"
//! page shows on a client's first authorization only; in [`ConsentMode::EveryAuthorization`] it
//! shows on every one, as public reports say AWS does.
//! - Portal: `GET /assignment/accounts`, `GET /assignment/roles` (paginated),
//!   `GET /federation/credentials`, `POST /logout` (invalidates the session).
//! - STS: `POST /` GetCallerIdentity, answering for the role credentials it issued.
//! - Sign-in (console federation): `GET /federation?Action=getSigninToken&Session=…` checks the
//!   session JSON (`sessionId`, `sessionKey`, `sessionToken`) against the role credentials it
//!   issued and `SessionDuration` against AWS's 900–43200 s, and answers `{"SigninToken"}`;
//!   `GET /federation?Action=login&SigninToken=…&Destination=…` accepts a token it issued
//!   (answering 200, not redirecting to the real console).
//!
//! Knobs: token, role-credential and client-registration lifetimes, the consent mode, pending polls, slow-down answers, revoking every session, which user
//! signs in next, 5xx faults, the accounts and roles the portal lists (hostile names included).
//! It counts every request that carried an SSO bearer token.
//!
//! Refresh tokens (for a working day of short access tokens): single-use rotation
//! ([`FakeAws::set_single_use_refresh_tokens`]), the end of the portal session
//! ([`FakeAws::end_sessions`]: every refresh refused from then on), transient refresh faults
//! ([`FakeAws::fail_refreshes`]); refreshes are counted by who made them (keyrack or botocore,
//! by `User-Agent`) and refused ones apart. [`Trap`] is a bare TCP listener
//! that stands for a host the token must never reach: it records every connection and byte.
//!
//! [`FakeAws::start_https`] serves the same routes over TLS with a certificate from a test CA
//! generated at start (its PEM file is [`FakeAws::ca_file`], for `AWS_CA_BUNDLE`).
//! [`ConnectProxy`] is a loopback HTTP `CONNECT` proxy that records what it tunnelled.
//! [`ssm`]: moto (real SSM Parameter Store semantics), a counting front with faults, and the
//! container / instance metadata credential endpoints.

mod proxy;
pub mod ssm;
mod tls;

pub use proxy::ConnectProxy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};
use tiny_http::{Header, Method, Request, Response, Server};

struct Client {
    name: String,
    secret: String,
    consented: bool,
    /// Unix seconds: the client (and every token it would issue or refresh) is refused after.
    expires_at: u64,
}

impl Client {
    fn accepts(&self, secret: &str) -> bool {
        self.secret == secret && self.expires_at > now()
    }
}

struct Code {
    client_id: String,
    challenge: String,
    redirect_uri: String,
    user: String,
}

struct Device {
    client_id: String,
    user_code: String,
    approved: bool,
    user: String,
}

struct Token {
    user: String,
    expires_at: u64,
    revoked: bool,
}

struct Refresh {
    client_id: String,
    user: String,
    revoked: bool,
}

#[derive(Default)]
struct State {
    clients: HashMap<String, Client>,
    consents: Vec<String>,
    codes: HashMap<String, Code>,
    devices: HashMap<String, Device>,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, Refresh>,
    keys: HashMap<String, (String, String, String)>,
    user: String,
    token_lifetime: u64,
    role_credential_lifetime: u64,
    pending_polls: u32,
    slow_downs: u32,
    faults: u32,
    garbage: u32,
    accounts: Vec<(String, String, String)>,
    roles: Vec<String>,
    account_roles: HashMap<String, Vec<String>>,
    secrets: HashMap<String, (String, String)>,
    signins: Vec<Signin>,
    console_logins: Vec<String>,
    counter: u64,
    authorizations: u32,
    device_approvals: u32,
    registrations: u32,
    refreshes: u32,
    role_credential_calls: u32,
    logouts: u32,
    bearer_requests: u32,
    consent_mode: ConsentMode,
    registration_lifetime: u64,
    single_use_refresh: bool,
    refresh_faults: u32,
    refresh_agents: Vec<String>,
    refused_refreshes: u32,
}

/// When the fake shows the consent page ("Allow <client> to access your data?").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsentMode {
    /// On a client's first browser authorization only.
    #[default]
    NewClient,
    /// On every browser authorization (what public reports say AWS does).
    EveryAuthorization,
}

/// A console sign-in token the fake issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signin {
    /// The `SigninToken`.
    pub token: String,
    /// The access key id of the role credentials it was made from.
    pub access_key_id: String,
    /// The account of those credentials.
    pub account_id: String,
    /// Their role.
    pub role_name: String,
    /// The `SessionDuration` asked for, if any.
    pub session_duration: Option<u64>,
}

impl State {
    fn roles_of(&self, account: &str) -> &[String] {
        self.account_roles.get(account).unwrap_or(&self.roles)
    }

    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!("{prefix}{:06}{nanos:09}", self.counter)
    }

    fn issue(&mut self, client_id: &str, user: &str) -> serde_json::Value {
        let access = self.next("aoa");
        let refresh = self.next("aor");
        self.tokens.insert(
            access.clone(),
            Token {
                user: user.into(),
                expires_at: now() + self.token_lifetime,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                client_id: client_id.into(),
                user: user.into(),
                revoked: false,
            },
        );
        serde_json::json!({ "accessToken": access, "tokenType": "Bearer", "expiresIn": self.token_lifetime, "refreshToken": refresh })
    }

    fn bearer_user(&self, req: &Request) -> Option<String> {
        let token = header(req, "x-amz-sso_bearer_token")?;
        let t = self.tokens.get(&token)?;
        (!t.revoked && t.expires_at > now()).then(|| t.user.clone())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn query(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn json(status: u16, v: serde_json::Value) -> Reply {
    Response::from_string(v.to_string())
        .with_status_code(status)
        .with_header(Header::from_bytes("content-type", "application/json").unwrap())
}

fn aws_error(status: u16, code: &str, description: &str) -> Reply {
    json(status, serde_json::json!({ "error": code.trim_end_matches("Exception").to_lowercase(), "error_description": description, "message": description }))
        .with_header(Header::from_bytes("x-amzn-ErrorType", format!("{code}:http://internal.amazon.com/coral/com.amazonaws/")).unwrap())
}

fn unauthorized() -> Reply {
    aws_error(
        401,
        "UnauthorizedException",
        "Session token not found or invalid",
    )
}

/// A running fake. Dropping it stops answering.
pub struct FakeAws {
    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` in HTTPS mode.
    pub url: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
    tls: Option<tls::Front>,
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl FakeAws {
    /// Starts the fake on a random loopback port with 3 accounts (paginated 2 per page by
    /// `max_result`) and 2 roles each; the user `alice@example.com` signs in.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// The same fake over HTTPS: a test CA is generated now, and a certificate it issues for
    /// `127.0.0.1` and `localhost` is served. [`FakeAws::ca_file`] is the CA's PEM file (pass
    /// it as `AWS_CA_BUNDLE`); without it the certificate is untrusted, as a TLS-inspecting
    /// proxy's is.
    pub fn start_https() -> Self {
        Self::launch(true)
    }

    /// The PEM file of the test CA (HTTPS mode only).
    pub fn ca_file(&self) -> &std::path::Path {
        &self.tls.as_ref().expect("FakeAws::start_https").ca_file
    }

    /// TLS handshakes the HTTPS front saw fail (the client refused the certificate).
    pub fn failed_handshakes(&self) -> u32 {
        self.tls
            .as_ref()
            .expect("FakeAws::start_https")
            .failed_handshakes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn launch(https: bool) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let plain = server.server_addr().to_ip().expect("ip");
        let tls = https.then(|| tls::Front::start(plain));
        let url = match &tls {
            Some(front) => format!("https://{}", front.addr),
            None => format!("http://{plain}"),
        };
        let state = Arc::new(Mutex::new(State {
            user: "alice@example.com".into(),
            token_lifetime: 8 * 3600,
            role_credential_lifetime: 3600,
            accounts: vec![
                (
                    "222222222222".into(),
                    "Production".into(),
                    "prod@example.com".into(),
                ),
                (
                    "111111111111".into(),
                    "Sandbox".into(),
                    "sandbox@example.com".into(),
                ),
                (
                    "123456789012".into(),
                    "Acme Test".into(),
                    "test@example.com".into(),
                ),
            ],
            roles: vec!["ReadOnly".into(), "AdministratorAccess".into()],
            registration_lifetime: 90 * 86400,
            ..Default::default()
        }));
        let (s, st, base) = (Arc::clone(&server), Arc::clone(&state), url.clone());
        std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let st = Arc::clone(&st);
                let base = base.clone();
                std::thread::spawn(move || handle(req, &st, &base));
            }
        });
        FakeAws {
            url,
            state,
            server,
            tls,
        }
    }

    /// The environment that points AWS clients here.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            "AWS_ENDPOINT_URL_SSO_OIDC",
            "AWS_ENDPOINT_URL_SSO",
            "AWS_ENDPOINT_URL_STS",
        ]
        .iter()
        .map(|k| (k.to_string(), self.url.clone()))
        .collect()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// How many consent pages a browser would have shown (see [`ConsentMode`]).
    pub fn consents(&self) -> usize {
        self.with(|s| s.consents.len())
    }
    /// The client names that were consented to.
    pub fn consented_clients(&self) -> Vec<String> {
        self.with(|s| s.consents.clone())
    }
    /// Browser authorizations (PKCE) seen.
    pub fn authorizations(&self) -> u32 {
        self.with(|s| s.authorizations)
    }
    /// Device approvals seen.
    pub fn device_approvals(&self) -> u32 {
        self.with(|s| s.device_approvals)
    }
    /// Client registrations seen.
    pub fn registrations(&self) -> u32 {
        self.with(|s| s.registrations)
    }
    /// Token refreshes seen.
    pub fn refreshes(&self) -> u32 {
        self.with(|s| s.refreshes)
    }
    /// GetRoleCredentials calls seen.
    pub fn role_credential_calls(&self) -> u32 {
        self.with(|s| s.role_credential_calls)
    }
    /// Logouts seen.
    pub fn logouts(&self) -> u32 {
        self.with(|s| s.logouts)
    }
    /// Lifetime of new access tokens.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.with(|s| s.token_lifetime = d.as_secs());
    }
    /// Lifetime of new role credentials.
    pub fn set_role_credential_lifetime(&self, d: Duration) {
        self.with(|s| s.role_credential_lifetime = d.as_secs());
    }
    /// The next device-code polls answer `AuthorizationPendingException` this many times.
    pub fn set_pending_polls(&self, n: u32) {
        self.with(|s| s.pending_polls = n);
    }
    /// The next device-code polls answer `SlowDownException` this many times.
    pub fn set_slow_downs(&self, n: u32) {
        self.with(|s| s.slow_downs = n);
    }
    /// Revokes every access and refresh token (the sessions are dead server-side).
    pub fn revoke_all(&self) {
        self.with(|s| {
            s.tokens.values_mut().for_each(|t| t.revoked = true);
            s.refresh.values_mut().for_each(|r| r.revoked = true);
        });
    }
    /// Who signs in from now on.
    pub fn set_user(&self, user: &str) {
        self.with(|s| s.user = user.into());
    }
    /// The next `n` requests answer 500.
    pub fn fail_next(&self, n: u32) {
        self.with(|s| s.faults = n);
    }
    /// The next `n` requests answer 200 with a body that is not JSON.
    pub fn garbage_next(&self, n: u32) {
        self.with(|s| s.garbage = n);
    }
    /// The accounts the portal lists from now on: (id, name, email), as given (not validated).
    pub fn set_accounts(&self, accounts: &[(&str, &str, &str)]) {
        self.with(|s| {
            s.accounts = accounts
                .iter()
                .map(|(i, n, e)| (i.to_string(), n.to_string(), e.to_string()))
                .collect()
        });
    }
    /// The roles the portal lists in every account from now on, as given (not validated).
    pub fn set_roles(&self, roles: &[&str]) {
        self.with(|s| s.roles = roles.iter().map(|r| r.to_string()).collect());
    }
    /// The roles the portal lists in `account` from now on (overrides [`FakeAws::set_roles`]
    /// for that account), as given (not validated).
    pub fn set_account_roles(&self, account: &str, roles: &[&str]) {
        self.with(|s| {
            s.account_roles.insert(
                account.to_string(),
                roles.iter().map(|r| r.to_string()).collect(),
            );
        });
    }
    /// The console sign-in tokens issued (`getSigninToken`), oldest first.
    pub fn signins(&self) -> Vec<Signin> {
        self.with(|s| s.signins.clone())
    }
    /// The destinations of the console logins (`Action=login`) seen with a valid token.
    pub fn console_logins(&self) -> Vec<String> {
        self.with(|s| s.console_logins.clone())
    }
    /// Requests seen that carried an `x-amz-sso_bearer_token` header.
    pub fn bearer_requests(&self) -> u32 {
        self.with(|s| s.bearer_requests)
    }
    /// Approves a device sign-in (as the user would in a browser); `false` if unknown.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.with(|s| approve(s, user_code))
    }
    /// When the consent page shows from now on.
    pub fn set_consent_mode(&self, mode: ConsentMode) {
        self.with(|s| s.consent_mode = mode);
    }
    /// Browser authorizations seen: PKCE authorize hits plus device-code approvals (each is a
    /// trip to the browser, whatever pages it showed).
    pub fn browser_authorizations(&self) -> u32 {
        self.with(|s| s.authorizations + s.device_approvals)
    }
    /// The portal session ends (as its configured length runs out): every refresh token is
    /// refused from now on (`InvalidGrantException`), while access tokens already issued live
    /// out their time, as AWS does not announce a session's end.
    pub fn end_sessions(&self) {
        self.with(|s| s.refresh.values_mut().for_each(|r| r.revoked = true));
    }
    /// Whether a refresh token works once only (rotated: the refresh answers a new one and the
    /// old one is refused from then on). Off by default.
    pub fn set_single_use_refresh_tokens(&self, on: bool) {
        self.with(|s| s.single_use_refresh = on);
    }
    /// The next `n` refreshes (`CreateToken` with `refresh_token`) answer 500, as a transient
    /// fault; other requests are not affected.
    pub fn fail_refreshes(&self, n: u32) {
        self.with(|s| s.refresh_faults = n);
    }
    /// The `User-Agent` of each successful refresh, oldest first (keyrack's and botocore's
    /// refreshes told apart).
    pub fn refresh_agents(&self) -> Vec<String> {
        self.with(|s| s.refresh_agents.clone())
    }
    /// Successful refreshes whose `User-Agent` names botocore (the AWS CLI, boto3).
    pub fn botocore_refreshes(&self) -> usize {
        self.with(|s| {
            s.refresh_agents
                .iter()
                .filter(|a| a.contains("botocore"))
                .count()
        })
    }
    /// Successful refreshes by anyone but botocore (keyrack).
    pub fn keyrack_refreshes(&self) -> usize {
        self.with(|s| {
            s.refresh_agents
                .iter()
                .filter(|a| !a.contains("botocore"))
                .count()
        })
    }
    /// Refreshes refused (an unknown, used, revoked or foreign refresh token).
    pub fn refused_refreshes(&self) -> u32 {
        self.with(|s| s.refused_refreshes)
    }
    /// Lifetime of new client registrations (`clientSecretExpiresAt`; AWS: about 90 days).
    pub fn set_registration_lifetime(&self, d: Duration) {
        self.with(|s| s.registration_lifetime = d.as_secs());
    }
}

fn approve(s: &mut State, user_code: &str) -> bool {
    let user = s.user.clone();
    let Some(d) = s.devices.values_mut().find(|d| d.user_code == user_code) else {
        return false;
    };
    d.approved = true;
    d.user = user;
    let client_id = d.client_id.clone();
    s.device_approvals += 1;
    consent(s, &client_id);
    true
}

fn consent(s: &mut State, client_id: &str) {
    let every = s.consent_mode == ConsentMode::EveryAuthorization;
    if let Some(c) = s.clients.get_mut(client_id) {
        if every || !c.consented {
            c.consented = true;
            let name = c.name.clone();
            s.consents.push(name);
        }
    }
}

fn handle(mut req: Request, state: &Mutex<State>, base: &str) {
    let mut body = String::new();
    let _ = req.as_reader().read_to_string(&mut body);
    let reply = {
        let mut s = state.lock().unwrap();
        if header(&req, "x-amz-sso_bearer_token").is_some() {
            s.bearer_requests += 1;
        }
        if s.faults > 0 {
            s.faults -= 1;
            aws_error(500, "InternalServerException", "injected fault")
        } else if s.garbage > 0 {
            s.garbage -= 1;
            Response::from_string("{this is not json")
                .with_header(Header::from_bytes("content-type", "application/json").unwrap())
        } else {
            route(&mut s, &req, &body, base)
        }
    };
    let _ = req.respond(reply);
}

fn route(s: &mut State, req: &Request, body: &str, base: &str) -> Reply {
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("");
    let q = query(&url);
    let b: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let field = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    match (req.method(), path) {
        (Method::Post, "/client/register") => {
            let id = s.next("client-");
            let secret = s.next("secret-");
            s.registrations += 1;
            s.clients.insert(
                id.clone(),
                Client {
                    name: field("clientName"),
                    secret: secret.clone(),
                    consented: false,
                    expires_at: now() + s.registration_lifetime,
                },
            );
            json(
                200,
                serde_json::json!({ "clientId": id, "clientSecret": secret, "clientIdIssuedAt": now(), "clientSecretExpiresAt": now() + s.registration_lifetime }),
            )
        }
        (Method::Get, "/authorize") => {
            let client_id = q.get("client_id").cloned().unwrap_or_default();
            if s.clients
                .get(&client_id)
                .is_none_or(|c| c.expires_at <= now())
            {
                return aws_error(400, "InvalidClientException", "unknown or expired client");
            }
            let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
            if !(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/oauth/callback"))
            {
                return aws_error(
                    400,
                    "InvalidRequestException",
                    "redirect_uri not registered",
                );
            }
            if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
                return aws_error(400, "InvalidRequestException", "S256 required");
            }
            s.authorizations += 1;
            consent(s, &client_id);
            let code = s.next("code-");
            let user = s.user.clone();
            s.codes.insert(
                code.clone(),
                Code {
                    client_id,
                    challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                    redirect_uri: redirect.clone(),
                    user,
                },
            );
            let location = format!(
                "{redirect}?code={}&state={}",
                encode(&code),
                encode(q.get("state").map(String::as_str).unwrap_or(""))
            );
            Response::from_string("")
                .with_status_code(302)
                .with_header(Header::from_bytes("location", location).unwrap())
        }
        (Method::Post, "/device_authorization") => {
            let client_id = field("clientId");
            match s.clients.get(&client_id) {
                Some(c) if c.accepts(&field("clientSecret")) => {}
                _ => return aws_error(400, "InvalidClientException", "bad client"),
            }
            let device = s.next("dev-");
            let n = s.counter;
            let user_code = format!("ABCD-{n:04}");
            let user = s.user.clone();
            s.devices.insert(
                device.clone(),
                Device {
                    client_id,
                    user_code: user_code.clone(),
                    approved: false,
                    user,
                },
            );
            json(
                200,
                serde_json::json!({
                    "deviceCode": device, "userCode": user_code,
                    "verificationUri": format!("{base}/device"),
                    "verificationUriComplete": format!("{base}/device?user_code={user_code}"),
                    "expiresIn": 600, "interval": 1
                }),
            )
        }
        (Method::Get, "/device") => {
            let code = q.get("user_code").cloned().unwrap_or_default();
            if approve(s, &code) {
                Response::from_string("<h1>Request approved</h1>").with_status_code(200)
            } else {
                Response::from_string("unknown code").with_status_code(404)
            }
        }
        (Method::Post, "/token") => {
            let agent = header(req, "user-agent").unwrap_or_default();
            token(s, &field, &agent)
        }
        (Method::Get, "/assignment/accounts") => {
            if s.bearer_user(req).is_none() {
                return unauthorized();
            }
            let items: Vec<serde_json::Value> = s.accounts.iter().map(|(id, name, email)| serde_json::json!({ "accountId": id, "accountName": name, "emailAddress": email })).collect();
            page(items, "accountList", &q)
        }
        (Method::Get, "/assignment/roles") => {
            if s.bearer_user(req).is_none() {
                return unauthorized();
            }
            let account = q.get("account_id").cloned().unwrap_or_default();
            let items: Vec<serde_json::Value> = s
                .roles_of(&account)
                .iter()
                .map(|r| serde_json::json!({ "roleName": r, "accountId": account }))
                .collect();
            page(items, "roleList", &q)
        }
        (Method::Get, "/federation/credentials") => {
            let Some(user) = s.bearer_user(req) else {
                return unauthorized();
            };
            s.role_credential_calls += 1;
            let account = q.get("account_id").cloned().unwrap_or_default();
            let role = q.get("role_name").cloned().unwrap_or_default();
            if !s.accounts.iter().any(|(id, _, _)| *id == account)
                || !s.roles_of(&account).contains(&role)
            {
                return aws_error(403, "ForbiddenException", "No access");
            }
            let n = s.counter + 1;
            s.counter = n;
            let akid = format!("ASIAFAKE{n:012}");
            s.keys.insert(akid.clone(), (user, account, role));
            s.secrets
                .insert(akid.clone(), (format!("secret{n}"), format!("session{n}")));
            json(
                200,
                serde_json::json!({ "roleCredentials": {
                    "accessKeyId": akid, "secretAccessKey": format!("secret{n}"), "sessionToken": format!("session{n}"),
                    "expiration": (now() + s.role_credential_lifetime) * 1000
                }}),
            )
        }
        (Method::Get, "/federation") => federation(s, &q),
        (Method::Post, "/logout") => {
            let token = header(req, "x-amz-sso_bearer_token").unwrap_or_default();
            s.logouts += 1;
            if let Some(user) = s.tokens.get(&token).map(|t| t.user.clone()) {
                s.tokens
                    .values_mut()
                    .filter(|t| t.user == user)
                    .for_each(|t| t.revoked = true);
                s.refresh
                    .values_mut()
                    .filter(|r| r.user == user)
                    .for_each(|r| r.revoked = true);
            }
            Response::from_string("").with_status_code(200)
        }
        (Method::Post, "/") if body.contains("Action=GetCallerIdentity") => {
            let auth = header(req, "authorization").unwrap_or_default();
            let akid = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or("")
                .to_string();
            match s.keys.get(&akid) {
                Some((user, account, role)) => Response::from_string(format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::{account}:assumed-role/{role}/{user}</Arn><UserId>AROAFAKE:{user}</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                ))
                .with_header(Header::from_bytes("content-type", "text/xml").unwrap()),
                None => Response::from_string("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>")
                    .with_status_code(403)
                    .with_header(Header::from_bytes("content-type", "text/xml").unwrap()),
            }
        }
        _ => Response::from_string(format!("fake-aws: no route for {} {path}", req.method()))
            .with_status_code(404),
    }
}

/// The console federation endpoint: `getSigninToken` and `login`.
fn federation(s: &mut State, q: &HashMap<String, String>) -> Reply {
    let bad = |what: &str| {
        Response::from_string(format!("Invalid {what} parameter")).with_status_code(400)
    };
    match q.get("Action").map(String::as_str) {
        Some("getSigninToken") => {
            let duration = match q.get("SessionDuration") {
                None => None,
                Some(d) => match d.parse::<u64>() {
                    Ok(n) if (900..=43200).contains(&n) => Some(n),
                    _ => return bad("SessionDuration"),
                },
            };
            let session: serde_json::Value = match q.get("Session") {
                Some(j) => serde_json::from_str(j).unwrap_or(serde_json::Value::Null),
                None => return bad("Session"),
            };
            let field = |k: &str| session.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let akid = field("sessionId").to_string();
            let issued = s.secrets.get(&akid).cloned();
            let Some((secret, token)) = issued else {
                return bad("credentials");
            };
            if field("sessionKey") != secret || field("sessionToken") != token {
                return bad("credentials");
            }
            let (_, account, role) = s.keys.get(&akid).cloned().unwrap_or_default();
            let signin = s.next("signin-token-");
            s.signins.push(Signin {
                token: signin.clone(),
                access_key_id: akid,
                account_id: account,
                role_name: role,
                session_duration: duration,
            });
            json(200, serde_json::json!({ "SigninToken": signin }))
        }
        Some("login") => {
            let token = q.get("SigninToken").cloned().unwrap_or_default();
            let destination = q.get("Destination").cloned().unwrap_or_default();
            if !s.signins.iter().any(|x| x.token == token) || !destination.starts_with("https://") {
                return bad("SigninToken");
            }
            s.console_logins.push(destination.clone());
            Response::from_string(format!("<h1>signed in to {destination}</h1>"))
                .with_status_code(200)
        }
        _ => bad("Action"),
    }
}

fn page(items: Vec<serde_json::Value>, field: &str, q: &HashMap<String, String>) -> Reply {
    let max = q
        .get("max_result")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 2);
    let start = q
        .get("next_token")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let end = (start + max).min(items.len());
    let mut v = serde_json::json!({ field: items[start.min(items.len())..end] });
    if end < items.len() {
        v["nextToken"] = format!("page-{end}").into();
    }
    json(200, v)
}

fn token(s: &mut State, field: &dyn Fn(&str) -> String, agent: &str) -> Reply {
    let client_id = field("clientId");
    match s.clients.get(&client_id) {
        Some(c) if c.accepts(&field("clientSecret")) => {}
        _ => {
            return aws_error(
                400,
                "InvalidClientException",
                "bad client or expired client",
            )
        }
    }
    match field("grantType").as_str() {
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let code = field("deviceCode");
            let Some(d) = s.devices.get(&code) else {
                return aws_error(400, "InvalidGrantException", "unknown device code");
            };
            if d.client_id != client_id {
                return aws_error(400, "InvalidGrantException", "wrong client");
            }
            if s.slow_downs > 0 {
                s.slow_downs -= 1;
                return aws_error(400, "SlowDownException", "slow down");
            }
            if !d.approved || s.pending_polls > 0 {
                s.pending_polls = s.pending_polls.saturating_sub(1);
                return aws_error(
                    400,
                    "AuthorizationPendingException",
                    "authorization pending",
                );
            }
            let user = d.user.clone();
            s.devices.remove(&code);
            json(200, s.issue(&client_id, &user))
        }
        "authorization_code" => {
            let Some(c) = s.codes.remove(&field("code")) else {
                return aws_error(400, "InvalidGrantException", "unknown code");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(field("codeVerifier").as_bytes()));
            if c.client_id != client_id
                || c.redirect_uri != field("redirectUri")
                || c.challenge != challenge
            {
                return aws_error(400, "InvalidGrantException", "PKCE verification failed");
            }
            json(200, s.issue(&client_id, &c.user))
        }
        "refresh_token" => {
            if s.refresh_faults > 0 {
                s.refresh_faults -= 1;
                return aws_error(500, "InternalServerException", "injected refresh fault");
            }
            let rt = field("refreshToken");
            match s.refresh.get_mut(&rt) {
                Some(r) if !r.revoked && r.client_id == client_id => {
                    let user = r.user.clone();
                    if s.single_use_refresh {
                        r.revoked = true;
                    }
                    s.refreshes += 1;
                    s.refresh_agents.push(agent.to_string());
                    json(200, s.issue(&client_id, &user))
                }
                _ => {
                    s.refused_refreshes += 1;
                    aws_error(400, "InvalidGrantException", "refresh token invalid")
                }
            }
        }
        other => aws_error(
            400,
            "UnsupportedGrantTypeException",
            &format!("grant type {other}"),
        ),
    }
}

/// A host the SSO token must never reach: a bare TCP listener on 127.0.0.1 that accepts every
/// connection and records what was sent (a TLS client hello, or a plain HTTP request).
pub struct Trap {
    /// The port it listens on.
    pub port: u16,
    seen: Arc<Mutex<(u32, Vec<u8>)>>,
}

impl Trap {
    /// Starts listening on a random loopback port.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new((0u32, Vec::new())));
        let rec = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                rec.lock().unwrap().0 += 1;
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || {
                    use std::io::Read;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        rec.lock().unwrap().1.extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Trap { port, seen }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.seen.lock().unwrap().0
    }

    /// Every byte received so far.
    pub fn received(&self) -> Vec<u8> {
        self.seen.lock().unwrap().1.clone()
    }
}
