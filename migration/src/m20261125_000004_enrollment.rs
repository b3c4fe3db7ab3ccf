//! Enrollment links, kept durably (24 h links must survive restarts, and the command line
//! creates them without a shared ephemeral store).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EnrollmentLinks::Table)
                    .col(string(EnrollmentLinks::TokenHash).primary_key())
                    .col(uuid(EnrollmentLinks::UserId))
                    .col(timestamp_with_time_zone(EnrollmentLinks::CreatedAt))
                    .col(timestamp_with_time_zone(EnrollmentLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EnrollmentLinks::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(EnrollmentLinks::Table, EnrollmentLinks::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EnrollmentLinks::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EnrollmentLinks {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}
