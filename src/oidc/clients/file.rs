//! The declarative clients file (`LATCHKEY_CLIENTS_FILE`).

use super::*;

/// The clients file: `clients: [ClientSpec, …]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    clients: Vec<ClientSpec>,
}

/// Applies the YAML clients file at `path` (`LATCHKEY_CLIENTS_FILE`): every entry is validated
/// first, then all are upserted in one transaction, so a bad file changes nothing. Clients not in
/// the file are left alone. Returns how many entries were applied.
pub async fn apply_file(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    path: &Path,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let shown = path.display();
    let text = tokio::fs::read_to_string(path).await.with_context(|| format!("cannot read clients file {shown}"))?;
    // No source snippets in errors: the lines around a mistake may hold client secrets.
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let file: ClientsFile =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| anyhow!("clients file {shown}: {e}"))?;
    let problems = check_file(&file.clients);
    if !problems.is_empty() {
        return Err(anyhow!("clients file {shown} is invalid:\n  {}", problems.join("\n  ")));
    }
    // Replicas starting together may both insert the same new client; the loser's transaction
    // fails with a conflict, and a second attempt finds the rows and replaces them.
    let mut attempts_left = 2;
    let created = loop {
        attempts_left -= 1;
        match upsert_all(db, secrets, &file.clients, now).await {
            Err(ClientError::Conflict) if attempts_left > 0 => continue,
            result => break result.with_context(|| format!("applying clients file {shown}"))?,
        }
    };
    for client_id in created {
        tracing::info!(%client_id, "client created from the clients file");
    }
    Ok(file.clients.len())
}

/// Every problem in the file's entries, each naming the entry and field.
fn check_file(specs: &[ClientSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, spec) in specs.iter().enumerate() {
        let entry = match &spec.client_id {
            Some(id) => format!("clients[{index}] ({id})"),
            None => format!("clients[{index}]"),
        };
        let mut errors = validate(spec).err().unwrap_or_default();
        match &spec.client_id {
            None => {
                errors.insert("client_id", "Required in the clients file.".into());
            }
            Some(id) if !seen.insert(id.as_str()) => {
                errors.insert("client_id", format!("'{id}' appears more than once."));
            }
            Some(_) => {}
        }
        if !spec.public && spec.client_secret.is_none() {
            // The operator has to configure the relying party with the secret, so it must come
            // from the file rather than be generated where nobody sees it.
            errors.entry("client_secret").or_insert_with(|| "Required for a confidential client.".into());
        }
        problems.extend(errors.into_iter().map(|(field, message)| format!("{entry}: {field}: {message}")));
    }
    problems
}

/// Upserts every spec in one transaction; returns the ids of the clients it created.
async fn upsert_all(
    db: &DatabaseConnection,
    secrets: &ClientSecrets,
    specs: &[ClientSpec],
    now: DateTime<Utc>,
) -> Result<Vec<String>, ClientError> {
    let txn = db.begin().await?;
    let mut created = Vec::new();
    for spec in specs {
        let client_id = spec.client_id.as_deref().unwrap_or_default();
        let (client, _, was_created) = upsert(&txn, secrets, client_id, spec, now).await?;
        if was_created {
            created.push(client.client_id);
        }
    }
    txn.commit().await?;
    Ok(created)
}
