//! Erasure: a client's data key destroyed, its rows deleted, a tombstone kept in both
//! stores, `ClientErased` published. Restoring either store from a backup loses no
//! erasure: before the service reports SERVING, [`reapply_tombstones`] erases again every
//! client either store has a tombstone for. The retention sweeper erases clients inactive
//! for `retention.inactive_years`.

use careers_eventbus::{RelayWaker, enqueue};
use careers_proto::careers::casenotes::events::v1::ClientErased;
use chrono::{DateTime, Months, NaiveDate, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::{domain::instant, error::CasenotesError, keystore, store};

/// Erases one client of `org`; answers when (micros). The main store commits first (rows
/// gone, tombstone kept, event queued), then the key store destroys the key beside its own
/// tombstone; a crash between the two is finished by [`reapply_tombstones`] at start.
pub async fn erase(
    db: &DatabaseConnection,
    keys: &DatabaseConnection,
    waker: &RelayWaker,
    client_id: &str,
    org: &str,
    now: DateTime<Utc>,
) -> Result<i64, CasenotesError> {
    let erased_at = now.timestamp_micros();
    let txn = careers_eventbus::begin_write(db).await?;
    store::delete_client_rows(&txn, client_id).await?;
    if store::insert_tombstone(&txn, client_id, org, erased_at).await? {
        enqueue(
            &txn,
            client_id,
            0,
            &ClientErased {
                client_id: client_id.to_owned(),
                organisation: org.to_owned(),
                erased_at: instant(erased_at),
            },
        )
        .await?;
    }
    txn.commit().await?;
    waker.wake();
    let txn = keys.begin().await?;
    keystore::destroy(&txn, client_id, erased_at).await?;
    txn.commit().await?;
    Ok(erased_at)
}

/// Makes both stores agree on every erasure either holds: keys destroyed, rows deleted,
/// tombstones in both. Answers how many clients were erased again.
pub async fn reapply_tombstones(
    db: &DatabaseConnection,
    keys: &DatabaseConnection,
) -> Result<usize, CasenotesError> {
    let mut again = 0;
    let main: Vec<(String, String, i64)> = store::tombstones(db).await?;
    let known: std::collections::HashSet<&str> = main.iter().map(|(id, ..)| id.as_str()).collect();
    for (client_id, _, erased_at) in &main {
        let txn = keys.begin().await?;
        if keystore::destroy(&txn, client_id, *erased_at).await? {
            again += 1;
        }
        txn.commit().await?;
        if store::client_anywhere(db, client_id).await?.is_some() {
            store::delete_client_rows(db, client_id).await?;
            again += 1;
        }
    }
    for (client_id, erased_at) in keystore::tombstones(keys).await? {
        if known.contains(client_id.as_str()) {
            continue;
        }
        // A main store restored from before the erasure: erase its copy now.
        let org = store::client_anywhere(db, &client_id)
            .await?
            .map(|client| client.org)
            .unwrap_or_default();
        let txn = careers_eventbus::begin_write(db).await?;
        store::delete_client_rows(&txn, &client_id).await?;
        store::insert_tombstone(&txn, &client_id, &org, erased_at).await?;
        txn.commit().await?;
        again += 1;
    }
    if again > 0 {
        tracing::warn!(
            again,
            "erasures re-applied from tombstones (a store was restored?)"
        );
    }
    Ok(again)
}

/// The date before which a client with no activity is erased on `today`.
pub fn retention_cutoff(today: NaiveDate, inactive_years: u32) -> NaiveDate {
    today
        .checked_sub_months(Months::new(inactive_years.saturating_mul(12)))
        .unwrap_or(NaiveDate::MIN)
}

/// Erases every client with no interaction or note since the cutoff on `today`; answers
/// the erased ids with their organisations, for the audit trail.
pub async fn sweep_inactive(
    db: &DatabaseConnection,
    keys: &DatabaseConnection,
    waker: &RelayWaker,
    today: NaiveDate,
    now: DateTime<Utc>,
    inactive_years: u32,
) -> Result<Vec<(String, String)>, CasenotesError> {
    let cutoff = retention_cutoff(today, inactive_years).to_string();
    let inactive = store::inactive_before(db, &cutoff).await?;
    for (client_id, org) in &inactive {
        erase(db, keys, waker, client_id, org, now).await?;
    }
    Ok(inactive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_years_back() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap_or_default();
        assert_eq!(
            retention_cutoff(today, 6),
            NaiveDate::from_ymd_opt(2020, 11, 24).unwrap_or_default()
        );
        let leap = NaiveDate::from_ymd_opt(2028, 2, 29).unwrap_or_default();
        assert_eq!(
            retention_cutoff(leap, 1),
            NaiveDate::from_ymd_opt(2027, 2, 28).unwrap_or_default()
        );
    }
}
