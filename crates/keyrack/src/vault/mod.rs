//! Vaults: where a key is stored or referenced, behind one adapter interface.
//!
//! Every vault implements [`Vault`] — `store`, `read → granted | lost` (one key, or many in one
//! pass: [`Vault::read_many`]), `release`, `del`, and an optional `renew` — and keeps no state
//! between calls. What each vault can do is data
//! ([`VaultInfo`], one `INFO` per vault module, registered in [`info`]): callers ask the
//! registry, never match on a vault's name, so a new vault is its module plus one line there.
//!
//! [`set_proven`] is the shared `set` that stores through the adapter and then proves the round
//! trip (store → read (equal) → release → read again) before anything is recorded.
//! [`read_grant`] is the one per-key step "read out of the vault → admit → grant" that both
//! `unlock` and the proof at `set` go through, so whatever `unlock` would refuse, `set` refuses
//! first. The conformance suite in `tests/` runs each adapter through the same cases.

pub mod aws_config;
pub mod aws_params;
pub mod onepassword;
pub mod op_cli;
pub(crate) mod os_daemon;
pub(crate) mod os_direct;
pub(crate) mod os_envvar;
pub(crate) mod os_keychain;
pub mod os_secure;

use crate::crypto::RecipientKey;
use crate::error::{Error, Result};
use crate::firewall;
use crate::grant::{Renewal, Renewer};
use crate::home::Home;
use crate::host_manifest::{self, HostEntry, Meta};
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
    /// The mechs with which `set` records an external id (`--exid`: a profile name, an
    /// `op://` reference).
    pub exid_with: &'static [Mech],
    /// The mechs with which `set` accepts where to create the item (`--op-vault`).
    pub location_with: &'static [Mech],
    /// `set` can store into it and `del` remove from it.
    pub writable: bool,
    /// Its secrets live in the session daemon itself (a set value is already unlocked).
    pub lives_in_daemon: bool,
    /// Whether `del` destroys the secret or forgets a pointer.
    pub custody: Custody,
    /// Mechs whose keys it owns even though it references others (1password `replica`: an
    /// item keyrack created, which `del` deletes).
    pub owns_with: &'static [Mech],
    /// The mechs `set` accepts for it.
    pub mechs: &'static [Mech],
    /// The mech used when `set` is not given one.
    pub default_mech: Mech,
    /// Keys that go to this vault when `set` is not told which (`AWS_PROFILE` → aws.config).
    pub default_for_keys: &'static [&'static str],
    /// The custody of one entry, when it depends on more than its mech (aws.params owns only
    /// a parameter keyrack named and wrote); `None`: [`VaultInfo::custody_for`] its mech.
    pub custody_of_entry: Option<fn(&HostEntry) -> Custody>,
    /// Reading it signs with grants of the same session (aws.params: the role credentials of
    /// an unlocked aws.config key), so `unlock` reads it after the other vaults' grants have
    /// reached the daemon.
    pub reads_with_session_grants: bool,
    /// The flags of `set` only this vault takes ([`SetTarget`]: `--kms-key-id`, `--via`).
    pub set_flags: &'static [&'static str],
    /// Opens the adapter.
    pub open: Opener,
    /// Opens the adapter pointed where `set`'s flags say (vaults that take such flags).
    pub open_for_set: Option<SetOpener>,
}

/// Opens a vault's adapter.
pub(crate) type Opener = for<'a> fn(VaultContext<'a>) -> Box<dyn Vault + 'a>;
/// Opens a vault's adapter pointed where `set`'s flags say.
pub(crate) type SetOpener = for<'a> fn(VaultContext<'a>, SetTarget) -> Box<dyn Vault + 'a>;

/// Where `set`'s flags point a vault: an external id (`--exid`), where to create the item
/// (`--op-vault`), the region (`--region`), the key that encrypts it (`--kms-key-id`) and the
/// key whose grant signs for it (`--via`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetTarget {
    /// The external id given.
    pub exid: Option<String>,
    /// Where to create the item.
    pub location: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The encryption key (a KMS key id, ARN or alias).
    pub encryption_key: Option<String>,
    /// The key of the same org and env whose grant signs the vault's calls.
    pub via: Option<String>,
}

