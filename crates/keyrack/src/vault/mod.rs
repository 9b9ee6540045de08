//! Vaults: where a key is stored or referenced, behind one adapter interface.
//!
//! Every vault implements [`Vault`]; [`set_proven`] is the shared `set` that stores through the
//! adapter and then proves the round trip (unlock → get → relock) before anything is recorded.
//! [`read_grant`] is the one per-key step "read out of the vault → admit → grant" that both
//! `unlock` and the proof at `set` go through, so whatever `unlock` would refuse, `set` refuses
//! first. The conformance suite in `tests/` runs each adapter through the same cases.

pub mod aws_config;
pub mod aws_params;
pub mod onepassword;
pub mod op_cli;
pub mod os_daemon;
pub mod os_direct;
pub mod os_envvar;
pub mod os_keychain;
pub mod os_secure;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::RecipientKey;
use crate::error::{Error, Result};
use crate::firewall;
use crate::home::Home;
use crate::host_manifest::{now_rfc3339, HostEntry};
use crate::identity::Identity;
use crate::mech::Mech;
use crate::secret::Secret;
use crate::slug::{Owner, Slug};

/// The kinds of vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum VaultKind {
    /// One age file per key, encrypted to every recipient.
    #[serde(rename = "os.secure")]
    OsSecure,
    /// Plaintext JSON, mode 0600.
    #[serde(rename = "os.direct")]
    OsDirect,
    /// The session daemon's memory only.
    #[serde(rename = "os.daemon")]
    OsDaemon,
    /// The process environment (read-only; the CI path).
    #[serde(rename = "os.envvar")]
    OsEnvvar,
    /// An AWS SSO profile in `~/.aws/config`, its token kept encrypted (alias `aws.iam.sso`).
    #[serde(rename = "aws.config", alias = "aws.iam.sso")]
    AwsConfig,
    /// AWS SSM Parameter Store `SecureString`s (shared by a team).
    #[serde(rename = "aws.params")]
    AwsParams,
    /// 1Password, through the `op` CLI: a reference to an item, or an item keyrack creates.
    #[serde(rename = "1password")]
    OnePassword,
    /// The OS credential store (Secret Service, macOS Keychain).
    #[serde(rename = "os.keychain")]
    OsKeychain,
}

impl VaultKind {
    /// Every vault this build supports.
    pub const ALL: [VaultKind; 8] = [
        VaultKind::OsSecure,
        VaultKind::OsDirect,
        VaultKind::OsDaemon,
        VaultKind::OsEnvvar,
        VaultKind::AwsConfig,
        VaultKind::AwsParams,
        VaultKind::OnePassword,
        VaultKind::OsKeychain,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            VaultKind::OsSecure => "os.secure",
            VaultKind::OsDirect => "os.direct",
            VaultKind::OsDaemon => "os.daemon",
            VaultKind::OsEnvvar => "os.envvar",
            VaultKind::AwsConfig => "aws.config",
            VaultKind::AwsParams => "aws.params",
            VaultKind::OnePassword => "1password",
            VaultKind::OsKeychain => "os.keychain",
        }
    }

    /// The mech used when `set` is not given one.
    pub fn default_mech(self) -> Mech {
        match self {
            VaultKind::OsDaemon => Mech::Session,
            VaultKind::AwsConfig => Mech::AwsSso,
            VaultKind::OnePassword => Mech::Reference,
            _ => Mech::Replica,
        }
    }

    /// Whether the vault owns the secret (`del` destroys it) or only references it. aws.params
    /// references in general and owns only the parameters keyrack named and wrote: ask
    /// [`custody_of`] about one entry.
    pub fn custody(self) -> Custody {
        match self {
            VaultKind::AwsConfig | VaultKind::AwsParams | VaultKind::OnePassword => {
                Custody::References
            }
            _ => Custody::Owns,
        }
    }

    /// Whether reading this vault needs grants of the same session: aws.params signs with the
    /// role credentials of an unlocked aws.config key, so `unlock` reads it after the other
    /// vaults and hands their grants to the daemon first.
    pub fn reads_with_session_grants(self) -> bool {
        matches!(self, VaultKind::AwsParams)
    }

    /// The custody of a key stored with `mech`: a vault that references secrets owns the ones
    /// it created itself (a 1password `replica`: `del` deletes the item).
    pub fn custody_for(self, mech: Mech) -> Custody {
        match (self, mech) {
            (VaultKind::OnePassword, Mech::Replica) => Custody::Owns,
            _ => self.custody(),
        }
    }

    /// The mechs this vault accepts.
    pub fn mechs(self) -> &'static [Mech] {
        match self {
            VaultKind::OsSecure | VaultKind::OsDirect => &[Mech::Replica, Mech::GithubApp],
            VaultKind::OsDaemon => &[Mech::Session, Mech::Replica],
            VaultKind::OsEnvvar => &[],
            VaultKind::AwsConfig => &[Mech::AwsSso],
            VaultKind::AwsParams => &[Mech::Replica, Mech::Reference, Mech::GithubApp],
            VaultKind::OnePassword => &[Mech::Reference, Mech::Replica],
            VaultKind::OsKeychain => &[Mech::Replica, Mech::GithubApp],
        }
    }
}

