//! What many test modules share: worlds to start from.

pub mod age;
pub mod aws;
pub mod pty;
