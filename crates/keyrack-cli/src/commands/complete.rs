//! Shell completions that know this repository and this machine: besides commands and flags,
//! `--env` completes the envs keyrack.yml declares, `--key` (and a key argument) the keys it
//! declares, `--profile` / `--exid` the profiles of the AWS config file (`$AWS_CONFIG_FILE`
//! honoured).
//!
//! `keyrack completions <shell>` prints a small registration script; on each TAB the shell runs
//! `COMPLETE=<shell> keyrack -- <words…>` and this module answers (clap_complete's dynamic
//! engine). The answer reads keyrack.yml and the AWS config only: nothing is decrypted, no daemon
//! is contacted, nothing is written.

use std::ffi::OsString;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{EnvCompleter, Shells};

use crate::cli::Cli;
use crate::ui;

/// The environment variable the registration scripts set when they ask for completions.
pub const VAR: &str = "COMPLETE";

fn repo() -> Option<keyrack::repo_manifest::RepoManifest> {
    let cwd = std::env::current_dir().ok()?;
    keyrack::repo_manifest::RepoManifest::discover(&cwd).ok()
}

fn envs() -> Vec<CompletionCandidate> {
    let Some(repo) = repo() else { return vec![] };
    let mut out: Vec<CompletionCandidate> = repo
        .env_names()
        .into_iter()
        .map(|e| {
            let n = repo.keys_for(&e).len();
            CompletionCandidate::new(e).help(Some(format!("{n} key(s)").into()))
        })
        .collect();
    if !repo.all.is_empty() {
        out.push(CompletionCandidate::new("all").help(Some("keys every env needs".into())));
    }
    out
}

fn keys() -> Vec<CompletionCandidate> {
    let Some(repo) = repo() else { return vec![] };
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (env, specs) in &repo.envs {
        for k in specs {
            by_key.entry(k.key.clone()).or_default().push(env.clone());
        }
    }
    for k in &repo.all {
        by_key.entry(k.key.clone()).or_default().push("all".into());
    }
    by_key
        .into_iter()
        .map(|(k, envs)| CompletionCandidate::new(k).help(Some(envs.join(", ").into())))
        .collect()
}

fn profiles() -> Vec<CompletionCandidate> {
    let Ok(cfg) = keyrack::aws::config_file::AwsConfig::load_default() else {
        return vec![];
    };
    cfg.profile_names()
        .into_iter()
        .map(|p| {
            let help = keyrack::aws::names::ProfileName::parse(&p)
                .ok()
                .and_then(|n| cfg.sso_profile(&n).ok())
                .map(|s| format!("SSO {} {}", s.account_id, s.role_name));
            CompletionCandidate::new(p).help(help.map(Into::into))
        })
        .collect()
}

/// A source of candidates.
type Candidates = fn() -> Vec<CompletionCandidate>;

/// What an argument's values are, judged by its flag or value name.
fn candidates_for(arg: &clap::Arg) -> Option<Candidates> {
    let long = arg.get_long();
    let value_name = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|s| s.as_str());
    match (long, value_name) {
        (Some("env"), _) => Some(envs),
        (Some("key"), _) | (None, Some("KEY")) => Some(keys),
        (Some("profile" | "exid" | "aws-profile"), _) => Some(profiles),
        _ => None,
    }
}

fn attach(mut cmd: clap::Command) -> clap::Command {
    let found: Vec<(clap::Id, Candidates)> = cmd
        .get_arguments()
        .filter_map(|a| candidates_for(a).map(|f| (a.get_id().clone(), f)))
        .collect();
    for (id, f) in found {
        cmd = cmd.mut_arg(id, move |a| a.add(ArgValueCandidates::new(f)));
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for s in subs {
        cmd = cmd.mut_subcommand(s, attach);
    }
    cmd
}

/// The command tree with the dynamic candidates attached.
pub fn command() -> clap::Command {
    attach(Cli::command())
}

fn completer(shell: &str) -> Option<&'static dyn EnvCompleter> {
    Shells::builtins().0.iter().copied().find(|c| c.is(shell))
}

fn shell_name(shell: clap_complete::Shell) -> &'static str {
    match shell {
        clap_complete::Shell::Bash => "bash",
        clap_complete::Shell::Elvish => "elvish",
        clap_complete::Shell::Fish => "fish",
        clap_complete::Shell::PowerShell => "powershell",
        clap_complete::Shell::Zsh => "zsh",
        _ => "bash",
    }
}

/// The program the registration script calls back: `keyrack` when it was found on `PATH`,
/// else the absolute path it was run as.
fn callback() -> String {
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "keyrack".into());
    let p = std::path::PathBuf::from(&argv0);
    if p.components().count() > 1 {
        std::path::absolute(&p)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    } else {
        argv0.to_string_lossy().into_owned()
    }
}

/// `keyrack completions <shell>`: the registration script (with `--json`: `{shell, script}`).
pub fn registration(ctx: &super::Ctx, shell: clap_complete::Shell) -> ui::Result<i32> {
    let name = shell_name(shell);
    let Some(c) = completer(name) else {
        return Ok(1);
    };
    let how = match name {
        "bash" => "echo 'source <(keyrack completions bash)' >> ~/.bashrc",
        "zsh" => "echo 'source <(keyrack completions zsh)' >> ~/.zshrc",
        "fish" => "keyrack completions fish > ~/.config/fish/completions/keyrack.fish",
        "elvish" => "echo 'eval (keyrack completions elvish | slurp)' >> ~/.elvish/rc.elv",
        _ => "keyrack completions powershell | Out-String | Invoke-Expression   (in $PROFILE)",
    };
    let about = format!(
        "# keyrack completions for {name}: commands and flags, plus the envs and keys of the\n\
         # keyrack.yml where you are and the profiles of your AWS config (asked on each TAB).\n\
         # install: {how}\n"
    );
    let mut script = Vec::new();
    c.write_registration(VAR, "keyrack", "keyrack", &callback(), &mut script)
        .map_err(ui::Failure::Output)?;
    // zsh reads `#compdef` on the first line of a completion file: the note goes last there.
    if name == "zsh" {
        script.extend_from_slice(about.as_bytes());
    } else {
        script.splice(0..0, about.into_bytes());
    }
    if ctx.json {
        ui::json(&serde_json::json!({
            "shell": name,
            "script": String::from_utf8_lossy(&script),
        }))?;
    } else {
        ui::out(script)?;
    }
    Ok(0)
}

/// Answers a completion request (`COMPLETE=<shell> keyrack -- <words…>`) when this process is
/// one; `None` for an ordinary run. A `COMPLETE` value that names no shell is not a request.
pub fn from_env() -> Option<i32> {
    let shell = std::env::var(VAR).ok()?;
    let c = completer(&shell)?;
    // Nothing this process starts is a completion request (first thing in main: one thread).
    std::env::remove_var(VAR);
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let escape = args
        .iter()
        .position(|a| a == "--")
        .map_or(args.len(), |i| i + 1);
    args.drain(..escape);
    let mut buf = Vec::new();
    let cwd = std::env::current_dir().ok();
    let mut cmd = command();
    cmd.build();
    let written = if args.is_empty() {
        c.write_registration(VAR, "keyrack", "keyrack", &callback(), &mut buf)
    } else {
        c.write_complete(&mut cmd, args, cwd.as_deref(), &mut buf)
    };
    match written {
        Ok(()) => match ui::out(buf) {
            Ok(()) => Some(0),
            Err(_) => Some(1),
        },
        Err(e) => {
            ui::err(format!("keyrack: completion failed: {e}\n"));
            Some(1)
        }
    }
}
