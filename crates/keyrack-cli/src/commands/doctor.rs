//! `keyrack doctor [--json]`: one line per check, `ok` / `warn` / `fail`, with the fix.
//! Exit 0 when nothing failed, 2 when something did.

use keyrack::ops::doctor::{self, Level};

use super::Ctx;
use crate::cli::DoctorArgs;
use crate::render::{self, Node, Style};
use crate::ui;

fn label(check: &str) -> String {
    check.replace('_', " ")
}

pub fn run(ctx: &Ctx, _a: DoctorArgs) -> ui::Result<i32> {
    let rack = ctx.rack()?;
    let report = doctor::run(&rack);
    let code = if report.failed() { 2 } else { 0 };
    if ctx.json {
        ui::json(&report)?;
        return Ok(code);
    }
    let style = Style::for_stdout();
    let mut nodes: Vec<Node> = report
        .checks
        .iter()
        .map(|c| {
            let status = match c.status {
                Level::Ok => style.paint("32", "ok  "),
                Level::Warn => style.paint("33", "warn"),
                Level::Fail => style.paint("31", "fail"),
            };
            let mut n = Node::new(format!("{status} {}: {}", label(c.check), c.message));
            for d in &c.details {
                n.push(Node::new(d.clone()));
            }
            if let Some(f) = &c.fix {
                n.push(Node::new(format!("{} {f}", style.paint("33", "fix:"))));
            }
            n
        })
        .collect();
    let count = |l: Level| report.checks.iter().filter(|c| c.status == l).count();
    nodes.push(Node::new(format!(
        "{} ok, {} warn, {} fail",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail)
    )));
    render::out("doctor", &nodes)?;
    Ok(code)
}
