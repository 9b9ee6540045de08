//! The repo manifest (`keyrack.yml` or `.agent/keyrack.yml`): which keys a repository needs,
//! per env. Read-compatible with rhachet's format.
//!
//! ```yaml
//! org: acme
//! extends: [shared/keyrack.yml]
//! env.test:
//!   - XAI_API_KEY
//!   - key: AWS_PROFILE
//!     is-optional-if-has: AWS_ACCESS_KEY_ID
//! env.prod: []
//! env.all: [SHARED_KEY]
//! everyday: [test]          # optional: what a bare `keyrack unlock` unlocks
//! ```
//!
//! `everyday` is keyrack's own, optional field (rhachet's files have none, and read the same):
//! the envs a bare `keyrack unlock` (no `--env`) unlocks. Without it, that is every declared env
//! but `prod`; `sudo` is never one. Only the file being read counts (not the files it extends).

pub(crate) mod allowlist;
pub(crate) mod edit;
mod yaml;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::slug::{self, ENV_ALL, ENV_PROD, ENV_SUDO};
use serde_saphyr::Spanned;
use yaml::{Node, Value};

/// The manifest file names, in lookup order, relative to a directory.
pub(crate) const FILE_NAMES: [&str; 2] = ["keyrack.yml", ".agent/keyrack.yml"];

/// One key a repository declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The env-var name.
    pub key: String,
    /// Strict `source` waives this key when that env var is set.
    pub optional_if_has: Option<String>,
    /// The mech hint of the legacy `- KEY: hint` form.
    pub hint: Option<String>,
}

/// A parsed and hydrated repo manifest.
#[derive(Clone, Debug)]
pub struct RepoManifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The repository root (the directory holding `keyrack.yml` or `.agent/`).
    pub root: PathBuf,
    /// The org every key is slugged under.
    pub org: String,
    /// Declared envs (not `all`) and their own keys, after `extends`.
    pub envs: BTreeMap<String, Vec<KeySpec>>,
    /// Keys needed in every env (`env.all`).
    pub all: Vec<KeySpec>,
    /// Every file read, as opened: the manifest, then each `extends` target in the order the
    /// entries were met (a diamond's shared file once per entry naming it). The allowlist cache
    /// is keyed by these.
    pub sources: Vec<PathBuf>,
    /// The envs a bare `keyrack unlock` unlocks, when the manifest says (`everyday:`).
    pub everyday: Option<Vec<String>>,
}

impl RepoManifest {
    /// Finds the manifest by walking up from `start` to the directory that holds `.git`.
    pub(crate) fn find(start: &Path) -> Result<Option<PathBuf>> {
        let mut dir = Some(start);
        while let Some(d) = dir {
            for name in FILE_NAMES {
                let candidate = d.join(name);
                if candidate.is_file() {
                    return Ok(Some(candidate));
                }
            }
            if d.join(".git").exists() {
                break;
            }
            dir = d.parent();
        }
        Ok(None)
    }

    /// Finds and loads the manifest above `start`; errors when there is none.
    pub fn discover(start: &Path) -> Result<Self> {
        match Self::find(start)? {
            Some(p) => Self::load(&p),
            None => Err(Error::NoRepoManifest {
                start: start.to_path_buf(),
            }),
        }
    }

