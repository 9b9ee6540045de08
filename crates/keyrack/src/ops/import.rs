//! `keyrack import --env E < .env`: set many keys at once from dotenv text, each one through the
//! same path as `keyrack set` ([`super::set::run_given`]: checks, round-trip proof, records), each
//! on its own row: a refused key name or value is that key's row, and the others proceed.
//!
//! Dotenv syntax read here:
//!
//! ```text
//! # comments and blank lines
//! KEY=value                 # unquoted: trimmed; ` #` starts a comment
//! export KEY=value          # `export ` is accepted (a file that is also sourced by a shell)
//! KEY = value               # spaces around `=`
//! KEY='literal $text \n'    # single quotes: every byte literal, may span lines
//! KEY="a\nb \"q\" \\ \$"    # double quotes: \n \r \t \" \\ \$ \` escapes, may span lines
//! ```
//!
//! No variable expansion: `$OTHER` stays as written. A line that is not one of these (an
//! unterminated quote, text after a closing quote, a line without `=`) stops the whole import
//! before anything is set, naming the line. A key that appears twice takes its last value.
//!
//! Keys the repo manifest does not declare for the env are skipped (each its own row) unless
//! `declare` is set: the manifest is the team's committed allowlist, and a `.env` often carries
//! unrelated variables (`PORT`, `NODE_ENV`). With `declare`, they are added to it as `set` adds.

use serde::Serialize;

use super::set::{self, SetOptions};
use super::Rack;
use crate::error::{Error, Result};
use crate::mech::SecretSource;
use crate::secret::Secret;
use crate::slug;
use crate::vault::VaultKind;

/// One `KEY=value` of a dotenv file.
#[derive(Debug, Clone)]
pub(crate) struct DotenvEntry {
    /// The name as written (not yet validated).
    pub key: String,
    /// The value, unquoted and unescaped.
    pub value: Secret,
    /// 1-based line the entry starts on.
    pub line: usize,
}

/// Why dotenv text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DotenvError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
            || (self.peek() == Some(b'\r') && self.b.get(self.i + 1) == Some(&b'\n'))
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Moves past the end of the line (and its newline).
    fn next_line(&mut self) {
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == b'\n' {
                self.line += 1;
                return;
            }
        }
    }

    fn err(&self, line: usize, message: impl Into<String>) -> DotenvError {
        DotenvError {
            line,
            message: message.into(),
        }
    }
}

/// Parses dotenv text (see the module docs for the syntax).
pub(crate) fn parse_dotenv(text: &str) -> std::result::Result<Vec<DotenvEntry>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        c.skip_blanks();
        let Some(first) = c.peek() else { break };
        if c.at_eol() || first == b'#' {
            if first == b'#' || first == b'\r' || first == b'\n' {
                c.next_line();
            }
            continue;
        }
        let line = c.line;
        let mut key = read_word(&mut c);
        if key == "export" && matches!(c.peek(), Some(b' ' | b'\t')) {
            c.skip_blanks();
            key = read_word(&mut c);
        }
        if key.is_empty() {
            return Err(c.err(line, "expected KEY=value"));
        }
        c.skip_blanks();
        if c.peek() != Some(b'=') {
            return Err(c.err(
                line,
                format!("expected '=' after {key} (a line is KEY=value)"),
            ));
        }
        c.i += 1;
        c.skip_blanks();
        let value = match c.peek() {
            Some(q @ (b'\'' | b'"')) => {
                let v = read_quoted(&mut c, q, line)?;
                c.skip_blanks();
                if c.peek() == Some(b'#') || c.at_eol() {
                    c.next_line();
                } else {
                    return Err(c.err(
                        c.line,
                        format!("unexpected text after the closing quote of {key}"),
                    ));
                }
                v
            }
            _ => read_unquoted(&mut c, text),
        };
        out.push(DotenvEntry {
            key,
            value: Secret::new(value),
            line,
        });
    }
    Ok(out)
}

fn read_word(c: &mut Cursor<'_>) -> String {
    let start = c.i;
    while let Some(b) = c.peek() {
        if matches!(b, b'=' | b' ' | b'\t' | b'\n' | b'\r' | b'#') {
            break;
        }
        c.i += 1;
    }
    String::from_utf8_lossy(&c.b[start..c.i]).into_owned()
}