impl fmt::Display for VaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VaultKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = if s == "aws.iam.sso" { "aws.config" } else { s };
        VaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                what: "vault",
                value: s.into(),
                reason: "unknown vault".into(),
                hint: Some(format!(
                    "use one of: {}",
                    VaultKind::ALL.map(VaultKind::as_str).join(", ")
                )),
            })
    }
}

/// Whether `del` of `entry` destroys the secret ([`VaultKind::custody_for`] its mech, refined
/// per entry for aws.params: only a parameter keyrack named and wrote is destroyed).
pub fn custody_of(entry: &HostEntry) -> Custody {
    match entry.vault {
        VaultKind::AwsParams => aws_params::custody(entry),
        k => k.custody_for(entry.mech),
    }
}

/// Whether a vault owns its secrets or references them elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Custody {
    /// `del` destroys the secret.
    Owns,
    /// `del` forgets the pointer only.
    References,
}

/// An unlocked, usable secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The true slug (never the fallback that found it).
    pub slug: Slug,
    /// The value.
    pub secret: Secret,
    /// Where it came from.
    pub vault: VaultKind,
    /// How it was acquired.
    pub mech: Mech,
    /// When it stops being usable (unix milliseconds), if it has a horizon of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// AWS SSO details of an aws.config grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsGrant>,
}

/// What the daemon keeps with an aws.config grant: where the token was mirrored (removed when the
/// last grant of that session goes) and what `keyrack aws credentials` needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsGrant {
    /// The profile name.
    pub profile: String,
    /// The token-cache name (sso-session, or the legacy start URL).
    pub session: String,
    /// The mirrored `~/.aws/sso/cache/<sha1>.json`.
    pub cache_file: std::path::PathBuf,
    /// The SSO region.
    pub sso_region: String,
    /// The account id.
    pub account_id: String,
    /// The role name.
    pub role_name: String,
    /// The SSO access token (to renew role credentials without decrypting).
    pub access_token: Secret,
    /// Role credentials, renewed 5 minutes before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_credentials: Option<crate::aws::portal::RoleCredentials>,
}

/// What `unlock` found in the vault.
#[derive(Debug)]
pub enum Unlocked {
    /// The secret is now available through [`Vault::get`].
    Ready,
    /// The host entry exists but the vault has no secret for it.
    Lost(String),
}

