//! The `keyrack` binary: parses arguments, calls the library, renders the result.

// Every byte of output goes through `ui`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod aws_wizard;
mod cli;
mod commands;
mod interact;
mod process;
mod render;
mod ui;

use clap::Parser;

fn main() {
    // Before anything can touch a secret: no core file of this process, ever.
    process::harden();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // help and version exit 0; usage errors exit 1 (2 means "not granted").
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let json = cli.global.json;
    let title = commands::title(&cli.command);
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(failure) => {
            let e = match failure {
                ui::Failure::Keyrack(e) => e,
                ui::Failure::Output(source) => {
                    keyrack::Error::io("write", "standard output", source)
                }
            };
            if json {
                let _ = ui::json(&render::error_json(&e));
            } else {
                let style = render::Style::for_stderr();
                ui::err(render::tree(title, &[render::error_node(&e, style)]));
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
