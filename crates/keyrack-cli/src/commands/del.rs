use crate::ui::{self, Result};
use keyrack::ops::del;

use super::Ctx;
use crate::cli::DelArgs;
use crate::render::{tree, Node};

pub fn run(ctx: &Ctx, a: DelArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let r = del::run(&rack, &a.key, a.env.as_deref(), a.org.as_deref())?;
    if ctx.json {
        ui::json(&r)?;
        return Ok(0);
    }
    let mut n = Node::new(r.slug.to_string());
    match r.vault {
        Some(v) if r.secret_destroyed => {
            n.push(Node::new(format!("vault: {v} (secret destroyed)")))
        }
        Some(v) => n.push(Node::new(format!("vault: {v} (pointer forgotten)"))),
        None => n.push(Node::new("host: was not set here")),
    }
    if r.grant_dropped {
        n.push(Node::new("daemon: grant dropped"));
    }
    if let Some(p) = &r.manifest_updated {
        n.push(Node::new(format!("removed from: {}", p.display())));
    }
    ui::out(tree("del", &[n]))?;
    Ok(0)
}
