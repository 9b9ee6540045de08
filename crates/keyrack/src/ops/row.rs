//! One row per key: the same shape for every command that reports keys (`get`, `source`,
//! `unlock`, `relock`, `status`, `list`), so a script reads them all the same way and the CLI has
//! one renderer for them.
//!
//! In JSON (`--json`) a row always has `slug, key, env, org, vault, status, expiresAt, reason,
//! fix` (`null` where a field does not apply), plus optional fields where they do: `source`,
//! `grantedBy`, `waived`, `value` (only where the command hands values out), `profile` (the AWS
//! profile of an aws.config key, `status` and `list`), `limit` (`{what, at, why}`: the horizon of
//! what keeps a grant alive beyond its own expiry, e.g. an SSO session, `status`), `ended`
//! (`{at, why}`: how a locked key's last grant ended, `get`), and the host entry's `mech, exid,
//! maxDuration, createdAt, updatedAt, meta` (`list`). Times are RFC 3339.

use serde::{Serialize, Serializer};

use crate::error::Error;
use crate::grant::{EndReason, Ended};
use crate::host_manifest::HostEntry;
use crate::mech::Mech;
use crate::secret::Secret;
use crate::slug::Slug;
use crate::vault::VaultKind;

/// What one key's row says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Usable now (held by the daemon, or from the process environment on the CI path).
    Granted,
    /// Set on this host, not unlocked (or relocked just now).
    Locked,
    /// Not set here, or not allowlisted by the repo manifest.
    Absent,
    /// The value was rejected by the firewall (a long-lived token).
    Blocked,
    /// Set on this host, but its vault no longer has the secret.
    Lost,
    /// The vault failed, or its value was refused (too large, a NUL byte, not bound to the key).
    Errored,
}

impl Status {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Granted => "granted",
            Status::Locked => "locked",
            Status::Absent => "absent",
            Status::Blocked => "blocked",
            Status::Lost => "lost",
            Status::Errored => "errored",
        }
    }
}

/// Where a granted (or blocked) value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The session daemon: unlocked from this host's vault.
    Daemon,
    /// The process environment that runs keyrack (only for keys this host does not hold).
    Env,
}

/// What the host manifest records about a key (the rows of `list`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryDetail {
    /// How the key is acquired.
    pub mech: Mech,
    /// The vault's external id (profile name, URI), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exid: Option<String>,
    /// The longest a grant of this key may live (`1h30m` in JSON).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "crate::grant::time::duration_text"
    )]
    pub max_duration: Option<std::time::Duration>,
    /// When it was first set (RFC 3339).
    #[serde(with = "crate::grant::time::rfc3339")]
    pub created_at: jiff::Timestamp,
    /// When it was last set (RFC 3339).
    #[serde(with = "crate::grant::time::rfc3339")]
    pub updated_at: jiff::Timestamp,
    /// Vault metadata (never secrets), as the host manifest writes it.
    #[serde(skip_serializing_if = "crate::host_manifest::Meta::is_empty")]
    pub meta: crate::host_manifest::Meta,
}

/// One key's row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRow {
    /// The slug asked for (a grant may have come from `org.all.KEY`: see `granted_by`).
    pub slug: String,
    /// The key.
    pub key: String,
    /// The env.
    pub env: String,
    /// The org (`@all` for machine-wide keys).
    pub org: String,
    /// The vault holding it, when known.
    pub vault: Option<VaultKind>,
    /// The outcome.
    pub status: Status,
    /// When the grant ends.
    #[serde(serialize_with = "serialize_time")]
    pub expires_at: Option<jiff::Timestamp>,
    /// Why it is not granted.
    pub reason: Option<String>,
    /// The command that fixes it (for this one key).
    pub fix: Option<String>,
    /// Whether the value came from the daemon or the process environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The slug that actually granted it, if different (the `org.all` fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// Whether the repo manifest waives it (`is-optional-if-has` and that var is set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub waived: bool,
    /// For a locked key: how and when its last grant ended, when the daemon remembers (`{at,
    /// why: {kind: expired|ended|relocked, reason?}}`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_ended"
    )]
    pub ended: Option<Ended>,
    /// The AWS profile of an aws.config key (`status`, `list`): the name to use as
    /// `AWS_PROFILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The horizon of what keeps the grant alive beyond its own expiry, as its vault labelled
    /// it ([`crate::grant::limit`]; `status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// The host entry (`list`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryDetail>,
    /// The value, when granted (never serialised with the row: the caller adds it where the
    /// command hands values out).
    #[serde(skip)]
    pub secret: Option<Secret>,
    /// The fix that covers every key of the same kind of problem at once (e.g. `keyrack unlock
    /// --env test` for several locked keys of test), shown once instead of one fix per key.
    #[serde(skip)]
    pub shared_fix: Option<String>,
}

