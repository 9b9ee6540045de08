//! The CI path behind `keyrack firewall`: turn the secrets a CI system passes as one JSON object
//! (GitHub Actions: `${{ toJSON(secrets) }}`) into exactly the keys `keyrack.yml` declares for
//! an env (its own keys, `env.all`'s, through `extends`), through the same firewall as `get`.
//!
//! It needs no keyrack home, identity or daemon: only the repo manifest and the secrets.
//!
//! - A declared key missing from the secrets is `absent` (listed, not fatal).
//! - A value that is a `github.app` credentials bundle ([`crate::github::app`]) is minted into an
//!   installation token (`ghs_…`), which is what passes on; a bundle that cannot be minted is
//!   that key's `errored` row with the fix.
//! - A value that looks like a long-lived token is `blocked` unless `allow_dangerous`.
//! - Secrets the env does not declare never pass (their names are reported as ignored).
//!
//! For GitHub Actions, [`mask_commands`] gives the `::add-mask::` commands for every line of every
//! value, and [`github_env_text`] the `$GITHUB_ENV` records (one heredoc per key, with a random
//! delimiter the value cannot contain), appended by [`append_github_env`] only when every key
//! passed ([`FirewallReport::passed`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use zeroize::Zeroizing;

use super::row::{KeyRow, Status};
use crate::error::{Error, Result};
use crate::firewall;
use crate::github::app::AppCredentials;
use crate::repo_manifest::RepoManifest;
use crate::secret::Secret;
use crate::slug::{self, Slug};

/// The largest secrets document read (16 MiB).
pub(crate) const MAX_SECRETS_BYTES: usize = 16 * 1024 * 1024;

/// The variable GitHub Actions names its environment file in.
pub(crate) const GITHUB_ENV_VAR: &str = "GITHUB_ENV";

/// The prefix of the heredoc delimiters written to `$GITHUB_ENV` (as `actions/toolkit` does).
pub(crate) const DELIMITER_PREFIX: &str = "ghadelimiter_";

/// Where the secrets document comes from (`--from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsFrom {
    /// `json(env://VAR)`: the JSON object in environment variable `VAR`.
    Env(String),
    /// `json(stdin://)`: the JSON object on standard input.
    Stdin,
}

impl FromStr for SecretsFrom {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| {
            Error::InvalidInput {
            what: "--from",
            value: s.into(),
            reason: reason.into(),
            hint: Some("use --from 'json(env://SECRETS)' with `env: SECRETS: ${{ toJSON(secrets) }}` on the step, or --from 'json(stdin://)'".into()),
        }
        };
        let inner = s
            .strip_prefix("json(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| invalid("the source is json(env://VAR) or json(stdin://)"))?;
        if inner == "stdin://" {
            return Ok(SecretsFrom::Stdin);
        }
        let var = inner
            .strip_prefix("env://")
            .ok_or_else(|| invalid("the source is json(env://VAR) or json(stdin://)"))?;
        slug::validate_key(var)
            .map_err(|_| invalid("the variable name is not an environment-variable name"))?;
        Ok(SecretsFrom::Env(var.into()))
    }
}

impl fmt::Display for SecretsFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretsFrom::Env(v) => write!(f, "json(env://{v})"),
            SecretsFrom::Stdin => f.write_str("json(stdin://)"),
        }
    }
}

/// One entry of the secrets document.
enum Entry {
    /// A string value.
    Text(Secret),
    /// Anything else (its JSON type), which no key can take.
    Other(&'static str),
}

/// The secrets a CI system passed: name → value. Never printed.
pub struct Secrets {
    entries: BTreeMap<String, Entry>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// Reads the document from its source.
    pub fn read(from: &SecretsFrom) -> Result<Self> {
        let refuse = |reason: String, hint: String| Error::InvalidInput {
            what: "--from",
            value: from.to_string(),
            reason,
            hint: Some(hint),
        };
        let text: Zeroizing<String> = match from {
            SecretsFrom::Env(var) => match std::env::var(var) {
                Ok(v) => Zeroizing::new(v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(refuse(
                        format!("{var} is not set"),
                        format!(
                            "pass the secrets to the step: env: {var}: ${{{{ toJSON(secrets) }}}}"
                        ),
                    ))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(refuse(
                        format!("{var} is not UTF-8 text"),
                        format!("set {var} to the JSON object of the secrets"),
                    ))
                }
            },
            SecretsFrom::Stdin => {
                let mut bytes = Zeroizing::new(Vec::new());
                std::io::stdin()
                    .take(MAX_SECRETS_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io("read", "standard input", e))?;
                if bytes.len() > MAX_SECRETS_BYTES {
                    return Err(refuse(
                        format!("standard input is over {MAX_SECRETS_BYTES} bytes"),
                        "pass only the secrets object".into(),
                    ));
                }
                match String::from_utf8(std::mem::take(&mut *bytes)) {
                    Ok(s) => Zeroizing::new(s),
                    Err(e) => {
                        let mut v = e.into_bytes();
                        zeroize::Zeroize::zeroize(&mut v);
                        return Err(refuse(
                            "standard input is not UTF-8 text".into(),
                            "pass the JSON object of the secrets".into(),
                        ));
                    }
                }
            }
        };
        Self::parse(&text).map_err(|reason| {
            refuse(
                reason,
                "pass one JSON object of name → value, e.g. ${{ toJSON(secrets) }}".into(),
            )
        })
    }

