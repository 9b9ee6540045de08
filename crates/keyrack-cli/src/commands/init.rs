use crate::ui::{self, Result};
use keyrack::ops::init::{self, InitOptions};

use super::Ctx;
use crate::cli::InitArgs;
use crate::render::{self, Node};

pub fn run(ctx: &Ctx, a: InitArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let r = init::run(
        &rack,
        &InitOptions {
            org: a.org,
            envs: a.envs,
            label: a.label,
        },
    )?;
    if ctx.json {
        ui::json(&r)?;
        return Ok(0);
    }
    let mut host =
        Node::new(format!("host manifest: {}", r.host_manifest.display())).leaf(if r.created {
            "status: created ✓"
        } else {
            "status: exists ✓ (decrypts with your identity)"
        });
    if r.identity_generated {
        host.push(Node::new(format!(
            "identity: {} (generated)",
            r.identity.display()
        )));
    } else {
        host.push(Node::new(format!("identity: {}", r.identity.display())));
    }
    host.push(Node::new(format!("recipient: {}", r.recipient)));
    let mut nodes = vec![host];
    if let Some(p) = &r.repo_manifest {
        nodes.push(Node::new(format!(
            "repo manifest: {}{}",
            p.display(),
            if r.repo_manifest_created {
                " (created)"
            } else {
                ""
            }
        )));
    }
    render::out("init", &nodes)?;
    Ok(0)
}