/// What a vault needs from its surroundings.
#[derive(Clone, Copy)]
pub struct VaultContext<'a> {
    /// The keyrack home (owner-scoped).
    pub home: &'a Home,
    /// The identity for decryption, when loaded.
    pub identity: Option<&'a Identity>,
    /// The recipients new files are encrypted to.
    pub recipients: &'a [RecipientKey],
    /// How vaults that sign in (aws.config) may do so.
    pub login: crate::aws::login::LoginOptions,
    /// Who answers questions and sees notices (a sign-in's link).
    pub interact: &'a dyn crate::interact::Interact,
}

/// What [`Vault::store`] wrote, and how to take it back.
pub struct Stored {
    /// The external id to keep in the host entry.
    pub exid: Option<String>,
    /// Vault metadata to keep in the host entry.
    pub meta: BTreeMap<String, String>,
    undo: Box<dyn FnOnce() -> Result<()>>,
}

impl Stored {
    /// A store result with an undo step that restores the previous state.
    pub fn new(
        exid: Option<String>,
        meta: BTreeMap<String, String>,
        undo: impl FnOnce() -> Result<()> + 'static,
    ) -> Self {
        Stored {
            exid,
            meta,
            undo: Box::new(undo),
        }
    }

    /// Restores what was there before the store.
    pub fn undo(self) -> Result<()> {
        (self.undo)()
    }
}

/// The vault adapter interface.
pub trait Vault {
    /// Which vault this is.
    fn kind(&self) -> VaultKind;
    /// Stores (or points at) the secret for `slug`. The returned [`Stored`] can undo it.
    fn store(&self, slug: &Slug, mech: Mech, secret: &Secret) -> Result<Stored>;
    /// Whether the key is unlocked in this adapter's session.
    fn is_unlocked(&self, entry: &HostEntry) -> bool;
    /// Pulls the secret out of the vault into this adapter's session.
    fn unlock(&self, entry: &HostEntry) -> Result<Unlocked>;
    /// The unlocked grant, if any.
    fn get(&self, entry: &HostEntry) -> Option<Grant>;
    /// Forgets the unlocked secret.
    fn relock(&self, entry: &HostEntry) -> Result<()>;
    /// Destroys (owned) or forgets (referenced) the secret.
    fn del(&self, entry: &HostEntry) -> Result<()>;
    /// Told every entry of this vault an `unlock` is about to read, before the first
    /// [`Vault::unlock`]: a vault that can read many keys in one call (aws.params:
    /// `GetParameters`, 10 names a call) reads them now and answers each `unlock` from that.
    fn prefetch(&self, _entries: &[&HostEntry]) {}
}

/// Opens the adapter for `kind`.
pub fn open<'a>(kind: VaultKind, ctx: VaultContext<'a>) -> Box<dyn Vault + 'a> {
    match kind {
        VaultKind::OsSecure => Box::new(os_secure::OsSecure::new(ctx)),
        VaultKind::OsDirect => Box::new(os_direct::OsDirect::new(ctx)),
        VaultKind::OsDaemon => Box::new(os_daemon::OsDaemon::new(ctx)),
        VaultKind::OsEnvvar => Box::new(os_envvar::OsEnvvar),
        VaultKind::AwsConfig => Box::new(aws_config::AwsConfigVault::new(ctx)),
        VaultKind::AwsParams => Box::new(aws_params::AwsParamsVault::new(ctx)),
        VaultKind::OnePassword => Box::new(onepassword::OnePassword::new(ctx)),
        VaultKind::OsKeychain => Box::new(os_keychain::OsKeychain::new(ctx)),
    }
}

