//! OpenID Connect: clients, signing keys, grants with their refresh tokens, and consents.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string(Clients::ClientId).primary_key())
                    .col(string(Clients::Name))
                    .col(string_null(Clients::SecretHash))
                    .col(boolean(Clients::Public))
                    .col(boolean(Clients::FirstParty))
                    .col(text(Clients::RedirectUris))
                    .col(text(Clients::PostLogoutRedirectUris))
                    .col(string(Clients::AllowedScopes))
                    .col(string(Clients::GrantTypes))
                    .col(string(Clients::IdTokenSignedResponseAlg))
                    .col(string_null(Clients::BackchannelLogoutUri))
                    .col(big_integer_null(Clients::AccessTokenTtlSeconds))
                    .col(big_integer_null(Clients::RefreshTokenTtlSeconds))
                    .col(timestamp_with_time_zone(Clients::CreatedAt))
                    .col(timestamp_with_time_zone(Clients::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Kid).primary_key())
                    .col(string(SigningKeys::Alg))
                    .col(text(SigningKeys::PrivatePem))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone(SigningKeys::ActivatesAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(pk_uuid(Grants::Id))
                    .col(string(Grants::ClientId))
                    .col(uuid(Grants::UserId))
                    .col(string(Grants::Sid))
                    .col(string(Grants::Scope))
                    .col(timestamp_with_time_zone(Grants::AuthTime))
                    .col(string(Grants::Amr))
                    .col(string(Grants::Acr))
                    .col(timestamp_with_time_zone(Grants::CreatedAt))
                    .col(timestamp_with_time_zone(Grants::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Grants::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Grants::Table, Grants::ClientId)
                            .to(Clients::Table, Clients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Grants::Table, Grants::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [("idx_grants_user_id", Grants::UserId), ("idx_grants_sid", Grants::Sid)] {
            manager.create_index(Index::create().name(name).table(Grants::Table).col(column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::TokenHash).primary_key())
                    .col(uuid(RefreshTokens::GrantId))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::GrantId)
                            .to(Grants::Table, Grants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_grant_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::GrantId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(uuid(Consents::UserId))
                    .col(string(Consents::ClientId))
                    .col(string(Consents::Scopes))
                    .col(timestamp_with_time_zone(Consents::GrantedAt))
                    .primary_key(Index::create().col(Consents::UserId).col(Consents::ClientId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::ClientId)
                            .to(Clients::Table, Clients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Consents::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Grants::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            Clients::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    ClientId,
    Name,
    SecretHash,
    Public,
    FirstParty,
    RedirectUris,
    PostLogoutRedirectUris,
    AllowedScopes,
    GrantTypes,
    IdTokenSignedResponseAlg,
    BackchannelLogoutUri,
    AccessTokenTtlSeconds,
    RefreshTokenTtlSeconds,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    PrivatePem,
    CreatedAt,
    ActivatesAt,
    RetiredAt,
}

#[derive(DeriveIden)]
enum Grants {
    Table,
    Id,
    ClientId,
    UserId,
    Sid,
    Scope,
    AuthTime,
    Amr,
    Acr,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    GrantId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    UserId,
    ClientId,
    Scopes,
    GrantedAt,
}
