//! Grants: the vocabulary every part of keyrack shares.
//!
//! A [`Grant`] is an unlocked, usable secret: which key ([`Slug`]), the value, where it came from
//! ([`VaultKind`]), how it was acquired ([`Mech`]) and when it stops being usable. Vaults produce
//! grants, the session daemon holds them, `get` hands them out, the host manifest records which
//! vault and mech each key uses. None of those knows the others' internals: they meet here.
//!
//! What a grant may carry besides its value is generic, so the daemon that holds it needs to know
//! no vault:
//! - [`Grant::release`]: files that must not outlive it (a mirrored token); the daemon removes
//!   each when the last grant carrying it ends;
//! - [`Grant::labels`]: `name → value` pairs to look grants up by (e.g. an AWS profile);
//! - [`Grant::payload`]: an opaque blob of its vault (secret, never interpreted by the daemon);
//! - [`Grant::renew_at`]: when its vault wants to renew it — the daemon then calls the
//!   [`Renewer`] it was started with.
//!
//! A grant that ended leaves a short [`Ended`] record, so `get` and `status` can say why a key is
//! no longer unlocked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub(crate) use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::slug::Slug;

/// The kinds of vault. What each can do is data, in the vault registry (`vault::info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum VaultKind {
    /// One age file per key, encrypted to every recipient.
    #[serde(rename = "os.secure")]
    OsSecure,
    /// Plaintext JSON, mode 0600.
    #[serde(rename = "os.direct")]
    OsDirect,
    /// The session daemon's memory only.
    #[serde(rename = "os.daemon")]
    OsDaemon,
    /// The process environment (read-only; the CI path).
    #[serde(rename = "os.envvar")]
    OsEnvvar,
    /// An AWS SSO profile in `~/.aws/config`, its token kept encrypted (alias `aws.iam.sso`).
    #[serde(rename = "aws.config", alias = "aws.iam.sso")]
    AwsConfig,
    /// AWS SSM Parameter Store `SecureString`s (shared by a team).
    #[serde(rename = "aws.params")]
    AwsParams,
    /// 1Password, through the `op` CLI: a reference to an item, or an item keyrack creates.
    #[serde(rename = "1password")]
    OnePassword,
    /// The OS credential store (Secret Service, macOS Keychain).
    #[serde(rename = "os.keychain")]
    OsKeychain,
}

impl VaultKind {
    /// Every vault this build supports.
    pub const ALL: [VaultKind; 8] = [
        VaultKind::OsSecure,
        VaultKind::OsDirect,
        VaultKind::OsDaemon,
        VaultKind::OsEnvvar,
        VaultKind::AwsConfig,
        VaultKind::AwsParams,
        VaultKind::OnePassword,
        VaultKind::OsKeychain,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultKind::OsSecure => "os.secure",
            VaultKind::OsDirect => "os.direct",
            VaultKind::OsDaemon => "os.daemon",
            VaultKind::OsEnvvar => "os.envvar",
            VaultKind::AwsConfig => "aws.config",
            VaultKind::AwsParams => "aws.params",
            VaultKind::OnePassword => "1password",
            VaultKind::OsKeychain => "os.keychain",
        }
    }
}

impl fmt::Display for VaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VaultKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = if s == "aws.iam.sso" { "aws.config" } else { s };
        VaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                what: "vault",
                value: s.into(),
                reason: "unknown vault".into(),
                hint: Some(format!(
                    "use one of: {}",
                    VaultKind::ALL.map(VaultKind::as_str).join(", ")
                )),
            })
    }
}

/// A mechanism: how a stored source becomes a usable secret, and what `set` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mech {
    /// A static copy of the secret.
    #[serde(rename = "replica")]
    Replica,
    /// A pointer to an item kept elsewhere.
    #[serde(rename = "reference")]
    Reference,
    /// Held in memory only, for the session.
    #[serde(rename = "session")]
    Session,
    /// An AWS SSO profile.
    #[serde(rename = "aws.sso")]
    AwsSso,
    /// GitHub App credentials (app id or client id, installation id, private key), minted at
    /// unlock into an installation token that expires with its grant (the `github` module).
    #[serde(rename = "github.app")]
    GithubApp,
}

impl Mech {
    /// Every mech, for messages.
    pub const ALL: [Mech; 5] = [
        Mech::Replica,
        Mech::Reference,
        Mech::Session,
        Mech::AwsSso,
        Mech::GithubApp,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mech::Replica => "replica",
            Mech::Reference => "reference",
            Mech::Session => "session",
            Mech::AwsSso => "aws.sso",
            Mech::GithubApp => "github.app",
        }
    }
}

