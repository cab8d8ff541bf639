//! The ambassadors service binary: `ambassadors [--config PATH] [serve|migrate]`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    careers_platform::service::main::<careers_ambassadors::Ambassadors>().await
}
