//! `os.daemon`: the secret lives only in the session daemon's memory. `set` sends it straight to
//! the daemon; once the daemon exits, the key is `lost` and must be set again.

use std::time::Duration;

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::daemon::client::Client;
use crate::daemon::protocol::RelockScope;
use crate::error::Result;
use crate::grant::{time, Mech};
use crate::host_manifest::{HostEntry, Meta};
use crate::secret::Secret;
use crate::slug::Slug;

/// How long an os.daemon secret lives in the daemon when set.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(9 * 3600);

/// What os.daemon can do.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OsDaemon,
    exid_with: &[],
    location_with: &[],
    writable: true,
    lives_in_daemon: true,
    custody: Custody::Owns,
    owns_with: &[],
    mechs: &[Mech::Session, Mech::Replica],
    default_mech: Mech::Session,
    default_for_keys: &[],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |ctx| Box::new(OsDaemon::new(ctx)),
    open_for_set: None,
};

/// The os.daemon adapter.
pub(crate) struct OsDaemon {
    client: Client,
}

impl OsDaemon {
    /// An adapter talking to the context owner's daemon.
    pub(crate) fn new(ctx: VaultContext<'_>) -> Self {
        OsDaemon {
            client: Client::new(ctx.home),
        }
    }

    fn held(&self, slug: &Slug) -> Result<Option<Grant>> {
        Ok(self
            .client
            .get(vec![slug.clone()])?
            .and_then(|mut v| v.pop().flatten())
            .filter(|g| &g.slug == slug))
    }
}

impl Vault for OsDaemon {
    fn kind(&self) -> VaultKind {
        VaultKind::OsDaemon
    }

    fn store(&self, slug: &Slug, mech: Mech, secret: &Secret) -> Result<Stored> {
        self.client.ensure_running()?;
        let previous = self.held(slug)?;
        let mut grant = Grant::new(slug.clone(), secret.clone(), VaultKind::OsDaemon, mech);
        grant.expires_at = time::now().checked_add(DEFAULT_TTL).ok();
        self.client.unlock(vec![grant])?;
        let client = self.client.clone();
        let slug = slug.clone();
        Ok(Stored::new(None, Meta::None, move || match previous {
            Some(g) => client.unlock(vec![g]).map(|_| ()),
            None => client
                .relock(RelockScope::Slugs { slugs: vec![slug] })
                .map(|_| ()),
        }))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        // The daemon's copy is the vault itself: reading it leaves nothing to release.
        Ok(match self.held(&entry.slug)? {
            Some(g) => Read::Granted(g),
            None => Read::Lost(
                "the session daemon no longer holds it (it exited or the grant expired)".into(),
            ),
        })
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        self.client
            .relock(RelockScope::Slugs {
                slugs: vec![entry.slug.clone()],
            })
            .map(|_| ())
    }
}
