//! Acceptance 6 and 7: a genuine `EngagementCompleted` through the eventbus on a real
//! nats-server becomes a Gatsby encounter; casenotes' events carry no personal data.

use std::time::Duration;

use careers_eventbus::{
    Eventbus, catalogue,
    settings::{EventSettings, NatsSettings},
};
use careers_proto::careers::{
    ambassadors::events::v1::EngagementCompleted,
    casenotes::{
        events::v1::{ClientErased, NoteRecorded, ReferralRequested},
        v1 as api,
    },
};
use careers_testkit::{eventually, nats::NatsServer, sqlite::TestSqlite};
use chrono::{Days, Utc};
use prost::Message;
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

use crate::{Secrets, Service, Stores, new_client};

#[tokio::test]
async fn a_completed_engagement_becomes_an_encounter_for_the_client_and_the_school()
-> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let nats_url = nats.url();
    let stores = Stores::sqlite()?;
    let secrets = Secrets::new()?;
    let mut service =
        Service::start_with(&stores, &secrets, &[("nats.url", nats_url.as_str())]).await?;
    let org = "105574";
    let client_id = service.create_client(org, "Gatsby Pupil").await?;
    let consent = service.adviser(
        org,
        api::RecordConsentRequest {
            client_id: client_id.clone(),
            purpose: "ambassador_sharing".into(),
            granted: Some(true),
        },
    )?;
    service.client.record_consent(consent).await?;
    let window = (Utc::now().date_naive() + Days::new(10)).to_string();
    let referral = service
        .client
        .request_referral(service.adviser(
            org,
            api::RequestReferralRequest {
                client_id: client_id.clone(),
                activity_type: "workplace_visit".into(),
                earliest: window.clone(),
                latest: window,
                ..Default::default()
            },
        )?)
        .await?
        .into_inner()
        .referral
        .ok_or_else(|| anyhow::anyhow!("no referral"))?;

    // The ambassadors side: its own store and outbox, published by its relay.
    let ambassadors = Producer::start(&nats_url, "ambassadors", catalogue::AMBASSADORS).await?;
    let completed_on = Utc::now().date_naive().to_string();
    let event = EngagementCompleted {
        engagement_id: "eng-1".into(),
        request_id: "req-1".into(),
        school_urn: "105574".into(),
        referral_id: referral.id.clone(),
        activity_date: completed_on.clone(),
        client_id: String::new(),
        activity_type: "workplace_visit".into(),
    };
    // Twice, as a producer that retried would send it (two event ids): counted once.
    for _ in 0..2 {
        ambassadors.publish("eng-1", 1, &event).await?;
    }

    let gatsby = |service: &Service| {
        service.adviser(
            org,
            api::GetClientGatsbyRequest {
                client_id: client_id.clone(),
            },
        )
    };
    let mut client = service.client.clone();
    eventually(
        Duration::from_secs(20),
        "the encounter reaches the client",
        || {
            let request = gatsby(&service);
            let mut client = client.clone();
            async move {
                let report = client.get_client_gatsby(request?).await?.into_inner();
                Ok(report.encounters.len() == 1)
            }
        },
    )
    .await?;
    let report = client
        .get_client_gatsby(gatsby(&service)?)
        .await?
        .into_inner();
    let six = report.benchmarks.iter().find(|count| count.benchmark == 6);
    assert_eq!(
        six.map(|count| (count.encounters, count.latest.clone())),
        Some((1, Some(completed_on)))
    );
    assert_eq!(report.encounters[0].source, "engagement");

    let school = service
        .client
        .get_school_gatsby(service.as_(
            "contact",
            &["school_contact"],
            "105574",
            api::GetSchoolGatsbyRequest {
                urn: "105574".into(),
                academic_year: 0,
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(
        school
            .benchmarks
            .iter()
            .find(|count| count.benchmark == 6)
            .map(|count| count.encounters),
        Some(1)
    );
    // Another school's contact cannot read it.
    let other = service
        .client
        .get_school_gatsby(service.as_(
            "contact",
            &["school_contact"],
            "100000",
            api::GetSchoolGatsbyRequest {
                urn: "105574".into(),
                academic_year: 0,
            },
        )?)
        .await;
    assert_eq!(crate::failure(other).0, tonic::Code::PermissionDenied);
    // An interaction of type guidance_interview counts as benchmark 8.
    let interaction = service.adviser(
        org,
        api::RecordInteractionRequest {
            client_id: client_id.clone(),
            date: Utc::now().date_naive().to_string(),
            channel: "face_to_face".into(),
            r#type: "guidance_interview".into(),
        },
    )?;
    service.client.record_interaction(interaction).await?;
    let report = client
        .get_client_gatsby(gatsby(&service)?)
        .await?
        .into_inner();
    let counts: Vec<(u32, u32)> = report
        .benchmarks
        .iter()
        .map(|count| (count.benchmark, count.encounters))
        .collect();
    assert_eq!(counts, [(5, 0), (6, 1), (8, 1)]);
    ambassadors.stop.cancel();
    service.stop().await
}

/// Another service's store, outbox and relay on the test's nats-server.
struct Producer {
    db: sea_orm::DatabaseConnection,
    bus: Eventbus,
    stop: CancellationToken,
    _store: TestSqlite,
}

impl Producer {
    async fn start(
        nats_url: &str,
        service: &str,
        stream: catalogue::StreamName,
    ) -> anyhow::Result<Self> {
        let store = TestSqlite::new()?;
        let db = Database::connect(store.url.as_str()).await?;
        careers_eventbus::testing::Migrator::up(&db, None).await?;
        let stop = CancellationToken::new();
        let bus = Eventbus::for_service(
            service,
            db.clone(),
            stream,
            &EventSettings {
                nats: NatsSettings {
                    url: nats_url.to_owned(),
                    ..NatsSettings::default()
                },
                ..EventSettings::default()
            },
            stop.clone(),
        )
        .await?;
        Ok(Self {
            db,
            bus,
            stop,
            _store: store,
        })
    }

    /// Commits `event` to the outbox and wakes the relay.
    async fn publish<E: careers_eventbus::Event>(
        &self,
        key: &str,
        version: i64,
        event: &E,
    ) -> anyhow::Result<()> {
        let txn = careers_eventbus::begin_write(&self.db).await?;
        careers_eventbus::enqueue(&txn, key, version, event).await?;
        txn.commit().await?;
        self.bus.waker().wake();
        Ok(())
    }
}

#[tokio::test]
async fn the_catalogue_projection_follows_occupation_upserted() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let nats_url = nats.url();
    let stores = Stores::sqlite()?;
    let secrets = Secrets::new()?;
    let mut service =
        Service::start_with(&stores, &secrets, &[("nats.url", nats_url.as_str())]).await?;
    let org = "org-plans";
    let client_id = service.create_client(org, "Plan Maker").await?;
    let plan = |service: &Service| {
        service.adviser(
            org,
            api::PutActionPlanRequest {
                client_id: client_id.clone(),
                actions: vec![api::Action {
                    goal: "Meet a software developer".into(),
                    due_date: "2027-01-15".into(),
                    status: "not_started".into(),
                    soc_codes: vec!["2134".into()],
                }],
                expected_version: 0,
            },
        )
    };
    // Not in the catalogue yet.
    let refused = service.client.put_action_plan(plan(&service)?).await;
    assert_eq!(crate::failure(refused).0, tonic::Code::InvalidArgument);
    let occupations = Producer::start(&nats_url, "occupations", catalogue::OCCUPATIONS).await?;
    let upserted = careers_proto::careers::occupations::events::v1::OccupationUpserted {
        soc_code: "2134".into(),
        version: 1,
        title: "Programmers and software development professionals".into(),
        ..Default::default()
    };
    occupations.publish("2134", 1, &upserted).await?;
    let client = service.client.clone();
    eventually(
        Duration::from_secs(20),
        "the SOC code reaches casenotes",
        || {
            let request = plan(&service);
            let mut client = client.clone();
            async move { Ok(client.put_action_plan(request?).await.is_ok()) }
        },
    )
    .await?;
    occupations.stop.cancel();
    service.stop().await
}

/// Field names that would carry personal data if an event ever grew them.
const PERSONAL: [&str; 12] = [
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "dob",
    "uln",
    "text",
    "address",
    "postcode",
    "priority_groups",
];

#[test]
fn no_casenotes_event_declares_a_personal_field() -> anyhow::Result<()> {
    let descriptors = prost_types::FileDescriptorSet::decode(careers_proto::FILE_DESCRIPTOR_SET)?;
    let (mut messages, mut checked) = (0, 0);
    for file in descriptors.file {
        if file.package() != "careers.casenotes.events.v1" {
            continue;
        }
        for message in file.message_type {
            messages += 1;
            for field in &message.field {
                checked += 1;
                assert!(
                    !PERSONAL.contains(&field.name()),
                    "{}.{} looks like personal data",
                    message.name(),
                    field.name()
                );
            }
        }
    }
    // NoteRecorded, ReferralRequested, ClientErased: every field of each.
    assert_eq!(
        (messages, checked),
        (3, 19),
        "the descriptor set changed: review the new fields"
    );
    Ok(())
}

#[tokio::test]
async fn casenotes_event_instances_carry_no_personal_values() -> anyhow::Result<()> {
    let stores = Stores::sqlite()?;
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let org = "org-events";
    let name = "Personal Nameforevents";
    let request = service.adviser(
        org,
        api::CreateClientRequest {
            email: Some("personal.events@example.org".into()),
            ..new_client(name)
        },
    )?;
    let client_id = service
        .client
        .create_client(request)
        .await?
        .into_inner()
        .client
        .map(|c| c.id)
        .unwrap_or_default();
    let note_text = "note-text-that-must-stay-private";
    service
        .client
        .record_note(service.adviser(
            org,
            api::RecordNoteRequest {
                client_id: client_id.clone(),
                text: note_text.into(),
            },
        )?)
        .await?;
    service
        .client
        .record_consent(service.adviser(
            org,
            api::RecordConsentRequest {
                client_id: client_id.clone(),
                purpose: "ambassador_sharing".into(),
                granted: Some(true),
            },
        )?)
        .await?;
    let window = (Utc::now().date_naive() + Days::new(3)).to_string();
    service
        .client
        .request_referral(service.adviser(
            org,
            api::RequestReferralRequest {
                client_id: client_id.clone(),
                activity_type: "talk".into(),
                subjects: vec!["physics".into()],
                soc_codes: vec!["2113".into()],
                earliest: window.clone(),
                latest: window,
            },
        )?)
        .await?;
    service
        .client
        .erase_client(service.supervisor(
            org,
            api::EraseClientRequest {
                client_id: client_id.clone(),
            },
        )?)
        .await?;
    service.stop().await?;

    let db = Database::connect(stores.main.as_str()).await?;
    let rows = db
        .query_all_raw(careers_eventbus::testing::statement(
            &db,
            "SELECT subject, payload FROM outbox ORDER BY created_at",
            vec![],
        ))
        .await?;
    let mut subjects = Vec::new();
    for row in rows {
        let (subject, payload): (String, Vec<u8>) =
            (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        for value in [
            name,
            "personal.events@example.org",
            note_text,
            "2010-03-14",
            "M1",
        ] {
            assert!(
                !payload
                    .windows(value.len())
                    .any(|window| window == value.as_bytes()),
                "{subject} carries {value:?}"
            );
        }
        // Each decodes as its declared message.
        match subject.as_str() {
            "careers.casenotes.v1.note_recorded" => drop(NoteRecorded::decode(payload.as_slice())?),
            "careers.casenotes.v1.referral_requested" => {
                let referral = ReferralRequested::decode(payload.as_slice())?;
                // Located by the school, so the district is left out.
                assert_eq!(
                    (
                        referral.school_urn.as_str(),
                        referral.postcode_district.as_str()
                    ),
                    ("105574", "")
                );
                assert_eq!(referral.stage, "school_year_10");
            }
            "careers.casenotes.v1.client_erased" => drop(ClientErased::decode(payload.as_slice())?),
            other => anyhow::bail!("unexpected event {other}"),
        }
        subjects.push(subject);
    }
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    Ok(())
}

/// Rows of `sql` as text columns, for comparing projection states.
async fn rows(
    db: &sea_orm::DatabaseConnection,
    sql: &str,
) -> Result<Vec<Vec<String>>, sea_orm::DbErr> {
    let found = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    found
        .iter()
        .map(|row| {
            (0..row.column_names().len())
                .map(|index| {
                    row.try_get_by_index::<String>(index)
                        .or_else(|_| row.try_get_by_index::<i64>(index).map(|n| n.to_string()))
                        .or_else(|_| row.try_get_by_index::<i32>(index).map(|n| n.to_string()))
                })
                .collect()
        })
        .collect()
}

/// casenotes' projections on a deployment with two replicas: catalogue snapshots and
/// engagement encounters, shuffled with redeliveries through two consumers at once, end
/// as one in-order consumer leaves them.
#[tokio::test]
async fn two_concurrent_consumers_agree_with_one_on_postgres() -> anyhow::Result<()> {
    use careers_casenotes::store;
    use careers_testkit::{postgres, projection::two_consumers_agree_with_one};
    use sea_orm::TransactionTrait;
    let database = postgres::empty_database().await?;
    let db = Database::connect(database.url.as_str()).await?;
    careers_casenotes::Migrator::up(&db, None).await?;

    let snapshots = careers_testkit::projection::catalogue_snapshots();
    let catalogue = two_consumers_agree_with_one(
        &db,
        &snapshots,
        0..10,
        |db, (code, version)| async move {
            let txn = db.begin().await?;
            store::apply_occupation(&txn, &code, version).await?;
            txn.commit().await
        },
        |db| async move {
            rows(
                &db,
                "SELECT soc_code, version FROM known_occupations ORDER BY soc_code",
            )
            .await
        },
        |db| async move {
            db.execute_unprepared("DELETE FROM known_occupations")
                .await
                .map(|_| ())
        },
    )
    .await?;
    assert!(catalogue.iter().all(|row| row[1] == "5"), "{catalogue:?}");

    let encounters: Vec<store::EncounterRow> = (0..6)
        .flat_map(|engagement| {
            ["school:105574", &format!("client:c{}", engagement % 2)].map(|subject| {
                store::EncounterRow {
                    subject: subject.to_owned(),
                    benchmark: 5,
                    date: "2026-11-02".into(),
                    source: "engagement".into(),
                    source_id: format!("e{engagement}"),
                }
            })
        })
        .collect();
    let held = two_consumers_agree_with_one(
        &db,
        &encounters,
        0..10,
        |db, encounter| async move {
            let txn = db.begin().await?;
            store::insert_encounter(&txn, &encounter).await?;
            txn.commit().await
        },
        |db| async move {
            rows(
                &db,
                "SELECT subject, source_id FROM encounters ORDER BY subject, source_id",
            )
            .await
        },
        |db| async move {
            db.execute_unprepared("DELETE FROM encounters")
                .await
                .map(|_| ())
        },
    )
    .await?;
    assert_eq!(
        held.len(),
        encounters.len(),
        "each engagement counted once per subject"
    );
    Ok(())
}
