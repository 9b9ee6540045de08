//! `keyrack init --recover`: rebuild a lost host manifest and say what could not be rebuilt.

use keyrack::ops::recover::{self, RecoverOptions};

use super::Ctx;
use crate::cli::InitArgs;
use crate::render::{self, Node, Style};
use crate::ui;

pub fn run(ctx: &Ctx, a: InitArgs) -> ui::Result<i32> {
    let rack = ctx.rack()?;
    let r = recover::run(&rack, &RecoverOptions { label: a.label })?;
    let code = if r.unrecovered.is_empty() { 0 } else { 2 };
    if ctx.json {
        ui::json(&r)?;
        return Ok(code);
    }
    let style = Style::for_stdout();
    let mut host =
        Node::new(format!("host manifest: {}", r.host_manifest.display())).leaf(if r.created {
            "status: rebuilt ✓".to_string()
        } else {
            format!(
                "status: existed ({} entries kept); recovered entries added ✓",
                r.kept
            )
        });
    host.push(Node::new(format!(
        "identity: {}{}",
        r.identity.display(),
        if r.identity_generated {
            " (generated)"
        } else {
            ""
        }
    )));
    let mut recipient = Node::new(format!("recipient: {}", r.recipient));
    if r.other_recipients > 0 {
        recipient.push(Node::new(format!(
            "note: the vault files were also encrypted to {} other recipient(s); their public keys are not in the files",
            r.other_recipients
        )));
        recipient.push(Node::new(format!(
            "{} keyrack recipient add --pubkey <their public key> --label <name>",
            style.paint("33", "fix:")
        )));
    }
    host.push(recipient);
    let mut nodes = vec![host];
    let mut recovered = Node::new(format!("recovered: {}", r.recovered.len()));
    for x in &r.recovered {
        recovered.push(Node::new(format!(
            "{} ({}, from {})",
            x.slug, x.vault, x.from
        )));
    }
    nodes.push(recovered);
    if !r.unrecovered.is_empty() {
        let mut lost = Node::new(format!(
            "{}: {}",
            style.paint("31", "not recovered"),
            r.unrecovered.len()
        ));
        for u in &r.unrecovered {
            lost.push(
                Node::new(u.what.clone())
                    .leaf(format!("reason: {}", u.reason))
                    .leaf(format!("{} {}", style.paint("33", "fix:"), u.fix)),
            );
        }
        nodes.push(lost);
    }
    if !r.recovered.is_empty() {
        nodes.push(Node::new(
            "next: keyrack unlock   (the recovered keys read back from their vault files)",
        ));
    }
    render::out("init --recover", &nodes)?;
    Ok(code)
}
