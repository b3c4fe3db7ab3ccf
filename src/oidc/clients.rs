//! Relying parties: validation, secrets, the declarative clients file. (in progress)
