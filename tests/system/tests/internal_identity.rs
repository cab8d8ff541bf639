//! Every service refuses a call whose internal identity token is absent, forged, expired
//! or meant for someone else, and accepts tokens of both keys in its JWKS while the
//! gateway's key is rolled over (add the new key to the services, switch the gateway,
//! then drop the old one).

use std::{sync::Arc, time::Duration};

use careers_ambassadors::Ambassadors;
use careers_casenotes::Casenotes;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::identity::{
    AUDIENCE, ISSUER, Identity, IdentitySigner, METADATA_KEY, generate_key_pair,
};
use careers_proto::careers::{
    ambassadors::v1::{
        ListEngagementsRequest, ambassadors_service_client::AmbassadorsServiceClient,
    },
    casenotes::v1::{ListClientsRequest, casenotes_service_client::CasenotesServiceClient},
    lmi::v1::{ListFiguresRequest, lmi_service_client::LmiServiceClient},
    occupations::v1::{
        ListOccupationsRequest, occupations_service_client::OccupationsServiceClient,
    },
};
use careers_testkit::{
    grpc,
    service::{RunningService, TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use tonic::{Code, Request};

fn caller() -> Identity {
    Identity {
        sub: "someone".into(),
        roles: vec!["adviser".into(), "ambassador_coordinator".into()],
        org: Some("org-1".into()),
        ssc: None,
    }
}

/// One read on the service, carrying `token` (none when `None`); its status code.
async fn call(service: &str, port: u16, token: Option<&str>) -> anyhow::Result<Code> {
    fn with<T>(message: T, token: Option<&str>) -> anyhow::Result<Request<T>> {
        let mut request = Request::new(message);
        if let Some(token) = token {
            request.metadata_mut().insert(METADATA_KEY, token.parse()?);
        }
        Ok(request)
    }
    let channel = grpc::channel(port)?;
    let answer = match service {
        "occupations" => OccupationsServiceClient::new(channel)
            .list_occupations(with(ListOccupationsRequest::default(), token)?)
            .await
            .map(drop),
        "lmi" => LmiServiceClient::new(channel)
            .list_figures(with(ListFiguresRequest::default(), token)?)
            .await
            .map(drop),
        "casenotes" => CasenotesServiceClient::new(channel)
            .list_clients(with(ListClientsRequest::default(), token)?)
            .await
            .map(drop),
        _ => AmbassadorsServiceClient::new(channel)
            .list_engagements(with(ListEngagementsRequest::default(), token)?)
            .await
            .map(drop),
    };
    Ok(answer.err().map_or(Code::Ok, |status| status.code()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_refuses_bad_internal_tokens_and_takes_both_keys_in_a_rollover()
-> anyhow::Result<()> {
    // The services trust the current key ("test") and the next one ("next").
    let keys = Arc::new(TestKeys::new()?);
    let (next_pem, next_jwks) = generate_key_pair("next")?;
    let next = IdentitySigner::from_pem(next_pem.as_bytes(), "next")?;
    let mut jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keys.jwks_path)?)?;
    let next_jwks: serde_json::Value = serde_json::from_str(&next_jwks)?;
    if let (Some(held), Some(added)) = (jwks["keys"].as_array_mut(), next_jwks["keys"].as_array()) {
        held.extend(added.iter().cloned());
    }
    std::fs::write(&keys.jwks_path, jwks.to_string())?;

    let stores = [
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
    ];
    let services: Vec<(&str, RunningService)> = vec![
        (
            "occupations",
            spawn_trusting::<Occupations>(&stores[0].url, &[], &keys).await?,
        ),
        (
            "lmi",
            spawn_trusting::<Lmi>(&stores[1].url, &[], &keys).await?,
        ),
        (
            "casenotes",
            spawn_trusting::<Casenotes>(&stores[2].url, &[], &keys).await?,
        ),
        (
            "ambassadors",
            spawn_trusting::<Ambassadors>(&stores[3].url, &[], &keys).await?,
        ),
    ];

    let stranger = TestKeys::new()?;
    let current = keys.signer.sign(&caller())?;
    let rolled = next.sign(&caller())?;
    let forged = stranger.signer.sign(&caller())?;
    let expired = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "someone", "iat": now - 600,
            "nbf": now - 600, "exp": now - 300, "roles": ["adviser"], "org": "org-1"
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("test".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&keys.pem_path)?)?,
        )?
    };
    // A caller's own bearer token (issuer careers-dev) is not an internal token.
    let bearer =
        keys.signer
            .sign_for(&caller(), "careers-dev", "careers", Duration::from_secs(60))?;

    for (name, service) in &services {
        for (what, token) in [
            ("absent", None),
            ("forged", Some(forged.as_str())),
            ("expired", Some(expired.as_str())),
            ("a bearer token", Some(bearer.as_str())),
        ] {
            assert_eq!(
                call(name, service.port, token).await?,
                Code::Unauthenticated,
                "{name} took a token that is {what}"
            );
        }
        for (what, token) in [("current", &current), ("next", &rolled)] {
            assert_eq!(
                call(name, service.port, Some(token)).await?,
                Code::Ok,
                "{name} refused the {what} key during the rollover"
            );
        }
    }
    for (_, service) in services {
        service.shutdown().await?;
    }
    Ok(())
}
