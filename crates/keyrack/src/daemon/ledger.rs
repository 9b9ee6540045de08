//! The release ledger: files that must not outlive the grants they came with
//! ([`crate::grant::Grant::release`], e.g. a token a vault mirrors for other tools).
//!
//! Whoever is about to write such a file records its path here first, under its own process
//! identity; the daemon takes the entry over when it receives the grant, and removes the entry
//! when it removes the file. An entry whose owner process is gone (a daemon killed with
//! `kill -9`, an `unlock` that crashed before handing the grant over) is stale: the next keyrack
//! command that finds the daemon dead removes the file — only a regular file at exactly the
//! recorded path, never through a symlink — and forgets the entry.
//!
//! The ledger holds paths and process identities only, never a secret. One file per daemon
//! socket identity, `$KEYRACK_HOME/daemon/<owner>-<digest>.release.json`, mode 0600, replaced
//! atomically under a lock on the directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::platform;
use crate::error::{Error, Result};
use crate::fsio;
use crate::home::Home;

const SUFFIX: &str = ".release.json";

/// The ledger of one daemon socket identity.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    dir: PathBuf,
    file: PathBuf,
    socket: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    /// The daemon socket this ledger belongs to (for people reading it).
    #[serde(default)]
    socket: PathBuf,
    #[serde(default)]
    files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The file to remove when its owner is gone.
    path: PathBuf,
    /// The process responsible for removing it.
    owner_pid: u32,
    /// That process's identity ([`platform::process_token`]), against pid reuse.
    owner_token: String,
}

impl Entry {
    fn owned_by_me(path: &Path) -> Entry {
        let pid = std::process::id();
        Entry {
            path: path.to_path_buf(),
            owner_pid: pid,
            owner_token: platform::process_token(pid).unwrap_or_default(),
        }
    }

    fn owner_alive(&self) -> bool {
        match platform::process_token(self.owner_pid) {
            Some(t) => self.owner_token.is_empty() || t == self.owner_token,
            None => false,
        }
    }
}

fn ledger_dir(home: &Home) -> PathBuf {
    std::path::absolute(home.root())
        .unwrap_or_else(|_| home.root().to_path_buf())
        .join("daemon")
}

/// Holds the ledger directory's lock.
struct DirLock(File);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock> {
        fsio::ensure_private_dir(dir)?;
        let f = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        f.lock().map_err(|e| Error::io("lock", dir, e))?;
        Ok(DirLock(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn load(file: &Path) -> Book {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Book::default(),
    }
}

fn store(file: &Path, book: &Book) -> Result<()> {
    if book.files.is_empty() {
        return fsio::remove_if_exists(file);
    }
    let json = serde_json::to_vec_pretty(book).expect("ledger serialises");
    fsio::write_atomic(file, &json, 0o600)
}

/// Removes `path` if it is a regular file (not a symlink, not a directory). Returns whether a
/// file was removed.
fn remove_regular_file(path: &Path) -> bool {
    if !path.is_absolute() {
        return false;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => std::fs::remove_file(path).is_ok(),
        _ => false,
    }
}

impl Ledger {
    /// The ledger of `home`'s daemon in this login session.
    pub(crate) fn for_home(home: &Home) -> Ledger {
        Self::for_socket(home, &super::socket::path(home))
    }

    /// The ledger of the daemon at `socket`.
    pub(crate) fn for_socket(home: &Home, socket: &Path) -> Ledger {
        let dir = ledger_dir(home);
        let stem = socket
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "daemon".into());
        Ledger {
            file: dir.join(format!("{stem}{SUFFIX}")),
            dir,
            socket: socket.to_path_buf(),
        }
    }

    /// The ledger file.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.file
    }

    fn update(&self, f: impl FnOnce(&mut Vec<Entry>)) -> Result<()> {
        let _lock = DirLock::take(&self.dir)?;
        let mut book = load(&self.file);
        book.socket = self.socket.clone();
        f(&mut book.files);
        store(&self.file, &book)
    }

    /// Records that this process is about to write `path` and is responsible for it until the
    /// daemon takes it over. Call it before the file is written.
    pub(crate) fn record(&self, path: &Path) -> Result<()> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        self.update(|files| {
            files.retain(|e| e.path != path);
            files.push(Entry::owned_by_me(&path));
        })
    }

    /// This process (the daemon) now holds grants that carry these files: it answers for them.
    pub(crate) fn adopt(&self, paths: &[PathBuf]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        self.update(|files| {
            files.retain(|e| !paths.contains(&e.path));
            files.extend(paths.iter().map(|p| Entry::owned_by_me(p)));
        })
    }

    /// These files were removed by whoever answered for them: forget them.
    pub(crate) fn release(&self, paths: &[PathBuf]) -> Result<()> {
        if paths.is_empty() || !self.file.exists() {
            return Ok(());
        }
        self.update(|files| files.retain(|e| !paths.contains(&e.path)))
    }
}

