//! Where the daemon's socket lives: `$XDG_RUNTIME_DIR/keyrack/` (else `/tmp/keyrack-<uid>/`),
//! one socket per (keyrack home, owner, kernel login session).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;

/// The kernel's audit login session id, when it reports one.
pub fn login_session() -> Option<u32> {
    login_session_of("self")
}

/// The login session of process `pid` ("self" for this one).
pub fn login_session_of(pid: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/sessionid")).ok()?;
    match text.trim().parse::<u32>() {
        Ok(u32::MAX) | Err(_) => None,
        Ok(id) => Some(id),
    }
}

/// The directory that holds this user's sockets.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("keyrack"),
        None => PathBuf::from(format!("/tmp/keyrack-{}", nix::unistd::geteuid())),
    }
}

/// The socket path for `home`'s owner in this login session.
pub fn path(home: &Home) -> PathBuf {
    let root = std::path::absolute(home.root()).unwrap_or_else(|_| home.root().to_path_buf());
    let mut h = Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(home.owner().label().as_bytes());
    h.update([0]);
    h.update(login_session().map(|s| s.to_string()).unwrap_or_default());
    let digest = hex::encode(&h.finalize()[..8]);
    runtime_dir().join(format!("{}-{digest}.sock", home.owner().label()))
}

/// Creates the runtime dir 0700 and checks nobody else owns it (a shared `/tmp` could be
/// pre-created by another user).
pub fn prepare_dir(dir: &Path) -> Result<()> {
    fsio::ensure_private_dir(dir)?;
    let meta = std::fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Daemon {
            message: format!("{} is not a private directory owned by you", dir.display()),
            hint: format!(
                "remove it (rm -rf {}) or set XDG_RUNTIME_DIR",
                dir.display()
            ),
        });
    }
    Ok(())
}
