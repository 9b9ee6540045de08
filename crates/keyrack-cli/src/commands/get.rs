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
    // the allowlist, cached: a warm call parses no YAML
    let repo = rack.allowlist()?;
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

/// `value` quoted for `shell` as one literal word.
pub fn quote(shell: Shell, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_quoted(&mut out, shell, value);
    out
}

/// Appends `value` quoted for `shell` as one literal word.
pub fn push_quoted(out: &mut String, shell: Shell, value: &str) {
    out.push('\'');
    for part in value.split_inclusive(['\'', '\\']) {
        // each part ends with its delimiter, except perhaps the last
        let escaped = match (shell, part.as_bytes().last()) {
            (Shell::Bash | Shell::Zsh, Some(b'\'')) => r"'\''",
            (Shell::Fish, Some(b'\'')) => r"\'",
            (Shell::Fish, Some(b'\\')) => r"\\",
            _ => {
                out.push_str(part);
                continue;
            }
        };
        out.push_str(&part[..part.len() - 1]);
        out.push_str(escaped);
    }
    out.push('\'');
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
        if let Some(repo) = rack.allowlist()? {
            opts.env = Some(hot::resolve_allowed_env(&repo, None)?);
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
    // sized up front so the secrets are not left behind in outgrown buffers; wiped on drop
    let size: usize = rows
        .iter()
        .filter_map(|x| Some(x.key.len() + 4 * x.secret.as_ref()?.expose().len() + 16))
        .sum();
    let mut out = String::with_capacity(size);
    for x in &rows {
        if let Some(s) = &x.secret {
            out.push_str(match a.shell {
                Shell::Bash | Shell::Zsh => "export ",
                Shell::Fish => "set -gx ",
            });
            out.push_str(&x.key);
            out.push(if a.shell == Shell::Fish { ' ' } else { '=' });
            push_quoted(&mut out, a.shell, s.expose());
            out.push('\n');
        }
    }
    let out = keyrack::secret::Secret::new(out);
    ui::out(out.expose())?;
    drop(out);
    if !satisfied {
        ui::err(super::direnv::one_line(false, &rows));
    }
    Ok(0)
}

/// A granted key handed to `exec`'s command: its name, env and value size (never the value).
struct Passed<'a> {
    key: &'a str,
    env: &'a str,
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
    // arguments are exactly the user's. A requested key that is not granted (e.g. locked, with a
    // stale value exported in this shell) is not inherited by the command either.
    let mut set: Vec<(&str, &str)> = Vec::with_capacity(attempts.len());
    let mut removed: Vec<&str> = Vec::new();
    for x in &attempts {
        match &x.secret {
            Some(s) => set.push((x.key.as_str(), s.expose())),
            None => removed.push(x.key.as_str()),
        }
    }
    if let Some(e) = &aws {
        for v in &e.vars {
            set.push((v.name, v.value.expose()));
        }
        // SDKs given env credentials must not also be pointed at a profile (not even a granted
        // AWS_PROFILE key of the env).
        set.retain(|(k, _)| !super::aws_verbs::EXEC_UNSET.contains(k));
        removed.extend(super::aws_verbs::EXEC_UNSET.iter().copied());
    }
    // execve in this process (no fork): the command gets keyrack's pid, stdio and signals.
    let err = exec_with(&a.command, &set, &removed);
    drop(set);
    drop(removed);
    crate::process::after_failed_exec();
    // What was passed matters only now, to explain a failure: the values go (wiped as they
    // are dropped), their sizes, keys and envs stay.
    let mut attempts = attempts;
    let mut aws = aws;
    let mut passed: Vec<Passed> = Vec::with_capacity(attempts.len());
    for x in &mut attempts {
        let KeyRow {
            key, env, secret, ..
        } = x;
        if let Some(s) = secret.take() {
            let bytes = s.expose().len();
            passed.push(Passed { key, env, bytes });
        }
    }
    if let Some(e) = &mut aws {
        let vars = std::mem::take(&mut e.vars);
        let env = e.profile.as_str();
        passed.extend(vars.iter().map(|v| Passed {
            key: v.name,
            env,
            bytes: v.value.expose().len(),
        }));
    }
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
            value: first.key.to_string(),
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
        .filter(|(k, _)| !passed.iter().any(|p| OsStr::new(p.key) == k))
        .map(|(k, v)| k.len() + 1 + v.len() + 1)
        .sum()
}

