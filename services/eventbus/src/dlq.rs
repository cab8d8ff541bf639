//! Reading and re-driving dead letters (`careersctl dlq list|replay`).

use async_nats::jetstream::{self, stream::RawMessageErrorKind};

use crate::{
    EventbusError,
    catalogue::{DEAD_LETTERS, dead_letter_subject},
    envelope,
};

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in `CAREERS_DEADLETTER`.
    pub sequence: u64,
    pub durable: String,
    pub event_id: String,
    pub event_type: String,
    /// The subject it was first published on.
    pub subject: String,
    pub reason: String,
    pub deliveries: String,
}

/// Dead letters, oldest first; of one durable when given.
pub async fn list(
    jetstream: &jetstream::Context,
    durable: Option<&str>,
) -> Result<Vec<(DeadLetter, jetstream::message::StreamMessage)>, EventbusError> {
    let mut stream = jetstream
        .get_stream(DEAD_LETTERS.name)
        .await
        .map_err(EventbusError::nats)?;
    let state = stream
        .info()
        .await
        .map_err(EventbusError::nats)?
        .state
        .clone();
    let wanted = durable.map(dead_letter_subject);
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => continue,
            Err(error) => return Err(EventbusError::nats(error)),
        };
        if wanted
            .as_deref()
            .is_some_and(|subject| subject != message.subject.as_str())
        {
            continue;
        }
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default()
        };
        let letter = DeadLetter {
            sequence,
            durable: message
                .subject
                .as_str()
                .trim_start_matches("careers.deadletter.")
                .to_owned(),
            event_id: header(envelope::CE_ID),
            event_type: header(envelope::CE_TYPE),
            subject: header(envelope::DLQ_SUBJECT),
            reason: header(envelope::DLQ_REASON),
            deliveries: header(envelope::DLQ_DELIVERIES),
        };
        letters.push((letter, message));
    }
    Ok(letters)
}

/// Re-drives the dead letters of `durable` (or only the one at `sequence`): each is
/// republished on its original subject with its original event id (so every consumer
/// that already applied it skips it) and then removed from the dead-letter stream.
/// Returns how many were re-driven.
pub async fn replay(
    jetstream: &jetstream::Context,
    durable: &str,
    sequence: Option<u64>,
) -> Result<usize, EventbusError> {
    let stream = jetstream
        .get_stream(DEAD_LETTERS.name)
        .await
        .map_err(EventbusError::nats)?;
    let mut replayed = 0;
    for (letter, message) in list(jetstream, Some(durable)).await? {
        if sequence.is_some_and(|wanted| wanted != letter.sequence) {
            continue;
        }
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in message.headers.iter() {
            let dead_letter_only = [
                envelope::DLQ_REASON,
                envelope::DLQ_DELIVERIES,
                envelope::DLQ_SUBJECT,
            ]
            .contains(&name.as_ref());
            if !dead_letter_only {
                for value in values {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        // A new message id: the original one may still sit in the duplicate window.
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}.replay.{}", letter.event_id, letter.sequence).as_str(),
        );
        crate::provision::publish_and_wait(
            jetstream,
            letter.subject.clone(),
            message.payload.clone(),
            headers,
        )
        .await?;
        stream
            .delete_message(letter.sequence)
            .await
            .map_err(EventbusError::nats)?;
        tracing::info!(durable, event_id = %letter.event_id, "dead letter re-driven");
        replayed += 1;
    }
    Ok(replayed)
}
