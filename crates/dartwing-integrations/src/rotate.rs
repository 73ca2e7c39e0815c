//! Key rotation: re-encrypts every stored token under the ring's current key. Rows are
//! rewritten one at a time with a compare-and-swap on their old ciphertexts, so a run can be
//! interrupted and started again (it continues with the rows not yet under the current key), and
//! a concurrent refresh is never overwritten.

use crate::keyring::{Field, KeyRing};
use crate::store::VaultStore;
use dartwing_core::Result;
use serde::Serialize;

/// Rows per batch read.
const BATCH: u32 = 200;

/// A row the ring could not decrypt (left untouched).
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// Organization.
    pub organization: String,
    /// Integration.
    pub integration: String,
    /// Why (never token material).
    pub error: String,
}

/// Outcome of a rotation run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotationReport {
    /// Id of the key every rotated row now uses.
    pub current_key_id: String,
    /// Rows re-encrypted by this run.
    pub rotated: u64,
    /// Rows a concurrent refresh re-encrypted first.
    pub already_current: u64,
    /// Rows the ring cannot decrypt (their key is missing); nothing was changed for them.
    pub unreadable: Vec<Unreadable>,
    /// Rows still not under the current key after the run.
    pub remaining: i64,
}

/// Counts rows still to rotate (for a progress bar's length).
pub async fn pending(store: &VaultStore, keys: &KeyRing) -> Result<i64> {
    store.count_not_under(keys.current_id()).await
}

/// Re-encrypts every row not under the current key; `progress(done)` is called after each row.
pub async fn rotate(
    store: &VaultStore,
    keys: &KeyRing,
    actor: &str,
    mut progress: impl FnMut(u64),
) -> Result<RotationReport> {
    let current = keys.current_id().to_string();
    let mut report = RotationReport {
        current_key_id: current.clone(),
        ..Default::default()
    };
    let mut cursor: Option<(String, String)> = None;
    let mut done = 0u64;
    loop {
        let batch = store.rotation_batch(&current, cursor.as_ref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        cursor = Some((last.organization.clone(), last.integration.clone()));
        for row in batch {
            let (org, integ) = (row.organization.as_str(), row.integration.as_str());
            let reseal =
                |field: Field, sealed: Option<&str>| -> std::result::Result<Option<String>, crate::VaultError> {
                    sealed
                        .map(|s| {
                            let plain = keys.decrypt(org, integ, field, s)?;
                            keys.encrypt(org, integ, field, &plain)
                        })
                        .transpose()
                };
            let resealed = reseal(Field::AccessToken, row.access_token.as_deref())
                .and_then(|a| Ok((a, reseal(Field::RefreshToken, row.refresh_token.as_deref())?)));
            match resealed {
                Ok((access, refresh)) => {
                    if store
                        .replace_ciphertexts(&row, access.as_deref(), refresh.as_deref(), &current)
                        .await?
                    {
                        report.rotated += 1;
                        let detail = format!(
                            "re-encrypted from key {} to key {current}",
                            row.key_id.as_deref().unwrap_or("?")
                        );
                        store.record(org, integ, "rotated", actor, Some(&detail)).await?;
                    } else {
                        report.already_current += 1;
                    }
                }
                Err(e) => report.unreadable.push(Unreadable {
                    organization: org.into(),
                    integration: integ.into(),
                    error: e.to_string(),
                }),
            }
            done += 1;
            progress(done);
        }
    }
    report.remaining = store.count_not_under(&current).await?;
    Ok(report)
}
