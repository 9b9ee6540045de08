//! The daemon's in-memory grant store. Expired grants are dropped on every read and by the
//! sweep; secrets are zeroized when dropped (see [`crate::secret::Secret`]).
//!
//! A grant may carry a file to release (the SSO token an aws.config grant mirrors): the store
//! removes it when the last grant carrying it goes, and keeps the [`Ledger`] in step — it takes
//! the file over when the grant arrives and forgets it once removed — so a daemon that dies
//! without releasing leaves a record the next client acts on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ledger::Ledger;
use super::protocol::{now_ms, HeldGrant, RelockScope};
use crate::slug::Slug;
use crate::vault::Grant;

/// Grants by slug.
#[derive(Default, Debug)]
pub struct Store {
    grants: HashMap<Slug, Grant>,
    ledger: Option<Ledger>,
}

/// The file a grant carries that must not outlive it.
fn release_file(g: &Grant) -> Option<&Path> {
    g.aws.as_ref().map(|a| a.cache_file.as_path())
}

impl Store {
    /// A store that keeps `ledger` in step with the files its grants carry.
    pub fn with_ledger(ledger: Ledger) -> Self {
        Store {
            grants: HashMap::new(),
            ledger: Some(ledger),
        }
    }

    /// Drops grants whose expiry has passed; returns the slugs dropped.
    pub fn sweep(&mut self, now: u64) -> Vec<Slug> {
        let expired: Vec<Slug> = self
            .grants
            .iter()
            .filter(|(_, g)| g.expires_at.is_none_or(|t| t <= now))
            .map(|(s, _)| s.clone())
            .collect();
        self.remove(&expired);
        expired
    }

    /// Removes grants; an SSO token mirrored into `~/.aws/sso/cache` is deleted when the last
    /// grant of its session goes (so AWS tools stop working exactly when keyrack's grant ends).
    fn remove(&mut self, slugs: &[Slug]) {
        let mut files: Vec<PathBuf> = Vec::new();
        for s in slugs {
            if let Some(g) = self.grants.remove(s) {
                if let Some(f) = release_file(&g) {
                    files.push(f.to_path_buf());
                }
            }
        }
        files.retain(|f| !self.grants.values().any(|g| release_file(g) == Some(f)));
        files.sort();
        files.dedup();
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
        if let Some(l) = &self.ledger {
            let _ = l.release(&files);
        }
    }

    /// The live aws.config grant of `profile`.
    pub fn aws_profile(&mut self, profile: &str) -> Option<Grant> {
        self.sweep(now_ms());
        self.grants
            .values()
            .find(|g| g.aws.as_ref().is_some_and(|a| a.profile == profile))
            .cloned()
    }

    /// Caches role credentials with a grant.
    pub fn aws_store_credentials(
        &mut self,
        slug: &Slug,
        creds: crate::aws::portal::RoleCredentials,
    ) -> usize {
        match self.grants.get_mut(slug).and_then(|g| g.aws.as_mut()) {
            Some(a) => {
                a.role_credentials = Some(creds);
                1
            }
            None => 0,
        }
    }

    /// Forgets every grant of an SSO session.
    pub fn aws_forget_session(&mut self, session: &str) -> Vec<Slug> {
        let chosen: Vec<Slug> = self
            .grants
            .values()
            .filter(|g| g.aws.as_ref().is_some_and(|a| a.session == session))
            .map(|g| g.slug.clone())
            .collect();
        self.remove(&chosen);
        chosen
    }

    /// Stores grants, replacing any with the same slug. Grants without an expiry are refused.
    pub fn unlock(&mut self, grants: Vec<Grant>) -> usize {
        let mut n = 0;
        let mut files = Vec::new();
        for g in grants {
            if g.expires_at.is_some() {
                if let Some(f) = release_file(&g) {
                    files.push(f.to_path_buf());
                }
                self.grants.insert(g.slug.clone(), g);
                n += 1;
            }
        }
        if let Some(l) = &self.ledger {
            // this daemon answers for these files from now on
            let _ = l.adopt(&files);
        }
        n
    }

    /// Looks each slug up, falling back to `org.all.KEY`.
    pub fn get(&mut self, slugs: &[Slug]) -> Vec<Option<Grant>> {
        self.sweep(now_ms());
        slugs
            .iter()
            .map(|s| {
                self.grants
                    .get(s)
                    .or_else(|| self.grants.get(&s.with_env_all()))
                    .cloned()
            })
            .collect()
    }

    /// What is held, sorted by slug.
    pub fn status(&mut self) -> Vec<HeldGrant> {
        self.sweep(now_ms());
        let mut out: Vec<HeldGrant> = self
            .grants
            .values()
            .map(|g| HeldGrant {
                slug: g.slug.clone(),
                env: g.slug.env().into(),
                vault: g.vault,
                expires_at: g.expires_at.unwrap_or(0),
                sso_cache_file: release_file(g).map(Path::to_path_buf),
                aws_profile: g.aws.as_ref().map(|a| a.profile.clone()),
            })
            .collect();
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        out
    }

    /// Forgets the grants in scope; returns their slugs.
    pub fn relock(&mut self, scope: &RelockScope) -> Vec<Slug> {
        let chosen: Vec<Slug> = self
            .grants
            .keys()
            .filter(|s| match scope {
                RelockScope::All => true,
                RelockScope::Env { env } => s.env() == env,
                RelockScope::Slugs { slugs } => slugs.contains(s),
            })
            .cloned()
            .collect();
        self.remove(&chosen);
        let mut chosen = chosen;
        chosen.sort();
        chosen
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// How many grants are held.
    pub fn len(&self) -> usize {
        self.grants.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mech::Mech;
    use crate::secret::Secret;
    use crate::vault::VaultKind;

    fn grant(slug: &str, expires_at: u64) -> Grant {
        Grant {
            slug: Slug::parse(slug).unwrap(),
            secret: Secret::new("v".into()),
            vault: VaultKind::OsSecure,
            mech: Mech::Replica,
            expires_at: Some(expires_at),
            aws: None,
        }
    }

    #[test]
    fn expired_grants_are_never_returned() {
        let mut s = Store::default();
        let now = now_ms();
        s.unlock(vec![
            grant("a.test.K", now - 1),
            grant("a.test.L", now + 60_000),
        ]);
        let got = s.get(&[
            Slug::parse("a.test.K").unwrap(),
            Slug::parse("a.test.L").unwrap(),
        ]);
        assert!(got[0].is_none());
        assert!(got[1].is_some());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn falls_back_to_env_all_keeping_the_true_slug() {
        let mut s = Store::default();
        s.unlock(vec![grant("a.all.K", now_ms() + 60_000)]);
        let got = s.get(&[Slug::parse("a.test.K").unwrap()]);
        assert_eq!(got[0].as_ref().unwrap().slug.to_string(), "a.all.K");
    }

    #[test]
    fn relock_by_env_leaves_others() {
        let mut s = Store::default();
        let t = now_ms() + 60_000;
        s.unlock(vec![grant("a.test.K", t), grant("a.prod.K", t)]);
        let gone = s.relock(&RelockScope::Env { env: "test".into() });
        assert_eq!(gone.len(), 1);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn grants_without_expiry_are_refused() {
        let mut s = Store::default();
        let mut g = grant("a.test.K", 0);
        g.expires_at = None;
        assert_eq!(s.unlock(vec![g]), 0);
        assert!(s.is_empty());
    }
}
