//! Token-signing keys: generation, storage, JWKS, signing, rotation. (in progress)
