//! GitHub App installation tokens: the `github.app` mech.
//!
//! `set --mech github.app` stores the app's credentials as one small JSON bundle (the secret, in
//! any vault that owns its secrets):
//!
//! ```json
//! {"appId": 123456, "installationId": 7890123, "privateKeyPem": "-----BEGIN RSA PRIVATE KEY-----\n…"}
//! ```
//!
//! (`clientId: "Iv23…"` instead of `appId` works too). At `unlock` — and in `set`'s round-trip
//! proof — the grant is minted: an RS256 JWT (`iat` 60 s in the past, `exp` 10 minutes after
//! `iat`, `iss` the app id or client id) signed with the app's private key (PKCS#1 or PKCS#8
//! PEM, RSASSA-PKCS1-v1_5 with SHA-256) buys an installation token (`ghs_…`) from
//! `POST {api}/app/installations/{id}/access_tokens`, and the grant expires with it (≈ 1 h).
//! The CI path ([`crate::ops::ci`]) mints the same way from a secret whose value is a bundle.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::aws::http::{self, AwsError};
use crate::error::{Error, Result};
use crate::host_manifest::HostEntry;
use crate::interact::{Interact, Question, Unanswered};
use crate::mech::SecretSource;
use crate::secret::Secret;
use crate::vault::Grant;

/// How far in the past the JWT's `iat` is set (GitHub's advice against clock drift).
pub(crate) const JWT_BACKDATE_SECS: i64 = 60;
/// The JWT's lifetime from `iat` to `exp`: GitHub refuses an `exp` more than 10 minutes ahead.
pub(crate) const JWT_LIFETIME_SECS: i64 = 600;
/// The largest private key file `set` reads (a 4096-bit PEM is about 3.3 KiB).
const MAX_PEM_BYTES: u64 = 64 * 1024;
/// The smallest RSA modulus accepted (GitHub issues 2048-bit keys).
const MIN_KEY_BITS: usize = 2048;

/// Who the JWT says it is: the numeric app id, or the app's client id (`Iv1.…`, `Iv23…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// The app id (Settings → Developer settings → GitHub Apps → the app → App ID).
    AppId(u64),
    /// The client id of the app.
    ClientId(String),
}

impl Issuer {
    /// Parses an app id (digits) or a client id (letters, digits, `.`, `_`, `-`).
    pub(crate) fn parse(s: &str) -> std::result::Result<Self, AppError> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Issuer::AppId(n)),
                _ => Err(AppError::Credentials(format!(
                    "the app id '{s}' is not a positive number"
                ))),
            };
        }
        let ok = (4..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Issuer::ClientId(s.to_string()))
        } else {
            Err(AppError::Credentials(format!(
                "'{}' is neither an app id (digits) nor a client id (Iv…)",
                s.chars().take(64).collect::<String>()
            )))
        }
    }

    fn claim(&self) -> serde_json::Value {
        match self {
            Issuer::AppId(n) => serde_json::json!(n),
            Issuer::ClientId(c) => serde_json::json!(c),
        }
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issuer::AppId(n) => write!(f, "app id {n}"),
            Issuer::ClientId(c) => write!(f, "client id {c}"),
        }
    }
}

/// Parses an installation id (a positive number).
pub(crate) fn parse_installation_id(s: &str) -> std::result::Result<u64, AppError> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(AppError::Credentials(format!(
            "the installation id '{}' is not a positive number",
            s.chars().take(64).collect::<String>()
        ))),
    }
}

/// A GitHub App's credentials for one installation.
#[derive(Clone)]
pub struct AppCredentials {
    /// The JWT's `iss`.
    pub issuer: Issuer,
    /// The installation tokens are minted for.
    pub installation_id: u64,
    private_key_pem: Secret,
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("issuer", &self.issuer)
            .field("installation_id", &self.installation_id)
            .field("private_key_pem", &self.private_key_pem)
            .finish()
    }
}

/// The bundle as read (numbers may be written as strings).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleIn {
    #[serde(default)]
    app_id: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    installation_id: Option<serde_json::Value>,
    #[serde(default)]
    private_key_pem: Option<Zeroizing<String>>,
}

