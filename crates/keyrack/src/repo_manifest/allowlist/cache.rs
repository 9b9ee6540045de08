//! The allowlist cache: `$KEYRACK_HOME/cache/<h>.allow`, one file per manifest path (`<h>` = 32
//! hex of sha256 of the path), holding the hydrated allowlist and the identity of every file it
//! came from.
//!
//! A cache file is a hint, never an authority. It is used only when all of this holds, else it
//! is ignored, the manifest is parsed, and the file is rewritten:
//! - it is a regular file (opened with `O_NOFOLLOW`: never a symlink), owned by this user, mode
//!   0600, with one link; the same for the key file `cache/key`;
//! - its tag verifies: ChaCha20-Poly1305 over the file's content with a random 32-byte key kept in
//!   `cache/key`, so a file edited, truncated, copied from another home or written by anything
//!   but keyrack is refused before a byte of it is interpreted;
//! - it was written by this very keyrack binary (same device, inode, size, mtime and ctime of
//!   the executable), so an upgrade whose parser reads a manifest differently never inherits
//!   an allowlist an older parser produced;
//! - it names this manifest path, and every file behind the allowlist (the manifest, then each
//!   `extends` target as opened) still resolves to the same canonical path and has the same
//!   device, inode, size, mtime and ctime (ns), so an edit, a replacement (rename, `git
//!   checkout`) or a retargeted symlink of any of them invalidates it;
//! - it parses strictly (names re-validated, envs sorted, no key twice in a section).
//!
//! A cache is written only when every source's mtime and ctime are older than the parse start
//! minus [`super::SETTLE`]: then no write can have raced the parse, and no later edit can carry
//! the same timestamps. It is never written into a keyrack home that does not exist yet, and a
//! failure to write is not an error (the next call parses again).

use std::borrow::Cow;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};

use super::{hash_step, AllowedKey, Allowlist, Builder, Span, HASH_START};
use crate::home::Home;
use crate::slug::{self, ENV_ALL, ENV_SUDO};

/// The format and version, first line of what the tag covers.
const MAGIC: &[u8] = b"keyrack-allowlist 1\n";
/// The key file's name in the cache directory.
const KEY_FILE: &str = "key";
const KEY_LEN: usize = 32;
/// No cache file is read beyond this (a 20 000-key manifest caches in about 300 KB).
const MAX_LEN: u64 = 64 << 20;

/// What identifies one version of a file: any write, rename over it or metadata change moves
/// at least one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    /// The running keyrack executable's identity.
    fn of_exe() -> Option<Self> {
        Some(FileId::of(
            &fs::metadata(std::env::current_exe().ok()?).ok()?,
        ))
    }

    /// `dev ino size mtime_s mtime_ns ctime_s ctime_ns`.
    fn push_to(&self, out: &mut String) {
        let fields = [
            self.dev as i128,
            self.ino as i128,
            self.size as i128,
            self.mtime.0 as i128,
            self.mtime.1 as i128,
            self.ctime.0 as i128,
            self.ctime.1 as i128,
        ];
        for (i, n) in fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&n.to_string());
        }
    }

    /// The fields [`FileId::push_to`] wrote, from `f`.
    fn parse(f: &mut std::str::Split<'_, char>) -> Option<Self> {
        Some(FileId {
            dev: field(f)?,
            ino: field(f)?,
            size: field(f)?,
            mtime: (field(f)?, field(f)?),
            ctime: (field(f)?, field(f)?),
        })
    }

    fn of(m: &Metadata) -> Self {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether both timestamps are strictly before `limit`.
    fn settled_before(&self, limit: Duration) -> bool {
        let ns = |(s, n): (i64, i64)| s as i128 * 1_000_000_000 + n as i128;
        let limit = limit.as_nanos() as i128;
        ns(self.mtime) < limit && ns(self.ctime) < limit
    }
}

/// One file behind an allowlist: the path it was opened by, where that resolves, and its
/// identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Source {
    opened: PathBuf,
    canonical: PathBuf,
    id: FileId,
}

