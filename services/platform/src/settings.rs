//! Layered configuration: the service's embedded defaults, then an optional `--config`
//! file, then `CAREERS_<SERVICE>__<SECTION>__<KEY>` environment variables.
//!
//! The same merged tree is read twice: once into the [`PlatformSettings`] every service
//! shares and once into the service's own settings. A key that neither reads is an error
//! naming its path, so a typo never silently falls back to a default.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};

/// Why the settings could not be loaded. Each message fits on one line and names the
/// offending key path or file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: unknown key `{0}`")]
    UnknownKey(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Settings every service shares; each section has the same shape in every service.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformSettings {
    pub grpc: GrpcSettings,
    pub metrics: MetricsSettings,
    pub database: DatabaseSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub readiness: ReadinessSettings,
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    #[serde(default)]
    pub identity: IdentitySettings,
    #[serde(default)]
    pub cursor: CursorSettings,
}

/// The key page cursors are signed with, shared by a service's replicas.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CursorSettings {
    /// A file of at least 32 bytes; unset, each process makes its own key.
    pub key_path: Option<PathBuf>,
}

/// The gateway's public keys for the internal identity token.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// A JWKS file; `make run` writes the development one.
    pub jwks_path: PathBuf,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            jwks_path: "data/dev-keys/internal.jwks.json".into(),
        }
    }
}

/// Where the gRPC server listens.
#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    pub listen: SocketAddr,
}

/// Where Prometheus scrapes; never the public port.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
    /// Off in tests that run many services in one process: the recorder is global.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The service's own store.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`; a secret because
    /// it may carry a password.
    pub url: SecretString,
    #[serde(default = "yes")]
    pub migrate_on_start: bool,
    /// The pool callers' requests use.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// A second pool, kept for background work (the event relay and consumers, sweeps,
    /// the readiness check), so that callers taking every connection of theirs stall
    /// none of it.
    #[serde(default = "default_background_connections")]
    pub background_connections: u32,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl DatabaseSettings {
    /// A settings value for a URL, with every other field at its default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            migrate_on_start: true,
            max_connections: default_max_connections(),
            background_connections: default_background_connections(),
            connect_timeout: default_connect_timeout(),
        }
    }

    /// The URL with any password replaced, safe for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// An `EnvFilter` directive such as `info,sqlx=warn`.
    pub log_filter: String,
    /// Parent-based ratio sampling: the share of new root traces kept.
    pub sampling_ratio: f64,
    /// Off: no spans at all, so no trace ids in logs and no trace context passed on.
    pub tracing: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_filter: "info,sqlx=warn,sea_orm=warn,h2=warn,tower=warn,hyper=warn".into(),
            sampling_ratio: 0.1,
            tracing: true,
        }
    }
}