/// Replaces this process with `command`, its environment this process's with `vars` set
/// (they win) and `removed` taken out; returns only on failure (the caller then undoes, with
/// [`crate::process::after_failed_exec`], what was changed for the new program).
///
/// It does what `Command::exec` does — an empty signal mask and SIGPIPE back to its default for
/// the new program, the core limit keyrack started with given back (see [`crate::process`]),
/// then `execvp` with the new environment — without copying the whole environment into a map and
/// back first (which cost `exec` of 50 keys 4 000 instructions per key): inherited entries are
/// handed over as they are. A `PATH` among `vars` (it decides where a bare command name is
/// looked up) or a NUL byte in a value or argument (no environment can hold it) goes through
/// `Command` itself.
fn exec_with(
    command: &[std::ffi::OsString],
    vars: &[(&str, &str)],
    removed: &[&str],
) -> std::io::Error {
    use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
    use std::ffi::{c_char, CStr, CString};
    use std::os::unix::process::CommandExt;

    extern "C" {
        static environ: *const *const c_char;
    }

    let with_command = || {
        let mut cmd = std::process::Command::new(&command[0]);
        cmd.args(&command[1..]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        for k in removed {
            cmd.env_remove(k);
        }
        crate::process::give_back_core_limit(&mut cmd);
        cmd.exec()
    };
    if vars.iter().any(|(k, v)| *k == "PATH" || v.contains('\0')) || removed.contains(&"PATH") {
        return with_command();
    }
    let Some(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).ok())
        .collect::<Option<Vec<CString>>>()
    else {
        return with_command();
    };
    // every `KEY=value\0` in one buffer, wiped when dropped (no value has a NUL: checked above)
    let size = vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut entries = keyrack::secret::SecretBytes::with_capacity(size);
    let mut ends = Vec::with_capacity(vars.len());
    for (k, v) in vars {
        entries.extend_from_slice(k.as_bytes());
        entries.push(b'=');
        entries.extend_from_slice(v.as_bytes());
        entries.push(0);
        ends.push(entries.len());
    }
    let mut start = 0;
    let mut set: Vec<&CStr> = Vec::with_capacity(vars.len());
    for end in ends {
        match CStr::from_bytes_with_nul(&entries[start..end]) {
            Ok(c) => set.push(c),
            Err(_) => return with_command(), // a NUL in a key (a key is an identifier: never)
        }
        start = end;
    }
    let mut envp: Vec<&CStr> = Vec::with_capacity(set.len() + 64);
    // SAFETY: `environ` is the C runtime's NULL-terminated array of NUL-terminated strings; this
    // process runs no other thread that could change it while it is read here.
    unsafe {
        let mut at = environ;
        while !at.is_null() && !(*at).is_null() {
            let entry = CStr::from_ptr(*at);
            at = at.add(1);
            // the name ends at the first '=' after the first byte, as std reads it; entries
            // without one are dropped, as `Command` drops them
            let bytes = entry.to_bytes();
            let Some(eq) = bytes.iter().skip(1).position(|&b| b == b'=') else {
                continue;
            };
            let name = &bytes[..eq + 1];
            let replaced = vars.iter().any(|(k, _)| k.as_bytes() == name)
                || removed.iter().any(|k| k.as_bytes() == name);
            if !replaced {
                envp.push(entry);
            }
        }
    }
    envp.extend(set.iter().copied());
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: setting a signal's disposition to its default installs no handler.
    let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    // This process stays non-dumpable until execve resets that for the new program, so no core
    // file can be written between here and there whatever the limit.
    crate::process::give_back_core_limit_now();
    let Err(e) = nix::unistd::execvpe(&argv[0], &argv, &envp);
    std::io::Error::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quoting as it was first written: replace, then wrap.
    fn reference(shell: Shell, value: &str) -> String {
        match shell {
            Shell::Bash | Shell::Zsh => format!("'{}'", value.replace('\'', r"'\''")),
            Shell::Fish => format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'")),
        }
    }

    #[test]
    fn quoting_matches_the_reference_on_generated_values() {
        let alphabet = ['a', '\'', '\\', '"', ' ', '$', '\n', 'é', '`'];
        let mut seed: u64 = 3;
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 60) as usize;
            let value: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 4 % 56)) as usize) % alphabet.len()])
                .collect();
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let mut out = String::new();
                push_quoted(&mut out, shell, &value);
                assert_eq!(out, reference(shell, &value), "{shell:?} {value:?}");
            }
        }
    }
}
