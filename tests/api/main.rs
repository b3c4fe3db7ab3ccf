//! Latchkey's integration tests: one binary, the app on a random port per test, driven over
//! HTTP with a software authenticator, on the embedded default and on PostgreSQL + Redis.

mod authenticator;
mod helpers;
mod process;
mod proxy;

mod abuse;
mod account;
mod admin;
mod bench_smoke;
mod browser;
mod cli;
mod container;
mod cross_origin;
mod email;
mod faults;
mod fuzz;
mod hardening_webauthn;
mod helm;
mod login;
mod observability;
mod oidc;
mod oidc_rules;
mod oidc_sessions;
mod scale_out;
mod signup;
mod smtp_sink;