/// What "ready" waits for and how often the store is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ReadinessSettings {
    /// How long an unreachable NATS may delay readiness at start before the service
    /// reports ready anyway (with a warning).
    #[serde(with = "humantime_serde")]
    pub catch_up_timeout: Duration,
    /// How often the store is pinged to keep the readiness status true.
    #[serde(with = "humantime_serde")]
    pub store_check_interval: Duration,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        Self {
            catch_up_timeout: Duration::from_secs(30),
            store_check_interval: Duration::from_secs(2),
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ShutdownSettings {
    /// Time between reporting NOT_SERVING and closing the listener, so load balancers
    /// stop sending new calls before in-flight ones are drained.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// The longest in-flight calls may take to finish after the listener closes.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_max_connections() -> u32 {
    10
}

fn default_background_connections() -> u32 {
    4
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A service's platform and own settings, loaded from one merged tree.
#[derive(Debug, Clone)]
pub struct Settings<S> {
    pub platform: PlatformSettings,
    pub service: S,
}

/// Where the settings come from. Tests build one by hand instead of touching the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    /// The service's embedded defaults (TOML).
    pub defaults: &'a str,
    /// The `--config` file, if given.
    pub file: Option<&'a Path>,
    /// Environment variables; only those starting `CAREERS_<SERVICE>__` are read.
    pub environment: HashMap<String, String>,
    /// A directory of secrets, one file per setting named by its key path
    /// (`database.url`), as a Kubernetes Secret is mounted: layered over the file and
    /// under the environment. `CAREERS_SECRETS_DIR` in the process environment.
    pub secrets_dir: Option<PathBuf>,
}

/// The variable naming the secrets directory (not prefixed: every program reads it).
pub const SECRETS_DIR_VARIABLE: &str = "CAREERS_SECRETS_DIR";

impl<'a> Sources<'a> {
    /// Defaults, the optional file and the process environment.
    pub fn from_process(defaults: &'a str, file: Option<&'a Path>) -> Self {
        let environment: HashMap<String, String> = std::env::vars().collect();
        Self {
            defaults,
            file,
            secrets_dir: environment
                .get(SECRETS_DIR_VARIABLE)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            environment,
        }
    }
}

/// Loads settings for `service` (lowercase, e.g. `lmi`).
pub fn load<S: DeserializeOwned>(
    service: &str,
    sources: Sources<'_>,
) -> Result<Settings<S>, SettingsError> {
    let merged = merge(service, sources)?;
    let (platform, ignored_by_platform) = read::<PlatformSettings>(&merged)?;
    let (service, ignored_by_service) = read::<S>(&merged)?;
    // The platform ignores the service's sections and the other way round: a key is
    // unknown only when both ignored it (itself or a section above it).
    let unknown = ignored_by_platform
        .iter()
        .chain(&ignored_by_service)
        .filter(|path| covered(&ignored_by_platform, path) && covered(&ignored_by_service, path))
        .max_by_key(|path| path.len());
    if let Some(path) = unknown {
        return Err(SettingsError::UnknownKey(first_leaf(&merged, path)));
    }
    Ok(Settings { platform, service })
}

/// Loads settings of a program that is not a service (`careersctl`): the same layers
/// and the same refusal of unknown keys, without the platform's sections.
pub fn load_standalone<S: DeserializeOwned>(
    program: &str,
    sources: Sources<'_>,
) -> Result<S, SettingsError> {
    let merged = merge(program, sources)?;
    let (settings, ignored) = read::<S>(&merged)?;
    match ignored.iter().max_by_key(|path| path.len()) {
        Some(path) => Err(SettingsError::UnknownKey(first_leaf(&merged, path))),
        None => Ok(settings),
    }
}

/// Defaults, then the file, then the secrets directory, then `CAREERS_<PROGRAM>__`
/// variables.
fn merge(program: &str, sources: Sources<'_>) -> Result<Config, SettingsError> {
    let prefix = format!("CAREERS_{}", program.to_ascii_uppercase());
    let mut builder =
        Config::builder().add_source(File::from_str(sources.defaults, FileFormat::Toml));
    if let Some(path) = sources.file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    if let Some(dir) = &sources.secrets_dir {
        builder = builder.add_source(
            Environment::default()
                .separator(".")
                .source(Some(secrets(dir)?)),
        );
    }
    let environment = Environment::with_prefix(&prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(sources.environment.into_iter().collect()));
    builder
        .add_source(environment)
        .build()
        .map_err(|error| SettingsError::Invalid(one_line(&error)))
}

/// The settings in a secrets directory: each regular file (symbolic links followed, as
/// Kubernetes mounts them) is a key path holding its value, trailing newline removed.
/// Kubernetes' own `..data` entries are skipped.
fn secrets(dir: &Path) -> Result<HashMap<String, String>, SettingsError> {
    let unreadable = |error: std::io::Error| {
        SettingsError::Invalid(format!("secrets directory {}: {error}", dir.display()))
    };
    let mut values = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let Some(key) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if key.starts_with('.') || !std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        let value = std::fs::read_to_string(&path).map_err(unreadable)?;
        values.insert(
            key.to_owned(),
            value.trim_end_matches(['\r', '\n']).to_owned(),
        );
    }
    Ok(values)
}

/// Deserialises `T`, collecting the paths it ignored.
fn read<T: DeserializeOwned>(merged: &Config) -> Result<(T, BTreeSet<String>), SettingsError> {
    let mut ignored = BTreeSet::new();
    let value = serde_ignored::deserialize(merged.clone(), |path| {
        ignored.insert(path.to_string());
    })
    .map_err(|error| SettingsError::Invalid(one_line(&error)))?;
    Ok((value, ignored))
}

/// The first key below an unknown section, so the message names a full key path.
fn first_leaf(config: &Config, path: &str) -> String {
    match config.get_table(path) {
        Ok(table) => match table.keys().min() {
            Some(key) => first_leaf(config, &format!("{path}.{key}")),
            None => path.to_owned(),
        },
        Err(_) => path.to_owned(),
    }
}

