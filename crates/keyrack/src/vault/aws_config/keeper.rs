//! Keeping an SSO session alive for as long as AWS lets it (run by the session daemon, through
//! [`super::renew`]).
//!
//! An aws.config grant whose token can be refreshed carries a [`Keeper`]: the token as mirrored
//! (access token, refresh token, client registration), when to refresh it, where the mirror is,
//! the SSO OIDC endpoint the unlock resolved, and the recipients the encrypted copy is written
//! to. When the refresh is due the keeper, holding the session's lock (the one `unlock` signs in
//! under; busy: try again in a moment, never wait):
//!
//! 1. **adopts** a token another tool refreshed in the mirror meanwhile (botocore refreshes with
//!    less than 15 minutes left, using the refresh fields keyrack mirrors): same start URL,
//!    region and client, a later expiry, a usable shape — then it is not overwritten;
//! 2. else **refreshes** (`CreateToken`, `grant_type` `refresh_token`, with the registration the
//!    token carries), rewrites the mirror atomically (temp + fsync + rename, 0600, a link is
//!    replaced, never followed) and the encrypted copy (encrypted to the recipients: the daemon
//!    needs no identity to encrypt), so the next `unlock` starts from the newest refresh token
//!    even when AWS rotates them.
//!
//! A refresh is due 5 minutes before expiry (as the SDKs refresh), scaled down for short-lived
//! tokens: halfway through what was left when the token was obtained, when that is later (a
//! 20 s token is refreshed after 10 s).
//!
//! The session ends — the grant ends, and says why — when AWS refuses the refresh (400/401,
//! `InvalidGrantException`: the portal session is over), shortly before the client registration
//! expires (no refresh works after it), or when the access token expired while every refresh
//! failed for a transient reason (network, 5xx, throttling: those are retried a little later
//! until then).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::aws::http::AwsError;
use crate::aws::login;
use crate::aws::oidc::Registration;
use crate::aws::token_cache::{self, SsoToken};
use crate::crypto::RecipientKey;
use crate::grant::time;
use crate::home::Home;
use crate::secret::Secret;

/// A refresh is due this long before the access token expires (at the latest).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// After a transient refresh failure, the next try comes at most this much later (sooner when
/// less is left: halfway to the expiry).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// While an `unlock` holds the session's lock, the keeper tries again this much later.
pub const LOCK_RETRY: Duration = Duration::from_secs(2);
/// The grant ends this long before the client registration expires (the daemon's sweep acts
/// on it in time; after the expiry no refresh works).
pub const REGISTRATION_MARGIN: Duration = Duration::from_secs(2);
/// A refresh never comes sooner than this after the last one (a server answering with tokens
/// that expire at once must not be asked twice a second all day). The token a refresh gave is
/// kept whatever its lifetime: its refresh token replaces the spent one.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);
/// An adopted mirror token expiring later than this from now is not one AWS gives (theirs live
/// about an hour): it is not adopted, so it cannot stop the refreshes.
pub const MAX_ADOPTED_LIFE: Duration = Duration::from_secs(24 * 3600);
/// The error codes with which AWS refuses a refresh for good (the portal session, the refresh
/// token or the client is over). Anything else — a proxy's block page, a captive portal, a
/// throttle — is transient.
const REFUSALS: &[&str] = &[
    "InvalidGrantException",
    "ExpiredTokenException",
    "InvalidClientException",
    "UnauthorizedClientException",
    "AccessDeniedException",
    "UnauthorizedException",
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "access_denied",
];
/// The largest token-cache file read back from the mirror.
const MAX_MIRROR_BYTES: u64 = 64 << 10;

/// What keeps an SSO session alive, carried in an aws.config grant's payload (secret).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keeper {
    /// The token-cache name of the session (its sso-session, or a legacy profile's start URL).
    pub cache_name: String,
    /// The SSO OIDC endpoint (base URL) the unlock resolved.
    pub oidc: String,
    /// The token, as mirrored: access token, expiry, refresh token and client registration.
    pub token: SsoToken,
    /// When to refresh it next.
    #[serde(with = "time::millis")]
    pub refresh_at: Timestamp,
    /// The mirror in `~/.aws/sso/cache` (absolute: the daemon has no `HOME`).
    pub mirror: PathBuf,
    /// The recipients the encrypted copy is written to (public keys).
    pub recipients: Vec<String>,
}

