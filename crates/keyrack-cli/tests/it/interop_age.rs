//! Interop with the real `age` CLI: it decrypts our files, and we read files it made.
//!
//! An os.secure file decrypts to one JSON header line binding it to its slug, then the value.

use std::process::Command;

/// What `age -d` prints for an os.secure file of `slug` holding `value`.
fn payload(slug: &str, value: &str) -> String {
    format!("{{\"keyrack\":\"os.secure\",\"v\":1,\"slug\":\"{slug}\"}}\n{value}")
}

use keyrack_testkit::{ssh_keygen, stderr, Sandbox};

fn age(args: &[&str]) -> std::process::Output {
    Command::new("age")
        .args(args)
        .output()
        .expect("the age CLI is installed (apt-get install age)")
}

#[test]
fn age_cli_decrypts_files_made_with_the_generated_identity() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("XAI_API_KEY", "test", "xai-generated\n");
    let files = s.secure_files();
    assert_eq!(files.len(), 1);
    let o = age(&[
        "-d",
        "-i",
        s.identity().to_str().unwrap(),
        files[0].to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        payload("acme.test.XAI_API_KEY", "xai-generated"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // the host manifest too
    let o = age(&[
        "-d",
        "-i",
        s.identity().to_str().unwrap(),
        s.keyrack_home.join("host.age").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hosts"]["acme.test.XAI_API_KEY"]["vault"], "os.secure");
}

#[test]
fn age_cli_decrypts_files_made_with_an_ssh_ed25519_key() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    let ssh = s.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    ssh_keygen(&key, "ed25519", "");
    let (_, v) = s.json(&["init"]);
    assert_eq!(
        v["identity"],
        key.to_str().unwrap(),
        "~/.ssh/id_ed25519 is discovered"
    );
    assert!(v["recipient"].as_str().unwrap().starts_with("ssh-ed25519 "));
    s.set("K", "test", "via-ssh");
    let o = age(&[
        "-d",
        "-i",
        key.to_str().unwrap(),
        s.secure_files()[0].to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        payload("acme.test.K", "via-ssh"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn keyrack_reads_a_file_made_by_the_age_cli() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    let key = s.root.join("id");
    ssh_keygen(&key, "ed25519", "");
    s.cmd()
        .args(["--identity", key.to_str().unwrap(), "init"])
        .assert()
        .success();
    s.cmd()
        .args([
            "--identity",
            key.to_str().unwrap(),
            "set",
            "--key",
            "K",
            "--env",
            "test",
        ])
        .write_stdin("first")
        .assert()
        .success();
    let file = s.secure_files()[0].clone();
    let plain = s.root.join("plain");
    std::fs::write(&plain, payload("acme.test.K", "made-by-age-cli")).unwrap();
    let pubfile = format!("{}.pub", key.display());
    let encrypt = || {
        let o = age(&[
            "-e",
            "-R",
            &pubfile,
            "-o",
            file.to_str().unwrap(),
            plain.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    encrypt();
    let unlock = || {
        s.run(
            &[
                "--identity",
                key.to_str().unwrap(),
                "unlock",
                "--env",
                "test",
            ],
            "",
        )
    };
    let o = unlock();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.get_value("K", "test").1, "made-by-age-cli");
    // without the header the file is bound to no key: refused, with the command that rewrites it
    std::fs::write(&plain, "made-by-age-cli").unwrap();
    encrypt();
    let o = unlock();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("not bound to any key") && out.contains("keyrack set --key K --env test"),
        "{out}"
    );
}

#[test]
fn ssh_rsa_identities_work_both_ways() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    let key = s.root.join("id_rsa");
    ssh_keygen(&key, "rsa", "");
    let id = key.to_str().unwrap();
    let (_, v) = s.json(&["--identity", id, "init"]);
    assert!(
        v["recipient"].as_str().unwrap().starts_with("ssh-rsa "),
        "{v}"
    );
    s.cmd()
        .args(["--identity", id, "set", "--key", "K", "--env", "test"])
        .write_stdin("via-rsa")
        .assert()
        .success();
    let o = age(&["-d", "-i", id, s.secure_files()[0].to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        payload("acme.test.K", "via-rsa"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = s.run(&["--identity", id, "unlock", "--env", "test"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.get_value("K", "test").1, "via-rsa");
}
