//! careersctl as an operator runs it, against a real nats-server.

use std::process::{Command, Output};

use async_nats::jetstream;
use careers_eventbus::{catalogue, envelope, provision, settings::NatsSettings};
use careers_testkit::nats::NatsServer;

mod audit;
mod browser;
mod cli;
mod dev;
mod push;
mod replay;
mod scrapes;

fn careersctl(nats_url: &str, args: &[&str]) -> anyhow::Result<Output> {
    careersctl_with(nats_url, &[], args)
}

fn careersctl_with(nats_url: &str, env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_careersctl"))
        .env_clear()
        .env("CAREERS_CAREERSCTL__NATS__URL", nats_url)
        .envs(env.iter().copied())
        .args(args)
        .output()?)
}

#[tokio::test]
async fn dlq_list_shows_a_dead_letter_and_replay_re_drives_it() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let settings = NatsSettings {
        url: nats.url(),
        ..NatsSettings::default()
    };
    let jetstream = provision::connect_now(&settings, "test").await?;
    provision::ensure_streams(&jetstream, catalogue::OCCUPATIONS, &settings).await?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(envelope::CE_ID, "0190a0b0-0000-7000-8000-000000000001");
    headers.insert(
        envelope::CE_TYPE,
        "careers.occupations.events.v1.OccupationUpserted",
    );
    headers.insert(envelope::DLQ_REASON, "unknown SOC code 9999");
    headers.insert(envelope::DLQ_DELIVERIES, "5");
    headers.insert(
        envelope::DLQ_SUBJECT,
        "careers.occupations.v1.occupation_upserted",
    );
    jetstream
        .send_publish(
            catalogue::dead_letter_subject("lmi_occupations"),
            jetstream::message::PublishMessage::build()
                .payload("x".into())
                .headers(headers),
        )
        .await?
        .await?;

    let listed = careersctl(&nats.url(), &["dlq", "list"])?;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.contains("lmi_occupations"), "{stdout}");
    assert!(stdout.contains("unknown SOC code 9999"), "{stdout}");

    let replayed = careersctl(&nats.url(), &["dlq", "replay", "lmi_occupations"])?;
    assert!(replayed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&replayed.stdout).trim(),
        "re-drove 1 dead letters of lmi_occupations"
    );
    let mut stream = jetstream.get_stream("CAREERS_OCCUPATIONS").await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    let listed = careersctl(&nats.url(), &["dlq", "list"])?;
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        1,
        "only the header line"
    );
    Ok(())
}

#[test]
fn an_unreachable_broker_fails_with_a_clear_message() -> anyhow::Result<()> {
    let port = careers_testkit::free_port()?;
    let output = careersctl(&format!("nats://127.0.0.1:{port}"), &["dlq", "list"])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connecting to NATS at nats://127.0.0.1:"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn keys_generate_makes_a_pair_services_accept_and_never_overwrites() -> anyhow::Result<()> {
    use careers_platform::identity::{Identity, IdentitySigner, IdentityVerifier};

    let directory = tempfile::tempdir()?;
    let dir = directory.path().to_str().unwrap_or_default();
    let args = ["keys", "generate", "--dir", dir, "--kid", "prod-internal-7"];
    let made = careersctl("nats://127.0.0.1:1", &args)?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pem = std::fs::read(directory.path().join("internal.pem"))?;
    let signer = IdentitySigner::from_pem(&pem, "prod-internal-7")?;
    let verifier = IdentityVerifier::from_jwks_file(&directory.path().join("internal.jwks.json"))?;
    let token = signer.sign(&Identity {
        sub: "gateway".into(),
        roles: vec!["adviser".into()],
        org: None,
        ssc: None,
    })?;
    assert_eq!(verifier.verify(&token)?.sub, "gateway");

    let again = careersctl("nats://127.0.0.1:1", &args)?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(std::fs::read(directory.path().join("internal.pem"))?, pem);
    Ok(())
}

#[test]
fn apikey_create_list_and_revoke_edit_the_key_file() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let file = directory.path().join("keys.json");
    let file = file.to_str().unwrap_or_default();
    let created = careersctl(
        "nats://127.0.0.1:1",
        &[
            "apikey",
            "create",
            "--name",
            "Open data partner",
            "--rate-per-minute",
            "30",
            "--file",
            file,
        ],
    )?;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8(created.stdout)?;
    let key = stdout.lines().last().unwrap_or_default();
    assert!(key.starts_with("ck_") && key.len() > 40, "{stdout}");
    let stored = std::fs::read_to_string(file)?;
    assert!(!stored.contains(key), "the file holds the key itself");
    assert!(stored.contains(&careers_gateway::apikeys::hash(key)));

    let listed = String::from_utf8(
        careersctl("nats://127.0.0.1:1", &["apikey", "list", "--file", file])?.stdout,
    )?;
    let row = listed.lines().nth(1).unwrap_or_default().to_owned();
    let id = row.split('\t').next().unwrap_or_default();
    assert!(
        row.contains("Open data partner\t30\t") && row.ends_with("\t-"),
        "{listed}"
    );

    let revoked = careersctl(
        "nats://127.0.0.1:1",
        &["apikey", "revoke", id, "--file", file],
    )?;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let listed = String::from_utf8(
        careersctl("nats://127.0.0.1:1", &["apikey", "list", "--file", file])?.stdout,
    )?;
    assert!(
        !listed.lines().nth(1).unwrap_or_default().ends_with("\t-"),
        "{listed}"
    );
    let unknown = careersctl(
        "nats://127.0.0.1:1",
        &["apikey", "revoke", "nope", "--file", file],
    )?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no API key with id"));
    Ok(())
}
