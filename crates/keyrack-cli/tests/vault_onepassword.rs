//! The `1password` vault through the real binary, against a stand-in `op` on `PATH`
//! (`keyrack_testkit::fake_op`) that keeps its items in a JSON file and logs every argv.

use keyrack_testkit::fake_op::{self, FakeOp, TEAM_VAULT_ID};
use keyrack_testkit::{stderr, stdout, Sandbox};
use serde_json::Value;

const REF_VALUE: &str = "ref-value-Zq81x";

struct World {
    sb: Sandbox,
    op: FakeOp,
}

fn world() -> World {
    let mut sb = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    let op = FakeOp::install(&sb.root);
    sb.env("PATH", &op.path());
    sb.init();
    sb.manifest("org: acme\nenv.test:\n  - GH_TOKEN\n  - DB_PASS\n  - PLAIN\n");
    World { sb, op }
}

impl World {
    /// `keyrack set` with `args`, the value on stdin; returns (exit code, JSON document).
    fn set(&self, args: &[&str], stdin: &str) -> (i32, Value) {
        let mut full = vec!["--json", "set", "--env", "test"];
        full.extend_from_slice(args);
        let o = self.sb.run(&full, stdin);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(&o), stderr(&o)));
        (o.status.code().unwrap(), v)
    }

    /// `keyrack unlock --env test --key K…` (every key of the env without keys).
    fn unlock(&self, keys: &[&str]) -> (i32, Vec<Value>) {
        let mut args = vec!["unlock", "--env", "test"];
        for k in keys {
            args.extend(["--key", k]);
        }
        let (code, v) = self.sb.json(&args);
        (code, v["keys"].as_array().cloned().unwrap_or_default())
    }

    fn listed(&self) -> Vec<String> {
        let (_, v) = self.sb.json(&["list"]);
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["slug"].as_str().unwrap().to_string())
            .collect()
    }
}

fn row<'a>(rows: &'a [Value], key: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row for {key}: {rows:?}"))
}

#[test]
fn reference_set_proves_the_round_trip_then_unlock_and_get_read_the_item() {
    let w = world();
    w.op.add_item(TEAM_VAULT_ID, "GitHub", "token", REF_VALUE);
    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "op://Team/GitHub/token",
        ],
        "",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["vault"], "1password");
    assert_eq!(v["mech"], "reference", "reference is the default mech");
    assert_eq!(v["roundTrip"], true);
    let reads =
        w.op.calls()
            .into_iter()
            .filter(|(argv, _)| argv == &["read", "--no-newline", "op://Team/GitHub/token"])
            .count();
    assert!(
        reads >= 2,
        "set read the reference, then proved it reads back: {:?}",
        w.op.calls()
    );

    let (code, rows) = w.unlock(&["GH_TOKEN"]);
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(row(&rows, "GH_TOKEN")["status"], "granted");
    assert_eq!(row(&rows, "GH_TOKEN")["vault"], "1password");
    let (code, out, err) = w.sb.get_value("GH_TOKEN", "test");
    assert_eq!((code, out.as_str()), (0, REF_VALUE), "{err}");

    // the item changes in 1Password: the next unlock picks it up
    let mut st = w.op.state();
    st["items"][0]["fields"][0]["value"] = "rotated-value-77".into();
    w.op.write_state(&st);
    assert_eq!(w.unlock(&["GH_TOKEN"]).0, 0);
    assert_eq!(w.sb.get_value("GH_TOKEN", "test").1, "rotated-value-77");

    // list shows the reference, never the value
    let (_, v) = w.sb.json(&["list"]);
    assert_eq!(v["keys"][0]["exid"], "op://Team/GitHub/token");
    assert!(!v.to_string().contains("rotated-value"));
    w.op.assert_no_secret_in_argv(&[REF_VALUE, "rotated-value-77"]);
}

