//! Bearer tokens: the file format, and checking a token in constant time.
//!
//! One token per line; surrounding whitespace is dropped, blank lines and
//! lines starting with `#` are skipped. Tokens are kept as SHA-256 digests
//! and every one is compared, each in constant time, so that neither a
//! token's content nor its length shows in response times.

use subtle::ConstantTimeEq;

/// Why a tokens file cannot be used. Names the line, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    /// A line with whitespace inside: two tokens on a line, or a token
    /// pasted with its `Bearer` prefix.
    #[error("line {line}: a token cannot contain whitespace")]
    Whitespace { line: usize },
    /// Not a single token: nobody could ever be let in.
    #[error("no token in the file")]
    Empty,
}

/// The accepted bearer tokens, kept as SHA-256 digests.
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.digests.len())
            .finish()
    }
}

impl Tokens {
    /// Parses a tokens file: one token per line, surrounding whitespace
    /// dropped, blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut digests = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let token = raw.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if token.chars().any(char::is_whitespace) {
                return Err(TokensError::Whitespace { line: index + 1 });
            }
            digests.push(sha256(token.as_bytes()));
        }
        if digests.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Tokens { digests })
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when no token is accepted (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of them. Every digest is compared, each in
    /// constant time, so the time taken depends only on how many there are.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = sha256(token.as_bytes());
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d.ct_eq(&presented)
            });
        bool::from(matched)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_skips_comments_and_blanks() {
        let tokens =
            Tokens::parse("# ingest tokens\n\n  tok-one  \n#tok-old\ntok-two\r\n").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens.accepts("tok-one"));
        assert!(tokens.accepts("tok-two"));
        assert!(!tokens.accepts("tok-old"));
        assert!(!tokens.accepts("tok-on"));
        assert!(!tokens.accepts(""));
        assert_eq!(
            Tokens::parse("a\nBearer b\n").unwrap_err(),
            TokensError::Whitespace { line: 2 }
        );
        assert_eq!(Tokens::parse("# none\n\n").unwrap_err(), TokensError::Empty);
        assert!(!format!("{tokens:?}").contains("tok"));
    }
}
