//! A configuration section whose keys are shared by two types: the client
//! settings every process reads the same way (brokers, TLS, credentials),
//! and the settings of one process's role (topic, group id, index prefix).
//!
//! Operators see one flat section, `[kafka]` with `brokers`, `tls`, `sasl`
//! and `topic` side by side, as before, and the environment keeps its names
//! (`SPANWAY_KAFKA__BROKERS`). In code the shared part is one type, defined
//! once and used by every process. Serde's `flatten` would give the same
//! shape but cannot refuse unknown keys; this split keeps refusing them,
//! naming the section and the key.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

/// A shared client type: the keys it owns within a section.
pub trait ClientKeys {
    /// Top-level keys of the section that belong to the client type.
    const KEYS: &'static [&'static str];
}

/// One section: `client` holds the shared keys, `role` the rest. Dereferences
/// to `role`, so `config.kafka.topic` reads as it always did.
#[derive(Clone, Default, PartialEq)]
pub struct Section<C, R> {
    /// The shared client settings.
    pub client: C,
    /// The settings of this process's role.
    pub role: R,
}

impl<C: fmt::Debug, R: fmt::Debug> fmt::Debug for Section<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("client", &self.client)
            .field("role", &self.role)
            .finish()
    }
}

impl<C, R> Deref for Section<C, R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.role
    }
}

impl<C, R> DerefMut for Section<C, R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.role
    }
}

impl<'de, C, R> Deserialize<'de> for Section<C, R>
where
    C: ClientKeys + DeserializeOwned,
    R: DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut role = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut client = serde_json::Map::new();
        for key in C::KEYS {
            if let Some(value) = role.remove(*key) {
                client.insert((*key).to_string(), value);
            }
        }
        let client =
            serde_json::from_value(serde_json::Value::Object(client)).map_err(D::Error::custom)?;
        let role =
            serde_json::from_value(serde_json::Value::Object(role)).map_err(D::Error::custom)?;
        Ok(Section { client, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Client {
        brokers: Vec<String>,
        tls: Tls,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Tls {
        enabled: bool,
    }

    impl ClientKeys for Client {
        const KEYS: &'static [&'static str] = &["brokers", "tls"];
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Role {
        topic: String,
        partitions: u32,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Top {
        kafka: Section<Client, Role>,
    }

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Top, crate::config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        crate::config::load_with_env(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn keys_go_to_their_part_from_file_and_environment() {
        let top = load(
            "[kafka]\ntopic = \"t\"\n[kafka.tls]\nenabled = true\n",
            &[
                ("SPANWAY_KAFKA__BROKERS", "a:1,b:2"),
                ("SPANWAY_KAFKA__PARTITIONS", "6"),
            ],
        )
        .unwrap();
        assert_eq!(top.kafka.client.brokers, vec!["a:1", "b:2"]);
        assert!(top.kafka.client.tls.enabled);
        assert_eq!(top.kafka.topic, "t");
        assert_eq!(top.kafka.partitions, 6);
    }

    #[test]
    fn unknown_keys_are_refused_and_named() {
        let err = load("[kafka]\ntopik = \"t\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("topik"), "{err}");
        let err = load("[kafka.tls]\nenabeld = true\n", &[]).unwrap_err();
        assert!(err.to_string().contains("enabeld"), "{err}");
    }
}