impl Source {
    /// The file at `opened` now; `None` if it is not a regular file.
    pub(super) fn identify(opened: &Path) -> Option<Source> {
        let meta = fs::metadata(opened).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(Source {
            opened: opened.to_path_buf(),
            canonical: fs::canonicalize(opened).ok()?,
            id: FileId::of(&meta),
        })
    }
}

/// The cache slot of one manifest path.
pub(super) struct Cache {
    root: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    manifest: PathBuf,
}

impl Cache {
    pub(super) fn new(home: &Home, manifest: &Path) -> Self {
        let dir = home.root().join("cache");
        let digest = Sha256::digest(manifest.as_os_str().as_bytes());
        let mut name = hex::encode(&digest[..16]);
        name.push_str(".allow");
        Cache {
            root: home.root().to_path_buf(),
            file: dir.join(name),
            dir,
            manifest: manifest.to_path_buf(),
        }
    }

    /// The cache file's path.
    #[cfg(test)]
    pub(super) fn path(&self) -> &Path {
        &self.file
    }

    /// The cached allowlist, if the cache file is present and trusted (see the module docs).
    pub(super) fn read(&self) -> Option<Allowlist> {
        let key = read_private(&self.dir.join(KEY_FILE), KEY_LEN as u64)?;
        let key: [u8; KEY_LEN] = key.try_into().ok()?;
        let bytes = read_private(&self.file, MAX_LEN)?;
        let body_at = open(&key, &bytes)?;
        decode(&self.manifest, String::from_utf8(bytes).ok()?, body_at)
    }

    /// Caches `list`, read from `sources` by a parse that started at `started`. Best effort.
    pub(super) fn write(
        &self,
        list: &Allowlist,
        sources: &[PathBuf],
        started: SystemTime,
        settle: Duration,
    ) {
        let Some(limit) = started
            .checked_sub(settle)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        else {
            return;
        };
        let mut identified = Vec::with_capacity(sources.len());
        for p in sources {
            match Source::identify(p) {
                Some(s) if s.id.settled_before(limit) => identified.push(s),
                _ => return, // changed recently (or gone): parse again next time
            }
        }
        let Some(exe) = FileId::of_exe() else { return };
        let Some(key) = self.prepare() else { return };
        let body = encode(&self.manifest, exe, &identified, list);
        let _ = replace_private(&self.file, &seal(&key, &body));
    }

    /// The cache directory (created 0700 inside an existing keyrack home) and the key.
    fn prepare(&self) -> Option<[u8; KEY_LEN]> {
        if !fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_dir()) {
            return None; // a read-only command does not create the keyrack home
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        let meta = fs::symlink_metadata(&self.dir).ok()?;
        if !meta.is_dir() || meta.uid() != euid() {
            return None; // not a directory of ours: leave it alone
        }
        if meta.mode() & 0o777 != 0o700 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).ok()?;
        }
        let key_path = self.dir.join(KEY_FILE);
        if let Some(k) = read_private(&key_path, KEY_LEN as u64) {
            if let Ok(k) = k.try_into() {
                return Some(k);
            }
        }
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).ok()?;
        replace_private(&key_path, &k).ok()?;
        Some(k)
    }
}

/// Replaces `path` atomically (a 0600 temp file in the same directory, renamed over it; a
/// symlink at `path` is replaced, not followed). Not fsynced: a cache lost or torn by a crash
/// fails its tag and is rebuilt, and a cold `get` does not wait for the disk.
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".keyrack-tmp-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    // the mode on creation is subject to the umask: set it exactly
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Reads a file only if it is a regular file (not a symlink), owned by this user, mode 0600,
/// with one link and at most `max` bytes.
fn read_private(path: &Path, max: u64) -> Option<Vec<u8>> {
    let mut f: File = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    let private = m.is_file() && m.uid() == euid() && m.mode() & 0o7777 == 0o600 && m.nlink() == 1;
    if !private || m.len() > max {
        return None;
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// `tag <nonce> <tag>`, then `MAGIC` and the body, which the tag covers.
fn seal(key: &[u8; KEY_LEN], body: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("the OS random source works");
    let sealed = [MAGIC, body].concat();
    let tag = ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &sealed, &mut [])
        .expect("an empty message always seals");
    let mut out = format!("tag {} {}\n", hex::encode(nonce), hex::encode(tag)).into_bytes();
    out.extend_from_slice(&sealed);
    out
}

/// Where the body of a sealed file starts, if its tag verifies under `key` and its format is
/// this one.
fn open(key: &[u8; KEY_LEN], file: &[u8]) -> Option<usize> {
    let eol = file.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&file[..eol]).ok()?;
    let (nonce_hex, tag_hex) = line.strip_prefix("tag ")?.split_once(' ')?;
    let mut nonce = [0u8; 12];
    let mut tag = [0u8; 16];
    hex::decode_to_slice(nonce_hex, &mut nonce).ok()?;
    hex::decode_to_slice(tag_hex, &mut tag).ok()?;
    let sealed = &file[eol + 1..];
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            sealed,
            &mut [],
            Tag::from_slice(&tag),
        )
        .ok()?;
    sealed.starts_with(MAGIC).then_some(eol + 1 + MAGIC.len())
}

