//! `keyrack aws sync|console|env`, and the AWS part of `keyrack exec --aws-profile`.

use keyrack::interact::Unanswered;
use keyrack::ops::aws_verbs::console::{self, ConsoleOptions};
use keyrack::ops::aws_verbs::env::{self as aws_env, AwsEnv};
use keyrack::ops::aws_verbs::sync::{self, ChangeKind, SyncOptions, SyncPlan};
use keyrack::ops::Rack;
use keyrack::secret::Secret;
use keyrack::Error;

use super::Ctx;
use crate::cli::{AwsConsoleArgs, AwsEnvArgs, AwsSyncArgs, Shell};
use crate::render::{self, Node};
use crate::ui::{self, Failure};

/// The plan as a tree: one node per change (its diff lines under it), then what was left alone.
fn plan_nodes(p: &SyncPlan) -> Vec<Node> {
    let mut nodes = vec![Node::new(format!(
        "sso-session {} ({}): {} account{}, {} role{} in all{}",
        p.sso_session,
        p.start_url,
        p.accounts,
        if p.accounts == 1 { "" } else { "s" },
        p.roles,
        if p.roles == 1 { "" } else { "s" },
        if p.signed_in { " (signed in now)" } else { "" }
    ))];
    for c in &p.changes {
        let what = match (&c.account_name, &c.account_id, &c.role_name) {
            (Some(n), Some(id), Some(r)) => format!(" — {n} ({id}), {r}"),
            (None, Some(id), Some(r)) => format!(" — {id}, {r}"),
            _ => String::new(),
        };
        let label = match c.kind {
            ChangeKind::Added => format!("added: {}{what}", c.profile),
            ChangeKind::Changed => format!("changed: {}{what}", c.profile),
            ChangeKind::Removed => format!(
                "removed: {} ({})",
                c.profile,
                c.reason.as_deref().unwrap_or("")
            ),
            ChangeKind::Stale => format!(
                "stale: {} ({}); kept — --prune removes it",
                c.profile,
                c.reason.as_deref().unwrap_or("")
            ),
        };
        let mut n = Node::new(label);
        for l in &c.diff {
            n.push(Node::new(l.clone()));
        }
        nodes.push(n);
    }
    for c in &p.conflicts {
        nodes.push(Node::new(format!(
            "not written: {} ({}, {}): {}; left as it is — choose other names with --template",
            c.profile, c.account_id, c.role_name, c.reason
        )));
    }
    for c in &p.collisions {
        nodes.push(Node::new(format!(
            "names collided: {} → {}",
            c.name,
            c.profiles.join(", ")
        )));
    }
    for s in &p.skipped {
        nodes.push(Node::new(format!("skipped: {}: {}", s.what, s.reason)));
    }
    if !p.unchanged.is_empty() {
        nodes.push(Node::new(format!(
            "{} generated profile{} already up to date",
            p.unchanged.len(),
            if p.unchanged.len() == 1 { "" } else { "s" }
        )));
    }
    nodes
}

fn count(p: &SyncPlan, kind: ChangeKind) -> usize {
    p.changes.iter().filter(|c| c.kind == kind).count()
}

fn summary(p: &SyncPlan) -> String {
    format!(
        "{} added, {} changed, {} removed",
        count(p, ChangeKind::Added),
        count(p, ChangeKind::Changed),
        count(p, ChangeKind::Removed)
    )
}

pub fn sync(ctx: &Ctx, rack: &Rack, a: AwsSyncArgs) -> ui::Result<i32> {
    let opts = SyncOptions {
        session: a.sso_session,
        template: Some(a.template),
        region: a.region,
        prune: a.prune,
    };
    let mut plan = sync::plan(rack, &opts, super::login_options(&a.login))?;
    let path = plan.config_file.clone();
    if !plan.has_changes() {
        if ctx.json {
            ui::json(&plan)?;
        } else {
            let mut nodes = plan_nodes(&plan);
            nodes.push(Node::new(format!("nothing to change in {path}")));
            render::out("aws sync", &nodes)?;
        }
        return Ok(0);
    }
    if a.yes {
        plan.apply()?;
        if ctx.json {
            ui::json(&plan)?;
        } else {
            let mut nodes = plan_nodes(&plan);
            nodes.push(Node::new(format!(
                "written to {path} ✓ ({})",
                summary(&plan)
            )));
            render::out("aws sync", &nodes)?;
        }
        return Ok(0);
    }
    let refusal = || {
        Error::NeedsTty {
        what: "confirming the changes of keyrack aws sync".into(),
        hint: format!(
            "review the changes, then write them with --yes: keyrack aws sync --sso-session {}{}{} --yes",
            plan.sso_session,
            if opts.prune { " --prune" } else { "" },
            if opts.template.as_deref() == Some(sync::DEFAULT_TEMPLATE) {
                String::new()
            } else {
                format!(" --template '{}'", opts.template.as_deref().unwrap_or_default())
            }
        ),
    }
    };
    if ctx.json {
        // One document: the plan (not applied) and why it was not written.
        let e = refusal();
        let mut doc = serde_json::to_value(&plan).map_err(|e| Failure::Output(e.into()))?;
        doc["error"] = render::error_json(&e)["error"].clone();
        ui::json(&doc)?;
        return Err(Failure::Shown(e));
    }
    let mut nodes = plan_nodes(&plan);
    nodes.push(Node::new(format!("not written yet: {}", summary(&plan))));
    render::out("aws sync", &nodes)?;
    let write = match rack
        .interact()
        .confirm(&format!("write these changes to {path}?"), false)
    {
        Ok(yes) => yes,
        Err(Unanswered::NoTerminal) => return Err(refusal().into()),
        Err(Unanswered::Cancelled) => {
            return Err(Error::Cancelled {
                what: "the confirmation of keyrack aws sync".into(),
            }
            .into())
        }
        Err(Unanswered::Failed(why)) => {
            return Err(Error::NeedsTty {
                what: "confirming the changes of keyrack aws sync".into(),
                hint: format!("the question failed ({why}); pass --yes to write them"),
            }
            .into())
        }
    };
    if write {
        plan.apply()?;
        render::out(
            "aws sync",
            &[Node::new(format!(
                "written to {path} ✓ ({})",
                summary(&plan)
            ))],
        )?;
    } else {
        render::out(
            "aws sync",
            &[Node::new(format!("nothing written: {path} is as it was"))],
        )?;
    }
    Ok(0)
}

