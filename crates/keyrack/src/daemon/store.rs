//! The daemon's in-memory grant store. Expired grants are dropped on every read and by the
//! sweep; secrets are zeroized when dropped (see [`crate::secret::Secret`]).
//!
//! A grant may carry files to release ([`Grant::release`], e.g. a mirrored token): the store
//! removes each file when the last grant carrying it goes, and keeps the [`Ledger`] in step — it
//! takes a file over when its grant arrives and forgets it once removed — so a daemon that dies
//! without releasing leaves a record the next client acts on.
//!
//! A grant whose [`Grant::renew_at`] passed is handed out by [`Store::due`] to be renewed (by the
//! server, outside the store's lock) and the outcome applied with [`Store::renewed`]. A grant
//! that ends leaves an [`Ended`] record (bounded in number and age) for GET and STATUS; one its
//! vault ended (nobody asked for it, e.g. a session that is over) keeps an idle daemon running
//! until a GET or STATUS has reported it ([`Store::is_idle`]), so the reason is not lost before
//! anyone asks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;

use super::ledger::Ledger;
use super::protocol::{HeldGrant, RelockScope};
use crate::grant::{EndReason, Ended, Grant, Renewal};
use crate::secret::Secret;
use crate::slug::Slug;

/// How long after a renewal that changed nothing (or is still running) the grant is renewed
/// again.
pub(crate) const RENEW_RETRY: Duration = Duration::from_secs(60);
/// How many ended grants are remembered.
pub(crate) const MAX_ENDED: usize = 256;
/// How long an ended grant is remembered.
pub(crate) const ENDED_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Held {
    grant: Grant,
    /// Changes whenever the grant is replaced, renewed or updated: a renewal computed from an
    /// older generation is dropped.
    generation: u64,
    /// When to ask for a renewal next.
    renew_next: Option<Timestamp>,
}

/// Grants by slug.
#[derive(Default, Debug)]
pub(crate) struct Store {
    grants: HashMap<Slug, Held>,
    ended: HashMap<Slug, Ended>,
    /// Ended records of grants their vault ended that no GET or STATUS has returned yet.
    unreported: std::collections::HashSet<Slug>,
    ledger: Option<Ledger>,
    generation: u64,
}

