//! # keyrack
//!
//! A credential front desk for developers and their automation. A repository declares the keys
//! it needs per env ([`repo_manifest`]); each machine records which vault holds each key in an
//! encrypted host manifest ([`host_manifest`]); `unlock` pulls keys out of their vaults
//! ([`vault`]) into a per-session daemon ([`daemon`]) for a bounded time; `get` / `source` /
//! `exec` read them back in one socket round trip ([`ops::get`]).
//!
//! They meet in [`grant`]: the grant (an unlocked secret and what comes with it), the vault and
//! mech names, the one time type. The daemon knows grants, not vaults; vaults are stateless
//! adapters whose capabilities are data ([`vault::info`]); the daemon renews grants through the
//! [`grant::Renewer`] it is started with ([`vault::VaultRenewer`]).
//!
//! The library never prints or prompts: what it needs from a person (a secret, a passphrase, a
//! browser sign-in) it asks through [`interact::Interact`], which the CLI implements on the
//! terminal; operations return data that the caller renders.
//!
//! ```no_run
//! use keyrack::{ops, slug::Owner};
//!
//! let rack = ops::Rack::from_env(Owner::default(), None)?;
//! ops::init::run(&rack, &ops::init::InitOptions::default())?;
//! let allowlist = rack.allowlist()?;
//! let attempts = ops::get::get(
//!     rack.home(),
//!     allowlist.as_ref(),
//!     &ops::get::GetOptions { keys: vec!["XAI_API_KEY".into()], ..Default::default() },
//! )?;
//! assert_eq!(attempts.len(), 1); // one key asked, one answer (granted, locked, absent, …)
//! # Ok::<(), keyrack::Error>(())
//! ```
#![deny(missing_docs)]
// The library never prints: what a person should see goes through `interact`.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// The public surface is what the CLI and the tests use; module docs still link the internals
// they describe (rendered with `cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod aws;
pub mod crypto;
pub mod daemon;
pub(crate) mod error;
pub(crate) mod firewall;
pub mod fsio;
pub mod github;
pub mod grant;
pub mod home;
pub mod host_manifest;
pub mod identity;
pub mod interact;
pub mod mech;
pub mod ops;
pub mod repo_manifest;
pub mod secret;
pub mod slug;
#[cfg(test)]
mod testgen;
pub mod vault;

pub use error::{Error, Result};