fn read_unquoted(c: &mut Cursor<'_>, text: &str) -> String {
    let start = c.i;
    let mut end = c.i;
    while !c.at_eol() {
        let b = c.b[c.i];
        // ` #` starts a comment; `a#b` is a value
        if b == b'#' && c.i > start && matches!(c.b[c.i - 1], b' ' | b'\t') {
            break;
        }
        c.i += 1;
        if !matches!(b, b' ' | b'\t') {
            end = c.i;
        }
    }
    let v = text[start..end].to_string();
    c.next_line();
    v
}

fn read_quoted(
    c: &mut Cursor<'_>,
    quote: u8,
    line: usize,
) -> std::result::Result<String, DotenvError> {
    c.i += 1; // the opening quote
    let mut out: Vec<u8> = Vec::new();
    loop {
        let Some(b) = c.peek() else {
            out.fill(0);
            return Err(c.err(
                line,
                format!(
                    "the {} quote opened here is never closed",
                    if quote == b'"' { "double" } else { "single" }
                ),
            ));
        };
        c.i += 1;
        match b {
            _ if b == quote => break,
            b'\\' if quote == b'"' => match c.peek() {
                Some(e @ (b'n' | b'r' | b't' | b'"' | b'\\' | b'$' | b'`')) => {
                    c.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                }
                _ => out.push(b'\\'),
            },
            b'\n' => {
                c.line += 1;
                out.push(b'\n');
            }
            b'\r' if c.peek() == Some(b'\n') => {} // CRLF inside a value is a newline
            other => out.push(other),
        }
    }
    // every byte came from valid UTF-8 text and escapes only replace ASCII with ASCII
    Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
}

/// Options of `import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The env (inferred when the repo manifest declares only one).
    pub env: Option<String>,
    /// The vault for every key (default: each key's default, as `set`).
    pub vault: Option<VaultKind>,
    /// Add keys the repo manifest does not declare for the env (default: skip them).
    pub declare: bool,
    /// Store values the firewall blocks.
    pub allow_dangerous: bool,
    /// How aws.config keys may sign in.
    pub login: crate::aws::login::LoginOptions,
}

/// The outcome of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Stored and proven.
    Set,
    /// Left out (not declared, or overridden by a later line).
    Skipped,
    /// `set` refused it (name, value, vault).
    Refused,
}

/// One key's row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRow {
    /// The key as written.
    pub key: String,
    /// The line it came from.
    pub line: usize,
    /// The slug, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Outcome.
    pub status: RowStatus,
    /// The vault it went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultKind>,
    /// Whether an earlier value was replaced.
    pub replaced: bool,
    /// Whether keyrack.yml gained the key.
    pub declared: bool,
    /// Why it was not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What `import` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The env.
    pub env: String,
    /// One row per key, in file order.
    pub rows: Vec<ImportRow>,
}

