//! The integration tests of the `keyrack` binary: one test binary, one module per area. Each test
//! drives the real binary (`CARGO_BIN_EXE_keyrack`) in a throwaway HOME through `keyrack_testkit`.

mod aws;
mod aws_all_day;
mod aws_browser_trips;
mod aws_network;
mod aws_verbs;
mod aws_wizard;
mod bad_input;
mod ci_firewall;
mod cli_scenarios;
mod core;
mod daemon;
mod doctor;
mod durability;
mod everyday;
mod fill_import;
mod fuzz_findings;
mod getting_started;
mod github_app;
mod grants;
mod hot_path;
mod hot_path_rows;
mod interop_age;
mod journey;
mod output;
mod prompt;
mod term;
mod trust_aws;
mod trust_cli;
mod trust_core;
mod trust_daemon;
mod trust_files;
mod vault_aws_params;
mod vault_onepassword;
mod vault_os_keychain;

mod support;
