//! `os.keychain`: the OS credential store, through the `keyring` crate: the Secret Service
//! (GNOME Keyring, KWallet, KeePassXC) over the D-Bus session bus on Linux and the BSDs, the
//! login Keychain on macOS. For users who prefer their desktop's unlock to an age identity.
//!
//! One item per key: service `keyrack`, account = the slug (`robot:acme.test.KEY` for an owner),
//! so `secret-tool lookup service keyrack username acme.test.KEY` finds it. The vault owns the
//! secret: `del` destroys the item. A store that cannot be reached (no Secret Service on the bus)
//! or is locked is that key's error with the fix; the other keys still unlock.

use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::error::{Error, Result};
use crate::grant::Mech;
use crate::host_manifest::{HostEntry, Meta};
use crate::secret::Secret;
use crate::slug::{Owner, Slug};

/// The service name of every keyrack item.
pub(crate) const SERVICE: &str = "keyrack";

/// The account name of `slug`'s item.
pub(crate) fn account(slug: &Slug, owner: &Owner) -> String {
    match owner.name() {
        Some(o) => format!("{o}:{slug}"),
        None => slug.to_string(),
    }
}

/// What went wrong with the OS credential store. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeychainError {
    /// No credential store answers (no Secret Service on the session bus, no bus at all).
    #[error("the OS keychain cannot be reached ({0})")]
    Unreachable(String),
    /// The store is locked and was not unlocked (a prompt was dismissed or could not be shown).
    #[error("the OS keychain is locked ({0})")]
    Locked(String),
    /// Anything else the store said.
    #[error("the OS keychain failed ({0})")]
    Failed(String),
    /// This build has no OS credential store for this platform.
    #[error("this platform has no OS keychain keyrack can use")]
    #[cfg_attr(
        any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "macos"
        ),
        allow(dead_code) // (made only where `backend` has no store)
    )]
    Unsupported,
}

impl KeychainError {
    /// The fix.
    pub(crate) fn hint(&self) -> String {
        match self {
            KeychainError::Unreachable(_) if cfg!(target_os = "macos") => {
                "run keyrack in your login session, where the Keychain is available".into()
            }
            KeychainError::Unreachable(_) => "start a Secret Service, e.g. gnome-keyring: gnome-keyring-daemon --start --components=secrets (a desktop session runs one; over SSH or in a container, run keyrack inside a D-Bus session: dbus-run-session -- $SHELL)".into(),
            KeychainError::Locked(_) if cfg!(target_os = "macos") => {
                "unlock your login keychain: security unlock-keychain".into()
            }
            KeychainError::Locked(_) => "unlock your login keyring: log in to the desktop session (or answer its unlock prompt); headless: printf %s \"$PASSWORD\" | gnome-keyring-daemon --unlock".into(),
            KeychainError::Failed(_) => "check the keyring with: secret-tool search service keyrack (Linux) or Keychain Access (macOS), then retry".into(),
            KeychainError::Unsupported => "use --vault os.secure on this platform".into(),
        }
    }
}

/// The store itself, independent of the vault interface: get, set and delete one item.
pub(crate) mod backend {
    use super::{KeychainError, SERVICE};
    use crate::secret::Secret;

