//! Operations: what each keyrack command does, as library calls returning data to render.
//!
//! - [`init`], [`set`], [`list`], [`del`], [`recipient`]: change or read this host's keys
//!   (decrypt the host manifest).
//! - [`unlock`]: pull keys out of vaults into the daemon; relock and status.
//! - [`get`]: the hot path (`get`, `source`, `exec`): daemon round trip, never decrypts.
//! - [`scope`]: which org and env a key request means ([`Scope::resolve`]), for all of them.
//! - [`ci`]: the CI path (`keyrack firewall`): secrets passed as JSON → the declared keys,
//!   through the firewall, for GitHub Actions' `$GITHUB_ENV`; no home, identity or daemon.
//! - [`row`]: the one row type ([`row::KeyRow`]) every command that reports keys returns.

pub mod aws;
pub mod aws_verbs;
pub mod ci;
pub mod del;
pub mod doctor;
pub mod fill;
pub mod get;
pub mod import;
pub mod init;
pub mod list;
pub mod recipient;
pub mod recover;
pub mod row;
pub(crate) mod scope;
pub mod set;
pub mod unlock;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fsio::WriteLock;
use crate::home::Home;
use crate::host_manifest::HostManifest;
use crate::identity::{self, Identity};
use crate::interact::{Interact, NonInteractive};
use crate::repo_manifest::allowlist::Allowlist;
use crate::repo_manifest::RepoManifest;
use crate::slug::{Owner, Slug, ENV_PROD, ENV_SUDO, ORG_ALL};

pub(crate) use scope::Scope;

/// The context every operation runs in: the owner's home, the identity (loaded lazily: the
/// hot path never loads it), the working directory for manifest discovery, and who answers
/// questions ([`Interact`]; [`NonInteractive`] unless [`Rack::with_interact`] says otherwise).
pub struct Rack {
    home: Home,
    identity_path: Option<PathBuf>,
    identity: OnceCell<Identity>,
    cwd: PathBuf,
    interact: Arc<dyn Interact>,
}

impl Rack {
    /// A rack for `owner`, from the environment (`KEYRACK_HOME`, `HOME`, cwd).
    pub fn from_env(owner: Owner, identity: Option<PathBuf>) -> Result<Self> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("read", "the current directory", e))?;
        Ok(Rack {
            home: Home::from_env(owner)?,
            identity_path: identity,
            identity: OnceCell::new(),
            cwd,
            interact: Arc::new(NonInteractive),
        })
    }

    /// A rack over explicit paths (tests, embedding).
    pub fn new(home: Home, identity: Option<PathBuf>, cwd: PathBuf) -> Self {
        Rack {
            home,
            identity_path: identity,
            identity: OnceCell::new(),
            cwd,
            interact: Arc::new(NonInteractive),
        }
    }

    /// The same rack, asking `interact` whatever needs a person (secrets, passphrases, sign-ins).
    pub fn with_interact(mut self, interact: Arc<dyn Interact>) -> Self {
        self.interact = interact;
        self
    }

    /// Who answers questions.
    pub fn interact(&self) -> &dyn Interact {
        &*self.interact
    }

    /// The owner's home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The working directory.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// The identity, loaded on first use (may ask for a passphrase).
    pub(crate) fn identity(&self) -> Result<&Identity> {
        if let Some(id) = self.identity.get() {
            return Ok(id);
        }
        let id =
            identity::load_discovered(self.identity_path.as_deref(), &self.home, self.interact())?;
        Ok(self.identity.get_or_init(|| id))
    }

    pub(crate) fn set_identity(&self, id: Identity) {
        let _ = self.identity.set(id);
    }

    pub(crate) fn explicit_identity(&self) -> Option<&Path> {
        self.identity_path.as_deref()
    }

    /// Decrypts the host manifest.
    pub(crate) fn host(&self) -> Result<HostManifest> {
        if !HostManifest::exists(&self.home) {
            let left = recover::evidence(&self.home)?;
            if left.any() {
                return Err(recover::lost(&self.home, &left));
            }
            return Err(Error::NotInitialised {
                home: self.home.root().to_path_buf(),
                owner: self.home.owner().label().into(),
                owner_flag: self.home.owner().flag(),
            });
        }
        HostManifest::load(&self.home, self.identity()?)
    }

    /// The context vaults run in: this rack's home and identity, `recipients` for new files.
    pub(crate) fn vault_context<'a>(
        &'a self,
        recipients: &'a [crate::crypto::RecipientKey],
        login: crate::aws::login::LoginOptions,
    ) -> Result<crate::vault::VaultContext<'a>> {
        Ok(crate::vault::VaultContext {
            home: &self.home,
            identity: Some(self.identity()?),
            recipients,
            login,
            interact: self.interact(),
        })
    }

    /// Takes the owner's writer lock, then removes the temp files killed writers left where only
    /// lock holders write (os.direct's are plaintext copies of `direct.json`).
    pub(crate) fn lock(&self) -> Result<WriteLock> {
        crate::fsio::ensure_private_dir(self.home.root())?;
        let lock = WriteLock::acquire(&self.home.lock_file())?;
        for dir in self.home.lock_only_dirs() {
            crate::fsio::remove_all_temps(&dir)?;
        }
        Ok(lock)
    }

    /// The repo manifest above the working directory, if there is one.
    pub fn repo(&self) -> Result<Option<RepoManifest>> {
        match RepoManifest::find(&self.cwd)? {
            Some(p) => RepoManifest::load(&p).map(Some),
            None => Ok(None),
        }
    }

    /// The allowlist of the repo manifest above the working directory, if there is one
    /// (cached: a warm call parses no YAML). What `get`, `source` and `exec` check.
    pub fn allowlist(&self) -> Result<Option<Allowlist>> {
        Allowlist::discover(&self.home, &self.cwd)
    }
}