/// A path as one word of printable ASCII: bytes outside `!`..`~`, and `%`, become `%XX`.
fn escape_path(p: &Path) -> String {
    let mut out = String::with_capacity(p.as_os_str().len());
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of an [`escape_path`] word (borrowed when nothing was escaped).
fn unescape_path(s: &str) -> Option<Cow<'_, Path>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(Path::new(s)));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(Cow::Owned(PathBuf::from(std::ffi::OsString::from_vec(out))))
}

fn push_keys<'a>(out: &mut String, keys: impl Iterator<Item = AllowedKey<'a>>) {
    for k in keys {
        out.push_str("key ");
        out.push_str(k.key);
        if let Some(v) = k.optional_if_has {
            out.push(' ');
            out.push_str(v);
        }
        out.push('\n');
    }
}

/// The body: line-based, names as they are (they are validated names), paths in hex.
fn encode(manifest: &Path, exe: FileId, sources: &[Source], list: &Allowlist) -> Vec<u8> {
    let mut out = String::with_capacity(256 + 24 * list.entries.len());
    out.push_str("manifest ");
    out.push_str(&escape_path(manifest));
    out.push_str("\nexe ");
    exe.push_to(&mut out);
    out.push('\n');
    for s in sources {
        out.push_str("source ");
        s.id.push_to(&mut out);
        out.push(' ');
        out.push_str(&escape_path(&s.opened));
        out.push(' ');
        out.push_str(&escape_path(&s.canonical));
        out.push('\n');
    }
    out.push_str("org ");
    out.push_str(&list.org);
    out.push('\n');
    let section = |start: u32, end: u32| {
        list.entries[start as usize..end as usize]
            .iter()
            .map(|e| list.allowed(e))
    };
    for (name, start, end) in &list.envs {
        out.push_str("env ");
        out.push_str(name);
        out.push('\n');
        push_keys(&mut out, section(*start, *end));
    }
    out.push_str("all\n");
    push_keys(&mut out, section(list.all.0, list.all.1));
    out.push_str("end\n");
    out.into_bytes()
}

fn field<T: std::str::FromStr>(f: &mut std::str::Split<'_, char>) -> Option<T> {
    f.next()?.parse().ok()
}

/// Whether a `source` line still describes the file it names: the same canonical path and
/// identity now. The first source must be the manifest itself.
fn source_unchanged(rest: &str, manifest: Option<&Path>) -> Option<()> {
    let mut f = rest.split(' ');
    let id = FileId::parse(&mut f)?;
    let opened = unescape_path(f.next()?)?;
    let canonical = unescape_path(f.next()?)?;
    if f.next().is_some() || manifest.is_some_and(|m| *m != *opened) {
        return None;
    }
    let now = Source::identify(&opened)?;
    (now.id == id && now.canonical == *canonical).then_some(())
}

/// Reads a key name at `*at` in `bytes` (validated as [`slug::validate_key`] would), moving
/// `*at` past it; its span and hash.
fn scan_key(bytes: &[u8], at: &mut usize) -> Option<(Span, u32)> {
    let start = *at;
    let rest = bytes.get(start..)?;
    let (&first, tail) = rest.split_first()?;
    if !slug::is_key_head(first) {
        return None;
    }
    let mut h = hash_step(HASH_START, first);
    let mut len = 1;
    for &b in tail {
        if !slug::is_key_tail(b) {
            break;
        }
        h = hash_step(h, b);
        len += 1;
    }
    *at = start + len;
    let span = Span {
        at: start as u32,
        len: len as u32,
    };
    Some((span, h))
}