impl VaultInfo {
    /// Whether `set` records an external id for a key stored with `mech`.
    pub(crate) fn takes_exid(&self, mech: Mech) -> bool {
        self.exid_with.contains(&mech)
    }

    /// Whether `set` accepts where to create the item of a key stored with `mech`.
    pub(crate) fn takes_location(&self, mech: Mech) -> bool {
        self.location_with.contains(&mech)
    }

    /// The custody of a key stored with `mech`.
    pub fn custody_for(&self, mech: Mech) -> Custody {
        if self.owns_with.contains(&mech) {
            Custody::Owns
        } else {
            self.custody
        }
    }

    /// The custody of one recorded key: whether `del` destroys its secret.
    pub fn custody_of(&self, entry: &HostEntry) -> Custody {
        match self.custody_of_entry {
            Some(f) => f(entry),
            None => self.custody_for(entry.mech),
        }
    }

    /// Whether `set` takes `flag` (one of the vault-specific [`VaultInfo::set_flags`]) for it.
    pub fn takes_set_flag(&self, flag: &str) -> bool {
        self.set_flags.contains(&flag)
    }
}

impl std::fmt::Debug for VaultInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultInfo")
            .field("kind", &self.kind)
            .field("exid_with", &self.exid_with)
            .field("location_with", &self.location_with)
            .field("writable", &self.writable)
            .field("lives_in_daemon", &self.lives_in_daemon)
            .field("custody", &self.custody)
            .field("mechs", &self.mechs)
            .field("default_mech", &self.default_mech)
            .field("reads_with_session_grants", &self.reads_with_session_grants)
            .field("set_flags", &self.set_flags)
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
        VaultKind::AwsParams => &aws_params::INFO,
        VaultKind::OnePassword => &onepassword::INFO,
        VaultKind::OsKeychain => &os_keychain::INFO,
    }
}

/// The vault `set` uses for `key` when not told: the one that claims the key, else os.secure.
pub fn default_for(key: &str) -> VaultKind {
    VaultKind::ALL
        .into_iter()
        .find(|k| info(*k).default_for_keys.contains(&key))
        .unwrap_or(VaultKind::OsSecure)
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
    pub meta: Meta,
    undo: Box<dyn FnOnce() -> Result<()>>,
}

impl Stored {
    /// A store result with an undo step that restores the previous state.
    pub(crate) fn new(
        exid: Option<String>,
        meta: Meta,
        undo: impl FnOnce() -> Result<()> + 'static,
    ) -> Self {
        Stored {
            exid,
            meta,
            undo: Box::new(undo),
        }
    }

    /// Restores what was there before the store.
    pub(crate) fn undo(self) -> Result<()> {
        (self.undo)()
    }
}

/// What reading one key out of its vault gave.
#[derive(Debug)]
pub enum Read {
    /// The key's value, as a grant (with whatever the vault attaches to it).
    Granted(Grant),
    /// The host entry exists but the vault has no value for it (why, for people).
    Lost(String),
}

