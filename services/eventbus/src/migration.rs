//! The outbox and inbox tables. A service's migrator lists [`migrations`] before its own.

use sea_orm_migration::prelude::*;

/// The event backbone's migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateOutboxAndInbox)]
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    /// The event id (UUID v7), also `Nats-Msg-Id` and `ce-id`, so a republish is
    /// de-duplicated by the broker.
    EventId,
    Subject,
    /// The proto full name, sent as `ce-type`.
    EventType,
    /// The aggregate key, sent as `ce-subject`.
    AggregateKey,
    /// Sent as `careers-key-version`; consumers apply snapshots only when newer.
    AggregateVersion,
    Payload,
    /// W3C trace context of the request that made the change.
    Traceparent,
    Tracestate,
    CreatedAt,
    /// Null until the broker acknowledged the event.
    SentAt,
    /// The stream sequence from the PubAck; the reconciler compares it with the stream.
    StreamSequence,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    /// The durable consumer name (`<consumer>_<purpose>`).
    Consumer,
    EventId,
    HandledAt,
}

/// Named explicitly: the derived name is the file's stem, which several crates' files
/// share, and names must be unique within a store.
struct CreateOutboxAndInbox;

impl MigrationName for CreateOutboxAndInbox {
    fn name(&self) -> &str {
        "m20261123_000001_eventbus_outbox_inbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutboxAndInbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Outbox::EventId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Outbox::Subject).string().not_null())
                    .col(ColumnDef::new(Outbox::EventType).string().not_null())
                    .col(ColumnDef::new(Outbox::AggregateKey).string().not_null())
                    .col(
                        ColumnDef::new(Outbox::AggregateVersion)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Outbox::Payload).blob().not_null())
                    .col(ColumnDef::new(Outbox::Traceparent).string().null())
                    .col(ColumnDef::new(Outbox::Tracestate).string().null())
                    .col(
                        ColumnDef::new(Outbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Outbox::SentAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Outbox::StreamSequence).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_unsent")
                    .table(Outbox::Table)
                    .col(Outbox::SentAt)
                    .col(Outbox::EventId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_stream_sequence")
                    .table(Outbox::Table)
                    .col(Outbox::StreamSequence)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Inbox::Consumer).string().not_null())
                    .col(ColumnDef::new(Inbox::EventId).string().not_null())
                    .col(
                        ColumnDef::new(Inbox::HandledAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::EventId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbox_handled_at")
                    .table(Inbox::Table)
                    .col(Inbox::HandledAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