/// A host entry as it would be recorded after a successful set.
pub fn provisional_entry(
    slug: &Slug,
    kind: VaultKind,
    mech: Mech,
    exid: Option<String>,
    meta: BTreeMap<String, String>,
) -> HostEntry {
    let now = now_rfc3339();
    HostEntry {
        slug: slug.clone(),
        vault: kind,
        mech,
        exid,
        env: slug.env().into(),
        org: slug.org().into(),
        meta,
        max_duration: None,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// Whether a value may be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Fit to store and hand out.
    Admitted,
    /// Fit, but it looks like a long-lived token: every read path blocks it unless
    /// `--allow-dangerous`.
    Blocked(firewall::Blocked),
}

/// The admission rules every value passes before it is stored (`set`) or granted (`unlock`):
/// at most [`crate::secret::MAX_SECRET_BYTES`], no NUL byte ([`Error::ValueRefused`] otherwise),
/// and the firewall ([`Admission::Blocked`]).
pub fn admit(slug: &Slug, secret: &Secret) -> Result<Admission> {
    if let Some(reason) = crate::secret::unfit(secret.expose()) {
        return Err(Error::ValueRefused {
            slug: slug.to_string(),
            reason,
            hint: "store a smaller, text-only value (e.g. a path or a reference to the data, or base64 of binary data under 256 KiB)".into(),
        });
    }
    Ok(match firewall::inspect(secret.expose()) {
        Some(b) => Admission::Blocked(b),
        None => Admission::Admitted,
    })
}

/// What reading one key out of its vault gave.
#[derive(Debug)]
pub enum Read {
    /// Admitted: the grant may go to the daemon.
    Granted(Grant),
    /// The grant may go to the daemon, but every read path blocks it without
    /// `--allow-dangerous`.
    Blocked(Grant, firewall::Blocked),
    /// The host entry exists but the vault has no value for it.
    Lost(String),
}

/// The one per-key step of `unlock` and of the proof at `set`: unlock in the adapter, take the
/// grant, let the mech make the grant from it ([`crate::mech::grant_from_stored`]: `github.app`
/// mints an installation token), check it against the admission rules ([`admit`]). Vault and
/// mech failures and refused values are errors (that key's `errored` row).
pub fn read_grant(vault: &dyn Vault, entry: &HostEntry) -> Result<Read> {
    match read_held(vault, entry)? {
        Ok(held) => grant_from_held(vault, entry, held),
        Err(why) => Ok(Read::Lost(why)),
    }
}

/// The first half of [`read_grant`]: unlock in the adapter and take what the vault holds for
/// `entry` (`Err(why)` when it holds nothing). `set` proves this byte-equal to what it stored.
fn read_held(vault: &dyn Vault, entry: &HostEntry) -> Result<std::result::Result<Grant, String>> {
    match vault.unlock(entry)? {
        Unlocked::Lost(why) => return Ok(Err(why)),
        Unlocked::Ready => {}
    }
    let Some(grant) = vault.get(entry) else {
        return Ok(Err("the vault unlocked but returned no value".into()));
    };
    if grant.slug != entry.slug {
        let _ = vault.relock(entry);
        return Err(Error::VaultRefused {
            vault: vault.kind().to_string(),
            operation: "unlock",
            reason: format!("it returned {} when asked for {}", grant.slug, entry.slug),
            hint: format!(
                "set it again: keyrack set --key {} --env {}",
                entry.slug.key(),
                entry.env
            ),
        });
    }
    Ok(Ok(grant))
}

/// The second half of [`read_grant`]: the mech makes the grant from what the vault holds
/// (`github.app` mints a token), then the admission rules check it.
fn grant_from_held(vault: &dyn Vault, entry: &HostEntry, held: Grant) -> Result<Read> {
    let checked = crate::mech::grant_from_stored(entry, held).and_then(|grant| {
        Ok(match admit(&entry.slug, &grant.secret)? {
            Admission::Admitted => Read::Granted(grant),
            Admission::Blocked(b) => Read::Blocked(grant, b),
        })
    });
    if checked.is_err() {
        let _ = vault.relock(entry);
    }
    checked
}

/// How [`set_proven_with`] treats values the firewall blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetRules {
    /// Store a value that looks like a long-lived token (`--allow-dangerous`).
    pub allow_dangerous: bool,
}

