//! `get`, `source`, `exec`: the hot path. One daemon round trip; no decryption.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use keyrack::ops::get::{self as hot, GetOptions};
use keyrack::ops::row::{require_satisfied, KeyRow, Status};
use keyrack::ops::unlock::{self, UnlockOptions};
use keyrack::{Error, Result};

use super::Ctx;
use crate::cli::{ExecArgs, GetArgs, Shell, SourceArgs};
use crate::render::{self, key_rows, rows_json, Style};
use crate::ui::{self, Failure};

/// The rows that need something, on stderr (the values' stream, stdout, stays clean).
fn problems_to_stderr(title: &str, rows: &[KeyRow]) {
    if rows.iter().any(|r| !r.satisfied()) {
        render::err(title, &key_rows(rows, Style::for_stderr(), true));
    }
}

/// Asks the daemon; with `unlock`, first unlocks what is locked (one unlock per env, only the
/// locked keys), then asks again.
fn fetch(ctx: &Ctx, opts: &GetOptions, unlock: bool) -> Result<Vec<KeyRow>> {
    let rack = ctx.rack()?;
    let repo = rack.repo()?;
    let rows = hot::get(rack.home(), repo.as_ref(), opts)?;
    if !unlock || !rows.iter().any(|x| x.status == Status::Locked) {
        return Ok(rows);
    }
    let mut by_env: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for x in rows.iter().filter(|x| x.status == Status::Locked) {
        by_env.entry(x.env.clone()).or_default().push(x.key.clone());
    }
    drop(rows);
    for (env, keys) in by_env {
        unlock::unlock(
            &rack,
            &UnlockOptions {
                env: Some(env),
                keys,
                ..Default::default()
            },
        )?;
    }
    hot::get(rack.home(), repo.as_ref(), opts)
}

/// The outcome of rows already shown: `Ok` when all are satisfied, else the not-granted error
/// (exit code 2) without printing it again.
fn outcome(rows: &[KeyRow]) -> ui::Result<i32> {
    require_satisfied(rows).map_err(Failure::Shown)?;
    Ok(0)
}

pub fn get(ctx: &Ctx, a: GetArgs) -> ui::Result<i32> {
    let mut keys = a.names;
    keys.extend(a.keys);
    if a.value && keys.len() > 1 {
        return Err(Error::InvalidInput {
            what: "--value",
            value: format!("{} keys", keys.len()),
            reason: "--value prints exactly one key's value".into(),
            hint: Some(format!(
                "for several keys use --json: keyrack get {} --json",
                keys.join(" ")
            )),
        }
        .into());
    }
    let opts = GetOptions {
        keys,
        for_repo: a.for_.is_some(),
        env: a.env,
        org: a.org,
        allow_dangerous: a.allow_dangerous,
    };
    let rows = fetch(ctx, &opts, a.unlock)?;
    if a.value {
        if rows.len() != 1 {
            return Err(Error::InvalidInput {
                what: "--value",
                value: format!("{} keys", rows.len()),
                reason: "--value prints exactly one key's value".into(),
                hint: Some("pass a single key, or use --json / keyrack source".into()),
            }
            .into());
        }
        if let (Some(s), Status::Granted) = (&rows[0].secret, rows[0].status) {
            ui::out(s.expose())?;
            return Ok(0);
        }
        problems_to_stderr("get", &rows);
        return outcome(&rows);
    }
    if ctx.json {
        ui::json(&serde_json::json!({ "keys": rows_json(&rows, true) }))?;
    } else {
        render::out("get", &key_rows(&rows, Style::for_stdout(), false))?;
    }
    outcome(&rows)
}

/// Quotes `value` for `shell` as one literal word.
pub fn quote(shell: Shell, value: &str) -> String {
    match shell {
        Shell::Bash | Shell::Zsh => format!("'{}'", value.replace('\'', r"'\''")),
        Shell::Fish => format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'")),
    }
}

fn env_opts(env: Option<String>, keys: Vec<String>, allow_dangerous: bool) -> GetOptions {
    GetOptions {
        for_repo: keys.is_empty(),
        keys,
        env,
        org: None,
        allow_dangerous,
    }
}

fn with_env_of_keys(ctx: &Ctx, mut opts: GetOptions) -> Result<GetOptions> {
    // `--key` without `--env` for source/exec: the env still scopes the request.
    if !opts.keys.is_empty() && opts.env.is_none() {
        let rack = ctx.rack()?;
        if let Some(repo) = rack.repo()? {
            opts.env = Some(hot::resolve_repo_env(&repo, None)?);
        }
    }
    Ok(opts)
}

