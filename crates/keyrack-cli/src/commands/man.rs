//! `keyrack man [--dir DIR]`: the manual pages, generated from the same clap definitions as
//! `--help` (clap_mangen): keyrack.1 and one page per visible (sub)command (keyrack-get.1,
//! keyrack-recipient-add.1, …). Without `--dir`, keyrack.1 goes to stdout (`keyrack man | man -l -`).

use std::path::PathBuf;

use clap::CommandFactory;

use super::Ctx;
use crate::cli::{Cli, ManArgs};
use crate::render::{self, Node};
use crate::ui;

fn page(cmd: clap::Command) -> std::io::Result<(String, Vec<u8>)> {
    let man = clap_mangen::Man::new(cmd)
        .manual("keyrack manual")
        .source(format!("keyrack {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    Ok((man.get_filename(), roff))
}

/// Every page: the command itself, then its visible subcommands, depth first.
fn pages(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    out.push(page(cmd.clone())?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        pages(sub, out)?;
    }
    Ok(())
}

fn top() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

pub fn run(ctx: &Ctx, a: ManArgs) -> ui::Result<i32> {
    let io = |e: std::io::Error| keyrack::Error::io("render", "the manual pages", e);
    let Some(dir) = a.dir else {
        let (name, roff) = page(top()).map_err(io)?;
        if ctx.json {
            ui::json(&serde_json::json!({
                "name": name,
                "roff": String::from_utf8_lossy(&roff),
            }))?;
        } else {
            ui::out(roff)?;
        }
        return Ok(0);
    };
    let mut all = Vec::new();
    pages(top(), &mut all).map_err(io)?;
    std::fs::create_dir_all(&dir).map_err(|e| keyrack::Error::io("create directory", &dir, e))?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, roff) in &all {
        let path = dir.join(name);
        keyrack::fsio::write_atomic(&path, roff, 0o644)?;
        written.push(path);
    }
    if ctx.json {
        ui::json(&serde_json::json!({ "dir": dir, "pages": written }))?;
        return Ok(0);
    }
    let mut n = Node::new(format!(
        "{} pages in {} (keyrack.1, keyrack-<command>.1, …)",
        written.len(),
        dir.display()
    ));
    n.push(Node::new(format!(
        "read one: man -l {}",
        dir.join("keyrack.1").display()
    )));
    render::out("man", &[n])?;
    Ok(0)
}