fn number_or_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl AppCredentials {
    /// Checks and assembles credentials; the private key must parse ([`AppError::PrivateKey`]).
    pub fn new(
        issuer: Issuer,
        installation_id: u64,
        private_key_pem: Secret,
    ) -> std::result::Result<Self, AppError> {
        private_key(private_key_pem.expose())?;
        Ok(AppCredentials {
            issuer,
            installation_id,
            private_key_pem,
        })
    }

    /// The JSON bundle stored as the key's secret.
    pub fn to_bundle(&self) -> Secret {
        let mut v = serde_json::Map::new();
        match &self.issuer {
            Issuer::AppId(n) => v.insert("appId".into(), serde_json::json!(n)),
            Issuer::ClientId(c) => v.insert("clientId".into(), serde_json::json!(c)),
        };
        v.insert(
            "installationId".into(),
            serde_json::json!(self.installation_id),
        );
        v.insert(
            "privateKeyPem".into(),
            serde_json::Value::String(self.private_key_pem.expose().to_string()),
        );
        let text = serde_json::Value::Object(v).to_string();
        Secret::new(text)
    }

    /// Whether `value` is meant as a bundle: a JSON object with a `privateKeyPem` field.
    pub(crate) fn is_bundle(value: &str) -> bool {
        let t = value.trim_start();
        t.starts_with('{')
            && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value)
                .is_ok_and(|m| m.contains_key("privateKeyPem"))
    }

    /// Reads a bundle (see the module docs); the private key must parse.
    pub fn from_bundle(value: &str) -> std::result::Result<Self, AppError> {
        let b: BundleIn = serde_json::from_str(value).map_err(|e| {
            AppError::Credentials(format!(
                "the stored value is not GitHub App credentials (a JSON object with appId or clientId, installationId, privateKeyPem): line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        let issuer = match (&b.app_id, &b.client_id) {
            (Some(id), None) => Issuer::parse(&number_or_string(id).ok_or_else(|| {
                AppError::Credentials("appId is neither a number nor a string".into())
            })?)?,
            (None, Some(c)) => Issuer::parse(c)?,
            (Some(_), Some(_)) => {
                return Err(AppError::Credentials(
                    "it has both appId and clientId; keep one".into(),
                ))
            }
            (None, None) => {
                return Err(AppError::Credentials(
                    "it has neither appId nor clientId".into(),
                ))
            }
        };
        let installation = b
            .installation_id
            .as_ref()
            .and_then(number_or_string)
            .ok_or_else(|| AppError::Credentials("it has no installationId".into()))?;
        let installation_id = parse_installation_id(&installation)?;
        let pem = b
            .private_key_pem
            .ok_or_else(|| AppError::Credentials("it has no privateKeyPem".into()))?;
        AppCredentials::new(issuer, installation_id, Secret::new(pem.to_string()))
    }

    /// The app's JWT at unix time `now`: `iat` = now − 60 s, `exp` = `iat` + 10 min.
    pub(crate) fn jwt(&self, now: i64) -> std::result::Result<Secret, AppError> {
        let key = private_key(self.private_key_pem.expose())?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let iat = now - JWT_BACKDATE_SECS;
        let claims = serde_json::json!({
            "iat": iat,
            "exp": iat + JWT_LIFETIME_SECS,
            "iss": self.issuer.claim(),
        });
        let input = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            b64.encode(claims.to_string())
        );
        let signature = SigningKey::<Sha256>::new(key)
            .try_sign_with_rng(&mut rsa::rand_core::OsRng, input.as_bytes())
            .map_err(|e| AppError::PrivateKey(format!("signing failed ({e})")))?;
        Ok(Secret::new(format!(
            "{input}.{}",
            b64.encode(signature.to_bytes())
        )))
    }

    /// Mints an installation token from the API at `api` (see [`super::api_url`]).
    pub(crate) fn mint(&self, api: &str) -> std::result::Result<InstallationToken, AppError> {
        let now = jiff::Timestamp::now().as_second();
        let jwt = self.jwt(now)?;
        let url = format!(
            "{api}/app/installations/{}/access_tokens",
            self.installation_id
        );
        let auth = Zeroizing::new(format!("Bearer {}", jwt.expose()));
        let reply = http::send(
            "POST",
            &url,
            &[
                ("Authorization", auth.as_str()),
                ("Accept", "application/vnd.github+json"),
                ("X-GitHub-Api-Version", "2022-11-28"),
                ("User-Agent", "keyrack"),
            ],
            None,
        )
        .map_err(|e| self.transport_error(e))?;
        #[derive(Deserialize)]
        struct TokenReply {
            token: Zeroizing<String>,
            expires_at: String,
        }
        let parsed: TokenReply = reply.json(&url).map_err(|e| self.transport_error(e))?;
        let malformed = |reason: String| AppError::Malformed {
            url: url.clone(),
            reason,
        };
        let token = parsed.token.as_str();
        if token.is_empty()
            || token.len() > 4096
            || token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(malformed("the token is empty or not a token".into()));
        }
        let expires_at: jiff::Timestamp = parsed.expires_at.parse().map_err(|_| {
            malformed(format!(
                "expires_at '{}' is not a time",
                parsed.expires_at.chars().take(40).collect::<String>()
            ))
        })?;
        if expires_at.as_second() <= now {
            return Err(malformed("the token it issued has already expired".into()));
        }
        Ok(InstallationToken {
            token: Secret::new(token.to_string()),
            expires_at,
        })
    }

    fn transport_error(&self, e: AwsError) -> AppError {
        match e {
            AwsError::Service {
                status: 401,
                message,
                ..
            } => AppError::Unauthorized {
                issuer: self.issuer.to_string(),
                message,
            },
            AwsError::Service {
                status: 404,
                message,
                ..
            } => AppError::NotFound {
                issuer: self.issuer.to_string(),
                installation_id: self.installation_id,
                message,
            },
            AwsError::Service {
                status, message, ..
            } => AppError::Service { status, message },
            AwsError::Malformed { url, reason } => AppError::Malformed { url, reason },
            AwsError::Unreachable { url, reason } => AppError::Network {
                message: format!("cannot reach {url} ({reason})"),
                hint: None,
            },
            other => {
                let e = other.into_error("GitHub API");
                AppError::Network {
                    message: e.to_string(),
                    hint: e.fix(),
                }
            }
        }
    }
}

