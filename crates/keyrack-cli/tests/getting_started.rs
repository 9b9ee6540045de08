//! The first hour: the README's install and first commands, the quickstart script (with the AWS
//! SSO journey against the loopback fake), man pages, completions that know the repository and
//! the AWS config, and direnv (`eval "$(keyrack source …)"`, `source --unset`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keyrack_fake_aws::FakeAws;
use keyrack_testkit::{stderr, stdout, Sandbox};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn readme_opens_with_install_then_quickstart_and_tests() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let first_screen: String = readme.lines().take(30).collect::<Vec<_>>().join("\n");
    let install = first_screen
        .find("cargo install --locked --path crates/keyrack-cli")
        .expect("install from the checkout on the first screen");
    assert!(first_screen.contains("cargo install --locked keyrack-cli"));
    let quickstart = first_screen.find("./scripts/quickstart.sh").unwrap();
    let tests = first_screen.find("./scripts/test.sh").unwrap();
    assert!(
        install < quickstart && quickstart < tests,
        "install, then the two commands"
    );
    // and they are true: the crate builds a `keyrack` binary, the scripts exist and run
    let manifest = std::fs::read_to_string(root.join("crates/keyrack-cli/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"keyrack-cli\"") && manifest.contains("name = \"keyrack\""));
    // (the dependency is declared once, in the workspace's [workspace.dependencies])
    let workspace_manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("keyrack.workspace = true")
            && workspace_manifest.contains("keyrack = { path = \"crates/keyrack\", version = "),
        "the library dependency has a version, so the crate can be published"
    );
    use std::os::unix::fs::PermissionsExt;
    for s in ["scripts/quickstart.sh", "scripts/test.sh"] {
        let mode = std::fs::metadata(root.join(s))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{s} is executable");
    }
}

#[test]
fn quickstart_runs_green_with_the_aws_sso_journey() {
    let fake = FakeAws::start();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let o = Command::new(workspace().join("scripts/quickstart.sh"))
        .env("KEYRACK_BIN", env!("CARGO_BIN_EXE_keyrack"))
        .env("FAKE_AWS_URL", &fake.url)
        .env("TMPDIR", tmp.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(60), "fast");
    assert!(out.contains("$ keyrack unlock --env test"), "{out}");
    assert!(out.contains("child sees 15 chars"), "{out}");
    assert!(
        out.contains("(browser trips: 1 — the sign-in and consent, once)"),
        "{out}"
    );
    assert!(
        out.contains("(browser trips: 1 — unlock reused the encrypted SSO token: no browser)"),
        "{out}"
    );
    if has("aws") {
        assert!(
            out.contains("assumed-role/AdministratorAccess/alice@example.com"),
            "the AWS CLI used the profile: {out}"
        );
        assert!(
            out.contains("no SSO token, no access)"),
            "relock cut it: {out}"
        );
    } else {
        assert!(out.contains("no AWS CLI installed: skipped"), "{out}");
    }
    assert!(out.trim_end().ends_with("removed)"), "{out}");
    assert_eq!(fake.consents(), 1, "one browser trip, one consent");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the world is removed"
    );
}

#[test]
fn man_writes_one_page_per_command_and_prints_the_top_one() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let dir = s.root.join("man");
    let o = s.run(&["man", "--dir", dir.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("pages in"));
    for page in [
        "keyrack.1",
        "keyrack-get.1",
        "keyrack-init.1",
        "keyrack-recipient-add.1",
        "keyrack-daemon-status.1",
        "keyrack-doctor.1",
        "keyrack-fill.1",
        "keyrack-import.1",
        "keyrack-man.1",
    ] {
        let roff =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        let name = page.trim_end_matches(".1");
        assert!(
            roff.contains(&format!(".TH {name} 1 ")) && roff.contains("\"keyrack manual\""),
            "{page} has a roff title header"
        );
        assert!(roff.contains(".SH NAME"), "{page}");
        assert!(roff.contains(".SH SYNOPSIS"), "{page}");
    }
    assert!(
        !dir.join("keyrack-daemon-run.1").exists(),
        "hidden commands have none"
    );
    assert!(!dir.join("keyrack-help.1").exists());
    let (code, v) = s.json(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(v["pages"].as_array().unwrap().len(), files, "{v}");
    assert!(files >= 26, "{files}");

    // rendered as a reader sees it
    let get = dir.join("keyrack-get.1");
    let rendered = if has("man") {
        Command::new("man")
            .arg("-l")
            .arg(&get)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .ok()
    } else if has("groff") {
        Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&get)
            .output()
            .ok()
    } else {
        None
    };
    if let Some(r) = rendered {
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(
            text.contains("NAME") && text.contains("keyrack-get"),
            "{text}"
        );
        assert!(text.contains("--value"), "{text}");
    }

    // no --dir: keyrack(1) on stdout
    let o = s.run(&["man"], "");
    assert!(o.status.success());
    let top = stdout(&o);
    assert!(top.contains(".TH keyrack 1 "), "{top}");
    assert!(top.contains("doctor"), "subcommands are listed");
}

