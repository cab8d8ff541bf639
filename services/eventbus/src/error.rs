/// What can go wrong in the event backbone. Every variant is transient from the caller's
/// point of view: the relay and consumers retry.
#[derive(Debug, thiserror::Error)]
pub enum EventbusError {
    #[error("store: {0}")]
    Store(#[from] sea_orm::DbErr),
    #[error("nats: {0}")]
    Nats(String),
    #[error("publish: {0}")]
    Publish(String),
}

impl EventbusError {
    pub(crate) fn nats(error: impl std::fmt::Display) -> Self {
        Self::Nats(error.to_string())
    }
}
