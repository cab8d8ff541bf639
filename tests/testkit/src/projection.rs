//! The property every projection must keep on a deployment with replicas: a stream of
//! events applied in any order, with redeliveries, by two consumers at once, leaves the
//! state one in-order consumer leaves.

use std::future::Future;

use rand::{SeedableRng, seq::SliceRandom};
use sea_orm::{DatabaseConnection, DbErr};

/// Catalogue snapshots: three occupations at versions 1 to 5 each, as (SOC code, version).
/// In order, or in any order through a version-guarded projection, each ends at 5.
pub fn catalogue_snapshots() -> Vec<(String, i64)> {
    ["2134", "2122", "3131"]
        .iter()
        .flat_map(|code| (1..=5).map(move |version| ((*code).to_owned(), version)))
        .collect()
}

/// Applies `events` in order through one consumer and reads `state`; then for each of
/// `seeds` runs, after `clear`, every event twice in a shuffled order, split between two
/// consumers running at once. `apply` handles one event as a consumer does (its own
/// transaction). Fails naming the seed whose state differs.
pub async fn two_consumers_agree_with_one<E, Apply, Applied, State, Read, Clear, Cleared, T>(
    db: &DatabaseConnection,
    events: &[E],
    seeds: std::ops::Range<u64>,
    apply: Apply,
    state: State,
    clear: Clear,
) -> anyhow::Result<T>
where
    E: Clone + Send + 'static,
    Apply: Fn(DatabaseConnection, E) -> Applied + Clone + Send + 'static,
    Applied: Future<Output = Result<(), DbErr>> + Send,
    State: Fn(DatabaseConnection) -> Read,
    Read: Future<Output = Result<T, DbErr>>,
    Clear: Fn(DatabaseConnection) -> Cleared,
    Cleared: Future<Output = Result<(), DbErr>>,
    T: PartialEq + std::fmt::Debug,
{
    clear(db.clone()).await?;
    for event in events {
        apply(db.clone(), event.clone()).await?;
    }
    let in_order = state(db.clone()).await?;
    for seed in seeds {
        clear(db.clone()).await?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut stream: Vec<E> = events.iter().chain(events.iter()).cloned().collect();
        stream.shuffle(&mut rng);
        let (left, right): (Vec<_>, Vec<_>) = stream
            .into_iter()
            .enumerate()
            .partition(|(index, _)| index % 2 == 0);
        let consume = |share: Vec<(usize, E)>| {
            let (db, apply) = (db.clone(), apply.clone());
            async move {
                for (_, event) in share {
                    apply(db.clone(), event).await?;
                }
                Ok::<_, DbErr>(())
            }
        };
        let (first, second) = tokio::join!(consume(left), consume(right));
        first?;
        second?;
        let concurrent = state(db.clone()).await?;
        anyhow::ensure!(
            concurrent == in_order,
            "seed {seed}: two consumers left {concurrent:?}, one in order {in_order:?}"
        );
    }
    Ok(in_order)
}
