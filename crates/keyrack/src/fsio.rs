//! Durable file operations: atomic writes (temp + fsync + rename), private modes, a writer lock.
//!
//! Temp files are `.keyrack-tmp-<pid>-<random>` next to their target, created exclusively (no
//! symlink followed) with mode 0600. A writer killed mid-write leaves one behind (for os.direct a
//! plaintext copy); the next write in that directory removes those whose writer is gone, and
//! taking an owner's lock removes every one in the directories only that lock's holders write.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) with mode 0700 and tightens it to 0700 if it already exists.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
    }
    let meta = fs::metadata(dir).map_err(|e| Error::io("inspect", dir, e))?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("set permissions on", dir, e))?;
    }
    Ok(())
}

/// The name prefix of keyrack's temporary files: `.keyrack-tmp-<pid>-<32 hex>`.
pub(crate) const TEMP_PREFIX: &str = ".keyrack-tmp-";

/// How many symbolic links [`resolve_link_target`] follows before it gives up.
pub(crate) const MAX_LINKS: usize = 16;

/// A temp file older than this is stale whoever made it: no write takes an hour, and a reused
/// pid must not keep a killed writer's plaintext copy alive forever.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Writes `bytes` to `path` atomically with mode `mode`: a temp file in the same directory,
/// fsync, rename over the target, fsync of the directory. A crash leaves either the old or the
/// new file, never a mix.
///
/// The temp file has an unguessable name that records the writer's pid, and is created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 (its final mode is set on the descriptor before the
/// rename). Temp files that killed writers left in the directory are removed first (see
/// [`remove_stale_temps`]). A symlink at `path` is replaced, not followed; use
/// [`write_atomic_through_links`] for files the user may have linked.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    remove_stale_temps(dir);
    let mut tmp = TempFile::create(dir)?;
    tmp.file
        .write_all(bytes)
        .and_then(|_| tmp.file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|_| tmp.file.sync_all())
        .map_err(|e| Error::io("write", path, e))?;
    fs::rename(&tmp.path, path).map_err(|e| Error::io("replace", path, e))?;
    tmp.persisted = true;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomic`] for a file the user may keep as a symbolic link (dotfile managers such as
/// stow, chezmoi, home-manager link `~/.aws/config` or `keyrack.yml` into another directory):
/// the link's final target is replaced atomically (temp file in the target's directory) and the
/// link stays. See [`resolve_link_target`] for what is refused.
pub(crate) fn write_atomic_through_links(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let target = resolve_link_target(path)?;
    write_atomic(&target, bytes, mode)
}

/// The file a write to `path` must replace: `path` itself unless it is a symbolic link, else the
/// end of its link chain (at most [`MAX_LINKS`] links, each resolved from the real directory of
/// the link). Refuses a dangling link, a link to something that is not a regular file, and a
/// link into a directory not owned by the current user (another user could swap the file).
pub(crate) fn resolve_link_target(path: &Path) -> Result<PathBuf> {
    let refuse = |reason: String, hint: String| Error::InvalidInput {
        what: "symlink",
        value: path.display().to_string(),
        reason,
        hint: Some(hint),
    };
    let mut current = path.to_path_buf();
    let mut followed = 0;
    loop {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if followed == MAX_LINKS {
                    return Err(refuse(
                        format!("more than {MAX_LINKS} symbolic links in a row (a loop?)"),
                        format!("point {} at the real file: ls -l {0}", path.display()),
                    ));
                }
                let dest = fs::read_link(&current)
                    .map_err(|e| Error::io("read the symbolic link", &current, e))?;
                current = if dest.is_absolute() {
                    dest
                } else {
                    // the kernel resolves a relative link from the link's real directory
                    let parent = current.parent().unwrap_or(Path::new("."));
                    let parent = if parent.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        parent
                    };
                    fs::canonicalize(parent)
                        .map_err(|e| Error::io("resolve", parent, e))?
                        .join(dest)
                };
                followed += 1;
            }
            Ok(meta) if meta.is_file() => break,
            Ok(_) if followed == 0 => {
                return Err(Error::InvalidInput {
                    what: "file",
                    value: path.display().to_string(),
                    reason: "it is not a regular file".into(),
                    hint: Some(format!("move it away: mv {0} {0}.bak", path.display())),
                })
            }
            Ok(_) => {
                return Err(refuse(
                    format!(
                        "it points at {}, which is not a regular file",
                        current.display()
                    ),
                    format!(
                        "point the link at a file: ln -sfn <file> {}",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && followed == 0 => {
                return Ok(current)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(
                    format!(
                        "it is a dangling link: its target {} does not exist",
                        current.display()
                    ),
                    format!(
                        "create the target (touch {}) or remove the link (rm {})",
                        current.display(),
                        path.display()
                    ),
                ))
            }
            Err(e) => return Err(Error::io("inspect", &current, e)),
        }
    }
    if followed > 0 {
        let parent = current.parent().unwrap_or(Path::new("/"));
        let dir = fs::canonicalize(parent).map_err(|e| Error::io("resolve", parent, e))?;
        current = dir.join(current.file_name().unwrap_or_default());
        let meta = fs::metadata(&dir).map_err(|e| Error::io("inspect", &dir, e))?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(refuse(
                format!(
                    "it points into {}, which is owned by uid {}, not by you (uid {me}): whoever owns it can swap the file",
                    dir.display(),
                    meta.uid()
                ),
                format!(
                    "keep the file in a directory you own and link to it there: ln -sfn <your file> {}",
                    path.display()
                ),
            ));
        }
    }
    Ok(current)
}

/// Removes the temp files in `dir` that no running writer owns: those whose writer (the pid in
/// the name) is gone, older than an hour, or not named the way keyrack names them (an older
/// keyrack's). A temp file of a live writer is left alone, so this is safe without a lock, even
/// in a directory that writers holding different locks share (the keyrack home holds every
/// owner's host manifest). Best effort: errors are ignored.
pub(crate) fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let writer_alive = temp_writer(rest).is_some_and(pid_alive);
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !writer_alive || old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes every keyrack temp file in `dir` but this process's own. Only for directories that
/// are written solely under a lock the caller holds: then no other writer can be mid-write there,
/// and any temp file is a leftover (even one whose pid was reused). Returns how many were removed.
pub(crate) fn remove_all_temps(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        if temp_writer(rest) == Some(me) {
            continue;
        }
        remove_if_exists(&entry.path())?;
        removed += 1;
    }
    Ok(removed)
}

/// The writer pid of a temp file name (after the prefix), when it is named `<pid>-<32 hex>`.
fn temp_writer(rest: &str) -> Option<u32> {
    let (pid, random) = rest.split_once('-')?;
    if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // EPERM: it exists but belongs to someone else; only ESRCH means gone.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// A temp file being written; unlinked on drop unless it was renamed into place.
struct TempFile {
    file: File,
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    fn create(dir: &Path) -> Result<Self> {
        for _ in 0..8 {
            let mut random = [0u8; 16];
            getrandom::fill(&mut random).map_err(|e| {
                Error::io(
                    "create a temporary file in",
                    dir,
                    std::io::Error::other(format!("no randomness for its name: {e}")),
                )
            })?;
            let path = dir.join(format!(
                "{TEMP_PREFIX}{}-{}",
                std::process::id(),
                hex::encode(random)
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        path,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create a temporary file in", dir, e)),
            }
        }
        Err(Error::io(
            "create a temporary file in",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "every random name was taken",
            ),
        ))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates an empty file with mode 0600 if it does not exist.
pub(crate) fn touch_private(path: &Path) -> Result<()> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::io("create", path, e))
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Reads a file, mapping errors to [`Error::Io`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// An exclusive advisory lock held until dropped; serialises concurrent keyrack writers.
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Blocks until the lock at `path` is acquired (the file is created 0600 if needed; a link
    /// there is refused, never followed).
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        file.lock().map_err(|e| Error::io("lock", path, e))?;
        Ok(WriteLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_is_0700() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        ensure_private_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn writes_remove_temps_of_dead_writers_and_keep_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "0123456789abcdef0123456789abcdef";
        let dead = format!("{TEMP_PREFIX}{}-{hex}", dead_pid());
        let legacy = format!("{TEMP_PREFIX}Ab3xYz");
        let mine = format!("{TEMP_PREFIX}{}-{hex}", std::process::id());
        let live = format!("{TEMP_PREFIX}1-{hex}"); // pid 1 always runs
        for n in [&dead, &legacy, &mine, &live] {
            fs::write(dir.path().join(n), "plaintext").unwrap();
        }
        write_atomic(&dir.path().join("f"), b"x", 0o600).unwrap();
        assert_eq!(
            names(dir.path()),
            vec![live.clone(), mine.clone(), "f".into()]
        );
        // under a lock that every writer of the directory takes, only our own survive
        assert_eq!(remove_all_temps(dir.path()).unwrap(), 1);
        assert_eq!(names(dir.path()), vec![mine, "f".to_string()]);
        assert_eq!(remove_all_temps(&dir.path().join("absent")).unwrap(), 0);
    }

    #[test]
    fn temp_names_are_unguessable_and_record_the_pid() {
        let a = TempFile::create(Path::new(&std::env::temp_dir())).unwrap();
        let b = TempFile::create(Path::new(&std::env::temp_dir())).unwrap();
        let name = |t: &TempFile| t.path.file_name().unwrap().to_string_lossy().into_owned();
        assert_ne!(name(&a), name(&b));
        let rest = name(&a).strip_prefix(TEMP_PREFIX).unwrap().to_string();
        assert_eq!(temp_writer(&rest), Some(std::process::id()));
        assert_eq!(
            fs::metadata(&a.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (pa, pb) = (a.path.clone(), b.path.clone());
        drop((a, b));
        assert!(
            !pa.exists() && !pb.exists(),
            "unpersisted temp files are removed"
        );
    }

    #[test]
    fn writes_through_links_replace_the_target_and_keep_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("dotfiles/aws")).unwrap();
        fs::create_dir_all(d.join("home/.aws")).unwrap();
        fs::write(d.join("dotfiles/aws/config"), "old").unwrap();
        // a relative link to a relative link, resolved from each link's directory
        std::os::unix::fs::symlink("../dotfiles/aws/config", d.join("home/stow-config")).unwrap();
        std::os::unix::fs::symlink("../stow-config", d.join("home/.aws/config")).unwrap();
        let link = d.join("home/.aws/config");
        assert_eq!(
            resolve_link_target(&link).unwrap(),
            fs::canonicalize(d).unwrap().join("dotfiles/aws/config")
        );
        write_atomic_through_links(&link, b"new", 0o640).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(d.join("dotfiles/aws/config")).unwrap(), b"new");
        assert_eq!(
            fs::metadata(d.join("dotfiles/aws/config"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        // a plain file and a new file are written in place
        let plain = d.join("plain");
        write_atomic_through_links(&plain, b"p", 0o600).unwrap();
        assert_eq!(resolve_link_target(&plain).unwrap(), plain);
    }

    #[test]
    fn dangling_looping_and_foreign_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        let e = write_atomic_through_links(&d.join("dangling"), b"x", 0o600).unwrap_err();
        assert!(e.to_string().contains("dangling link"), "{e}");
        assert!(!d.join("gone").exists());
        assert!(fs::symlink_metadata(d.join("dangling")).is_ok());

        std::os::unix::fs::symlink("loop-b", d.join("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", d.join("loop-b")).unwrap();
        let e = resolve_link_target(&d.join("loop-a")).unwrap_err();
        assert!(e.to_string().contains("symbolic links in a row"), "{e}");

        std::os::unix::fs::symlink(d, d.join("to-dir")).unwrap();
        let e = resolve_link_target(&d.join("to-dir")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        if nix::unistd::geteuid().is_root() {
            let foreign = d.join("foreign");
            fs::create_dir(&foreign).unwrap();
            fs::write(foreign.join("config"), "x").unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            std::os::unix::fs::symlink(foreign.join("config"), d.join("to-foreign")).unwrap();
            let e = write_atomic_through_links(&d.join("to-foreign"), b"y", 0o600).unwrap_err();
            assert!(
                e.to_string().contains("owned by uid 65534, not by you"),
                "{e}"
            );
            assert_eq!(fs::read(foreign.join("config")).unwrap(), b"x");
        }
    }
}
