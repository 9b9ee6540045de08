//! `keyrack doctor`: check the whole set-up, one line per check, each `ok`, `warn` or `fail`
//! with the fix. Returns data; the CLI renders it.
//!
//! Checks, in order: the identity (found, usable, file mode); the host manifest (present,
//! decrypts; a missing one with vault files left is a lost manifest, fixed by
//! `keyrack init --recover`); recipients; vault copies (entries without one, files without an
//! entry); the runtime dir (owner, mode, not a symlink); the daemon (reachable, which socket);
//! the repo manifest (found, valid — errors name `file:line:column`); per env, the keys the repo
//! declares that this host lacks; the AWS config file (`$AWS_CONFIG_FILE` honoured: parseable,
//! the profiles keyrack's keys use resolve); each SSO session keyrack's keys use (token expiry,
//! refreshable, the `~/.aws/sso/cache` mirror); the clock (a year before 2024, or files stamped
//! apart from the system clock).
//!
//! Doctor never opens a browser, never talks to AWS, and never changes a file (the clock check
//! writes one temporary file and removes it).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use super::Rack;
use crate::aws::config_file::{self, AwsConfig};
use crate::aws::names::ProfileName;
use crate::aws::token_cache::{self, format_z};
use crate::daemon::client::Client;
use crate::daemon::socket;
use crate::error::Error;
use crate::host_manifest::HostManifest;
use crate::identity::{self, Identity};
use crate::repo_manifest::RepoManifest;
use crate::slug::Slug;
use crate::vault::aws_config::{meta, Sessions};
use crate::vault::{os_secure, VaultKind};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Broken: keyrack (or part of it) cannot work until fixed.
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Stable id of the check: `identity`, `host_manifest`, `recipients`, `vault_files`,
    /// `runtime_dir`, `daemon`, `repo_manifest`, `keys`, `aws_config`, `sso_session`,
    /// `sso_client`, `clock`.
    pub check: &'static str,
    /// The outcome.
    pub status: Level,
    /// What was found, in one line.
    pub message: String,
    /// More lines (labels, missing keys, further errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The command or edit that fixes it (never set on `ok`).
    pub fix: Option<String>,
    /// The facts behind the line, for machines (paths, modes, counts, `expiresAt` in RFC 3339).
    pub data: Value,
}

impl Check {
    fn new(check: &'static str, status: Level, message: impl Into<String>) -> Self {
        Check {
            check,
            status,
            message: message.into(),
            details: Vec::new(),
            fix: None,
            data: json!({}),
        }
    }

    fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self::new(check, Level::Ok, message)
    }

    fn warn(check: &'static str, message: impl Into<String>, fix: Option<String>) -> Self {
        Check {
            fix,
            ..Self::new(check, Level::Warn, message)
        }
    }

    fn fail(check: &'static str, message: impl Into<String>, fix: Option<String>) -> Self {
        Check {
            fix,
            ..Self::new(check, Level::Fail, message)
        }
    }

    fn error(check: &'static str, e: &Error) -> Self {
        Self::fail(check, e.to_string(), e.fix())
    }

    fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    fn details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
}

/// The doctor's report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The worst outcome.
    pub status: Level,
}

impl Report {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.status == Level::Fail
    }
}

/// A file's permission bits as `0600`.
fn mode_of(m: &std::fs::Metadata) -> String {
    format!("{:04o}", m.permissions().mode() & 0o7777)
}

