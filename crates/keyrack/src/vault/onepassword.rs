//! `1password`: keys kept in 1Password, read through the 1Password CLI ([`op_cli`]).
//!
//! Two mechs:
//! - `reference` (the default): the host entry keeps an `op://vault/item/field` secret reference
//!   (`--exid`); `unlock` reads it with `op read`; `del` forgets the reference and never touches
//!   the item.
//! - `replica`: keyrack creates the item itself, a `PASSWORD` item titled after the slug
//!   ([`item_title`]) in the vault named by `--op-vault` (default: the account's built-in
//!   Private/Personal vault), and keeps its reference by ids; a later `set` edits the same item;
//!   `del` deletes it. Only items keyrack created are ever deleted.
//!
//! The secret reaches `op` only through a JSON item template on stdin or on a pipe (never argv).
//! Every failure of `op` (not installed, not signed in, item gone, timed out) is that key's
//! error or `lost` row with the fix; once `op` is found missing, signed out or hanging, the
//! other 1Password keys of the same run get the same answer without calling `op` again.
//!
//! [`op_cli`]: super::op_cli

use std::cell::{OnceCell, RefCell};

use super::op_cli::{self, ItemRef, ItemTemplate, OpCli, OpError, PASSWORD_FIELD};
use super::{Custody, Grant, Read, Stored, Vault, VaultContext, VaultInfo, VaultKind};
use crate::error::{Error, Result};
use crate::grant::Mech;
use crate::host_manifest::{HostEntry, Meta};
use crate::secret::Secret;
use crate::slug::{Owner, Slug};

/// What `set` points the adapter at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetTarget {
    /// The `op://…` secret reference of a `reference` key (`--exid`).
    pub reference: Option<String>,
    /// The 1Password vault a `replica` item is created in (`--op-vault`); default: the account's
    /// built-in Private/Personal vault.
    pub op_vault: Option<String>,
}

/// The tag on every item keyrack creates.
pub(crate) const ITEM_TAG: &str = "keyrack";

/// The title of the item keyrack creates for `slug` (`replica`).
pub(crate) fn item_title(slug: &Slug, owner: &Owner) -> String {
    match owner.name() {
        Some(o) => format!("keyrack ({o}): {slug}"),
        None => format!("keyrack: {slug}"),
    }
}

/// What 1password can do: it references items (`del` forgets the pointer), but owns the items
/// it created itself (`replica`: `del` deletes them).
pub(crate) const INFO: VaultInfo = VaultInfo {
    kind: VaultKind::OnePassword,
    exid_with: &[Mech::Reference],
    location_with: &[Mech::Replica],
    writable: true,
    lives_in_daemon: false,
    custody: Custody::References,
    owns_with: &[Mech::Replica],
    mechs: &[Mech::Reference, Mech::Replica],
    default_mech: Mech::Reference,
    default_for_keys: &[],
    custody_of_entry: None,
    reads_with_session_grants: false,
    set_flags: &[],
    open: |ctx| Box::new(OnePassword::new(ctx)),
    open_for_set: Some(|ctx, t| {
        Box::new(OnePassword::for_set(
            ctx,
            SetTarget {
                reference: t.exid,
                op_vault: t.location,
            },
        ))
    }),
};

/// The 1password adapter. It keeps no secret between calls: only the `op` it found and the
/// first session-wide failure, so one run asks a missing or signed-out `op` once.
pub struct OnePassword<'a> {
    owner: &'a Owner,
    target: SetTarget,
    cli: OnceCell<std::result::Result<OpCli, OpError>>,
    /// The first failure every later call would repeat (missing, signed out, timing out).
    down: RefCell<Option<OpError>>,
}

/// The error of a failed `op` call, with its fix.
pub(crate) fn unavailable(e: &OpError) -> Error {
    Error::VaultUnavailable {
        vault: VaultKind::OnePassword.to_string(),
        reason: e.to_string(),
        hint: e.hint(),
    }
}

impl<'a> OnePassword<'a> {
    /// An adapter for unlock and del (`op` is looked up on `PATH` at first use).
    pub fn new(ctx: VaultContext<'a>) -> Self {
        OnePassword {
            owner: ctx.home.owner(),
            target: SetTarget::default(),
            cli: OnceCell::new(),
            down: RefCell::new(None),
        }
    }

    /// An adapter for `set`, pointed at `target`.
    pub fn for_set(ctx: VaultContext<'a>, target: SetTarget) -> Self {
        OnePassword {
            target,
            ..OnePassword::new(ctx)
        }
    }

