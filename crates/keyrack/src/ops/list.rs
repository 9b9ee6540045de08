//! `keyrack list`: every key this host has configured (decrypts the host manifest), each with
//! whether the session daemon holds it now.

use super::row::{KeyRow, Status};
use super::Rack;
use crate::daemon::client::Client;
use crate::error::Result;

/// The host's entries, sorted by slug, optionally for one env: `granted` (with its expiry) when
/// the daemon holds it, else `locked`. Never starts the daemon; a daemon that cannot be asked
/// (none, or a runtime dir the client refuses) leaves every key `locked`, and the list is still
/// shown.
pub fn run(rack: &Rack, env: Option<&str>) -> Result<Vec<KeyRow>> {
    let host = rack.host()?;
    let held = Client::new(rack.home())
        .status()
        .ok()
        .flatten()
        .map(|s| s.grants)
        .unwrap_or_default();
    Ok(host
        .hosts
        .values()
        .filter(|e| env.is_none_or(|want| e.env == want))
        .map(|e| match held.iter().find(|g| g.slug == e.slug) {
            Some(g) => KeyRow::of_entry(e, Status::Granted).expires(Some(g.expires_at)),
            None => KeyRow::of_entry(e, Status::Locked),
        })
        .collect())
}
