//! The hot commands' arguments without building clap's command tree.
//!
//! Building the full `Cli` command (every subcommand, every help text) and parsing with it costs
//! more instructions than everything else `keyrack get` does. [`parse`] reads the plain forms
//! of `get`, `source` and `exec` directly: long flags of those commands and the global flags,
//! as `--flag value` or `--flag=value`, and `get`'s positional keys. Whatever else it meets — help, version, short flags,
//! unknown or repeated flags, conflicting flags, empty values, values that look like flags,
//! non-UTF-8 text, a missing required argument — it returns `None`, and clap parses the
//! command line as it always did, with its own errors. A differential test holds both parsers
//! to the same result on every command line the fast one accepts.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{Cli, ColorChoice, Command, ExecArgs, GetArgs, Global, Shell, SourceArgs};

/// The environment variables behind global flags (as `#[arg(env = …)]` declares them).
const OWNER_ENV: &str = "KEYRACK_OWNER";
const IDENTITY_ENV: &str = "KEYRACK_IDENTITY";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sub {
    Get,
    Source,
    Exec,
}

/// Sets `slot` once; a second time is clap's business (it refuses repeats).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

fn flag(slot: &mut bool) -> Option<()> {
    if *slot {
        return None;
    }
    *slot = true;
    Some(())
}