/// The error for an env the repo manifest does not declare.
pub(crate) fn unknown_env(repo: &RepoManifest, env: &str) -> Error {
    scope::unknown_env_in(repo, env)
}

/// The closest of `candidates` to a mistyped `word`, if one is close enough to be what was meant:
/// a case-insensitive edit distance (transpositions count once) of at most 2, and at most a
/// third of the word's length (at least 1).
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let w = word.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).clamp(1, 2);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// ` (did you mean KEY?)` when the repo manifest declares a key close to `key` (in `env`, or in
/// any env), else the empty string.
pub(crate) fn did_you_mean_key(repo: &RepoManifest, env: Option<&str>, key: &str) -> String {
    let declared: Vec<&str> = match env {
        Some(e) => repo
            .keys_for(e)
            .into_iter()
            .map(|k| k.key.as_str())
            .collect(),
        None => repo
            .envs
            .values()
            .flatten()
            .chain(repo.all.iter())
            .map(|k| k.key.as_str())
            .collect(),
    };
    did_you_mean_among(declared, key)
}

/// [`did_you_mean_key`] for the hot path's [`Allowlist`].
pub(crate) fn did_you_mean_allowed_key(repo: &Allowlist, env: Option<&str>, key: &str) -> String {
    let declared: Vec<&str> = match env {
        Some(e) => repo.keys_for(e).into_iter().map(|k| k.key).collect(),
        None => repo.declared_keys().collect(),
    };
    did_you_mean_among(declared, key)
}

fn did_you_mean_among(declared: Vec<&str>, key: &str) -> String {
    match did_you_mean(key, declared) {
        Some(near) => format!(" (did you mean {near}?)"),
        None => String::new(),
    }
}

/// The envs in the order a fix line suggests them: everyday envs first, `prod` and `sudo` last,
/// so the first suggestion is never the destructive one.
pub(crate) fn order_for_fix(envs: &[String]) -> Vec<String> {
    let rank = |e: &str| match e {
        ENV_PROD => 1,
        ENV_SUDO => 2,
        _ => 0,
    };
    let mut v = envs.to_vec();
    v.sort_by_key(|e| rank(e));
    v
}

/// `pass one of: --env test | --env prod` (every candidate, prod last).
pub(crate) fn env_choices(envs: &[String]) -> String {
    let list: Vec<String> = order_for_fix(envs)
        .into_iter()
        .map(|e| format!("--env {e}"))
        .collect();
    format!("pass one of: {}", list.join(" | "))
}

/// The env of `key` among several that declare it: the one whose grant the daemon holds, when
/// exactly one is unlocked; else [`Error::EnvAmbiguous`] listing every candidate.
pub(crate) fn env_by_unlocked(
    home: &crate::home::Home,
    org: &str,
    key: &str,
    candidates: &[String],
) -> Result<String> {
    let held = crate::daemon::client::Client::new(home)
        .status()?
        .map(|s| s.grants)
        .unwrap_or_default();
    let unlocked: Vec<&String> = candidates
        .iter()
        .filter(|e| Slug::new(org, e, key).is_ok_and(|slug| held.iter().any(|g| g.slug == slug)))
        .collect();
    match unlocked.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::EnvAmbiguous {
            key: key.into(),
            reason: format!(
                "it is declared in {}, and none of them is unlocked",
                candidates.join(", ")
            ),
            hint: env_choices(candidates),
        }),
        many => Err(Error::EnvAmbiguous {
            key: key.into(),
            reason: format!(
                "it is declared in {}, and unlocked in {}",
                candidates.join(", "),
                many.iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: env_choices(candidates),
        }),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// The `--env`/`--owner` flags that select every key of one env again in a fix command.
pub(crate) fn env_flags(env: &str, org: &str, owner: &Owner) -> String {
    let mut s = format!("--env {env}");
    if org == ORG_ALL {
        s.push_str(" --org @all");
    }
    s.push_str(&owner.flag());
    s
}

pub use crate::slug::key_flags;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_not_strangers() {
        let envs = ["test", "prod", "staging"];
        assert_eq!(did_you_mean("tset", envs).as_deref(), Some("test"));
        assert_eq!(did_you_mean("stagin", envs).as_deref(), Some("staging"));
        assert_eq!(did_you_mean("dev", envs), None);
        let keys = ["XAI_API_KEY", "AWS_PROFILE"];
        assert_eq!(
            did_you_mean("XAI_APIKEY", keys).as_deref(),
            Some("XAI_API_KEY")
        );
        assert_eq!(
            did_you_mean("aws_profile", keys).as_deref(),
            Some("AWS_PROFILE")
        );
        assert_eq!(did_you_mean("GITHUB_TOKEN", keys), None);
    }

    #[test]
    fn fix_lines_list_every_env_and_prod_last() {
        let envs: Vec<String> = ["prod", "dev", "sudo", "test"].map(String::from).to_vec();
        assert_eq!(
            env_choices(&envs),
            "pass one of: --env dev | --env test | --env prod | --env sudo"
        );
    }
}