/// "7h59m", "12m", "40s".
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m) = (s / 3600, (s % 3600) / 60);
    if h >= 48 {
        format!("{}d", h / 24)
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// Runs every check.
pub fn run(rack: &Rack) -> Report {
    let mut checks = Vec::new();
    let identity = check_identity(rack, &mut checks);
    let host = check_host(rack, identity, &mut checks);
    if let (Some(host), Some(id)) = (&host, identity) {
        checks.push(check_recipients(host, id));
        checks.push(check_vault_files(rack, host));
    }
    let runtime_safe = check_runtime_dir(&mut checks);
    checks.push(check_daemon(rack, runtime_safe));
    let repo = check_repo(rack, &mut checks);
    if let Some(repo) = &repo {
        check_keys(rack, repo, host.as_ref(), &mut checks);
    }
    check_aws(rack, host.as_ref(), identity.is_some(), &mut checks);
    check_sso_clients(rack, &mut checks);
    checks.push(check_clock());
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Level::Ok);
    Report { checks, status }
}

fn check_identity<'r>(rack: &'r Rack, checks: &mut Vec<Check>) -> Option<&'r Identity> {
    const C: &str = "identity";
    let home = rack.home();
    let src = match identity::discover(rack.explicit_identity(), home) {
        Ok(Some(src)) => src,
        Ok(None) => {
            checks.push(Check::fail(
                C,
                "no identity found (--identity, KEYRACK_IDENTITY, ~/.ssh/id_ed25519, $KEYRACK_HOME/identity.txt)",
                Some(format!("keyrack init{}", home.owner().flag())),
            ));
            return None;
        }
        Err(e) => {
            checks.push(Check::error(C, &e));
            return None;
        }
    };
    let path = src.path();
    let mode = std::fs::metadata(path).ok().map(|m| mode_of(&m));
    let data = json!({ "path": path, "mode": mode });
    match rack.identity() {
        Ok(id) => {
            checks.push(
                Check::ok(
                    C,
                    format!(
                        "{} ({}, mode {})",
                        path.display(),
                        id.recipient().kind(),
                        mode.as_deref().unwrap_or("?")
                    ),
                )
                .data(json!({ "path": path, "mode": mode, "kind": id.recipient().kind() })),
            );
            Some(id)
        }
        Err(e @ Error::NeedsTty { .. }) => {
            checks.push(
                Check::warn(
                    C,
                    format!(
                        "{} is protected by a passphrase, and there is no terminal to ask it on: not checked",
                        path.display()
                    ),
                    Some("run keyrack doctor on a terminal".into()),
                )
                .details(vec![e.to_string()])
                .data(data),
            );
            None
        }
        Err(e) => {
            checks.push(Check::error(C, &e).data(data));
            None
        }
    }
}

fn check_host(
    rack: &Rack,
    identity: Option<&Identity>,
    checks: &mut Vec<Check>,
) -> Option<HostManifest> {
    const C: &str = "host_manifest";
    let home = rack.home();
    let path = home.host_manifest();
    if !HostManifest::exists(home) {
        let check = match super::recover::evidence(home) {
            Ok(left) if left.any() => Check::error(C, &super::recover::lost(home, &left))
                .data(json!({ "path": path, "lost": true, "evidence": left })),
            Ok(_) => Check::fail(
                C,
                format!(
                    "{} does not exist: keyrack is not initialised",
                    path.display()
                ),
                Some(format!("keyrack init{}", home.owner().flag())),
            )
            .data(json!({ "path": path })),
            Err(e) => Check::error(C, &e),
        };
        checks.push(check);
        return None;
    }
    let mode = std::fs::metadata(&path).ok().map(|m| mode_of(&m));
    if identity.is_none() {
        checks.push(
            Check::warn(
                C,
                format!("{}: not checked without a usable identity", path.display()),
                None,
            )
            .data(json!({ "path": path, "mode": mode })),
        );
        return None;
    }
    match rack.host() {
        Ok(host) => {
            let n = host.hosts.len();
            let loose = mode.as_deref().is_some_and(|m| m != "0600");
            let message = format!(
                "{} decrypts: {n} key{} (mode {})",
                path.display(),
                if n == 1 { "" } else { "s" },
                mode.as_deref().unwrap_or("?")
            );
            let check = if loose {
                Check::warn(C, message, Some(format!("chmod 600 {}", path.display())))
            } else {
                Check::ok(C, message)
            };
            checks.push(check.data(json!({ "path": path, "mode": mode, "keys": n })));
            Some(host)
        }
        Err(e) => {
            checks.push(Check::error(C, &e).data(json!({ "path": path, "mode": mode })));
            None
        }
    }
}

