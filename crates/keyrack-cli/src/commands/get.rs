//! `get`, `source`, `exec`: the hot path. One daemon round trip; no decryption.

use std::io::Write;

use keyrack::ops::get::{self as hot, Attempt, GetOptions, Source, Status};
use keyrack::ops::unlock::{self, UnlockOptions};
use keyrack::{Error, Result};

use super::Ctx;
use crate::cli::{ExecArgs, GetArgs, Shell, SourceArgs};
use crate::render::{print_json, time_left, tree, Node, Style};

fn attempt_node(a: &Attempt, style: Style) -> Node {
    let mut n = Node::new(a.slug.clone());
    match (a.vault, a.source) {
        (Some(v), Some(Source::Env)) => n.push(Node::new(format!(
            "vault: {v} (from the process environment)"
        ))),
        (Some(v), _) => n.push(Node::new(format!("vault: {v}"))),
        _ => {}
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
    let repo = rack.repo()?;
    hot::get(rack.home(), repo.as_ref(), opts)
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
    let mut out = String::new();
    for x in &attempts {
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
    let _ = std::io::stdout().write_all(out.as_bytes());
    out.clear();
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
    let mut cmd = std::process::Command::new(&a.command[0]);
    cmd.args(&a.command[1..]);
    for x in &attempts {
        match &x.secret {
            Some(s) => cmd.env(&x.key, s.expose()),
            // Not granted (e.g. locked, with a stale value exported in this shell): the command
            // does not inherit it either.
            None => cmd.env_remove(&x.key),
        };
    }
    drop(attempts);
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
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