/// What keeping the session alive came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// Alive: nothing was due, or the token was refreshed or adopted, or a transient failure is
    /// retried at [`Keeper::refresh_at`].
    Alive,
    /// The session is over (why, for people).
    Over(String),
}

/// When a token obtained (or adopted) at `now` is refreshed: [`REFRESH_AHEAD`] before its
/// expiry, or halfway through what is left of it when that is later (a token shorter-lived
/// than twice the lead: 20 s → after 10 s).
pub fn refresh_due(token: &SsoToken, now: Timestamp) -> Timestamp {
    let exp = token.expires_at;
    if exp <= now {
        return now;
    }
    let ahead = exp.checked_sub(REFRESH_AHEAD).unwrap_or(exp);
    let halfway = now + exp.duration_since(now) / 2;
    ahead.max(halfway)
}

impl Keeper {
    /// A keeper for `token`, obtained or checked at `now`.
    pub fn new(
        cache_name: &str,
        oidc: String,
        token: SsoToken,
        mirror: PathBuf,
        recipients: &[RecipientKey],
        now: Timestamp,
    ) -> Self {
        Keeper {
            cache_name: cache_name.to_string(),
            oidc,
            refresh_at: refresh_due(&token, now),
            token,
            mirror,
            recipients: recipients.iter().map(ToString::to_string).collect(),
        }
    }

    /// When the grant must end because the client registration expires (none: unknown).
    pub fn ends_at(&self) -> Option<Timestamp> {
        let end = self.token.registration_expires_at?;
        Some(end.checked_sub(REGISTRATION_MARGIN).unwrap_or(end))
    }

    /// The next deadline of the keeper: the refresh, or the end before the registration expires.
    pub fn next_at(&self) -> Timestamp {
        self.ends_at()
            .map_or(self.refresh_at, |end| end.min(self.refresh_at))
    }

    /// Keeps the session alive at `now` (see the module docs). `home` is the keyrack home of the
    /// grant's owner (the session's lock and encrypted copy live there).
    pub fn keep_alive(&mut self, home: &Home, now: Timestamp) -> Kept {
        if self.ends_at().is_some_and(|end| end <= now) {
            return Kept::Over(format!(
                "the SSO session ended: keyrack's sign-in client registration for {} expires at {}, and no token can be refreshed after it",
                self.token.start_url,
                time::format_rfc3339(self.token.registration_expires_at.unwrap_or(now))
            ));
        }
        if now < self.refresh_at {
            return Kept::Alive;
        }
        let lock_path = super::session_lock_path(home, &self.cache_name);
        let _lock = match try_lock(&lock_path) {
            Some(lock) => lock,
            None if self.token.expires_at <= now => {
                return Kept::Over(format!(
                    "the SSO session ended: its token expired at {} while the session's lock {} could not be taken to refresh it",
                    time::format_rfc3339(self.token.expires_at),
                    lock_path.display()
                ));
            }
            None => {
                // an unlock is at work on this session: it writes the mirror we adopt then
                self.refresh_at = after(now, LOCK_RETRY);
                return Kept::Alive;
            }
        };
        if self.adopt_mirror(now) {
            self.persist(home);
            if now < self.refresh_at {
                return Kept::Alive;
            }
        }
        let answer = login::refresh_at(&self.oidc, &self.token, &self.registration());
        match answer {
            Ok(fresh) => {
                self.token = fresh;
                self.refresh_at = refresh_due(&self.token, now).max(after(now, MIN_REFRESH_GAP));
                // The encrypted copy first: after a kill between the two writes the mirror is
                // removed (the release ledger), and the copy must hold the newest refresh token
                // (the old one may be spent). A mirror that cannot be written now is written at
                // the next refresh.
                self.persist(home);
                let _ = token_cache::write(&self.mirror, &self.token);
                Kept::Alive
            }

            Err(e) if refused(&e) => {
                // another tool may have refreshed with the same refresh token a moment ago
                if self.adopt_mirror(now) {
                    self.persist(home);
                    return Kept::Alive;
                }
                Kept::Over(format!(
                    "the SSO session ended: AWS refused to refresh its token ({})",
                    e.code().unwrap_or("refused")
                ))
            }
            Err(e) if self.token.expires_at <= now => Kept::Over(format!(
                "the SSO session ended: its token expired at {} and could not be refreshed ({e})",
                time::format_rfc3339(self.token.expires_at)
            )),
            Err(_) => {
                self.retry_later(now);
                Kept::Alive
            }
        }
    }

