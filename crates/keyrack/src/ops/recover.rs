//! `keyrack init --recover`: rebuild a lost host manifest from what this host's files prove.
//!
//! The host manifest (`host.age`) is the only record of which keys this host holds and where.
//! When it is lost and the vault files are not, those files still prove most of it:
//!
//! - every os.secure file, decrypted with the identity, starts with a header line naming the slug
//!   it is bound to (`{"keyrack":"os.secure","v":1,"slug":"acme.test.K"}`), and sits where keyrack
//!   keeps that slug;
//! - os.direct's `direct.json` is keyed by slug;
//! - a daemon that is still running holds its grants: os.daemon values, and the profile name of
//!   an unlocked aws.config key;
//! - inventory markers prove "a key with this hash was set here": matched against the keys the
//!   repo manifest declares, they name keys whose vault copy is gone, so the report can say which
//!   keys to set again (an aws.config key keeps only an SSO token, which does not name the
//!   profile).
//!
//! The rebuilt manifest has the identity's recipient. Other recipients the files were encrypted
//! to cannot be named from the files (age stanzas do not carry the public key); the report says
//! how many there were. Markers no entry backs afterwards are removed (they would make `get` say
//! `locked` for a key `unlock` cannot find), after being reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Rack;
use crate::aws::config_file::AwsConfig;
use crate::crypto;
use crate::daemon::client::Client;
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;
use crate::host_manifest::HostManifest;
use crate::identity::{self, Identity};
use crate::mech::Mech;
use crate::secret::Secret;
use crate::slug::{Slug, ENV_ALL};
use crate::vault::{self, aws_config, os_secure, VaultKind};

/// What is left on disk of keys set on this host (read without decrypting anything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Evidence {
    /// os.secure files.
    pub secure_files: usize,
    /// Values in os.direct's `direct.json` (1 when it exists but cannot be parsed).
    pub direct_values: usize,
    /// Inventory markers.
    pub markers: usize,
}

impl Evidence {
    /// Whether anything is left.
    pub(crate) fn any(&self) -> bool {
        self.secure_files + self.direct_values + self.markers > 0
    }

