//! Schema migrations of Latchkey's durable store, one module per migration, each with `up` and
//! `down`. `latchkey migrate` and `latchkey serve` apply them.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_accounts;
mod m20261125_000002_oidc;
mod m20261125_000003_audit;
mod m20261125_000004_enrollment;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_accounts::Migration),
            Box::new(m20261125_000002_oidc::Migration),
            Box::new(m20261125_000003_audit::Migration),
            Box::new(m20261125_000004_enrollment::Migration),
        ]
    }
}