/// Runs `import` over dotenv `text`. `from` names the input in fixes (`.env`, `<file>`).
pub fn run(rack: &Rack, opts: &ImportOptions, text: &str, from: &str) -> Result<ImportReport> {
    let entries = parse_dotenv(text).map_err(|e| Error::InvalidInput {
        what: "dotenv input",
        value: format!("{from}:{}", e.line),
        reason: e.message,
        hint: Some(format!(
            "fix line {} of {from}; nothing was imported (lines are KEY=value, 'single' or \"double\" quoted)",
            e.line
        )),
    })?;
    let repo = rack.repo()?.ok_or_else(|| Error::NoRepoManifest {
        start: rack.cwd().to_path_buf(),
    })?;
    let env = super::get::resolve_repo_env(&repo, opts.env.as_deref())?;
    rack.host()?; // not initialised / wrong identity: once, before any row
    let owner = rack.home().owner();
    let mut rows = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        let mut row = ImportRow {
            key: e.key.clone(),
            line: e.line,
            slug: None,
            status: RowStatus::Refused,
            vault: None,
            replaced: false,
            declared: false,
            reason: None,
            fix: None,
        };
        if let Some(later) = entries[n + 1..].iter().find(|l| l.key == e.key) {
            row.status = RowStatus::Skipped;
            row.reason = Some(format!("line {} sets it again", later.line));
            rows.push(row);
            continue;
        }
        if let Err(err) = slug::validate_key(&e.key) {
            row.reason = Some(err.to_string());
            row.fix = Some("rename it in the file to an environment-variable name".into());
            rows.push(row);
            continue;
        }
        row.slug = slug::Slug::new(&repo.org, &env, &e.key)
            .ok()
            .map(|s| s.to_string());
        if !opts.declare && !repo.allows(&env, &e.key) {
            row.status = RowStatus::Skipped;
            row.reason = Some(format!(
                "not declared for env {env} in {}",
                repo.path.display()
            ));
            let input = if from == "standard input" {
                "< .env".to_string()
            } else {
                from.to_string()
            };
            row.fix = Some(format!(
                "to declare it too: keyrack import --env {env} --declare{} {input}, or keyrack set {}",
                owner.flag(),
                super::key_flags(&e.key, &env, &repo.org, owner)
            ));
            rows.push(row);
            continue;
        }
        let kind = opts.vault.unwrap_or_else(|| set::default_vault(&e.key));
        let aws = kind == VaultKind::AwsConfig;
        let set_opts = SetOptions {
            key: e.key.clone(),
            env: Some(env.clone()),
            vault: opts.vault,
            mech: None,
            org: None,
            // an AWS_PROFILE line names an existing profile
            exid: aws.then(|| e.value.expose().to_string()),
            op_vault: None,
            max_duration: None,
            source: SecretSource::Stdin,
            login: opts.login,
            aws: Default::default(),
            allow_dangerous: opts.allow_dangerous,
            github: Default::default(),
            params: Default::default(),
        };
        match set::run_given(rack, &set_opts, (!aws).then(|| e.value.clone())) {
            Ok(r) => {
                row.status = RowStatus::Set;
                row.slug = Some(r.slug.to_string());
                row.vault = Some(r.vault);
                row.replaced = r.replaced;
                row.declared = r.manifest_updated.is_some();
            }
            Err(err) => {
                row.reason = Some(err.to_string());
                row.fix = err.fix();
            }
        }
        rows.push(row);
    }
    Ok(ImportReport { env, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Vec<(String, String, usize)> {
        parse_dotenv(t)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value.expose().to_string(), e.line))
            .collect()
    }

    fn kv(k: &str, v: &str, l: usize) -> (String, String, usize) {
        (k.into(), v.into(), l)
    }

    #[test]
    fn plain_export_comments_and_blank_lines() {
        let t = "\u{feff}# top\n\nA=1\nexport B=two words  # comment\n  C = spaced \nD=a#b\nE=\r\nF=x\r\n";
        assert_eq!(
            parse(t),
            vec![
                kv("A", "1", 3),
                kv("B", "two words", 4),
                kv("C", "spaced", 5),
                kv("D", "a#b", 6),
                kv("E", "", 7),
                kv("F", "x", 8),
            ]
        );
    }

    #[test]
    fn quotes_escapes_and_multi_line_values() {
        let t = "S='it s $HOME \\n'\nD=\"a\\nb \\\"q\\\" \\\\ \\$X \\z\"\nM=\"line1\nline2\" # c\nN='x\ny'\nQ=\"#not a comment\"\nexport=1\n";
        assert_eq!(
            parse(t),
            vec![
                kv("S", "it s $HOME \\n", 1),
                kv("D", "a\nb \"q\" \\ $X \\z", 2),
                kv("M", "line1\nline2", 3),
                kv("N", "x\ny", 5),
                kv("Q", "#not a comment", 7),
                kv("export", "1", 8),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_dotenv("A=1\nB=\"open\nC=2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("never closed"), "{e:?}");
        let e = parse_dotenv("A=1\njust words\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("expected '='"), "{e:?}");
        let e = parse_dotenv("A='x' trailing\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("after the closing quote"), "{e:?}");
        let e = parse_dotenv("export B\n").unwrap_err();
        assert!(e.message.contains("expected '=' after B"), "{e:?}");
    }
}