    /// Parses a JSON object of name → value. The error never quotes the document.
    pub(crate) fn parse(json: &str) -> std::result::Result<Self, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| {
                format!(
                    "it is not a JSON object (line {}, column {})",
                    e.line(),
                    e.column()
                )
            })?;
        let entries = map
            .into_iter()
            .map(|(name, v)| {
                let entry = match v {
                    serde_json::Value::String(s) => Entry::Text(Secret::new(s)),
                    serde_json::Value::Null => Entry::Other("null"),
                    serde_json::Value::Bool(_) => Entry::Other("a boolean"),
                    serde_json::Value::Number(_) => Entry::Other("a number"),
                    serde_json::Value::Array(_) => Entry::Other("an array"),
                    serde_json::Value::Object(_) => Entry::Other("an object"),
                };
                (name, entry)
            })
            .collect();
        Ok(Secrets { entries })
    }

    /// How many secrets were passed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none was passed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `key`: the same name, else the one name equal but for case (GitHub secret
    /// names are case-insensitive, and `toJSON(secrets)` spells the workflow token
    /// `github_token`).
    fn lookup(&self, key: &str) -> Option<(&str, &Entry)> {
        if let Some((k, v)) = self.entries.get_key_value(key) {
            return Some((k, v));
        }
        let mut near = self
            .entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key));
        match (near.next(), near.next()) {
            (Some((k, v)), None) => Some((k, v)),
            _ => None,
        }
    }
}

/// Options of the CI firewall.
#[derive(Debug, Clone, Default)]
pub struct FirewallOptions {
    /// The env whose declared keys pass.
    pub env: String,
    /// Pass values that look like long-lived tokens.
    pub allow_dangerous: bool,
}

/// What the firewall let through, and why the rest did not pass.
#[derive(Debug)]
pub struct FirewallReport {
    /// One row per declared key (status `granted`, `absent`, `blocked` or `errored`).
    pub rows: Vec<KeyRow>,
    /// The values of the granted keys, in row order.
    pub values: Vec<(String, Secret)>,
    /// Keys whose value was minted from GitHub App credentials.
    pub minted: Vec<String>,
    /// Names of secrets the env does not declare (never passed on).
    pub ignored: Vec<String>,
}

impl FirewallReport {
    /// Whether every declared key passed or is merely absent: nothing blocked, nothing errored.
    pub fn passed(&self) -> bool {
        self.rows
            .iter()
            .all(|r| matches!(r.status, Status::Granted | Status::Absent))
    }

    /// The rows that fail the step.
    pub fn failed(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| !matches!(r.status, Status::Granted | Status::Absent))
            .count()
    }
}