/// The sections: `env NAME`, `all` and `key KEY[ IF_HAS]` lines from `at` to `end` (each line
/// ends in a newline), in one pass over the bytes.
fn scan_sections(text: &str, mut at: usize, end: usize, b: &mut Builder) -> Option<()> {
    let bytes = &text.as_bytes()[..end];
    while at < end {
        let rest = &bytes[at..];
        if rest.starts_with(b"key ") {
            at += 4;
            let (key, h) = scan_key(bytes, &mut at)?;
            let mut optional_if_has = None;
            if bytes.get(at) == Some(&b' ') {
                at += 1;
                optional_if_has = Some(scan_key(bytes, &mut at)?.0);
            }
            b.key(key, h, optional_if_has)?;
        } else if rest.starts_with(b"all\n") {
            at += 3;
            b.all()?;
        } else if rest.starts_with(b"env ") {
            let eol = at + rest.iter().position(|&c| c == b'\n')?;
            let name = text.get(at + 4..eol)?;
            slug::validate_env(name).ok()?;
            if name == ENV_ALL || name == ENV_SUDO {
                return None;
            }
            b.env(name)?;
            at = eol;
        } else {
            return None;
        }
        if bytes.get(at) != Some(&b'\n') {
            return None;
        }
        at += 1;
    }
    Some(())
}

/// Parses the verified file `text` from `body_at` and checks that every source is unchanged;
/// `None` on any doubt. The allowlist's names stay in `text`.
/// Where the line after `line` (a slice of `text`) starts.
fn org_line_end(text: &str, line: &str) -> Option<usize> {
    let at = Span::within(text, line);
    Some((at.at + at.len) as usize + 1).filter(|&i| i <= text.len())
}

fn decode(manifest: &Path, text: String, body_at: usize) -> Option<Allowlist> {
    let body = text.get(body_at..)?.strip_suffix("\nend\n")?;
    let mut lines = body.split('\n');
    if *unescape_path(lines.next()?.strip_prefix("manifest ")?)? != *manifest {
        return None;
    }
    let mut exe = lines.next()?.strip_prefix("exe ")?.split(' ');
    if FileId::parse(&mut exe)? != FileId::of_exe()? || exe.next().is_some() {
        return None;
    }
    let mut line = lines.next()?;
    let mut first = true;
    while let Some(rest) = line.strip_prefix("source ") {
        source_unchanged(rest, first.then_some(manifest))?;
        first = false;
        line = lines.next()?;
    }
    if first {
        return None;
    }
    let org = line.strip_prefix("org ")?;
    slug::validate_org(org).ok()?;
    let org = org.to_string();
    // the sections follow the org line; `body` ends just before the final "\nend\n"
    let sections = org_line_end(&text, line)?;
    let end = body_at + body.len() + 1;
    let mut b = Builder::new(body.len() / 8);
    scan_sections(&text, sections, end, &mut b)?;
    b.finish(text, manifest.to_path_buf(), org)
}

#[cfg(test)]
pub(super) mod testing {
    //! Hooks for the unit tests: sealing arbitrary bodies and reading raw bodies.
    use super::*;

    /// The body of the cache file, whatever its tag says.
    pub fn body(file: &[u8]) -> Vec<u8> {
        let eol = file.iter().position(|&b| b == b'\n').unwrap();
        file[eol + 1..].strip_prefix(MAGIC).unwrap().to_vec()
    }

    /// Seals `body` with `key`.
    pub fn seal_with_key(key: &[u8; KEY_LEN], body: &[u8]) -> Vec<u8> {
        seal(key, body)
    }

    /// Seals `body` with the home's cache key, as keyrack would.
    pub fn seal_with_home_key(cache: &Cache, body: &[u8]) -> Vec<u8> {
        let key = read_private(&cache.dir.join(KEY_FILE), KEY_LEN as u64).unwrap();
        seal(&key.try_into().unwrap(), body)
    }
}