    /// Loads `path` and everything it extends.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let root = repo_root_of(path);
        let raw = RawManifest::read(path)?;
        let mut envs: BTreeMap<String, Vec<KeySpec>> = BTreeMap::new();
        let mut all = Vec::new();
        let mut stack = vec![canonical(path)];
        let mut done = BTreeSet::new();
        let mut sources = vec![path.to_path_buf()];
        merge(
            &raw,
            &root,
            &mut envs,
            &mut all,
            &mut stack,
            &mut done,
            &mut sources,
        )?;
        let everyday = match &raw.everyday {
            Some(list) => {
                for e in list {
                    if !envs.contains_key(&e.value) {
                        return Err(raw.error_at(
                            e.line,
                            e.column,
                            format!("everyday names env '{}', which is not declared", e.value),
                            Some(format!(
                                "declare it (env.{}: []) or remove it from everyday",
                                e.value
                            )),
                        ));
                    }
                }
                Some(list.iter().map(|e| e.value.clone()).collect())
            }
            None => None,
        };
        Ok(RepoManifest {
            path: path.to_path_buf(),
            root,
            org: raw.org,
            envs,
            all,
            sources,
            everyday,
        })
    }

    /// Whether a bare `keyrack unlock` unlocks `env`: listed in `everyday:` when the manifest
    /// has it, else any env but `prod`; never `sudo`; always `all` (its keys are everyday keys
    /// of every env).
    pub(crate) fn is_everyday(&self, env: &str) -> bool {
        match env {
            ENV_SUDO => false,
            ENV_ALL => true,
            _ => match &self.everyday {
                Some(list) => list.iter().any(|e| e == env),
                None => env != ENV_PROD,
            },
        }
    }

    /// The declared envs a bare `keyrack unlock` unlocks, sorted.
    pub(crate) fn everyday_envs(&self) -> Vec<String> {
        self.envs
            .keys()
            .filter(|e| self.is_everyday(e))
            .cloned()
            .collect()
    }

    /// Whether `env` is declared (`all` and `sudo` are always accepted).
    pub(crate) fn has_env(&self, env: &str) -> bool {
        env == ENV_ALL || env == ENV_SUDO || self.envs.contains_key(env)
    }

    /// The keys required in `env`: its own keys plus `env.all`'s.
    pub fn keys_for(&self, env: &str) -> Vec<&KeySpec> {
        let own = self.envs.get(env).map(|v| v.iter()).into_iter().flatten();
        let mut seen = BTreeSet::new();
        own.chain(self.all.iter())
            .filter(|k| seen.insert(k.key.as_str()))
            .collect()
    }

    /// Whether `key` is allowlisted in `env` (directly or through `env.all`).
    pub(crate) fn allows(&self, env: &str, key: &str) -> bool {
        let in_all = || self.all.iter().any(|k| k.key == key);
        if env == ENV_ALL {
            return in_all();
        }
        self.envs
            .get(env)
            .is_some_and(|own| own.iter().any(|k| k.key == key) || in_all())
    }

    /// The envs that declare `key` in their own section, plus `all` if `env.all` does.
    pub(crate) fn envs_declaring(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .envs
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| k.key == key))
            .map(|(e, _)| e.clone())
            .collect();
        if self.all.iter().any(|k| k.key == key) {
            out.push(ENV_ALL.into());
        }
        out
    }

    /// The declared env names, sorted.
    pub fn env_names(&self) -> Vec<String> {
        self.envs.keys().cloned().collect()
    }
}

/// The repository root above `start`: the nearest directory (itself included) holding `.git`.
pub(crate) fn repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

fn repo_root_of(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == ".agent") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn merge(
    raw: &RawManifest,
    root: &Path,
    envs: &mut BTreeMap<String, Vec<KeySpec>>,
    all: &mut Vec<KeySpec>,
    stack: &mut Vec<PathBuf>,
    done: &mut BTreeSet<PathBuf>,
    sources: &mut Vec<PathBuf>,
) -> Result<()> {
    for ext in &raw.extends {
        let target = extends_target(raw, ext, root)?;
        sources.push(target.clone());
        let canon = canonical(&target);
        if stack.contains(&canon) {
            let chain: Vec<String> = stack
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(raw.error_at(
                ext.line,
                ext.column,
                format!("extends cycle: {}", chain.join(" → ")),
                Some("remove one of the extends entries that form the cycle".into()),
            ));
        }
        if done.contains(&canon) {
            continue; // a diamond: already merged through another path
        }
        if !target.is_file() {
            return Err(raw.error_at(
                ext.line,
                ext.column,
                format!(
                    "extends '{}': no such file ({})",
                    ext.value,
                    target.display()
                ),
                Some("extends paths are relative to the repository root".into()),
            ));
        }
        let child = RawManifest::read(&target)?;
        stack.push(canon.clone());
        merge(&child, root, envs, all, stack, done, sources)?;
        stack.pop();
        done.insert(canon);
    }
    for (env, keys) in &raw.envs {
        append_new(envs.entry(env.clone()).or_default(), keys);
    }
    append_new(all, &raw.all);
    Ok(())
}

