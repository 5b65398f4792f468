//! Configuration from a file plus environment variables.
//!
//! Environment variables override the file: `SPANWAY_KAFKA__BROKERS` sets
//! `kafka.brokers` (prefix, then sections joined by a double underscore).
//! The double underscore keeps single underscores free for key names such as
//! `max_request_bytes`. The prefix is `SPANWAY_` rather than one per
//! component because Kubernetes injects `<SERVICE>_PORT=tcp://…` variables
//! for every service in a namespace, which would collide with a prefix like
//! `COLLECTOR_`.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "SPANWAY";

/// A configuration that could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be parsed into the expected
    /// shape. Not a `source`: the message already holds the cause, and a
    /// chain printed with `{:#}` would say it twice.
    #[error("configuration: {0}")]
    Load(::config::ConfigError),
    /// A value that parsed but breaks a rule; names the key.
    #[error("configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl From<::config::ConfigError> for ConfigError {
    fn from(error: ::config::ConfigError) -> Self {
        ConfigError::Load(error)
    }
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key,
            reason: reason.into(),
        }
    }
}

/// Loads `T` from an optional TOML file, then environment overrides.
///
/// Fields missing from both take the defaults of `T`'s `Deserialize` impl,
/// which is why every config struct carries `#[serde(default)]`.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_with_env(file, std::env::vars())
}

/// The variable the binaries read their configuration file's path from
/// (`--config`); it names no configuration key, so it is not one.
pub const CONFIG_FILE_ENV: &str = "SPANWAY_CONFIG_FILE";

/// [`load`] with an explicit environment, for tests.
pub fn load_with_env<T: DeserializeOwned>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let env = env.into_iter().filter(|(key, _)| key != CONFIG_FILE_ENV);
    let mut builder = ::config::Config::builder();
    if let Some(path) = file {
        builder = builder.add_source(::config::File::from(path).format(::config::FileFormat::Toml));
    }
    // Secrets are taken verbatim: parsing would turn a password `0123` into
    // the number 123.
    let (secrets, plain): (Vec<_>, Vec<_>) =
        env.into_iter().partition(|(key, _)| is_secret_key(key));
    let parsed = ::config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("kafka.brokers")
        .with_list_parse_key("kafka.topics")
        .with_list_parse_key("elasticsearch.urls")
        .source(Some(plain.into_iter().collect()));
    let verbatim = ::config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .source(Some(secrets.into_iter().collect()));
    Ok(builder
        .add_source(parsed)
        .add_source(verbatim)
        .build()?
        .try_deserialize()?)
}

/// Whether an environment variable holds a secret value (not a file path).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "api_key", "token", "secret", "passphrase"]
        .iter()
        .any(|word| key.ends_with(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        kafka: Kafka,
        max_request_bytes: u64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Kafka {
        brokers: Vec<String>,
        topic: String,
    }

    impl Default for Sample {
        fn default() -> Self {
            Sample {
                kafka: Kafka::default(),
                max_request_bytes: 10,
            }
        }
    }

    impl Default for Kafka {
        fn default() -> Self {
            Kafka {
                brokers: vec!["127.0.0.1:9092".into()],
                topic: "jaeger-spans".into(),
            }
        }
    }

    #[test]
    fn env_overrides_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "max_request_bytes = 20\n[kafka]\ntopic = \"from-file\"\n",
        )
        .unwrap();
        let env = [
            ("SPANWAY_KAFKA__TOPIC".to_string(), "from-env".to_string()),
            ("SPANWAY_KAFKA__BROKERS".to_string(), "a:1,b:2".to_string()),
            (
                "COLLECTOR_PORT".to_string(),
                "tcp://10.0.0.1:80".to_string(),
            ),
        ];
        let cfg: Sample = load_with_env(Some(&path), env).unwrap();
        assert_eq!(cfg.kafka.topic, "from-env");
        assert_eq!(cfg.kafka.brokers, vec!["a:1", "b:2"]);
        assert_eq!(cfg.max_request_bytes, 20);
    }

    #[test]
    fn secrets_from_the_environment_are_not_parsed() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct WithSecret {
            sasl: Sasl,
        }
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Sasl {
            password: Option<crate::secret::Secret>,
        }
        let env = [("SPANWAY_SASL__PASSWORD".to_string(), "0123".to_string())];
        let cfg: WithSecret = load_with_env(None, env).unwrap();
        assert_eq!(cfg.sasl.password.unwrap().expose(), "0123");
    }

    #[test]
    fn the_config_file_variable_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[kafka]\ntopic = \"from-file\"\n").unwrap();
        let env = [(
            CONFIG_FILE_ENV.to_string(),
            path.to_string_lossy().into_owned(),
        )];
        let cfg: Sample = load_with_env(Some(&path), env).unwrap();
        assert_eq!(cfg.kafka.topic, "from-file");
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[kafka]\ntopik = \"x\"\n").unwrap();
        let err = load_with_env::<Sample>(Some(&path), []).unwrap_err();
        assert!(err.to_string().contains("topik"), "{err}");
    }

    #[test]
    fn a_bad_value_is_stated_once_in_the_error_chain() {
        #[derive(Debug, Deserialize)]
        struct Numbered {
            #[allow(dead_code)]
            count: u8,
        }
        let env = [("SPANWAY_COUNT".to_string(), "300".to_string())];
        let err = load_with_env::<Numbered>(None, env).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(chain.matches("300").count(), 1, "{chain}");
    }
}
