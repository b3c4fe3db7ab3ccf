//! Instance-wide generated secrets in the `settings` table. The first replica to start creates
//! them with an insert-if-absent; every replica then reads back the one value that won.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::setting;
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, Set, sea_query::OnConflict};

/// Returns the secret stored under `key`, generating `len` random bytes first if there is none.
pub async fn get_or_create_secret(db: &DatabaseConnection, key: &str, len: usize) -> Result<Vec<u8>, DbErr> {
    let mut fresh = vec![0u8; len];
    rand::rng().fill_bytes(&mut fresh);
    let row = setting::ActiveModel { key: Set(key.to_owned()), value: Set(URL_SAFE_NO_PAD.encode(&fresh)) };
    setting::Entity::insert(row)
        .on_conflict(OnConflict::column(setting::Column::Key).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    let stored = setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))?;
    URL_SAFE_NO_PAD.decode(stored.value).map_err(|e| DbErr::Custom(format!("setting {key} is not base64url: {e}")))
}