    #[cfg(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "macos"
    ))]
    mod imp {
        use super::{KeychainError, SERVICE};
        use crate::secret::Secret;

        fn entry(account: &str) -> Result<keyring::Entry, KeychainError> {
            keyring::Entry::new(SERVICE, account).map_err(map)
        }

        fn map(e: keyring::Error) -> KeychainError {
            match e {
                keyring::Error::NoStorageAccess(inner) => KeychainError::Locked(inner.to_string()),
                keyring::Error::PlatformFailure(inner) => {
                    let text = inner.to_string();
                    let unreachable = [
                        "org.freedesktop.DBus.Error.ServiceUnknown",
                        "org.freedesktop.DBus.Error.NoServer",
                        "org.freedesktop.DBus.Error.FileNotFound",
                        "org.freedesktop.DBus.Error.NotSupported",
                        "org.freedesktop.DBus.Error.Spawn",
                        "org.freedesktop.DBus.Error.NoReply",
                        "org.freedesktop.DBus.Error.Disconnected",
                        "was not provided by any .service files",
                        "DBUS_SESSION_BUS_ADDRESS",
                        "Unable to autolaunch",
                        "Failed to connect to socket",
                    ];
                    if unreachable.iter().any(|p| text.contains(p)) {
                        KeychainError::Unreachable(text)
                    } else {
                        KeychainError::Failed(text)
                    }
                }
                keyring::Error::BadEncoding(_) => {
                    KeychainError::Failed("the stored value is not UTF-8 text".into())
                }
                keyring::Error::Ambiguous(found) => KeychainError::Failed(format!(
                    "{} items match; keep one (secret-tool search --all service {SERVICE})",
                    found.len()
                )),
                other => KeychainError::Failed(other.to_string()),
            }
        }

        pub(crate) fn get(account: &str) -> Result<Option<Secret>, KeychainError> {
            match entry(account)?.get_password() {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(map(e)),
            }
        }

        pub(crate) fn set(account: &str, secret: &Secret) -> Result<(), KeychainError> {
            entry(account)?.set_password(secret.expose()).map_err(map)
        }

        pub(crate) fn delete(account: &str) -> Result<bool, KeychainError> {
            match entry(account)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(map(e)),
            }
        }
    }

    #[cfg(not(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "macos"
    )))]
    mod imp {
        use super::KeychainError;
        use crate::secret::Secret;

        pub(crate) fn get(_account: &str) -> Result<Option<Secret>, KeychainError> {
            Err(KeychainError::Unsupported)
        }

        pub(crate) fn set(_account: &str, _secret: &Secret) -> Result<(), KeychainError> {
            Err(KeychainError::Unsupported)
        }

        pub(crate) fn delete(_account: &str) -> Result<bool, KeychainError> {
            Err(KeychainError::Unsupported)
        }
    }

    /// The value of `account`'s item, if there is one.
    pub(crate) fn get(account: &str) -> Result<Option<Secret>, KeychainError> {
        imp::get(account)
    }

    /// Creates or replaces `account`'s item.
    pub(crate) fn set(account: &str, secret: &Secret) -> Result<(), KeychainError> {
        imp::set(account, secret)
    }

    /// Deletes `account`'s item; whether there was one.
    pub(crate) fn delete(account: &str) -> Result<bool, KeychainError> {
        imp::delete(account)
    }
}

/// The error of a failed keychain call, with its fix.
pub(crate) fn unavailable(e: &KeychainError) -> Error {
    Error::VaultUnavailable {
        vault: VaultKind::OsKeychain.to_string(),
        reason: e.to_string(),
        hint: e.hint(),
    }
}

/// What os.keychain can do.
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OsKeychain,
    exid_with: &[],
    location_with: &[],
    writable: true,
    lives_in_daemon: false,
    custody: Custody::Owns,
    owns_with: &[],
    mechs: &[Mech::Replica, Mech::GithubApp],
    default_mech: Mech::Replica,
    default_for_keys: &[],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |ctx| Box::new(OsKeychain::new(ctx)),
    open_for_set: None,
};

/// The os.keychain adapter.
pub(crate) struct OsKeychain<'a> {
    owner: &'a Owner,
}

impl<'a> OsKeychain<'a> {
    /// An adapter for the context's owner.
    pub(crate) fn new(ctx: VaultContext<'a>) -> Self {
        OsKeychain {
            owner: ctx.home.owner(),
        }
    }
}

impl Vault for OsKeychain<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::OsKeychain
    }

    fn store(&self, slug: &Slug, _mech: Mech, secret: &Secret) -> Result<Stored> {
        let account = account(slug, self.owner);
        let previous = backend::get(&account).map_err(|e| unavailable(&e))?;
        backend::set(&account, secret).map_err(|e| unavailable(&e))?;
        Ok(Stored::new(None, Meta::None, move || {
            match previous {
                Some(v) => backend::set(&account, &v),
                None => backend::delete(&account).map(drop),
            }
            .map_err(|e| unavailable(&e))
        }))
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        let account = account(&entry.slug, self.owner);
        Ok(match backend::get(&account).map_err(|e| unavailable(&e))? {
            Some(v) => Read::Granted(Grant::new(
                entry.slug.clone(),
                v,
                VaultKind::OsKeychain,
                entry.mech,
            )),
            None => Read::Lost(format!(
                "the OS keychain has no item for service {SERVICE}, account {account}"
            )),
        })
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        backend::delete(&account(&entry.slug, self.owner))
            .map(drop)
            .map_err(|e| unavailable(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_the_slug_and_the_owner() {
        let s = Slug::parse("acme.test.KEY").unwrap();
        assert_eq!(account(&s, &Owner::default()), "acme.test.KEY");
        let robot = Owner::new(Some("robot")).unwrap();
        assert_eq!(account(&s, &robot), "robot:acme.test.KEY");
    }

    #[test]
    fn each_failure_names_its_fix() {
        let e = KeychainError::Unreachable("no bus".into());
        assert!(e.to_string().contains("cannot be reached (no bus)"));
        if cfg!(target_os = "linux") {
            assert!(e
                .hint()
                .contains("start a Secret Service, e.g. gnome-keyring"));
            assert!(KeychainError::Locked("x".into())
                .hint()
                .contains("unlock your login keyring"));
        }
    }
}
