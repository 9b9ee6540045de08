//! Signing in to IAM Identity Center.
//!
//! - PKCE (default): a loopback listener on 127.0.0.1 with a random port, the authorize URL
//!   handed to the person ([`Interact::open_url`]: the CLI opens it with `webbrowser`, which
//!   honours `$BROWSER`), `state` and the verifier checked, a small "you can close this tab" page.
//! - Device code: `--device-code`, or automatically when no browser can be opened here
//!   ([`Interact::can_open_url`]), and at once when opening the browser fails (`$BROWSER`
//!   exits with an error, no opener can run: [`Opening::failure`]) instead of waiting for the
//!   deadline of a browser sign-in that cannot come.
//! - `aws-cli` (opt-in): runs `aws sso login --profile P` and imports the token it wrote.
//!
//! The URL (and user code) is always shown ([`Notice::SignIn`]); a [`Progress`] shows while
//! waiting; a deadline ends the wait with a clear error. Nothing here prints: the [`Interact`]
//! draws.
//!
//! [`Progress`]: crate::interact::Progress

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::endpoints::{endpoint, Service};
use super::http::{enc, AwsError};
use super::oidc::{self, Grant, Registration, TokenAnswer};
use super::token_cache::SsoToken;
use super::SCOPE;
use crate::error::{Error, Result};
use crate::interact::{Interact, Notice, OpenOutcome, Opening, SignInStep, Unanswered};

/// How sign-in happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Driver {
    /// keyrack's own OIDC client (PKCE or device code).
    #[default]
    Native,
    /// `aws sso login --profile P` (opt-in).
    AwsCli,
}

/// Sign-in options.
#[derive(Clone, Copy, Debug)]
pub struct LoginOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Use the device-code flow even when a browser could be opened.
    pub device_code: bool,
    /// Never sign in: fail with the command that would.
    pub no_prompt: bool,
    /// Which driver.
    pub driver: Driver,
}

impl LoginOptions {
    /// Options that never sign in (for operations that must not open a browser).
    pub fn never_prompt() -> Self {
        LoginOptions {
            no_prompt: true,
            ..Default::default()
        }
    }
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            timeout: Duration::from_secs(300),
            device_code: false,
            no_prompt: false,
            driver: Driver::Native,
        }
    }
}

/// The longest access-token lifetime taken from an answer (AWS's are about an hour).
pub const MAX_TOKEN_SECS: i64 = 24 * 3600;

fn token_from(answer: TokenAnswer, reg: &Registration, start_url: &str) -> SsoToken {
    SsoToken {
        start_url: start_url.into(),
        region: reg.region.clone(),
        access_token: answer.access_token,
        // (a lifetime past a day is not one AWS gives: it is read as a day, never as an
        // overflow)
        expires_at: jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                answer.expires_in.clamp(0, MAX_TOKEN_SECS),
            ))
            .unwrap_or_else(|_| jiff::Timestamp::now()),
        client_id: Some(reg.client_id.clone()),
        client_secret: Some(reg.client_secret.clone()),
        registration_expires_at: jiff::Timestamp::from_second(reg.expires_at).ok(),
        refresh_token: answer.refresh_token,
    }
}

/// Refreshes `token` with its refresh token.
pub fn refresh(token: &SsoToken, reg: &Registration) -> std::result::Result<SsoToken, AwsError> {
    refresh_at(&endpoint(Service::SsoOidc, &reg.region)?, token, reg)
}

/// [`refresh`] at the SSO OIDC endpoint `base` resolved earlier.
pub fn refresh_at(
    base: &str,
    token: &SsoToken,
    reg: &Registration,
) -> std::result::Result<SsoToken, AwsError> {
    let rt = token
        .refresh_token
        .as_ref()
        .ok_or_else(|| AwsError::Service {
            status: 400,
            code: "InvalidGrantException".into(),
            message: "no refresh token".into(),
        })?;
    let answer = oidc::create_token_at(base, reg, Grant::Refresh(rt))?;
    let mut t = token_from(answer, reg, &token.start_url);
    if t.refresh_token.is_none() {
        t.refresh_token = token.refresh_token.clone();
    }
    Ok(t)
}

/// Signs in with keyrack's registered client, through the person behind `interact`. `profile`
/// is only used by the aws-cli driver.
pub fn sign_in(
    reg: &Registration,
    start_url: &str,
    opts: &LoginOptions,
    profile: Option<&str>,
    interact: &dyn Interact,
) -> Result<SsoToken> {
    if opts.no_prompt {
        return Err(Error::Aws {
            source: None,
            message: format!("signing in to {start_url} is needed, and --no-prompt forbids it"),
            hint: "run keyrack unlock without --no-prompt (a browser sign-in follows)".into(),
        });
    }
    match opts.driver {
        Driver::AwsCli => aws_cli(start_url, profile, opts, interact),
        Driver::Native if opts.device_code || !interact.can_open_url() => {
            device_code(reg, start_url, opts, interact, true)
        }
        Driver::Native => match pkce(reg, start_url, opts, interact)? {
            Pkce::SignedIn(token) => Ok(token),
            Pkce::BrowserFailed(reason) => {
                // The browser sign-in cannot come: the device code now, not at the deadline.
                // Its link is shown, not opened again (the opener just failed).
                interact.notice(&Notice::BrowserFailed { reason });
                device_code(reg, start_url, opts, interact, false)
            }
        },
    }
}

