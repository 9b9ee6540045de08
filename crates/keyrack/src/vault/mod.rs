//! Vaults: where a key is stored or referenced, behind one adapter interface.
//!
//! Every vault implements [`Vault`]; [`set_proven`] is the shared `set` that stores through the
//! adapter and then proves the round trip (unlock → get → relock) before anything is recorded.
//! [`read_grant`] is the one per-key step "read out of the vault → admit → grant" that both
//! `unlock` and the proof at `set` go through, so whatever `unlock` would refuse, `set` refuses
//! first. The conformance suite in `tests/` runs each adapter through the same cases.

pub mod aws_config;
pub mod os_daemon;
pub mod os_direct;
pub mod os_envvar;
pub mod os_secure;

use std::collections::BTreeMap;

use crate::crypto::RecipientKey;
use crate::error::{Error, Result};
use crate::firewall;
use crate::grant::{Renewal, Renewer};
use crate::home::Home;
use crate::host_manifest::{now_rfc3339, HostEntry};
use crate::identity::Identity;
use crate::secret::Secret;
use crate::slug::{Owner, Slug};

pub use crate::grant::{Custody, Grant, Mech, VaultKind};

/// What a vault can do, as data: callers ask "does this vault take an external id?" instead of
/// matching on its name. Each vault declares one (`INFO` in its module); [`info`] is the registry.
#[derive(Clone, Copy)]
pub struct VaultInfo {
    /// Which vault.
    pub kind: VaultKind,
    /// `set` records an external id for it (`--exid`: a profile name, a URI).
    pub takes_exid: bool,
    /// `set` can store into it and `del` remove from it.
    pub writable: bool,
    /// Its secrets live in the session daemon itself (a set value is already unlocked).
    pub lives_in_daemon: bool,
    /// Whether `del` destroys the secret or forgets a pointer.
    pub custody: Custody,
    /// The mechs `set` accepts for it.
    pub mechs: &'static [Mech],
    /// The mech used when `set` is not given one.
    pub default_mech: Mech,
    /// Keys that go to this vault when `set` is not told which (`AWS_PROFILE` → aws.config).
    pub default_for_keys: &'static [&'static str],
    /// Opens the adapter.
    pub open: for<'a> fn(VaultContext<'a>) -> Box<dyn Vault + 'a>,
}

impl std::fmt::Debug for VaultInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultInfo")
            .field("kind", &self.kind)
            .field("takes_exid", &self.takes_exid)
            .field("writable", &self.writable)
            .field("lives_in_daemon", &self.lives_in_daemon)
            .field("custody", &self.custody)
            .field("mechs", &self.mechs)
            .field("default_mech", &self.default_mech)
            .finish_non_exhaustive()
    }
}

/// The registry: what each vault can do (one line per vault).
pub fn info(kind: VaultKind) -> &'static VaultInfo {
    match kind {
        VaultKind::OsSecure => &os_secure::INFO,
        VaultKind::OsDirect => &os_direct::INFO,
        VaultKind::OsDaemon => &os_daemon::INFO,
        VaultKind::OsEnvvar => &os_envvar::INFO,
        VaultKind::AwsConfig => &aws_config::INFO,
    }
}

/// The vault `set` uses for `key` when not told: the one that claims the key, else os.secure.
pub fn default_for(key: &str) -> VaultKind {
    VaultKind::ALL
        .into_iter()
        .find(|k| info(*k).default_for_keys.contains(&key))
        .unwrap_or(VaultKind::OsSecure)
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
    /// Renews a grant of this vault whose renewal deadline passed (called by the session
    /// daemon, through [`VaultRenewer`]). Vaults that renew nothing keep it.
    fn renew(&self, _grant: &Grant) -> Renewal {
        Renewal::Keep
    }
}

/// Opens the adapter for `kind`.
pub fn open<'a>(kind: VaultKind, ctx: VaultContext<'a>) -> Box<dyn Vault + 'a> {
    (info(kind).open)(ctx)
}

/// The [`Renewer`] the session daemon is started with: each grant is renewed by its vault.
/// It runs in the daemon, which has no identity: a vault renews from what the grant carries.
#[derive(Debug, Clone)]
pub struct VaultRenewer {
    home: Home,
}

impl VaultRenewer {
    /// A renewer for the vaults of `home`'s owner.
    pub fn new(home: Home) -> Self {
        VaultRenewer { home }
    }
}

impl Renewer for VaultRenewer {
    fn renew(&self, grant: &Grant) -> Renewal {
        let ctx = VaultContext {
            home: &self.home,
            identity: None,
            recipients: &[],
            login: crate::aws::login::LoginOptions::never_prompt(),
        };
        open(grant.vault, ctx).renew(grant)
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
/// grant, check it against the admission rules ([`admit`]). Vault failures and refused values
/// are errors (that key's `errored` row).
pub fn read_grant(vault: &dyn Vault, entry: &HostEntry) -> Result<Read> {
    match vault.unlock(entry)? {
        Unlocked::Lost(why) => return Ok(Read::Lost(why)),
        Unlocked::Ready => {}
    }
    let Some(grant) = vault.get(entry) else {
        return Ok(Read::Lost(
            "the vault unlocked but returned no value".into(),
        ));
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
    match admit(&entry.slug, &grant.secret) {
        Ok(Admission::Admitted) => Ok(Read::Granted(grant)),
        Ok(Admission::Blocked(b)) => Ok(Read::Blocked(grant, b)),
        Err(e) => {
            let _ = vault.relock(entry);
            Err(e)
        }
    }
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
/// [`read_grant`] (the step `unlock` runs; byte-equal) → relock. On any failure the store is
/// undone and [`Error::RoundTrip`] names the step.
pub fn set_proven_with(
    vault: &dyn Vault,
    slug: &Slug,
    mech: Mech,
    secret: &Secret,
    rules: SetRules,
) -> Result<HostEntry> {
    let caps = info(vault.kind());
    if !caps.mechs.contains(&mech) {
        return Err(Error::InvalidInput {
            what: "mech",
            value: mech.to_string(),
            reason: format!("vault {} does not support this mech", vault.kind()),
            hint: Some(format!(
                "use --mech {} or another --vault",
                caps.default_mech
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
        let grant = match read_grant(vault, &entry) {
            Ok(Read::Granted(g)) => g,
            Ok(Read::Blocked(g, _)) if rules.allow_dangerous => g,
            Ok(Read::Blocked(_, b)) => return Err(fail("admit", b.reason())),
            Ok(Read::Lost(why)) => return Err(fail("unlock", why)),
            Err(e @ Error::ValueRefused { .. }) => return Err(fail("admit", e.to_string())),
            Err(e) => return Err(fail("unlock", e.to_string())),
        };
        if grant.secret != *secret {
            return Err(fail(
                "get",
                "the value read back differs from the value stored".into(),
            ));
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
