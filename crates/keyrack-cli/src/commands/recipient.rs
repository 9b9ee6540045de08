use crate::ui::{self, Result};
use keyrack::aws::names::shown;
use keyrack::ops::recipient;

use super::Ctx;
use crate::cli::RecipientCommand;
use crate::render::{self, Node};

pub fn run(ctx: &Ctx, c: RecipientCommand) -> Result<i32> {
    let rack = ctx.rack()?;
    let (title, change) = match c {
        RecipientCommand::List => {
            let list = recipient::list(&rack)?;
            if ctx.json {
                ui::json(&serde_json::json!({ "recipients": list }))?;
            } else {
                let nodes: Vec<Node> = list
                    .iter()
                    .map(|r| {
                        Node::new(shown(&r.label))
                            .leaf(format!("kind: {}", r.kind))
                            .leaf(format!("pubkey: {}", r.pubkey))
                            .leaf(format!("added: {}", r.added_at))
                    })
                    .collect();
                render::out("recipient list", &nodes)?;
            }
            return Ok(0);
        }
        RecipientCommand::Add { pubkey, label } => {
            ("recipient add", recipient::add(&rack, &pubkey, &label)?)
        }
        RecipientCommand::Remove { label } => {
            ("recipient remove", recipient::remove(&rack, &label)?)
        }
    };
    if ctx.json {
        ui::json(&change)?;
    } else {
        let mut n = Node::new(shown(&change.recipient.label))
            .leaf(format!("kind: {}", change.recipient.kind));
        let mut re = Node::new(format!(
            "re-encrypted: host manifest + {} vault file(s) ✓",
            change.reencrypted_files
        ));
        for (vault, count) in change.reencrypted.iter().filter(|(_, c)| **c > 0) {
            re.push(Node::new(format!("{vault}: {count} file(s)")));
        }
        n.push(re);
        if !change.relocked.is_empty() {
            let mut r = Node::new(format!(
                "relocked: {} (the daemon kept their token copies current for the old set; unlocked again, they start from the re-encrypted copy)",
                change.relocked.join(", ")
            ));
            r.push(Node::new("fix: keyrack unlock"));
            n.push(r);
        }
        render::out(title, &[n])?;
    }
    Ok(0)
}