/// The sign-in of `start_url` cannot wait for anyone: nobody is there to follow it.
fn nobody_to_sign_in(start_url: &str, e: Unanswered) -> Error {
    Error::NeedsTty {
        what: format!("signing in to {start_url}"),
        hint: match e {
            Unanswered::NoTerminal => "run keyrack unlock where you can open the sign-in link (a browser sign-in follows), or pass --no-prompt to fail instead of signing in".into(),
            e => format!("the sign-in could not be shown ({e}); run the command again"),
        },
    }
}

/// Shows the sign-in step, then hands its link to the person (unless `open` is false). The
/// [`Opening`] of a browser asked to open the link tells whether that failed.
fn present(
    interact: &dyn Interact,
    start_url: &str,
    step: SignInStep,
    open: bool,
) -> Result<Option<Opening>> {
    let url = match &step {
        SignInStep::Browser { url } | SignInStep::DeviceCode { url, .. } => url.clone(),
        SignInStep::AwsCli { .. } => String::new(),
    };
    interact.notice(&Notice::SignIn {
        start_url: start_url.into(),
        step,
    });
    if url.is_empty() || !open {
        return Ok(None);
    }
    match interact
        .open_url(&url)
        .map_err(|e| nobody_to_sign_in(start_url, e))?
    {
        OpenOutcome::Requested(opening) => Ok(Some(opening)),
        OpenOutcome::NoBrowser => Ok(None),
    }
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

/// A PKCE verifier: 64 characters of `[A-Za-z0-9-._~]`.
pub(crate) fn pkce_verifier() -> String {
    random_string(
        64,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
    )
}

/// base64url(sha256(verifier)) without padding.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `5m`, `1h 30m`, `2s`.
fn timeout_shown(d: Duration) -> String {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    format!("{d:#}")
}

fn timed_out(start_url: &str, opts: &LoginOptions, flow: &str) -> Error {
    Error::Aws {
        source: None,
        message: format!(
            "sign-in to {start_url} did not complete within {} ({flow}); nothing was saved",
            timeout_shown(opts.timeout)
        ),
        hint: "run the command again and finish the sign-in in the browser (or pass --login-timeout 10m; --device-code to sign in from another device)".into(),
    }
}

/// How a browser (PKCE) sign-in ended.
enum Pkce {
    /// The browser came back with a code, exchanged for a token.
    SignedIn(SsoToken),
    /// The browser could not be opened: why.
    BrowserFailed(String),
}

fn pkce(
    reg: &Registration,
    start_url: &str,
    opts: &LoginOptions,
    interact: &dyn Interact,
) -> Result<Pkce> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("listen on", "127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("listen on", "127.0.0.1", e))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let verifier = pkce_verifier();
    let state = random_string(32, b"0123456789abcdef");
    let url = format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&state={}&code_challenge_method=S256&scopes={}&code_challenge={}",
        endpoint(Service::SsoOidc, &reg.region)
            .map_err(|e| e.into_error("opening the sign-in page"))?,
        enc(&reg.client_id),
        enc(&redirect_uri),
        state,
        enc(SCOPE),
        pkce_challenge(&verifier)
    );
    let opening = present(interact, start_url, SignInStep::Browser { url }, true)?;
    let _waiting = interact.progress("waiting for the browser sign-in…");
    let deadline = Instant::now() + opts.timeout;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("listen on", "127.0.0.1", e))?;
    loop {
        if Instant::now() >= deadline {
            return Err(timed_out(start_url, opts, "browser"));
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // (checked after accept: a browser that reached the callback and then exited
                // with an error still signed in)
                if let Some(why) = opening.as_ref().and_then(Opening::failure) {
                    return Ok(Pkce::BrowserFailed(why));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(Error::io("accept on", "127.0.0.1", e)),
        };
        match callback(stream, &state) {
            Callback::Code(code) => {
                let answer = oidc::create_token(
                    reg,
                    Grant::AuthorizationCode {
                        code: &code,
                        verifier: &verifier,
                        redirect_uri: &redirect_uri,
                    },
                )
                .map_err(|e| e.into_error("exchanging the sign-in code"))?;
                return Ok(Pkce::SignedIn(token_from(answer, reg, start_url)));
            }
            Callback::Denied(why) => {
                return Err(Error::Aws {
                    source: None,
                    message: format!("the sign-in was refused in the browser: {why}"),
                    hint: "run the command again and choose Allow".into(),
                })
            }
            Callback::Ignore => continue,
        }
    }
}

