//! `source` in `.envrc` (direnv) and shells: `source --unset` prints what undoes a `source`, and
//! what `source` says on stderr is one line (direnv shows it as it is).

use keyrack::ops::get as hot;
use keyrack::ops::row::{fix_groups, KeyRow, Status};
use keyrack::slug;

use super::Ctx;
use crate::cli::{Shell, SourceArgs};
use crate::ui;

/// The keys `source` with these arguments exports when everything is granted: the `--key`s, or
/// every key keyrack.yml declares for the env (its own and `env.all`'s).
fn keys_in_scope(ctx: &Ctx, a: &SourceArgs) -> keyrack::Result<(Option<String>, Vec<String>)> {
    if !a.keys.is_empty() {
        for k in &a.keys {
            slug::validate_key(k)?;
        }
        let mut keys: Vec<String> = Vec::new();
        for k in &a.keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        return Ok((a.env.clone(), keys));
    }
    let rack = ctx.rack()?;
    let repo = rack.repo()?.ok_or_else(|| keyrack::Error::NoRepoManifest {
        start: rack.cwd().to_path_buf(),
    })?;
    let env = hot::resolve_repo_env(&repo, a.env.as_deref())?;
    let keys = repo.keys_for(&env).iter().map(|k| k.key.clone()).collect();
    Ok((Some(env), keys))
}

/// `source --unset`: `unset K1 K2 …` (bash, zsh) or `set -e K` lines (fish), for exactly the keys
/// `source` would export. Needs no daemon and no unlock.
pub fn unset(ctx: &Ctx, a: SourceArgs) -> ui::Result<i32> {
    let (env, keys) = keys_in_scope(ctx, &a)?;
    let script = match (a.shell, keys.is_empty()) {
        (_, true) => String::new(),
        (Shell::Bash | Shell::Zsh, false) => format!("unset {}\n", keys.join(" ")),
        (Shell::Fish, false) => keys.iter().map(|k| format!("set -e {k}\n")).collect(),
    };
    if ctx.json {
        ui::json(&serde_json::json!({ "env": env, "keys": keys, "script": script }))?;
    } else {
        ui::out(script)?;
    }
    Ok(0)
}

/// What `source` writes to stderr when keys are not granted: one line, with one fix per distinct
/// problem (every locked key of an env is one `keyrack unlock --env E`).
pub fn one_line(strict: bool, rows: &[KeyRow]) -> String {
    let what: Vec<String> = rows
        .iter()
        .filter(|r| !r.satisfied())
        .map(|r| format!("{} {}", r.slug, r.status.as_str()))
        .collect();
    let fixes: Vec<String> = fix_groups(rows).into_iter().map(|(f, _)| f).collect();
    let granted = rows.iter().filter(|r| r.status == Status::Granted).count();
    let head = if strict {
        "nothing exported".to_string()
    } else {
        format!("exported {granted} of {}", rows.len())
    };
    let mut line = format!("keyrack source: {head}: {}", what.join(", "));
    if !fixes.is_empty() {
        line.push_str(&format!("; fix: {}", fixes.join("; ")));
    }
    line.push('\n');
    line
}
