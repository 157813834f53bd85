//! End-to-end tests: the real `secmon` binary on real files.

mod api;
mod archive;
mod check;
mod dashboard;
mod notify;
mod replay;
mod respond;
mod run;
mod sshd;
mod state;
mod support;
mod test_cmd;
