//! Apache htpasswd files, the users and passwords of HTTP Basic
//! authentication.
//!
//! One `user:hash` per line; blank lines and lines starting with `#` are
//! skipped. Hashes read: bcrypt (`$2y$`, `$2b$`, `$2a$`, what `htpasswd -B`
//! writes), Apache MD5 (`$apr1$`, `htpasswd`'s default, also `openssl
//! passwd -apr1`) and MD5-crypt (`$1$`), and SHA-1 (`{SHA}`, `htpasswd
//! -s`). Plain text and DES `crypt()` are refused when the file is read, so
//! an operator learns at once that an entry can never match. bcrypt is the
//! one to use; the others are there for files that already exist.
//!
//! A bcrypt check takes tens of milliseconds by design. Clients send the same
//! password with every request, so a password that passed is remembered,
//! as an HMAC under a key made at start, until the file changes: only the
//! first request of a user, and wrong passwords, pay for bcrypt.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use ring::hmac;
use subtle::ConstantTimeEq;

/// Why an htpasswd file cannot be used. Names the line and the user, never
/// a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdError {
    /// A line without the `:` between user and hash.
    #[error("line {line}: expected user:hash")]
    NoSeparator { line: usize },
    /// A hash this module cannot check.
    #[error(
        "line {line}: user {user:?}: hash format not supported (bcrypt $2y$/$2b$/$2a$, $apr1$, $1$ and {{SHA}} are)"
    )]
    Unsupported { line: usize, user: String },
    /// A hash of a known format that is malformed.
    #[error("line {line}: user {user:?}: malformed {format} hash")]
    Malformed {
        line: usize,
        user: String,
        format: &'static str,
    },
    /// The same user on two lines.
    #[error("line {line}: user {user:?} appears twice")]
    Duplicate { line: usize, user: String },
    /// Not a single user: nobody could ever be let in.
    #[error("no user in the file")]
    Empty,
}

#[derive(Clone, PartialEq, Eq)]
enum PasswordHash {
    /// The whole `$2y$…` string, as the bcrypt crate verifies it.
    Bcrypt(String),
    /// MD5-crypt: `$apr1$` or `$1$`, salt, and the encoded result.
    Md5Crypt {
        magic: &'static str,
        salt: String,
        encoded: String,
    },
    /// `{SHA}` base64 of the SHA-1 digest.
    Sha1([u8; 20]),
}

/// The users of an htpasswd file, with the passwords that already passed.
pub struct Htpasswd {
    users: HashMap<String, PasswordHash>,
    /// HMAC of the last password that passed bcrypt, per user.
    passed: Mutex<HashMap<String, hmac::Tag>>,
    /// `None` when the system had no randomness to give: nothing is
    /// remembered then.
    cache_key: Option<hmac::Key>,
    /// The highest bcrypt cost in the file: unknown users are checked
    /// against a hash of that cost, so that timing does not tell which
    /// users exist. `None` without bcrypt entries.
    dummy_cost: Option<u32>,
    dummy: OnceLock<String>,
}

