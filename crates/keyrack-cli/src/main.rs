//! The `keyrack` binary: parses arguments, calls the library, renders the result.
// The entry point is ours (see `startup`); the test harness brings its own.
#![cfg_attr(not(test), no_main)]
// Every byte of output goes through `ui`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod aws_wizard;
mod cli;
mod commands;
mod fast_args;
mod interact;
mod process;
mod render;
#[cfg(not(test))]
mod startup;
mod tty;
mod ui;

use clap::Parser;

/// The C entry point: start-up (see [`startup`]), then [`run`]. Never returns.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    // Before anything can touch a secret: no core file of this process, ever.
    process::harden();
    // Valid standard descriptors, SIGPIPE ignored (what Rust's runtime start-up would do).
    startup::init();
    run()
}

/// Parses the command line, runs the command, renders an error, exits with the code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> ! {
    // A TAB in a shell with keyrack's completions: answer it and stop.
    if let Some(code) = commands::complete::from_env() {
        std::process::exit(code);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The hot commands' plain forms skip building clap's command tree; clap takes the rest.
    let cli = match fast_args::parse(&args, |name| std::env::var_os(name)) {
        Some(c) => c,
        None => match cli::Cli::try_parse() {
            Ok(c) => c,
            Err(e) => std::process::exit(usage(&e)),
        },
    };
    render::init(cli.global.color);
    let json = cli.global.json;
    let title = commands::title(&cli.command);
    let code = match commands::run(cli) {
        Ok(code) => code,
        // The command showed the outcome itself (its rows); only the exit code is left.
        Err(ui::Failure::Shown(e)) => e.exit_code(),
        Err(failure) => {
            let e = match failure {
                ui::Failure::Keyrack(e) | ui::Failure::Shown(e) => e,
                ui::Failure::Output(source) => {
                    keyrack::Error::io("write", "standard output", source)
                }
            };
            if json {
                let _ = ui::json(&render::error_json(&e));
            } else {
                let style = render::Style::for_stderr();
                render::err(title, &[render::error_node(&e, style)]);
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Whether `--json` is among the arguments (before a `--`), for errors clap found before it could
/// say so.
fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Reports what clap found: help and version exit 0; usage errors exit 1 (2 means "not
/// granted"). With `--json`, as the one JSON document on stdout.
fn usage(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let code = if e.use_stderr() { 1 } else { 0 };
    if !json_requested() {
        let _ = e.print();
        return code;
    }
    let text = e.render().to_string();
    let doc = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            serde_json::json!({ "help": text })
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => serde_json::json!({
            "error": {
                "code": "usage",
                "message": "a command is required",
                "fix": "see: keyrack --help",
                "usage": null,
                "exitCode": code,
            },
            "help": text,
        }),
        _ => {
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let message = lines
                .next()
                .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
                .unwrap_or_default();
            let rest: Vec<&str> = lines.collect();
            let tip = rest
                .iter()
                .find_map(|l| l.strip_prefix("tip: "))
                .map(str::to_string);
            let choices = rest
                .iter()
                .find_map(|l| l.strip_prefix("[possible values: "))
                .map(|l| format!("use one of: {}", l.trim_end_matches(']')));
            let usage = rest
                .iter()
                .find_map(|l| l.strip_prefix("Usage: "))
                .map(str::to_string);
            let fix = tip
                .or(choices)
                .or_else(|| usage.as_ref().map(|u| format!("usage: {u}")))
                .unwrap_or_else(|| "see: keyrack --help".into());
            serde_json::json!({
                "error": {
                    "code": "usage",
                    "message": message,
                    "fix": fix,
                    "usage": usage,
                    "exitCode": code,
                }
            })
        }
    };
    let _ = ui::json(&doc);
    code
}
