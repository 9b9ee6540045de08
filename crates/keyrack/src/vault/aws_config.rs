//! `aws.config` (alias `aws.iam.sso`): the value is an AWS SSO **profile name**; the profile
//! lives in `~/.aws/config`, and its SSO token bundle is kept encrypted like an os.secure file.
//!
//! `unlock` decrypts the bundle, decides validity **server-side** (GetRoleCredentials for the
//! profile's account/role; refresh when near expiry; sign in when dead), enforces the SSO user
//! recorded at set, and mirrors the token into `~/.aws/sso/cache` so every AWS tool works.
//! Releasing the grant (relock) removes the mirror unless another unlocked key shares the
//! session; the encrypted copy stays, so the next unlock needs no browser while it lives.
//!
//! **The session lasts as long as AWS lets it.** A grant whose token can be refreshed does not
//! end with the access token's hour: the session daemon refreshes the token ahead of its expiry
//! and rewrites the mirror ([`keeper`]), and the grant ends at the first of its TTL,
//! `maxDuration`, a refresh AWS refuses (the portal session is over) and the client
//! registration's expiry — then the mirror goes, and the daemon remembers why. A token that
//! cannot be refreshed (no refresh token) ends the grant when it expires, as before. The grant
//! carries its session's limit as the generic `limit.*` labels ([`crate::grant::limit`]) for
//! `status`.
//!
//! The grant carries what renewing it needs (its payload: the portal, the account and role, the
//! access token, the last role credentials, the [`keeper::Keeper`] and the network settings of
//! the unlock), labels to find it by profile and by session, and the mirror as a file to
//! release. The session daemon renews it through [`renew`]; `keyrack aws credentials` reads the
//! role credentials back by label.
//!
//! Each encrypted file is bound to its name: the payload carries what it is (a session token or
//! a client registration) and whose (the session, or the start URL and region), and a read
//! checks both, so a file copied or swapped to another name is refused rather than used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

pub mod keeper;

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::aws::client_expiry;
use crate::aws::config_file::{AwsConfig, SsoProfile};
use crate::aws::endpoints::{endpoint, Service};
use crate::aws::http::AwsError;
use crate::aws::login::{self, LoginOptions};
use crate::aws::names::{shown, ProfileName};
use crate::aws::net;
use crate::aws::oidc::{self, Registration};
use crate::aws::portal::{self, RoleCredentials};
use crate::aws::sts;
use crate::aws::token_cache::{self, SsoToken};
use crate::crypto;
use crate::daemon::client::Client;
use crate::error::{Error, Result};
use crate::fsio::{self, WriteLock};
use crate::grant::{time, Mech, Renewal};
use crate::home::Home;
use crate::host_manifest::{AwsConfigMeta, HostEntry, Meta};
use crate::identity::Identity;
use crate::interact::{Interact, Notice};
use crate::secret::Secret;
use crate::slug::Slug;

/// What aws.config can do.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::AwsConfig,
    exid_with: &[Mech::AwsSso],
    location_with: &[],
    writable: true,
    lives_in_daemon: false,
    custody: Custody::References,
    owns_with: &[],
    mechs: &[Mech::AwsSso],
    default_mech: Mech::AwsSso,
    default_for_keys: &["AWS_PROFILE"],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |ctx| Box::new(AwsConfigVault::new(ctx)),
    open_for_set: None,
};

/// The labels an aws.config grant carries.
pub mod label {
    /// The profile name (`keyrack aws credentials --profile` finds the grant by it).
    pub const PROFILE: &str = "aws.profile";
    /// The token-cache name of the SSO session (`keyrack aws logout` relocks by it).
    pub const SESSION: &str = "aws.session";
}

/// Role credentials are renewed this long before they expire (at the latest halfway through
/// what is left of them).
pub(crate) const RENEW_AHEAD: Duration = Duration::from_secs(10 * 60);
/// Role credentials handed out have at least this long left; closer to expiry they are renewed
/// first.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(5 * 60);

/// What an aws.config grant carries for its vault (the grant's payload, secret): enough to renew
/// role credentials without decrypting anything.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// The SSO portal's base URL, resolved when the grant was made.
    pub portal: String,
    /// The SSO region.
    pub sso_region: String,
    /// The account id.
    pub account_id: String,
    /// The role name.
    pub role_name: String,
    /// The SSO access token.
    pub access_token: Secret,
    /// The last role credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_credentials: Option<RoleCredentials>,
    /// When to renew the role credentials (none: by their expiry, see [`Payload::renew_at`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::millis_opt"
    )]
    pub(crate) role_renew_at: Option<Timestamp>,
    /// What keeps the SSO session alive (none: its token cannot be refreshed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<keeper::Keeper>,
    /// The network settings (trust, proxies) of the unlock, for the daemon's renewals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) net: Option<net::Settings>,
}

