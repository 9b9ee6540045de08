//! CLI behaviour as data: each `tests/cmd/*.md` is a literate scenario (commands and their exact
//! output) run by trycmd in a sandbox copy of its `*.in/` directory.

#[test]
fn cli_scenarios() {
    let cases = trycmd::TestCases::new();
    cases
        .register_bin(
            "keyrack",
            std::path::Path::new(env!("CARGO_BIN_EXE_keyrack")),
        )
        .env("HOME", ".")
        .env("KEYRACK_HOME", ".keyrack")
        .env("XDG_RUNTIME_DIR", "run")
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .env("KEYRACK_DAEMON_IDLE_SECS", "5")
        .case("tests/cmd/*.md");
}