impl fmt::Display for Mech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mech {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "replica" | "PERMANENT_VIA_REPLICA" => Mech::Replica,
            "reference" | "PERMANENT_VIA_REFERENCE" => Mech::Reference,
            "session" | "EPHEMERAL_VIA_SESSION" => Mech::Session,
            "aws.sso" | "EPHEMERAL_VIA_AWS_SSO" => Mech::AwsSso,
            "github.app" | "EPHEMERAL_VIA_GITHUB_APP" => Mech::GithubApp,
            _ => {
                return Err(Error::InvalidInput {
                    what: "mech",
                    value: s.into(),
                    reason: "unknown mech".into(),
                    hint: Some(format!(
                        "use one of: {}",
                        Mech::ALL.map(Mech::as_str).join(", ")
                    )),
                })
            }
        })
    }
}

/// Whether a vault owns its secrets or references them elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Custody {
    /// `del` destroys the secret.
    Owns,
    /// `del` forgets the pointer only.
    References,
}

/// Labels to look grants up by: `name → value` (e.g. `aws.profile → acme.test`).
pub(crate) type Labels = BTreeMap<String, String>;

/// Labels any vault may attach to a grant so `status` shows the horizon of what keeps it alive
/// beyond its own expiry (e.g. an SSO session refreshed in the background until its client
/// registration expires). Plain text: the daemon and the CLI name no vault.
pub mod limit {
    /// What the limit is of, for people (`sso session`).
    pub const WHAT: &str = "limit.what";
    /// When, at the latest (RFC 3339).
    pub const AT: &str = "limit.at";
    /// Why it ends then, and what may end it sooner, for people.
    pub const WHY: &str = "limit.why";
}

/// An unlocked, usable secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The true slug (never the fallback that found it).
    pub slug: Slug,
    /// The value.
    pub secret: Secret,
    /// Where it came from.
    pub vault: VaultKind,
    /// How it was acquired.
    pub mech: Mech,
    /// When it stops being usable, if it has a horizon (unix milliseconds on the wire). The
    /// daemon holds only grants that have one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::millis_opt"
    )]
    pub expires_at: Option<Timestamp>,
    /// When its vault wants it renewed (see [`Renewer`]; a deadline after `expires_at` never
    /// comes).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::millis_opt"
    )]
    pub renew_at: Option<Timestamp>,
    /// Files that must not outlive the grant: removed when the last grant carrying them ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<PathBuf>,
    /// Labels to look the grant up by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Its vault's own data (opaque to everyone else, and secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Secret>,
}

impl Grant {
    /// A grant of `secret` with no horizon and nothing else attached.
    pub fn new(slug: Slug, secret: Secret, vault: VaultKind, mech: Mech) -> Self {
        Grant {
            slug,
            secret,
            vault,
            mech,
            expires_at: None,
            renew_at: None,
            release: Vec::new(),
            labels: Labels::new(),
            payload: None,
        }
    }

    /// Whether the grant carries label `name` with `value`.
    pub(crate) fn has_label(&self, name: &str, value: &str) -> bool {
        self.labels.get(name).is_some_and(|v| v == value)
    }

    /// Whether it is no longer usable at `now` (a grant without a horizon never expires).
    pub(crate) fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Why a grant ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndReason {
    /// Its time ran out.
    Expired,
    /// Its vault ended it when asked to renew it (e.g. the SSO session is over).
    Ended {
        /// The vault's reason, for people: `<what happened>: <details>` (`the SSO session
        /// ended: AWS refused to refresh its token`); shown with the time after what happened.
        reason: String,
    },
    /// Someone relocked it (relock, set, del, logout, daemon prune).
    Relocked,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Expired => f.write_str("expired"),
            EndReason::Ended { reason } => write!(f, "ended: {reason}"),
            EndReason::Relocked => f.write_str("relocked"),
        }
    }
}

/// What is left of a grant that ended: which key, when and why (never the secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    /// The grant's slug.
    pub slug: Slug,
    /// Where it had come from.
    pub vault: VaultKind,
    /// When it ended (unix milliseconds on the wire).
    #[serde(with = "time::millis")]
    pub at: Timestamp,
    /// Why.
    pub why: EndReason,
}

/// What renewing a grant gave.
#[derive(Debug)]
pub enum Renewal {
    /// Renewed: its value, payload and deadlines replace the held grant's (its slug, labels and
    /// files stay, and it never lives longer than the held grant).
    Renewed(Grant),
    /// Nothing changed; the daemon asks again a little later.
    Keep,
    /// The grant is over: the daemon drops it and remembers why.
    End(String),
}

/// Renews grants whose [`Grant::renew_at`] has passed. The session daemon is handed one when it
/// starts (it knows no vault: the renewer does) and calls it outside its store lock.
pub trait Renewer: Send + Sync {
    /// Renews one grant.
    fn renew(&self, grant: &Grant) -> Renewal;
}

/// A renewer that renews nothing (a daemon that only holds what it is given).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRenewer;

impl Renewer for NoRenewer {
    fn renew(&self, _grant: &Grant) -> Renewal {
        Renewal::Keep
    }
}

/// The one time type ([`jiff::Timestamp`]) and how it is written: unix milliseconds on the
/// daemon's wire and in `--json` output, RFC 3339 (UTC, whole seconds) in files.
pub mod time {
    use jiff::Timestamp;

