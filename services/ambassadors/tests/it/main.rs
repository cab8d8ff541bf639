//! The ambassadors service through its gRPC API, on SQLite and PostgreSQL, as the
//! gateway calls it: the statuses of bad input, the roles, and matching runs.

use std::{sync::Arc, time::Duration};

use careers_ambassadors::{Ambassadors, Migrator, store};
use careers_platform::identity::Identity;
use careers_proto::careers::ambassadors::v1::{
    self as api, ambassadors_service_client::AmbassadorsServiceClient,
};
use careers_testkit::{
    postgres, repository_root,
    service::{RunningService, TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use chrono::{Days, Utc};
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

/// A running ambassadors service on one store, and a client of it.
struct Service {
    running: RunningService,
    client: AmbassadorsServiceClient<Channel>,
    keys: Arc<TestKeys>,
    url: String,
}

/// One value of the first row of `sql` with `$1` bound to `id`.
async fn scalar<T: sea_orm::TryGetable>(
    db: &sea_orm::DatabaseConnection,
    sql: &str,
    id: &str,
) -> anyhow::Result<T> {
    let statement =
        sea_orm::Statement::from_sql_and_values(db.get_database_backend(), sql, [id.into()]);
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row for {sql}"))?;
    Ok(row.try_get_by_index(0)?)
}

impl Service {
    async fn start(url: &str) -> anyhow::Result<Self> {
        // The catalogue's projection, as OccupationUpserted would leave it.
        let db = Database::connect(url).await?;
        Migrator::up(&db, None).await?;
        for (code, sub_major, discipline) in
            [("2122", "21", "engineering"), ("2134", "21", "technology")]
        {
            store::apply_occupation(&db, code, 1, sub_major, discipline).await?;
        }
        db.close().await?;
        let keys = Arc::new(TestKeys::new()?);
        let running = spawn_trusting::<Ambassadors>(url, &[], &keys).await?;
        let client = AmbassadorsServiceClient::new(
            Channel::from_shared(format!("http://127.0.0.1:{}", running.port))?.connect_lazy(),
        );
        Ok(Self {
            running,
            client,
            keys,
            url: url.to_owned(),
        })
    }

    fn as_<T>(
        &self,
        sub: &str,
        roles: &[&str],
        org: Option<&str>,
        message: T,
    ) -> anyhow::Result<Request<T>> {
        let token = self.keys.signer.sign(&Identity {
            sub: sub.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            org: org.map(str::to_owned),
            ssc: None,
        })?;
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(careers_platform::identity::METADATA_KEY, token.parse()?);
        Ok(request)
    }

    fn coordinator<T>(&self, message: T) -> anyhow::Result<Request<T>> {
        self.as_("coordinator-1", &["ambassador_coordinator"], None, message)
    }

    async fn register(
        &mut self,
        message: api::RegisterAmbassadorRequest,
    ) -> anyhow::Result<String> {
        let request = self.coordinator(message)?;
        let answer = self.client.register_ambassador(request).await?.into_inner();
        Ok(answer
            .ambassador
            .map(|ambassador| ambassador.id)
            .unwrap_or_default())
    }

    async fn ask(&mut self, message: api::CreateActivityRequestRequest) -> anyhow::Result<String> {
        let request = self.coordinator(message)?;
        let answer = self
            .client
            .create_activity_request(request)
            .await?
            .into_inner();
        Ok(answer.request.map(|request| request.id).unwrap_or_default())
    }

    async fn finished(&mut self, id: &str) -> anyhow::Result<api::GetMatchingRunResponse> {
        for _ in 0..200 {
            let request = self.coordinator(api::GetMatchingRunRequest { id: id.to_owned() })?;
            let run = self.client.get_matching_run(request).await?.into_inner();
            if run.status != "running" {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("run {id} still running after 10 s")
    }
}

fn date(days_from_now: u64) -> String {
    Utc::now()
        .date_naive()
        .checked_add_days(Days::new(days_from_now))
        .map(|date| date.to_string())
        .unwrap_or_default()
}

/// A week inside one calendar month (capacity is per month), a month or two ahead.
fn one_month_window() -> api::DateRange {
    use chrono::Datelike;
    let today = Utc::now().date_naive();
    let start = today
        .with_day(1)
        .and_then(|first| first.checked_add_months(chrono::Months::new(2)))
        .and_then(|first| first.checked_add_days(Days::new(7)))
        .unwrap_or(today);
    let end = start.checked_add_days(Days::new(6)).unwrap_or(start);
    api::DateRange {
        from: start.to_string(),
        to: end.to_string(),
    }
}

/// Manchester: M1's centroid, and a secondary school a few km away.
const NEAR_SCHOOL: &str = "105574";

fn registration() -> api::RegisterAmbassadorRequest {
    api::RegisterAmbassadorRequest {
        name: "Ada Example".into(),
        employer: "Example Engineering Ltd".into(),
        soc_code: "2122".into(),
        subjects: vec!["physics".into()],
        expertise: vec![],
        postcode_district: "M1".into(),
        travel_radius_km: 30.0,
        availability: Some(api::Availability {
            weekdays: ["monday", "tuesday", "wednesday", "thursday", "friday"]
                .map(str::to_owned)
                .to_vec(),
            ranges: vec![api::DateRange {
                from: date(0),
                to: date(200),
            }],
        }),
        monthly_capacity: 1,
        dbs_checked_on: date(0)
            .parse::<chrono::NaiveDate>()
            .ok()
            .and_then(|today| today.checked_sub_days(Days::new(100)))
            .map(|day| day.to_string())
            .unwrap_or_default(),
        training: vec!["safeguarding".into()],
        role_model: None,
        role_model_consent: false,
    }
}

fn asking(urn: &str) -> api::CreateActivityRequestRequest {
    api::CreateActivityRequestRequest {
        school_urn: urn.into(),
        activity_type: "talk".into(),
        subjects: vec!["physics".into()],
        year_group: 9,
        audience_size: 60,
        window: Some(one_month_window()),
        ambassadors_wanted: 1,
        preferred_sector: String::new(),
        wants_diversity: false,
    }
}

fn failure<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    match result {
        Ok(answer) => (Code::Ok, format!("{answer:?}")),
        Err(status) => (
            status.code(),
            status
                .get_details_error_info()
                .map(|info| info.reason)
                .unwrap_or_default(),
        ),
    }
}

async fn bad_input_and_roles(url: &str) -> anyhow::Result<()> {
    let mut service = Service::start(url).await?;
    let invalid = |code: &str| (Code::InvalidArgument, code.to_owned());
    let cases = [
        (
            api::RegisterAmbassadorRequest {
                soc_code: "9999".into(),
                ..registration()
            },
            "unknown_soc_code",
        ),
        (
            api::RegisterAmbassadorRequest {
                soc_code: "12".into(),
                ..registration()
            },
            "validation_failed",
        ),
        (
            api::RegisterAmbassadorRequest {
                postcode_district: "QQ1".into(),
                ..registration()
            },
            "unknown_postcode_district",
        ),
        (
            api::RegisterAmbassadorRequest {
                dbs_checked_on: "2020-01-01".into(),
                ..registration()
            },
            "dbs_expired",
        ),
        (
            api::RegisterAmbassadorRequest {
                availability: Some(api::Availability {
                    weekdays: vec!["monday".into()],
                    ranges: vec![api::DateRange {
                        from: date(10),
                        to: date(5),
                    }],
                }),
                ..registration()
            },
            "empty_window",
        ),
    ];
    for (message, code) in cases {
        let request = service.coordinator(message)?;
        assert_eq!(
            failure(service.client.register_ambassador(request).await),
            invalid(code)
        );
    }
    let unlocated = careers_ambassadors::geo::Places::load(&repository_root().join("seeds"))?
        .schools()
        .into_iter()
        .find(|school| school.location.is_none())
        .map(|school| school.urn.clone())
        .unwrap_or_default();
    let cases = [
        (asking("999999"), "unknown_school"),
        (asking(&unlocated), "school_location_unknown"),
        (
            api::CreateActivityRequestRequest {
                window: Some(api::DateRange {
                    from: date(20),
                    to: date(14),
                }),
                ..asking(NEAR_SCHOOL)
            },
            "empty_window",
        ),
    ];
    for (message, code) in cases {
        let request = service.coordinator(message)?;
        assert_eq!(
            failure(service.client.create_activity_request(request).await),
            invalid(code)
        );
    }

    // Roles: a school contact asks for its own school only and sees only its own requests;
    // an ambassador reads its own record only; an adviser has no business here.
    let own = service.register(registration()).await?;
    let other = service.register(registration()).await?;
    let request = service.as_(
        &own,
        &["ambassador"],
        None,
        api::GetAmbassadorRequest { id: own.clone() },
    )?;
    let read = service.client.get_ambassador(request).await?.into_inner();
    let ambassador = read.ambassador.unwrap_or_default();
    assert_eq!(
        (
            ambassador.sector.as_str(),
            ambassador.stem_discipline.as_str()
        ),
        ("21", "engineering")
    );
    assert_eq!(ambassador.dbs_status, "valid");
    let request = service.as_(
        &own,
        &["ambassador"],
        None,
        api::GetAmbassadorRequest { id: other.clone() },
    )?;
    assert_eq!(
        failure(service.client.get_ambassador(request).await).0,
        Code::NotFound
    );
    let contact = |urn: &str| Some(urn.to_owned());
    let request = service.as_(
        "head@school",
        &["school_contact"],
        contact(NEAR_SCHOOL).as_deref(),
        asking("100000"),
    )?;
    assert_eq!(
        failure(service.client.create_activity_request(request).await).0,
        Code::PermissionDenied
    );
    let request = service.as_(
        "head@school",
        &["school_contact"],
        Some(NEAR_SCHOOL),
        asking(NEAR_SCHOOL),
    )?;
    let mine = service
        .client
        .create_activity_request(request)
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    let theirs = service.ask(asking("100000")).await?;
    let request = service.as_(
        "head@school",
        &["school_contact"],
        Some(NEAR_SCHOOL),
        api::GetActivityRequestRequest { id: theirs },
    )?;
    assert_eq!(
        failure(service.client.get_activity_request(request).await).0,
        Code::NotFound
    );
    let request = service.as_(
        "head@school",
        &["school_contact"],
        Some(NEAR_SCHOOL),
        api::ListActivityRequestsRequest::default(),
    )?;
    let listed = service
        .client
        .list_activity_requests(request)
        .await?
        .into_inner();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|item| item.id.clone())
            .collect::<Vec<_>>(),
        vec![mine.id]
    );
    let request = service.as_(
        "adviser-1",
        &["adviser"],
        Some("college-1"),
        api::ListAmbassadorsRequest::default(),
    )?;
    assert_eq!(
        failure(service.client.list_ambassadors(request).await).0,
        Code::PermissionDenied
    );
    let request = service.as_(
        "head@school",
        &["school_contact"],
        Some(NEAR_SCHOOL),
        api::StartMatchingRunRequest {},
    )?;
    assert_eq!(
        failure(service.client.start_matching_run(request).await).0,
        Code::PermissionDenied
    );

    // Updates: a merge patch at the version read.
    let update = |id: &str, version: i64, patch: &str| api::UpdateAmbassadorRequest {
        id: id.to_owned(),
        expected_version: version,
        merge_patch: patch.to_owned(),
    };
    let request = service.coordinator(update(&other, 0, r#"{"travel_radius_km": 10}"#))?;
    assert_eq!(
        failure(service.client.update_ambassador(request).await),
        (Code::FailedPrecondition, "if_match_required".to_owned())
    );
    let request = service.coordinator(update(
        &other,
        1,
        r#"{"travel_radius_km": 10, "expertise": ["bridges"]}"#,
    ))?;
    let updated = service
        .client
        .update_ambassador(request)
        .await?
        .into_inner()
        .ambassador
        .unwrap_or_default();
    assert_eq!((updated.version, updated.travel_radius_km), (2, 10.0));
    assert_eq!(
        (updated.name.as_str(), updated.expertise.clone()),
        ("Ada Example", vec!["bridges".to_owned()])
    );
    let request = service.coordinator(update(&other, 1, r#"{"travel_radius_km": 12}"#))?;
    assert_eq!(
        failure(service.client.update_ambassador(request).await),
        (Code::Aborted, "version_conflict".to_owned())
    );
    let request = service.coordinator(update(&other, 2, r#"{"shoe_size": 9}"#))?;
    assert_eq!(
        failure(service.client.update_ambassador(request).await).0,
        Code::InvalidArgument
    );
    let request = service.coordinator(update(&other, 2, r#"{"postcode_district": "ZZ99"}"#))?;
    assert_eq!(
        failure(service.client.update_ambassador(request).await),
        invalid("unknown_postcode_district")
    );
    let request = service.as_(
        &other,
        &["ambassador"],
        None,
        update(&other, 2, r#"{"monthly_capacity": 3}"#),
    )?;
    let own_update = service
        .client
        .update_ambassador(request)
        .await?
        .into_inner()
        .ambassador
        .unwrap_or_default();
    assert_eq!((own_update.version, own_update.monthly_capacity), (3, 3));
    let request = service.as_(
        "head@school",
        &["school_contact"],
        Some(NEAR_SCHOOL),
        update(&other, 3, "{}"),
    )?;
    assert_eq!(
        failure(service.client.update_ambassador(request).await).0,
        Code::PermissionDenied
    );

    // Role-model attributes: only with consent; sealed at rest; shown to coordinators
    // only, each read audited; dropped on erasure.
    let modelled = |consent: bool| api::RegisterAmbassadorRequest {
        role_model: Some(api::RoleModel {
            gender: "female".into(),
            ethnicity: String::new(),
            first_in_family_at_university: true,
            apprenticeship_route: false,
        }),
        role_model_consent: consent,
        ..registration()
    };
    let request = service.coordinator(modelled(false))?;
    assert_eq!(
        failure(service.client.register_ambassador(request).await),
        (Code::FailedPrecondition, "consent_required".to_owned())
    );
    let role_model = service.register(modelled(true)).await?;
    let db = Database::connect(service.url.as_str()).await?;
    let sealed: Vec<u8> = scalar(
        &db,
        "SELECT role_model FROM ambassadors WHERE id = $1",
        &role_model,
    )
    .await?;
    assert!(!sealed.is_empty() && !sealed.windows(6).any(|window| window == b"female"));
    let reads = || {
        scalar::<i64>(
            &db,
            "SELECT COUNT(*) FROM attribute_reads WHERE ambassador_id = $1",
            &role_model,
        )
    };
    let before = reads().await?;
    let request = service.coordinator(api::GetAmbassadorRequest {
        id: role_model.clone(),
    })?;
    let seen = service
        .client
        .get_ambassador(request)
        .await?
        .into_inner()
        .ambassador
        .unwrap_or_default();
    assert_eq!(
        seen.role_model.map(|model| model.gender),
        Some("female".to_owned())
    );
    assert_eq!(reads().await?, before + 1);
    let request = service.as_(
        &role_model,
        &["ambassador"],
        None,
        api::GetAmbassadorRequest {
            id: role_model.clone(),
        },
    )?;
    let owner_view = service
        .client
        .get_ambassador(request)
        .await?
        .into_inner()
        .ambassador
        .unwrap_or_default();
    assert_eq!(owner_view.role_model, None);
    assert_eq!(reads().await?, before + 1);
    let request = service.coordinator(api::EraseAmbassadorRequest {
        id: role_model.clone(),
    })?;
    service.client.erase_ambassador(request).await?;
    let left: Option<Vec<u8>> = scalar(
        &db,
        "SELECT role_model FROM ambassadors WHERE id = $1",
        &role_model,
    )
    .await?;
    assert_eq!(left, None);
    db.close().await?;

    // Erasure keeps the id and drops the person.
    let request = service.coordinator(api::EraseAmbassadorRequest { id: own.clone() })?;
    service.client.erase_ambassador(request).await?;
    let request = service.coordinator(api::GetAmbassadorRequest { id: own.clone() })?;
    let erased = service
        .client
        .get_ambassador(request)
        .await?
        .into_inner()
        .ambassador
        .unwrap_or_default();
    assert!(
        erased.erased && erased.name.is_empty() && erased.employer.is_empty(),
        "{erased:?}"
    );
    let request = service.coordinator(api::EraseAmbassadorRequest { id: own })?;
    assert_eq!(
        failure(service.client.erase_ambassador(request).await).0,
        Code::NotFound
    );
    service.running.shutdown().await
}

#[tokio::test]
async fn bad_input_and_roles_on_sqlite() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    bad_input_and_roles(&store.url).await
}

#[tokio::test]
async fn bad_input_and_roles_on_postgres() -> anyhow::Result<()> {
    let store = postgres::empty_database().await?;
    bad_input_and_roles(&store.url).await
}

/// Two ambassadors with one engagement a month each, three requests in one month: the
/// third is unmatched and says why; a request nobody can reach says out_of_range; two
/// runs at once never book an ambassador twice.
async fn runs_match_and_never_double_book(url: &str) -> anyhow::Result<()> {
    let mut service = Service::start(url).await?;
    let first = service.register(registration()).await?;
    let second = service
        .register(api::RegisterAmbassadorRequest {
            role_model: Some(api::RoleModel {
                apprenticeship_route: true,
                ..api::RoleModel::default()
            }),
            role_model_consent: true,
            ..registration()
        })
        .await?;
    let mut requests = Vec::new();
    for _ in 0..3 {
        requests.push(service.ask(asking(NEAR_SCHOOL)).await?);
    }
    // Kendal, Cumbria: far beyond a 30 km radius from Manchester.
    let far = service.ask(asking("136526")).await?;
    let request = service.coordinator(api::StartMatchingRunRequest {})?;
    let one = service
        .client
        .start_matching_run(request)
        .await?
        .into_inner()
        .id;
    let request = service.coordinator(api::StartMatchingRunRequest {})?;
    let two = service
        .client
        .start_matching_run(request)
        .await?
        .into_inner()
        .id;
    let (one, two) = (service.finished(&one).await?, service.finished(&two).await?);
    assert_eq!(
        (one.status.as_str(), two.status.as_str()),
        ("done", "done"),
        "{one:?} {two:?}"
    );
    let matches: Vec<&api::RunMatch> = one.matches.iter().chain(&two.matches).collect();
    assert_eq!(matches.len(), 2, "{one:?} {two:?}");
    let mut people: Vec<&str> = matches
        .iter()
        .map(|found| found.ambassador_id.as_str())
        .collect();
    people.sort_unstable();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort_unstable();
    assert_eq!(
        people, expected,
        "each ambassador once, whichever run took them"
    );
    for found in &matches {
        let terms = found.terms.unwrap_or_default();
        assert!(terms.base > 0 && terms.distance > 0, "{found:?}");
        assert!(requests.contains(&found.request_id));
    }
    let blocked = |run: &api::GetMatchingRunResponse, id: &str| {
        run.unmatched
            .iter()
            .find(|unmatched| unmatched.request_id == id)
            .map(|unmatched| unmatched.blocked_by.clone())
    };
    // Whichever run came second saw no capacity left for anyone in range.
    let (earlier, later) = if one.matches.len() == 2 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    assert_eq!(earlier.matches.len(), 2, "{one:?} {two:?}");
    assert_eq!(
        blocked(earlier, &far),
        Some(vec!["out_of_range".to_owned()])
    );
    let left = requests
        .iter()
        .find(|id| !matches.iter().any(|found| found.request_id == **id))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        blocked(earlier, &left),
        Some(vec!["matched_elsewhere".to_owned()])
    );
    assert_eq!(blocked(later, &left), Some(vec!["no_capacity".to_owned()]));
    // The matcher's reads of role models are audited too, once per run.
    let db = Database::connect(service.url.as_str()).await?;
    let matcher_reads: i64 = scalar(
        &db,
        "SELECT COUNT(*) FROM attribute_reads WHERE ambassador_id = $1 AND purpose = 'matching'",
        &second,
    )
    .await?;
    assert_eq!(matcher_reads, 2);
    db.close().await?;
    // Matched requests are no longer open.
    let request = service.coordinator(api::GetActivityRequestRequest {
        id: matches[0].request_id.clone(),
    })?;
    let matched = service
        .client
        .get_activity_request(request)
        .await?
        .into_inner()
        .request
        .unwrap_or_default();
    assert_eq!(matched.status, "matched");
    service.running.shutdown().await
}

#[tokio::test]
async fn runs_match_and_never_double_book_on_sqlite() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    runs_match_and_never_double_book(&store.url).await
}

#[tokio::test]
async fn runs_match_and_never_double_book_on_postgres() -> anyhow::Result<()> {
    let store = postgres::empty_database().await?;
    runs_match_and_never_double_book(&store.url).await
}

/// Shortage flags keep the latest figure per (SOC code, region) whatever the delivery
/// order: a later period, then a later recording, wins.
async fn shortage_flags_keep_the_latest(url: &str) -> anyhow::Result<()> {
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    let flag = |soc: &str, period: &str, recorded_at: i64, in_shortage: bool| {
        let (period_end, period) = careers_proto::period::order_key(period);
        store::ShortageFlag {
            soc_code: soc.to_owned(),
            region: "K02000001".to_owned(),
            period_end,
            period: period.to_owned(),
            recorded_at,
            figure_id: format!("f-{soc}-{recorded_at}"),
            in_shortage,
        }
    };
    // 2122: in shortage in 2024, not any more in 2025-Q1 (delivered first).
    store::merge_shortage(&db, &flag("2122", "2025-Q1", 5, false)).await?;
    store::merge_shortage(&db, &flag("2122", "2024", 9, true)).await?;
    // 2134: a correction recorded later for the same period wins.
    store::merge_shortage(&db, &flag("2134", "2024", 1, false)).await?;
    store::merge_shortage(&db, &flag("2134", "2024", 2, true)).await?;
    assert_eq!(store::shortage_codes(&db).await?, vec!["2134".to_owned()]);
    store::clear_shortages(&db).await?;
    assert!(store::shortage_codes(&db).await?.is_empty());
    db.close().await?;
    Ok(())
}

#[tokio::test]
async fn shortage_flags_keep_the_latest_on_sqlite() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    shortage_flags_keep_the_latest(&store.url).await
}

#[tokio::test]
async fn shortage_flags_keep_the_latest_on_postgres() -> anyhow::Result<()> {
    let store = postgres::empty_database().await?;
    shortage_flags_keep_the_latest(&store.url).await
}

/// Two replicas on one durable: the newer flag's consumer holds the row in an open
/// transaction while the older one's consumer reads nothing committed and waits on the
/// row lock. When the newer commits, the older must not overwrite it.
#[tokio::test]
async fn a_waiting_older_shortage_flag_never_overwrites_a_newer_one_on_postgres()
-> anyhow::Result<()> {
    use sea_orm::TransactionTrait;
    let store = postgres::empty_database().await?;
    let db = Database::connect(store.url.as_str()).await?;
    Migrator::up(&db, None).await?;
    let flag = |period: &str, in_shortage: bool| {
        let (period_end, period) = careers_proto::period::order_key(period);
        store::ShortageFlag {
            soc_code: "2122".to_owned(),
            region: "K02000001".to_owned(),
            period_end,
            period: period.to_owned(),
            recorded_at: 1,
            figure_id: format!("f-{period}"),
            in_shortage,
        }
    };
    let newer = db.begin().await?;
    store::merge_shortage(&newer, &flag("2025", true)).await?;
    let older = tokio::spawn({
        let db = db.clone();
        let flag = flag("2024", false);
        async move {
            let txn = db.begin().await?;
            store::merge_shortage(&txn, &flag).await?;
            txn.commit().await
        }
    });
    // Long enough for the older consumer to reach the row lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!older.is_finished(), "the older flag waits on the row lock");
    newer.commit().await?;
    older.await??;
    assert_eq!(store::shortage_codes(&db).await?, vec!["2122".to_owned()]);
    db.close().await?;
    Ok(())
}

/// ambassadors' projections on a deployment with two replicas: catalogue snapshots and
/// shortage flags, shuffled with redeliveries through two consumers at once, end as one
/// in-order consumer leaves them.
#[tokio::test]
async fn two_concurrent_consumers_agree_with_one_on_postgres() -> anyhow::Result<()> {
    use careers_testkit::projection::two_consumers_agree_with_one;
    use sea_orm::TransactionTrait;
    let store = postgres::empty_database().await?;
    let db = Database::connect(store.url.as_str()).await?;
    Migrator::up(&db, None).await?;

    let snapshots = careers_testkit::projection::catalogue_snapshots();
    let held = two_consumers_agree_with_one(
        &db,
        &snapshots,
        0..10,
        |db, (code, version)| async move {
            let txn = db.begin().await?;
            let group = format!("g{version}");
            store::apply_occupation(&txn, &code, version, &group, "engineering").await?;
            txn.commit().await
        },
        |db| async move {
            let rows = db
                .query_all_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT soc_code, version, sub_major_group FROM known_occupations \
                     ORDER BY soc_code",
                ))
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get_by_index::<String>(0)?,
                        row.try_get_by_index::<i64>(1)?,
                        row.try_get_by_index::<String>(2)?,
                    ))
                })
                .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        },
        |db| async move { store::clear_occupations(&db).await },
    )
    .await?;
    assert!(
        held.iter()
            .all(|(_, version, group)| *version == 5 && group == "g5")
    );

    let periods = ["2023", "2024-Q1", "2024", "2025-Q1"];
    let flags: Vec<store::ShortageFlag> = ["2134", "2122"]
        .iter()
        .flat_map(|code| {
            periods.iter().enumerate().map(move |(index, period)| {
                let (period_end, period) = careers_proto::period::order_key(period);
                store::ShortageFlag {
                    soc_code: (*code).to_owned(),
                    region: "K02000001".to_owned(),
                    period_end,
                    period: period.to_owned(),
                    recorded_at: i64::try_from(index % 2).unwrap_or(0),
                    figure_id: format!("f{index}"),
                    // Only 2134's last period is in shortage.
                    in_shortage: *code == "2134" && index == periods.len() - 1,
                }
            })
        })
        .collect();
    let codes = two_consumers_agree_with_one(
        &db,
        &flags,
        0..10,
        |db, flag| async move {
            let txn = db.begin().await?;
            store::merge_shortage(&txn, &flag).await?;
            txn.commit().await
        },
        |db| async move { store::shortage_codes(&db).await },
        |db| async move { store::clear_shortages(&db).await },
    )
    .await?;
    assert_eq!(codes, vec!["2134".to_owned()]);
    db.close().await?;
    Ok(())
}

