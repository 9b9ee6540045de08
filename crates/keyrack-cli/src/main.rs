//! The `keyrack` binary: parses arguments, calls the library, renders the result.
// The entry point is ours (see `startup`); the test harness brings its own.
#![cfg_attr(not(test), no_main)]

mod cli;
mod commands;
mod fast_args;
mod render;
#[cfg(not(test))]
mod startup;

use clap::Parser;

/// The C entry point: start-up (see [`startup`]), then [`run`]. Never returns.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    startup::init();
    run()
}

/// Parses the command line, runs the command, renders an error, exits with the code.
#[cfg_attr(test, allow(dead_code))]
fn run() -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The hot commands' plain forms skip building clap's command tree; clap takes the rest.
    let cli = match fast_args::parse(&args, |name| std::env::var_os(name)) {
        Some(c) => c,
        None => match cli::Cli::try_parse() {
            Ok(c) => c,
            Err(e) => {
                // help and version exit 0; usage errors exit 1 (2 means "not granted").
                let code = if e.use_stderr() { 1 } else { 0 };
                let _ = e.print();
                std::process::exit(code);
            }
        },
    };
    let json = cli.global.json;
    let title = commands::title(&cli.command);
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if json {
                render::print_json(&render::error_json(&e));
            } else {
                let style = render::Style::for_stderr();
                eprint!("{}", render::tree(title, &[render::error_node(&e, style)]));
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
