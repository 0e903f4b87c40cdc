//! A built-in simulated Okta org and Devo receiver, for the demo, the tests and the benchmarks.
//! They listen on loopback only and never reach the network.

pub mod certs;
pub mod devo;
pub mod entitlements;
pub mod inventory;
pub mod oauth;
pub mod okta;
pub mod replay;
pub mod strict;