pub fn source(ctx: &Ctx, a: SourceArgs) -> ui::Result<i32> {
    let opts = with_env_of_keys(ctx, env_opts(a.env, a.keys, a.allow_dangerous))?;
    let rows = fetch(ctx, &opts, a.unlock)?;
    let satisfied = hot::all_satisfied(&rows);
    if !satisfied && !a.lenient {
        // Strict: not one value leaves, only what is missing and how to fix it.
        if ctx.json {
            ui::json(&serde_json::json!({ "keys": rows_json(&rows, false) }))?;
        } else {
            ui::err(super::direnv::one_line(true, &rows));
        }
        return outcome(&rows);
    }
    if ctx.json {
        ui::json(&serde_json::json!({ "keys": rows_json(&rows, true) }))?;
        return Ok(0);
    }
    let mut out = String::new();
    for x in &rows {
        if let Some(s) = &x.secret {
            match a.shell {
                Shell::Bash | Shell::Zsh => out.push_str(&format!(
                    "export {}={}\n",
                    x.key,
                    quote(a.shell, s.expose())
                )),
                Shell::Fish => out.push_str(&format!(
                    "set -gx {} {}\n",
                    x.key,
                    quote(a.shell, s.expose())
                )),
            }
        }
    }
    ui::out(&out)?;
    out.clear();
    if !satisfied {
        ui::err(super::direnv::one_line(false, &rows));
    }
    Ok(0)
}

/// A granted key handed to `exec`'s command: its name, env and value size (never the value).
struct Passed {
    key: String,
    env: String,
    bytes: usize,
}

pub fn exec(ctx: &Ctx, a: ExecArgs) -> ui::Result<i32> {
    // --aws-profile: the role credentials from the daemon (locked: refused, never a sign-in).
    let aws = super::aws_verbs::exec_credentials(ctx, a.aws_profile.as_deref())?;
    let attempts = if aws.is_some() && a.env.is_none() && a.keys.is_empty() {
        Vec::new() // only the AWS credentials were asked for
    } else {
        let opts = with_env_of_keys(ctx, env_opts(a.env, a.keys, a.allow_dangerous))?;
        fetch(ctx, &opts, a.unlock)?
    };
    if !hot::all_satisfied(&attempts) {
        if !a.lenient {
            // The command does not run; with --json its one document is the rows.
            if ctx.json {
                ui::json(&serde_json::json!({ "keys": rows_json(&attempts, false) }))?;
            } else {
                problems_to_stderr("exec", &attempts);
            }
            return outcome(&attempts);
        }
        problems_to_stderr("exec", &attempts);
    }
    // The values go in the new program's environment (envp), never on a command line: the
    // arguments are exactly the user's.
    let mut cmd = std::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    let mut passed = Vec::new();
    for x in &attempts {
        match &x.secret {
            Some(s) => {
                cmd.env(&x.key, s.expose());
                passed.push(Passed {
                    key: x.key.clone(),
                    env: x.env.clone(),
                    bytes: s.expose().len(),
                });
            }
            // Not granted (e.g. locked, with a stale value exported in this shell): the command
            // does not inherit it either.
            None => {
                cmd.env_remove(&x.key);
            }
        }
    }
    drop(attempts);
    if let Some(e) = &aws {
        for v in &e.vars {
            cmd.env(v.name, v.value.expose());
            passed.push(Passed {
                key: v.name.to_string(),
                env: e.profile.clone(),
                bytes: v.value.expose().len(),
            });
        }
        // SDKs given env credentials must not also be pointed at a profile.
        for k in super::aws_verbs::EXEC_UNSET {
            cmd.env_remove(k);
        }
    }
    drop(aws);
    crate::process::give_back_core_limit(&mut cmd);
    use std::os::unix::process::CommandExt;
    // execve in this process (no fork): the command gets keyrack's pid, stdio and signals.
    let err = cmd.exec();
    drop(cmd);
    crate::process::after_failed_exec();
    let (e, code) = exec_failure(&a.command, &err, &passed);
    if ctx.json {
        let mut doc = render::error_json(&e);
        doc["error"]["exitCode"] = code.into();
        ui::json(&doc)?;
    } else {
        render::err("exec", &[render::error_node(&e, Style::for_stderr())]);
    }
    Ok(code)
}