/// A minted installation token.
#[derive(Debug, Clone)]
pub(crate) struct InstallationToken {
    /// The token (`ghs_…`).
    pub token: Secret,
    /// When GitHub stops accepting it.
    pub expires_at: jiff::Timestamp,
}

/// Why GitHub App credentials could not be turned into a token. [`AppError::into_error`] adds
/// the fix, which depends on where the credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// The credentials are incomplete or malformed.
    Credentials(String),
    /// The private key cannot be used.
    PrivateKey(String),
    /// `GITHUB_API_URL` cannot be used; nothing was sent.
    ApiUrl {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// GitHub refused the JWT (401): wrong app id, a key of another app, a revoked key.
    Unauthorized {
        /// The issuer, as shown.
        issuer: String,
        /// GitHub's message.
        message: String,
    },
    /// The installation does not exist for this app (404).
    NotFound {
        /// The issuer, as shown.
        issuer: String,
        /// The installation id.
        installation_id: u64,
        /// GitHub's message.
        message: String,
    },
    /// Any other refusal or fault (403, 422, 5xx).
    Service {
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The API could not be reached.
    Network {
        /// What happened.
        message: String,
        /// The transport's fix, if it has a specific one.
        hint: Option<String>,
    },
    /// The answer was not what the API documents.
    Malformed {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Credentials(m) => write!(f, "GitHub App credentials: {m}"),
            AppError::PrivateKey(m) => write!(f, "GitHub App private key: {m}"),
            AppError::ApiUrl { value, reason } => write!(
                f,
                "{} '{value}' cannot be used: {reason}; nothing was sent",
                super::API_URL_VAR
            ),
            AppError::Unauthorized { issuer, message } => write!(
                f,
                "GitHub refused the app's JWT (401, {issuer}): {message}"
            ),
            AppError::NotFound {
                issuer,
                installation_id,
                message,
            } => write!(
                f,
                "GitHub found no installation {installation_id} of the app ({issuer}) (404): {message}"
            ),
            AppError::Service { status, message } => {
                write!(f, "GitHub answered {status}: {message}")
            }
            AppError::Network { message, .. } => write!(f, "{message}"),
            AppError::Malformed { url, reason } => {
                write!(f, "unexpected answer from {url}: {reason}")
            }
        }
    }
}

