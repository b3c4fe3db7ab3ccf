//! Abuse and bad input (issue 7): what an attacker tries once the WebAuthn parsers hold —
//! telling accounts apart by timing, forged tokens, header and markup injection, floods of
//! half-finished sign-ins, unrecorded failures, bad input on the account page and enrollment
//! links. Each test asserts the exact answer and that nothing was half-written or wrongly
//! issued.

mod audit;
mod flood;
mod timing;
