//! Where the daemon's socket lives, and whether that place can be trusted.
//!
//! The socket is `<runtime dir>/<owner>-<digest>.sock`, one per (keyrack home, owner, kernel
//! login session). The runtime dir is `$XDG_RUNTIME_DIR/keyrack/`, else
//! `${TMPDIR:-/tmp}/keyrack-<uid>/` (see [`super::platform::runtime_dir`]). The fallback sits in a
//! shared directory another user can write to, so both the daemon and every client check the
//! runtime dir with `lstat` before using it: it must be a real directory (not a symlink), owned
//! by the caller, with no access for group or others. A client also checks the uid of the
//! process serving the socket (`SO_PEERCRED`) before it writes a byte.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::platform::{self, describe_uid, euid, MAX_SOCKET_PATH};
pub(crate) use super::platform::{login_session, login_session_of, runtime_dir};
use crate::error::{Error, Result};
use crate::home::Home;

/// The socket path for `home`'s owner in this login session.
pub(crate) fn path(home: &Home) -> PathBuf {
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

/// The fix for a runtime dir someone else controls: the caller cannot remove it.
fn private_dir_fix(dir: &Path) -> String {
    format!(
        "you cannot remove {} (it is not yours): give keyrack a private runtime dir, e.g. mkdir -m 700 -p ~/.keyrack-run && export XDG_RUNTIME_DIR=~/.keyrack-run (or /run/user/$(id -u) where it exists), and tell your administrator",
        dir.display()
    )
}

fn untrusted(message: String, hint: String) -> Error {
    Error::DaemonUntrusted { message, hint }
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_file() {
        "regular file"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "named pipe"
    } else {
        "special file"
    }
}

/// Checks the runtime dir without following symlinks. `Ok(false)` when it does not exist (no
/// daemon can be running); an error when it exists but cannot be trusted.
pub(crate) fn check_runtime_dir(dir: &Path) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", dir, e)),
    };
    let me = euid();
    let mine = meta.uid() == me;
    // (named only in a refusal: looking the user up costs more than the rest of a `get`)
    let owner = || describe_uid(meta.uid());
    let ft = meta.file_type();
    let remove = || format!("rm -rf '{}'   (then retry)", dir.display());
    if ft.is_symlink() {
        let target = std::fs::read_link(dir)
            .map(|t| format!(" to {}", t.display()))
            .unwrap_or_default();
        return Err(untrusted(
            format!(
                "the daemon's runtime dir {} is a symbolic link{target} owned by {}, not a directory: whoever controls the link decides which socket receives your secrets",
                dir.display(),
                owner()
            ),
            if mine { remove() } else { private_dir_fix(dir) },
        ));
    }
    if !ft.is_dir() {
        return Err(untrusted(
            format!(
                "the daemon's runtime dir {} is a {} owned by {}, not a directory",
                dir.display(),
                kind_of(&ft),
                owner()
            ),
            if mine { remove() } else { private_dir_fix(dir) },
        ));
    }
    if !mine {
        return Err(untrusted(
            format!(
                "the daemon's runtime dir {} is owned by {}, not by you ({}): another user may be impersonating your keyrack daemon",
                dir.display(),
                owner(),
                describe_uid(me)
            ),
            private_dir_fix(dir),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(untrusted(
            format!(
                "the daemon's runtime dir {} has mode {mode:03o}: other users can reach it, so its socket may not be your daemon's (it must be 0700)",
                dir.display()
            ),
            format!(
                "{}; keyrack recreates it with mode 0700 (it holds only keyrack's sockets)",
                remove()
            ),
        ));
    }
    Ok(true)
}

/// Refuses socket paths the kernel cannot bind or connect to.
pub(crate) fn check_path_len(path: &Path) -> Result<()> {
    let n = path.as_os_str().len();
    if n <= MAX_SOCKET_PATH {
        return Ok(());
    }
    let var = if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
        "XDG_RUNTIME_DIR"
    } else {
        "TMPDIR"
    };
    Err(Error::Daemon {
        source: super::DaemonError::SocketPathTooLong {
            path: path.to_path_buf(),
            len: n,
        },
        hint: format!(
            "point {var} at a shorter private directory, e.g. mkdir -m 700 -p /tmp/kr-$(id -u) && export {var}=/tmp/kr-$(id -u)"
        ),
    })
}

/// Creates the runtime dir (mode 0700) when it is missing, then checks it as clients do.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    if check_runtime_dir(dir)? {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    match b.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // $XDG_RUNTIME_DIR (or $TMPDIR) itself is missing: create it private too
            b.recursive(true)
                .create(dir)
                .map_err(|e| Error::io("create directory", dir, e))?;
        }
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    if check_runtime_dir(dir)? {
        Ok(())
    } else {
        Err(Error::io(
            "create directory",
            dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ))
    }
}

/// Whether the process behind a connected socket is this user's (the check a client makes
/// before it writes a byte).
pub(crate) fn check_server(stream: &std::os::unix::net::UnixStream, path: &Path) -> Result<i32> {
    let peer = platform::peer(stream).map_err(|e| {
        untrusted(
            format!(
                "cannot tell who serves {} ({e}), so it is not trusted",
                path.display()
            ),
            "check the socket with: ls -l; then keyrack daemon prune".into(),
        )
    })?;
    let me = euid();
    if peer.uid != me {
        return Err(untrusted(
            format!(
                "the socket {} is served by {} (pid {}), not by you ({}): it is not your keyrack daemon",
                path.display(),
                describe_uid(peer.uid),
                peer.pid,
                describe_uid(me)
            ),
            format!(
                "do not use that directory: give keyrack a private runtime dir, e.g. mkdir -m 700 -p ~/.keyrack-run && export XDG_RUNTIME_DIR=~/.keyrack-run; and report pid {} to your administrator",
                peer.pid
            ),
        ));
    }
    Ok(peer.pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_is_not_running_and_a_private_dir_passes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("rt");
        assert!(!check_runtime_dir(&d).unwrap());
        prepare_dir(&d).unwrap();
        assert!(check_runtime_dir(&d).unwrap());
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_symlink_a_file_and_an_open_dir_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        prepare_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = check_runtime_dir(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(matches!(e, Error::DaemonUntrusted { .. }));
        // prepare_dir must not follow it either
        assert!(prepare_dir(&link).is_err());

        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_runtime_dir(&file).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");

        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_runtime_dir(&real).unwrap_err();
        assert!(e.to_string().contains("mode 777"), "{e}");
    }

    #[test]
    fn long_paths_are_refused_before_bind() {
        let long = PathBuf::from(format!("/tmp/{}/x.sock", "a".repeat(120)));
        let e = check_path_len(&long).unwrap_err();
        assert!(e.to_string().contains("at most 107"), "{e}");
        assert!(check_path_len(Path::new("/tmp/k/x.sock")).is_ok());
    }
}
