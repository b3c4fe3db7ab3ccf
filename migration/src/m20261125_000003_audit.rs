//! The audit log: one row per sign-in, failure, passkey change or admin change. Indexed for the
//! admin API's filters, each newest first: everything, one user's events, one type of event.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(pk_uuid(AuditEvents::Id))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string(AuditEvents::Type))
                    // No foreign keys: the record of what happened to a user or client must
                    // survive their deletion.
                    .col(uuid_null(AuditEvents::UserId))
                    .col(string_null(AuditEvents::ClientId))
                    .col(string_null(AuditEvents::Ip))
                    .col(text_null(AuditEvents::UserAgent))
                    .col(text(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[AuditEvents]); 3] = [
            ("idx_audit_events_at", &[AuditEvents::At]),
            ("idx_audit_events_user_id_at", &[AuditEvents::UserId, AuditEvents::At]),
            ("idx_audit_events_type_at", &[AuditEvents::Type, AuditEvents::At]),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create().name(name).table(AuditEvents::Table).to_owned();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditEvents {
    Table,
    Id,
    At,
    Type,
    UserId,
    ClientId,
    Ip,
    UserAgent,
    Detail,
}