impl Payload {
    /// A payload of a session's portal, account and role, its access token and the last role
    /// credentials (a grant made elsewhere than `unlock`: tests, tools).
    pub fn new(
        portal: String,
        sso_region: String,
        account_id: String,
        role_name: String,
        access_token: Secret,
        role_credentials: Option<RoleCredentials>,
    ) -> Self {
        Payload {
            portal,
            sso_region,
            account_id,
            role_name,
            access_token,
            role_credentials,
            role_renew_at: None,
            session: None,
            net: None,
        }
    }

    /// The payload of an aws.config grant (`None` when it carries none, or not this one).
    pub(crate) fn of(grant: &Grant) -> Option<Payload> {
        let p = grant.payload.as_ref()?;
        serde_json::from_str(p.expose()).ok()
    }

    /// As the opaque payload of a grant.
    pub fn seal(&self) -> Secret {
        Secret::new(serde_json::to_string(self).expect("payload serialises"))
    }

    /// Role credentials fetched now from the portal.
    pub(crate) fn fetch_role_credentials(&self) -> std::result::Result<RoleCredentials, AwsError> {
        portal::role_credentials_at(
            &self.portal,
            &self.access_token,
            &self.account_id,
            &self.role_name,
        )
    }

    /// The role credentials it carries, if they have at least [`FRESH_FOR`] left at `now`.
    pub(crate) fn fresh_role_credentials(&self, now: Timestamp) -> Option<&RoleCredentials> {
        let until = now.checked_add(FRESH_FOR).unwrap_or(Timestamp::MAX);
        self.role_credentials
            .as_ref()
            .filter(|c| c.expiration > until)
    }

    /// Takes role credentials fetched at `now`, and when to renew them.
    pub fn set_role_credentials(&mut self, creds: RoleCredentials, now: Timestamp) {
        let exp = creds.expiration;
        let ahead = exp.checked_sub(RENEW_AHEAD).unwrap_or(exp);
        let halfway = now + exp.duration_since(now) / 2;
        self.role_renew_at = Some(ahead.max(halfway));
        self.role_credentials = Some(creds);
    }

    /// When the role credentials should be renewed (none: it carries none).
    fn role_due_at(&self, now: Timestamp) -> Option<Timestamp> {
        let exp = self.role_credentials.as_ref()?.expiration;
        Some(self.role_renew_at.unwrap_or_else(|| {
            let ahead = exp.checked_sub(RENEW_AHEAD).unwrap_or(exp);
            ahead.max(now + exp.duration_since(now) / 2)
        }))
    }

    /// When the grant should be renewed next: its role credentials, its SSO token's refresh,
    /// or the end of its session, whichever comes first (none: nothing to renew).
    pub fn renew_at(&self, now: Timestamp) -> Option<Timestamp> {
        let session = self.session.as_ref().map(keeper::Keeper::next_at);
        [self.role_due_at(now), session].into_iter().flatten().min()
    }
}

/// Hands role credentials renewed outside the daemon (aws.params, `credential_process`) back to
/// the grant of `slug`, on the payload as the daemon holds it now — not on the copy read before
/// the portal call: the daemon may have refreshed the SSO token meanwhile (refresh tokens are
/// single-use), and that session state must never go back. Nothing is sent when the grant is
/// gone.
pub(crate) fn hand_back_role_credentials(
    client: &Client,
    slug: &Slug,
    creds: &RoleCredentials,
    now: Timestamp,
) -> Result<()> {
    // A renewal may land between the read and the write: the daemon applies the update only to
    // the payload it was made from, and a refused one is made again from the new payload.
    for _ in 0..3 {
        let Some(held) = client
            .get(vec![slug.clone()])?
            .and_then(|mut v| v.pop().flatten())
            .filter(|g| &g.slug == slug)
        else {
            return Ok(());
        };
        let (Some(base), Some(mut current)) = (held.payload.clone(), Payload::of(&held)) else {
            return Ok(());
        };
        current.set_role_credentials(creds.clone(), now);
        if client.update(slug, current.seal(), Some(base), current.renew_at(now))? {
            return Ok(());
        }
    }
    Ok(())
}

