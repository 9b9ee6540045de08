use crate::ui::{self, Result};
use keyrack::ops::list;

use super::Ctx;
use crate::cli::ListArgs;
use crate::render::{self, entry_rows, rows_json, Node, Style};

pub fn run(ctx: &Ctx, a: ListArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let rows = list::run(&rack, a.env.as_deref())?;
    if ctx.json {
        ui::json(&serde_json::json!({ "keys": rows_json(&rows, false) }))?;
        return Ok(0);
    }
    let style = Style::for_stdout();
    if rows.is_empty() {
        render::out(
            "list",
            &[Node::new("no keys set on this host")
                .leaf(style.fix("keyrack set --key <KEY> --env <env>"))],
        )?;
    } else {
        render::out("list", &entry_rows(&rows, style))?;
    }
    Ok(0)
}