fn check_recipients(host: &HostManifest, identity: &Identity) -> Check {
    const C: &str = "recipients";
    let labels: Vec<String> = host
        .recipients
        .iter()
        .map(|r| format!("{} ({})", r.label, r.kind))
        .collect();
    let data = json!({
        "count": host.recipients.len(),
        "labels": host.recipients.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
    });
    if let Err(e) = host.recipient_keys() {
        return Check::error(C, &e).data(data);
    }
    let mine = identity.recipient().to_string();
    let listed = host.recipients.iter().any(|r| {
        crate::crypto::RecipientKey::parse(&r.pubkey).is_ok_and(|k| k.to_string() == mine)
    });
    let message = format!("{}: {}", host.recipients.len(), labels.join(", "));
    if listed {
        Check::ok(C, message).data(data)
    } else {
        Check::warn(
            C,
            format!("{message}; your identity is not one of them, so files keyrack writes next would not be readable by you"),
            Some(format!(
                "keyrack recipient add --pubkey \"{mine}\" --label <this machine>"
            )),
        )
        .data(data)
    }
}

fn check_vault_files(rack: &Rack, host: &HostManifest) -> Check {
    const C: &str = "vault_files";
    let home = rack.home();
    let owner = home.owner();
    let direct: BTreeSet<String> = match super::recover::direct_slugs(home) {
        Ok(Some(Ok(slugs))) => slugs.into_iter().collect(),
        Ok(Some(Err(reason))) => {
            return Check::fail(
                C,
                reason,
                Some("fix the JSON by hand (it maps org.env.KEY to the value)".into()),
            )
        }
        Ok(None) => BTreeSet::new(),
        Err(e) => return Check::error(C, &e),
    };
    let mut lost = Vec::new();
    for e in host.hosts.values() {
        let present = match e.vault {
            VaultKind::OsSecure => os_secure::file_for(home, &e.slug).is_file(),
            VaultKind::OsDirect => direct.contains(&e.slug.to_string()),
            _ => true,
        };
        if !present {
            lost.push(e.slug.clone());
        }
    }
    let known_files: BTreeSet<std::path::PathBuf> = host
        .hosts
        .values()
        .filter(|e| e.vault == VaultKind::OsSecure)
        .map(|e| os_secure::file_for(home, &e.slug))
        .collect();
    let stray_files = super::recover::secure_files(home)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !known_files.contains(p))
        .count();
    let stray_direct = direct
        .iter()
        .filter(|s| {
            crate::slug::Slug::parse(s)
                .ok()
                .and_then(|s| host.hosts.get(&s))
                .is_none_or(|e| e.vault != VaultKind::OsDirect)
        })
        .count();
    let stems: BTreeSet<String> = host.hosts.values().map(|e| e.slug.file_stem()).collect();
    let stray_markers = super::recover::markers(home)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !stems.contains(m))
        .count();
    let data = json!({
        "lost": lost.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "strayFiles": stray_files,
        "strayDirectValues": stray_direct,
        "strayMarkers": stray_markers,
    });
    let strays = stray_files + stray_direct + stray_markers;
    if !lost.is_empty() {
        let fix = match lost.as_slice() {
            [one] => format!(
                "keyrack set {}",
                super::key_flags(one.key(), one.env(), one.org(), owner)
            ),
            _ => "set each again: keyrack set --key <KEY> --env <env> (keyrack unlock shows them as lost)"
                .into(),
        };
        return Check::warn(
            C,
            format!(
                "{} key(s) in the host manifest have no vault copy (lost)",
                lost.len()
            ),
            Some(fix),
        )
        .details(lost.iter().map(|s| s.to_string()).collect())
        .data(data);
    }
    if strays > 0 {
        return Check::warn(
            C,
            format!(
                "{stray_files} os.secure file(s), {stray_direct} os.direct value(s) and {stray_markers} inventory marker(s) belong to no key in the host manifest"
            ),
            Some(format!("keyrack init --recover{}", owner.flag())),
        )
        .data(data);
    }
    Check::ok(
        C,
        format!(
            "every key has its vault copy ({} os.secure, {} os.direct)",
            known_files.len(),
            direct.len()
        ),
    )
    .data(data)
}