/// The external id (profile name) and metadata a host entry of `grant` records, from what the
/// grant carries and the profile in the AWS config (for `init --recover`); `None` for a grant
/// that is not an aws.config one.
pub(crate) fn entry_of(grant: &Grant) -> Option<(String, BTreeMap<String, String>)> {
    let profile = grant.labels.get(label::PROFILE)?.clone();
    let payload = Payload::of(grant)?;
    let mut m = BTreeMap::new();
    if let Some(session) = grant.labels.get(label::SESSION) {
        m.insert(meta::SESSION.into(), session.clone());
    }
    m.insert(meta::SSO_REGION.into(), payload.sso_region.clone());
    m.insert(meta::ACCOUNT_ID.into(), payload.account_id.clone());
    m.insert(meta::ROLE_NAME.into(), payload.role_name.clone());
    if let Some(p) = ProfileName::parse(&profile)
        .ok()
        .and_then(|n| AwsConfig::load_default().ok()?.sso_profile(&n).ok())
    {
        m.insert(meta::START_URL.into(), p.start_url.to_string());
    }
    Some((profile, m))
}

/// After a transient failure to renew role credentials, the next try comes this much later.
const ROLE_RETRY: Duration = Duration::from_secs(60);

/// Renews an aws.config grant (run by the session daemon, with the network settings of the
/// unlock that made it): keeps its SSO session alive ([`keeper::Keeper::keep_alive`]: refresh
/// or adopt the token, rewrite the mirror) and renews its role credentials ahead of their
/// expiry. A session that is over — a refused refresh, the registration's expiry, a token that
/// expired unrefreshed, a portal that refuses the token — ends the grant, with why.
pub fn renew(home: &Home, grant: &Grant) -> Renewal {
    let Some(mut payload) = Payload::of(grant) else {
        return Renewal::Keep;
    };
    let _net = payload.net.as_ref().map(net::Settings::enter);
    let now = time::now();
    if let Some(keeper) = payload.session.as_mut() {
        match keeper.keep_alive(home, now) {
            keeper::Kept::Alive => {}
            keeper::Kept::Over(why) => return Renewal::End(why),
        }
        payload.access_token = keeper.token.access_token.clone();
    }
    if payload.role_due_at(now).is_some_and(|t| t <= now) {
        match payload.fetch_role_credentials() {
            Ok(creds) => payload.set_role_credentials(creds, now),
            Err(e) if e.is_unauthorized() => {
                return Renewal::End(format!(
                    "the SSO session ended: the portal refused its token when renewing the role credentials ({})",
                    e.code().unwrap_or("401")
                ))
            }
            Err(_) => payload.role_renew_at = now.checked_add(ROLE_RETRY).ok(),
        }
    }
    let mut g = grant.clone();
    g.renew_at = payload.renew_at(now);
    g.payload = Some(payload.seal());
    Renewal::Renewed(g)
}

/// The names of the metadata recorded in the host entry.
pub(crate) use crate::host_manifest::aws_meta as meta;

fn digest(s: &str) -> String {
    hex::encode(&Sha1::digest(s.as_bytes())[..10])
}

/// Where the encrypted token bundle of a session lives.
pub(crate) fn token_path(home: &Home, cache_name: &str) -> PathBuf {
    home.vault_dir("aws.config")
        .join(format!("session-{}.age", digest(cache_name)))
}

fn registration_path(home: &Home, region: &str, start_url: &str) -> PathBuf {
    home.vault_dir("aws.config").join(format!(
        "client-{}.age",
        digest(&format!("{region}\n{start_url}"))
    ))
}

fn session_lock_path(home: &Home, cache_name: &str) -> PathBuf {
    home.vault_dir("aws.config")
        .join(format!("session-{}.lock", digest(cache_name)))
}

/// What an encrypted file of this vault holds, inside the encryption: the kind and the name it
/// belongs to, then the value. A file is only accepted under the name it was written for.
#[derive(serde::Serialize, serde::Deserialize)]
struct Bound<T> {
    /// `aws.config/session` or `aws.config/client`.
    keyrack: String,
    /// The session (token-cache name), or `<start URL> in <region>` for a registration.
    name: String,
    value: T,
}

const KIND_SESSION: &str = "aws.config/session";

/// Writes `value` encrypted to `recipients` at `path`, bound to (`kind`, `name`) (atomically,
/// 0600). The session daemon writes a refreshed token this way: encrypting needs no identity.
fn write_sealed<T: serde::Serialize>(
    recipients: &[crypto::RecipientKey],
    path: &Path,
    kind: &str,
    name: &str,
    value: &T,
) -> Result<()> {
    fsio::ensure_private_dir(path.parent().expect("has parent"))?;
    let bound = Bound {
        keyrack: kind.to_string(),
        name: name.to_string(),
        value,
    };
    let json = zeroize::Zeroizing::new(serde_json::to_vec(&bound).expect("serialises"));
    fsio::write_atomic(path, &crypto::encrypt(recipients, &json)?, 0o600)
}
const KIND_CLIENT: &str = "aws.config/client";

