//! The casenotes service binary: `casenotes [--config PATH] [serve|migrate]`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    careers_platform::service::main::<careers_casenotes::Casenotes>().await
}
