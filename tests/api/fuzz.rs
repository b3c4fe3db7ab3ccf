//! Property-based fuzzing (issue 7) of the parsers attackers reach first: the WebAuthn JSON path
//! (parse, then verify), the authorization request, the token request form and PKCE, client
//! authentication at the token endpoint, and the remembered-user cookie. Each property must
//! hold for every input — never a panic, and nothing accepted that the protocol forbids.
//!
//! proptest stands in for cargo-fuzz (which needs a nightly toolchain). Failing inputs are kept
//! in `tests/proptest-regressions/fuzz/*.txt` and replayed first on every run; see
//! `tests/fuzz-corpus/README.md` for longer runs (`PROPTEST_CASES=100000 cargo test fuzz`).

mod client_auth;
mod cookie;
mod oauth;
mod webauthn;

use proptest::{prelude::*, sample::Index, test_runner::Config as ProptestConfig};

/// `cases` per property, so the whole set runs in seconds; `PROPTEST_CASES` overrides it.
fn config(cases: u32) -> ProptestConfig {
    let from_env = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() { from_env } else { ProptestConfig { cases, ..from_env } }
}

/// One byte-level edit; positions are taken modulo the length.
#[derive(Clone, Debug)]
enum Edit {
    FlipBit(Index, u8),
    Set(Index, u8),
    Delete(Index),
    Insert(Index, u8),
    Truncate(Index),
}

/// One to three edits.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Edit::FlipBit(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..4)
}

/// Applies `edits` in order (an empty input first gets one zero byte to edit).
fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        if bytes.is_empty() {
            bytes.push(0);
        }
        let len = bytes.len();
        match edit {
            Edit::FlipBit(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Edit::Set(i, b) => bytes[i.index(len)] = *b,
            Edit::Delete(i) => drop(bytes.remove(i.index(len))),
            Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Edit::Truncate(i) => bytes.truncate(i.index(len)),
        }
    }
}