impl AppError {
    /// As a keyrack error: `store_fix` says how to store corrected credentials (a `keyrack set`
    /// command, or which CI secret to update).
    pub(crate) fn into_error(self, store_fix: &str) -> Error {
        let hint = match &self {
            AppError::Credentials(_) => store_fix.to_string(),
            AppError::PrivateKey(_) => format!(
                "use the private key GitHub generated for the app (the app's settings → Private keys → Generate a private key, a .pem file), then {store_fix}"
            ),
            AppError::ApiUrl { .. } => format!(
                "unset {0} for github.com, or set it to your GitHub Enterprise Server API (https://HOST/api/v3)",
                super::API_URL_VAR
            ),
            AppError::Unauthorized { .. } => format!(
                "check the app id (or client id), that the private key belongs to that app and was not deleted, and that this machine's clock is right; then {store_fix}"
            ),
            AppError::NotFound { .. } => format!(
                "check the installation id (the number at the end of the installation's settings URL, …/settings/installations/<id>) and that the app is still installed; then {store_fix}"
            ),
            AppError::Service { status, .. } if *status >= 500 => {
                "GitHub had a fault; retry in a moment".to_string()
            }
            AppError::Service { .. } => format!(
                "check that the installation is not suspended and that the app may create tokens for it; then {store_fix}"
            ),
            AppError::Network { hint: Some(h), .. } => h.clone(),
            AppError::Network { hint: None, .. } => format!(
                "check the network (and {} if set), then retry",
                super::API_URL_VAR
            ),
            AppError::Malformed { .. } => format!(
                "check that {} points at the GitHub REST API, then retry",
                super::API_URL_VAR
            ),
        };
        Error::GitHub {
            message: format!("minting a GitHub App installation token: {self}"),
            hint,
        }
    }
}

/// The private key in `pem`: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub issues) or PKCS#8
/// (`BEGIN PRIVATE KEY`), RSA, at least 2048 bits.
fn private_key(pem: &str) -> std::result::Result<RsaPrivateKey, AppError> {
    let bad = |m: &str| AppError::PrivateKey(m.to_string());
    let mut text = Zeroizing::new(pem.trim().replace("\r\n", "\n"));
    if !text.contains('\n') && text.contains("\\n") {
        // pasted with its newlines escaped (a common accident with CI secrets)
        *text = text.replace("\\n", "\n");
    }
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let Some(label) = first
        .strip_prefix("-----BEGIN ")
        .and_then(|r| r.strip_suffix("-----"))
    else {
        return Err(bad(
            "it is not a PEM file (it should start with -----BEGIN RSA PRIVATE KEY-----)",
        ));
    };
    match label {
        "RSA PRIVATE KEY" | "PRIVATE KEY" => {}
        "ENCRYPTED PRIVATE KEY" => {
            return Err(bad(
                "it is encrypted with a passphrase; GitHub's app keys are not (decrypt it: openssl pkey -in key.pem -out plain.pem)",
            ))
        }
        "OPENSSH PRIVATE KEY" => {
            return Err(bad(
                "it is an OpenSSH key, not the app's private key (.pem from the app's settings)",
            ))
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            return Err(bad("it is a public key; the app's private key is needed"))
        }
        other => {
            return Err(AppError::PrivateKey(format!(
                "it is a PEM '{}', not an RSA private key",
                other.chars().take(40).collect::<String>()
            )))
        }
    }
    let end = format!("-----END {label}-----");
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err(bad(
                "it is encrypted with a passphrase (Proc-Type header); GitHub's app keys are not",
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(AppError::PrivateKey(format!(
            "it is cut short: no {end} line"
        )));
    }
    let der = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| bad("its body is not base64 (the file is damaged)"))?,
    );
    let key = if label == "RSA PRIVATE KEY" {
        RsaPrivateKey::from_pkcs1_der(&der)
            .map_err(|e| AppError::PrivateKey(format!("not a valid PKCS#1 RSA key ({e})")))?
    } else {
        RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
            AppError::PrivateKey(format!("not a valid PKCS#8 RSA private key ({e})"))
        })?
    };
    let bits = key.n().bits();
    if bits < MIN_KEY_BITS {
        return Err(AppError::PrivateKey(format!(
            "it is a {bits}-bit RSA key; GitHub App keys have at least {MIN_KEY_BITS} bits"
        )));
    }
    Ok(key)
}

