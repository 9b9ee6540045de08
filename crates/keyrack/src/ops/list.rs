//! `keyrack list`: every key this host has configured (decrypts the host manifest).

use super::Rack;
use crate::error::Result;
use crate::host_manifest::HostEntry;

/// The host's entries, sorted by slug, optionally for one env.
pub fn run(rack: &Rack, env: Option<&str>) -> Result<Vec<HostEntry>> {
    let host = rack.host()?;
    Ok(host
        .hosts
        .into_values()
        .filter(|e| env.is_none_or(|want| e.env == want))
        .collect())
}