/// Removes the files left behind by owners that are gone, in every ledger of `home`; returns
/// the files removed. Entries of a live owner (a running daemon, an `unlock` in progress) stay.
pub(crate) fn reap(home: &Home) -> Result<Vec<PathBuf>> {
    let dir = ledger_dir(home);
    let names: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(SUFFIX))
            })
            .collect(),
        Err(_) => return Ok(vec![]),
    };
    if names.is_empty() {
        return Ok(vec![]);
    }
    let _lock = DirLock::take(&dir)?;
    let mut removed = Vec::new();
    for file in names {
        let mut book = load(&file);
        let before = book.files.len();
        book.files.retain(|e| {
            if e.owner_alive() {
                return true;
            }
            if remove_regular_file(&e.path) {
                removed.push(e.path.clone());
            }
            false
        });
        if book.files.len() != before || book.files.is_empty() {
            store(&file, &book)?;
        }
    }
    removed.sort();
    removed.dedup();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slug::Owner;

    fn home(t: &tempfile::TempDir) -> Home {
        Home::at(t.path().join("kr"), Owner::default())
    }

    fn plant(book: &Path, path: &Path, pid: u32, token: &str) {
        let b = Book {
            socket: "/x.sock".into(),
            files: vec![Entry {
                path: path.to_path_buf(),
                owner_pid: pid,
                owner_token: token.into(),
            }],
        };
        fsio::ensure_private_dir(book.parent().unwrap()).unwrap();
        store(book, &b).unwrap();
    }

    #[test]
    fn a_live_owner_keeps_its_files_a_dead_one_loses_them() {
        let t = tempfile::tempdir().unwrap();
        let h = home(&t);
        let l = Ledger::for_socket(&h, Path::new("/run/k/default-0011.sock"));
        let mirror = t.path().join("token.json");
        l.record(&mirror).unwrap();
        std::fs::write(&mirror, "tok").unwrap();
        // this process is alive: nothing is reaped
        assert!(reap(&h).unwrap().is_empty());
        assert!(mirror.exists());
        // the same entry under a pid that no longer exists
        plant(l.path(), &mirror, u32::MAX - 1, "gone");
        assert_eq!(reap(&h).unwrap(), vec![mirror.clone()]);
        assert!(!mirror.exists());
        assert!(!l.path().exists(), "an empty ledger is removed");
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let t = tempfile::tempdir().unwrap();
        let h = home(&t);
        let l = Ledger::for_socket(&h, Path::new("/run/k/default-0022.sock"));
        let mirror = t.path().join("token.json");
        std::fs::write(&mirror, "tok").unwrap();
        plant(l.path(), &mirror, std::process::id(), "another-boot:1");
        assert_eq!(reap(&h).unwrap(), vec![mirror.clone()]);
    }

    #[test]
    fn symlinks_and_directories_are_never_removed() {
        let t = tempfile::tempdir().unwrap();
        let h = home(&t);
        let l = Ledger::for_socket(&h, Path::new("/run/k/default-0033.sock"));
        let target = t.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = t.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        plant(l.path(), &link, u32::MAX - 1, "gone");
        assert!(reap(&h).unwrap().is_empty());
        assert!(target.exists() && link.exists());
        assert!(!l.path().exists(), "the stale entry is forgotten");
    }

    #[test]
    fn release_forgets_and_adopt_takes_over() {
        let t = tempfile::tempdir().unwrap();
        let h = home(&t);
        let l = Ledger::for_socket(&h, Path::new("/run/k/default-0044.sock"));
        let a = t.path().join("a.json");
        plant(l.path(), &a, u32::MAX - 1, "gone");
        l.adopt(std::slice::from_ref(&a)).unwrap();
        std::fs::write(&a, "tok").unwrap();
        assert!(reap(&h).unwrap().is_empty(), "adopted by a live process");
        l.release(std::slice::from_ref(&a)).unwrap();
        assert!(!l.path().exists());
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            l.record(&a).unwrap();
            std::fs::metadata(l.path()).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);
    }
}