/// A grant to renew, as handed out by [`Store::due`].
#[derive(Debug)]
pub(crate) struct Due {
    /// The grant as held.
    pub grant: Grant,
    generation: u64,
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

impl Store {
    /// A store that keeps `ledger` in step with the files its grants carry.
    pub(crate) fn with_ledger(ledger: Ledger) -> Self {
        Store {
            ledger: Some(ledger),
            ..Store::default()
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Drops grants whose expiry has passed (and ended records too old to matter); returns the
    /// slugs dropped.
    pub(crate) fn sweep(&mut self, now: Timestamp) -> Vec<Slug> {
        let expired: Vec<Slug> = self
            .grants
            .iter()
            .filter(|(_, h)| h.grant.expires_at.is_none_or(|t| t <= now))
            .map(|(s, _)| s.clone())
            .collect();
        self.remove(&expired, EndReason::Expired, now);
        let horizon = now.checked_sub(ENDED_FOR).unwrap_or(Timestamp::MIN);
        self.ended.retain(|_, e| e.at > horizon);
        let ended = &self.ended;
        self.unreported.retain(|s| ended.contains_key(s));
        expired
    }

    /// Removes grants, remembering why; each file they carried is removed once no grant left
    /// carries it (so a mirrored token stops working exactly when the last grant using it ends).
    fn remove(&mut self, slugs: &[Slug], why: EndReason, now: Timestamp) {
        let mut files: Vec<PathBuf> = Vec::new();
        for s in slugs {
            if let Some(h) = self.grants.remove(s) {
                files.extend(h.grant.release.iter().cloned());
                self.remember(Ended {
                    slug: h.grant.slug,
                    vault: h.grant.vault,
                    at: now,
                    why: why.clone(),
                });
            }
        }
        files.retain(|f| !self.grants.values().any(|h| h.grant.release.contains(f)));
        files.sort();
        files.dedup();
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
        if let Some(l) = &self.ledger {
            let _ = l.release(&files);
        }
    }

    /// Removes each of `files` that no held grant carries (and its ledger record).
    fn release_unheld(&mut self, files: &[PathBuf]) {
        let files: Vec<PathBuf> = files
            .iter()
            .filter(|f| !self.grants.values().any(|h| h.grant.release.contains(f)))
            .cloned()
            .collect();
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
        if let (Some(l), false) = (&self.ledger, files.is_empty()) {
            let _ = l.release(&files);
        }
    }

    fn remember(&mut self, e: Ended) {
        if self.ended.len() >= MAX_ENDED && !self.ended.contains_key(&e.slug) {
            if let Some(oldest) = self
                .ended
                .values()
                .min_by_key(|e| e.at)
                .map(|e| e.slug.clone())
            {
                self.ended.remove(&oldest);
                self.unreported.remove(&oldest);
            }
        }
        if matches!(e.why, EndReason::Ended { .. }) {
            self.unreported.insert(e.slug.clone());
        } else {
            self.unreported.remove(&e.slug);
        }
        self.ended.insert(e.slug.clone(), e);
    }

    /// Stores grants, replacing any with the same slug. Grants without an expiry are refused.
    pub(crate) fn unlock(&mut self, grants: Vec<Grant>) -> usize {
        let mut n = 0;
        let mut files = Vec::new();
        for g in grants {
            if g.expires_at.is_none() {
                continue;
            }
            files.extend(g.release.iter().cloned());
            self.ended.remove(&g.slug);
            self.unreported.remove(&g.slug);
            let generation = self.next_generation();
            self.grants.insert(
                g.slug.clone(),
                Held {
                    renew_next: g.renew_at,
                    grant: g,
                    generation,
                },
            );
            n += 1;
        }
        if let Some(l) = &self.ledger {
            // this daemon answers for these files from now on
            let _ = l.adopt(&files);
        }
        n
    }

    /// Looks each slug up, falling back to `org.all.KEY`; for each one not granted, what ended
    /// lately under either name.
    pub(crate) fn get(
        &mut self,
        slugs: &[Slug],
        now: Timestamp,
    ) -> (Vec<Option<Grant>>, Vec<Ended>) {
        self.sweep(now);
        let mut ended = Vec::new();
        let grants = slugs
            .iter()
            .map(|s| {
                let all = s.with_env_all();
                let found = self
                    .grants
                    .get(s)
                    .or_else(|| self.grants.get(&all))
                    .map(|h| h.grant.clone());
                if found.is_none() {
                    for e in [self.ended.get(s), self.ended.get(&all)]
                        .into_iter()
                        .flatten()
                    {
                        if !ended.contains(e) {
                            self.unreported.remove(&e.slug);
                            ended.push(e.clone());
                        }
                    }
                }
                found
            })
            .collect();
        (grants, ended)
    }

    /// The grants carrying label `name` = `value`, by slug.
    pub(crate) fn by_label(&mut self, name: &str, value: &str, now: Timestamp) -> Vec<Grant> {
        self.sweep(now);
        let mut out: Vec<Grant> = self
            .grants
            .values()
            .filter(|h| h.grant.has_label(name, value))
            .map(|h| h.grant.clone())
            .collect();
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        out
    }

    /// Replaces a held grant's payload and renewal deadline; returns how many grants changed.
    pub(crate) fn update(
        &mut self,
        slug: &Slug,
        payload: Secret,
        replaces: Option<&Secret>,
        renew_at: Option<Timestamp>,
    ) -> usize {
        let generation = self.generation + 1;
        match self.grants.get_mut(slug) {
            Some(h) if replaces.is_some_and(|r| h.grant.payload.as_ref() != Some(r)) => 0,
            Some(h) => {
                h.grant.payload = Some(payload);
                h.grant.renew_at = renew_at;
                h.renew_next = renew_at;
                h.generation = generation;
                self.generation = generation;
                1
            }
            None => 0,
        }
    }

    /// The grants whose renewal is due at `now`. Each is due again only after [`RENEW_RETRY`]
    /// unless its renewal changes that.
    pub(crate) fn due(&mut self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        for h in self.grants.values_mut() {
            if h.grant.is_expired(now) || h.renew_next.is_none_or(|t| t > now) {
                continue;
            }
            h.renew_next = Some(after(now, RENEW_RETRY));
            out.push(Due {
                grant: h.grant.clone(),
                generation: h.generation,
            });
        }
        out.sort_by(|a, b| a.grant.slug.cmp(&b.grant.slug));
        out
    }

    /// Applies the outcome of renewing `due`. A renewal of a grant that was replaced, updated or
    /// dropped meanwhile is ignored. A renewed grant keeps its slug, vault, mech, labels and
    /// files, and never lives longer than before.
    ///
    /// A renewal may have rewritten the files its grant carries (a refreshed token mirror): when
    /// that grant ended while it ran, those files are released again, unless a grant still held
    /// carries them — a relock stays a relock.
    pub fn renewed(&mut self, due: &Due, outcome: Renewal, now: Timestamp) {
        let Some(h) = self.grants.get_mut(&due.grant.slug) else {
            self.release_unheld(&due.grant.release);
            return;
        };
        if h.generation != due.generation {
            return;
        }
        match outcome {
            Renewal::Keep => {}
            Renewal::End(reason) => {
                self.remove(
                    std::slice::from_ref(&due.grant.slug),
                    EndReason::Ended { reason },
                    now,
                );
            }
            Renewal::Renewed(g) => {
                let held = &mut h.grant;
                held.secret = g.secret;
                held.payload = g.payload;
                held.expires_at = match (held.expires_at, g.expires_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                held.renew_at = g.renew_at;
                h.renew_next = g.renew_at;
                self.generation += 1;
                h.generation = self.generation;
            }
        }
    }

    /// What is held, sorted by slug, and what ended lately.
    pub(crate) fn status(&mut self, now: Timestamp) -> (Vec<HeldGrant>, Vec<Ended>) {
        self.sweep(now);
        let mut held: Vec<HeldGrant> = self
            .grants
            .values()
            .map(|h| HeldGrant {
                slug: h.grant.slug.clone(),
                env: h.grant.slug.env().into(),
                vault: h.grant.vault,
                mech: h.grant.mech,
                expires_at: h.grant.expires_at.unwrap_or(Timestamp::UNIX_EPOCH),
                renew_at: h.renew_next,
                labels: h.grant.labels.clone(),
                release: h.grant.release.clone(),
            })
            .collect();
        held.sort_by(|a, b| a.slug.cmp(&b.slug));
        let mut ended: Vec<Ended> = self.ended.values().cloned().collect();
        ended.sort_by(|a, b| a.slug.cmp(&b.slug));
        self.unreported.clear();
        (held, ended)
    }

    /// Forgets the grants in scope; returns their slugs.
    pub(crate) fn relock(&mut self, scope: &RelockScope, now: Timestamp) -> Vec<Slug> {
        let mut chosen: Vec<Slug> = self
            .grants
            .values()
            .filter(|h| match scope {
                RelockScope::All => true,
                RelockScope::Env { env } => h.grant.slug.env() == env,
                RelockScope::Slugs { slugs } => slugs.contains(&h.grant.slug),
                RelockScope::Label { name, value } => h.grant.has_label(name, value),
            })
            .map(|h| h.grant.slug.clone())
            .collect();
        self.remove(&chosen, EndReason::Relocked, now);
        chosen.sort();
        chosen
    }

    /// Whether nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Whether an idle daemon may exit: nothing is held, and no grant its vault ended waits to
    /// be reported by a GET or STATUS.
    pub fn is_idle(&self) -> bool {
        self.grants.is_empty() && self.unreported.is_empty()
    }

    /// How many grants are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.grants.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Mech, VaultKind};

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn secs(n: i64) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(n)
    }

    fn grant(slug: &str, expires_at: Timestamp) -> Grant {
        let mut g = Grant::new(
            Slug::parse(slug).unwrap(),
            Secret::new("v".into()),
            VaultKind::OsSecure,
            Mech::Replica,
        );
        g.expires_at = Some(expires_at);
        g
    }

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    #[test]
    fn expired_grants_are_never_returned_and_say_so() {
        let mut s = Store::default();
        let now = now();
        s.unlock(vec![
            grant("a.test.K", now - secs(1)),
            grant("a.test.L", now + secs(60)),
        ]);
        let (got, ended) = s.get(&[slug("a.test.K"), slug("a.test.L")], now);
        assert!(got[0].is_none());
        assert!(got[1].is_some());
        assert_eq!(s.len(), 1);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].slug, slug("a.test.K"));
        assert_eq!(ended[0].why, EndReason::Expired);
    }

