//! `keyrack fill --env E`: walk the keys the repo manifest declares for an env, and ask for each
//! one this host lacks: a hidden prompt for a value, the AWS SSO wizard for `AWS_PROFILE`. Every
//! answer goes through the same path as `keyrack set` ([`super::set::run_given`]), so each key is
//! proven (store → unlock → get → relock) before it is recorded.
//!
//! It needs someone to answer: the caller asks (the CLI on its terminal, through an [`Asker`]);
//! without a terminal the CLI fails before asking anything with [`needs_terminal`], naming the
//! keys it would ask for and the non-interactive ways to set them (`keyrack import`, `keyrack set`).

use serde::Serialize;

use super::set::{self, SetOptions};
use super::Rack;
use crate::error::{Error, Result};
use crate::mech::SecretSource;
use crate::secret::Secret;
use crate::slug::ENV_ALL;
use crate::vault::VaultKind;

/// Options of `fill`.
#[derive(Debug, Clone, Default)]
pub struct FillOptions {
    /// The env (inferred when the repo manifest declares only one).
    pub env: Option<String>,
    /// The vault for every value (default: each key's default, as `set`).
    pub vault: Option<VaultKind>,
    /// How aws.config keys may sign in.
    pub login: crate::aws::login::LoginOptions,
    /// Store values the firewall blocks.
    pub allow_dangerous: bool,
}

/// A declared key this host lacks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    /// The key.
    pub key: String,
    /// The env it is set under: the env asked for, or `all` for a key only `env.all` declares.
    pub env: String,
    /// The vault it will go to.
    pub vault: VaultKind,
}

/// What the user answered for one key.
#[derive(Debug)]
pub enum Answer {
    /// This value.
    Value(Secret),
    /// The AWS SSO profile the guided set-up chose (for an aws.config key; the caller runs it
    /// with [`set_options`] and [`super::aws::ProfileSetup`]).
    Profile(super::aws::ProfileFlags),
    /// The guided set-up failed: the key's row says why (it is not asked again).
    Failed(Error),
    /// Leave this key for later.
    Skip,
    /// Stop asking (Ctrl-C).
    Stop,
}

/// The outcome of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RowStatus {
    /// Stored and proven.
    Set,
    /// The user skipped it.
    Skipped,
    /// `set` refused it (three times, for a typed value).
    Failed,
    /// Not asked: the user stopped before it.
    NotAsked,
}

/// One key's row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FillRow {
    /// The key.
    pub key: String,
    /// `org.env.KEY`.
    pub slug: String,
    /// The vault.
    pub vault: VaultKind,
    /// Outcome.
    pub status: RowStatus,
    /// Why it is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The command that sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What `fill` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FillReport {
    /// The env.
    pub env: String,
    /// How many keys the env declares.
    pub declared: usize,
    /// One row per key that was missing.
    pub rows: Vec<FillRow>,
    /// Whether the user stopped early.
    pub stopped: bool,
}

/// The env and the declared keys of it this host lacks (decrypts the host manifest).
pub fn plan(rack: &Rack, opts: &FillOptions) -> Result<(String, usize, Vec<Missing>)> {
    let repo = rack.repo()?.ok_or_else(|| Error::NoRepoManifest {
        start: rack.cwd().to_path_buf(),
    })?;
    let env = super::get::resolve_repo_env(&repo, opts.env.as_deref())?;
    let host = rack.host()?;
    let declared = repo.keys_for(&env).len();
    let own: Vec<String> = if env == ENV_ALL {
        Vec::new()
    } else {
        repo.envs
            .get(&env)
            .map(|v| v.iter().map(|k| k.key.clone()).collect())
            .unwrap_or_default()
    };
    let missing = super::doctor::missing_keys(rack, &repo, Some(&host), &env)
        .into_iter()
        .map(|key| Missing {
            env: if own.contains(&key) {
                env.clone()
            } else {
                ENV_ALL.into()
            },
            vault: opts.vault.unwrap_or_else(|| set::default_vault(&key)),
            key,
        })
        .collect();
    Ok((env, declared, missing))
}

fn flags(rack: &Rack, m: &Missing) -> String {
    let mut f = format!("--key {} --env {}", m.key, m.env);
    if m.vault != set::default_vault(&m.key) {
        f.push_str(&format!(" --vault {}", m.vault));
    }
    f.push_str(&rack.home().owner().flag());
    f
}

