//! Refusals for credentials or rights, and what to tell the operator.
//!
//! A 401 (no valid credentials) or a 403 `security_exception` (valid
//! credentials, no right to write there) says nothing about the document:
//! the same document goes in once the setting is fixed. So such a refusal
//! is never a reason to dead-letter or drop; the writer keeps the
//! documents and retries, and the operator needs to learn which setting to
//! fix, from one clear line rather than one per retry.

use crate::client::AuthMethod;

/// The engine refused a request, or an item of one, for credentials or rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// 401: credentials missing or not accepted; 403: accepted, but not
    /// allowed to do this.
    pub status: u16,
    /// The engine's error type and reason, as it gave them.
    pub reason: String,
}

/// The setting an operator should look at first.
pub fn setting_at_fault(method: &AuthMethod) -> &'static str {
    match method {
        AuthMethod::None => "elasticsearch.username",
        AuthMethod::Basic { password_key, .. } => password_key,
        AuthMethod::ApiKey { key } => key,
        AuthMethod::Bearer => "elasticsearch.bearer_token_file",
    }
}

/// What to fix, naming the settings, for a refusal of writes to `index`.
/// `certificate` says whether a client certificate was presented.
pub fn advice(
    method: &AuthMethod,
    certificate: bool,
    failure: &AuthFailure,
    index: &str,
) -> String {
    const WRITE_RIGHTS: &str = "the create_index and index (or create_doc) privileges";
    if failure.status == 401 {
        return match method {
            AuthMethod::None if certificate => "the engine does not accept the client certificate of elasticsearch.tls.cert_file as a login: map it to a user on the engine, or set elasticsearch.username with password_file, api_key_file or bearer_token_file".to_owned(),
            AuthMethod::None => "the engine asks for credentials and none are set: set elasticsearch.username with password_file (or password), elasticsearch.api_key_file (or api_key), or elasticsearch.bearer_token_file".to_owned(),
            AuthMethod::Basic { username, password_key } => format!(
                "the engine refuses user {username:?} (elasticsearch.username) with the password from {password_key}: check both; a changed password file is picked up within seconds, without a restart"
            ),
            AuthMethod::ApiKey { key } => format!(
                "the engine refuses the API key from {key}: check that it is the `encoded` value Elasticsearch returned and that the key has not expired or been invalidated"
            ),
            AuthMethod::Bearer => "the engine refuses the token from elasticsearch.bearer_token_file: it may have expired; the file is re-read when it changes, so renewing it is enough".to_owned(),
        };
    }
    match method {
        AuthMethod::None => format!(
            "the engine lets requests without credentials in but not write to {index}: set elasticsearch.username with password_file, api_key_file or bearer_token_file for a user with {WRITE_RIGHTS} there"
        ),
        AuthMethod::Basic { username, .. } => format!(
            "user {username:?} (elasticsearch.username) is logged in but may not write to {index}: give its role {WRITE_RIGHTS} on these indices"
        ),
        AuthMethod::ApiKey { key } => format!(
            "the API key from {key} is accepted but may not write to {index}: create it with {WRITE_RIGHTS} on these indices"
        ),
        AuthMethod::Bearer => format!(
            "the token from elasticsearch.bearer_token_file is accepted but its user may not write to {index}: give that user's role {WRITE_RIGHTS} on these indices"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16) -> AuthFailure {
        AuthFailure {
            status,
            reason: "security_exception: x".into(),
        }
    }

    #[test]
    fn wrong_credentials_name_the_secret_setting() {
        let basic = AuthMethod::Basic {
            username: "writer".into(),
            password_key: "elasticsearch.password_file",
        };
        let text = advice(&basic, false, &failure(401), "jaeger-span-2026-03-02");
        assert!(text.contains("elasticsearch.password_file"), "{text}");
        assert!(text.contains("\"writer\""), "{text}");
        assert_eq!(setting_at_fault(&basic), "elasticsearch.password_file");

        let key = AuthMethod::ApiKey {
            key: "elasticsearch.api_key",
        };
        let text = advice(&key, false, &failure(401), "i");
        assert!(text.contains("elasticsearch.api_key"), "{text}");
        let text = advice(&AuthMethod::Bearer, false, &failure(401), "i");
        assert!(text.contains("elasticsearch.bearer_token_file"), "{text}");
        let text = advice(&AuthMethod::None, false, &failure(401), "i");
        assert!(text.contains("elasticsearch.username"), "{text}");
        let text = advice(&AuthMethod::None, true, &failure(401), "i");
        assert!(text.contains("elasticsearch.tls.cert_file"), "{text}");
    }

    #[test]
    fn missing_rights_name_the_user_and_the_index() {
        let basic = AuthMethod::Basic {
            username: "writer".into(),
            password_key: "elasticsearch.password",
        };
        let text = advice(&basic, false, &failure(403), "prod-jaeger-span-2026-03-02");
        assert!(text.contains("elasticsearch.username"), "{text}");
        assert!(text.contains("prod-jaeger-span-2026-03-02"), "{text}");
        assert!(text.contains("role"), "{text}");
        let key = AuthMethod::ApiKey {
            key: "elasticsearch.api_key_file",
        };
        let text = advice(&key, false, &failure(403), "i");
        assert!(text.contains("elasticsearch.api_key_file"), "{text}");
        assert!(!advice(&AuthMethod::None, false, &failure(403), "i").is_empty());
    }
}
