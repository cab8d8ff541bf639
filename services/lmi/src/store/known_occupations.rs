//! lmi's own projection of the occupations catalogue: the SOC codes a submission may use.

use sea_orm::{ConnectionTrait, DbErr, Statement, entity::prelude::*};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "known_occupations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub soc_code: String,
    /// The occupation's version when last applied; older snapshots are ignored.
    pub version: i64,
    pub title: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Inserts or replaces the occupation if `version` is newer than the one held.
pub async fn apply_snapshot(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    version: i64,
    title: &str,
) -> Result<(), DbErr> {
    connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "INSERT INTO known_occupations (soc_code, version, title) VALUES ($1, $2, $3) \
             ON CONFLICT (soc_code) DO UPDATE SET version = excluded.version, title = excluded.title \
             WHERE excluded.version > known_occupations.version",
            [soc_code.into(), version.into(), title.into()],
        ))
        .await?;
    Ok(())
}

/// Whether `soc_code` is a known unit group.
pub async fn is_known(connection: &impl ConnectionTrait, soc_code: &str) -> Result<bool, DbErr> {
    Ok(Entity::find_by_id(soc_code.to_owned())
        .one(connection)
        .await?
        .is_some())
}

/// Deletes the whole projection (before a replay rebuilds it).
pub async fn clear(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    Entity::delete_many().exec(connection).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use careers_testkit::{postgres, projection::two_consumers_agree_with_one};
    use sea_orm::{Database, QueryOrder, TransactionTrait};
    use sea_orm_migration::MigratorTrait;

    use super::*;

    /// Snapshots of three occupations, versions 1 to 5, shuffled with redeliveries
    /// through two consumers: each code ends at its highest version, as in order.
    #[tokio::test]
    async fn two_concurrent_consumers_agree_with_one_on_postgres() -> anyhow::Result<()> {
        let database = postgres::empty_database().await?;
        let db = Database::connect(database.url.as_str()).await?;
        crate::Migrator::up(&db, None).await?;
        let snapshots = careers_testkit::projection::catalogue_snapshots();
        let held = two_consumers_agree_with_one(
            &db,
            &snapshots,
            0..20,
            |db, (code, version)| async move {
                let txn = db.begin().await?;
                apply_snapshot(&txn, &code, version, &format!("{code} v{version}")).await?;
                txn.commit().await
            },
            |db| async move { Entity::find().order_by_asc(Column::SocCode).all(&db).await },
            |db| async move { clear(&db).await },
        )
        .await?;
        let versions: Vec<i64> = held.iter().map(|model| model.version).collect();
        assert_eq!(versions, [5, 5, 5]);
        Ok(())
    }
}