/// Checks the runtime dir the way the daemon and every client check it
/// ([`socket::check_runtime_dir`]); returns whether it is safe to talk to the daemon in it.
fn check_runtime_dir(checks: &mut Vec<Check>) -> bool {
    const C: &str = "runtime_dir";
    let dir = socket::runtime_dir();
    let shown = dir.display().to_string();
    let data = match std::fs::symlink_metadata(&dir) {
        Ok(meta) => json!({
            "path": dir,
            "exists": true,
            "uid": meta.uid(),
            "mode": mode_of(&meta),
            "symlink": meta.file_type().is_symlink(),
        }),
        Err(_) => json!({ "path": dir, "exists": false }),
    };
    match socket::check_runtime_dir(&dir) {
        Ok(false) => {
            checks.push(
                Check::ok(
                    C,
                    format!("{shown} does not exist yet (unlock creates it, mode 0700)"),
                )
                .data(data),
            );
            true
        }
        Ok(true) => {
            checks.push(Check::ok(C, format!("{shown} (yours, mode 0700)")).data(data));
            true
        }
        Err(e) => {
            checks.push(Check::error(C, &e).data(data));
            false
        }
    }
}

fn check_daemon(rack: &Rack, runtime_safe: bool) -> Check {
    const C: &str = "daemon";
    let client = Client::new(rack.home());
    let sock = client.socket_path().to_path_buf();
    if !runtime_safe {
        return Check::warn(
            C,
            format!(
                "not contacted: its runtime dir is not safe (socket {})",
                sock.display()
            ),
            None,
        )
        .data(json!({ "socket": sock, "running": null }));
    }
    match client.status() {
        Ok(Some(st)) => Check::ok(
            C,
            format!(
                "running: pid {}, {} grant(s), socket {}",
                st.pid,
                st.grants.len(),
                sock.display()
            ),
        )
        .data(json!({ "socket": sock, "running": true, "pid": st.pid, "grants": st.grants.len() })),
        Ok(None) => Check::ok(
            C,
            format!(
                "not running (keyrack unlock starts it); socket {}",
                sock.display()
            ),
        )
        .data(json!({ "socket": sock, "running": false })),
        Err(e) => Check::error(C, &e).data(json!({ "socket": sock, "running": null })),
    }
}

fn check_repo(rack: &Rack, checks: &mut Vec<Check>) -> Option<RepoManifest> {
    const C: &str = "repo_manifest";
    let path = match RepoManifest::find(rack.cwd()) {
        Ok(Some(p)) => p,
        Ok(None) => {
            checks.push(Check::warn(
                C,
                format!(
                    "no keyrack.yml in {} or its parents (up to the repository root)",
                    rack.cwd().display()
                ),
                Some("keyrack init --org <org>   (in the repository's root)".into()),
            ));
            return None;
        }
        Err(e) => {
            checks.push(Check::error(C, &e));
            return None;
        }
    };
    match RepoManifest::load(&path) {
        Ok(repo) => {
            let envs: Vec<String> = repo
                .env_names()
                .iter()
                .map(|e| format!("{e} ({})", repo.keys_for(e).len()))
                .collect();
            checks.push(
                Check::ok(
                    C,
                    format!(
                        "{}: org {}, envs {}",
                        path.display(),
                        repo.org,
                        if envs.is_empty() {
                            "(none)".to_string()
                        } else {
                            envs.join(", ")
                        }
                    ),
                )
                .data(json!({ "path": path, "org": repo.org, "envs": repo.env_names() })),
            );
            Some(repo)
        }
        Err(e) => {
            checks.push(Check::error(C, &e).data(json!({ "path": path })));
            None
        }
    }
}