impl KeyRow {
    /// A row for `slug` with `status` and nothing else known yet.
    pub(crate) fn new(slug: &Slug, status: Status) -> Self {
        Self::named(
            slug.as_str().into(),
            slug.org(),
            slug.env(),
            slug.key(),
            status,
        )
    }

    /// A row from its parts (for a key whose slug cannot be formed, e.g. an unknown env `?`).
    pub(crate) fn named(slug: String, org: &str, env: &str, key: &str, status: Status) -> Self {
        KeyRow {
            slug,
            key: key.into(),
            env: env.into(),
            org: org.into(),
            vault: None,
            status,
            expires_at: None,
            reason: None,
            fix: None,
            source: None,
            granted_by: None,
            waived: false,
            ended: None,
            profile: None,
            limit: None,
            entry: None,
            secret: None,
            shared_fix: None,
        }
    }

    /// The row of a configured host entry (`list`).
    pub(crate) fn of_entry(e: &HostEntry, status: Status) -> Self {
        let mut row = KeyRow::named(e.slug.to_string(), &e.org, &e.env, e.slug.key(), status);
        row.vault = Some(e.vault);
        if e.vault == VaultKind::AwsConfig {
            row.profile = e.exid.clone();
        }
        row.entry = Some(EntryDetail {
            mech: e.mech,
            exid: e.exid.clone(),
            max_duration: e.max_duration,
            created_at: e.created_at,
            updated_at: e.updated_at,
            meta: e.meta.clone(),
        });
        row
    }

    /// Whether the row needs nothing: granted, or waived by `is-optional-if-has`.
    pub fn satisfied(&self) -> bool {
        self.status == Status::Granted || self.waived
    }

    /// Sets `expires_at`.
    pub(crate) fn expires(mut self, t: Option<jiff::Timestamp>) -> Self {
        self.expires_at = t;
        self
    }
}

/// The horizon of what keeps a grant alive beyond its own expiry (from its `limit.*` labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// What it is of (`sso session`).
    pub what: String,
    /// When, at the latest.
    #[serde(serialize_with = "serialize_at")]
    pub at: jiff::Timestamp,
    /// Why then, and what may end it sooner.
    pub why: Option<String>,
}

impl Limit {
    /// The limit a grant's labels describe, if they describe one.
    pub fn from_labels(labels: &crate::grant::Labels) -> Option<Limit> {
        use crate::grant::limit;
        Some(Limit {
            what: labels.get(limit::WHAT)?.clone(),
            at: labels.get(limit::AT)?.parse().ok()?,
            why: labels.get(limit::WHY).cloned(),
        })
    }
}

fn serialize_at<S: Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// How a grant ended, for people: `its grant expired at T`, `it was relocked at T`, or its
/// vault's reason with the time after what happened (`the SSO session ended at T: AWS refused
/// to refresh its token (InvalidGrantException)`; a reason without `: ` gets `(at T)`).
pub fn ended_text(e: &Ended) -> String {
    let at = rfc3339(e.at);
    match &e.why {
        EndReason::Expired => format!("its grant expired at {at}"),
        EndReason::Ended { reason } => match reason.split_once(": ") {
            Some((what, details)) => format!("{what} at {at}: {details}"),
            None => format!("{reason} (at {at})"),
        },
        EndReason::Relocked => format!("it was relocked at {at}"),
    }
}