/// Runs the firewall over `secrets` for the keys `repo` declares for `opts.env`.
pub fn firewall(
    repo: &RepoManifest,
    secrets: &Secrets,
    opts: &FirewallOptions,
) -> Result<FirewallReport> {
    slug::validate_env(&opts.env)?;
    if !repo.has_env(&opts.env) {
        return Err(super::unknown_env(repo, &opts.env));
    }
    let mut report = FirewallReport {
        rows: Vec::new(),
        values: Vec::new(),
        minted: Vec::new(),
        ignored: Vec::new(),
    };
    let mut used: Vec<&str> = Vec::new();
    for spec in repo.keys_for(&opts.env) {
        let key = spec.key.as_str();
        slug::validate_key(key)?;
        let slug = Slug::new(&repo.org, &opts.env, key)?;
        let mut row = KeyRow::new(&slug, Status::Absent);
        let Some((name, entry)) = secrets.lookup(key) else {
            row.reason = Some("not among the secrets passed".into());
            let own = repo
                .envs
                .get(&opts.env)
                .is_some_and(|keys| keys.iter().any(|k| k.key == key));
            row.fix = Some(format!(
                "add a secret named {key} (repository, environment or organization secrets), or remove it from env.{} in {}",
                if own { opts.env.as_str() } else { slug::ENV_ALL },
                repo.path.display()
            ));
            report.rows.push(row);
            continue;
        };
        used.push(name);
        let update = format!("update the secret {name}");
        let value = match entry {
            Entry::Other(kind) => {
                row.status = Status::Errored;
                row.reason = Some(format!("its value is {kind}, not a string"));
                row.fix = Some(format!("{update} to a string"));
                report.rows.push(row);
                continue;
            }
            Entry::Text(v) => v,
        };
        if let Some(reason) = crate::secret::unfit(value.expose()) {
            row.status = Status::Errored;
            row.reason = Some(format!("the value is refused: {reason}"));
            row.fix = Some(update);
            report.rows.push(row);
            continue;
        }
        let mut value = value.clone();
        if AppCredentials::is_bundle(value.expose()) {
            let fix = format!(
                "{update} with valid GitHub App credentials ({{\"appId\", \"installationId\", \"privateKeyPem\"}})"
            );
            let minted = AppCredentials::from_bundle(value.expose()).and_then(|creds| {
                let api = crate::github::api_url()?;
                creds.mint(&api)
            });
            match minted {
                Ok(t) => {
                    row.expires_at = Some(t.expires_at);
                    value = t.token;
                    report.minted.push(key.to_string());
                }
                Err(e) => {
                    let e = e.into_error(&fix);
                    row.status = Status::Errored;
                    row.reason = Some(e.to_string());
                    row.fix = e.fix();
                    report.rows.push(row);
                    continue;
                }
            }
        }
        match firewall::inspect(value.expose()).filter(|_| !opts.allow_dangerous) {
            Some(b) => {
                row.status = Status::Blocked;
                row.reason = Some(b.reason());
                row.fix = Some(format!(
                    "replace the secret {name} with a short-lived credential (GitHub App credentials are minted into a 1 h token), or pass --allow-dangerous if it really must pass"
                ));
            }
            None => {
                row.status = Status::Granted;
                report.values.push((key.to_string(), value));
            }
        }
        report.rows.push(row);
    }
    report.ignored = secrets
        .entries
        .keys()
        .filter(|k| !used.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(report)
}

/// GitHub's escaping of a workflow command's data (`actions/toolkit` `escapeData`).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `::add-mask::` commands for every non-blank line of every value, so the runner hides each
/// from the logs of this and every later step (minted tokens are not among the repository's
/// secrets, which the runner masks by itself).
pub fn mask_commands(values: &[(String, Secret)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for (_, v) in values {
        for line in v.expose().split(['\r', '\n']) {
            if !line.trim().is_empty() {
                out.push_str("::add-mask::");
                out.push_str(&escape_data(line));
                out.push('\n');
            }
        }
    }
    out
}

/// A fresh heredoc delimiter: [`DELIMITER_PREFIX`] and 128 random bits.
fn delimiter() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::io(
            "read",
            "the OS random source",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(format!("{DELIMITER_PREFIX}{}", hex::encode(bytes)))
}

/// The `$GITHUB_ENV` records of `values`: `KEY<<DELIMITER`, the value, `DELIMITER`, each with
/// its own random delimiter, drawn again should the value contain it. Every value round-trips
/// through the runner's parser byte for byte (multi-line, empty, `=`, `<<`, anything).
pub fn github_env_text(values: &[(String, Secret)]) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    for (key, value) in values {
        slug::validate_key(key)?;
        let v = value.expose();
        let mut delim = delimiter()?;
        while v.contains(&delim) {
            delim = delimiter()?;
        }
        out.push_str(key);
        out.push_str("<<");
        out.push_str(&delim);
        out.push('\n');
        out.push_str(v);
        out.push('\n');
        out.push_str(&delim);
        out.push('\n');
    }
    Ok(out)
}

fn github_env_refused(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: GITHUB_ENV_VAR,
        value: path.display().to_string(),
        reason: reason.into(),
        hint: Some(
            "--into github.actions appends to the regular file the runner names in GITHUB_ENV; run it in a GitHub Actions step, or use --into json"
                .into(),
        ),
    }
}

