//! The allowlist of a repo manifest, hydrated for the hot path (`get`, `source`, `exec`).
//!
//! [`Allowlist`] answers the questions `get` asks of `keyrack.yml` — which envs exist, which keys
//! an env allows, which envs declare a key — from an index built once: env → its keys in order,
//! key → the envs that declare it. Every answer costs a hash lookup, so `source` over an env of
//! n keys is linear, not quadratic.
//!
//! [`Allowlist::load`] also keeps the hydrated allowlist in a small cache file under
//! `$KEYRACK_HOME/cache/`, so a warm `get` parses no YAML at all (see [`cache`] for what makes a
//! cache file trusted). A miss, or any doubt about the cache, parses the manifest exactly as
//! [`RepoManifest::load`] does, with the same `file:line:col` errors.

mod cache;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::RepoManifest;
use crate::error::Result;
use crate::home::Home;
use crate::slug::{ENV_ALL, ENV_SUDO};

/// How long every file behind a manifest must have stood unchanged before its allowlist is
/// cached. A file changed within this window may still be changing while it is read, and a
/// filesystem with coarse timestamps (1 s on some, 2 s on FAT) could give the next edit the
/// same mtime and ctime: such a manifest is parsed, and cached on a later call.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// One key an env allows, as the hot path needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AllowedKey<'a> {
    /// The env-var name.
    pub key: &'a str,
    /// Strict `source` waives this key when that env var is set.
    pub optional_if_has: Option<&'a str>,
}

/// A span of `Allowlist::names`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    at: u32,
    len: u32,
}

/// One key of one section.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Span,
    /// `len == 0`: none.
    optional_if_has: Span,
    /// The section: an index into `envs`, or `envs.len()` for `env.all`.
    section: u32,
    /// [`hash`] of the key.
    hash: u32,
    /// The next entry with the same key (in a later section), or `NONE`.
    next: u32,
}

const NONE: u32 = u32::MAX;

/// A repo manifest's allowlist with its lookups (see the module docs).
///
/// Compact: every name lives in one string, every key of every section is one fixed-size entry,
/// and a key's entries are chained from one slot of an open-addressing table. Building it
/// allocates a handful of buffers whatever the number of keys.
#[derive(Clone, Debug)]
pub struct Allowlist {
    path: PathBuf,
    org: String,
    /// The text the spans point into.
    names: String,
    /// Entries by section: each declared env's (sorted by env name), then `env.all`'s, each in
    /// manifest order.
    entries: Vec<Entry>,
    /// Declared envs (not `all`), sorted, each with its entries `start..end`.
    envs: Vec<(String, u32, u32)>,
    /// `env.all`'s entries.
    all: (u32, u32),
    /// Open addressing over distinct keys: the first entry of the key, or `NONE`.
    table: Vec<u32>,
}

impl Span {
    /// The span of `part`, a slice of `whole`.
    fn within(whole: &str, part: &str) -> Span {
        let at = part.as_ptr() as usize - whole.as_ptr() as usize;
        debug_assert!(at + part.len() <= whole.len());
        Span {
            at: at as u32,
            len: part.len() as u32,
        }
    }

    /// Appends `s` to `names` and returns its span.
    fn append(names: &mut String, s: &str) -> Span {
        let at = names.len() as u32;
        names.push_str(s);
        Span {
            at,
            len: s.len() as u32,
        }
    }
}