#[test]
fn a_bad_or_dangling_reference_fails_set_and_keeps_nothing() {
    let w = world();
    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "Team/GitHub/token",
        ],
        "",
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "invalid_input");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("op://"),
        "{v}"
    );
    assert!(w.op.calls().is_empty(), "refused before op runs");

    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "op://Team/Nope/token",
        ],
        "",
    );
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("isn't an item"),
        "{v}"
    );
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("op read"),
        "{v}"
    );
    let (code, v) = w.set(&["--key", "GH_TOKEN", "--vault", "1password"], "");
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("--exid"),
        "{v}"
    );
    assert!(w.listed().is_empty(), "no host entry left behind");
}

#[test]
fn replica_set_creates_the_item_a_re_set_edits_it_and_del_deletes_it() {
    let w = world();
    let (code, v) = w.set(
        &[
            "--key",
            "DB_PASS",
            "--vault",
            "1password",
            "--mech",
            "replica",
            "--op-vault",
            "Team",
        ],
        "replica-secret-one\n",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["mech"], "replica");
    let items = w.op.items();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["title"], "keyrack: acme.test.DB_PASS");
    assert_eq!(item["vault_id"], TEAM_VAULT_ID);
    assert_eq!(item["tags"][0], "keyrack");
    let id = item["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.op.value(&id, "password").as_deref(),
        Some("replica-secret-one")
    );
    assert!(
        w.op.calls()
            .iter()
            .any(|(a, _)| a.first().map(String::as_str) == Some("item")
                && a.get(1).map(String::as_str) == Some("create")
                && a.last().map(String::as_str) == Some("-")),
        "the item went in on stdin: {:?}",
        w.op.calls()
    );
    let (_, v) = w.sb.json(&["list"]);
    assert_eq!(
        v["keys"][0]["exid"],
        format!("op://{TEAM_VAULT_ID}/{id}/password"),
        "the reference is kept by ids"
    );

    // a re-set edits the same item, the template on a file descriptor
    let (code, v) = w.set(
        &[
            "--key",
            "DB_PASS",
            "--vault",
            "1password",
            "--mech",
            "replica",
            "--op-vault",
            "Team",
        ],
        "replica-secret-two",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(w.op.items().len(), 1, "still one item");
    assert_eq!(
        w.op.value(&id, "password").as_deref(),
        Some("replica-secret-two")
    );
    let edit =
        w.op.calls()
            .into_iter()
            .find(|(a, _)| a.get(1).map(String::as_str) == Some("edit"))
            .expect("op item edit ran");
    let template = edit.0.iter().position(|a| a == "--template").unwrap();
    assert!(edit.0[template + 1].starts_with("/dev/fd/"), "{edit:?}");

    assert_eq!(w.unlock(&["DB_PASS"]).0, 0);
    assert_eq!(w.sb.get_value("DB_PASS", "test").1, "replica-secret-two");

    let (code, v) = w.sb.json(&["del", "--key", "DB_PASS", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], true);
    assert!(
        w.op.items().is_empty(),
        "del deleted the item keyrack created"
    );
    w.op.assert_no_secret_in_argv(&["replica-secret-one", "replica-secret-two"]);
}

#[test]
fn a_replica_defaults_to_the_built_in_vault_and_keeps_the_value_byte_for_byte() {
    let w = world();
    let (code, v) = w.set(
        &[
            "--key",
            "DB_PASS",
            "--vault",
            "1password",
            "--mech",
            "replica",
        ],
        "",
    );
    assert_eq!(code, 1, "an empty value is refused: {v}");
    assert!(w.op.items().is_empty());
    // op read --no-newline hands back exactly what was stored (inner and trailing newlines)
    let (code, v) = w.set(
        &[
            "--key",
            "DB_PASS",
            "--vault",
            "1password",
            "--mech",
            "replica",
        ],
        "line1\nline2\n\n",
    );
    assert_eq!(code, 0, "{v}");
    let item = &w.op.items()[0];
    assert_eq!(
        item["vault_id"],
        fake_op::PRIVATE_VAULT_ID,
        "default: the built-in vault"
    );
    assert_eq!(w.unlock(&["DB_PASS"]).0, 0);
    assert_eq!(w.sb.get_value("DB_PASS", "test").1, "line1\nline2\n");
}

