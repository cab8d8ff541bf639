//! The first flow below the gateway: the seeded SOC 2020 unit groups reach lmi's
//! projection; an SSC's submission is validated row by row, recorded once per key, and
//! its accepted figure reaches the occupation's LMI summary.

use std::time::Duration;

use careers_eventbus::testing::count;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::Service;
use careers_proto::careers::{
    lmi::v1::{
        FigureRow, FigureRows, SubmissionEnd, SubmissionHeader, SubmitFiguresRequest,
        lmi_service_client::LmiServiceClient, submit_figures_request::Part,
    },
    occupations::v1::{GetOccupationRequest, occupations_service_client::OccupationsServiceClient},
};
use careers_testkit::{
    eventually, grpc, nats::NatsServer, postgres, service::spawn, sqlite::TestSqlite,
};
use sea_orm::Database;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

async fn catalogue_and_figures_flow(
    occupations_url: String,
    lmi_url: String,
) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let overrides = [("nats.url", nats.url())];
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let occupations = spawn::<Occupations>(&occupations_url, &overrides).await?;
    let lmi = spawn::<Lmi>(&lmi_url, &overrides).await?;

    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    let occupations_db = Database::connect(occupations_url.as_str()).await?;
    let summary = Occupations::seed(&occupations_db, &seeds).await?;
    assert_eq!(summary, "412 unit groups read, 412 new or changed");
    // Idempotent: nothing changes, nothing is published twice.
    assert_eq!(
        Occupations::seed(&occupations_db, &seeds).await?,
        "412 unit groups read, 0 new or changed"
    );
    assert_eq!(
        count(&occupations_db, "SELECT COUNT(*) FROM outbox").await?,
        412
    );

    let lmi_db = Database::connect(lmi_url.as_str()).await?;
    eventually(WAIT, "lmi knows all 412 unit groups", || async {
        Ok(count(&lmi_db, "SELECT COUNT(*) FROM known_occupations").await? == 412)
    })
    .await?;

    // An SSC submits one good row and one bad one over lmi's gRPC API.
    assert_eq!(Lmi::seed(&lmi_db, &seeds).await?, "4 SSCs read, 4 new");
    let good = FigureRow {
        soc_code: "2134".into(),
        region: "K02000001".into(),
        period: "2024".into(),
        measure: "median_annual_pay".into(),
        breakdown: "full_time".into(),
        value: 54669.0,
        unit: "GBP".into(),
        source: "ONS ASHE 2024 provisional, table 14".into(),
        ..Default::default()
    };
    let bad = FigureRow {
        soc_code: "9999".into(),
        ..good.clone()
    };
    let submit = |token: Option<String>, key: &'static str, rows: Vec<FigureRow>| {
        let channel = grpc::channel(lmi.port);
        async move {
            let mut client = LmiServiceClient::new(channel?);
            let messages = vec![
                SubmitFiguresRequest {
                    part: Some(Part::Header(SubmissionHeader {
                        submission_key: key.into(),
                        dry_run: false,
                        sealed: false,
                    })),
                },
                SubmitFiguresRequest {
                    part: Some(Part::Rows(FigureRows { rows })),
                },
            ];
            let mut request = tonic::Request::new(tokio_stream::iter(messages));
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert(careers_platform::identity::METADATA_KEY, token.parse()?);
            }
            anyhow::Ok(client.submit_figures(request).await)
        }
    };
    let publisher = lmi.token(&["ssc_publisher"], Some("ons"))?;
    let answer = submit(
        Some(publisher.clone()),
        "ashe-2024-t14",
        vec![good.clone(), bad.clone()],
    )
    .await??
    .into_inner();
    assert!(!answer.replayed);
    let submission = answer
        .submission
        .ok_or_else(|| anyhow::anyhow!("no submission"))?;
    let counts = submission.counts.unwrap_or_default();
    assert_eq!((counts.rows, counts.accepted, counts.rejected), (2, 1, 1));
    assert_eq!(submission.report.len(), 1);
    assert_eq!(
        (
            submission.report[0].row,
            submission.report[0].field.as_str()
        ),
        (2, "soc_code")
    );

    // The same key again: the first answer, replayed; nothing recorded twice.
    let again = submit(Some(publisher), "ashe-2024-t14", vec![good.clone()])
        .await??
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        again.submission.map(|replayed| replayed.id),
        Some(submission.id.clone())
    );
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?, 1);
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM figures").await?, 1);

    // Who may submit.
    let codes = [
        (None, tonic::Code::Unauthenticated, None),
        (
            Some(lmi.token(&["adviser"], Some("ons"))?),
            tonic::Code::PermissionDenied,
            Some("forbidden"),
        ),
        (
            Some(lmi.token(&["ssc_publisher"], Some("nosuch"))?),
            tonic::Code::PermissionDenied,
            Some("unknown_ssc"),
        ),
    ];
    for (token, code, reason) in codes {
        let refused = submit(token, "other-key", vec![good.clone()])
            .await?
            .err()
            .ok_or_else(|| anyhow::anyhow!("a submission that should be refused was accepted"))?;
        assert_eq!(refused.code(), code);
        if let Some(reason) = reason {
            assert_eq!(
                refused
                    .get_details_error_info()
                    .map(|info| info.reason)
                    .as_deref(),
                Some(reason)
            );
        }
    }

    // A sealed stream records only when its end part arrives and counts every row: a
    // stream that just stops (an upload cut off on the way) or miscounts records nothing.
    let sealed = |key: &'static str, rows: Vec<FigureRow>, end: Vec<Part>| {
        let channel = grpc::channel(lmi.port);
        let token = lmi.token(&["ssc_publisher"], Some("ons"));
        async move {
            let header = Part::Header(SubmissionHeader {
                submission_key: key.into(),
                dry_run: false,
                sealed: true,
            });
            let messages: Vec<SubmitFiguresRequest> = [header, Part::Rows(FigureRows { rows })]
                .into_iter()
                .chain(end)
                .map(|part| SubmitFiguresRequest { part: Some(part) })
                .collect();
            let mut request = tonic::Request::new(tokio_stream::iter(messages));
            request
                .metadata_mut()
                .insert(careers_platform::identity::METADATA_KEY, token?.parse()?);
            anyhow::Ok(
                LmiServiceClient::new(channel?)
                    .submit_figures(request)
                    .await,
            )
        }
    };
    let end = |rows| Part::End(SubmissionEnd { rows });
    let broken = [
        ("no-end", vec![], "without its end part"),
        ("miscounted", vec![end(3)], "counts 3 rows but 1 arrived"),
        ("after-end", vec![end(1), end(1)], "nothing may follow"),
    ];
    for (key, parts, says) in broken {
        let refused = sealed(key, vec![good.clone()], parts)
            .await?
            .err()
            .ok_or_else(|| anyhow::anyhow!("{key}: a broken sealed stream was recorded"))?;
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{key}");
        assert!(
            refused.message().contains(says),
            "{key}: {}",
            refused.message()
        );
    }
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?, 1);
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM staging").await?, 0);
    let whole = sealed("sealed", vec![good.clone(), bad.clone()], vec![end(2)])
        .await??
        .into_inner();
    let counts = whole
        .submission
        .and_then(|answer| answer.counts)
        .unwrap_or_default();
    assert_eq!((counts.rows, counts.accepted), (2, 1));
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?, 2);

    // A call without the gateway's identity token is refused.
    let refused = OccupationsServiceClient::new(grpc::channel(occupations.port)?)
        .get_occupation(GetOccupationRequest {
            soc_code: "2134".into(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a call without identity was served"))?;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let token: tonic::metadata::MetadataValue<_> =
        occupations.token(&["adviser"], None)?.parse()?;
    let client = OccupationsServiceClient::with_interceptor(
        grpc::channel(occupations.port)?,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert(careers_platform::identity::METADATA_KEY, token.clone());
            Ok(request)
        },
    );
    let mut client = client;
    eventually(WAIT, "the figure shows on the occupation", || {
        let mut client = client.clone();
        async move {
            let occupation = client
                .get_occupation(GetOccupationRequest {
                    soc_code: "2134".into(),
                })
                .await?
                .into_inner()
                .occupation
                .ok_or_else(|| anyhow::anyhow!("no occupation"))?;
            Ok(occupation.lmi.is_some_and(|lmi| {
                lmi.figures.iter().any(|figure| {
                    figure.measure == "median_annual_pay"
                        && figure.value == 54669.0
                        && figure.period == "2024"
                })
            }))
        }
    })
    .await?;
    let occupation = client
        .get_occupation(GetOccupationRequest {
            soc_code: "2134".into(),
        })
        .await?
        .into_inner()
        .occupation
        .ok_or_else(|| anyhow::anyhow!("no occupation"))?;
    assert_eq!(
        occupation.title,
        "Programmers and software development professionals"
    );
    assert_eq!(occupation.version, 1);

    let malformed = client
        .get_occupation(GetOccupationRequest {
            soc_code: "21a4".into(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a malformed SOC code was accepted"))?;
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        malformed.get_details_error_info().map(|info| info.reason),
        Some("validation_failed".to_owned())
    );
    let unknown = client
        .get_occupation(GetOccupationRequest {
            soc_code: "9999".into(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown SOC code was found"))?;
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    occupations.shutdown().await?;
    lmi.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_and_figures_flow_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    catalogue_and_figures_flow(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_and_figures_flow_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    catalogue_and_figures_flow(occupations.url.clone(), lmi.url.clone()).await
}