/// The shared `set` with the default rules: a value the firewall blocks is refused.
pub fn set_proven(
    vault: &dyn Vault,
    slug: &Slug,
    mech: Mech,
    secret: &Secret,
) -> Result<HostEntry> {
    set_proven_with(vault, slug, mech, secret, SetRules::default())
}

/// The refusal of a value the firewall blocks, at `set` (`owner` is repeated in the fix).
pub fn dangerous(slug: &Slug, blocked: &firewall::Blocked, owner: &Owner) -> Error {
    Error::ValueRefused {
        slug: slug.to_string(),
        reason: format!("{}; get, source and exec would block it", blocked.reason()),
        hint: format!(
            "store a short-lived credential instead, or if this one really must be kept: keyrack set {} --allow-dangerous",
            crate::ops::key_flags(slug.key(), slug.env(), slug.org(), owner)
        ),
    }
}

/// The shared `set`: admit the value ([`admit`]), store through the adapter, then prove store →
/// [`read_grant`] (the step `unlock` runs, the mech's included; what the vault read back is
/// byte-equal to what was stored) → relock. On any failure the store is
/// undone and [`Error::RoundTrip`] names the step.
pub fn set_proven_with(
    vault: &dyn Vault,
    slug: &Slug,
    mech: Mech,
    secret: &Secret,
    rules: SetRules,
) -> Result<HostEntry> {
    if !vault.kind().mechs().contains(&mech) {
        return Err(Error::InvalidInput {
            what: "mech",
            value: mech.to_string(),
            reason: format!("vault {} does not support this mech", vault.kind()),
            hint: Some(format!(
                "use --mech {} or another --vault",
                vault.kind().default_mech()
            )),
        });
    }
    if let Admission::Blocked(b) = admit(slug, secret)? {
        if !rules.allow_dangerous {
            return Err(dangerous(slug, &b, &Owner::default()));
        }
    }
    let stored = vault.store(slug, mech, secret)?;
    let entry = provisional_entry(
        slug,
        vault.kind(),
        mech,
        stored.exid.clone(),
        stored.meta.clone(),
    );
    let fail = |step: &str, reason: String| Error::RoundTrip {
        slug: slug.to_string(),
        vault: vault.kind().to_string(),
        reason: format!("{step}: {reason}"),
    };
    let proof = (|| {
        let held = match read_held(vault, &entry) {
            Ok(Ok(held)) => held,
            Ok(Err(why)) => return Err(fail("unlock", why)),
            Err(e) => return Err(fail("unlock", e.to_string())),
        };
        if held.secret != *secret {
            return Err(fail(
                "get",
                "the value read back differs from the value stored".into(),
            ));
        }
        match grant_from_held(vault, &entry, held) {
            Ok(Read::Granted(_)) => {}
            Ok(Read::Blocked(_, _)) if rules.allow_dangerous => {}
            Ok(Read::Blocked(_, b)) => return Err(fail("admit", b.reason())),
            Ok(Read::Lost(why)) => return Err(fail("unlock", why)),
            Err(e @ Error::ValueRefused { .. }) => return Err(fail("admit", e.to_string())),
            // the mech's own failure (a GitHub App the API refuses) keeps its own fix
            Err(Error::GitHub { message, hint }) => {
                return Err(Error::GitHub {
                    message: format!(
                        "round trip failed for {slug} in {}: {message}; nothing was kept",
                        vault.kind()
                    ),
                    hint,
                })
            }
            Err(e) => return Err(fail("unlock", e.to_string())),
        }
        vault
            .relock(&entry)
            .map_err(|e| fail("relock", e.to_string()))?;
        if vault.is_unlocked(&entry) {
            return Err(fail("relock", "the key is still unlocked".into()));
        }
        Ok(())
    })();
    match proof {
        Ok(()) => Ok(entry),
        Err(e) => {
            let _ = vault.relock(&entry);
            stored.undo()?;
            Err(e)
        }
    }
}