fn registration_name(region: &str, start_url: &str) -> String {
    format!("{start_url} in {region}")
}

/// A token the server accepted, with the role credentials that proved it.
pub(crate) struct LiveSession {
    /// The token.
    pub token: SsoToken,
    /// Role credentials for the profile's account/role (None when only the session was checked).
    pub role_credentials: Option<RoleCredentials>,
    /// Whether a browser/device sign-in happened now.
    pub signed_in: bool,
    /// The session's lock, held until this is dropped (the mirror is written under it).
    _lock: LockGuard,
}

/// SSO sessions of one owner: encrypted token bundles and client registrations.
pub(crate) struct Sessions<'a> {
    home: &'a Home,
    identity: &'a Identity,
    recipients: &'a [crypto::RecipientKey],
    login: LoginOptions,
    interact: &'a dyn Interact,
}

impl<'a> Sessions<'a> {
    /// Sessions over a vault context.
    pub(crate) fn new(ctx: &VaultContext<'a>) -> Result<Self> {
        Ok(Sessions {
            home: ctx.home,
            identity: ctx.identity.ok_or_else(|| Error::Identity {
                path: ctx.home.generated_identity(),
                reason: "aws.config keeps its SSO token encrypted and needs an identity".into(),
                hint: "pass --identity <path>".into(),
            })?,
            recipients: ctx.recipients,
            login: ctx.login,
            interact: ctx.interact,
        })
    }