/// The hashes are left out: they are not secret, but no less worth keeping
/// out of logs.
impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Parses a whole file.
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (user, hash) = entry
                .split_once(':')
                .ok_or(HtpasswdError::NoSeparator { line })?;
            let hash = parse_hash(hash).map_err(|format| match format {
                None => HtpasswdError::Unsupported {
                    line,
                    user: user.to_owned(),
                },
                Some(format) => HtpasswdError::Malformed {
                    line,
                    user: user.to_owned(),
                    format,
                },
            })?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(HtpasswdError::Duplicate {
                    line,
                    user: user.to_owned(),
                });
            }
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty);
        }
        let rng = ring::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok();
        let dummy_cost = users
            .values()
            .filter_map(|hash| match hash {
                // `$2y$` then two digits, checked by `parse_hash`.
                PasswordHash::Bcrypt(hash) => hash.get(4..6)?.parse::<u32>().ok(),
                _ => None,
            })
            .max();
        Ok(Htpasswd {
            users,
            passed: Mutex::new(HashMap::new()),
            cache_key,
            dummy_cost,
            dummy: OnceLock::new(),
        })
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file has no user (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether checking `user`'s password is cheap enough for an async
    /// worker: anything but a bcrypt check that has not passed before.
    pub fn is_quick(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(PasswordHash::Bcrypt(_)) => self.passed_before(user, password),
            Some(_) => true,
            None => self.dummy_cost.is_none(),
        }
    }

    /// Whether `password` is `user`'s. May take tens of milliseconds (see
    /// [`Htpasswd::is_quick`]).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            None => {
                if let Some(cost) = self.dummy_cost {
                    let dummy = self
                        .dummy
                        .get_or_init(|| bcrypt::hash("", cost).unwrap_or_default());
                    let _ = bcrypt::verify(password, dummy);
                }
                false
            }
            Some(PasswordHash::Bcrypt(hash)) => {
                if self.passed_before(user, password) {
                    return true;
                }
                let ok = bcrypt::verify(password, hash).unwrap_or(false);
                if let (true, Some(key)) = (ok, &self.cache_key) {
                    let tag = hmac::sign(key, password.as_bytes());
                    self.passed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(user.to_owned(), tag);
                }
                ok
            }
            Some(PasswordHash::Md5Crypt {
                magic,
                salt,
                encoded,
            }) => {
                let computed = md5_crypt(password.as_bytes(), salt.as_bytes(), magic);
                bool::from(computed.as_bytes().ct_eq(encoded.as_bytes()))
            }
            Some(PasswordHash::Sha1(digest)) => {
                let computed = ring::digest::digest(
                    &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    password.as_bytes(),
                );
                bool::from(computed.as_ref().ct_eq(digest.as_slice()))
            }
        }
    }

    fn passed_before(&self, user: &str, password: &str) -> bool {
        let Some(key) = &self.cache_key else {
            return false;
        };
        let passed = self.passed.lock().unwrap_or_else(PoisonError::into_inner);
        passed
            .get(user)
            .is_some_and(|tag| hmac::verify(key, password.as_bytes(), tag.as_ref()).is_ok())
    }
}

/// The hash of an entry; `Err(None)` for an unknown format, `Err(Some(name))`
/// for a malformed one.
fn parse_hash(hash: &str) -> Result<PasswordHash, Option<&'static str>> {
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        // `$2y$10$` + 22 characters of salt + 31 of hash.
        let cost_ok = hash
            .get(4..6)
            .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()));
        if hash.len() != 60 || !cost_ok || hash.as_bytes()[6] != b'$' {
            return Err(Some("bcrypt"));
        }
        return Ok(PasswordHash::Bcrypt(hash.to_owned()));
    }
    for magic in [APR1, MD5_CRYPT] {
        if let Some(rest) = hash.strip_prefix(magic) {
            let (salt, encoded) = rest.split_once('$').ok_or(Some("MD5"))?;
            if salt.is_empty() || salt.len() > 8 || encoded.len() != 22 {
                return Err(Some("MD5"));
            }
            return Ok(PasswordHash::Md5Crypt {
                magic,
                salt: salt.to_owned(),
                encoded: encoded.to_owned(),
            });
        }
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Some("{SHA}"))?;
        return bytes
            .try_into()
            .map(PasswordHash::Sha1)
            .map_err(|_| Some("{SHA}"));
    }
    Err(None)
}