/// The vault adapter interface. An adapter keeps no state between calls: what a read gives is
/// the grant, and what must end with the grant is released by [`Vault::release`] (or by the
/// session daemon, through [`Grant::release`]).
pub trait Vault {
    /// Which vault this is (what it can do: [`info`]).
    fn kind(&self) -> VaultKind;
    /// Stores (or points at) the secret for `slug`, acquired through `mech`. The returned
    /// [`Stored`] can undo it.
    fn store(&self, slug: &Slug, mech: Mech, secret: &Secret) -> Result<Stored>;
    /// Reads the key out of the vault (may sign in, for vaults that do).
    fn read(&self, entry: &HostEntry) -> Result<Read>;
    /// Reads many keys of this vault in one pass: one answer per entry, in order. A vault that
    /// can read several keys per call (aws.params: `GetParameters`, 10 names a call) does so;
    /// the others read each in turn (and after a cancelled prompt, no more: the rest answer
    /// cancelled too).
    fn read_many(&self, entries: &[&HostEntry]) -> Vec<Result<Read>> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let read = match out.last() {
                Some(Err(Error::Cancelled { what })) => {
                    Err(Error::Cancelled { what: what.clone() })
                }
                _ => self.read(e),
            };
            out.push(read);
        }
        out
    }
    /// Releases what a read left behind for the grant (e.g. a mirrored token file), unless a
    /// grant the session daemon holds still needs it. Nothing, for most vaults.
    fn release(&self, _entry: &HostEntry) -> Result<()> {
        Ok(())
    }
    /// Destroys (owned) or forgets (referenced) the secret.
    fn del(&self, entry: &HostEntry) -> Result<()>;
    /// Fails when the vault cannot be reached at all, or cannot take `slug` where `set`'s flags
    /// point it (aws.params: the name, the KMS key, the signing identity, the region), before
    /// `set` asks anyone for a secret.
    fn check_ready(&self, _slug: &Slug) -> Result<()> {
        Ok(())
    }
    /// For `slug` stored with `mech` pointing at a secret kept elsewhere (a `reference`): the
    /// value the pointer `set` was given points at, which the round trip compares the read with
    /// (an error when no pointer was given). `None`: the vault stores what `set` is given.
    fn referenced(&self, _slug: &Slug, _mech: Mech) -> Option<Result<Secret>> {
        None
    }
    /// Renews a grant of this vault whose renewal deadline passed (called in the session
    /// daemon, through [`VaultRenewer`]). Vaults that renew nothing keep it.
    fn renew(&self, _grant: &Grant) -> Renewal {
        Renewal::Keep
    }
}

/// Opens the adapter for `kind`.
pub fn open<'a>(kind: VaultKind, ctx: VaultContext<'a>) -> Box<dyn Vault + 'a> {
    (info(kind).open)(ctx)
}

/// Opens the adapter for `kind` pointed where `set`'s flags say.
pub fn open_for_set<'a>(
    kind: VaultKind,
    ctx: VaultContext<'a>,
    target: SetTarget,
) -> Box<dyn Vault + 'a> {
    match info(kind).open_for_set {
        Some(f) => f(ctx, target),
        None => open(kind, ctx),
    }
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
            interact: &crate::interact::NonInteractive,
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
    meta: Meta,
) -> HostEntry {
    let now = host_manifest::now();
    HostEntry {
        slug: slug.clone(),
        vault: kind,
        mech,
        exid,
        env: slug.env().into(),
        org: slug.org().into(),
        meta,
        max_duration: None,
        created_at: now,
        updated_at: now,
    }
}

/// Whether a value may be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Fit to store and hand out.
    Admitted,
    /// Fit, but it looks like a long-lived token: every read path blocks it unless
    /// `--allow-dangerous`.
    Blocked(firewall::Blocked),
}

