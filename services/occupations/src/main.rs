//! The occupations service binary: `occupations [--config PATH] [serve|migrate]`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    careers_platform::service::main::<careers_occupations::Occupations>().await
}