    #[test]
    fn falls_back_to_env_all_keeping_the_true_slug() {
        let mut s = Store::default();
        s.unlock(vec![grant("a.all.K", now() + secs(60))]);
        let (got, _) = s.get(&[slug("a.test.K")], now());
        assert_eq!(got[0].as_ref().unwrap().slug.to_string(), "a.all.K");
    }

    #[test]
    fn relock_by_env_or_label_leaves_others() {
        let mut s = Store::default();
        let t = now() + secs(60);
        let mut labelled = grant("a.dev.K", t);
        labelled.labels.insert("x.session".into(), "s1".into());
        s.unlock(vec![grant("a.test.K", t), grant("a.prod.K", t), labelled]);
        let gone = s.relock(&RelockScope::Env { env: "test".into() }, now());
        assert_eq!(gone, vec![slug("a.test.K")]);
        assert_eq!(s.by_label("x.session", "s1", now()).len(), 1);
        let gone = s.relock(
            &RelockScope::Label {
                name: "x.session".into(),
                value: "s1".into(),
            },
            now(),
        );
        assert_eq!(gone, vec![slug("a.dev.K")]);
        assert_eq!(s.len(), 1);
        let (_, ended) = s.status(now());
        assert!(ended.iter().all(|e| e.why == EndReason::Relocked));
        assert_eq!(ended.len(), 2);
        // a new grant of the slug clears its ended record
        s.unlock(vec![grant("a.test.K", t)]);
        assert_eq!(s.status(now()).1.len(), 1);
    }

