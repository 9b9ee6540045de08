//! `keyrack del`: remove this host's copy of a key (the host entry, the vault's copy for owned
//! vaults, the daemon grant). The line in the team's `keyrack.yml` stays unless
//! `from_manifest` (`--from-manifest`): that file is shared, and other hosts still need the key.

use std::path::PathBuf;

use serde::Serialize;

use super::scope::{declarations, Infer, Scope};
use super::Rack;
use crate::daemon::client::Client;
use crate::daemon::protocol::RelockScope;
use crate::error::{Error, Result};
use crate::fsio;
use crate::grant::{Custody, VaultKind};
use crate::repo_manifest::edit;
use crate::slug::Slug;
use crate::vault;

/// What `del` removed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelReport {
    /// The slug.
    pub slug: Slug,
    /// The vault the host entry pointed at, if there was one.
    pub vault: Option<VaultKind>,
    /// Whether the vault's copy was destroyed (owned vaults).
    pub secret_destroyed: bool,
    /// Whether a daemon grant was dropped.
    pub grant_dropped: bool,
    /// The repo manifest the key was removed from (only with `--from-manifest`).
    pub manifest_updated: Option<PathBuf>,
    /// The repo manifest that still declares the key (without `--from-manifest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_kept: Option<PathBuf>,
}

/// What to delete.
#[derive(Debug, Clone, Default)]
pub struct DelOptions {
    /// The key.
    pub key: String,
    /// The env (inferred from the repo manifest when unambiguous).
    pub env: Option<String>,
    /// `@all` for a machine-wide key.
    pub org: Option<String>,
    /// Also remove the key's line from the repo manifest (the team's file).
    pub from_manifest: bool,
}

/// Runs `del`.
pub fn run(rack: &Rack, opts: &DelOptions) -> Result<DelReport> {
    let key = opts.key.as_str();
    // keyrack.yml and the host manifest are read, edited and written under the lock, so a
    // parallel set/del cannot slip a change between our read and our write.
    let _lock = rack.lock()?;
    let repo = rack.repo()?;
    let scope = Scope::resolve(
        declarations(repo.as_ref()),
        key,
        opts.env.as_deref(),
        opts.org.as_deref(),
        Infer::Declared,
    )?;
    let slug = scope.slug(key)?;
    let edits_manifest = opts.from_manifest && !scope.is_host_only();
    if let (Some(r), true) = (&repo, edits_manifest) {
        fsio::resolve_link_target(&r.path)?; // a refused link fails before anything is removed
    }
    let mut host = rack.host()?;
    let mut report = DelReport {
        slug: slug.clone(),
        vault: None,
        secret_destroyed: false,
        grant_dropped: false,
        manifest_updated: None,
        manifest_kept: None,
    };
    if let Some(entry) = host.entry(&slug).cloned() {
        let recipients = host.recipient_keys()?;
        let ctx =
            rack.vault_context(&recipients, crate::aws::login::LoginOptions::never_prompt())?;
        vault::open(entry.vault, ctx).del(&entry)?;
        report.vault = Some(entry.vault);
        report.secret_destroyed = vault::info(entry.vault).custody_of(&entry) == Custody::Owns;
        host.hosts.remove(&slug);
        host.save(rack.home())?;
        fsio::remove_if_exists(&rack.home().inventory_marker(&slug))?;
    }
    report.grant_dropped = !Client::new(rack.home())
        .relock(RelockScope::Slugs {
            slugs: vec![slug.clone()],
        })
        .unwrap_or_default()
        .is_empty();
    let declared = match (&repo, scope.is_host_only()) {
        (Some(r), false) => r.allows(&scope.env, key).then_some(r),
        _ => None,
    };
    if let (Some(r), true) = (&repo, edits_manifest) {
        if edit::edit_file(&r.path, |t| edit::remove_key(t, &scope.env, key))? {
            report.manifest_updated = Some(r.path.clone());
        }
    } else if let Some(r) = declared {
        report.manifest_kept = Some(r.path.clone());
    }
    if report.vault.is_none() && report.manifest_updated.is_none() && !report.grant_dropped {
        let flags = super::key_flags(key, &scope.env, &scope.org, rack.home().owner());
        return Err(Error::NotSet {
            slug: slug.to_string(),
            hint: match declared {
                Some(r) => format!(
                    "nothing to delete here; to remove it from {} (the team's file) too: keyrack del {flags} --from-manifest",
                    r.path.display()
                ),
                None => "see what is set with: keyrack list".into(),
            },
        });
    }
    Ok(report)
}