enum Callback {
    Code(String),
    Denied(String),
    Ignore,
}

fn callback(stream: TcpStream, state: &str) -> Callback {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return Callback::Ignore;
    }
    let target = first.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let respond = |status: &str, body: &str| {
        let page = format!("<!doctype html><meta charset=utf-8><title>keyrack</title><body style=\"font-family:sans-serif\"><h2>{body}</h2></body>");
        let _ = write!(&stream, "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}", page.len());
    };
    if path != "/oauth/callback" {
        respond("404 Not Found", "Not found");
        return Callback::Ignore;
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some(state) {
        respond(
            "400 Bad Request",
            "This sign-in link is not the one keyrack is waiting for.",
        );
        return Callback::Ignore;
    }
    if let Some(err) = get("error") {
        respond("200 OK", "Sign-in refused. You can close this tab.");
        return Callback::Denied(get("error_description").unwrap_or(err));
    }
    match get("code") {
        Some(code) => {
            respond("200 OK", "keyrack is signed in. You can close this tab.");
            Callback::Code(code)
        }
        None => {
            respond("400 Bad Request", "No authorization code.");
            Callback::Ignore
        }
    }
}

/// The device-code sign-in; `open` hands the link to the browser too (not after the browser
/// just failed to open).
fn device_code(
    reg: &Registration,
    start_url: &str,
    opts: &LoginOptions,
    interact: &dyn Interact,
    open: bool,
) -> Result<SsoToken> {
    let auth = oidc::device_authorization(reg, start_url)
        .map_err(|e| e.into_error("starting the device sign-in"))?;
    present(
        interact,
        start_url,
        SignInStep::DeviceCode {
            url: auth.verification_uri_complete.clone(),
            code: auth.user_code.clone(),
        },
        open,
    )?;
    let _waiting = interact.progress("waiting for the device sign-in…");
    let deadline = Instant::now()
        + opts
            .timeout
            .min(Duration::from_secs(auth.expires_in.max(1)));
    let mut interval = Duration::from_secs(auth.interval.max(1));
    loop {
        if Instant::now() + interval > deadline {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            return Err(timed_out(start_url, opts, "device code"));
        }
        std::thread::sleep(interval);
        match oidc::create_token(reg, Grant::DeviceCode(&auth.device_code)) {
            Ok(answer) => return Ok(token_from(answer, reg, start_url)),
            Err(e) => match e.code() {
                Some(c) if c.contains("AuthorizationPending") => continue,
                Some(c) if c.contains("SlowDown") => interval += Duration::from_secs(5),
                Some(c) if c.contains("ExpiredToken") => {
                    return Err(timed_out(start_url, opts, "the device code expired"))
                }
                Some(c) if c.contains("AccessDenied") => {
                    return Err(Error::Aws {
                        source: None,
                        message: "the device sign-in was denied".into(),
                        hint: "run the command again and approve the request".into(),
                    })
                }
                _ => return Err(e.into_error("waiting for the device sign-in")),
            },
        }
    }
}

fn aws_cli(
    start_url: &str,
    profile: Option<&str>,
    opts: &LoginOptions,
    interact: &dyn Interact,
) -> Result<SsoToken> {
    let profile = profile.ok_or_else(|| Error::Aws {
        source: None,
        message: "the aws-cli driver signs in through a profile, and none is configured yet".into(),
        hint:
            "use the native driver for the first set (default), or pass --exid <existing profile>"
                .into(),
    })?;
    // Its output (with the sign-in URL) goes where the person follows it, never to our stdout
    // (which carries --json).
    let output = interact
        .child_output()
        .map_err(|e| nobody_to_sign_in(start_url, e))?;
    present(
        interact,
        start_url,
        SignInStep::AwsCli {
            profile: profile.to_string(),
        },
        false,
    )?;
    let mut child = std::process::Command::new("aws")
        .args(["sso", "login", "--profile", profile])
        .stdin(std::process::Stdio::null())
        .stdout(output.stdout)
        .stderr(output.stderr)
        .spawn()
        .map_err(|e| Error::Aws {
            source: None,
            message: format!("cannot run the AWS CLI: {e}"),
            hint: "install it, or use --login-driver native".into(),
        })?;
    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", "aws", e))?
        {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(timed_out(start_url, opts, "aws sso login"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        return Err(Error::Aws {
            source: None,
            message: format!("aws sso login --profile {profile} failed ({status})"),
            hint: "read its output above, then retry".into(),
        });
    }
    let cfg = super::config_file::AwsConfig::load_default()?;
    let name = super::names::ProfileName::parse(profile).map_err(|e| e.for_flag())?;
    let p = cfg.sso_profile(&name)?;
    let file = super::token_cache::cache_file(p.cache_name())?;
    super::token_cache::read(&file)?.ok_or_else(|| Error::Aws {
        source: None,
        message: format!(
            "aws sso login succeeded but wrote no token at {}",
            file.display()
        ),
        hint: "check the profile's sso_session settings".into(),
    })
}
