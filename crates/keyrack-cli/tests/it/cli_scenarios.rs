//! CLI behaviour as data: each `tests/cmd/*.md` is a literate scenario (commands and their exact
//! output) run by trycmd in a sandbox copy of its `*.in/` directory. One file per situation.
//!
//! `sh` is registered too, so a scenario can pipe a value into keyrack as a user would
//! (`sh -c "printf v | keyrack set …"`); the `keyrack` it finds on `PATH` is the one under test.

#[test]
fn cli_scenarios() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_keyrack"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("the binary's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("keyrack", bin)
        .register_bin("sh", std::path::Path::new("/bin/sh"))
        .env("PATH", path)
        .env("HOME", ".")
        .env("KEYRACK_HOME", ".keyrack")
        .env("XDG_RUNTIME_DIR", "run")
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .env("KEYRACK_DAEMON_IDLE_SECS", "5")
        .case("tests/cmd/*.md");
}
