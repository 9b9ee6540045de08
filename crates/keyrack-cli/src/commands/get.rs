//! `get`, `source`, `exec`: the hot path. One daemon round trip; no decryption.

use std::io::Write;

use keyrack::ops::get::{self as hot, Attempt, GetOptions, Status};
use keyrack::ops::unlock::{self, UnlockOptions};
use keyrack::{Error, Result};

use super::Ctx;
use crate::cli::{ExecArgs, GetArgs, Shell, SourceArgs};
use crate::render::{print_json, time_left, tree, Node, Style};

fn attempt_node(a: &Attempt, style: Style) -> Node {
    let mut n = Node::new(a.slug.clone());
    if let Some(v) = a.vault {
        n.push(Node::new(format!("vault: {v}")));
    }
    if let Some(by) = &a.granted_by {
        n.push(Node::new(format!("via: {by}")));
    }
    let status = match a.status {
        Status::Granted => style.paint("32", "granted 🔓"),
        Status::Locked => style.paint("33", "locked 🔒"),
        Status::Absent => style.paint("33", "absent"),
        Status::Blocked => style.paint("31", "blocked ⛔"),
    };
    let mut s = Node::new(format!("status: {status}"));
    if let Some(t) = a.expires_at {
        s.push(Node::new(format!("expires: {}", time_left(t))));
    }
    if a.status != Status::Granted {
        if let Some(r) = &a.reason {
            s.push(Node::new(format!("reason: {r}")));
        }
        if a.waived {
            s.push(Node::new("waived: is-optional-if-has is satisfied"));
        } else if let Some(f) = &a.fix {
            s.push(Node::new(format!("{} {f}", style.paint("33", "fix:"))));
        }
    }
    n.push(s);
    n
}

fn attempts_json(attempts: &[Attempt]) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = attempts
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).expect("json");
            if let Some(s) = &a.secret {
                v["value"] = serde_json::Value::String(s.expose().to_string());
            }
            v
        })
        .collect();
    serde_json::json!({ "attempts": rows })
}

fn problems_to_stderr(title: &str, attempts: &[Attempt]) {
    let style = Style::for_stderr();
    let nodes: Vec<Node> = attempts
        .iter()
        .filter(|a| a.status != Status::Granted && !a.waived)
        .map(|a| attempt_node(a, style))
        .collect();
    if !nodes.is_empty() {
        eprint!("{}", tree(title, &nodes));
    }
}

fn fetch(ctx: &Ctx, opts: &GetOptions) -> Result<Vec<Attempt>> {
    let rack = ctx.rack()?;
    let allowlist = rack.allowlist()?;
    hot::get(rack.home(), allowlist.as_ref(), opts)
}

pub fn get(ctx: &Ctx, a: GetArgs) -> Result<i32> {
    let opts = GetOptions {
        keys: a.keys,
        for_repo: a.for_.is_some(),
        env: a.env,
        org: a.org,
        allow_dangerous: a.allow_dangerous,
    };
    let mut attempts = fetch(ctx, &opts)?;
    if a.unlock && attempts.iter().any(|x| x.status == Status::Locked) {
        let rack = ctx.rack()?;
        let mut by_env: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for x in attempts.iter().filter(|x| x.status == Status::Locked) {
            by_env.entry(x.env.clone()).or_default().push(x.key.clone());
        }
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
        attempts = fetch(ctx, &opts)?;
    }
    let ok = attempts.iter().all(|x| x.status == Status::Granted);
    if a.value {
        if attempts.len() != 1 {
            return Err(Error::InvalidInput {
                what: "--value",
                value: format!("{} keys", attempts.len()),
                reason: "--value prints exactly one key".into(),
                hint: Some("pass a single --key, or use --json / keyrack source".into()),
            });
        }
        match &attempts[0].secret {
            Some(s) if ok => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(s.expose().as_bytes());
                let _ = out.flush();
                return Ok(0);
            }
            _ => {
                problems_to_stderr("get", &attempts);
                return Ok(2);
            }
        }
    }
    if ctx.json {
        print_json(&attempts_json(&attempts));
    } else {
        let style = Style::for_stdout();
        let nodes: Vec<Node> = attempts.iter().map(|x| attempt_node(x, style)).collect();
        print!("{}", tree("get", &nodes));
    }
    Ok(if ok { 0 } else { 2 })
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
            opts.env = Some(hot::resolve_repo_env(&repo, None)?);
        }
    }
    Ok(opts)
}