/// The keys of `env` the repo declares that this host lacks: from the host manifest when it
/// decrypted, else from the inventory markers (nothing decrypted).
pub(crate) fn missing_keys(
    rack: &Rack,
    repo: &RepoManifest,
    host: Option<&HostManifest>,
    env: &str,
) -> Vec<String> {
    let home = rack.home();
    repo.keys_for(env)
        .into_iter()
        .filter(|k| {
            let Ok(slug) = Slug::new(&repo.org, env, &k.key) else {
                return false;
            };
            let all = slug.with_env_all();
            let held = match host {
                Some(h) => h.entry(&slug).is_some() || h.entry(&all).is_some(),
                None => {
                    home.inventory_marker(&slug).exists() || home.inventory_marker(&all).exists()
                }
            };
            !held
        })
        .map(|k| k.key.clone())
        .collect()
}

fn check_keys(
    rack: &Rack,
    repo: &RepoManifest,
    host: Option<&HostManifest>,
    checks: &mut Vec<Check>,
) {
    const C: &str = "keys";
    let flag = rack.home().owner().flag();
    for env in repo.env_names() {
        let declared = repo.keys_for(&env).len();
        let missing = missing_keys(rack, repo, host, &env);
        let data = json!({ "env": env, "declared": declared, "missing": missing });
        checks.push(if missing.is_empty() {
            Check::ok(
                C,
                format!("{env}: all {declared} declared key(s) set on this host"),
            )
            .data(data)
        } else {
            Check::warn(
                C,
                format!(
                    "{env}: {} of {declared} declared key(s) not set on this host: {}",
                    missing.len(),
                    missing.join(", ")
                ),
                Some(format!("keyrack fill --env {env}{flag}")),
            )
            .data(data)
        });
    }
}

/// A syntax problem in an AWS config file: 1-based line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigProblem {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Checks an AWS config file's text the way the AWS tools' INI reader reads it: sections
/// `[name]`, `key = value` (or `key: value`) inside a section, indented continuation lines
/// (nested `s3 =` settings), comments (`#`, `;`) and blank lines. Returns every problem.
pub(crate) fn lint_aws_config(text: &str) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    let mut in_section = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let t = line.trim();
        let problem = |message: &str| ConfigProblem {
            line: i + 1,
            message: message.into(),
        };
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if !in_section {
                out.push(problem("an indented line before the first [section]"));
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix('[') {
            match rest.find(']') {
                Some(end) if !rest[..end].trim().is_empty() => in_section = true,
                Some(_) => out.push(problem("an empty section header []")),
                None => out.push(problem("a section header without its closing ]")),
            }
            continue;
        }
        if !in_section {
            out.push(problem("a setting before the first [section]"));
            continue;
        }
        match t.find(['=', ':']) {
            Some(0) => out.push(problem("no name before the '='")),
            Some(_) => {}
            None => out.push(problem("not a `name = value` line")),
        }
    }
    out
}