/// Whether `path` or a section above it is in `ignored`.
fn covered(ignored: &BTreeSet<String>, path: &str) -> bool {
    ignored.iter().any(|section| {
        path == section
            || path
                .strip_prefix(section.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn one_line(error: &dyn std::fmt::Display) -> String {
    error.to_string().replace('\n', " ")
}

/// Replaces the password in a URL's userinfo with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const DEFAULTS: &str = r#"
        [grpc]
        listen = "127.0.0.1:50061"
        [metrics]
        listen = "127.0.0.1:9101"
        [database]
        url = "sqlite://data/test.db?mode=rwc"
        [validation]
        quarantine_change = 0.5
    "#;

    #[derive(Debug, Deserialize)]
    struct ServiceOnly {
        validation: Validation,
    }

    #[derive(Debug, Deserialize)]
    struct Validation {
        quarantine_change: f64,
    }

    fn sources(environment: &[(&str, &str)]) -> Sources<'static> {
        Sources {
            defaults: DEFAULTS,
            file: None,
            environment: environment
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            secrets_dir: None,
        }
    }

    #[test]
    fn a_secrets_directory_sets_keys_under_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("database.url"), "postgres://u:p@db/lmi\n").unwrap();
        std::fs::write(dir.path().join("grpc.listen"), "0.0.0.0:50051").unwrap();
        // What a Kubernetes Secret volume holds beside the keys.
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        let mut with_secrets = sources(&[("CAREERS_LMI__GRPC__LISTEN", "0.0.0.0:50099")]);
        with_secrets.secrets_dir = Some(dir.path().to_owned());
        let settings = load::<ServiceOnly>("lmi", with_secrets).unwrap();
        assert_eq!(
            settings.platform.database.url.expose_secret(),
            "postgres://u:p@db/lmi"
        );
        assert_eq!(settings.platform.grpc.listen.port(), 50099);

        std::fs::write(dir.path().join("database.nonsense"), "x").unwrap();
        let mut unknown = sources(&[]);
        unknown.secrets_dir = Some(dir.path().to_owned());
        let error = load::<ServiceOnly>("lmi", unknown).unwrap_err();
        assert!(error.to_string().contains("database.nonsense"), "{error}");
    }

    #[test]
    fn defaults_load_into_platform_and_service_sections() {
        let settings = load::<ServiceOnly>("lmi", sources(&[])).unwrap();
        assert_eq!(settings.platform.grpc.listen.port(), 50061);
        assert!(settings.platform.database.migrate_on_start);
        assert_eq!(settings.platform.telemetry.sampling_ratio, 0.1);
        assert_eq!(settings.service.validation.quarantine_change, 0.5);
    }

    #[test]
    fn an_unknown_key_fails_naming_its_path() {
        let error = load::<ServiceOnly>(
            "lmi",
            sources(&[("CAREERS_LMI__DATABASE__MIGRATE_ON_STAR", "false")]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration: unknown key `database.migrate_on_star`"
        );

        let error =
            load::<ServiceOnly>("lmi", sources(&[("CAREERS_LMI__NOSUCH__KEY", "1")])).unwrap_err();
        assert_eq!(error.to_string(), "configuration: unknown key `nosuch.key`");
    }

    #[test]
    fn a_bad_value_fails_naming_its_key() {
        let error = load::<ServiceOnly>(
            "lmi",
            sources(&[("CAREERS_LMI__GRPC__LISTEN", "not-an-address")]),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("grpc.listen"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_defaults() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[validation]\nquarantine_change = 0.25\n[grpc]\nlisten = \"127.0.0.1:1\""
        )
        .unwrap();
        let mut sources = sources(&[("CAREERS_LMI__VALIDATION__QUARANTINE_CHANGE", "0.75")]);
        sources.file = Some(file.path());
        let settings = load::<ServiceOnly>("lmi", sources).unwrap();
        assert_eq!(settings.service.validation.quarantine_change, 0.75);
        assert_eq!(settings.platform.grpc.listen.port(), 1);
    }

    #[test]
    fn variables_of_other_services_are_ignored() {
        let settings = load::<ServiceOnly>(
            "lmi",
            sources(&[
                ("CAREERS_OCCUPATIONS__NOSUCH__KEY", "1"),
                ("CAREERS_LMIX__GRPC__LISTEN", "nonsense"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.platform.grpc.listen.port(), 50061);
    }

    #[test]
    fn the_database_url_never_shows_in_debug_output() {
        let settings = load::<ServiceOnly>(
            "lmi",
            sources(&[(
                "CAREERS_LMI__DATABASE__URL",
                "postgres://careers:hunter2@db/lmi",
            )]),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(
            settings.platform.database.redacted_url(),
            "postgres://careers:***@db/lmi"
        );
    }
}