pub fn source(ctx: &Ctx, a: SourceArgs) -> Result<i32> {
    let opts = with_env_of_keys(ctx, env_opts(a.env, a.keys, a.allow_dangerous))?;
    let attempts = fetch(ctx, &opts)?;
    let satisfied = hot::all_satisfied(&attempts);
    if !satisfied && !a.lenient {
        if ctx.json {
            print_json(&attempts_json(&attempts));
        } else {
            problems_to_stderr("source", &attempts);
        }
        return Ok(2);
    }
    if ctx.json {
        print_json(&attempts_json(&attempts));
        return Ok(0);
    }
    // sized up front so the secrets are not left behind in outgrown buffers; wiped on drop
    let size: usize = attempts
        .iter()
        .filter_map(|x| Some(x.key.len() + 4 * x.secret.as_ref()?.expose().len() + 16))
        .sum();
    let mut out = String::with_capacity(size);
    for x in &attempts {
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
    let _ = std::io::stdout().write_all(out.expose().as_bytes());
    drop(out);
    if !satisfied {
        problems_to_stderr("source", &attempts);
    }
    Ok(0)
}

pub fn exec(ctx: &Ctx, a: ExecArgs) -> Result<i32> {
    let opts = with_env_of_keys(ctx, env_opts(a.env, a.keys, a.allow_dangerous))?;
    let attempts = fetch(ctx, &opts)?;
    if !hot::all_satisfied(&attempts) {
        if !a.lenient {
            problems_to_stderr("exec", &attempts);
            return Ok(2);
        }
        problems_to_stderr("exec", &attempts);
    }
    let vars: Vec<(&str, &str)> = attempts
        .iter()
        .filter_map(|x| Some((x.key.as_str(), x.secret.as_ref()?.expose())))
        .collect();
    let err = exec_with(&a.command, &vars);
    drop(vars);
    drop(attempts);
    let style = Style::for_stderr();
    let e = Error::InvalidInput {
        what: "command",
        value: a.command[0].to_string_lossy().into_owned(),
        reason: format!("cannot run it: {err}"),
        hint: Some("check the command name and your PATH".into()),
    };
    eprint!("{}", tree("exec", &[crate::render::error_node(&e, style)]));
    Ok(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Replaces this process with `command`, its environment this process's with `vars` set
/// (they win); returns only on failure. It does what `Command::exec` does — an empty signal
/// mask and SIGPIPE back to its default for the new program, then `execvp` with the new
/// environment — without copying the whole environment into a map and back first (which cost
/// `exec` of 50 keys 4 000 instructions per key): inherited entries are handed over as they
/// are. A `PATH` among `vars` (it decides where a bare command name is looked up) or a NUL byte
/// in a value (no environment can hold it) goes through `Command` itself.
fn exec_with(command: &[std::ffi::OsString], vars: &[(&str, &str)]) -> std::io::Error {
    use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
    use std::ffi::{c_char, CStr, CString};
    use std::os::unix::ffi::OsStrExt;
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
        cmd.exec()
    };
    if vars.iter().any(|(k, v)| *k == "PATH" || v.contains('\0')) {
        return with_command();
    }
    let Some(argv) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).ok())
        .collect::<Option<Vec<CString>>>()
    else {
        return with_command();
    };
    let set: Vec<CString> = vars
        .iter()
        .filter_map(|(k, v)| {
            let mut entry = Vec::with_capacity(k.len() + v.len() + 2);
            entry.extend_from_slice(k.as_bytes());
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
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
            if !vars.iter().any(|(k, _)| k.as_bytes() == name) {
                envp.push(entry);
            }
        }
    }
    envp.extend(set.iter().map(CString::as_c_str));
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: setting a signal's disposition to its default installs no handler.
    let _ = unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
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