    /// Reads an encrypted file written for (`kind`, `name`). A file written for another name is
    /// refused with a clear error; a file from before names were bound (no envelope) is not
    /// trusted and reads as absent, so the token or registration is obtained again.
    fn read_sealed<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        kind: &str,
        name: &str,
    ) -> Result<Option<T>> {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let plain = crypto::decrypt(path, &data, self.identity)?;
        let not_ours = |e: serde_json::Error| Error::CorruptFile {
            path: path.to_path_buf(),
            reason: format!("not a keyrack SSO file ({e})"),
            hint: format!(
                "remove it (rm {}) and sign in again with keyrack unlock",
                path.display()
            ),
        };
        let v: serde_json::Value = serde_json::from_slice(&plain).map_err(not_ours)?;
        let Some(found_kind) = v.get("keyrack") else {
            return Ok(None);
        };
        let found_kind = found_kind.as_str().unwrap_or_default();
        let found_name = v.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        if found_kind != kind || found_name != name {
            return Err(Error::Aws {
                source: None,
                message: format!(
                    "{} holds the {} of '{}', not the {} of '{}': it was moved, copied or swapped, and keyrack does not use it",
                    path.display(),
                    what(found_kind),
                    shown(found_name),
                    what(kind),
                    shown(name)
                ),
                hint: format!(
                    "remove it (rm {}) and run keyrack unlock to sign in again",
                    path.display()
                ),
            });
        }
        let bound: Bound<T> = serde_json::from_value(v).map_err(not_ours)?;
        Ok(Some(bound.value))
    }

    fn write_sealed<T: serde::Serialize>(
        &self,
        path: &Path,
        kind: &str,
        name: &str,
        value: &T,
    ) -> Result<()> {
        write_sealed(self.recipients, path, kind, name, value)
    }

    /// Rewrites the session's mirror with `token` if there is one (a grant of the session is
    /// held): written under the session's lock, so the daemon keeping the session alive adopts
    /// the newest token instead of refreshing a spent one.
    fn update_mirror(&self, cache_name: &str, token: &SsoToken) -> Result<()> {
        let mirror = token_cache::cache_file(cache_name)?;
        match std::fs::symlink_metadata(&mirror) {
            Ok(m) if m.is_file() => token_cache::write(&mirror, token),
            _ => Ok(()),
        }
    }

    /// The stored token of a session.
    pub(crate) fn token(&self, cache_name: &str) -> Result<Option<SsoToken>> {
        self.read_sealed(&token_path(self.home, cache_name), KIND_SESSION, cache_name)
    }

    /// Stores a session's token (encrypted, bound to the session's name).
    pub(crate) fn save_token(&self, cache_name: &str, token: &SsoToken) -> Result<()> {
        self.write_sealed(
            &token_path(self.home, cache_name),
            KIND_SESSION,
            cache_name,
            token,
        )
    }

    /// Forgets a session's token (encrypted copy and mirror).
    pub(crate) fn forget(&self, cache_name: &str) -> Result<()> {
        fsio::remove_if_exists(&token_path(self.home, cache_name))?;
        let mirror = token_cache::cache_file(cache_name)?;
        fsio::remove_if_exists(&mirror)?;
        // The mirror is gone: its ledger entry must not later delete a token another tool
        // (e.g. `aws sso login`) writes at the same path.
        crate::daemon::ledger::Ledger::for_home(self.home).release(&[mirror])
    }

    /// keyrack's OIDC client for this start URL: cached until it expires, else registered now.
    pub(crate) fn registration(&self, region: &str, start_url: &str) -> Result<Registration> {
        self.registration_renewed_if(region, start_url, |reg| !reg.is_fresh())
    }

    /// keyrack's OIDC client for a browser authorization (which happens anyway): a new one when
    /// the kept one has less than 14 days left or another client name is configured, so the
    /// ~90-day registration is renewed without a browser trip of its own.
    pub(crate) fn registration_for_sign_in(
        &self,
        region: &str,
        start_url: &str,
    ) -> Result<Registration> {
        let client_name = crate::aws::client_name();
        self.registration_renewed_if(region, start_url, |reg| reg.due_for_renewal(&client_name))
    }

    fn registration_renewed_if(
        &self,
        region: &str,
        start_url: &str,
        renew: impl Fn(&Registration) -> bool,
    ) -> Result<Registration> {
        let path = registration_path(self.home, region, start_url);
        let name = registration_name(region, start_url);
        if let Some(reg) = self.read_sealed::<Registration>(&path, KIND_CLIENT, &name)? {
            if !renew(&reg) && reg.region == region && reg.start_url == start_url {
                return Ok(reg);
            }
        }
        let reg = oidc::register(region, start_url, &crate::aws::client_name())
            .map_err(|e| e.into_error("registering keyrack's sign-in client"))?;
        self.write_sealed(&path, KIND_CLIENT, &name, &reg)?;
        client_expiry::record(&path, &reg)?;
        Ok(reg)
    }

    /// A token the server accepts, for `cache_name` at `start_url`/`region`. `check` is the
    /// server-side validation (GetRoleCredentials for a profile, ListAccounts for a bare session).
    /// Refreshes near expiry, signs in when dead (unless `login.no_prompt`). Serialised per
    /// session by a file lock: a concurrent unlock waits and then reuses the fresh token.
    pub(crate) fn live(
        &self,
        cache_name: &str,
        start_url: &str,
        region: &str,
        profile: Option<&str>,
        check: &dyn Fn(&SsoToken) -> std::result::Result<Option<RoleCredentials>, AwsError>,
    ) -> Result<LiveSession> {
        let lock_path = session_lock_path(self.home, cache_name);
        let _lock = if self.login.no_prompt {
            fsio::ensure_private_dir(lock_path.parent().expect("parent"))?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| Error::io("open", &lock_path, e))?;
            // A sign-in holds the lock for minutes: fail fast. The session daemon refreshing
            // the token holds it for one request: worth a short wait.
            let deadline = std::time::Instant::now() + NO_PROMPT_LOCK_WAIT;
            let locked = loop {
                match f.try_lock() {
                    Ok(()) => break true,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(_) => break false,
                }
            };
            if !locked {
                return Err(Error::Aws {
                    source: None,
                    message: format!("another keyrack is signing in to {start_url} right now"),
                    hint: "wait for it to finish, or run without --no-prompt to wait".into(),
                });
            }
            LockGuard::File(f)
        } else {
            LockGuard::Lock(WriteLock::acquire(&lock_path)?)
        };
        if let Some(mut token) = self.token(cache_name)? {
            // botocore may have refreshed it in the mirror (spending our refresh token) since
            // the daemon last wrote the encrypted copy: start from the newest
            let mirror = token_cache::cache_file(cache_name)?;
            if let Some(newer) = keeper::newer_in_mirror(&mirror, &token, time::now()) {
                self.save_token(cache_name, &newer)?;
                token = newer;
            }
            if token.seconds_left() >= 300 {
                match check(&token) {
                    Ok(creds) => {
                        return Ok(LiveSession {
                            token,
                            role_credentials: creds,
                            signed_in: false,
                            _lock,
                        })
                    }
                    Err(e) if e.is_unauthorized() => {}
                    Err(e) => return Err(e.into_error("checking the SSO session")),
                }
            }
            if token.refreshable() {
                // a refresh token is bound to the client that obtained it
                let reg = match token_client(&token) {
                    Some(reg) => reg,
                    None => self.registration(region, start_url)?,
                };
                if let Ok(fresh) = login::refresh(&token, &reg) {
                    match check(&fresh) {
                        Ok(creds) => {
                            self.save_token(cache_name, &fresh)?;
                            self.update_mirror(cache_name, &fresh)?;
                            return Ok(LiveSession {
                                token: fresh,
                                role_credentials: creds,
                                signed_in: false,
                                _lock,
                            });
                        }
                        Err(e) if e.is_unauthorized() => {}
                        Err(e) => return Err(e.into_error("checking the refreshed SSO session")),
                    }
                }
            }
        }
        let reg = self.registration_for_sign_in(region, start_url)?;
        let token = login::sign_in(&reg, start_url, &self.login, profile, self.interact)?;
        let creds = check(&token).map_err(|e| e.into_error("checking the new SSO session"))?;
        self.save_token(cache_name, &token)?;
        self.update_mirror(cache_name, &token)?;
        Ok(LiveSession {
            token,
            role_credentials: creds,
            signed_in: true,
            _lock,
        })
    }

    /// A live session for a profile, validated with GetRoleCredentials for its account/role.
    pub(crate) fn live_for_profile(&self, p: &SsoProfile) -> Result<LiveSession> {
        let (account, role, region) = (
            p.account_id.to_string(),
            p.role_name.to_string(),
            p.sso_region.to_string(),
        );
        self.live(
            p.cache_name(),
            &p.start_url,
            &p.sso_region,
            Some(&p.name),
            &move |t| portal::role_credentials(&region, &t.access_token, &account, &role).map(Some),
        )
    }
}