fn check_aws(
    rack: &Rack,
    host: Option<&HostManifest>,
    have_identity: bool,
    checks: &mut Vec<Check>,
) {
    const C: &str = "aws_config";
    let path = match config_file::default_path() {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::error(C, &e));
            return;
        }
    };
    let shown = path.display().to_string();
    let from_env = std::env::var_os("AWS_CONFIG_FILE").is_some_and(|v| !v.is_empty());
    let aws_entries: Vec<&crate::host_manifest::HostEntry> = host
        .map(|h| {
            h.hosts
                .values()
                .filter(|e| e.vault == VaultKind::AwsConfig)
                .collect()
        })
        .unwrap_or_default();
    if !path.exists() {
        checks.push(if aws_entries.is_empty() {
            Check::ok(
                C,
                format!("{shown} does not exist (needed only for AWS SSO keys)"),
            )
            .data(json!({ "path": path, "fromEnv": from_env, "exists": false }))
        } else {
            let first = aws_entries[0];
            Check::fail(
                C,
                format!(
                    "{shown} does not exist, but {} key(s) of this host use profiles from it",
                    aws_entries.len()
                ),
                Some(format!(
                    "keyrack set {}",
                    super::key_flags(
                        first.slug.key(),
                        &first.env,
                        &first.org,
                        rack.home().owner()
                    )
                )),
            )
            .data(json!({ "path": path, "fromEnv": from_env, "exists": false }))
        });
        return;
    }
    let cfg = match AwsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::error(C, &e).data(json!({ "path": path, "fromEnv": from_env })));
            return;
        }
    };
    let problems = lint_aws_config(&cfg.text());
    if let Some(first) = problems.first() {
        checks.push(
            Check::fail(
                C,
                format!("{shown}:{}: {}", first.line, first.message),
                Some(format!(
                    "fix line {} of {shown} (the AWS tools refuse the whole file)",
                    first.line
                )),
            )
            .details(
                problems[1..]
                    .iter()
                    .map(|p| format!("{shown}:{}: {}", p.line, p.message))
                    .collect(),
            )
            .data(json!({ "path": path, "fromEnv": from_env, "problems": problems.len() })),
        );
        return;
    }
    let sessions = cfg.sso_sessions();
    let mut broken = Vec::new();
    for e in &aws_entries {
        let name = e.exid.clone().unwrap_or_default();
        let resolved = ProfileName::parse(&name)
            .map_err(|why| Error::Aws {
                source: None,
                message: format!("the recorded AWS profile name is refused: {why}"),
                hint: "set the key again with a valid profile".into(),
            })
            .and_then(|p| cfg.sso_profile(&p));
        if let Err(err) = resolved {
            broken.push((e, err));
        }
    }
    let data = json!({
        "path": path,
        "fromEnv": from_env,
        "profiles": cfg.profile_names().len(),
        "ssoSessions": sessions.len(),
    });
    if let Some((e, err)) = broken.first() {
        checks.push(
            Check::fail(
                C,
                format!("{}: {err}", e.slug),
                Some(format!(
                    "{}   (or set the key again: keyrack set {})",
                    err.fix().unwrap_or_default(),
                    super::key_flags(e.slug.key(), &e.env, &e.org, rack.home().owner())
                )),
            )
            .details(
                broken[1..]
                    .iter()
                    .map(|(e, err)| format!("{}: {err}", e.slug))
                    .collect(),
            )
            .data(data),
        );
    } else {
        checks.push(
            Check::ok(
                C,
                format!(
                    "{shown}{}: {} profile(s), {} sso-session(s){}",
                    if from_env { " ($AWS_CONFIG_FILE)" } else { "" },
                    cfg.profile_names().len(),
                    sessions.len(),
                    if aws_entries.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; the {} profile(s) keyrack uses resolve",
                            aws_entries.len()
                        )
                    }
                ),
            )
            .data(data),
        );
    }
    if have_identity {
        if let Some(host) = host {
            check_sso_sessions(rack, host, &cfg, &aws_entries, checks);
        }
    }
}