#[test]
fn reference_del_forgets_the_pointer_and_never_deletes_the_item() {
    let w = world();
    w.op.add_item(TEAM_VAULT_ID, "GitHub", "token", REF_VALUE);
    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "op://Team/GitHub/token",
        ],
        "",
    );
    assert_eq!(code, 0, "{v}");
    let (code, v) = w.sb.json(&["del", "--key", "GH_TOKEN", "--env", "test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["secretDestroyed"], false);
    assert_eq!(w.op.items().len(), 1, "the referenced item stays");
    assert!(
        !w.op
            .calls()
            .iter()
            .any(|(a, _)| a.contains(&"delete".to_string())),
        "{:?}",
        w.op.calls()
    );
    assert!(w.listed().is_empty());
}

#[test]
fn op_signed_out_or_missing_fails_only_its_keys_rows_and_asks_once() {
    let mut w = world();
    w.op.add_item(TEAM_VAULT_ID, "GitHub", "token", REF_VALUE);
    w.op.add_item(TEAM_VAULT_ID, "DB", "password", "db-pass-value");
    for (key, exid) in [
        ("GH_TOKEN", "op://Team/GitHub/token"),
        ("DB_PASS", "op://Team/DB/password"),
    ] {
        let (code, v) = w.set(&["--key", key, "--vault", "1password", "--exid", exid], "");
        assert_eq!(code, 0, "{v}");
    }
    w.sb.set("PLAIN", "test", "plain-value");

    // not signed in: both 1password rows say so with the fix; the other key unlocks
    w.op.set_signed_in(false);
    w.op.clear_calls();
    let (code, rows) = w.unlock(&[]);
    assert_eq!(code, 2, "{rows:?}");
    for key in ["GH_TOKEN", "DB_PASS"] {
        let r = row(&rows, key);
        assert_eq!(r["status"], "errored", "{r}");
        assert!(
            r["reason"].as_str().unwrap().contains("not signed in"),
            "{r}"
        );
        assert!(r["fix"].as_str().unwrap().contains("op signin"), "{r}");
        assert!(
            r["fix"]
                .as_str()
                .unwrap()
                .contains("OP_SERVICE_ACCOUNT_TOKEN"),
            "{r}"
        );
    }
    assert_eq!(row(&rows, "PLAIN")["status"], "granted");
    assert_eq!(
        w.op.calls().len(),
        1,
        "op is asked once per unlock, not once per key: {:?}",
        w.op.calls()
    );
    assert_eq!(w.sb.get_value("PLAIN", "test").1, "plain-value");

    // human output: one fix line for the shared problem
    let o = w.sb.run(&["unlock", "--env", "test"], "");
    let text = stdout(&o) + &stderr(&o);
    assert_eq!(text.matches("fix: sign in: op signin").count(), 1, "{text}");

    // op not installed at all
    let no_op = fake_op::path_dirs_without_op().join(":");
    w.sb.env("PATH", &no_op);
    let (code, rows) = w.unlock(&[]);
    assert_eq!(code, 2);
    let r = row(&rows, "GH_TOKEN");
    assert_eq!(r["status"], "errored");
    assert!(
        r["reason"].as_str().unwrap().contains("not installed"),
        "{r}"
    );
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .contains("brew install 1password-cli"),
        "{r}"
    );
    assert_eq!(row(&rows, "PLAIN")["status"], "granted");

    // back on PATH and signed in: everything unlocks again
    w.sb.env("PATH", &w.op.path());
    w.op.set_signed_in(true);
    let (code, rows) = w.unlock(&[]);
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(w.sb.get_value("DB_PASS", "test").1, "db-pass-value");
}