/// How long `unlock --no-prompt` waits for the session's lock held by another keyrack: the
/// session daemon's refresh (one request) usually ends within it; a sign-in does not.
const NO_PROMPT_LOCK_WAIT: Duration = Duration::from_secs(1);

/// The client registration a token carries (the one its refresh token is bound to), if whole.
fn token_client(t: &SsoToken) -> Option<Registration> {
    Some(Registration {
        region: t.region.clone(),
        start_url: t.start_url.clone(),
        client_id: t.client_id.clone()?,
        client_secret: t.client_secret.clone()?,
        expires_at: t.registration_expires_at?.as_second(),
        client_name: None,
    })
}

fn what(kind: &str) -> &'static str {
    match kind {
        KIND_SESSION => "SSO session token",
        KIND_CLIENT => "client registration",
        _ => "unknown content",
    }
}

/// Holds the per-session lock until dropped.
#[allow(dead_code)] // the fields are held for their Drop
enum LockGuard {
    Lock(WriteLock),
    File(std::fs::File),
}

/// The aws.config adapter.
pub(crate) struct AwsConfigVault<'a> {
    ctx: VaultContext<'a>,
}

impl<'a> AwsConfigVault<'a> {
    /// An adapter over the context.
    pub(crate) fn new(ctx: VaultContext<'a>) -> Self {
        AwsConfigVault { ctx }
    }

    fn profile(&self, name: &str) -> Result<SsoProfile> {
        AwsConfig::load_default()?.sso_profile(&checked_profile(name)?)
    }

    fn remove_mirror_unless_shared(&self, slug: &Slug, file: &PathBuf) -> Result<()> {
        let shared = Client::new(self.ctx.home)
            .status()
            .ok()
            .flatten()
            .is_some_and(|s| {
                s.grants
                    .iter()
                    .any(|g| &g.slug != slug && g.release.contains(file))
            });
        if !shared {
            fsio::remove_if_exists(file)?;
            let _ = crate::daemon::ledger::Ledger::for_home(self.ctx.home)
                .release(std::slice::from_ref(file));
        }
        Ok(())
    }
}

/// A recorded profile name, validated (it is a name in `~/.aws/config` and an argument of
/// `aws sso login --profile`).
fn checked_profile(name: &str) -> Result<ProfileName> {
    ProfileName::parse(name).map_err(|e| Error::Aws {
        source: None,
        message: format!("the recorded AWS profile name is refused: {e}"),
        hint:
            "set the key again with a valid profile: keyrack set --key AWS_PROFILE --exid <profile>"
                .into(),
    })
}