/// Builds an [`Allowlist`]: sections in order, keys in order, names as spans of one string
/// handed over at the end.
struct Builder {
    entries: Vec<Entry>,
    envs: Vec<(String, u32, u32)>,
    all_start: Option<u32>,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        Builder {
            entries: Vec::with_capacity(capacity),
            envs: Vec::new(),
            all_start: None,
        }
    }

    fn close_env(&mut self) {
        if let Some(last) = self.envs.last_mut() {
            if last.2 == NONE {
                last.2 = self.entries.len() as u32;
            }
        }
    }

    /// Starts a declared env's section (envs must come sorted, before `all`).
    fn env(&mut self, name: &str) -> Option<()> {
        if self.all_start.is_some() || self.envs.last().is_some_and(|e| e.0.as_str() >= name) {
            return None;
        }
        self.close_env();
        let start = self.entries.len() as u32;
        self.envs.push((name.to_string(), start, NONE));
        Some(())
    }

    /// Starts `env.all`'s section.
    fn all(&mut self) -> Option<()> {
        if self.all_start.is_some() {
            return None;
        }
        self.close_env();
        self.all_start = Some(self.entries.len() as u32);
        Some(())
    }

    /// Adds a key (its span and [`hash`]) to the open section.
    fn key(&mut self, key: Span, hash: u32, optional_if_has: Option<Span>) -> Option<()> {
        if self.envs.is_empty() && self.all_start.is_none() {
            return None;
        }
        let section = match self.all_start {
            Some(_) => NONE, // fixed up in `finish`, once the number of envs is known
            None => self.envs.len() as u32 - 1,
        };
        self.entries.push(Entry {
            key,
            optional_if_has: optional_if_has.unwrap_or(Span { at: 0, len: 0 }),
            section,
            hash,
            next: NONE,
        });
        Some(())
    }

    /// The allowlist over `names`; `None` if a section lists a key twice, a span is out of
    /// `names`, or there is no `all` section.
    fn finish(mut self, names: String, path: PathBuf, org: String) -> Option<Allowlist> {
        let all_start = self.all_start?;
        self.close_env();
        let end = self.entries.len() as u32;
        let all_index = self.envs.len() as u32;
        let fits = |s: Span| {
            let end = s.at as usize + s.len as usize;
            names.is_char_boundary(s.at as usize) && names.is_char_boundary(end)
        };
        if !self
            .entries
            .iter()
            .all(|e| fits(e.key) && fits(e.optional_if_has))
        {
            return None;
        }
        for e in &mut self.entries[all_start as usize..] {
            e.section = all_index;
        }
        let slots = (self.entries.len() * 2).next_power_of_two().max(8);
        let mut table = vec![NONE; slots];
        let bytes = names.as_bytes();
        let text = |s: Span| &bytes[s.at as usize..(s.at + s.len) as usize];
        for i in 0..self.entries.len() {
            let (hash, key, section) = {
                let e = &self.entries[i];
                (e.hash, text(e.key), e.section)
            };
            let mut slot = hash as usize & (slots - 1);
            loop {
                let first = table[slot];
                if first == NONE {
                    table[slot] = i as u32;
                    break;
                }
                let f = &self.entries[first as usize];
                if f.hash == hash && text(f.key) == key {
                    // chain it behind the key's last entry (sections come in order)
                    let mut tail = first as usize;
                    while self.entries[tail].next != NONE {
                        tail = self.entries[tail].next as usize;
                    }
                    if self.entries[tail].section == section {
                        return None; // twice in one section
                    }
                    self.entries[tail].next = i as u32;
                    break;
                }
                slot = (slot + 1) & (slots - 1);
            }
        }
        Some(Allowlist {
            path,
            org,
            names,
            entries: self.entries,
            envs: self.envs,
            all: (all_start, end),
            table,
        })
    }
}

/// FNV-1a (32 bits): a small, fast hash for key names. [`hash_step`] is one byte of it.
fn hash(bytes: &[u8]) -> u32 {
    bytes.iter().fold(HASH_START, |h, &b| hash_step(h, b))
}

const HASH_START: u32 = 0x811c_9dc5;

fn hash_step(h: u32, b: u8) -> u32 {
    (h ^ b as u32).wrapping_mul(0x0100_0193)
}

impl Allowlist {
    /// The allowlist of the manifest at `path`: from the cache when it is valid, else parsed
    /// (and cached for the next call when the files have settled).
    pub(crate) fn load(home: &Home, path: &Path) -> Result<Self> {
        Self::load_settled(home, path, SETTLE)
    }

    /// [`Allowlist::load`] with an explicit settle window (tests).
    pub(crate) fn load_settled(home: &Home, path: &Path, settle: Duration) -> Result<Self> {
        let cache = cache::Cache::new(home, path);
        if let Some(hit) = cache.read() {
            return Ok(hit);
        }
        let started = SystemTime::now();
        let manifest = RepoManifest::load(path)?;
        let list = Self::from_manifest(&manifest);
        cache.write(&list, &manifest.sources, started, settle);
        Ok(list)
    }

    /// Finds the manifest above `start` and loads its allowlist; `None` when there is none.
    pub(crate) fn discover(home: &Home, start: &Path) -> Result<Option<Self>> {
        match RepoManifest::find(start)? {
            Some(p) => Self::load(home, &p).map(Some),
            None => Ok(None),
        }
    }