    #[test]
    fn grants_without_expiry_are_refused() {
        let mut s = Store::default();
        let mut g = grant("a.test.K", now());
        g.expires_at = None;
        assert_eq!(s.unlock(vec![g]), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn a_file_is_released_when_the_last_grant_carrying_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mirror.json");
        std::fs::write(&f, "t").unwrap();
        let mut s = Store::default();
        let t = now() + secs(60);
        let (mut a, mut b) = (grant("a.test.K", t), grant("a.prod.K", t));
        a.release.push(f.clone());
        b.release.push(f.clone());
        s.unlock(vec![a, b]);
        s.relock(&RelockScope::Env { env: "test".into() }, now());
        assert!(f.exists(), "a.prod.K still carries it");
        s.relock(&RelockScope::All, now());
        assert!(!f.exists());
    }

    #[test]
    fn renewals_are_due_once_applied_once_and_never_extend_a_grant() {
        let mut s = Store::default();
        let now = now();
        let mut g = grant("a.test.K", now + secs(600));
        g.renew_at = Some(now - secs(1));
        s.unlock(vec![g]);
        let due = s.due(now);
        assert_eq!(due.len(), 1);
        assert!(s.due(now).is_empty(), "not handed out twice while it runs");
        let mut renewed = due[0].grant.clone();
        renewed.secret = Secret::new("w".into());
        renewed.expires_at = Some(now + secs(9999));
        renewed.renew_at = Some(now + secs(300));
        renewed.labels.insert("sneaky".into(), "x".into());
        s.renewed(&due[0], Renewal::Renewed(renewed), now);
        let (got, _) = s.get(&[slug("a.test.K")], now);
        let got = got[0].clone().unwrap();
        assert_eq!(got.secret.expose(), "w");
        assert_eq!(got.expires_at, Some(now + secs(600)), "never extended");
        assert!(got.labels.is_empty(), "labels stay as unlocked");
        // a stale outcome (computed before the grant changed) is dropped
        s.renewed(&due[0], Renewal::End("late".into()), now);
        assert_eq!(s.len(), 1);
        assert!(s.due(now + secs(301)).len() == 1);
    }

    #[test]
    fn a_renewal_that_ends_the_grant_is_remembered_with_its_reason() {
        let mut s = Store::default();
        let now = now();
        let mut g = grant("a.test.K", now + secs(600));
        g.renew_at = Some(now);
        s.unlock(vec![g]);
        let due = s.due(now);
        s.renewed(&due[0], Renewal::End("the session is over".into()), now);
        assert!(s.is_empty());
        assert!(!s.is_idle(), "the daemon stays until someone is told why");
        let (got, ended) = s.get(&[slug("a.test.K")], now);
        assert!(got[0].is_none());
        assert_eq!(
            ended[0].why,
            EndReason::Ended {
                reason: "the session is over".into()
            }
        );
        assert!(s.is_idle(), "reported: an idle daemon may exit now");
    }

    #[test]
    fn a_renewal_that_outlived_its_grant_releases_its_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mirror.json");
        let mut s = Store::default();
        let now = now();
        let mut g = grant("a.test.K", now + secs(600));
        g.renew_at = Some(now);
        g.release.push(f.clone());
        s.unlock(vec![g]);
        let due = s.due(now);
        s.relock(&RelockScope::All, now);
        // the renewer rewrote the mirror while the relock ran
        std::fs::write(&f, "refreshed").unwrap();
        s.renewed(&due[0], Renewal::Keep, now);
        assert!(!f.exists(), "a relock stays a relock");
        // but a file another held grant carries stays
        let mut a = grant("a.test.K", now + secs(600));
        a.renew_at = Some(now);
        a.release.push(f.clone());
        s.unlock(vec![a]);
        let due = s.due(now);
        s.relock(&RelockScope::All, now);
        let mut b = grant("a.prod.K", now + secs(600));
        b.release.push(f.clone());
        s.unlock(vec![b]);
        std::fs::write(&f, "refreshed").unwrap();
        s.renewed(&due[0], Renewal::Keep, now);
        assert!(f.exists());
    }