/// Unlocks one aws.config entry: live session, SSO user check, mirror, grant.
pub(crate) fn unlock_entry(sessions: &Sessions<'_>, entry: &HostEntry) -> Result<Grant> {
    let profile_name = entry.exid.clone().ok_or_else(|| Error::Aws {
        source: None,
        message: format!("{} has no profile name recorded", entry.slug),
        hint: format!(
            "set it again: keyrack set --key {} --env {}",
            entry.slug.key(),
            entry.env
        ),
    })?;
    let config = AwsConfig::load_default()?;
    let p = config.sso_profile(&checked_profile(&profile_name)?)?;
    let _trust = crate::aws::net::ProfileTrust::of_profile(&config, &profile_name);
    let expected_user = entry.meta.get(meta::SSO_USER);
    let mut attempts = 0;
    let (live, creds) = loop {
        attempts += 1;
        let live = sessions.live_for_profile(&p)?;
        let creds = live
            .role_credentials
            .clone()
            .expect("profile check returns credentials");
        let Some(expected) = &expected_user else {
            break (live, creds);
        };
        let seen = sts::caller_identity(p.call_region(), &creds)
            .map_err(|e| e.into_error("asking STS who signed in"))?;
        if &seen.user == expected {
            break (live, creds);
        }
        // A different user signed in: sign that session out, forget it, ask once more.
        let _ = portal::logout(&p.sso_region, &live.token.access_token);
        sessions.forget(p.cache_name())?;
        if attempts >= 2 || sessions.login.no_prompt {
            return Err(Error::Aws {
                source: None,
                message: format!("signed in as {} but {} was set up for {expected}", seen.user, entry.slug),
                hint: format!("sign in as {expected} (keyrack unlock --key {} --env {}), or set the key again to change user", entry.slug.key(), entry.env),
            });
        }
        sessions.interact.notice(&Notice::WrongSsoUser {
            seen: seen.user,
            expected: expected.clone(),
        });
    };
    let cache_file = token_cache::cache_file(p.cache_name())?;
    // recorded first: if nobody releases the mirror (a daemon killed), the next client removes it
    crate::daemon::ledger::Ledger::for_home(sessions.home).record(&cache_file)?;
    token_cache::write(&cache_file, &live.token)?;
    let now = time::now();
    let resolve = |service, what| endpoint(service, &p.sso_region).map_err(|e| e.into_error(what));
    let session = if live.token.refreshable() {
        Some(keeper::Keeper::new(
            p.cache_name(),
            resolve(Service::SsoOidc, "resolving the SSO OIDC endpoint")?,
            live.token.clone(),
            cache_file.clone(),
            sessions.recipients,
            now,
        ))
    } else {
        None
    };
    let mut payload = Payload {
        portal: resolve(Service::Sso, "resolving the SSO portal")?,
        sso_region: p.sso_region.to_string(),
        account_id: p.account_id.to_string(),
        role_name: p.role_name.to_string(),
        access_token: live.token.access_token.clone(),
        role_credentials: None,
        role_renew_at: None,
        session,
        net: Some(net::Settings::capture()),
    };
    payload.set_role_credentials(creds, now);
    let mut grant = Grant::new(
        entry.slug.clone(),
        Secret::new(profile_name.clone()),
        VaultKind::AwsConfig,
        entry.mech,
    );
    // The session's known limit, for status: the registration's expiry when the token is kept
    // fresh, else the token's own expiry (the grant ends with it).
    let (limit, why) = match &payload.session {
        Some(_) => (
            live.token.registration_expires_at,
            "refreshed ahead of expiry; ends when AWS ends the portal session, or at the latest when keyrack's sign-in client registration expires",
        ),
        None => (
            Some(live.token.expires_at),
            "its token cannot be refreshed (no refresh token: the sso-session needs sso_registration_scopes = sso:account:access), so the grant ends with it",
        ),
    };
    grant.expires_at = limit;
    grant.renew_at = payload.renew_at(now);
    grant.payload = Some(payload.seal());
    grant.release = vec![cache_file];
    grant.labels = [
        (label::PROFILE.to_string(), profile_name),
        (label::SESSION.to_string(), p.cache_name().to_string()),
    ]
    .into();
    if let Some(at) = limit {
        grant.labels.extend([
            (
                crate::grant::limit::WHAT.to_string(),
                "sso session".to_string(),
            ),
            (
                crate::grant::limit::AT.to_string(),
                time::format_rfc3339(at),
            ),
            (crate::grant::limit::WHY.to_string(), why.to_string()),
        ]);
    }
    Ok(grant)
}