/// A run a stopped process left "running" is marked failed once it is older than
/// `matching.run_timeout`; a recent one is left alone.
async fn abandoned_runs_are_marked_failed(url: &str) -> anyhow::Result<()> {
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    let hour_ago = (Utc::now() - chrono::Duration::hours(1)).timestamp_micros();
    store::insert_run(&db, "run-abandoned", hour_ago).await?;
    store::insert_run(&db, "run-recent", Utc::now().timestamp_micros()).await?;
    db.close().await?;
    let mut service = Service::start(url).await?;
    let status = |run: &str| api::GetMatchingRunRequest { id: run.to_owned() };
    let request = service.coordinator(status("run-abandoned"))?;
    let abandoned = service.client.get_matching_run(request).await?.into_inner();
    assert_eq!(abandoned.status, "failed", "{abandoned:?}");
    assert!(!abandoned.finished_at.is_empty());
    let request = service.coordinator(status("run-recent"))?;
    assert_eq!(
        service
            .client
            .get_matching_run(request)
            .await?
            .into_inner()
            .status,
        "running"
    );
    service.running.shutdown().await
}

#[tokio::test]
async fn abandoned_runs_are_marked_failed_on_sqlite() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    abandoned_runs_are_marked_failed(&store.url).await
}

#[tokio::test]
async fn abandoned_runs_are_marked_failed_on_postgres() -> anyhow::Result<()> {
    let store = postgres::empty_database().await?;
    abandoned_runs_are_marked_failed(&store.url).await
}
