//! The lmi service binary: `lmi [--config PATH] [serve|migrate]`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    careers_platform::service::main::<careers_lmi::Lmi>().await
}