/// The one time format of keyrack's JSON: RFC 3339, UTC, whole seconds (`2026-01-31T09:00:00Z`).
pub fn rfc3339(t: jiff::Timestamp) -> String {
    crate::grant::time::format_rfc3339(t)
}

fn serialize_time<S: Serializer>(t: &Option<jiff::Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

fn serialize_ended<S: Serializer>(e: &Option<Ended>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => serde_json::json!({ "at": rfc3339(e.at), "why": e.why }).serialize(s),
        None => s.serialize_none(),
    }
}

/// `Ok` when every row is satisfied; else [`Error::NotGranted`] (exit code 2), with the fix
/// when one command fixes all of them.
pub fn require_satisfied(rows: &[KeyRow]) -> Result<(), Error> {
    let problems: Vec<&KeyRow> = rows.iter().filter(|r| !r.satisfied()).collect();
    if problems.is_empty() {
        return Ok(());
    }
    let groups = fix_groups(rows);
    let fix = match groups.as_slice() {
        [(fix, _)] => Some(fix.clone()),
        _ => None,
    };
    Err(Error::NotGranted {
        missing: problems.len(),
        total: rows.len(),
        fix,
    })
}

/// The fixes of the rows that need one, each once, in first-seen order, with the indexes of the
/// rows it covers. Several rows whose problem has one shared fix (e.g. three locked keys of
/// `test`: `keyrack unlock --env test`) give that fix once; a row alone keeps its own, exact fix.
pub fn fix_groups(rows: &[KeyRow]) -> Vec<(String, Vec<usize>)> {
    let mut by_shared: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if r.satisfied() {
            continue;
        }
        let Some(group) = r.shared_fix.clone().or_else(|| r.fix.clone()) else {
            continue;
        };
        match by_shared.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(i),
            None => by_shared.push((group, vec![i])),
        }
    }
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (group, members) in by_shared {
        let fix = match members.as_slice() {
            [one] => rows[*one].fix.clone().unwrap_or(group),
            _ => group,
        };
        match out.iter_mut().find(|(f, _)| *f == fix) {
            Some((_, m)) => m.extend(members),
            None => out.push((fix, members)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(key: &str) -> KeyRow {
        let slug = Slug::new("acme", "test", key).unwrap();
        let mut r = KeyRow::new(&slug, Status::Locked);
        r.fix = Some(format!("keyrack unlock --key {key} --env test"));
        r.shared_fix = Some("keyrack unlock --env test".into());
        r
    }

    #[test]
    fn one_fix_for_many_keys_and_the_exact_fix_for_one() {
        let rows = vec![locked("A"), locked("B"), locked("C")];
        assert_eq!(
            fix_groups(&rows),
            vec![("keyrack unlock --env test".to_string(), vec![0, 1, 2])]
        );
        let one = vec![locked("A")];
        assert_eq!(
            fix_groups(&one),
            vec![("keyrack unlock --key A --env test".to_string(), vec![0])]
        );
        match require_satisfied(&rows) {
            Err(e @ Error::NotGranted { .. }) => {
                assert_eq!(e.exit_code(), 2);
                assert_eq!(e.fix().as_deref(), Some("keyrack unlock --env test"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_serialise_with_every_documented_field() {
        let mut r = locked("A").expires(jiff::Timestamp::from_millisecond(1_700_000_000_000).ok());
        r.vault = Some(VaultKind::OsSecure);
        let v = serde_json::to_value(&r).unwrap();
        for f in [
            "slug",
            "key",
            "env",
            "org",
            "vault",
            "status",
            "expiresAt",
            "reason",
            "fix",
        ] {
            assert!(v.get(f).is_some(), "{f} in {v}");
        }
        assert_eq!(v["expiresAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["reason"], serde_json::Value::Null);
        assert!(v.get("sharedFix").is_none() && v.get("secret").is_none());
    }
}
