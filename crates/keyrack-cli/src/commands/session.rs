//! `unlock`, `relock`, `status`, `daemon`.

use crate::ui::{self, Failure, Result};
use keyrack::daemon::client::Client;
use keyrack::daemon::server::{Bound, Server};
use keyrack::ops::row::require_satisfied;
use keyrack::ops::unlock::{self, UnlockOptions};

use super::Ctx;
use crate::cli::{DaemonCommand, RelockArgs, StatusArgs, UnlockArgs};
use crate::render::{self, key_rows, rows_json, time_json, Node, Style};

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let opts = UnlockOptions {
        env: a.env,
        keys: a.keys,
        duration: a.duration,
        login: super::login_options(&a.login),
    };
    let report = unlock::unlock(&rack, &opts)?;
    let rows = &report.rows;
    if ctx.json {
        ui::json(&serde_json::json!({
            "keys": rows_json(rows, false),
            "skipped": report.skipped,
        }))?;
    } else {
        let style = Style::for_stdout();
        let mut nodes = key_rows(rows, style, false);
        for s in &report.skipped {
            nodes.push(Node::new(format!("skipped: {} (pass {})", s.env, s.flags)));
        }
        if rows.is_empty() && report.skipped.is_empty() {
            nodes.push(Node::new("nothing in scope").leaf(style.fix(
                "declare keys in keyrack.yml and set them: keyrack set --key <KEY> --env <env>",
            )));
        }
        render::out("unlock", &nodes)?;
    }
    require_satisfied(rows).map_err(Failure::Shown)?;
    Ok(0)
}

pub fn relock(ctx: &Ctx, a: RelockArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let rows = unlock::relock(&rack, a.env.as_deref(), &a.keys)?;
    if ctx.json {
        ui::json(&serde_json::json!({ "keys": rows_json(&rows, false) }))?;
        return Ok(0);
    }
    let nodes: Vec<Node> = if rows.is_empty() {
        vec![Node::new("nothing was unlocked")]
    } else {
        key_rows(&rows, Style::for_stdout(), false)
    };
    render::out("relock", &nodes)?;
    Ok(0)
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    let unlock::SessionStatus {
        daemon,
        rows,
        ended,
        released,
        expiring_clients,
    } = unlock::status(&rack, a.env.as_deref())?;
    let now = jiff::Timestamp::now();
    let owner = rack.home().owner();
    // grants that ended by themselves (expired, or ended by their vault), and why
    let ended_rows: Vec<_> = ended
        .iter()
        .filter_map(|e| unlock::ended_row(e, owner))
        .collect();
    if ctx.json {
        let socket = Client::new(rack.home()).socket_path().to_path_buf();
        ui::json(&serde_json::json!({
            "daemon": daemon.as_ref().map(|d| serde_json::json!({
                "pid": d.pid,
                "startedAt": time_json(d.started_at),
                "socket": socket,
            })),
            "keys": rows_json(&rows, false),
            // grants that ended lately: when, why, and (unless relocked) the unlock that fixes it
            "ended": ended.iter().map(|e| {
                let row = ended_rows.iter().find(|r| r.ended.as_ref() == Some(e));
                serde_json::json!({
                    "slug": e.slug,
                    "vault": e.vault,
                    "at": time_json(e.at),
                    "why": e.why,
                    "reason": row.and_then(|r| r.reason.clone()),
                    "fix": row.and_then(|r| r.fix.clone()),
                })
            }).collect::<Vec<_>>(),
            "released": released,
            "warnings": expiring_clients.iter().map(|c| serde_json::json!({
                "kind": "sign_in_client_expiring",
                "message": c.warning(now),
                "startUrl": c.start_url,
                "expiresAt": time_json(c.expires_at),
            })).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    let style = Style::for_stdout();
    let mut nodes = Vec::new();
    if !released.is_empty() {
        let n = released.len();
        let mut node = Node::new(format!(
            "removed {n} file{} left by a daemon that stopped without releasing {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        ));
        for f in &released {
            node.push(Node::new(tilde(f)));
        }
        nodes.push(node);
    }
    let fix = style.fix("keyrack unlock");
    if daemon.is_none() {
        nodes.push(Node::new("daemon: not running (nothing unlocked)").leaf(fix));
    } else if rows.is_empty() && ended_rows.is_empty() {
        nodes.push(Node::new("nothing unlocked").leaf(fix));
    }
    nodes.extend(key_rows(&rows, style, false));
    // what ended by itself says why, with the unlock that fixes it
    nodes.extend(key_rows(&ended_rows, style, false));
    for c in &expiring_clients {
        nodes.push(Node::new(format!(
            "{} {}",
            style.paint("33", "warn:"),
            c.warning(now)
        )));
    }
    render::out("status", &nodes)?;
    Ok(0)
}

/// `~/…` for paths under `$HOME`.
fn tilde(p: &std::path::Path) -> String {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => match p.strip_prefix(&h) {
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => p.display().to_string(),
        },
        None => p.display().to_string(),
    }
}

pub fn daemon(ctx: &Ctx, c: DaemonCommand) -> Result<i32> {
    if matches!(c, DaemonCommand::Run) {
        // nothing the starter had open stays open in the daemon
        keyrack::daemon::platform::close_inherited_fds();
    }
    let rack = ctx.rack()?;
    let client = Client::new(rack.home());
    match c {
        DaemonCommand::Run => match Server::bind(rack.home())? {
            Bound::AlreadyRunning => Ok(0),
            Bound::Ready(server) => {
                // Ready: the starter reads our stdout until it closes; errors are reported
                // through it until now, and nothing is printed from here on.
                keyrack::daemon::platform::detach_stdio()
                    .map_err(|e| keyrack::Error::io("redirect", "/dev/null", e))?;
                server.serve(keyrack::vault::VaultRenewer::new(rack.home().clone()))?;
                Ok(0)
            }
        },
        DaemonCommand::Status => {
            let st = client.status()?;
            if ctx.json {
                ui::json(&serde_json::json!({
                    "running": st.is_some(),
                    "socket": client.socket_path(),
                    "pid": st.as_ref().map(|s| s.pid),
                    "grants": st.as_ref().map(|s| s.grants.len()).unwrap_or(0),
                }))?;
                return Ok(0);
            }
            let n = match &st {
                Some(s) => Node::new(format!("running: pid {}", s.pid))
                    .leaf(format!("socket: {}", client.socket_path().display()))
                    .leaf(format!("grants: {}", s.grants.len())),
                None => Node::new("not running")
                    .leaf(format!("socket: {}", client.socket_path().display()))
                    .leaf("note: keyrack unlock starts it"),
            };
            render::out("daemon status", &[n])?;
            Ok(0)
        }
        DaemonCommand::Prune => {
            let stopped = client.shutdown()?;
            if ctx.json {
                ui::json(&serde_json::json!({ "stopped": stopped }))?;
            } else {
                let n = Node::new(if stopped {
                    "stopped: every grant forgotten"
                } else {
                    "not running"
                });
                render::out("daemon prune", &[n])?;
            }
            Ok(0)
        }
    }
}