/// Why `execve` failed, in words that say what to do, and the shell's exit code for it
/// (127 not found, 126 found but cannot run).
fn exec_failure(command: &[OsString], err: &std::io::Error, passed: &[Passed]) -> (Error, i32) {
    let program = &command[0];
    let invalid = |reason: String, hint: String| Error::InvalidInput {
        what: "command",
        value: program.to_string_lossy().into_owned(),
        reason,
        hint: Some(hint),
    };
    let in_path = !program.as_bytes().contains(&b'/');
    let shown = program.to_string_lossy();
    match err.raw_os_error() {
        Some(nix::libc::E2BIG) => (too_big(command, passed, &invalid), 126),
        Some(nix::libc::ENOENT) if in_path => (
            invalid(
                "not found in any directory of PATH".into(),
                format!("check the command name and your PATH (command -v {shown})"),
            ),
            127,
        ),
        Some(nix::libc::ENOENT) => (
            invalid(
                "no such file (or its #! interpreter does not exist)".into(),
                "check the path, and the interpreter on the first line if it is a script".into(),
            ),
            127,
        ),
        Some(nix::libc::EACCES) => (
            invalid(
                "not executable: permission denied".into(),
                if in_path {
                    format!("make it executable (chmod +x \"$(command -v {shown})\"), or check the permissions of its directory")
                } else {
                    format!("make it executable (chmod +x {shown}), or check the permissions of its directories")
                },
            ),
            126,
        ),
        _ => (
            invalid(
                format!("cannot run it: {err}"),
                "check that it is a program this system can run".into(),
            ),
            126,
        ),
    }
}

/// `E2BIG`: one environment entry over `MAX_ARG_STRLEN`, or everything over `ARG_MAX`.
fn too_big(
    command: &[OsString],
    passed: &[Passed],
    invalid: &dyn Fn(String, String) -> Error,
) -> Error {
    let per_entry = crate::process::max_arg_strlen();
    // `KEY=value` and its NUL
    let entry = |p: &Passed| p.key.len() + 1 + p.bytes + 1;
    let mut largest: Vec<&Passed> = passed.iter().collect();
    largest.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    let list = |ps: &[&Passed]| {
        ps.iter()
            .map(|p| format!("{} ({} bytes)", p.key, p.bytes))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let too_long: Vec<&Passed> = largest
        .iter()
        .copied()
        .filter(|p| entry(p) > per_entry)
        .collect();
    if let Some(first) = too_long.first() {
        let also = match &too_long[1..] {
            [] => String::new(),
            more => format!(" (so are {})", list(more)),
        };
        return Error::InvalidInput {
            what: "key",
            value: first.key.clone(),
            reason: format!(
                "its value is {} bytes, too large to put in a program's environment: Linux takes at most {per_entry} bytes per KEY=value entry (MAX_ARG_STRLEN), so {} cannot be started with it{also}",
                first.bytes,
                command[0].to_string_lossy()
            ),
            hint: Some(format!(
                "pass it another way, e.g. keyrack get --key {} --env {} --value > a file the command reads, and leave it out of exec (--key for each key the command needs)",
                first.key, first.env
            )),
        };
    }
    // Everything together: arguments and environment (strings with their NUL, and pointers).
    let strings: usize = command.iter().map(|a| a.len() + 1).sum::<usize>()
        + environment_bytes(passed)
        + passed.iter().map(entry).sum::<usize>();
    let pointers = (command.len() + std::env::vars_os().count() + passed.len() + 2)
        * std::mem::size_of::<usize>();
    let limit = crate::process::arg_max()
        .map(|m| format!("{m} bytes"))
        .unwrap_or_else(|| "getconf ARG_MAX".into());
    let added: usize = passed.iter().map(entry).sum();
    invalid(
        format!(
            "its arguments and environment come to about {} bytes, more than the kernel takes (ARG_MAX: {limit}); keyrack adds {added} bytes, the largest: {}",
            strings + pointers,
            list(&largest[..largest.len().min(3)])
        ),
        "exec only the keys the command needs (--key K …), or raise the limit with ulimit -s (ARG_MAX is a quarter of the stack limit)".into(),
    )
}

/// Bytes of the inherited environment the command keeps (the keys keyrack sets replace theirs).
fn environment_bytes(passed: &[Passed]) -> usize {
    std::env::vars_os()
        .filter(|(k, _)| !passed.iter().any(|p| OsStr::new(&p.key) == k))
        .map(|(k, v)| k.len() + 1 + v.len() + 1)
        .sum()
}