/// A sandbox whose keyrack.yml and AWS config give completions something to say.
fn completion_world() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(
        "org: acme\nenv.test: [XAI_API_KEY, DB_URL]\nenv.staging: [DB_URL]\nenv.all: [SHARED]\n",
    );
    let aws = s.home.join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        "[profile acme.test]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = Admin\n\
         [sso-session acme]\nsso_start_url = https://d-1.awsapps.com/start\nsso_region = us-east-1\n\
         [profile plain]\nregion = eu-west-1\n",
    )
    .unwrap();
    s
}

/// Completes `line` (the word under the cursor is the last, possibly empty) in real bash with the
/// script `keyrack completions bash` prints; returns COMPREPLY.
fn bash_complete(s: &Sandbox, words: &[&str]) -> Vec<String> {
    let script = s.run(&["completions", "bash"], "");
    assert!(script.status.success());
    let reg = s.root.join("keyrack.bash");
    std::fs::write(&reg, &script.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prog = format!(
        "source {reg}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         _clap_complete_keyrack keyrack \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$((COMP_CWORD-1))]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        reg = reg.display(),
        words = quoted.join(" "),
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(prog)
        .env_clear()
        .envs(s.vars())
        .current_dir(&s.repo)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_envs_keys_and_aws_profiles() {
    let s = completion_world();
    let envs = bash_complete(&s, &["keyrack", "get", "--env", ""]);
    assert_eq!(envs, ["staging", "test", "all"], "envs of keyrack.yml");
    let keys = bash_complete(&s, &["keyrack", "unlock", "--key", ""]);
    assert_eq!(
        keys,
        ["DB_URL", "SHARED", "XAI_API_KEY"],
        "keys of keyrack.yml"
    );
    let some = bash_complete(&s, &["keyrack", "set", "--key", "XA"]);
    assert_eq!(some, ["XAI_API_KEY"], "filtered by the typed prefix");
    let positional = bash_complete(&s, &["keyrack", "get", "DB"]);
    assert_eq!(positional, ["DB_URL"], "get KEY");
    let profiles = bash_complete(&s, &["keyrack", "aws", "credentials", "--profile", ""]);
    assert_eq!(
        profiles,
        ["acme.test", "plain"],
        "profiles of ~/.aws/config"
    );
    let exid = bash_complete(
        &s,
        &["keyrack", "set", "--key", "AWS_PROFILE", "--exid", "ac"],
    );
    assert_eq!(exid, ["acme.test"]);
    let subs = bash_complete(&s, &["keyrack", "do"]);
    assert_eq!(subs, ["doctor"], "commands too");
    let flags = bash_complete(&s, &["keyrack", "source", "--uns"]);
    assert_eq!(flags, ["--unset"], "and flags");

    // $AWS_CONFIG_FILE is honoured
    let cfg = s.root.join("other-config");
    std::fs::write(&cfg, "[profile from-env]\nregion = x\n").unwrap();
    let mut s = s;
    s.env("AWS_CONFIG_FILE", cfg.to_str().unwrap());
    let profiles = bash_complete(&s, &["keyrack", "aws", "logout", "--profile", ""]);
    assert_eq!(profiles, ["from-env"]);
}

#[test]
fn fish_and_zsh_complete_envs_keys_and_profiles() {
    let s = completion_world();
    // zsh is driven through the same protocol its script uses (zsh itself may not be installed)
    let o = s
        .cmd()
        .env("COMPLETE", "zsh")
        .env("_CLAP_COMPLETE_INDEX", "3")
        .env("_CLAP_IFS", "\n")
        .args(["--", "keyrack", "exec", "--env", ""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let zsh: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(
        zsh,
        [
            "staging:2 key(s)",
            "test:3 key(s)",
            "all:keys every env needs"
        ],
        "zsh gets value:description"
    );
    let o = s.run(&["completions", "zsh"], "");
    assert!(
        stdout(&o).starts_with("#compdef keyrack\n"),
        "{}",
        stdout(&o)
    );

    if !has("fish") {
        eprintln!("skipped the fish half: fish is not installed (scripts/test.sh installs it)");
        return;
    }
    let script = s.run(&["completions", "fish"], "");
    let reg = s.root.join("keyrack.fish");
    std::fs::write(&reg, &script.stdout).unwrap();
    let fish = |line: &str| -> Vec<String> {
        let o = Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source {}; complete -C '{line}'", reg.display()))
            .env_clear()
            .envs(s.vars())
            .current_dir(&s.repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().map(str::to_string).collect()
    };
    let envs = fish("keyrack source --env ");
    assert!(envs.contains(&"test\t3 key(s)".to_string()), "{envs:?}");
    assert!(envs.contains(&"staging\t2 key(s)".to_string()), "{envs:?}");
    let keys = fish("keyrack get --key ");
    assert!(keys.contains(&"XAI_API_KEY\ttest".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"DB_URL\tstaging, test".to_string()),
        "{keys:?}"
    );
    let profiles = fish("keyrack aws credentials --profile ");
    assert!(
        profiles.contains(&"acme.test\tSSO 123456789012 Admin".to_string()),
        "{profiles:?}"
    );
}

/// A repo with two keys set and unlocked for env test.
fn direnv_world() -> Sandbox {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: [API_KEY, QUOTED]\nenv.prod: [PROD_ONLY]\n");
    s.init();
    s.set("API_KEY", "test", "api-value");
    s.set("QUOTED", "test", "it's \"quoted\" $HOME `x`");
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    s
}

/// Runs `script` in `sh` with the sandbox environment and `keyrack` on PATH.
fn shell(s: &Sandbox, sh: &str, script: &str) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_keyrack")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(sh)
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(s.vars())
        .env("PATH", path)
        .env("UNRELATED", "stays")
        .current_dir(&s.repo)
        .output()
        .unwrap()
}

#[test]
fn envrc_eval_of_source_is_silent_and_source_unset_undoes_it_in_bash() {
    let s = direnv_world();
    std::fs::write(
        s.repo.join(".envrc"),
        "eval \"$(keyrack source --env test)\"\n",
    )
    .unwrap();
    let o = shell(
        &s,
        "bash",
        "set -u\nsource .envrc\nprintf '%s|%s\\n' \"$API_KEY\" \"$QUOTED\"\n\
         eval \"$(keyrack source --env test --unset)\"\n\
         printf '%s|%s|%s\\n' \"${API_KEY-unset}\" \"${QUOTED-unset}\" \"$UNRELATED\"\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "api-value|it's \"quoted\" $HOME `x`\nunset|unset|stays\n"
    );
    assert_eq!(stderr(&o), "", "silent on success");

    let o = s.run(&["source", "--env", "test", "--unset"], "");
    assert_eq!(stdout(&o), "unset API_KEY QUOTED\n");
    let o = s.run(
        &["source", "--env", "test", "--unset", "--key", "API_KEY"],
        "",
    );
    assert_eq!(
        stdout(&o),
        "unset API_KEY\n",
        "exactly the keys source would export"
    );
    let o = s.run(
        &["source", "--env", "prod", "--unset", "--shell", "fish"],
        "",
    );
    assert_eq!(stdout(&o), "set -e PROD_ONLY\n");
    let (code, v) = s.json(&["source", "--env", "test", "--unset"]);
    assert_eq!(code, 0);
    assert_eq!(v["keys"], serde_json::json!(["API_KEY", "QUOTED"]));
    // it needs no unlock and no daemon
    s.cmd().args(["daemon", "prune"]).assert().success();
    let o = s.run(&["source", "--env", "test", "--unset"], "");
    assert_eq!(stdout(&o), "unset API_KEY QUOTED\n");
}

#[test]
fn envrc_when_locked_says_one_line_on_stderr_and_exits_non_zero() {
    let s = direnv_world();
    s.cmd().args(["relock"]).assert().success();
    let started = Instant::now();
    let o = s.run(&["source", "--env", "test"], "");
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "", "nothing to eval");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert_eq!(
        err,
        "keyrack source: nothing exported: acme.test.API_KEY locked, acme.test.QUOTED locked; fix: keyrack unlock --env test\n"
    );
    assert!(took < Duration::from_secs(2), "fast: {took:?}");

    // as direnv runs it: the assignment form stops the .envrc with keyrack's exit code
    let o = shell(
        &s,
        "bash",
        "set -e\nexports=$(keyrack source --env test)\neval \"$exports\"\necho not reached\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o).lines().count(), 1);

    // unlocked again: silent
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    let o = s.run(&["source", "--env", "test"], "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
}

#[test]
fn fish_eval_of_source_then_unset_leaves_nothing_behind() {
    if !has("fish") {
        eprintln!("skipped: fish is not installed (scripts/test.sh installs it)");
        return;
    }
    let s = direnv_world();
    let o = shell(
        &s,
        "fish",
        "keyrack source --env test --shell fish | source\n\
         printf '%s|%s\\n' $API_KEY $QUOTED\n\
         keyrack source --env test --unset --shell fish | source\n\
         set -q API_KEY; or echo API_KEY unset\n\
         set -q QUOTED; or echo QUOTED unset\n\
         echo $UNRELATED\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "api-value|it's \"quoted\" $HOME `x`\nAPI_KEY unset\nQUOTED unset\nstays\n"
    );
    assert_eq!(stderr(&o), "");
}