const APR1: &str = "$apr1$";
const MD5_CRYPT: &str = "$1$";
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt (Poul-Henning Kamp's, as in FreeBSD and Apache's `apr1`
/// variant, which differs only in `magic`): the encoded 22 characters that
/// follow the salt.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut alternate = Md5::new();
    alternate.update(password);
    alternate.update(salt);
    alternate.update(password);
    let alternate = alternate.finalize();

    let mut context = Md5::new();
    context.update(password);
    context.update(magic.as_bytes());
    context.update(salt);
    let mut remaining = password.len();
    while remaining > 0 {
        let n = remaining.min(16);
        context.update(&alternate[..n]);
        remaining -= n;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = context.finalize();

    // 1000 rounds, to slow guessing down (by 1990s standards).
    for round in 0..1000 {
        let mut context = Md5::new();
        if round & 1 == 1 {
            context.update(password);
        } else {
            context.update(digest);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round & 1 == 1 {
            context.update(digest);
        } else {
            context.update(password);
        }
        digest = context.finalize();
    }

    let d = |i: usize| u32::from(digest[i]);
    let mut out = String::with_capacity(22);
    let mut push = |value: u32, chars: usize| {
        let mut v = value;
        for _ in 0..chars {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    push((d(0) << 16) | (d(6) << 8) | d(12), 4);
    push((d(1) << 16) | (d(7) << 8) | d(13), 4);
    push((d(2) << 16) | (d(8) << 8) | d(14), 4);
    push((d(3) << 16) | (d(9) << 8) | d(15), 4);
    push((d(4) << 16) | (d(10) << 8) | d(5), 4);
    push(d(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_matches_openssl() {
        // From `openssl passwd -apr1 -salt SALT PASSWORD` and `-1`.
        let cases = [
            ("pw", "Ab3.x/yZ", APR1, "22gtj8F7eNfTj1pko6Ll/1"),
            ("secret pass", "Ab3.x/yZ", APR1, "R4uqW97H7pOcrbecck5BR."),
            ("", "a", APR1, "lsAcX0kKaMIVmrCtUuk5b0"),
            (
                "a-much-longer-password-than-sixteen-bytes",
                "12345678",
                APR1,
                "/Az/qRqc4UNrNHoqSr0bJ1",
            ),
            ("pw", "saltsalt", MD5_CRYPT, "6SNdNaZLKst2LlSm7oPPL1"),
            (
                "secret pass",
                "saltsalt",
                MD5_CRYPT,
                "cIrgcdXxo0mpb22wHphLq1",
            ),
        ];
        for (password, salt, magic, want) in cases {
            assert_eq!(
                md5_crypt(password.as_bytes(), salt.as_bytes(), magic),
                want,
                "{magic}{salt}"
            );
        }
    }

    #[test]
    fn every_supported_format_verifies() {
        let bcrypt_hash = bcrypt::hash("b-pass", 4).unwrap();
        let two_y = bcrypt_hash.replacen("$2b$", "$2y$", 1);
        let file = format!(
            "# users\n\nbee:{bcrypt_hash}\nwhy:{two_y}\napr:$apr1$Ab3.x/yZ$22gtj8F7eNfTj1pko6Ll/1\n  md:$1$saltsalt$6SNdNaZLKst2LlSm7oPPL1  \nsha:{{SHA}}GpHWL3ymc5liWkNopqtdSjuqYHM=\n"
        );
        let file = Htpasswd::parse(&file).unwrap();
        assert_eq!(file.len(), 5);
        for (user, right) in [
            ("bee", "b-pass"),
            ("why", "b-pass"),
            ("apr", "pw"),
            ("md", "pw"),
            ("sha", "pw"),
        ] {
            assert!(file.verify(user, right), "{user}");
            assert!(!file.verify(user, "wrong"), "{user}");
            assert!(!file.verify(user, ""), "{user}");
        }
        assert!(!file.verify("nobody", "pw"));
        assert!(!file.verify("", ""));
    }

    #[test]
    fn a_bcrypt_password_that_passed_is_quick_next_time() {
        let file = Htpasswd::parse(&format!("u:{}\n", bcrypt::hash("p", 4).unwrap())).unwrap();
        assert!(!file.is_quick("u", "p"));
        assert!(file.verify("u", "p"));
        assert!(file.is_quick("u", "p"));
        assert!(
            !file.is_quick("u", "q"),
            "another password is checked in full"
        );
        assert!(!file.verify("u", "q"));
        assert!(!file.is_quick("ghost", "p"), "unknown users pay for bcrypt");
        assert!(!file.verify("ghost", "p"));
        let sha_only = Htpasswd::parse("a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n").unwrap();
        assert!(sha_only.is_quick("ghost", "p"));
    }

    #[test]
    fn unusable_entries_are_refused_with_line_and_user() {
        let err = Htpasswd::parse("# c\nalice\n").unwrap_err();
        assert_eq!(err, HtpasswdError::NoSeparator { line: 2 });
        let err = Htpasswd::parse("alice:plaintext\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: user \"alice\": hash format not supported (bcrypt $2y$/$2b$/$2a$, $apr1$, $1$ and {SHA} are)"
        );
        let err = Htpasswd::parse("bob:$2y$10$short\n").unwrap_err();
        assert!(matches!(
            err,
            HtpasswdError::Malformed {
                format: "bcrypt",
                ..
            }
        ));
        let err = Htpasswd::parse("bob:{SHA}notbase64!\n").unwrap_err();
        assert!(err.to_string().contains("malformed {SHA} hash"), "{err}");
        let err = Htpasswd::parse(
            "a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\na:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            HtpasswdError::Duplicate {
                line: 2,
                user: "a".into()
            }
        );
        assert_eq!(
            Htpasswd::parse("# nobody\n\n").unwrap_err(),
            HtpasswdError::Empty
        );
    }

    #[test]
    fn debug_shows_no_hash() {
        let file = Htpasswd::parse("a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n").unwrap();
        let printed = format!("{file:?}");
        assert!(!printed.contains("GpHW"), "{printed}");
    }
}
