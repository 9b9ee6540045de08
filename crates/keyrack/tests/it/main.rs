//! The library's integration tests: one test binary, one module per area.

mod interact;
mod mech_conformance;
mod vault_conformance;
