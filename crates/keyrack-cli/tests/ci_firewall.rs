//! The CI path (`keyrack firewall`) through the real binary, on a "bare runner": no keyrack
//! home, no HOME, no identity, no daemon — only keyrack.yml, the secrets and `$GITHUB_ENV`.
//! `$GITHUB_ENV` is read back with the runner's own parsing rules ([`runner_parse`]), so every
//! value must round-trip exactly as the next step of a workflow would see it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyrack_fake_github::FakeGitHub;
use keyrack_testkit::{stderr, stdout, Sandbox};

/// The runner's parser of `$GITHUB_ENV` (actions/runner, `FileCommandManager`, on Linux):
/// lines split on `\n`; empty lines skipped; `NAME=VALUE` when `=` comes before any `<<`;
/// `NAME<<DELIMITER` otherwise, the value being every byte up to the newline before the first
/// line equal to DELIMITER; a non-delimiter last line without a newline is an error. Later
/// records win.
fn runner_parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    fn read_line<'a>(text: &'a str, index: &mut usize) -> Option<(&'a str, bool)> {
        if *index >= text.len() {
            return None;
        }
        let start = *index;
        match text[start..].find('\n') {
            None => {
                *index = text.len();
                Some((&text[start..], false))
            }
            Some(i) => {
                *index = start + i + 1;
                Some((&text[start..start + i], true))
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut index = 0;
    while let Some((line, _)) = read_line(text, &mut index) {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        if let Some(e) = eq.filter(|e| heredoc.is_none_or(|h| *e < h)) {
            if e == 0 {
                return Err(format!("Invalid format '{line}'. Name must not be empty"));
            }
            out.insert(line[..e].to_string(), line[e + 1..].to_string());
        } else if let Some(h) = heredoc.filter(|h| eq.is_none_or(|e| *h < e)) {
            let (name, delimiter) = (&line[..h], &line[h + 2..]);
            if name.is_empty() || delimiter.is_empty() {
                return Err(format!("Invalid format '{line}'"));
            }
            let start = index;
            let mut end = index;
            loop {
                let (l, newline) = read_line(text, &mut index)
                    .ok_or_else(|| format!("Matching delimiter not found '{delimiter}'"))?;
                if l == delimiter {
                    break;
                }
                if !newline {
                    return Err("Invalid value. EOF marker missing new line.".into());
                }
                end = index - 1;
            }
            out.insert(name.to_string(), text[start..end.max(start)].to_string());
        } else {
            return Err(format!("Invalid format '{line}'"));
        }
    }
    Ok(out)
}

#[test]
fn the_runner_parser_is_the_runners() {
    let text = "A=1\n\nB<<EOF\nx\ny\nEOF\nC<<E\n\nE\nD=a<<b\nE<<X\n\n\nX";
    let env = runner_parse(text).unwrap();
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "x\ny");
    assert_eq!(env["C"], "");
    assert_eq!(env["D"], "a<<b");
    assert_eq!(env["E"], "\n");
    assert!(runner_parse("A<<EOF\nx").is_err());
    assert!(runner_parse("=x").is_err());
    assert!(runner_parse("junk").is_err());
}

/// A repository and a runner's files, and a `keyrack` to run there with nothing else.
struct Runner {
    s: Sandbox,
    github_env: PathBuf,
}

fn runner(manifest: &str) -> Runner {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest(manifest);
    let github_env = s.root.join("runner/_runner_file_commands/set_env_0123");
    std::fs::create_dir_all(github_env.parent().unwrap()).unwrap();
    std::fs::write(&github_env, "").unwrap();
    Runner { s, github_env }
}

impl Runner {
    /// `keyrack` as a bare runner starts it: PATH, the step's env, nothing of keyrack's.
    fn cmd(&self, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(self.s.bin());
        c.env_clear()
            .current_dir(&self.s.repo)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("GITHUB_ENV", &self.github_env);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn firewall(&self, secrets: &serde_json::Value, extra_env: &[(&str, &str)]) -> Output {
        let json = secrets.to_string();
        let mut env = vec![("SECRETS", json.as_str())];
        env.extend_from_slice(extra_env);
        self.cmd(&env)
            .args([
                "firewall",
                "--env",
                "test",
                "--from",
                "json(env://SECRETS)",
                "--into",
                "github.actions",
            ])
            .output()
            .unwrap()
    }

    fn env_file(&self) -> String {
        std::fs::read_to_string(&self.github_env).unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Values of every kind a secret can hold, hostile ones included.
fn hostile_values() -> Vec<(&'static str, String)> {
    vec![
        ("MULTI", "line one\nline two\n  indented\n".into()),
        (
            "DELIM_LIKE",
            "ghadelimiter_00000000000000000000000000000000\nghadelimiter_\nEOF\n<<EOF\nghadelimiter_".into(),
        ),
        ("EQUALS", "a=b=c<<d".into()),
        ("HEREDOC", "X<<EOF\ninner\nEOF".into()),
        ("UNICODE", "ключ 🔑 キー\u{200B}é".into()),
        ("EMPTY", String::new()),
        ("CRLF", "first\r\nsecond\r\n".into()),
        ("NEWLINE_ONLY", "\n".into()),
        ("PERCENT", "100%0A%25 ::add-mask::x".into()),
        ("SPACES", "  padded  ".into()),
        ("SHARED", "from env.all".into()),
        ("EXTRA", "from extends".into()),
    ]
}

const MANIFEST: &str = "org: acme\nextends: [base/keyrack.yml]\nenv.test:\n  - MULTI\n  - DELIM_LIKE\n  - EQUALS\n  - HEREDOC\n  - UNICODE\n  - EMPTY\n  - CRLF\n  - NEWLINE_ONLY\n  - PERCENT\n  - SPACES\n  - NOT_PASSED\nenv.prod: [PROD_ONLY]\nenv.all: [SHARED]\n";

#[test]
fn every_declared_value_round_trips_through_the_runners_parser_and_nothing_else_is_written() {
    let r = runner(MANIFEST);
    std::fs::create_dir_all(r.s.repo.join("base")).unwrap();
    std::fs::write(
        r.s.repo.join("base/keyrack.yml"),
        "org: base\nenv.test: [EXTRA]\n",
    )
    .unwrap();
    // an earlier step's record without its final newline
    std::fs::write(&r.github_env, "EARLIER=kept").unwrap();
    let mut secrets = serde_json::Map::new();
    for (k, v) in hostile_values() {
        secrets.insert(k.into(), v.into());
    }
    secrets.insert("PROD_ONLY".into(), "prod secret".into());
    secrets.insert("UNDECLARED".into(), "never passed".into());
    secrets.insert(
        "github_token".into(),
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a".into(),
    );
    let o = r.firewall(&serde_json::Value::Object(secrets), &[]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "{out}{err}");

    let env = runner_parse(&r.env_file()).unwrap_or_else(|e| panic!("{e}: {:?}", r.env_file()));
    let mut expected: BTreeMap<String, String> = hostile_values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    expected.insert("EARLIER".into(), "kept".into());
    assert_eq!(env, expected, "exactly the declared keys, byte for byte");

    // stdout is only masks, one per non-blank line of every value (escaped as the runner reads)
    let masks: Vec<&str> = out.lines().collect();
    assert!(masks.iter().all(|l| l.starts_with("::add-mask::")), "{out}");
    for (k, v) in hostile_values() {
        for line in v.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
            let escaped = line.replace('%', "%25");
            assert!(
                masks.contains(&format!("::add-mask::{escaped}").as_str()),
                "{k}: line {line:?} is masked: {out}"
            );
        }
    }
    assert!(!out.contains("never passed") && !out.contains("prod secret"));
    // the summary (stderr): absent keys listed, undeclared secrets ignored, values never shown
    assert!(
        err.contains("acme.test.NOT_PASSED") && err.contains("absent"),
        "{err}"
    );
    assert!(
        err.contains("ignored: 3 secrets") && err.contains("UNDECLARED"),
        "{err}"
    );
    assert!(
        !err.contains("never passed") && !err.contains("line one"),
        "{err}"
    );
    // a bare runner: nothing of keyrack's was created anywhere
    assert!(!r.s.keyrack_home.exists() && !r.s.home.join(".keyrack").exists());
    assert!(
        std::fs::read_dir(&r.s.runtime).unwrap().next().is_none(),
        "no daemon"
    );
}

#[test]
fn a_blocked_value_fails_the_step_and_writes_nothing() {
    let r = runner("org: acme\nenv.test: [OK, PAT]\n");
    let before = "PREVIOUS=1\nOTHER<<ghadelimiter_x\nv\nghadelimiter_x\n";
    std::fs::write(&r.github_env, before).unwrap();
    let secrets = serde_json::json!({
        "OK": "fine",
        "PAT": "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
    });
    let o = r.firewall(&secrets, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(r.env_file(), before, "the file is untouched");
    assert_eq!(stdout(&o), "", "no masks, nothing for the runner");
    let err = stderr(&o);
    assert!(
        err.contains("acme.test.PAT") && err.contains("blocked"),
        "{err}"
    );
    assert!(
        err.contains("ghp_") && err.contains("fix: replace the secret PAT"),
        "{err}"
    );
    assert!(err.contains("nothing written"), "{err}");
    assert!(
        !err.contains("0123456789abcdef"),
        "the value is never shown: {err}"
    );

    // the same through --into json: nothing on stdout, exit 2
    let o = r
        .cmd(&[("SECRETS", &secrets.to_string())])
        .args([
            "firewall",
            "--env",
            "test",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!((code(&o), stdout(&o).as_str()), (2, ""));
    // and with --allow-dangerous it passes
    let o = r
        .cmd(&[("SECRETS", &secrets.to_string())])
        .args([
            "firewall",
            "--env",
            "test",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "json",
            "--allow-dangerous",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, secrets);
}

#[test]
fn into_json_prints_the_declared_keys_and_reads_stdin() {
    let r = runner("org: acme\nenv.test: [A, B]\nenv.all: [C]\n");
    let secrets = r#"{"A": "a\nb", "C": "c", "D": "undeclared"}"#;
    let mut child = r
        .cmd(&[])
        .args([
            "firewall",
            "--env",
            "test",
            "--from",
            "json(stdin://)",
            "--into",
            "json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), secrets.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "B is absent, not fatal: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"A": "a\nb", "C": "c"}));
    assert!(stderr(&o).contains("acme.test.B"), "{}", stderr(&o));
    assert_eq!(r.env_file(), "", "--into json never touches $GITHUB_ENV");

    // --json: the report and the values as one document
    let o = r
        .cmd(&[("SECRETS", secrets)])
        .args([
            "--json",
            "firewall",
            "--env",
            "test",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["values"], serde_json::json!({"A": "a\nb", "C": "c"}));
    assert_eq!(v["keys"][1]["status"], "absent");
    assert_eq!(v["ignored"], serde_json::json!(["D"]));
    assert!(v["keys"][0].get("value").is_none());
    // --json with --into github.actions: stdout belongs to the runner
    let o = r
        .cmd(&[("SECRETS", secrets)])
        .args([
            "--json",
            "firewall",
            "--env",
            "test",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "github.actions",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert_eq!(r.env_file(), "");
}

#[test]
fn github_env_must_be_the_runners_regular_file() {
    let r = runner("org: acme\nenv.test: [A]\n");
    let secrets = serde_json::json!({"A": "value-a"});
    let run = |github_env: Option<&Path>| {
        let mut c = r.cmd(&[("SECRETS", &secrets.to_string())]);
        match github_env {
            Some(p) => c.env("GITHUB_ENV", p),
            None => c.env_remove("GITHUB_ENV"),
        };
        c.args([
            "firewall",
            "--env",
            "test",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "github.actions",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
    };
    // unset
    let o = run(None);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("GITHUB_ENV is not set"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    // a symbolic link to a file keyrack must not write
    let target = r.s.root.join("victim");
    std::fs::write(&target, "untouched").unwrap();
    let link = r.s.root.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = run(Some(&link));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    // a FIFO (would block or leak to a reader) and a directory
    let fifo = r.s.root.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for p in [fifo.as_path(), r.s.root.as_path()] {
        let o = run(Some(p));
        assert_eq!(code(&o), 1, "{}", p.display());
        assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    }
    // missing
    let o = run(Some(&r.s.root.join("missing")));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    // none of these printed a mask or a value
    let o = run(Some(&r.github_env));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(runner_parse(&r.env_file()).unwrap()["A"], "value-a");
}

#[test]
fn bad_sources_and_names_are_refused_without_quoting_secrets() {
    let r = runner("org: acme\nenv.test: [A]\n");
    let firewall = |from: &str, env: &[(&str, &str)]| {
        r.cmd(env)
            .args([
                "firewall",
                "--env",
                "test",
                "--from",
                from,
                "--into",
                "github.actions",
            ])
            .output()
            .unwrap()
    };
    let o = firewall("json(env://SECRETS)", &[]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("SECRETS is not set"), "{}", stderr(&o));
    assert!(stderr(&o).contains("toJSON(secrets)"), "{}", stderr(&o));
    let o = firewall("json(env://SECRETS)", &[("SECRETS", "[\"hunter2\"]")]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not a JSON object"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
    let o = firewall("yaml(env://SECRETS)", &[("SECRETS", "{}")]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let o = firewall("json(env://A-B)", &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // an env keyrack.yml does not declare
    let o = r
        .cmd(&[("SECRETS", "{}")])
        .args([
            "firewall",
            "--env",
            "tset",
            "--from",
            "json(env://SECRETS)",
            "--into",
            "github.actions",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("did you mean --env test"),
        "{}",
        stderr(&o)
    );
    // key names are shell identifiers: a manifest that says otherwise never reaches $GITHUB_ENV
    r.s.manifest("org: acme\nenv.test: [\"A=B\"]\n");
    let o = firewall("json(env://SECRETS)", &[("SECRETS", r#"{"A=B": "x"}"#)]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // a value that is not a string is that key's error
    r.s.manifest("org: acme\nenv.test: [A]\n");
    let o = firewall("json(env://SECRETS)", &[("SECRETS", r#"{"A": 42}"#)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a string"), "{}", stderr(&o));
    assert_eq!(r.env_file(), "");
}

/// A GitHub App key pair (ssh-keygen; the fake gets only the public half).
fn app_key(dir: &Path) -> (String, String) {
    let private = dir.join("app.pem");
    let st = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "app", "-f",
        ])
        .arg(&private)
        .status()
        .expect("ssh-keygen is installed");
    assert!(st.success());
    let public = Command::new("ssh-keygen")
        .args(["-e", "-m", "PKCS8", "-f"])
        .arg(dir.join("app.pem.pub"))
        .output()
        .unwrap();
    (
        std::fs::read_to_string(private).unwrap(),
        String::from_utf8(public.stdout).unwrap(),
    )
}

#[test]
fn a_github_app_bundle_becomes_an_installation_token() {
    let r = runner("org: acme\nenv.test: [GH_TOKEN, PLAIN]\n");
    let gh = FakeGitHub::start();
    let (pem, public) = app_key(&r.s.root);
    gh.add_app("4242", &public, &[77]);
    gh.set_long_tokens(true);
    let bundle = serde_json::json!({"appId": "4242", "installationId": 77, "privateKeyPem": pem});
    let secrets = serde_json::json!({"GH_TOKEN": bundle.to_string(), "PLAIN": "p"});
    let o = r.firewall(&secrets, &[("GITHUB_API_URL", &gh.url)]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(code(&o), 0, "{err}");
    let issued = gh.issued();
    assert_eq!(issued.len(), 1);
    let seen = &gh.seen()[0];
    assert_eq!(
        (seen.status, seen.iss.as_deref()),
        (201, Some("4242")),
        "{seen:?}"
    );
    let env = runner_parse(&r.env_file()).unwrap();
    assert_eq!(
        env["GH_TOKEN"], issued[0],
        "the token passes, not the credentials"
    );
    assert!(env["GH_TOKEN"].starts_with("ghs_") && env["GH_TOKEN"].contains('.'));
    assert_eq!(env["PLAIN"], "p");
    assert!(
        out.contains(&format!("::add-mask::{}\n", issued[0])),
        "the new token is masked: {out}"
    );
    assert!(err.contains("minted: GH_TOKEN"), "{err}");
    let body = pem.lines().nth(3).unwrap();
    for text in [&out, &err, &r.env_file()] {
        assert!(
            !text.contains(body),
            "the private key never leaves the secret"
        );
    }

    // credentials GitHub refuses: that key's error, the step fails, nothing is written
    std::fs::write(&r.github_env, "").unwrap();
    gh.add_app("4242", &public, &[]);
    let o = r.firewall(&secrets, &[("GITHUB_API_URL", &gh.url)]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("acme.test.GH_TOKEN") && err.contains("404"),
        "{err}"
    );
    assert!(err.contains("update the secret GH_TOKEN"), "{err}");
    assert_eq!(r.env_file(), "");
    assert_eq!(stdout(&o), "");
}
