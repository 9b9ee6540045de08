//! The daemon wire protocol: the client writes one JSON [`Request`] terminated by `\n`; the
//! daemon answers one JSON [`Response`] line and closes. Requests larger than
//! [`super::MAX_REQUEST_BYTES`] or not valid JSON get [`Response::Error`].
//!
//! The vocabulary is the grant's ([`crate::grant`]) and nothing else: the daemon knows no vault.
//! Times are unix milliseconds.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::MAX_REQUEST_BYTES;
use crate::grant::{time, Ended, Grant, Labels, Mech, VaultKind};
use crate::secret::Secret;
use crate::slug::Slug;

/// A request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Store grants (each carries its absolute `expiresAt`), replacing any of the same slug.
    Unlock {
        /// The grants.
        grants: Vec<Grant>,
    },
    /// Look slugs up; each falls back to `org.all.KEY`.
    Get {
        /// The slugs asked for.
        slugs: Vec<Slug>,
    },
    /// The grants that carry a label.
    GetByLabel {
        /// The label's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Replace the vault payload (and renewal deadline) of a held grant — only if it still
    /// holds the payload the update was made from, when that is given (a renewal meanwhile
    /// must not be undone).
    Update {
        /// The grant's slug.
        slug: Slug,
        /// The new payload.
        payload: Secret,
        /// The payload the update was made from (none: replace whatever is held).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<Secret>,
        /// The new renewal deadline (none: no renewal).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::millis_opt"
        )]
        renew_at: Option<Timestamp>,
    },
    /// What is held, without secrets.
    Status,
    /// Forget grants.
    Relock {
        /// Which ones.
        scope: RelockScope,
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
    /// Every grant that carries a label.
    Label {
        /// The label's name.
        name: String,
        /// Its value.
        value: String,
    },
}

/// One held grant, as reported by STATUS (no secret, no payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeldGrant {
    /// The slug.
    pub slug: Slug,
    /// Its env.
    pub env: String,
    /// The vault it came from.
    pub vault: VaultKind,
    /// How it was acquired.
    pub mech: Mech,
    /// When it expires.
    #[serde(with = "time::millis")]
    pub expires_at: Timestamp,
    /// When its vault renews it next, if it does.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::millis_opt"
    )]
    pub renew_at: Option<Timestamp>,
    /// Its labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// The files released when it (and every other grant carrying them) ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<PathBuf>,
}

/// The daemon's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Response {
    /// UNLOCK stored (UPDATE changed) this many grants.
    Stored {
        /// How many.
        count: usize,
    },
    /// GET results, one per requested slug, in order.
    Grants {
        /// `null` where nothing is granted.
        grants: Vec<Option<Grant>>,
        /// For requested slugs not granted: the grants of theirs that ended lately, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ended: Vec<Ended>,
    },
    /// GET_BY_LABEL: the grants that carry the label.
    Labelled {
        /// The grants, by slug.
        grants: Vec<Grant>,
    },
    /// STATUS.
    Status {
        /// The daemon's pid.
        pid: u32,
        /// When it started.
        #[serde(with = "time::millis")]
        started_at: Timestamp,
        /// Grants held.
        grants: Vec<HeldGrant>,
        /// Grants that ended lately, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ended: Vec<Ended>,
    },
    /// RELOCK: the slugs forgotten.
    Relocked {
        /// The slugs.
        slugs: Vec<Slug>,
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
    /// Parses one answer line, to a GET of `asked` (no slugs for another request). A GET
    /// answer — the hot path — is read by a small reader of the daemon's own compact form (a
    /// grant of a slug asked for takes that slug rather than parsing it again), or else straight
    /// into its fields; any other answer goes through the tagged enum (which buffers the whole
    /// value first, and costs several times more per grant).
    pub(crate) fn from_json_for(line: &[u8], asked: &[Slug]) -> serde_json::Result<Response> {
        if let Some(grants) = super::grants_line::decode(line, asked) {
            return Ok(Response::Grants {
                grants,
                ended: vec![],
            });
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
            #[serde(default)]
            ended: Vec<Ended>,
        }
        match serde_json::from_slice::<GrantsAnswer>(line) {
            Ok(a) => Ok(Response::Grants {
                grants: a.grants,
                ended: a.ended,
            }),
            Err(_) => serde_json::from_slice(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_stable_names() {
        let line = |r: &Request| serde_json::to_string(r).unwrap();
        assert_eq!(
            line(&Request::GetByLabel {
                name: "n".into(),
                value: "v".into()
            }),
            r#"{"op":"get_by_label","name":"n","value":"v"}"#
        );
        assert_eq!(
            line(&Request::Relock {
                scope: RelockScope::Label {
                    name: "n".into(),
                    value: "v".into()
                }
            }),
            r#"{"op":"relock","scope":{"kind":"label","name":"n","value":"v"}}"#
        );
        assert_eq!(
            line(&Request::Update {
                slug: Slug::parse("a.test.K").unwrap(),
                payload: Secret::new("{}".into()),
                replaces: None,
                renew_at: Some(Timestamp::from_millisecond(5).unwrap()),
            }),
            r#"{"op":"update","slug":"a.test.K","payload":"{}","renew_at":5}"#
        );
        assert_eq!(
            line(&Request::Update {
                slug: Slug::parse("a.test.K").unwrap(),
                payload: Secret::new("{}".into()),
                replaces: Some(Secret::new("[]".into())),
                renew_at: None,
            }),
            r#"{"op":"update","slug":"a.test.K","payload":"{}","replaces":"[]"}"#
        );
    }
}