fn check_sso_sessions(
    rack: &Rack,
    host: &HostManifest,
    cfg: &AwsConfig,
    entries: &[&crate::host_manifest::HostEntry],
    checks: &mut Vec<Check>,
) {
    const C: &str = "sso_session";
    // session (cache name) → the keys that use it
    let mut by_session: BTreeMap<String, Vec<&crate::host_manifest::HostEntry>> = BTreeMap::new();
    for e in entries {
        let name = e
            .exid
            .as_deref()
            .and_then(|p| ProfileName::parse(p).ok())
            .and_then(|p| cfg.sso_profile(&p).ok())
            .map(|p| p.cache_name().to_string())
            .or_else(|| e.meta.get(meta::SESSION));
        if let Some(n) = name {
            by_session.entry(n).or_default().push(e);
        }
    }
    if by_session.is_empty() {
        return;
    }
    let recipients = match host.recipient_keys() {
        Ok(r) => r,
        Err(_) => return,
    };
    let ctx = match rack.vault_context(&recipients, crate::aws::login::LoginOptions::never_prompt())
    {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::error(C, &e));
            return;
        }
    };
    let sessions = match Sessions::new(&ctx) {
        Ok(s) => s,
        Err(e) => {
            checks.push(Check::error(C, &e));
            return;
        }
    };
    let owner = rack.home().owner();
    for (name, users) in by_session {
        let first = users[0];
        let unlock = format!(
            "keyrack unlock {}",
            super::key_flags(first.slug.key(), &first.env, &first.org, owner)
        );
        let mirror = token_cache::cache_file(&name).ok();
        let mirror_token = mirror
            .as_deref()
            .and_then(|p| token_cache::read(p).ok().flatten());
        let mirror_line = match (&mirror, &mirror_token) {
            (Some(p), Some(t)) => {
                format!("mirror {}: expires {}", p.display(), format_z(t.expires_at))
            }
            (Some(p), None) => format!("no mirror in {} (locked)", p.display()),
            (None, _) => "no token cache directory".into(),
        };
        let keys: Vec<String> = users.iter().map(|e| e.slug.to_string()).collect();
        let mut details = vec![format!("used by: {}", keys.join(", ")), mirror_line];
        let mut data = json!({
            "session": name,
            "keys": keys,
            "mirror": mirror,
            "mirrorExpiresAt": mirror_token.as_ref().map(|t| format_z(t.expires_at)),
        });
        let check = match sessions.token(&name) {
            Ok(Some(t)) => {
                let left = t.seconds_left();
                data["expiresAt"] = json!(format_z(t.expires_at));
                data["refreshable"] = json!(t.refreshable());
                if left >= 300 {
                    Check::ok(
                        C,
                        format!(
                            "{name}: signed in, token expires {} (in {}){}",
                            format_z(t.expires_at),
                            span(Duration::from_secs(left as u64)),
                            if t.refreshable() { ", refreshable" } else { "" }
                        ),
                    )
                } else if t.refreshable() {
                    Check::ok(
                        C,
                        format!(
                            "{name}: token {} {}; the next unlock refreshes it without a browser",
                            if left > 0 { "expires" } else { "expired" },
                            format_z(t.expires_at)
                        ),
                    )
                } else {
                    Check::warn(
                        C,
                        format!(
                            "{name}: token expired {} and cannot be refreshed: the next unlock opens the browser to sign in",
                            format_z(t.expires_at)
                        ),
                        Some(unlock),
                    )
                }
            }
            Ok(None) => Check::warn(
                C,
                format!("{name}: not signed in through keyrack: the next unlock opens the browser to sign in"),
                Some(unlock),
            ),
            Err(e) => {
                details.push(e.to_string());
                Check::fail(C, format!("{name}: its keyrack token cannot be read"), e.fix())
            }
        };
        checks.push(check.details(details).data(data));
    }
}

/// One warning per keyrack AWS sign-in client that expires within 7 days (or has): the next
/// browser sign-in renews it (it needs no fix of its own).
fn check_sso_clients(rack: &Rack, checks: &mut Vec<Check>) {
    let now = jiff::Timestamp::now();
    for c in crate::aws::client_expiry::expiring(rack.home(), now) {
        checks.push(Check::warn("sso_client", c.warning(now), None).data(json!({
            "startUrl": c.start_url,
            "ssoRegion": c.sso_region,
            "clientName": c.client_name,
            "expiresAt": format_z(c.expires_at),
        })));
    }
}

