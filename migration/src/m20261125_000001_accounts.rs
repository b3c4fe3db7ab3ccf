//! Users, their passkeys and the settings table of generated secrets.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(string(Users::Username))
                    .col(string_uniq(Users::UsernameNormalized))
                    .col(string(Users::Email))
                    .col(string_uniq(Users::EmailNormalized))
                    .col(string(Users::DisplayName))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(boolean(Users::Disabled).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(pk_uuid(Passkeys::Id))
                    .col(uuid(Passkeys::UserId))
                    .col(string_uniq(Passkeys::CredentialId))
                    .col(text(Passkeys::PasskeyJson))
                    .col(string(Passkeys::Name))
                    .col(uuid_null(Passkeys::Aaguid))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .col(boolean(Passkeys::BackupEligible))
                    .col(boolean(Passkeys::BackupState))
                    .col(string(Passkeys::Transports))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_passkeys_user_id").table(Passkeys::Table).col(Passkeys::UserId).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .col(string(Settings::Key).primary_key())
                    .col(text(Settings::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Settings::Table.into_iden(), Passkeys::Table.into_iden(), Users::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameNormalized,
    Email,
    EmailNormalized,
    DisplayName,
    CreatedAt,
    Disabled,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    PasskeyJson,
    Name,
    Aaguid,
    CreatedAt,
    LastUsedAt,
    BackupEligible,
    BackupState,
    Transports,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}
