//! Helpers shared by the system tests.

use careers_gateway::Settings;
use careers_platform::settings::{Sources, load_standalone};
use careers_testkit::service::TestKeys;

/// The gateway's settings for a test: free ports, the test's bearer and internal keys.
pub fn gateway_settings(
    upstreams: [(&str, u16); 4],
    bearer: &TestKeys,
    internal: &TestKeys,
) -> anyhow::Result<Settings> {
    let mut environment: Vec<(String, String)> = vec![
        (
            "CAREERS_GATEWAY__AUTH__JWKS_PATH".into(),
            bearer.jwks_path.display().to_string(),
        ),
        (
            "CAREERS_GATEWAY__IDENTITY__SIGNING_KEY_PATH".into(),
            internal.pem_path.display().to_string(),
        ),
        ("CAREERS_GATEWAY__IDENTITY__KEY_ID".into(), "test".into()),
        ("CAREERS_GATEWAY__HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ("CAREERS_GATEWAY__GRPC__LISTEN".into(), "127.0.0.1:0".into()),
        ("CAREERS_GATEWAY__METRICS__ENABLED".into(), "false".into()),
        ("CAREERS_GATEWAY__SHUTDOWN__DRAIN_DELAY".into(), "0s".into()),
    ];
    for (name, port) in upstreams {
        environment.push((
            format!("CAREERS_GATEWAY__UPSTREAMS__{}", name.to_ascii_uppercase()),
            format!("http://127.0.0.1:{port}"),
        ));
    }
    Ok(load_standalone(
        "gateway",
        Sources {
            defaults: careers_gateway::DEFAULTS,
            file: None,
            environment: environment.into_iter().collect(),
        },
    )?)
}