/// The refusal without a terminal: what would have been asked, and the flags that avoid it.
pub fn needs_terminal(rack: &Rack, env: &str, missing: &[Missing]) -> Error {
    let keys: Vec<&str> = missing.iter().map(|m| m.key.as_str()).collect();
    let owner = rack.home().owner().flag();
    Error::NeedsTty {
        what: format!(
            "keyrack fill (it asks for {} missing in env {env}: {})",
            if keys.len() == 1 { "the key" } else { "the keys" },
            keys.join(", ")
        ),
        hint: format!(
            "keyrack import --env {env}{owner} < .env   (KEY=value lines), or one key at a time: printf %s \"$VALUE\" | keyrack set {}",
            flags(rack, &missing[0])
        ),
    }
}

/// The `set` options `fill` uses for the missing key `m` (the guided set-up plans with them).
pub fn set_options(opts: &FillOptions, m: &Missing) -> SetOptions {
    SetOptions {
        key: m.key.clone(),
        env: Some(m.env.clone()),
        vault: opts.vault,
        mech: None,
        org: None,
        exid: None,
        op_vault: None,
        max_duration: None,
        source: SecretSource::Prompt,
        login: opts.login,
        aws: Default::default(),
        allow_dangerous: opts.allow_dangerous,
        github: Default::default(),
        params: Default::default(),
    }
}

/// Asks for one key: (the key, its number, how many, why the previous answer was refused).
pub(crate) type Asker<'a> = dyn FnMut(&Missing, usize, usize, Option<&str>) -> Answer + 'a;

/// How many times a refused value is asked for again.
const TRIES: usize = 3;

/// Runs `fill`: asks (through `ask`) for each key in `missing` and sets it.
pub fn run(
    rack: &Rack,
    opts: &FillOptions,
    env: &str,
    declared: usize,
    missing: &[Missing],
    ask: &mut Asker<'_>,
) -> Result<FillReport> {
    let repo = rack.repo()?;
    let org = repo.as_ref().map(|r| r.org.clone()).unwrap_or_default();
    let mut rows = Vec::new();
    let mut stopped = false;
    for (i, m) in missing.iter().enumerate() {
        let mut row = FillRow {
            key: m.key.clone(),
            slug: format!("{org}.{}.{}", m.env, m.key),
            vault: m.vault,
            status: RowStatus::NotAsked,
            reason: None,
            fix: Some(format!("keyrack set {}", flags(rack, m))),
        };
        if stopped {
            rows.push(row);
            continue;
        }
        let mut set_opts = set_options(opts, m);
        let mut refused: Option<String> = None;
        for _ in 0..TRIES {
            let given = match ask(m, i + 1, missing.len(), refused.as_deref()) {
                Answer::Stop => {
                    stopped = true;
                    row.reason = Some("stopped before it was set".into());
                    break;
                }
                Answer::Skip => {
                    row.status = RowStatus::Skipped;
                    row.reason = Some("skipped".into());
                    row.fix = Some(format!("keyrack set {}", flags(rack, m)));
                    break;
                }
                Answer::Failed(e) => {
                    row.status = RowStatus::Failed;
                    row.reason = Some(e.to_string());
                    if let Some(f) = e.fix() {
                        row.fix = Some(f);
                    }
                    break;
                }
                Answer::Profile(flags) => {
                    set_opts.aws = flags;
                    None
                }
                Answer::Value(v) => Some(v),
            };
            let guided = given.is_none();
            match set::run_given(rack, &set_opts, given) {
                Ok(r) => {
                    row.status = RowStatus::Set;
                    row.slug = r.slug.to_string();
                    row.vault = r.vault;
                    row.reason = None;
                    row.fix = None;
                    break;
                }
                Err(e) => {
                    row.status = RowStatus::Failed;
                    row.reason = Some(e.to_string());
                    if let Some(f) = e.fix() {
                        row.fix = Some(f);
                    }
                    let retry = !guided
                        && matches!(e, Error::ValueRefused { .. } | Error::SecretInput { .. });
                    if !retry {
                        break;
                    }
                    refused = Some(e.to_string());
                }
            }
        }
        rows.push(row);
    }
    Ok(FillReport {
        env: env.into(),
        declared,
        rows,
        stopped,
    })
}