    /// After a transient fault: again in [`RETRY_AFTER`], or halfway to the expiry when that is
    /// sooner, but not within a second.
    fn retry_later(&mut self, now: Timestamp) {
        let half = now + self.token.expires_at.duration_since(now) / 2;
        self.refresh_at = after(now, RETRY_AFTER)
            .min(half)
            .max(after(now, Duration::from_secs(1)));
    }

    /// The client registration the token carries (what refreshes it).
    fn registration(&self) -> Registration {
        let t = &self.token;
        super::token_client(t).unwrap_or_else(|| Registration {
            region: t.region.clone(),
            start_url: t.start_url.clone(),
            client_id: t.client_id.clone().unwrap_or_default(),
            client_secret: t
                .client_secret
                .clone()
                .unwrap_or_else(|| Secret::new(String::new())),
            expires_at: i64::MAX,
            client_name: None,
        })
    }

    /// Takes the mirror's token if another tool refreshed it there ([`newer_in_mirror`]). The
    /// mirror is not rewritten.
    fn adopt_mirror(&mut self, now: Timestamp) -> bool {
        match newer_in_mirror(&self.mirror, &self.token, now) {
            Some(t) => {
                self.token = t;
                self.refresh_at = refresh_due(&self.token, now);
                true
            }
            None => false,
        }
    }

    /// Writes the token to the session's encrypted copy (bound to the session's name, encrypted
    /// to the recipients recorded at unlock). Best effort: a copy that cannot be written now is
    /// written at the next refresh, and `unlock` keeps its own copy current.
    fn persist(&self, home: &Home) {
        let recipients: Vec<RecipientKey> = self
            .recipients
            .iter()
            .filter_map(|r| RecipientKey::parse(r).ok())
            .collect();
        if recipients.is_empty() {
            return;
        }
        let _ = super::write_sealed(
            &recipients,
            &super::token_path(home, &self.cache_name),
            super::KIND_SESSION,
            &self.cache_name,
            &self.token,
        );
    }
}

