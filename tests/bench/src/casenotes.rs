//! `casenotes`: note writes (`RecordNote`) and note reads (`ListNotes` of a client holding
//! three notes) on PostgreSQL at concurrency 1 and 32, with encryption and audit on, and
//! in the same run on a second instance with both off (a no-op key source and audit sink
//! passed to `App::build` in its settings). Goals at 32: writes at least 0.7 and reads at
//! least 0.6 of the unprotected rates.

use std::sync::Arc;

use careers_casenotes::{Casenotes, protection::Protection};
use careers_platform::identity::{Identity, METADATA_KEY};
use careers_proto::careers::casenotes::v1::{
    CreateClientRequest, ListNotesRequest, RecordNoteRequest,
    casenotes_service_client::CasenotesServiceClient,
};
use careers_testkit::{
    grpc, postgres,
    service::{TestKeys, spawn_adjusted},
};
use tonic::metadata::{Ascii, MetadataValue};

/// `message` as the gateway sends it for the bench's adviser.
fn signed<T>(token: &MetadataValue<Ascii>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(METADATA_KEY, token.clone());
    request
}

use crate::search::{drive, line};

const CLIENTS: usize = 64;
const ORG: &str = "bench-org";

/// One concurrency's figures: (workers, writes/s, write latencies, reads/s, read latencies).
type Run = (usize, f64, Vec<f64>, f64, Vec<f64>);

struct Measured {
    runs: Vec<Run>,
}

async fn measure(seconds: u64, protection: Option<Protection>) -> anyhow::Result<Measured> {
    let (main, keys_db) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    let keys = Arc::new(TestKeys::new()?);
    let service = spawn_adjusted::<Casenotes>(
        &main.url,
        &[("keystore.url", keys_db.url.as_str())],
        &keys,
        |settings| {
            if let Some(protection) = protection {
                settings.service.protection = protection;
            }
        },
    )
    .await?;
    let token: MetadataValue<_> = keys
        .signer
        .sign(&Identity {
            sub: "bench-adviser".into(),
            roles: vec!["adviser".into()],
            org: Some(ORG.into()),
            ssc: None,
        })?
        .parse()?;
    let channel = grpc::channel(service.port)?;
    let mut client = CasenotesServiceClient::new(channel.clone());
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for index in 0..CLIENTS * 2 {
        let created = client
            .create_client(signed(
                &token,
                CreateClientRequest {
                    name: format!("Bench Client {index}"),
                    date_of_birth: "2008-02-03".into(),
                    stage: "school_year_12".into(),
                    email: Some(format!("bench{index}@example.org")),
                    ..CreateClientRequest::default()
                },
            ))
            .await?
            .into_inner()
            .client
            .map(|client| client.id)
            .unwrap_or_default();
        if index % 2 == 0 {
            for note in 0..3 {
                client
                    .record_note(signed(
                        &token,
                        RecordNoteRequest {
                            client_id: created.clone(),
                            text: format!(
                                "Read-side note {note}: {}",
                                "careers guidance ".repeat(20)
                            ),
                        },
                    ))
                    .await?;
            }
            readers.push(created);
        } else {
            writers.push(created);
        }
    }
    let (writers, readers) = (Arc::new(writers), Arc::new(readers));
    let text = "Discussed apprenticeships in engineering; ".repeat(12);
    let mut runs = Vec::new();
    for workers in [1, 32] {
        let write = {
            let (channel, token, text) = (channel.clone(), token.clone(), text.clone());
            move |client_id: String| {
                let (channel, token, text) = (channel.clone(), token.clone(), text.clone());
                async move {
                    CasenotesServiceClient::new(channel)
                        .record_note(signed(&token, RecordNoteRequest { client_id, text }))
                        .await?;
                    anyhow::Ok(())
                }
            }
        };
        let read = {
            let (channel, token) = (channel.clone(), token.clone());
            move |client_id: String| {
                let (channel, token) = (channel.clone(), token.clone());
                async move {
                    let notes = CasenotesServiceClient::new(channel)
                        .list_notes(signed(&token, ListNotesRequest { client_id }))
                        .await?
                        .into_inner()
                        .items;
                    anyhow::ensure!(
                        notes.len() == 3,
                        "a read client holds {} notes",
                        notes.len()
                    );
                    anyhow::Ok(())
                }
            }
        };
        let (write_rate, write_latencies) = drive(writers.clone(), workers, seconds, write).await?;
        let (read_rate, read_latencies) = drive(readers.clone(), workers, seconds, read).await?;
        runs.push((
            workers,
            write_rate,
            write_latencies,
            read_rate,
            read_latencies,
        ));
    }
    service.shutdown().await?;
    Ok(Measured { runs })
}

pub async fn casenotes(seconds: u64) -> anyhow::Result<()> {
    let seconds = seconds.min(10);
    let protected = measure(seconds, None).await?;
    let unprotected = measure(seconds, Some(Protection::unprotected())).await?;
    println!("casenotes: note writes and reads on PostgreSQL, {CLIENTS} clients each side");
    for (ours, baseline) in protected.runs.iter().zip(&unprotected.runs) {
        let (workers, write_rate, write_latencies, read_rate, read_latencies) = ours;
        let (_, base_write, base_write_latencies, base_read, base_read_latencies) = baseline;
        println!(
            "  {}",
            line("  protected writes", *workers, *write_rate, write_latencies)
        );
        println!(
            "  {}",
            line(
                "unprotected writes",
                *workers,
                *base_write,
                base_write_latencies
            )
        );
        println!(
            "  {}",
            line("  protected reads ", *workers, *read_rate, read_latencies)
        );
        println!(
            "  {}",
            line(
                "unprotected reads ",
                *workers,
                *base_read,
                base_read_latencies
            )
        );
        let goal = if *workers == 32 {
            " (goals 0.7 and 0.6)"
        } else {
            " (no goal)"
        };
        println!(
            "  c{workers}: writes {:.2}x, reads {:.2}x of unprotected{goal}",
            write_rate / base_write,
            read_rate / base_read
        );
    }
    Ok(())
}