/// `$GITHUB_ENV`, checked: set, and a regular file (not a symbolic link, FIFO or device).
pub fn github_env_path() -> Result<PathBuf> {
    let path = match std::env::var_os(GITHUB_ENV_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            return Err(github_env_refused(
                Path::new(""),
                "GITHUB_ENV is not set (this is not a GitHub Actions step)",
            ))
        }
    };
    check_github_env(&path)?;
    Ok(path)
}

fn check_github_env(path: &Path) -> Result<std::fs::Metadata> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(github_env_refused(
                path,
                "it does not exist (the runner creates it for every step)",
            ))
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(github_env_refused(
            path,
            "it is a symbolic link; keyrack writes secrets only to the runner's own file",
        ));
    }
    if !meta.is_file() {
        return Err(github_env_refused(path, "it is not a regular file"));
    }
    Ok(meta)
}

/// Appends `text` to the environment file at `path` in one write: opened without following a
/// symbolic link and checked to be the regular file inspected; when the file does not end with
/// a newline (an earlier step's record), the records start on a line of their own.
pub fn append_github_env(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
    let before = check_github_env(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) => github_env_refused(path, "it is a symbolic link"),
            Some(nix::libc::ENXIO) => github_env_refused(path, "it is not a regular file"),
            _ => Error::io("open", path, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() || meta.dev() != before.dev() || meta.ino() != before.ino() {
        return Err(github_env_refused(
            path,
            "it was replaced while keyrack opened it",
        ));
    }
    let mut records = Zeroizing::new(String::with_capacity(text.len() + 1));
    if meta.len() > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, meta.len() - 1)
            .map_err(|e| Error::io("read", path, e))?;
        if last[0] != b'\n' {
            records.push('\n');
        }
    }
    records.push_str(text);
    (&file)
        .write_all(records.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            "json(env://SECRETS)".parse::<SecretsFrom>().unwrap(),
            SecretsFrom::Env("SECRETS".into())
        );
        assert_eq!(
            "json(stdin://)".parse::<SecretsFrom>().unwrap(),
            SecretsFrom::Stdin
        );
        for bad in [
            "env://SECRETS",
            "json(env://)",
            "json(env://A-B)",
            "json(env://SECRETS",
            "yaml(stdin://)",
            "json(file:///etc/passwd)",
        ] {
            assert!(bad.parse::<SecretsFrom>().is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_every_line_escaped() {
        let values = vec![
            (
                "A".to_string(),
                Secret::new("one\r\ntwo\n\n  \nthr%ee".into()),
            ),
            ("B".to_string(), Secret::new(String::new())),
        ];
        assert_eq!(
            mask_commands(&values).as_str(),
            "::add-mask::one\n::add-mask::two\n::add-mask::thr%25ee\n"
        );
    }

    #[test]
    fn secrets_documents_are_objects_and_errors_quote_nothing() {
        let e = Secrets::parse(r#"["hunter2"]"#).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = Secrets::parse(r#"{"A": "hunter2""#).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let s = Secrets::parse(r#"{"github_token": "x", "A": "1", "a": "2", "B": 3}"#).unwrap();
        assert!(matches!(s.lookup("A"), Some(("A", _))));
        assert!(matches!(
            s.lookup("GITHUB_TOKEN"),
            Some(("github_token", _))
        ));
        assert!(s.lookup("C").is_none());
        assert!(matches!(
            s.lookup("B"),
            Some(("B", Entry::Other("a number")))
        ));
        let twice = Secrets::parse(r#"{"x": "1", "X": "2"}"#).unwrap();
        assert!(twice.lookup("x").is_some());
        assert!(twice.lookup("x_").is_none());
        assert!(twice.lookup("X").is_some());
        let ambiguous = Secrets::parse(r#"{"ab": "1", "aB": "2"}"#).unwrap();
        assert!(ambiguous.lookup("AB").is_none(), "two candidates: neither");
    }

    #[test]
    fn delimiters_are_random_and_never_inside_the_value() {
        let a = delimiter().unwrap();
        let b = delimiter().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(DELIMITER_PREFIX) && a.len() == DELIMITER_PREFIX.len() + 32);
        let text = github_env_text(&[("K".into(), Secret::new("v".into()))]).unwrap();
        let mut lines = text.lines();
        let head = lines.next().unwrap();
        let delim = head.strip_prefix("K<<").unwrap();
        assert_eq!(lines.next(), Some("v"));
        assert_eq!(lines.next(), Some(delim));
        assert!(github_env_text(&[("1K".into(), Secret::new("v".into()))]).is_err());
    }
}
