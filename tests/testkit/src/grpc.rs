//! Small gRPC clients for what every service serves: health and reflection.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A lazily connecting channel to a loopback port.
pub fn channel(port: u16) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// The health status of `service` on `port`.
pub async fn health(port: u16, service: &str) -> anyhow::Result<ServingStatus> {
    let response = HealthClient::new(channel(port)?)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .with_context(|| format!("health check of {service:?} on port {port}"))?;
    Ok(response.into_inner().status())
}

/// Polls until `service` reports `wanted`, failing after `timeout`.
pub async fn wait_for_health(
    port: u16,
    service: &str,
    wanted: ServingStatus,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match health(port, service).await {
            Ok(status) if status == wanted => return Ok(()),
            Ok(status) => last = Some(format!("{status:?}")),
            Err(error) => last = Some(format!("{error:#}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{service:?} on port {port} not {wanted:?} within {timeout:?}; last: {last:?}")
}

/// Generates a "list services" call for one reflection version; the two versions have
/// the same shape in different modules.
macro_rules! list_services {
    ($name:ident, $version:ident) => {
        /// The services this reflection version lists.
        pub async fn $name(port: u16) -> anyhow::Result<Vec<String>> {
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut responses = ServerReflectionClient::new(channel(port)?)
                .server_reflection_info(tokio_stream::iter([request]))
                .await?
                .into_inner();
            match responses.message().await?.and_then(|r| r.message_response) {
                Some(MessageResponse::ListServicesResponse(list)) => Ok(list
                    .service
                    .into_iter()
                    .map(|service| service.name)
                    .collect()),
                other => bail!("reflection answered {other:?}"),
            }
        }
    };
}

list_services!(reflection_services_v1, v1);
// grpcurl 1.8 lists services only through v1alpha.
list_services!(reflection_services_v1alpha, v1alpha);