    pub(crate) use jiff::fmt::serde::timestamp::millisecond::optional as millis_opt;
    pub(crate) use jiff::fmt::serde::timestamp::millisecond::required as millis;

    /// Now.
    pub fn now() -> Timestamp {
        Timestamp::now()
    }

    /// Now, to the whole second (what files record).
    pub(crate) fn now_seconds() -> Timestamp {
        Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
    }

    /// Parses a duration: jiff's friendly form (`9h`, `30m`, `1h30m`, `1h 30m`, `2d`, `500ms`,
    /// `2hours`, `1.5h`) or ISO 8601 (`PT1H30M`); a day is 24 hours; months, years and zero are
    /// refused.
    pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
        let span: jiff::Span = s
            .trim()
            .parse()
            .map_err(|e| format!("not a duration ({e})"))?;
        let d = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|e| format!("not a fixed duration ({e})"))?;
        match std::time::Duration::try_from(d) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err("must be longer than zero".into()),
        }
    }

    /// Writes a duration the way [`parse_duration`] (and people) read it: `1h30m`, `45s`, `2h`
    /// (whole seconds; hours are not folded into days).
    pub fn format_duration(d: std::time::Duration) -> String {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        let mut out = String::new();
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        out
    }

    /// `2026-01-02T03:04:05Z`.
    pub(crate) fn format_rfc3339(t: Timestamp) -> String {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// An optional duration written as text (`1h30m`, see [`format_duration`]).
    pub(crate) mod duration_text {
        use serde::Serializer;

        /// Writes `d` as `1h30m`.
        pub(crate) fn serialize<S: Serializer>(
            d: &Option<std::time::Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::format_duration(*d)),
                None => s.serialize_none(),
            }
        }
    }

    /// A time written as RFC 3339: `2026-01-02T03:04:05Z` when written, any RFC 3339 form
    /// (offsets, fractional seconds) when read.
    pub(crate) mod rfc3339 {
        use jiff::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `t` as `YYYY-MM-DDTHH:MM:SSZ`.
        pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::format_rfc3339(*t))
        }

        /// Reads any RFC 3339 time.
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
            let s = String::deserialize(d)?;
            s.trim().parse::<Timestamp>().map_err(|e| {
                serde::de::Error::custom(format!("'{s}' is not an RFC 3339 time ({e})"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant::new(
            Slug::parse("acme.test.K").unwrap(),
            Secret::new("v".into()),
            VaultKind::OsSecure,
            Mech::Replica,
        )
    }

    #[test]
    fn the_wire_form_of_a_plain_grant_is_unchanged() {
        let mut g = grant();
        g.expires_at = Some(Timestamp::from_millisecond(1_700_000_000_123).unwrap());
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(
            json,
            r#"{"slug":"acme.test.K","secret":"v","vault":"os.secure","mech":"replica","expiresAt":1700000000123}"#
        );
        assert_eq!(serde_json::from_str::<Grant>(&json).unwrap(), g);
    }

    #[test]
    fn labels_release_files_and_payload_round_trip() {
        let mut g = grant();
        g.labels.insert("x.name".into(), "a".into());
        g.release.push("/tmp/f.json".into());
        g.payload = Some(Secret::new("{\"k\":1}".into()));
        g.renew_at = Some(Timestamp::from_second(1_700_000_000).unwrap());
        let back: Grant = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
        assert!(back.has_label("x.name", "a"));
        assert!(!back.has_label("x.name", "b"));
        assert!(format!("{back:?}").contains("Secret(***)"));
    }

    #[test]
    fn durations_read_what_people_write_and_write_it_back() {
        for (text, secs, back) in [
            ("9h", 32400, "9h"),
            ("30m", 1800, "30m"),
            ("1h30m", 5400, "1h30m"),
            ("1h 30m", 5400, "1h30m"),
            ("90m", 5400, "1h30m"),
            ("1s", 1, "1s"),
            ("2days", 172800, "48h"),
        ] {
            let d = time::parse_duration(text).unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(time::format_duration(d), back);
            assert_eq!(time::parse_duration(back).unwrap(), d);
        }
        assert!(time::parse_duration("0s").is_err());
        assert!(time::parse_duration("soon").is_err());
        assert!(time::parse_duration("1M").is_err());
    }

    #[test]
    fn files_read_any_rfc3339_and_write_whole_seconds() {
        #[derive(Serialize, Deserialize)]
        struct T(#[serde(with = "time::rfc3339")] Timestamp);
        for s in [
            "\"2024-05-01T10:00:00Z\"",
            "\"2024-05-01T12:00:00+02:00\"",
            "\"2024-05-01T10:00:00.25Z\"",
        ] {
            let t: T = serde_json::from_str(s).unwrap();
            assert_eq!(t.0.as_second(), 1_714_557_600);
        }
        let t = T(Timestamp::from_second(1_714_557_600).unwrap());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-05-01T10:00:00Z\""
        );
    }
}