/// The admission rules every value passes before it is stored (`set`) or granted (`unlock`):
/// at most [`crate::secret::MAX_SECRET_BYTES`], no NUL byte ([`Error::ValueRefused`] otherwise),
/// and the firewall ([`Admission::Blocked`]).
pub(crate) fn admit(slug: &Slug, secret: &Secret) -> Result<Admission> {
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

/// What [`read_grant`] gave: a read, checked against the admission rules.
#[derive(Debug)]
pub enum Checked {
    /// Admitted: the grant may go to the daemon.
    Granted(Grant),
    /// The grant may go to the daemon, but every read path blocks it without
    /// `--allow-dangerous`.
    Blocked(Grant, firewall::Blocked),
    /// The host entry exists but the vault has no value for it.
    Lost(String),
}

/// The one per-key step of `unlock` and of the proof at `set`: read the key out of its vault,
/// check it is the key's, let the mech make the grant from it ([`crate::mech::grant_from_stored`]:
/// `github.app` mints an installation token), check that against the admission rules
/// ([`admit`]). Vault and mech failures and refused values are errors (that key's `errored`
/// row); what the read left behind is released on those.
pub fn read_grant(vault: &dyn Vault, entry: &HostEntry) -> Result<Checked> {
    checked_grant(vault, entry, vault.read(entry))
}

/// [`read_grant`] for many keys of one vault, read in one pass ([`Vault::read_many`]): one
/// answer per entry, in order.
pub fn read_grants(vault: &dyn Vault, entries: &[&HostEntry]) -> Vec<Result<Checked>> {
    let mut reads = vault.read_many(entries);
    if reads.len() != entries.len() {
        reads = entries
            .iter()
            .map(|e| {
                Err(Error::VaultRefused {
                    vault: vault.kind().to_string(),
                    operation: "unlock",
                    reason: format!(
                        "it answered {} reads for {} keys",
                        reads.len(),
                        entries.len()
                    ),
                    hint: format!(
                        "unlock this key alone: keyrack unlock --key {} --env {}",
                        e.slug.key(),
                        e.env
                    ),
                })
            })
            .collect();
    }
    entries
        .iter()
        .zip(reads)
        .map(|(e, read)| checked_grant(vault, e, read))
        .collect()
}

/// What a read gave, checked: its slug and vault, the mech's grant, the admission rules.
fn checked_grant(vault: &dyn Vault, entry: &HostEntry, read: Result<Read>) -> Result<Checked> {
    match held(vault, entry, read)? {
        Ok(held) => grant_from_held(vault, entry, held),
        Err(why) => Ok(Checked::Lost(why)),
    }
}

/// The first half of [`read_grant`]: what the vault holds for `entry` (`Err(why)` when it holds
/// nothing). `set` proves this byte-equal to what it stored.
fn read_held(vault: &dyn Vault, entry: &HostEntry) -> Result<std::result::Result<Grant, String>> {
    held(vault, entry, vault.read(entry))
}

/// What a read of `entry` gave, checked to be the key's.
fn held(
    vault: &dyn Vault,
    entry: &HostEntry,
    read: Result<Read>,
) -> Result<std::result::Result<Grant, String>> {
    let grant = match read? {
        Read::Lost(why) => return Ok(Err(why)),
        Read::Granted(grant) => grant,
    };
    if grant.slug != entry.slug || grant.vault != vault.kind() {
        let _ = vault.release(entry);
        return Err(Error::VaultRefused {
            vault: vault.kind().to_string(),
            operation: "unlock",
            reason: format!(
                "it returned {} of {} when asked for {}",
                grant.slug, grant.vault, entry.slug
            ),
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
fn grant_from_held(vault: &dyn Vault, entry: &HostEntry, held: Grant) -> Result<Checked> {
    let checked = crate::mech::grant_from_stored(entry, held).and_then(|grant| {
        Ok(match admit(&entry.slug, &grant.secret)? {
            Admission::Admitted => Checked::Granted(grant),
            Admission::Blocked(b) => Checked::Blocked(grant, b),
        })
    });
    if checked.is_err() {
        let _ = vault.release(entry);
    }
    checked
}

/// How [`set_proven_with`] treats values the firewall blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetRules {
    /// Store a value that looks like a long-lived token (`--allow-dangerous`).
    pub allow_dangerous: bool,
}

/// The shared `set` with the default rules (a value the firewall blocks is refused), reading
/// back twice through the same adapter.
pub fn set_proven(
    vault: &dyn Vault,
    slug: &Slug,
    mech: Mech,
    secret: &Secret,
) -> Result<HostEntry> {
    set_proven_with(vault, vault, slug, mech, secret, SetRules::default())
}

/// The refusal of a value the firewall blocks, at `set` (`owner` is repeated in the fix).
pub(crate) fn dangerous(slug: &Slug, blocked: &firewall::Blocked, owner: &Owner) -> Error {
    Error::ValueRefused {
        slug: slug.to_string(),
        reason: format!("{}; get, source and exec would block it", blocked.reason()),
        hint: format!(
            "store a short-lived credential instead, or if this one really must be kept: keyrack set {} --allow-dangerous",
            crate::slug::key_flags(slug.key(), slug.env(), slug.org(), owner)
        ),
    }
}

/// The shared `set`: admit the value ([`admit`]), store through the adapter, then prove
/// store → read ([`read_grant`], the step `unlock` runs, the mech's included; what the vault read
/// back is byte-equal to what was stored) → release → read again (the vault's read alone: equal
/// again) → release. The second read goes through `again`: the same adapter, or one that may not prompt
/// (a vault that signs in proves the second read needs no sign-in). On any failure the store
/// is undone and [`Error::RoundTrip`] names the step.
pub fn set_proven_with(
    vault: &dyn Vault,
    again: &dyn Vault,
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
    // `mech`: whether the mech makes a grant of what was read (the first read; the second proves
    // the vault reads the same again, and a mech that mints need not mint twice).
    let prove = |reader: &dyn Vault, read: &str, mech: bool| -> Result<()> {
        let held = match read_held(reader, &entry) {
            Ok(Ok(held)) => held,
            Ok(Err(why)) => return Err(fail(read, why)),
            Err(e) => return Err(fail(read, e.to_string())),
        };
        if held.secret != *secret {
            let _ = reader.release(&entry);
            return Err(fail(
                "get",
                "the value read back differs from the value stored".into(),
            ));
        }
        if !mech {
            return reader
                .release(&entry)
                .map_err(|e| fail("release", e.to_string()));
        }
        match grant_from_held(reader, &entry, held) {
            Ok(Checked::Granted(_)) => {}
            Ok(Checked::Blocked(_, _)) if rules.allow_dangerous => {}
            Ok(Checked::Blocked(_, b)) => return Err(fail("admit", b.reason())),
            Ok(Checked::Lost(why)) => return Err(fail(read, why)),
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
            Err(e) => return Err(fail(read, e.to_string())),
        }
        reader
            .release(&entry)
            .map_err(|e| fail("release", e.to_string()))
    };
    let proof = prove(vault, "unlock", true).and_then(|()| prove(again, "unlock again", false));
    match proof {
        Ok(()) => Ok(entry),
        Err(e) => {
            let _ = vault.release(&entry);
            stored.undo()?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Reads `Cancelled` for keys named `CANCEL`, a value for the others; counts its reads.
    struct Scripted {
        reads: Cell<u32>,
    }

    impl Vault for Scripted {
        fn kind(&self) -> VaultKind {
            VaultKind::OsDirect
        }
        fn store(&self, _: &Slug, _: Mech, _: &Secret) -> Result<Stored> {
            unreachable!("not stored")
        }
        fn read(&self, entry: &HostEntry) -> Result<Read> {
            self.reads.set(self.reads.get() + 1);
            if entry.slug.key() == "CANCEL" {
                return Err(Error::Cancelled {
                    what: "a sign-in".into(),
                });
            }
            Ok(Read::Granted(Grant::new(
                entry.slug.clone(),
                Secret::new("v".into()),
                VaultKind::OsDirect,
                entry.mech,
            )))
        }
        fn del(&self, _: &HostEntry) -> Result<()> {
            Ok(())
        }
    }

    fn entry(key: &str) -> HostEntry {
        let slug = Slug::new("acme", "test", key).unwrap();
        provisional_entry(&slug, VaultKind::OsDirect, Mech::Replica, None, Meta::None)
    }

    #[test]
    fn many_reads_answer_in_order_and_stop_at_a_cancelled_prompt() {
        let v = Scripted {
            reads: Cell::new(0),
        };
        let (a, cancel, b) = (entry("A"), entry("CANCEL"), entry("B"));
        let answers = read_grants(&v, &[&a, &b]);
        assert_eq!(answers.len(), 2);
        for (answer, key) in answers.into_iter().zip(["A", "B"]) {
            assert!(matches!(answer, Ok(Checked::Granted(g)) if g.slug.key() == key));
        }
        assert_eq!(v.reads.get(), 2);

        // a person who cancels a prompt is not asked again for the keys after it
        v.reads.set(0);
        let answers = read_grants(&v, &[&a, &cancel, &b]);
        assert_eq!(v.reads.get(), 2, "B was not read");
        assert!(matches!(answers[0], Ok(Checked::Granted(_))));
        assert!(matches!(answers[1], Err(Error::Cancelled { .. })));
        assert!(matches!(answers[2], Err(Error::Cancelled { .. })));
    }
}