/// Appends the keys of `more` that `slot` does not hold yet, in order (linear, not quadratic:
/// a 20 000-key section merges in milliseconds).
fn append_new(slot: &mut Vec<KeySpec>, more: &[KeySpec]) {
    if slot.is_empty() {
        slot.extend_from_slice(more); // sections hold no duplicates (`keys` refuses them)
        return;
    }
    let mut held: HashSet<String> = slot.iter().map(|s| s.key.clone()).collect();
    for k in more {
        if held.insert(k.key.clone()) {
            slot.push(k.clone());
        }
    }
}

/// The file an `extends` entry names, refused unless it stays inside the repository root: no
/// absolute path, no `..` above the root, no symbolic link (anywhere on the way) that leads out.
fn extends_target(raw: &RawManifest, ext: &Located<String>, root: &Path) -> Result<PathBuf> {
    let outside = |reason: String| {
        raw.error_at(
            ext.line,
            ext.column,
            format!(
                "extends '{}' points outside the repository ({}): {reason}",
                ext.value,
                root.display()
            ),
            Some(
                "extends paths are relative to the repository root and stay inside it; copy the file into the repository"
                    .into(),
            ),
        )
    };
    let rel = Path::new(&ext.value);
    let mut depth = 0usize;
    for part in rel.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| outside("'..' climbs above the repository root".into()))?;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(outside("it is an absolute path".into()))
            }
        }
    }
    let target = root.join(rel);
    if let Ok(real) = std::fs::canonicalize(&target) {
        let real_root = canonical(root);
        if !real.starts_with(&real_root) {
            return Err(outside(format!(
                "a symbolic link leads to {}",
                real.display()
            )));
        }
    }
    Ok(target)
}

/// A value with the 1-based line and column it was read at.
#[derive(Clone, Debug)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// One file, schema-checked but not yet merged with what it extends ([`RepoManifest::load`]
/// reads every file of an `extends` chain this way, then merges them).
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// Its `org`.
    pub org: String,
    /// Its `extends` entries, not followed.
    pub extends: Vec<Located<String>>,
    /// Its own env sections (not `all`).
    pub envs: BTreeMap<String, Vec<KeySpec>>,
    /// Its `env.all` section.
    pub all: Vec<KeySpec>,
    /// Its `everyday:` envs, if it names them.
    pub everyday: Option<Vec<Located<String>>>,
}

impl RawManifest {
    fn error_at(&self, line: u64, column: u64, message: String, hint: Option<String>) -> Error {
        Error::Manifest {
            path: self.path.clone(),
            line,
            column,
            message,
            hint,
        }
    }

    fn err(&self, node: &Node, message: String, hint: Option<String>) -> Error {
        self.error_at(
            node.referenced.line(),
            node.referenced.column(),
            message,
            hint,
        )
    }

    fn key_err(&self, key: &Spanned<String>, message: String, hint: Option<String>) -> Error {
        self.error_at(
            key.referenced.line(),
            key.referenced.column(),
            message,
            hint,
        )
    }

    fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// Parses and schema-checks the content of the manifest file at `path` (`path` is only
    /// named in errors; nothing is read from disk and `extends` is not followed).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let text = String::from_utf8(bytes).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            hint: Some("save keyrack.yml as UTF-8".into()),
        })?;
        Self::parse(path, &text)
    }

    /// Parses keyrack.yml: the YAML document, then each top-level field in turn, then the
    /// checks that span fields (`env.all` needs another env, `org` is required).
    fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut this = RawManifest {
            path: path.to_path_buf(),
            org: String::new(),
            extends: Vec::new(),
            envs: BTreeMap::new(),
            all: Vec::new(),
            everyday: None,
        };
        let doc = this.document(text)?;
        let mut org = None;
        let mut all_node = None;
        for (name, node) in this.top_level(&doc)? {
            match name.value.as_str() {
                "org" => org = Some(this.org_field(node)?),
                "extends" => this.extends = this.extends_field(node)?,
                "everyday" => this.everyday = Some(this.everyday_envs(node)?),
                "keys" => {
                    return Err(this.key_err(
                        name,
                        "the top-level `keys:` map is the old format and is no longer read".into(),
                        Some(
                            "declare keys per env instead, e.g.\n  env.test:\n    - XAI_API_KEY"
                                .into(),
                        ),
                    ))
                }
                other => match other.strip_prefix("env.") {
                    Some(env) => {
                        let keys = this.env_section(name, env, node)?;
                        if env == ENV_ALL {
                            this.all = keys;
                            all_node = Some(node);
                        } else {
                            this.envs.insert(env.to_string(), keys);
                        }
                    }
                    None => {
                        return Err(this.key_err(
                            name,
                            format!("unknown top-level field '{other}'"),
                            Some("allowed: org, extends, everyday, env.<name>".into()),
                        ))
                    }
                },
            }
        }
        if let (Some(node), true) = (all_node, this.envs.is_empty() && this.extends.is_empty()) {
            return Err(this.err(
                node,
                "env.all needs at least one other env section (env.all means \"in every env\")"
                    .into(),
                Some("add e.g. env.test: [] next to env.all".into()),
            ));
        }
        this.org = org.ok_or_else(|| {
            this.error_at(
                1,
                1,
                "missing required field `org`".into(),
                Some("add a first line: org: <your-org>".into()),
            )
        })?;
        Ok(this)
    }

    /// The YAML document, or an error at the position of the syntax error.
    fn document(&self, text: &str) -> Result<Node> {
        serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = e.to_string();
            let message = message.lines().next().unwrap_or("invalid YAML").to_string();
            self.error_at(
                line,
                column,
                format!("invalid YAML: {message}"),
                Some("fix the YAML syntax at that position".into()),
            )
        })
    }

    /// The top-level mapping's fields.
    fn top_level<'d>(&self, doc: &'d Node) -> Result<&'d [(Spanned<String>, Node)]> {
        match &doc.value {
            Value::Map(m) => Ok(m),
            Value::Null => Err(self.error_at(
                1,
                1,
                "the file is empty".into(),
                Some("start it with: org: <your-org>".into()),
            )),
            other => Err(self.err(
                doc,
                format!(
                    "expected a mapping at the top level, found {}",
                    other.kind()
                ),
                Some("a keyrack.yml starts with: org: <your-org>".into()),
            )),
        }
    }

    /// `org: <name>`.
    fn org_field(&self, node: &Node) -> Result<String> {
        match &node.value {
            Value::Str(s) => {
                slug::validate_org(s).map_err(|e| {
                    self.err(
                        node,
                        e.to_string(),
                        Some("org is letters, digits, '_' or '-'".into()),
                    )
                })?;
                Ok(s.clone())
            }
            other => Err(self.err(
                node,
                format!("org must be a string, found {}", other.kind()),
                None,
            )),
        }
    }

    /// `extends: [path, …]` (or one path), with where each path is written.
    fn extends_field(&self, node: &Node) -> Result<Vec<Located<String>>> {
        let items = match &node.value {
            Value::Seq(items) => items.clone(),
            Value::Str(_) => vec![node.clone()],
            Value::Null => vec![],
            other => {
                return Err(self.err(
                    node,
                    format!("extends must be a list of paths, found {}", other.kind()),
                    None,
                ))
            }
        };
        items
            .iter()
            .map(|item| match &item.value {
                Value::Str(s) => Ok(Located {
                    value: s.clone(),
                    line: item.referenced.line(),
                    column: item.referenced.column(),
                }),
                other => Err(self.err(
                    item,
                    format!("extends entries must be paths, found {}", other.kind()),
                    None,
                )),
            })
            .collect()
    }

    /// The keys of an `env.<name>` section (`env.sudo` is refused: sudo keys live on the host).
    fn env_section(&self, name: &Spanned<String>, env: &str, node: &Node) -> Result<Vec<KeySpec>> {
        slug::validate_env(env).map_err(|_| {
            self.key_err(
                name,
                format!("invalid env name '{env}' (use [a-z][a-z0-9_-]*)"),
                Some(format!(
                    "rename the section, e.g. env.{}:",
                    env.to_lowercase()
                )),
            )
        })?;
        if env == ENV_SUDO {
            return Err(self.err(
                node,
                "env.sudo cannot be declared: sudo keys live only on the host".into(),
                Some(
                    "remove the env.sudo section; set sudo keys with keyrack set --env sudo".into(),
                ),
            ));
        }
        self.keys(node)
    }

    /// `everyday: [test, dev]` (a single name is accepted too).
    fn everyday_envs(&self, node: &Node) -> Result<Vec<Located<String>>> {
        let items = match &node.value {
            Value::Seq(items) => items.clone(),
            Value::Str(_) => vec![node.clone()],
            Value::Null => vec![],
            other => {
                return Err(self.err(
                    node,
                    format!(
                        "everyday must be a list of env names, found {}",
                        other.kind()
                    ),
                    Some("write e.g. everyday: [test, dev]".into()),
                ))
            }
        };
        let mut out: Vec<Located<String>> = Vec::new();
        for item in items {
            let name = match &item.value {
                Value::Str(s) => s.clone(),
                other => {
                    return Err(self.err(
                        &item,
                        format!("everyday entries must be env names, found {}", other.kind()),
                        None,
                    ))
                }
            };
            if slug::validate_env(&name).is_err() || name == ENV_ALL || name == ENV_SUDO {
                return Err(self.err(
                    &item,
                    format!("'{name}' cannot be an everyday env"),
                    Some(
                        "list envs this file declares, e.g. everyday: [test] (sudo is never unlocked implicitly)"
                            .into(),
                    ),
                ));
            }
            if !out.iter().any(|e| e.value == name) {
                out.push(Located {
                    value: name,
                    line: item.referenced.line(),
                    column: item.referenced.column(),
                });
            }
        }
        Ok(out)
    }

    fn keys(&self, section: &Node) -> Result<Vec<KeySpec>> {
        let items = match &section.value {
            Value::Seq(items) => items,
            Value::Null => return Ok(vec![]),
            other => {
                return Err(self.err(
                    section,
                    format!(
                        "an env section must be a list of keys, found {}",
                        other.kind()
                    ),
                    Some("write e.g. env.test: [XAI_API_KEY] or a `- KEY` list".into()),
                ))
            }
        };
        let mut out: Vec<KeySpec> = Vec::with_capacity(items.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
        for item in items {
            let spec = self.key(item)?;
            if !seen.insert(spec.key.clone()) {
                return Err(self.err(
                    item,
                    format!("{} is listed twice in this section", spec.key),
                    Some("remove the duplicate line".into()),
                ));
            }
            out.push(spec);
        }
        Ok(out)
    }

    fn key(&self, item: &Node) -> Result<KeySpec> {
        let check = |name: &str| {
            slug::validate_key(name).map_err(|e| {
                self.err(
                    item,
                    e.to_string(),
                    Some(format!(
                        "rename it in {} to an environment-variable name, e.g. XAI_API_KEY",
                        self.path.display()
                    )),
                )
            })
        };
        match &item.value {
            Value::Str(name) => {
                check(name)?;
                Ok(KeySpec {
                    key: name.clone(),
                    optional_if_has: None,
                    hint: None,
                })
            }
            Value::Map(fields) if fields.iter().any(|(k, _)| k.value == "key") => {
                let mut spec = KeySpec {
                    key: String::new(),
                    optional_if_has: None,
                    hint: None,
                };
                for (field, value) in fields {
                    let text = match &value.value {
                        Value::Str(s) => s.clone(),
                        other => {
                            return Err(self.err(
                                value,
                                format!("{} must be a string, found {}", field.value, other.kind()),
                                None,
                            ))
                        }
                    };
                    match field.value.as_str() {
                        "key" => {
                            check(&text)?;
                            spec.key = text;
                        }
                        "is-optional-if-has" => {
                            check(&text)?;
                            spec.optional_if_has = Some(text);
                        }
                        "mech" | "hint" => spec.hint = Some(text),
                        other => {
                            return Err(self.key_err(
                                field,
                                format!("unknown key field '{other}'"),
                                Some("allowed: key, is-optional-if-has".into()),
                            ))
                        }
                    }
                }
                Ok(spec)
            }
            // legacy single-pair form: `- AWS_PROFILE: ephemeral`
            Value::Map(fields) if fields.len() == 1 => {
                let (name, value) = &fields[0];
                let name = &name.value;
                check(name)?;
                let hint = match &value.value {
                    Value::Str(s) => Some(s.clone()),
                    Value::Null => None,
                    other => {
                        return Err(self.err(
                            value,
                            format!(
                                "legacy `- KEY: hint` entries take a string hint, found {}",
                                other.kind()
                            ),
                            None,
                        ))
                    }
                };
                Ok(KeySpec {
                    key: name.clone(),
                    optional_if_has: None,
                    hint,
                })
            }
            other => Err(self.err(
                item,
                format!(
                    "a key entry must be a name or a mapping with `key:`, found {}",
                    other.kind()
                ),
                Some("write `- KEY` or `- key: KEY`".into()),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