    /// Uses `cli` instead of the `op` found on `PATH`.
    pub fn with_cli(self, cli: OpCli) -> Self {
        let cell = OnceCell::new();
        let _ = cell.set(Ok(cli));
        OnePassword { cli: cell, ..self }
    }

    /// Runs one `op` call, unless an earlier one showed that it would fail anyway.
    fn call<T>(
        &self,
        f: impl FnOnce(&OpCli) -> std::result::Result<T, OpError>,
    ) -> std::result::Result<T, OpError> {
        if let Some(e) = self.down.borrow().as_ref() {
            return Err(e.clone());
        }
        let cli = self.cli.get_or_init(OpCli::locate).as_ref();
        let result = match cli {
            Ok(cli) => f(cli),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &result {
            if e.is_session_wide() {
                *self.down.borrow_mut() = Some(e.clone());
            }
        }
        result
    }

    fn store_reference(&self) -> Result<Stored> {
        let Some(uri) = self.target.reference.clone() else {
            return Err(no_reference());
        };
        check_reference(&uri)?;
        Ok(Stored::new(Some(uri), Meta::None, || Ok(())))
    }

    fn store_replica(&self, slug: &Slug, secret: &Secret) -> Result<Stored> {
        if let Some(v) = &self.target.op_vault {
            check_vault_name(v)?;
        }
        let title = item_title(slug, self.owner);
        let note = format!(
            "Created by keyrack for {slug}. `keyrack del --key {}` deletes it.",
            slug.key()
        );
        let tags = [ITEM_TAG];
        let template = ItemTemplate::new(&title, secret, &note, &tags);
        let vault = self.target.op_vault.as_deref();
        let existing = self
            .call(|op| op.find_item(&title, vault))
            .map_err(|e| unavailable(&e))?;
        let (item, undo): (ItemRef, Box<dyn FnOnce() -> Result<()>>) = match existing {
            Some(item) => {
                // A re-set edits the same item; the undo puts the old value back.
                let previous = match self.call(|op| op.read(&item.reference(PASSWORD_FIELD))) {
                    Ok(p) => p,
                    Err(OpError::NotFound { detail }) => {
                        return Err(Error::VaultRefused {
                            vault: VaultKind::OnePassword.to_string(),
                            operation: "set",
                            reason: format!(
                                "the item \"{title}\" in vault {} has no password field keyrack can replace ({detail})",
                                item.vault_name
                            ),
                            hint: "rename or delete that item in 1Password, then run the same keyrack set".into(),
                        })
                    }
                    Err(e) => return Err(unavailable(&e)),
                };
                let edited = self
                    .call(|op| op.edit_item(&item, &template, secret))
                    .map_err(|e| unavailable(&e))?;
                let op = self.cli_for_undo()?;
                let (t, n) = (title.clone(), note.clone());
                let target = edited.clone();
                (
                    edited,
                    Box::new(move || {
                        let tags = [ITEM_TAG];
                        let back = ItemTemplate::new(&t, &previous, &n, &tags);
                        op.edit_item(&target, &back, &previous)
                            .map(drop)
                            .map_err(|e| unavailable(&e))
                    }),
                )
            }
            None => {
                let created = self
                    .call(|op| op.create_item(&template, vault, secret))
                    .map_err(|e| unavailable(&e))?;
                let op = self.cli_for_undo()?;
                let target = created.clone();
                (
                    created,
                    Box::new(move || {
                        op.delete_item(&target.id, &target.vault_id)
                            .map_err(|e| unavailable(&e))
                    }),
                )
            }
        };
        // The reference by ids is all a later unlock or del needs.
        Ok(Stored::new(
            Some(item.reference(PASSWORD_FIELD)),
            Meta::None,
            undo,
        ))
    }

    /// Reads the value `set`'s `--exid` points at (what the round trip of a reference compares
    /// the read at unlock with).
    pub fn resolve_reference(&self) -> Result<Secret> {
        let Some(uri) = self.target.reference.as_deref() else {
            return Err(no_reference());
        };
        check_reference(uri)?;
        match self.call(|op| op.read(uri)) {
            Ok(v) => Ok(v),
            Err(OpError::NotFound { detail }) => Err(Error::InvalidInput {
                what: "--exid",
                value: uri.into(),
                reason: format!("1Password has nothing there ({detail})"),
                hint: Some(format!("check the reference: op read '{uri}'")),
            }),
            Err(e) => Err(unavailable(&e)),
        }
    }

    fn cli_for_undo(&self) -> Result<OpCli> {
        match self.cli.get() {
            Some(Ok(cli)) => Ok(cli.clone()),
            Some(Err(e)) => Err(unavailable(e)),
            None => Err(unavailable(&OpError::Missing)),
        }
    }
}

fn no_reference() -> Error {
    Error::InvalidInput {
        what: "--exid",
        value: String::new(),
        reason: "a 1password reference key needs the op:// secret reference of the item".into(),
        hint: Some(
            "pass --exid 'op://<vault>/<item>/<field>' (in 1Password: Copy Secret Reference), or --mech replica to let keyrack create the item".into(),
        ),
    }
}

/// Checks `--exid` for a 1password reference key.
pub(crate) fn check_reference(uri: &str) -> Result<()> {
    op_cli::validate_reference(uri).map_err(|reason| Error::InvalidInput {
        what: "--exid",
        value: uri.chars().filter(|c| !c.is_control()).collect(),
        reason,
        hint: Some("use the item's secret reference: op://<vault>/<item>/<field>".into()),
    })
}

fn check_vault_name(v: &str) -> Result<()> {
    if v.trim().is_empty() || v.starts_with('-') || v.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            what: "--op-vault",
            value: v.chars().filter(|c| !c.is_control()).collect(),
            reason: "not a 1Password vault name".into(),
            hint: Some("use the vault's name or id as op vault list shows it".into()),
        });
    }
    Ok(())
}

