//! State the browser carries instead of the ephemeral store: a value serialised as JSON,
//! base64url-encoded and signed with HMAC-SHA-256 under a key of this instance (shared by every
//! replica through the database), as `<payload>.<signature>`. The browser can read such a value
//! but not forge or alter it, so it suits state that holds nothing the browser may not see:
//! a discoverable ceremony's challenge, an authorization request it sent itself.
//!
//! Carrying state saves the store a write, a read or two and a delete per use, and leaves
//! nothing behind when the browser goes away. It does not make anything single-use: callers
//! that need that claim the value's signature in the store once, when it is used.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::{keyed_hash, keyed_hash_matches};

/// A key for one kind of carried value, derived from the instance's `master` key and `purpose`,
/// so that a value signed for one purpose never opens as another.
pub fn derive_key(master: &[u8], purpose: &str) -> Vec<u8> {
    keyed_hash(master, &[b"latchkey carried value\0", purpose.as_bytes()]).to_vec()
}

/// `value`, signed with `key`, as `<payload>.<signature>` (base64url, no dots inside either).
pub fn seal<T: Serialize>(key: &[u8], value: &T) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("carried values serialise"));
    let signature = URL_SAFE_NO_PAD.encode(keyed_hash(key, &[payload.as_bytes()]));
    format!("{payload}.{signature}")
}

/// The value of a [`seal`]ed string and its signature, when the signature checks (in constant
/// time) and the payload decodes as `T`. Expiry is the caller's to check: it is part of `T`.
pub fn open<T: DeserializeOwned>(key: &[u8], sealed: &str) -> Option<(T, Vec<u8>)> {
    let (payload, signature) = sealed.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    keyed_hash_matches(key, &[payload.as_bytes()], &signature).then_some(())?;
    let value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some((value, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[7; 32];

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let sealed = seal(KEY, &("hello", 42));
        assert_eq!(open::<(String, u32)>(KEY, &sealed).map(|(value, _)| value), Some(("hello".into(), 42)));
        assert!(open::<(String, u32)>(&[8; 32], &sealed).is_none(), "another instance's key");
        let purposes = (derive_key(KEY, "one"), derive_key(KEY, "two"));
        assert_ne!(purposes.0, purposes.1);
        assert!(open::<(String, u32)>(&purposes.1, &seal(&purposes.0, &("hello", 42))).is_none(), "another purpose");
    }

    #[test]
    fn altered_truncated_and_mistyped_values_do_not_open() {
        let sealed = seal(KEY, &("hello", 42));
        let (payload, signature) = sealed.split_once('.').unwrap();
        let other_payload = URL_SAFE_NO_PAD.encode(br#"["hello",43]"#);
        for altered in [
            format!("{other_payload}.{signature}"),
            format!("{payload}.{}", &signature[1..]),
            payload.to_owned(),
            String::new(),
            format!("{payload}.{signature}.x"),
        ] {
            assert!(open::<(String, u32)>(KEY, &altered).is_none(), "{altered}");
        }
        assert!(open::<Vec<bool>>(KEY, &sealed).is_none(), "signed, but not a value of this type");
    }
}