impl Vault for AwsConfigVault<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::AwsConfig
    }

    /// `secret` is the profile name. Records session, account, role and the SSO user seen now.
    fn store(&self, _slug: &Slug, _mech: Mech, secret: &Secret) -> Result<Stored> {
        let p = self.profile(secret.expose())?;
        let _trust =
            crate::aws::net::ProfileTrust::of_profile(&AwsConfig::load_default()?, secret.expose());
        let sessions = Sessions::new(&self.ctx)?;
        let live = sessions.live_for_profile(&p)?;
        let creds = live
            .role_credentials
            .expect("profile check returns credentials");
        let who = sts::caller_identity(p.call_region(), &creds)
            .map_err(|e| e.into_error("asking STS who signed in"))?;
        let m = Meta::AwsConfig(AwsConfigMeta {
            sso_session: p.cache_name().to_string(),
            start_url: p.start_url.to_string(),
            sso_region: p.sso_region.to_string(),
            account_id: p.account_id.to_string(),
            role_name: p.role_name.to_string(),
            sso_user: Some(who.user),
        });
        // The profile and token are shared with other tools: nothing to undo on a failed proof
        // but the mirror, which relock already removes.
        Ok(Stored::new(Some(p.name.to_string()), m, || Ok(())))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        let sessions = Sessions::new(&self.ctx)?;
        unlock_entry(&sessions, entry).map(Read::Granted)
    }

    /// Removes the token mirrored by a read, unless a grant the daemon holds for another key
    /// of the same session still carries it.
    fn release(&self, entry: &HostEntry) -> Result<()> {
        match mirror_of(entry)? {
            Some(file) => self.remove_mirror_unless_shared(&entry.slug, &file),
            None => Ok(()),
        }
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        // A reference: forget the pointer (and our mirror); the profile and the encrypted token
        // stay for other keys of the same session. `keyrack aws logout` removes those.
        self.release(entry)
    }

    fn renew(&self, grant: &Grant) -> Renewal {
        renew(self.ctx.home, grant)
    }
}

/// Where a read of `entry` mirrors the SSO token: the cache file of the profile's session as the
/// AWS config names it now (as the read does), else as recorded at set.
fn mirror_of(entry: &HostEntry) -> Result<Option<PathBuf>> {
    let from_config = entry.exid.as_deref().and_then(|name| {
        let p = checked_profile(name).ok()?;
        AwsConfig::load_default()
            .ok()?
            .sso_profile(&p)
            .ok()
            .map(|p| p.cache_name().to_string())
    });
    match from_config.or_else(|| entry.meta.get(meta::SESSION)) {
        Some(session) => token_cache::cache_file(&session).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slug::Owner;

    fn token(start_url: &str) -> SsoToken {
        SsoToken {
            start_url: start_url.into(),
            region: "us-east-1".into(),
            access_token: Secret::new("aoa-token".into()),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600),
            client_id: None,
            client_secret: None,
            registration_expires_at: None,
            refresh_token: None,
        }
    }

    #[test]
    fn encrypted_files_are_bound_to_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path(), Owner::default());
        let identity = crate::identity::generate(&dir.path().join("id.txt")).unwrap();
        let recipients = [identity.recipient().clone()];
        let s = Sessions {
            home: &home,
            identity: &identity,
            recipients: &recipients,
            login: LoginOptions::never_prompt(),
            interact: &crate::interact::NonInteractive,
        };
        s.save_token("acme", &token("https://a.awsapps.com/start"))
            .unwrap();
        assert_eq!(
            s.token("acme").unwrap().unwrap().start_url,
            "https://a.awsapps.com/start"
        );
        // copied under another session's name: refused, naming both
        std::fs::copy(token_path(&home, "acme"), token_path(&home, "other")).unwrap();
        let e = s.token("other").unwrap_err().to_string();
        assert!(
            e.contains(
                "holds the SSO session token of 'acme', not the SSO session token of 'other'"
            ),
            "{e}"
        );

        // a registration copied to another start URL's file is refused too
        let reg = Registration {
            region: "us-east-1".into(),
            start_url: "https://a.awsapps.com/start".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s".into()),
            expires_at: jiff::Timestamp::now().as_second() + 90 * 86400,
            client_name: Some("keyrack".into()),
        };
        let a = registration_path(&home, "us-east-1", "https://a.awsapps.com/start");
        s.write_sealed(
            &a,
            KIND_CLIENT,
            &registration_name("us-east-1", "https://a.awsapps.com/start"),
            &reg,
        )
        .unwrap();
        let b = registration_path(&home, "us-east-1", "https://b.awsapps.com/start");
        std::fs::copy(&a, &b).unwrap();
        let e = s
            .registration("us-east-1", "https://b.awsapps.com/start")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "holds the client registration of 'https://a.awsapps.com/start in us-east-1'"
            ),
            "{e}"
        );
        // a session file is not a registration
        std::fs::copy(token_path(&home, "acme"), &b).unwrap();
        let e = s
            .registration("us-east-1", "https://b.awsapps.com/start")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds the SSO session token of 'acme'"), "{e}");

        // a file from before names were bound is not trusted: it reads as absent
        let legacy = serde_json::to_vec(&token("https://a.awsapps.com/start")).unwrap();
        std::fs::write(
            token_path(&home, "old"),
            crypto::encrypt(&recipients, &legacy).unwrap(),
        )
        .unwrap();
        assert!(s.token("old").unwrap().is_none());
    }
}