    #[test]
    fn ended_records_are_bounded() {
        let mut s = Store::default();
        let t = now() + secs(60);
        let grants: Vec<Grant> = (0..MAX_ENDED + 10)
            .map(|i| grant(&format!("a.test.K{i}"), t))
            .collect();
        s.unlock(grants);
        s.relock(&RelockScope::All, now());
        assert_eq!(s.status(now()).1.len(), MAX_ENDED);
    }

    #[test]
    fn update_replaces_the_payload() {
        let mut s = Store::default();
        s.unlock(vec![grant("a.test.K", now() + secs(60))]);
        assert_eq!(
            s.update(&slug("a.test.K"), Secret::new("p".into()), None, None),
            1
        );
        assert_eq!(
            s.update(&slug("a.test.X"), Secret::new("p".into()), None, None),
            0
        );
        // made from a payload no longer held (a renewal came between): refused
        let stale = Secret::new("before".into());
        assert_eq!(
            s.update(
                &slug("a.test.K"),
                Secret::new("q".into()),
                Some(&stale),
                None
            ),
            0
        );
        let held = Secret::new("p".into());
        assert_eq!(
            s.update(
                &slug("a.test.K"),
                Secret::new("q".into()),
                Some(&held),
                None
            ),
            1
        );
        let (got, _) = s.get(&[slug("a.test.K")], now());
        assert_eq!(
            got[0].as_ref().unwrap().payload.as_ref().unwrap().expose(),
            "q"
        );
    }
}