/// The command line for `args` (without the program name), if it is a plain `get`, `source` or
/// `exec`; `env` reads the environment. `None`: let clap parse it.
pub fn parse(args: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<Cli> {
    let mut owner: Option<String> = None;
    let mut identity: Option<PathBuf> = None;
    let mut json = false;
    let mut color: Option<ColorChoice> = None;
    let mut names: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut for_: Option<String> = None;
    let mut env_: Option<String> = None;
    let mut org: Option<String> = None;
    let mut shell: Option<Shell> = None;
    let (mut value, mut allow_dangerous, mut unlock) = (false, false, false);
    let (mut strict, mut lenient, mut unset) = (false, false, false);
    let mut command: Option<Vec<OsString>> = None;

    let mut sub: Option<Sub> = None;
    let mut i = 0;
    while i < args.len() {
        if sub == Some(Sub::Exec) && args[i] == *"--" {
            command = Some(args[i + 1..].to_vec());
            break;
        }
        let tok = args[i].to_str()?;
        i += 1;
        let Some(long) = tok.strip_prefix("--") else {
            if sub == Some(Sub::Get) && !tok.is_empty() && !tok.starts_with('-') {
                names.push(tok.to_string()); // `get KEY…`
                continue;
            }
            if sub.is_some() {
                return None; // no other positionals
            }
            sub = Some(match tok {
                "get" => Sub::Get,
                "source" => Sub::Source,
                "exec" => Sub::Exec,
                _ => return None,
            });
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        // A flag's value: inline, else the next argument unless it looks like a flag.
        let mut take = || -> Option<String> {
            let v = match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i)?.to_str()?;
                    i += 1;
                    v
                }
            };
            (!v.is_empty() && !v.starts_with('-')).then(|| v.to_string())
        };
        let is_flag = inline.is_none();
        match (sub, name) {
            (_, "owner") => once(&mut owner, take()?)?,
            (_, "identity") => once(&mut identity, PathBuf::from(take()?))?,
            (_, "json") if is_flag => flag(&mut json)?,
            (_, "color") => {
                let c = match take()?.as_str() {
                    "auto" => ColorChoice::Auto,
                    "always" => ColorChoice::Always,
                    "never" => ColorChoice::Never,
                    _ => return None,
                };
                once(&mut color, c)?
            }
            (Some(_), "key") => keys.push(take()?),
            (Some(_), "env") => once(&mut env_, take()?)?,
            (Some(_), "allow-dangerous") if is_flag => flag(&mut allow_dangerous)?,
            (Some(Sub::Get), "for") => {
                let v = take()?;
                if v != "repo" {
                    return None;
                }
                once(&mut for_, v)?
            }
            (Some(Sub::Get), "org") => once(&mut org, take()?)?,
            (Some(Sub::Get), "value") if is_flag => flag(&mut value)?,
            (Some(_), "unlock") if is_flag => flag(&mut unlock)?,
            (Some(Sub::Source), "unset") if is_flag => flag(&mut unset)?,
            (Some(Sub::Source), "strict") if is_flag => flag(&mut strict)?,
            (Some(Sub::Source | Sub::Exec), "lenient") if is_flag => flag(&mut lenient)?,
            (Some(Sub::Source), "shell") => {
                let s = match take()?.as_str() {
                    "bash" => Shell::Bash,
                    "zsh" => Shell::Zsh,
                    "fish" => Shell::Fish,
                    _ => return None,
                };
                once(&mut shell, s)?
            }
            _ => return None,
        }
    }

    let from_env = |name: &str| -> Option<Option<OsString>> {
        match env(name) {
            Some(v) if v.is_empty() => None, // clap's call
            v => Some(v),
        }
    };
    if owner.is_none() {
        if let Some(v) = from_env(OWNER_ENV)? {
            owner = Some(v.into_string().ok()?);
        }
    }
    if identity.is_none() {
        identity = from_env(IDENTITY_ENV)?.map(PathBuf::from);
    }
    let global = Global {
        owner,
        identity,
        json,
        color: color.unwrap_or(ColorChoice::Auto),
    };
    let command = match sub? {
        Sub::Get => {
            let some_keys = !keys.is_empty() || !names.is_empty();
            if some_keys == for_.is_some() || (value && json) {
                return None; // neither or both of keys/--for; --value with --json
            }
            Command::Get(GetArgs {
                names,
                keys,
                for_,
                env: env_,
                org,
                value,
                allow_dangerous,
                unlock,
            })
        }
        Sub::Source => {
            if strict && lenient || unset && (strict || lenient || allow_dangerous || unlock) {
                return None;
            }
            Command::Source(SourceArgs {
                env: env_,
                keys,
                strict,
                lenient,
                shell: shell.unwrap_or(Shell::Bash),
                allow_dangerous,
                unlock,
                unset,
            })
        }
        Sub::Exec => {
            let command = command.filter(|c| !c.is_empty())?;
            Command::Exec(ExecArgs {
                env: env_,
                keys,
                lenient,
                allow_dangerous,
                unlock,
                // `--aws-profile` is not a plain form: clap parses it
                aws_profile: None,
                command,
            })
        }
    };
    Some(Cli { global, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn clap(args: &[OsString]) -> Option<Cli> {
        let argv = std::iter::once(OsString::from("keyrack")).chain(args.iter().cloned());
        Cli::try_parse_from(argv).ok()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    /// Pieces of command lines: mostly well-formed flags of the hot commands, some of other
    /// commands, some malformed.
    const UNITS: &[&[&str]] = &[
        &["--key", "K1"],
        &["--key", "K2"],
        &["--key=K3"],
        &["--env", "test"],
        &["--env=prod"],
        &["--for", "repo"],
        &["--for=repo"],
        &["--value"],
        &["--json"],
        &["--owner", "bot"],
        &["--owner=bot"],
        &["--identity", "/id"],
        &["--identity=/id2"],
        &["--org", "@all"],
        &["--allow-dangerous"],
        &["--unlock"],
        &["--unset"],
        &["--color", "never"],
        &["--color=always"],
        &["--color=rainbow"],
        &["KEY2"],
        &["--strict"],
        &["--lenient"],
        &["--shell", "fish"],
        &["--shell=zsh"],
        &["--", "cmd", "--json"],
        // rarer: other commands' flags and malformed pieces
        &["--for=all"],
        &["--shell=ksh"],
        &["--duration", "1h"],
        &["-x"],
        &["-"],
        &[""],
        &["--help"],
        &["-h"],
        &["-V"],
        &["--key="],
        &["--env"],
        &["--json=1"],
        &["--ke", "A"],
        &["help"],
        &["KEY"],
        &["--key", "-"],
        &["--key", "--json"],
        &["--"],
        &["status"],
    ];

    /// A deterministic pseudo-random command line of those pieces around a hot command.
    fn generated(seed: &mut u64) -> Vec<OsString> {
        let mut next = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 33) as usize
        };
        let len = next() % 6;
        let sub = ["get", "source", "exec"][next() % 3];
        let at = next() % (len + 1);
        let mut out: Vec<&str> = Vec::new();
        for j in 0..=len {
            if j == at {
                out.push(sub);
            }
            if j < len {
                out.extend_from_slice(UNITS[next() % UNITS.len()]);
            }
        }
        if sub == "exec" && next() % 4 != 0 {
            out.extend_from_slice(&["--", "cmd", "arg"]);
        }
        os(&out)
    }

    /// On every command line the fast parser accepts, clap accepts it too and agrees exactly.
    #[test]
    fn the_fast_parser_agrees_with_clap() {
        let mut seed = 7;
        let mut accepted = 0;
        for case in 0..6000 {
            let args = generated(&mut seed);
            if let Some(fast) = parse(&args, |k| std::env::var_os(k)) {
                accepted += 1;
                let slow =
                    clap(&args).unwrap_or_else(|| panic!("case {case}: clap refuses {args:?}"));
                assert_eq!(
                    format!("{fast:?}"),
                    format!("{slow:?}"),
                    "case {case}: {args:?}"
                );
            }
        }
        assert!(accepted > 600, "the fast parser took only {accepted} cases");
    }

    /// The flags clap declares for the hot commands are exactly those the fast parser reads,
    /// and only the two global ones read the environment: a flag added to `cli.rs` fails here
    /// until `parse` learns it (a new field already fails to compile).
    #[test]
    fn the_fast_parser_knows_every_flag_of_the_hot_commands() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let longs = |c: &clap::Command| -> Vec<String> {
            let mut v: Vec<String> = c
                .get_arguments()
                .map(|a| a.get_long().unwrap_or("<positional>").to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(longs(&cmd), ["color", "identity", "json", "owner"]);
        let envs: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| {
                Some((
                    a.get_long()?.to_string(),
                    a.get_env()?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert_eq!(
            envs,
            [
                ("owner".to_string(), OWNER_ENV.to_string()),
                ("identity".to_string(), IDENTITY_ENV.to_string())
            ]
        );
        for (sub, flags) in [
            (
                "get",
                &[
                    "<positional>",
                    "allow-dangerous",
                    "env",
                    "for",
                    "key",
                    "org",
                    "unlock",
                    "value",
                ][..],
            ),
            (
                "source",
                &[
                    "allow-dangerous",
                    "env",
                    "key",
                    "lenient",
                    "shell",
                    "strict",
                    "unlock",
                    "unset",
                ],
            ),
            (
                "exec",
                &[
                    "<positional>",
                    "allow-dangerous",
                    // not parsed here: an unknown flag leaves the whole command line to clap
                    "aws-profile",
                    "env",
                    "key",
                    "lenient",
                    "unlock",
                ],
            ),
        ] {
            let c = cmd.find_subcommand(sub).unwrap();
            assert_eq!(longs(c), flags, "{sub}");
            assert!(c.get_arguments().all(|a| a.get_env().is_none()), "{sub}");
        }
    }

    #[test]
    fn the_plain_hot_forms_take_the_fast_path() {
        for args in [
            &["get", "--key", "A", "--env", "test", "--value"][..],
            &["get", "--key=A", "--key", "B", "--json"],
            &["--json", "get", "--for", "repo", "--env=test"],
            &[
                "get",
                "--key",
                "A",
                "--org",
                "@all",
                "--allow-dangerous",
                "--unlock",
            ],
            &["source", "--env", "test"],
            &["get", "A", "B", "--env", "test", "--color", "never"],
            &["get", "A", "--value"],
            &["source", "--env", "test", "--unlock", "--color=always"],
            &["source", "--env", "test", "--unset", "--shell", "fish"],
            &["exec", "--env", "test", "--unlock", "--", "cmd"],
            &["source", "--env", "test", "--lenient", "--shell", "fish"],
            &["--owner", "bot", "source", "--key", "A", "--strict"],
            &["exec", "--env", "test", "--", "cmd", "--json", "-x", "--"],
            &["exec", "--key", "A", "--lenient", "--", "cmd"],
        ] {
            let args = os(args);
            let fast = parse(&args, no_env).unwrap_or_else(|| panic!("{args:?}"));
            let slow = clap(&args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{args:?}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_clap() {
        for args in [
            &["get"][..],
            &["exec", "--aws-profile", "p", "--", "cmd"],
            &["get", "--key", "A", "--for", "repo"],
            &["get", "--key", "A", "--value", "--json"],
            &["get", "--key", "A", "--env", "a", "--env", "b"],
            &["get", "--key", "-A"],
            &["get", "--key", "A", "--help"],
            &["get", "-h"],
            &["get", "KEY", "--for", "repo"],
            &["get", "-K"],
            &["get", "A", "--color", "rainbow"],
            &["source", "--unset", "--lenient"],
            &["source", "KEY"],
            &["source", "--strict", "--lenient"],
            &["source", "--shell", "ksh"],
            &["exec", "--env", "test"],
            &["exec", "--env", "test", "--"],
            &["status"],
            &["--version"],
            &["get", "--key", "A", "--json", "--json"],
            &["get", "--key", "A", "--unlock=yes"],
        ] {
            assert!(parse(&os(args), no_env).is_none(), "{args:?}");
        }
    }

    #[test]
    fn global_flags_fall_back_to_their_environment_variables() {
        let env = |k: &str| match k {
            "KEYRACK_OWNER" => Some(OsString::from("robot")),
            "KEYRACK_IDENTITY" => Some(OsString::from("/keys/id")),
            _ => None,
        };
        let cli = parse(&os(&["get", "--key", "A"]), env).unwrap();
        assert_eq!(cli.global.owner.as_deref(), Some("robot"));
        assert_eq!(cli.global.identity, Some(PathBuf::from("/keys/id")));
        // the flag wins over the variable
        let cli = parse(&os(&["get", "--key", "A", "--owner", "me"]), env).unwrap();
        assert_eq!(cli.global.owner.as_deref(), Some("me"));
        // an empty variable is clap's call
        let empty = |k: &str| (k == "KEYRACK_OWNER").then(OsString::new);
        assert!(parse(&os(&["get", "--key", "A"]), empty).is_none());
    }
}