    /// Hydrates a parsed manifest.
    pub(crate) fn from_manifest(m: &RepoManifest) -> Self {
        let n = m.envs.values().map(Vec::len).sum::<usize>() + m.all.len();
        let mut b = Builder::new(n);
        let mut names = String::with_capacity(n * 16);
        let mut section = |b: &mut Builder, keys: &[super::KeySpec]| {
            for k in keys {
                let key = Span::append(&mut names, &k.key);
                let optional = k
                    .optional_if_has
                    .as_deref()
                    .map(|v| Span::append(&mut names, v));
                b.key(key, hash(k.key.as_bytes()), optional)
                    .expect("a section is open");
            }
        };
        for (name, keys) in &m.envs {
            b.env(name).expect("envs come sorted from a map");
            section(&mut b, keys);
        }
        b.all().expect("one all section");
        section(&mut b, &m.all);
        b.finish(names, m.path.clone(), m.org.clone())
            .expect("a parsed manifest holds each key once per section")
    }

    /// The manifest file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The org every key is slugged under.
    pub(crate) fn org(&self) -> &str {
        &self.org
    }

    fn text(&self, s: Span) -> &str {
        &self.names[s.at as usize..(s.at + s.len) as usize]
    }

    fn allowed(&self, e: &Entry) -> AllowedKey<'_> {
        AllowedKey {
            key: self.text(e.key),
            optional_if_has: (e.optional_if_has.len > 0).then(|| self.text(e.optional_if_has)),
        }
    }

    fn env_index(&self, env: &str) -> Option<u32> {
        self.envs
            .binary_search_by(|(name, _, _)| name.as_str().cmp(env))
            .ok()
            .map(|i| i as u32)
    }

    fn all_index(&self) -> u32 {
        self.envs.len() as u32
    }

    /// The sections that list `key`, in order (declared envs by name, then `all`).
    fn sections_of<'a>(&'a self, key: &str) -> impl Iterator<Item = u32> + 'a {
        let mask = self.table.len() - 1;
        let h = hash(key.as_bytes());
        let mut slot = h as usize & mask;
        let mut at = loop {
            let first = self.table[slot];
            if first == NONE {
                break first;
            }
            let e = &self.entries[first as usize];
            if e.hash == h && self.text(e.key) == key {
                break first;
            }
            slot = (slot + 1) & mask;
        };
        std::iter::from_fn(move || {
            let e = self.entries.get(at as usize)?;
            at = e.next;
            Some(e.section)
        })
    }

    /// Whether `key` is listed in section `section`.
    fn lists(&self, section: u32, key: &str) -> bool {
        self.sections_of(key).any(|s| s == section)
    }

    /// Whether `env` is declared (`all` and `sudo` are always accepted).
    pub(crate) fn has_env(&self, env: &str) -> bool {
        env == ENV_ALL || env == ENV_SUDO || self.env_index(env).is_some()
    }

    /// The declared env names, sorted.
    pub(crate) fn env_names(&self) -> Vec<String> {
        self.envs.iter().map(|(name, _, _)| name.clone()).collect()
    }

    /// The keys required in `env`: its own keys plus `env.all`'s (each once, own first).
    pub(crate) fn keys_for(&self, env: &str) -> Vec<AllowedKey<'_>> {
        let idx = self.env_index(env);
        let own = match idx {
            Some(i) => {
                let (_, start, end) = &self.envs[i as usize];
                &self.entries[*start as usize..*end as usize]
            }
            None => &[],
        };
        let all = &self.entries[self.all.0 as usize..self.all.1 as usize];
        let mut out: Vec<AllowedKey<'_>> = Vec::with_capacity(own.len() + all.len());
        out.extend(own.iter().map(|e| self.allowed(e)));
        for e in all {
            let key = self.text(e.key);
            if !idx.is_some_and(|i| self.lists(i, key)) {
                out.push(self.allowed(e));
            }
        }
        out
    }

    /// Whether `key` is allowlisted in `env` (directly or through `env.all`).
    pub(crate) fn allows(&self, env: &str, key: &str) -> bool {
        let all = self.all_index();
        if env == ENV_ALL {
            return self.lists(all, key);
        }
        match self.env_index(env) {
            Some(i) => self.sections_of(key).any(|s| s == i || s == all),
            None => false,
        }
    }

    /// Every key of every section (a key declared in several sections once per section).
    pub(crate) fn declared_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| self.text(e.key))
    }

    /// The envs that declare `key` in their own section, plus `all` if `env.all` does.
    pub(crate) fn envs_declaring(&self, key: &str) -> Vec<String> {
        let all = self.all_index();
        self.sections_of(key)
            .map(|s| match s == all {
                true => ENV_ALL.to_string(),
                false => self.envs[s as usize].0.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