/// The fix that stores corrected credentials for `entry`'s key.
fn set_fix(entry: &HostEntry) -> String {
    format!(
        "set it again: keyrack set {} --mech github.app --app-id <id> --installation-id <id> --private-key <file.pem>",
        crate::ops::key_flags(
            entry.slug.key(),
            &entry.env,
            &entry.org,
            &crate::slug::Owner::default()
        )
    )
}

/// The `github.app` mech at `unlock`: the grant read from the vault holds the credentials
/// bundle; the grant handed out holds an installation token minted from it, and expires with it.
pub(crate) fn mint_grant(entry: &HostEntry, stored: Grant) -> Result<Grant> {
    let fix = set_fix(entry);
    let creds =
        AppCredentials::from_bundle(stored.secret.expose()).map_err(|e| e.into_error(&fix))?;
    let api = super::api_url().map_err(|e| e.into_error(&fix))?;
    let minted = creds.mint(&api).map_err(|e| e.into_error(&fix))?;
    let token_expiry = minted.expires_at;
    Ok(Grant {
        secret: minted.token,
        expires_at: Some(
            stored
                .expires_at
                .map_or(token_expiry, |own| own.min(token_expiry)),
        ),
        ..stored
    })
}

/// Flags of `set --mech github.app` (each asked for on a terminal when missing).
#[derive(Debug, Clone, Default)]
pub struct AppFlags {
    /// `--app-id`: the app id, or the client id.
    pub app_id: Option<String>,
    /// `--installation-id`.
    pub installation_id: Option<String>,
    /// `--private-key`: the PEM file (read from the file, never from the command line).
    pub private_key: Option<PathBuf>,
}

impl AppFlags {
    /// Whether no flag was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.app_id.is_none() && self.installation_id.is_none() && self.private_key.is_none()
    }
}