/// The vault and item ids of a reference keyrack made (`op://<vault id>/<item id>/password`).
fn replica_ids(exid: &str) -> Option<(&str, &str)> {
    let rest = exid.strip_prefix("op://")?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(i), Some(PASSWORD_FIELD), None) if !v.is_empty() && !i.is_empty() => {
            Some((v, i))
        }
        _ => None,
    }
}

impl Vault for OnePassword<'_> {
    fn kind(&self) -> VaultKind {
        VaultKind::OnePassword
    }

    fn check_ready(&self, _slug: &Slug) -> Result<()> {
        // op must at least be installed; a signed-out op is reported by the store itself
        match self.cli.get_or_init(OpCli::locate) {
            Ok(_) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn referenced(&self, _slug: &Slug, mech: Mech) -> Option<Result<Secret>> {
        (mech == Mech::Reference).then(|| self.resolve_reference())
    }

    fn store(&self, slug: &Slug, mech: Mech, secret: &Secret) -> Result<Stored> {
        match mech {
            Mech::Reference => self.store_reference(),
            Mech::Replica => self.store_replica(slug, secret),
            other => Err(Error::InvalidInput {
                what: "mech",
                value: other.to_string(),
                reason: "vault 1password does not support this mech".into(),
                hint: Some("use --mech reference or --mech replica".into()),
            }),
        }
    }

    fn read(&self, entry: &HostEntry) -> Result<Read> {
        let Some(uri) = entry.exid.as_deref() else {
            return Ok(Read::Lost(
                "no 1Password reference is recorded for it".into(),
            ));
        };
        match self.call(|op| op.read(uri)) {
            Ok(value) => Ok(Read::Granted(Grant::new(
                entry.slug.clone(),
                value,
                VaultKind::OnePassword,
                entry.mech,
            ))),
            Err(OpError::NotFound { detail }) => Ok(Read::Lost(format!(
                "1Password has nothing at {uri} ({detail})"
            ))),
            Err(e) => Err(unavailable(&e)),
        }
    }

    fn del(&self, entry: &HostEntry) -> Result<()> {
        if entry.mech != Mech::Replica {
            return Ok(()); // a reference is forgotten; the item is someone else's
        }
        let Some((vault_id, item_id)) = entry.exid.as_deref().and_then(replica_ids) else {
            return Ok(()); // nothing keyrack created is recorded
        };
        match self.call(|op| op.delete_item(item_id, vault_id)) {
            Ok(()) | Err(OpError::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_name_the_slug_and_owner() {
        let s = Slug::parse("acme.test.KEY").unwrap();
        assert_eq!(item_title(&s, &Owner::default()), "keyrack: acme.test.KEY");
        let robot = Owner::new(Some("robot")).unwrap();
        assert_eq!(item_title(&s, &robot), "keyrack (robot): acme.test.KEY");
    }

    #[test]
    fn only_references_keyrack_made_name_an_item_to_delete() {
        assert_eq!(replica_ids("op://v1/i1/password"), Some(("v1", "i1")));
        assert_eq!(replica_ids("op://v1/i1/token"), None);
        assert_eq!(replica_ids("op://v1/i1/s/password"), None);
        assert_eq!(replica_ids("op:///i1/password"), None);
    }
}
