//! End-to-end tests: the real `okta-collector` binary against the simulated Okta org (HTTP on
//! 127.0.0.1) and a Devo receiver over mutual TLS with certificates generated per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

/// The entitlement services: full listings, changes from the System Log, kill -9.
mod access;
/// Bad configs and `validate`.
mod config_errors;
/// kill -9 at random moments: nothing lost, no duplicate in the spool.
mod crash;
/// Full delivery, Devo down at start, SIGTERM and restart.
mod delivery;
/// Switching from Devo's collector: its state taken over.
mod devo;
/// Devo-shaped certificates (RSA, SHA-1, 1024-bit signers, v1) met by openssl s_server.
mod devo_tls;
/// Long outage with a small spool, full disk, `status`.
mod durability;
/// Issue 24's edges: a hostile server certificate, bounded cursors and listings, refused files.
mod edges;
/// The simulated org's entitlement endpoints, read by the collector's client.
mod entitlements;
/// Okta faults, rate limits, token secrecy.
mod faults;
/// Attacks on the metrics port, hostile Okta answers.
mod hardening;
/// Shared set-up: temp folder, certificates, simulator, receiver, child process, checks.
mod harness;
/// The six inventory services: tags, incremental changes, emit: changes, refusals, kill -9.
mod inventory;
/// The Kubernetes layout for many orgs, rendered by kubectl kustomize.
mod kubernetes;
/// OAuth 2.0 service app: private_key_jwt, DPoP, token renewal, errors.
mod oauth;
/// `/metrics`, `/healthz`, `/readyz`.
mod observability;
/// relay, devo_http and console outputs, several side by side.
mod outputs;
/// Live config: watcher, reloads, persistence reset on a `start` change.
mod reload;
/// Okta's real recorded answers, replayed to the real binary.
mod replay;
/// The same pipeline into Debian's rsyslog over TLS with client certificates.
mod rsyslog;
/// The collector's own lines in Devo.
mod selfmon;
/// The tests' own system calls: a reset on close, entering a network namespace.
mod sys;
/// Requests per period while tailing; short pages mid-backlog.
mod tailing;
/// Repository rules (module docs).
mod tidy;
/// `filter`, `drop` and `sample` on the System Log.
mod volume;