/// Acquires the credentials of `set --mech github.app` for `key`: flags first, then questions
/// to `interact` when `source` is a terminal. Returns the bundle to store. The private key is
/// read from its file and checked before anything is stored.
pub(crate) fn acquire(
    key: &str,
    flags: &AppFlags,
    source: SecretSource,
    interact: &dyn Interact,
) -> Result<Secret> {
    let usage = format!(
        "keyrack set --key {key} --mech github.app --app-id <id> --installation-id <id> --private-key <file.pem>"
    );
    let ask = |flag: &'static str, question: Question<'_>| -> Result<String> {
        let no_terminal = || Error::NeedsTty {
            what: format!("{flag} (github.app)"),
            hint: format!("pass every flag: {usage}"),
        };
        if source != SecretSource::Prompt {
            return Err(no_terminal());
        }
        match interact.text(&question) {
            Ok(answer) => Ok(answer.trim().to_string()),
            Err(Unanswered::NoTerminal) => Err(no_terminal()),
            Err(Unanswered::Cancelled) => Err(Error::Cancelled { what: flag.into() }),
            Err(Unanswered::Failed(why)) => Err(Error::SecretInput {
                reason: format!("{flag} was not answered ({why})"),
                hint: format!("run it again, or pass every flag: {usage}"),
            }),
        }
    };
    let issuer_text = match &flags.app_id {
        Some(v) => v.clone(),
        None => ask(
            "--app-id",
            Question {
                prompt: "GitHub App id (or client id):",
                default: None,
                placeholder: Some("the App ID or Client ID on the app's settings page"),
                check: Some(|s| Issuer::parse(s).map(|_| ()).map_err(|e| e.to_string())),
            },
        )?,
    };
    let invalid = |what: &'static str, value: &str, e: AppError| Error::InvalidInput {
        what,
        value: value.chars().take(64).collect(),
        reason: e.to_string(),
        hint: Some(format!("usage: {usage}")),
    };
    let issuer = Issuer::parse(&issuer_text).map_err(|e| invalid("--app-id", &issuer_text, e))?;
    let installation_text = match &flags.installation_id {
        Some(v) => v.clone(),
        None => ask(
            "--installation-id",
            Question {
                prompt: "installation id:",
                default: None,
                placeholder: Some("the number ending the installation's settings URL"),
                check: Some(|s| {
                    parse_installation_id(s)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            },
        )?,
    };
    let installation_id = parse_installation_id(&installation_text)
        .map_err(|e| invalid("--installation-id", &installation_text, e))?;
    let path = match &flags.private_key {
        Some(p) => p.clone(),
        None => PathBuf::from(ask(
            "--private-key",
            Question {
                prompt: "path to the app's private key (.pem):",
                default: None,
                placeholder: Some("the file GitHub downloaded; it is read, never shown"),
                check: Some(|s| {
                    if Path::new(s).is_file() {
                        Ok(())
                    } else {
                        Err("no such file".into())
                    }
                }),
            },
        )?),
    };
    let pem = read_pem(&path)?;
    AppCredentials::new(issuer, installation_id, pem)
        .map(|c| c.to_bundle())
        .map_err(|e| Error::InvalidInput {
            what: "--private-key",
            value: path.display().to_string(),
            reason: e.to_string(),
            hint: Some(
                "pass the .pem file GitHub generated for the app (the app's settings → Private keys)"
                    .into(),
            ),
        })
}

/// Reads a private key file: a regular file of at most 64 KiB of UTF-8 text.
fn read_pem(path: &Path) -> Result<Secret> {
    let refuse = |reason: String| Error::InvalidInput {
        what: "--private-key",
        value: path.display().to_string(),
        reason,
        hint: Some("pass the .pem file GitHub generated for the app".into()),
    };
    let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(refuse(format!(
            "it is {} bytes; a private key is a few KiB",
            meta.len()
        )));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("read", path, e))?);
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Secret::new(s.to_string())),
        Err(_) => Err(refuse("it is not a PEM text file".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_and_installation_ids() {
        assert_eq!(Issuer::parse("123").unwrap(), Issuer::AppId(123));
        assert_eq!(
            Issuer::parse("Iv23liABC.x_y-z").unwrap(),
            Issuer::ClientId("Iv23liABC.x_y-z".into())
        );
        for bad in [
            "",
            "0",
            "abc def",
            "x",
            "Iv1/../../etc",
            "99999999999999999999999",
        ] {
            assert!(Issuer::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_installation_id("42").unwrap(), 42);
        for bad in ["", "0", "-1", "+4", "4a", "1/2"] {
            assert!(parse_installation_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bundles_name_what_is_wrong_and_never_quote_the_key() {
        let secret_looking =
            "-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETBODY\n-----END RSA PRIVATE KEY-----";
        let cases = [
            ("not json", "not GitHub App credentials"),
            (
                r#"{"installationId":1,"privateKeyPem":"x"}"#,
                "neither appId nor clientId",
            ),
            (
                r#"{"appId":1,"clientId":"Iv1.abcd","installationId":1,"privateKeyPem":"x"}"#,
                "both",
            ),
            (r#"{"appId":1,"privateKeyPem":"x"}"#, "no installationId"),
            (r#"{"appId":1,"installationId":1}"#, "no privateKeyPem"),
            (
                r#"{"appId":[1],"installationId":1,"privateKeyPem":"x"}"#,
                "appId",
            ),
            (
                r#"{"appId":1,"installationId":1,"privateKeyPem":"x"}"#,
                "not a PEM file",
            ),
        ];
        for (bundle, says) in cases {
            let e = AppCredentials::from_bundle(bundle).unwrap_err().to_string();
            assert!(e.contains(says), "{bundle}: {e}");
        }
        let with_key =
            serde_json::json!({"appId": 1, "installationId": 2, "privateKeyPem": secret_looking})
                .to_string();
        let e = AppCredentials::from_bundle(&with_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("base64") || e.contains("PKCS#1"), "{e}");
        assert!(!e.contains("TOPSECRETBODY"), "{e}");
        assert!(AppCredentials::is_bundle(&with_key));
        assert!(!AppCredentials::is_bundle("ghs_x"));
        assert!(!AppCredentials::is_bundle(r#"{"appId":1}"#));
    }

    #[test]
    fn pem_labels_are_named() {
        for (pem, says) in [
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----", "OpenSSH"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----", "passphrase"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "public key"),
            ("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----", "passphrase"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n", "cut short"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "CERTIFICATE"),
            ("-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----", "base64"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "PKCS#1"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "PKCS#8"),
        ] {
            let e = private_key(pem).unwrap_err().to_string();
            assert!(e.contains(says), "{pem}: {e}");
        }
    }
}
