use crate::ui::{self, Result};
use keyrack::ops::del::{self, DelOptions};

use super::Ctx;
use crate::cli::DelArgs;
use crate::render::{self, Node};

pub fn run(ctx: &Ctx, a: DelArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let r = del::run(
        &rack,
        &DelOptions {
            key: a.key,
            env: a.env,
            org: a.org,
            from_manifest: a.from_manifest,
        },
    )?;
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
    if let Some(p) = &r.manifest_kept {
        let flags = keyrack::ops::key_flags(r.slug.key(), r.slug.env(), r.slug.org(), &ctx.owner);
        n.push(
            Node::new(format!(
                "kept in: {} (the team's file still declares it; other hosts may need it)",
                p.display()
            ))
            .leaf(format!(
                "to remove it there too: keyrack del {flags} --from-manifest"
            )),
        );
    }
    render::out("del", &[n])?;
    Ok(0)
}