    /// "2 os.secure files, 1 os.direct value and 3 inventory markers".
    pub(crate) fn describe(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut parts = Vec::new();
        if self.secure_files > 0 {
            parts.push(plural(
                self.secure_files,
                "os.secure file",
                "os.secure files",
            ));
        }
        if self.direct_values > 0 {
            parts.push(plural(
                self.direct_values,
                "os.direct value",
                "os.direct values",
            ));
        }
        if self.markers > 0 {
            parts.push(plural(
                self.markers,
                "inventory marker",
                "inventory markers",
            ));
        }
        match parts.as_slice() {
            [] => "nothing".into(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// The regular files of `dir` (keyrack's own temp files left out), sorted; none when absent.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with(fsio::TEMP_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// The os.secure files of the home's owner.
pub(crate) fn secure_files(home: &Home) -> Result<Vec<PathBuf>> {
    Ok(files_in(&home.vault_dir("os.secure"))?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "age"))
        .collect())
}

/// The inventory marker names (hashes of slugs) of the home's owner.
pub(crate) fn markers(home: &Home) -> Result<Vec<String>> {
    Ok(files_in(&home.inventory_dir())?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// `direct.json`: `Ok(None)` when absent, `Err(reason)` when it cannot be parsed.
pub(crate) fn direct_slugs(
    home: &Home,
) -> Result<Option<std::result::Result<Vec<String>, String>>> {
    let path = home.vault_dir("os.direct").join("direct.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            Ok(Some(
                serde_json::from_slice::<BTreeMap<String, Secret>>(&bytes)
                    .map(|m| m.into_keys().collect())
                    .map_err(|e| {
                        format!("{} is not a JSON object of strings ({e})", path.display())
                    }),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// What is left of keys set on this host, without decrypting anything.
pub(crate) fn evidence(home: &Home) -> Result<Evidence> {
    Ok(Evidence {
        secure_files: secure_files(home)?.len(),
        direct_values: match direct_slugs(home)? {
            None => 0,
            Some(Ok(slugs)) => slugs.len(),
            Some(Err(_)) => 1,
        },
        markers: markers(home)?.len(),
    })
}

/// The refusal when the host manifest is missing and `evidence` is left.
pub(crate) fn lost(home: &Home, evidence: &Evidence) -> Error {
    Error::HostManifestLost {
        path: home.host_manifest(),
        evidence: evidence.describe(),
        owner_flag: home.owner().flag(),
    }
}

/// How many X25519 / SSH recipient stanzas an armored age file's header has.
pub(crate) fn recipient_stanzas(armored: &[u8]) -> Option<usize> {
    use base64::Engine;
    let text = std::str::from_utf8(armored).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let bin = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()?;
    let count = bin
        .split(|b| *b == b'\n')
        .take_while(|l| !l.starts_with(b"---"))
        .filter(|l| {
            l.starts_with(b"-> X25519 ")
                || l.starts_with(b"-> ssh-ed25519 ")
                || l.starts_with(b"-> ssh-rsa ")
        })
        .count();
    Some(count)
}

/// Options of `init --recover`.
#[derive(Debug, Default)]
pub struct RecoverOptions {
    /// Label of this machine's recipient in a new host manifest (default: user@host).
    pub label: Option<String>,
}

/// A host entry rebuilt from evidence.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovered {
    /// The slug.
    pub slug: Slug,
    /// The vault.
    pub vault: VaultKind,
    /// What proved it.
    pub from: String,
}

/// Something that was set here and could not be re-registered.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unrecovered {
    /// The slug (when known) or the file.
    pub what: String,
    /// Why it could not be recovered.
    pub reason: String,
    /// What to do about it.
    pub fix: String,
}

/// What `init --recover` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverReport {
    /// The host manifest written.
    pub host_manifest: PathBuf,
    /// Whether it was created now (false: it existed and recovered entries were added to it).
    pub created: bool,
    /// The identity used.
    pub identity: PathBuf,
    /// Whether the identity was generated now (only when no os.secure file needed one).
    pub identity_generated: bool,
    /// This identity's recipient (the one recipient of a new manifest).
    pub recipient: String,
    /// Entries re-registered.
    pub recovered: Vec<Recovered>,
    /// Entries the existing manifest already had.
    pub kept: usize,
    /// What could not be re-registered, and how to restore it.
    pub unrecovered: Vec<Unrecovered>,
    /// How many other recipients the os.secure files were encrypted to (not recoverable).
    pub other_recipients: usize,
    /// Inventory markers removed because no entry backs them (reported in `unrecovered`).
    pub markers_removed: usize,
}

struct Rebuild<'a> {
    home: &'a Home,
    host: HostManifest,
    recovered: Vec<Recovered>,
    kept: usize,
    unrecovered: Vec<Unrecovered>,
}

impl Rebuild<'_> {
    fn add(
        &mut self,
        slug: Slug,
        kind: VaultKind,
        mech: Mech,
        exid: Option<String>,
        meta: BTreeMap<String, String>,
        from: String,
    ) {
        if self.host.hosts.contains_key(&slug) {
            self.kept += 1;
            return;
        }
        let meta = crate::host_manifest::Meta::from_map(kind, meta);
        let entry = vault::provisional_entry(&slug, kind, mech, exid, meta);
        self.host.hosts.insert(slug.clone(), entry);
        self.recovered.push(Recovered {
            slug,
            vault: kind,
            from,
        });
    }

    fn fail(&mut self, what: impl Into<String>, reason: impl Into<String>, fix: String) {
        self.unrecovered.push(Unrecovered {
            what: what.into(),
            reason: reason.into(),
            fix,
        });
    }

    fn set_again(&self, slug: &Slug) -> String {
        format!(
            "keyrack set {}",
            super::key_flags(slug.key(), slug.env(), slug.org(), self.home.owner())
        )
    }
}

/// The identity for recovery: the discovered one; generated only when no os.secure file needs
/// the old one.
fn recovery_identity(rack: &Rack, secure: usize) -> Result<(Identity, bool)> {
    let home = rack.home();
    match identity::discover(rack.explicit_identity(), home)? {
        Some(src) => Ok((Identity::load(src.path(), rack.interact())?, false)),
        None if secure > 0 => Err(Error::Identity {
            path: home.generated_identity(),
            reason: format!(
                "no identity found, and the {secure} os.secure file(s) can only be decrypted by the identity they were encrypted to"
            ),
            hint: format!(
                "pass that identity: keyrack --identity <path> init --recover{}",
                home.owner().flag()
            ),
        }),
        None => Ok((identity::generate(&home.generated_identity())?, true)),
    }
}

/// Runs `init --recover`.
pub fn run(rack: &Rack, opts: &RecoverOptions) -> Result<RecoverReport> {
    let home = rack.home();
    fsio::ensure_private_dir(home.root())?;
    let _lock = rack.lock()?;
    let secure = secure_files(home)?;
    let (identity, generated) = recovery_identity(rack, secure.len())?;
    let (host, created) = if HostManifest::exists(home) {
        (HostManifest::load(home, &identity)?, false)
    } else {
        let label = opts
            .label
            .clone()
            .unwrap_or_else(super::init::default_label);
        (HostManifest::new(home, identity.recipient(), &label), true)
    };
    let mut rb = Rebuild {
        home,
        host,
        recovered: Vec::new(),
        kept: 0,
        unrecovered: Vec::new(),
    };
    let mut other_recipients = 0;
    let flag = home.owner().flag();

    for path in &secure {
        let shown = path.display().to_string();
        let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        other_recipients =
            other_recipients.max(recipient_stanzas(&data).unwrap_or(0).saturating_sub(1));
        let plain = match crypto::decrypt(path, &data, &identity) {
            Ok(p) => p,
            Err(e @ Error::WrongIdentity { .. }) => {
                rb.fail(
                    shown,
                    e.to_string(),
                    format!(
                        "run it again with the identity that can read it: keyrack --identity <path> init --recover{flag}"
                    ),
                );
                continue;
            }
            Err(e) => {
                let fix = e.fix().unwrap_or_else(|| format!("remove it: rm {shown}"));
                rb.fail(shown, e.to_string(), fix);
                continue;
            }
        };
        let Some(slug) = os_secure::payload_slug(&plain).and_then(|s| Slug::parse(&s).ok()) else {
            rb.fail(
                shown.clone(),
                "it has no keyrack header naming its key (written by hand, or by a keyrack before vault files were bound to their key), so which key it holds cannot be known",
                format!("set that key again (keyrack set --key <KEY> --env <env>), then: rm {shown}"),
            );
            continue;
        };
        if os_secure::file_for(home, &slug) != *path {
            rb.fail(
                shown.clone(),
                format!("it holds {slug}, but keyrack keeps {slug} in another file (this one was copied or moved)"),
                format!("remove it (rm {shown}), or set {slug} again: {}", rb.set_again(&slug)),
            );
            continue;
        }
        rb.add(
            slug,
            VaultKind::OsSecure,
            Mech::Replica,
            None,
            BTreeMap::new(),
            "its os.secure file's header".into(),
        );
    }

    match direct_slugs(home)? {
        None => {}
        Some(Err(reason)) => rb.fail(
            home.vault_dir("os.direct")
                .join("direct.json")
                .display()
                .to_string(),
            reason,
            "fix the JSON by hand (it maps org.env.KEY to the value), then run keyrack init --recover again".into(),
        ),
        Some(Ok(slugs)) => {
            for text in slugs {
                match Slug::parse(&text) {
                    Ok(slug) => rb.add(
                        slug,
                        VaultKind::OsDirect,
                        Mech::Replica,
                        None,
                        BTreeMap::new(),
                        "os.direct's direct.json".into(),
                    ),
                    Err(e) => rb.fail(
                        format!("direct.json entry '{text}'"),
                        e.to_string(),
                        "remove that entry from direct.json".into(),
                    ),
                }
            }
        }
    }

    from_daemon(&mut rb);
    let markers_removed = name_markers(rack, &mut rb)?;

    rb.host.save(home)?;
    fsio::ensure_private_dir(&home.inventory_dir())?;
    for r in &rb.recovered {
        fsio::touch_private(&home.inventory_marker(&r.slug))?;
    }
    let (identity_path, recipient) = (
        identity.path().to_path_buf(),
        identity.recipient().to_string(),
    );
    rack.set_identity(identity);
    Ok(RecoverReport {
        host_manifest: home.host_manifest(),
        created,
        identity: identity_path,
        identity_generated: generated,
        recipient,
        recovered: rb.recovered,
        kept: rb.kept,
        unrecovered: rb.unrecovered,
        other_recipients,
        markers_removed,
    })
}

/// Grants a running daemon still holds: os.daemon values (which live nowhere else) and the
/// profile of an unlocked aws.config key.
fn from_daemon(rb: &mut Rebuild<'_>) {
    let client = Client::new(rb.home);
    let Ok(Some(status)) = client.status() else {
        return;
    };
    for held in status.grants {
        if !matches!(held.vault, VaultKind::OsDaemon | VaultKind::AwsConfig)
            || rb.host.hosts.contains_key(&held.slug)
        {
            continue;
        }
        let Ok(Some(grants)) = client.get(vec![held.slug.clone()]) else {
            continue;
        };
        let Some(grant) = grants.into_iter().flatten().find(|g| g.slug == held.slug) else {
            continue;
        };
        match (held.vault, aws_config::entry_of(&grant)) {
            (VaultKind::AwsConfig, Some((profile, meta))) => {
                rb.add(
                    held.slug,
                    VaultKind::AwsConfig,
                    grant.mech,
                    Some(profile),
                    meta,
                    "the running daemon's grant".into(),
                );
            }
            (VaultKind::OsDaemon, _) => rb.add(
                held.slug,
                VaultKind::OsDaemon,
                grant.mech,
                None,
                BTreeMap::new(),
                "the running daemon's grant".into(),
            ),
            _ => {}
        }
    }
}

/// Reports the inventory markers no entry backs (named where the repo manifest declares the key)
/// and removes them. Returns how many were removed.
fn name_markers(rack: &Rack, rb: &mut Rebuild<'_>) -> Result<usize> {
    let home = rb.home;
    let backed: BTreeSet<String> = rb.host.hosts.values().map(|e| e.slug.file_stem()).collect();
    let orphans: Vec<String> = markers(home)?
        .into_iter()
        .filter(|m| !backed.contains(m))
        .collect();
    if orphans.is_empty() {
        return Ok(0);
    }
    let mut candidates: BTreeMap<String, Slug> = BTreeMap::new();
    if let Ok(Some(repo)) = rack.repo() {
        let mut envs = repo.env_names();
        envs.push(ENV_ALL.into());
        for env in &envs {
            let keys: Vec<String> = if env == ENV_ALL {
                repo.all.iter().map(|k| k.key.clone()).collect()
            } else {
                repo.keys_for(env).iter().map(|k| k.key.clone()).collect()
            };
            for k in keys {
                if let Ok(slug) = Slug::new(&repo.org, env, &k) {
                    candidates.insert(slug.file_stem(), slug);
                }
            }
        }
    }
    let profiles = AwsConfig::load_default()
        .map(|c| c.profile_names())
        .unwrap_or_default();
    let mut unnamed = 0;
    for m in &orphans {
        match candidates.get(m) {
            Some(slug) if slug.key() == "AWS_PROFILE" => {
                let choose = if profiles.is_empty() {
                    String::new()
                } else {
                    format!(" (profiles in the AWS config: {})", profiles.join(", "))
                };
                let fix = format!(
                    "keyrack set --key AWS_PROFILE --env {} --exid <profile>{}{choose}",
                    slug.env(),
                    home.owner().flag()
                );
                rb.fail(
                    slug.to_string(),
                    "it was set here (inventory marker); aws.config keeps only the SSO token, which does not name the profile, so the profile name is not recoverable",
                    fix,
                );
            }
            Some(slug) => {
                let fix = rb.set_again(slug);
                rb.fail(
                    slug.to_string(),
                    "it was set here (inventory marker), but no vault file holds its value any more (an os.daemon value ends with its daemon)",
                    fix,
                );
            }
            None => unnamed += 1,
        }
    }
    if unnamed > 0 {
        rb.fail(
            format!("{unnamed} more key(s)"),
            "set here (inventory markers), but their vault copies are gone and their names are kept only as hashes",
            "in each repository that uses them, keyrack doctor lists what this host lacks, and keyrack fill --env <env> sets it".into(),
        );
    }
    for m in &orphans {
        fsio::remove_if_exists(&home.inventory_dir().join(m))?;
    }
    Ok(orphans.len())
}