pub fn console(ctx: &Ctx, rack: &Rack, a: AwsConsoleArgs) -> ui::Result<i32> {
    // Before a sign-in token is made for nothing.
    if !a.print && !rack.interact().can_open_url() {
        return Err(Error::Aws {
            source: None,
            message: "no browser can be opened here ($BROWSER is not set and there is no display)"
                .into(),
            hint: PRINT_INSTEAD.into(),
        }
        .into());
    }
    let link = console::console_link(
        rack,
        &ConsoleOptions {
            profile: a.profile,
            duration: a.duration,
        },
    )?;
    let mut about = Node::new(format!(
        "profile {}: account {}, role {}, region {} ({})",
        link.profile,
        link.account_id,
        link.role_name,
        link.region,
        link.partition.name()
    ));
    about.push(Node::new(format!(
        "console session until {}{}",
        link.session_ends_at,
        if link.session_duration.is_none() {
            " (as long as the role credentials)"
        } else {
            ""
        }
    )));
    for n in &link.notes {
        about.push(Node::new(n.clone()));
    }
    if a.print {
        // The URL is a credential: stdout only, because it was asked for.
        if ctx.json {
            let mut doc = serde_json::to_value(&link).map_err(|e| Failure::Output(e.into()))?;
            doc["url"] = link.url.expose().into();
            ui::json(&doc)?;
        } else {
            ui::out(format!("{}\n", link.url.expose()))?;
            render::err("aws console", &[about]);
        }
        return Ok(0);
    }
    open_in_browser(&link.url)?;
    if ctx.json {
        ui::json(&link)?;
    } else {
        about.push(Node::new(format!(
            "opened in your browser ✓ (lands on {})",
            link.destination
        )));
        render::out("aws console", &[about])?;
    }
    Ok(0)
}

const PRINT_INSTEAD: &str =
    "print the URL instead and open it yourself: keyrack aws console --profile <profile> --print";

/// Opens the sign-in URL with the opener the sign-in uses (`webbrowser`, which honours
/// `$BROWSER`), waiting until the browser is started (keyrack exits right after). No error
/// shows the URL.
fn open_in_browser(url: &Secret) -> keyrack::Result<()> {
    webbrowser::open(url.expose()).map_err(|e| Error::Aws {
        source: None,
        message: format!(
            "could not open a browser ({})",
            e.to_string().replace(url.expose(), "<the sign-in URL>")
        ),
        hint: PRINT_INSTEAD.into(),
    })
}

/// `export K='v'` (fish: `set -gx K 'v'`) lines, quoted as `keyrack source` quotes.
fn env_lines(shell: Shell, e: &AwsEnv) -> zeroize::Zeroizing<String> {
    let mut out = zeroize::Zeroizing::new(String::new());
    for v in &e.vars {
        let q = super::get::quote(shell, v.value.expose());
        match shell {
            Shell::Bash | Shell::Zsh => out.push_str(&format!("export {}={q}\n", v.name)),
            Shell::Fish => out.push_str(&format!("set -gx {} {q}\n", v.name)),
        }
    }
    out
}

pub fn env(ctx: &Ctx, rack: &Rack, a: AwsEnvArgs) -> ui::Result<i32> {
    let e = aws_env::aws_env(rack, &a.profile)?;
    if ctx.json {
        let vars: serde_json::Map<String, serde_json::Value> = e
            .vars
            .iter()
            .map(|v| (v.name.to_string(), v.value.expose().into()))
            .collect();
        ui::json(&serde_json::json!({
            "profile": e.profile,
            "expiresAt": e.expires_at,
            "region": e.region,
            "env": vars,
        }))?;
    } else {
        ui::out(env_lines(a.shell, &e).as_bytes())?;
    }
    Ok(0)
}

/// The role credentials `exec --aws-profile` hands its command (none without the flag).
pub fn exec_credentials(ctx: &Ctx, profile: Option<&str>) -> keyrack::Result<Option<AwsEnv>> {
    match profile {
        Some(p) => aws_env::aws_env(&ctx.rack()?, p).map(Some),
        None => Ok(None),
    }
}

/// The variables `exec --aws-profile` removes from its command's environment.
pub const EXEC_UNSET: [&str; 2] = aws_env::PROFILE_VARS;
