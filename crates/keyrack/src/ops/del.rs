//! `keyrack del`: remove the host entry, the vault's copy (owned vaults), the daemon grant and
//! the repo manifest line.

use std::path::PathBuf;

use serde::Serialize;

use super::{is_host_only, resolve_scope, Rack};
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
    /// The repo manifest the key was removed from.
    pub manifest_updated: Option<PathBuf>,
}

/// Runs `del`.
pub fn run(rack: &Rack, key: &str, env: Option<&str>, org: Option<&str>) -> Result<DelReport> {
    // keyrack.yml and the host manifest are read, edited and written under the lock, so a
    // parallel set/del cannot slip a change between our read and our write.
    let _lock = rack.lock()?;
    let repo = rack.repo()?;
    let scope = resolve_scope(repo.as_ref(), key, env, org, false)?;
    let slug = Slug::new(&scope.org, &scope.env, key)?;
    if let (Some(r), false) = (&repo, is_host_only(&scope)) {
        fsio::resolve_link_target(&r.path)?; // a refused link fails before anything is removed
    }
    let mut host = rack.host()?;
    let mut report = DelReport {
        slug: slug.clone(),
        vault: None,
        secret_destroyed: false,
        grant_dropped: false,
        manifest_updated: None,
    };
    if let Some(entry) = host.entry(&slug).cloned() {
        let recipients = host.recipient_keys()?;
        let ctx =
            rack.vault_context(&recipients, crate::aws::login::LoginOptions::never_prompt())?;
        vault::open(entry.vault, ctx).del(&entry)?;
        report.vault = Some(entry.vault);
        report.secret_destroyed = vault::info(entry.vault).custody == Custody::Owns;
        host.hosts.remove(&slug.to_string());
        host.save(rack.home())?;
        fsio::remove_if_exists(&rack.home().inventory_marker(&slug))?;
    }
    report.grant_dropped = !Client::new(rack.home())
        .relock(RelockScope::Slugs {
            slugs: vec![slug.clone()],
        })
        .unwrap_or_default()
        .is_empty();
    if let (Some(r), false) = (&repo, is_host_only(&scope)) {
        if edit::edit_file(&r.path, |t| edit::remove_key(t, &scope.env, key))? {
            report.manifest_updated = Some(r.path.clone());
        }
    }
    if report.vault.is_none() && report.manifest_updated.is_none() && !report.grant_dropped {
        return Err(Error::NotSet {
            slug: slug.to_string(),
            hint: "see what is set with: keyrack list".into(),
        });
    }
    Ok(report)
}
