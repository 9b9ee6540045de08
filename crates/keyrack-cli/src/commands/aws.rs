//! `keyrack aws credentials|logout` (sync, console, env: [`super::aws_verbs`]).

use crate::ui::{self, Result};
use keyrack::ops::aws;

use super::Ctx;
use crate::cli::AwsCommand;
use crate::render::{self, Node};

pub fn run(ctx: &Ctx, c: AwsCommand) -> Result<i32> {
    let rack = ctx.rack()?;
    match c {
        AwsCommand::Credentials { profile } => {
            let creds = aws::credentials(&rack, &profile)?;
            // credential_process reads exactly this JSON, with or without --json.
            ui::json(&creds)?;
            Ok(0)
        }
        AwsCommand::Sync(a) => super::aws_verbs::sync(ctx, &rack, a),
        AwsCommand::Console(a) => super::aws_verbs::console(ctx, &rack, a),
        AwsCommand::Env(a) => super::aws_verbs::env(ctx, &rack, a),
        AwsCommand::Logout { profile } => {
            let r = aws::logout(&rack, &profile)?;
            if ctx.json {
                ui::json(&r)?;
            } else {
                let mut n = Node::new(format!("sso session: {}", r.session));
                if r.signed_out {
                    n.push(Node::new("signed out server-side ✓"));
                    n.push(Node::new(
                        "token: removed from keyrack and from ~/.aws/sso/cache",
                    ));
                } else {
                    // the same words however many times it is run: nothing was left to remove
                    n.push(Node::new(
                        "already signed out: keyrack keeps no token for it (nothing to remove)",
                    ));
                }
                for s in &r.relocked {
                    n.push(Node::new(format!("relocked: {s}")));
                }
                render::out("aws logout", &[n])?;
            }
            Ok(0)
        }
    }
}
