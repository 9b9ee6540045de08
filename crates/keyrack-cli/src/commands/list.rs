use crate::ui::{self, Result};
use keyrack::ops::list;

use super::Ctx;
use crate::cli::ListArgs;
use crate::render::{tree, Node};

pub fn run(ctx: &Ctx, a: ListArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let entries = list::run(&rack, a.env.as_deref())?;
    if ctx.json {
        ui::json(&serde_json::json!({ "keys": entries }))?;
        return Ok(0);
    }
    let nodes: Vec<Node> = entries
        .iter()
        .map(|e| {
            let mut n = Node::new(e.slug.to_string())
                .leaf(format!("vault: {}", e.vault))
                .leaf(format!("mech: {}", e.mech));
            if let Some(d) = &e.max_duration {
                n.push(Node::new(format!("max duration: {d}")));
            }
            n.leaf(format!("updated: {}", e.updated_at))
        })
        .collect();
    if nodes.is_empty() {
        ui::out(tree(
            "list",
            &[Node::new("no keys set on this host")
                .leaf("fix: keyrack set --key <KEY> --env <env>")],
        ))?;
    } else {
        ui::out(tree("list", &nodes))?;
    }
    Ok(0)
}
