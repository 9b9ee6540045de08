//! Concurrent writers serialise; a killed writer never leaves an unreadable host manifest.

use std::io::Write;
use std::process::Stdio;

use keyrack_testkit::{stderr, Sandbox};

#[test]
fn twenty_parallel_sets_all_land_and_decrypt() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = s
                .std_cmd()
                .args(["set", "--key", &format!("KEY_{i}"), "--env", "test"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("value-{i}").as_bytes())
                .unwrap();
            c
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (_, v) = s.json(&["list"]);
    assert_eq!(v["keys"].as_array().unwrap().len(), 20);
    let manifest = s.read_manifest();
    for i in 0..20 {
        assert!(
            manifest.contains(&format!("KEY_{i}")),
            "manifest lost KEY_{i}: {manifest}"
        );
    }
    s.cmd().args(["unlock", "--env", "test"]).assert().success();
    for i in 0..20 {
        assert_eq!(
            s.get_value(&format!("KEY_{i}"), "test").1,
            format!("value-{i}")
        );
    }
}

#[test]
fn sigkill_during_set_leaves_the_previous_host_manifest_readable() {
    let s = Sandbox::new(env!("CARGO_BIN_EXE_keyrack"));
    s.manifest("org: acme\nenv.test: []\n");
    s.init();
    s.set("BASE", "test", "base");
    for i in 0..30u64 {
        let mut c = s
            .std_cmd()
            .args(["set", "--key", &format!("K{i}"), "--env", "test"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(b"v").unwrap();
        std::thread::sleep(std::time::Duration::from_micros(i * 1500));
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
        let (code, v) = s.json(&["list"]);
        assert_eq!(
            code,
            0,
            "after a kill at {} µs the host manifest must read: {v}",
            i * 1500
        );
        assert!(v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["slug"] == "acme.test.BASE"));
        s.run(&["get", "--key", "BASE", "--env", "test"], "");
    }
    // every key that landed can be unlocked
    let (_, v) = s.json(&["unlock", "--env", "test"]);
    for row in v["keys"].as_array().unwrap() {
        assert_ne!(row["status"], "errored", "{row}");
    }
}
