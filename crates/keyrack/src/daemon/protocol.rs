//! The daemon wire protocol: the client writes one JSON [`Request`] terminated by `\n`; the
//! daemon answers one JSON [`Response`] line and closes. Requests larger than
//! [`super::MAX_REQUEST_BYTES`] or not valid JSON get [`Response::Error`].

use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};

use super::MAX_REQUEST_BYTES;
use crate::slug::Slug;
use crate::vault::Grant;

/// A request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Store grants (each carries its absolute `expiresAt`).
    Unlock {
        /// The grants.
        grants: Vec<Grant>,
    },
    /// Look slugs up; each falls back to `org.all.KEY`.
    Get {
        /// The slugs asked for.
        slugs: Vec<Slug>,
    },
    /// What is held, without secrets.
    Status,
    /// Forget grants.
    Relock {
        /// Which ones.
        scope: RelockScope,
    },
    /// The aws.config grant of a profile (for `keyrack aws credentials`).
    AwsProfile {
        /// The profile name.
        profile: String,
    },
    /// Cache renewed role credentials with an aws.config grant.
    AwsStoreCredentials {
        /// The grant's slug.
        slug: Slug,
        /// The credentials.
        credentials: crate::aws::portal::RoleCredentials,
    },
    /// Forget every grant of an SSO session (after `keyrack aws logout`).
    AwsForgetSession {
        /// The token-cache name.
        session: String,
    },
    /// Stop the daemon now.
    Shutdown,
}

/// Why the daemon refused a request line (sent back as [`Response::Error`]).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Reading the connection failed (or timed out).
    #[error("could not read the request: {0}")]
    Read(#[from] std::io::Error),
    /// More than [`MAX_REQUEST_BYTES`] before the end of the line.
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// The stream ended before the `\n`.
    #[error("incomplete request: the stream ended before the end of the line")]
    Incomplete,
    /// The line is not a JSON [`Request`].
    #[error("malformed request: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Reads one request line the way the daemon does: at most [`MAX_REQUEST_BYTES`] + 1 bytes up
/// to the first `\n`, into `buf` (the caller owns it so it can wipe it), then
/// [`decode_request`].
pub fn read_request(reader: impl Read, buf: &mut Vec<u8>) -> Result<Request, RequestError> {
    BufReader::new(reader)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', buf)?;
    decode_request(buf)
}

/// Decodes what [`read_request`] read: one JSON [`Request`] ending in its only `\n`, at most
/// [`MAX_REQUEST_BYTES`] long.
pub fn decode_request(buf: &[u8]) -> Result<Request, RequestError> {
    if buf.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    if buf.last() != Some(&b'\n') {
        return Err(RequestError::Incomplete);
    }
    Ok(serde_json::from_slice::<Request>(buf)?)
}

/// Which grants a [`Request::Relock`] forgets.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RelockScope {
    /// Everything.
    All,
    /// Every grant of one env.
    Env {
        /// The env.
        env: String,
    },
    /// These slugs.
    Slugs {
        /// The slugs.
        slugs: Vec<Slug>,
    },
}

/// One held grant, as reported by STATUS (no secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeldGrant {
    /// The slug.
    pub slug: Slug,
    /// Its env.
    pub env: String,
    /// The vault it came from.
    pub vault: crate::vault::VaultKind,
    /// Expiry, unix milliseconds.
    pub expires_at: u64,
    /// The mirrored SSO token file of an aws.config grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_cache_file: Option<std::path::PathBuf>,
    /// The AWS profile of an aws.config grant (its value: a name, never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_profile: Option<String>,
}

/// The daemon's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    /// Unlock stored this many grants.
    Stored {
        /// How many.
        count: usize,
    },
    /// GET results, one per requested slug, in order.
    Grants {
        /// `null` where nothing is granted.
        grants: Vec<Option<Grant>>,
    },
    /// STATUS.
    Status {
        /// The daemon's pid.
        pid: u32,
        /// Unix milliseconds when it started.
        started_at: u64,
        /// Grants held.
        grants: Vec<HeldGrant>,
    },
    /// RELOCK: the slugs forgotten.
    Relocked {
        /// The slugs.
        slugs: Vec<Slug>,
    },
    /// The aws.config grant of a profile, if held.
    AwsGrant {
        /// The grant.
        grant: Option<Box<Grant>>,
    },
    /// Shutdown acknowledged.
    Bye,
    /// Too many connections or request bytes in flight: try again shortly.
    Busy,
    /// The request was refused or malformed.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl Response {
    /// Parses one answer line. A GET answer — the hot path — is read by a small reader of
    /// the daemon's own compact form, or else straight into its fields; any other answer goes
    /// through the tagged enum (which buffers the whole value first, and costs several times
    /// more per grant).
    pub fn from_json(line: &[u8]) -> serde_json::Result<Response> {
        if let Some(grants) = super::grants_line::decode(line) {
            return Ok(Response::Grants { grants });
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum GrantsTag {
            Grants,
        }
        #[derive(Deserialize)]
        struct GrantsAnswer {
            #[allow(dead_code)] // must be present and say "grants"
            status: GrantsTag,
            grants: Vec<Option<Grant>>,
        }
        match serde_json::from_slice::<GrantsAnswer>(line) {
            Ok(a) => Ok(Response::Grants { grants: a.grants }),
            Err(_) => serde_json::from_slice(line),
        }
    }
}

/// Now in unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
