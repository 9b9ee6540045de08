//! `keyrack init`: create the host manifest (idempotent), generating an identity if needed.

use std::path::PathBuf;

use serde::Serialize;

use super::Rack;
use crate::error::{Error, Result};
use crate::fsio;
use crate::host_manifest::HostManifest;
use crate::identity::{self, Identity};
use crate::repo_manifest::{self, RepoManifest};
use crate::slug;

/// What `init` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReport {
    /// The keyrack home.
    pub home: PathBuf,
    /// The host manifest file.
    pub host_manifest: PathBuf,
    /// Whether the host manifest was created now (false: it existed and decrypts).
    pub created: bool,
    /// The identity file used.
    pub identity: PathBuf,
    /// Whether the identity was generated now.
    pub identity_generated: bool,
    /// The recipient (public key) of the identity.
    pub recipient: String,
    /// The repo manifest, when `--org` was given or one exists.
    pub repo_manifest: Option<PathBuf>,
    /// Whether the repo manifest was created now.
    pub repo_manifest_created: bool,
}

/// Options of `init`.
#[derive(Debug, Default)]
pub struct InitOptions {
    /// Create `keyrack.yml` with this org if absent.
    pub org: Option<String>,
    /// Envs for a new `keyrack.yml`.
    pub envs: Vec<String>,
    /// Label for the first recipient.
    pub label: Option<String>,
}

/// The default label of this machine's recipient: `user@host`.
pub(crate) fn default_label() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    format!("{user}@{host}")
}

/// Runs `init`.
pub fn run(rack: &Rack, opts: &InitOptions) -> Result<InitReport> {
    if let Some(label) = &opts.label {
        super::recipient::validate_label(label)?;
    }
    let home = rack.home();
    if let Some(org) = &opts.org {
        check_org(rack, org, &opts.envs)?; // refused before anything is created
    }
    fsio::ensure_private_dir(home.root())?;
    let _lock = rack.lock()?;
    if !HostManifest::exists(home) {
        // Keys were set here and only the manifest is gone: a new empty one would hide them.
        let left = super::recover::evidence(home)?;
        if left.any() {
            return Err(super::recover::lost(home, &left));
        }
    }
    let (identity, generated) = match identity::discover(rack.explicit_identity(), home)? {
        Some(src) => (Identity::load(src.path(), rack.interact())?, false),
        None => (identity::generate(&home.generated_identity())?, true),
    };
    let created = if HostManifest::exists(home) {
        HostManifest::load(home, &identity)?; // proves this identity can read it
        false
    } else {
        let label = opts.label.clone().unwrap_or_else(default_label);
        HostManifest::new(home, identity.recipient(), &label).save(home)?;
        true
    };
    let report_identity = identity.path().to_path_buf();
    let recipient = identity.recipient().to_string();
    rack.set_identity(identity);

    let (repo_manifest, repo_manifest_created) = match &opts.org {
        Some(org) => repo_manifest_for(rack, org, &opts.envs)?,
        None => (RepoManifest::find(rack.cwd())?, false),
    };
    Ok(InitReport {
        home: home.root().to_path_buf(),
        host_manifest: home.host_manifest(),
        created,
        identity: report_identity,
        identity_generated: generated,
        recipient,
        repo_manifest,
        repo_manifest_created,
    })
}

/// Refuses an `--org` keyrack.yml cannot take (`@all`, a bad name, envs that are not names),
/// and one that differs from the org of the repository's existing keyrack.yml.
fn check_org(rack: &Rack, org: &str, envs: &[String]) -> Result<()> {
    slug::validate_org(org)?;
    if org == slug::ORG_ALL {
        return Err(Error::InvalidInput {
            what: "org",
            value: org.into(),
            reason: "@all is for machine-wide keys, not a repository's org".into(),
            hint: Some("keyrack init --org <your-org>".into()),
        });
    }
    for e in envs {
        slug::validate_env(e)?;
    }
    if let Some(path) = RepoManifest::find(rack.cwd())? {
        let existing = RepoManifest::load(&path)?;
        if existing.org != org {
            return Err(Error::InvalidInput {
                what: "org",
                value: org.into(),
                reason: format!(
                    "{} already declares org '{}'; init does not change it",
                    path.display(),
                    existing.org
                ),
                hint: Some(format!(
                    "run keyrack init (or --org {}) to keep it; to rename the org, edit `org:` in {} (keys set under the old org must be set again)",
                    existing.org,
                    path.display()
                )),
            });
        }
    }
    Ok(())
}

/// The repo manifest for `--org`: the existing one (same org, checked by [`check_org`]), or a new
/// `keyrack.yml` at the repository root (the directory holding `.git`, found by walking up from
/// the working directory; the working directory itself outside a repository).
fn repo_manifest_for(rack: &Rack, org: &str, envs: &[String]) -> Result<(Option<PathBuf>, bool)> {
    if let Some(p) = RepoManifest::find(rack.cwd())? {
        return Ok((Some(p), false));
    }
    let envs = if envs.is_empty() {
        vec!["test".to_string(), "prod".to_string()]
    } else {
        envs.to_vec()
    };
    let mut text =
        format!("# keys this repository needs, per env (see: keyrack --help)\norg: {org}\n");
    for e in &envs {
        text.push_str(&format!("env.{e}: []\n"));
    }
    let root = repo_manifest::repo_root(rack.cwd()).unwrap_or_else(|| rack.cwd().to_path_buf());
    let path = root.join(repo_manifest::FILE_NAMES[0]);
    fsio::write_atomic_through_links(&path, text.as_bytes(), 0o644)?;
    Ok((Some(path), true))
}