/// The clock check from the system time and the mtime of a file written just now.
pub(crate) fn clock_check(now: SystemTime, file_mtime: Option<SystemTime>) -> Check {
    const C: &str = "clock";
    let ts = jiff::Timestamp::try_from(now).ok();
    let shown = ts.map(format_z).unwrap_or_else(|| "before 1970".into());
    let year = ts
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).year())
        .unwrap_or(1970);
    let skew = file_mtime.map(|m| match m.duration_since(now) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    });
    let data = json!({ "now": shown, "fileSkewSeconds": skew.map(|s| s.round() as i64) });
    if year < 2024 {
        return Check::fail(
            C,
            format!(
                "the system clock says {shown}: token expiry and grant lifetimes would be wrong"
            ),
            Some("set the clock (e.g. timedatectl set-ntp true)".into()),
        )
        .data(data);
    }
    match skew {
        Some(s) if s.abs() > 120.0 => Check::warn(
            C,
            format!(
                "a file written now is stamped {} {} the system clock ({shown}): the file system keeps another clock",
                span(Duration::from_secs_f64(s.abs())),
                if s > 0.0 { "ahead of" } else { "behind" }
            ),
            Some("synchronise this machine and its file server with NTP".into()),
        )
        .data(data),
        Some(_) => Check::ok(C, format!("{shown}; files are stamped in step")).data(data),
        None => Check::ok(C, format!("{shown} (file stamps not checked)")).data(data),
    }
}

fn check_clock() -> Check {
    let dir = [
        std::env::var_os("KEYRACK_HOME").map(std::path::PathBuf::from),
        Some(std::env::temp_dir()),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.is_dir());
    let now = SystemTime::now();
    let mtime = dir.as_deref().and_then(stamp_in);
    clock_check(now, mtime)
}

/// The modification time the file system gives a file written now in `dir`.
fn stamp_in(dir: &Path) -> Option<SystemTime> {
    let f = tempfile::Builder::new()
        .prefix(crate::fsio::TEMP_PREFIX)
        .tempfile_in(dir)
        .ok()?;
    f.as_file().metadata().ok()?.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_accepts_real_configs() {
        let text = "# top comment\n[default]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 10\n\n[profile a]\nsso_session = acme\n; note\n[sso-session acme]\nsso_start_url: https://x\n[services s]\nsts =\n  endpoint_url = http://x\n";
        assert_eq!(lint_aws_config(text), vec![]);
        assert_eq!(lint_aws_config(""), vec![]);
    }

    #[test]
    fn lint_names_the_line() {
        let p = lint_aws_config("region = x\n[profile a\n[]\n[profile b]\njunk\n= v\n");
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 5, 6], "{p:?}");
        assert!(p[0].message.contains("before the first [section]"));
        assert!(p[1].message.contains("closing ]"));
        assert!(p[3].message.contains("name = value"));
    }

    #[test]
    fn clock_before_2024_fails_and_skew_warns() {
        let t2020 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        let c = clock_check(t2020, Some(t2020));
        assert_eq!(c.status, Level::Fail);
        assert!(c.message.contains("2020-01-01"), "{}", c.message);
        assert!(c.fix.is_some());

        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026
        assert_eq!(clock_check(now, Some(now)).status, Level::Ok);
        let c = clock_check(now, Some(now + Duration::from_secs(3600)));
        assert_eq!(c.status, Level::Warn);
        assert!(c.message.contains("1h00m ahead of"), "{}", c.message);
        let c = clock_check(now, Some(now - Duration::from_secs(600)));
        assert!(c.message.contains("10m behind"), "{}", c.message);
        assert_eq!(
            clock_check(now, Some(now + Duration::from_secs(1))).status,
            Level::Ok
        );
    }
}
