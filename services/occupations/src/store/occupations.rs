//! The catalogue rows.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, QueryOrder, QuerySelect, entity::prelude::*,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "occupations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub soc_code: String,
    pub title: String,
    pub major_group: String,
    pub sub_major_group: String,
    pub minor_group: String,
    pub description: String,
    /// JSON array of strings.
    pub tasks: String,
    pub entry_routes_text: String,
    /// JSON array of strings.
    pub related_job_titles: String,
    pub version: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The content of a unit group, as the seeder or an editor sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub soc_code: String,
    pub title: String,
    pub major_group: String,
    pub sub_major_group: String,
    pub minor_group: String,
    pub description: String,
    pub tasks: Vec<String>,
    pub entry_routes_text: String,
    pub related_job_titles: Vec<String>,
}

impl Model {
    pub fn content(&self) -> Content {
        Content {
            soc_code: self.soc_code.clone(),
            title: self.title.clone(),
            major_group: self.major_group.clone(),
            sub_major_group: self.sub_major_group.clone(),
            minor_group: self.minor_group.clone(),
            description: self.description.clone(),
            tasks: serde_json::from_str(&self.tasks).unwrap_or_default(),
            entry_routes_text: self.entry_routes_text.clone(),
            related_job_titles: serde_json::from_str(&self.related_job_titles).unwrap_or_default(),
        }
    }
}

pub async fn find(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(soc_code.to_owned())
        .one(connection)
        .await
}

/// A page in SOC code order, after `after` when given.
pub async fn page(
    connection: &impl ConnectionTrait,
    after: Option<&str>,
    major_group: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::SocCode).limit(limit);
    if let Some(after) = after {
        query = query.filter(Column::SocCode.gt(after));
    }
    if let Some(major_group) = major_group {
        query = query.filter(Column::MajorGroup.eq(major_group));
    }
    query.all(connection).await
}

/// Writes `content` when it differs from what is stored, bumping the version. Returns
/// the stored row when something changed, `None` when it was already so.
pub async fn upsert(
    connection: &impl ConnectionTrait,
    content: &Content,
) -> Result<Option<Model>, DbErr> {
    let existing = find(connection, &content.soc_code).await?;
    if existing
        .as_ref()
        .is_some_and(|row| row.content() == *content)
    {
        return Ok(None);
    }
    let version = existing.as_ref().map_or(1, |row| row.version + 1);
    let row = ActiveModel {
        soc_code: Set(content.soc_code.clone()),
        title: Set(content.title.clone()),
        major_group: Set(content.major_group.clone()),
        sub_major_group: Set(content.sub_major_group.clone()),
        minor_group: Set(content.minor_group.clone()),
        description: Set(content.description.clone()),
        tasks: Set(serde_json::to_string(&content.tasks)
            .map_err(|error| DbErr::Json(error.to_string()))?),
        entry_routes_text: Set(content.entry_routes_text.clone()),
        related_job_titles: Set(serde_json::to_string(&content.related_job_titles)
            .map_err(|error| DbErr::Json(error.to_string()))?),
        version: Set(version),
        updated_at: Set(Utc::now()),
    };
    let stored = if existing.is_some() {
        row.update(connection).await?
    } else {
        row.insert(connection).await?
    };
    Ok(Some(stored))
}