/// The token in the `mirror` if another tool (botocore) refreshed `ours` there: same start URL,
/// region and client, an access token, a later expiry than ours and still valid at `now`. What
/// it left out that refreshes it (refresh token, registration) is taken from ours.
pub fn newer_in_mirror(mirror: &Path, ours: &SsoToken, now: Timestamp) -> Option<SsoToken> {
    let found = read_mirror(mirror)?;
    let adoptable = found.start_url == ours.start_url
        && found.region == ours.region
        && found.client_id.is_some()
        && found.client_id == ours.client_id
        && !found.access_token.expose().trim().is_empty()
        && found.expires_at > ours.expires_at
        && found.expires_at > now
        && found.expires_at <= after(now, MAX_ADOPTED_LIFE);
    if !adoptable {
        return None;
    }
    let mut t = found;
    if t.refresh_token.is_none() {
        t.refresh_token = ours.refresh_token.clone();
    }
    t.client_secret = ours.client_secret.clone();
    t.registration_expires_at = ours.registration_expires_at;
    Some(t)
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Whether AWS refused the refresh for good (the session, the refresh token or the client is no
/// longer valid), rather than failing for a moment: only AWS's own refusal codes count, so a
/// corporate proxy's block page or a captive portal never ends a day's session.
fn refused(e: &AwsError) -> bool {
    match e {
        AwsError::Service { status, code, .. } => {
            matches!(status, 400 | 401 | 403) && REFUSALS.contains(&code.as_str())
        }
        _ => false,
    }
}

/// The session's lock if nobody holds it now (`None`: busy, or it cannot be opened).
fn try_lock(path: &Path) -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    f.try_lock().ok()?;
    Some(f)
}

/// The token in the mirror, if it is a regular file of ours (a link is not followed) that holds
/// one.
fn read_mirror(path: &Path) -> Option<SsoToken> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.uid() != crate::daemon::platform::euid() {
        return None;
    }
    let mut bytes = Vec::new();
    f.take(MAX_MIRROR_BYTES + 1).read_to_end(&mut bytes).ok()?;
    let bytes = zeroize::Zeroizing::new(bytes);
    if bytes.len() as u64 > MAX_MIRROR_BYTES {
        return None;
    }
    token_cache::parse(path, &bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: i64) -> SsoToken {
        SsoToken {
            start_url: "https://d-1234567890.awsapps.com/start".into(),
            region: "us-east-1".into(),
            access_token: Secret::new("aoa-1".into()),
            expires_at: Timestamp::now() + jiff::SignedDuration::from_secs(expires_in),
            client_id: Some("client-1".into()),
            client_secret: Some(Secret::new("secret-1".into())),
            registration_expires_at: Some(
                Timestamp::now() + jiff::SignedDuration::from_hours(24 * 90),
            ),
            refresh_token: Some(Secret::new("aor-1".into())),
        }
    }

    #[test]
    fn refreshes_five_minutes_ahead_or_halfway_for_short_tokens() {
        let now = Timestamp::now();
        let hour = token(3600);
        assert_eq!(
            refresh_due(&hour, now),
            hour.expires_at - jiff::SignedDuration::from_mins(5)
        );
        let short = token(20);
        let due = refresh_due(&short, now);
        let secs = due.duration_since(now).as_secs_f64();
        assert!((9.0..=11.0).contains(&secs), "{secs}");
        assert_eq!(refresh_due(&token(-5), now), now);
    }

    fn keeper(dir: &Path, t: SsoToken) -> Keeper {
        Keeper::new(
            "acme",
            "http://127.0.0.1:9".into(),
            t,
            dir.join("mirror.json"),
            &[],
            Timestamp::now(),
        )
    }

    #[test]
    fn a_later_token_of_the_same_client_is_adopted_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = keeper(dir.path(), token(20));
        let now = Timestamp::now();
        // absent, or the same token: nothing to adopt
        assert!(!k.adopt_mirror(now));
        token_cache::write(&k.mirror, &k.token).unwrap();
        assert!(!k.adopt_mirror(now));
        // another client's token, another start URL, an older one: refused
        let mut other = token(900);
        other.client_id = Some("botocore-client-x".into());
        token_cache::write(&k.mirror, &other).unwrap();
        assert!(!k.adopt_mirror(now));
        let mut other = token(900);
        other.start_url = "https://evil.awsapps.com/start".into();
        token_cache::write(&k.mirror, &other).unwrap();
        assert!(!k.adopt_mirror(now));
        token_cache::write(&k.mirror, &token(5)).unwrap();
        assert!(!k.adopt_mirror(now));
        // one that claims to live for years would stop the refreshes: refused
        token_cache::write(&k.mirror, &token(400 * 24 * 3600)).unwrap();
        assert!(!k.adopt_mirror(now));
        // a link is not followed
        let elsewhere = dir.path().join("elsewhere.json");
        let mut later = token(900);
        later.access_token = Secret::new("aoa-botocore".into());
        later.refresh_token = None;
        token_cache::write(&elsewhere, &later).unwrap();
        std::fs::remove_file(&k.mirror).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &k.mirror).unwrap();
        assert!(!k.adopt_mirror(now));
        // botocore's refresh of our token: adopted, keeping our refresh token when it left it out
        std::fs::remove_file(&k.mirror).unwrap();
        token_cache::write(&k.mirror, &later).unwrap();
        assert!(k.adopt_mirror(now));
        assert_eq!(k.token.access_token.expose(), "aoa-botocore");
        assert_eq!(k.token.refresh_token.as_ref().unwrap().expose(), "aor-1");
        assert!(k.refresh_at > now + jiff::SignedDuration::from_secs(400));
    }

    #[test]
    fn the_registration_ends_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), crate::slug::Owner::default());
        let mut t = token(3600);
        t.registration_expires_at = Some(Timestamp::now() + jiff::SignedDuration::from_secs(1));
        let mut k = keeper(dir.path(), t);
        match k.keep_alive(&home, Timestamp::now()) {
            Kept::Over(why) => assert!(why.contains("registration"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_end_and_faults_do_not() {
        let service = |status, code: &str| AwsError::Service {
            status,
            code: code.into(),
            message: "m".into(),
        };
        assert!(refused(&service(400, "InvalidGrantException")));
        assert!(refused(&service(401, "UnauthorizedException")));
        assert!(refused(&service(400, "InvalidClientException")));
        assert!(!refused(&service(500, "InternalServerException")));
        assert!(!refused(&service(400, "ThrottlingException")));
        // a corporate proxy's block page, a captive portal: not AWS refusing
        assert!(!refused(&service(403, "HTTP403")));
        assert!(!refused(&service(400, "unnamed")));
        assert!(!refused(&service(401, "ProxyAuthenticationRequired")));
        assert!(!refused(&service(429, "TooManyRequestsException")));
        assert!(!refused(&AwsError::Unreachable {
            url: "u".into(),
            reason: "r".into()
        }));
    }
}
