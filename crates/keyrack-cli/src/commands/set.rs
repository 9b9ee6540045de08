use crate::ui::{self, Result};
use keyrack::mech::SecretSource;
use keyrack::ops::set::{self, SetOptions};
use keyrack::vault::VaultKind;

use super::Ctx;
use crate::cli::SetArgs;
use crate::render::{self, Node};

pub fn run(ctx: &Ctx, a: SetArgs) -> Result<i32> {
    let rack = ctx.rack()?;
    // On a terminal the secret is asked hidden, and an AWS profile is chosen with a guide.
    let interactive = ui::stdin_is_terminal();
    let mut opts = SetOptions {
        key: a.key,
        env: a.env,
        vault: a.vault,
        mech: a.mech,
        org: a.org,
        exid: a.exid,
        op_vault: a.op_vault,
        max_duration: a.max_duration,
        source: if interactive {
            SecretSource::Prompt
        } else {
            SecretSource::Stdin
        },
        login: super::login_options(&a.login),
        aws: keyrack::ops::aws::ProfileFlags {
            sso_start_url: a.aws.sso_start_url,
            sso_region: a.aws.sso_region,
            account_id: a.aws.account_id,
            role_name: a.aws.role_name,
            profile_name: a.aws.profile_name,
            region: a.aws.region,
            sso_session: a.aws.sso_session,
            account_name: None,
        },
        allow_dangerous: a.allow_dangerous,
        github: keyrack::github::app::AppFlags {
            app_id: a.github.app_id,
            installation_id: a.github.installation_id,
            private_key: a.github.private_key,
        },
        params: keyrack::vault::aws_params::ParamsFlags {
            kms_key_id: a.params.kms_key_id,
            via: a.params.via,
        },
    };
    if interactive
        && opts.vault.unwrap_or_else(|| set::default_vault(&opts.key)) == VaultKind::AwsConfig
    {
        let plan = set::plan(&rack, &opts)?;
        if plan.needs_profile {
            opts.aws = crate::aws_wizard::run(&rack, &plan, &opts.aws, opts.login)?;
        }
    }
    let r = set::run(&rack, &opts)?;
    if ctx.json {
        ui::json(&r)?;
        return Ok(0);
    }
    let mut n = Node::new(r.slug.to_string())
        .leaf(format!("vault: {}", r.vault))
        .leaf(format!("mech: {}", r.mech));
    if let Some(aws) = &r.aws {
        n.push(Node::new(format!("profile: {}", aws.profile)));
        if let Some(id) = &aws.account_id {
            n.push(Node::new(match &aws.account_name {
                Some(name) => format!("account: {name} ({id})"),
                None => format!("account: {id}"),
            }));
        }
        if let Some(role) = &aws.role_name {
            n.push(Node::new(format!("role: {role}")));
        }
        if let Some(session) = &aws.sso_session {
            n.push(Node::new(match &aws.sso_start_url {
                Some(url) if url != session => format!("sso-session: {session} ({url})"),
                _ => format!("sso-session: {session}"),
            }));
        }
    }
    n.push(Node::new("round trip: store → unlock → get → relock ✓"));
    if r.mech == keyrack::mech::Mech::GithubApp {
        n.push(Node::new(
            "grant: a GitHub App installation token minted at each unlock (it expires with the token, about 1h)",
        ));
    }
    if let Some(d) = &r.max_duration {
        n.push(Node::new(format!(
            "max duration: {}",
            keyrack::grant::time::format_duration(*d)
        )));
    }
    if let Some(b) = &r.blocked {
        n.push(Node::new(format!(
            "warning: {b}; stored because of --allow-dangerous, and get/source/exec still block it without that flag"
        )));
    }
    if let Some(p) = &r.manifest_updated {
        n.push(Node::new(format!("declared in: {}", p.display())));
    }
    if r.relocked_stale_grant {
        n.push(Node::new(format!(
            "relocked: the old value left the daemon; run keyrack unlock --env {} --key {}",
            r.slug.env(),
            r.slug.key()
        )));
    }
    if let Some(aws) = &r.aws {
        n.push(Node::new(format!(
            "use it: {} (while unlocked: keyrack unlock --env {})",
            aws.export,
            r.slug.env()
        )));
    }
    render::out("set", &[n])?;
    Ok(0)
}