#[test]
fn a_replica_set_while_signed_out_fails_with_the_fix_and_keeps_nothing() {
    let w = world();
    w.op.set_signed_in(false);
    let (code, v) = w.set(
        &[
            "--key",
            "DB_PASS",
            "--vault",
            "1password",
            "--mech",
            "replica",
        ],
        "never-stored",
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["code"], "vault_unavailable");
    assert!(
        v["error"]["fix"].as_str().unwrap().contains("op signin"),
        "{v}"
    );
    assert!(w.op.items().is_empty());
    assert!(w.listed().is_empty());
    w.op.assert_no_secret_in_argv(&["never-stored"]);
}

#[test]
fn the_service_account_token_reaches_op_through_the_environment_only() {
    let mut w = world();
    let token = "ops_eyJzaWduSW5BZGRyZXNzIjoibXkuMXBhc3N3b3JkLmNvbSJ9";
    w.op.require_token(Some(token));
    w.op.add_item(TEAM_VAULT_ID, "GitHub", "token", REF_VALUE);
    // without the token: refused like a signed-out op
    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "op://Team/GitHub/token",
        ],
        "",
    );
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not signed in"),
        "{v}"
    );

    w.op.clear_calls();
    w.sb.env("OP_SERVICE_ACCOUNT_TOKEN", token);
    let (code, v) = w.set(
        &[
            "--key",
            "GH_TOKEN",
            "--vault",
            "1password",
            "--exid",
            "op://Team/GitHub/token",
        ],
        "",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(w.unlock(&["GH_TOKEN"]).0, 0);
    assert_eq!(w.sb.get_value("GH_TOKEN", "test").1, REF_VALUE);
    let calls = w.op.calls();
    assert!(
        calls.len() >= 3,
        "set, its proof and unlock called op: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .filter(|(a, _)| a.first().map(String::as_str) == Some("read"))
            .all(|(_, env)| env.contains(&"OP_SERVICE_ACCOUNT_TOKEN".to_string())),
        "{calls:?}"
    );
    w.op.assert_no_secret_in_argv(&[token, REF_VALUE]);

    // a wrong token: the row names the token as the problem
    w.sb.env("OP_SERVICE_ACCOUNT_TOKEN", "ops_wrong");
    let (code, rows) = w.unlock(&["GH_TOKEN"]);
    assert_eq!(code, 2);
    let r = row(&rows, "GH_TOKEN");
    assert!(
        r["fix"]
            .as_str()
            .unwrap()
            .contains("export OP_SERVICE_ACCOUNT_TOKEN"),
        "{r}"
    );
    assert!(r["fix"].as_str().unwrap().contains("refused"), "{r}");
}

#[test]
fn a_hanging_op_is_stopped_at_the_bound_and_only_its_keys_fail() {
    let mut w = world();
    w.op.add_item(TEAM_VAULT_ID, "GitHub", "token", REF_VALUE);
    w.op.add_item(TEAM_VAULT_ID, "DB", "password", "db-pass-value");
    for (key, exid) in [
        ("GH_TOKEN", "op://Team/GitHub/token"),
        ("DB_PASS", "op://Team/DB/password"),
    ] {
        assert_eq!(
            w.set(&["--key", key, "--vault", "1password", "--exid", exid], "")
                .0,
            0
        );
    }
    w.sb.set("PLAIN", "test", "plain-value");
    w.op.set_sleep(20);
    w.sb.env("KEYRACK_OP_TIMEOUT_SECS", "1");
    let started = std::time::Instant::now();
    let (code, rows) = w.unlock(&[]);
    let took = started.elapsed();
    assert_eq!(code, 2, "{rows:?}");
    for key in ["GH_TOKEN", "DB_PASS"] {
        let r = row(&rows, key);
        assert!(
            r["reason"]
                .as_str()
                .unwrap()
                .contains("did not answer within 1 s"),
            "{r}"
        );
    }
    assert_eq!(row(&rows, "PLAIN")["status"], "granted");
    assert!(
        took < std::time::Duration::from_secs(8),
        "one bounded call, not one per key: {took:?}"
    );
}
