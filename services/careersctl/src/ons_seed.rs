//! The real ONS figures, sent once the system is up: they go through lmi's own pipeline
//! (validated, recorded once per key, published), which needs lmi to know the catalogue,
//! so they cannot be loaded before the services run. A rerun replays by key and adds
//! nothing.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use careers_lmi::{domain::Row, ons};
use careers_platform::identity::{self, Identity, IdentitySigner};
use careers_proto::careers::{
    lmi::v1::{
        FigureRow, FigureRows, Submission, SubmissionEnd, SubmissionHeader, SubmitFiguresRequest,
        lmi_service_client::LmiServiceClient, submit_figures_request::Part,
    },
    occupations::v1::{GetOccupationRequest, occupations_service_client::OccupationsServiceClient},
};
use tonic::transport::Channel;

/// Rows per gRPC message.
const CHUNK: usize = 5_000;

fn figure_row(row: Row) -> FigureRow {
    FigureRow {
        soc_code: row.soc_code,
        region: row.region,
        period: row.period,
        measure: row.measure,
        value: row.value,
        unit: row.unit,
        source: row.source,
        breakdown: row.breakdown,
        horizon: row.horizon,
        sample_size: row.sample_size,
        quality: row.quality,
        line: row.line,
    }
}

fn request<T>(signer: &IdentitySigner, message: T) -> anyhow::Result<tonic::Request<T>> {
    let caller = Identity {
        sub: "seed-ons".into(),
        roles: vec!["ssc_publisher".into()],
        org: None,
        ssc: Some("ons".into()),
    };
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(identity::METADATA_KEY, signer.sign(&caller)?.parse()?);
    Ok(request)
}

async fn submit(
    lmi: &mut LmiServiceClient<Channel>,
    signer: &IdentitySigner,
    submission: &ons::SeedSubmission,
    dry_run: bool,
) -> anyhow::Result<(Submission, bool)> {
    let mut messages = vec![SubmitFiguresRequest {
        part: Some(Part::Header(SubmissionHeader {
            submission_key: submission.key.clone(),
            dry_run,
            sealed: true,
        })),
    }];
    for chunk in submission.rows.chunks(CHUNK) {
        messages.push(SubmitFiguresRequest {
            part: Some(Part::Rows(FigureRows {
                rows: chunk.iter().cloned().map(figure_row).collect(),
            })),
        });
    }
    messages.push(SubmitFiguresRequest {
        part: Some(Part::End(SubmissionEnd {
            rows: submission.rows.len() as u64,
        })),
    });
    let answer = lmi
        .submit_figures(request(signer, tokio_stream::iter(messages))?)
        .await
        .with_context(|| format!("submitting {}", submission.key))?
        .into_inner();
    Ok((answer.submission.unwrap_or_default(), answer.replayed))
}

/// Sends the ONS submissions as `ons` and waits until the last one shows on its
/// occupation; returns a one-line summary.
pub async fn push(
    seeds: &Path,
    lmi_port: u16,
    occupations_port: u16,
    signer: &IdentitySigner,
) -> anyhow::Result<String> {
    let submissions = ons::submissions(seeds)?;
    let channel = |port: u16| {
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .map(|endpoint| endpoint.connect_lazy())
    };
    let mut lmi = LmiServiceClient::new(channel(lmi_port)?)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let first = submissions.first().context("no ONS seed submissions")?;
    // A dry run first: a row refused because lmi has not yet heard of its occupation
    // would be recorded under its key for good.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (answer, _) = submit(&mut lmi, signer, first, true).await?;
        if !answer
            .report
            .iter()
            .any(|entry| entry.rule == "soc_code_known")
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("lmi still does not know every SOC code after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (mut rows, mut replayed, mut suppressed) = (0, 0, 0);
    for submission in &submissions {
        let (answer, was_replayed) = submit(&mut lmi, signer, submission, false).await?;
        let counts = answer.counts.unwrap_or_default();
        if counts.rejected + counts.quarantined > 0 {
            let first = answer
                .report
                .first()
                .map(|entry| format!("row {} {}: {}", entry.row, entry.rule, entry.message))
                .unwrap_or_default();
            bail!(
                "{}: {} rows rejected and {} held for review (first: {first}). A data directory \
                 from before the registry's change_rule flag has the change rule on for ons: \
                 start from an empty ./data, or set it off with PUT /v1/lmi/sscs/ons",
                submission.key,
                counts.rejected,
                counts.quarantined,
            );
        }
        rows += counts.rows;
        suppressed += counts.suppressed;
        replayed += u64::from(was_replayed);
    }

    // Events of one submission go out in SOC code order: its last code is applied last.
    let last = submissions.last().context("no ONS seed submissions")?;
    let (soc_code, source) = last
        .rows
        .iter()
        .map(|row| (row.soc_code.clone(), row.source.clone()))
        .max()
        .context("an empty ONS submission")?;
    let mut occupations = OccupationsServiceClient::new(channel(occupations_port)?);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let occupation = occupations
            .get_occupation(request(
                signer,
                GetOccupationRequest {
                    soc_code: soc_code.clone(),
                },
            )?)
            .await?
            .into_inner()
            .occupation
            .unwrap_or_default();
        let shown = occupation
            .lmi
            .is_some_and(|lmi| lmi.figures.iter().any(|figure| figure.source == source));
        if shown {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the ONS figures did not reach occupation {soc_code} in time");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(format!(
        "ONS figures: {rows} rows in {} submissions ({suppressed} suppressed as ONS marks them; {replayed} already sent)",
        submissions.len()
    ))
}
