//! Bearer tokens: loading code and executing need different ones, each read from its own file
//! and read again on `SIGHUP`, so an operator rotates a token without a restart.

use crate::error::{ApiError, ServeError};
use axum::http::{HeaderMap, header};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The longest token file read, in bytes: a token is a short secret, not a document.
pub const MAX_TOKEN_BYTES: u64 = 4096;

/// Which credential a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `POST /v1/code`.
    Load,
    /// `POST /v1/execute`, `POST /v1/batch`.
    Execute,
}

/// The roles a connection's verified client certificate grants (mTLS): each stands for that
/// role's token on every request of the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerRoles {
    /// The certificate names a host in `tls.load_clients`.
    pub load: bool,
    /// The certificate names a host in `tls.execute_clients`.
    pub execute: bool,
}

impl PeerRoles {
    fn grants(&self, role: Role) -> bool {
        match role {
            Role::Load => self.load,
            Role::Execute => self.execute,
        }
    }
}

/// The two tokens and where they come from. A role without a token file has no token: only
/// a client certificate grants it (the operator configured mTLS alone for it).
#[derive(Debug)]
pub struct Tokens {
    load_file: Option<PathBuf>,
    execute_file: Option<PathBuf>,
    current: RwLock<Pair>,
}

/// The load token and the execute token, each if configured.
type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);

impl Tokens {
    /// Reads the files; fails if one is missing, empty, too long, or they hold the same token
    /// (the two roles would then be one).
    pub fn load(load_file: Option<&Path>, execute_file: Option<&Path>) -> Result<Self, ServeError> {
        let pair = read_pair(load_file, execute_file)?;
        Ok(Tokens {
            load_file: load_file.map(Path::to_path_buf),
            execute_file: execute_file.map(Path::to_path_buf),
            current: RwLock::new(pair),
        })
    }

    /// Reads the files again. On an error the old tokens stay in force.
    pub fn reload(&self) -> Result<(), ServeError> {
        let pair = read_pair(self.load_file.as_deref(), self.execute_file.as_deref())?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = pair;
        Ok(())
    }

    /// Whether the connection's client certificate (`peer`) grants `role`, or else `headers`
    /// carry `Authorization: Bearer <token>` for it.
    pub fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerRoles>,
        role: Role,
    ) -> Result<(), ApiError> {
        if peer.is_some_and(|p| p.grants(role)) {
            return Ok(());
        }
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let wanted = match role {
            Role::Load => current.0.as_deref(),
            Role::Execute => current.1.as_deref(),
        };
        let Some(wanted) = wanted else {
            return Err(ApiError::Unauthenticated(match role {
                Role::Load => {
                    "loading code needs a client certificate (this server takes no load token)"
                }
                Role::Execute => {
                    "executing needs a client certificate (this server takes no execute token)"
                }
            }));
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthenticated("no Authorization header"));
        };
        let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return Err(ApiError::Unauthenticated(
                "Authorization is not a Bearer token",
            ));
        };
        if constant_time_eq(given, wanted) {
            Ok(())
        } else {
            Err(ApiError::Unauthenticated(match role {
                Role::Load => "this token may not load code",
                Role::Execute => "this token may not execute",
            }))
        }
    }
}

fn read_pair(load: Option<&Path>, execute: Option<&Path>) -> Result<Pair, ServeError> {
    let l = load.map(read_token).transpose()?;
    let e = execute.map(read_token).transpose()?;
    if let (Some(l), Some(e), Some(path)) = (&l, &e, execute)
        && l == e
    {
        return Err(ServeError::Token {
            path: path.display().to_string(),
            message: "holds the same token as the load token file".into(),
        });
    }
    Ok((l, e))
}

fn read_token(path: &Path) -> Result<Vec<u8>, ServeError> {
    use std::io::Read;
    let err = |message: String| ServeError::Token {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_TOKEN_BYTES {
        return Err(err(format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let token = bytes.trim_ascii().to_vec();
    if token.is_empty() {
        return Err(err("is empty".into()));
    }
    if token.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(err("holds a space or a non-printable byte".into()));
    }
    Ok(token)
}

/// Compares without an early exit, so the time taken does not tell how much of a guess
/// matched (only whether its length is right).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use axum::http::HeaderValue;

    /// The roles a request gets with the `Authorization` header `auth` on a connection whose
    /// certificate grants `peer`.
    fn granted(t: &Tokens, auth: Option<&str>, peer: Option<&PeerRoles>) -> Vec<Role> {
        let mut headers = HeaderMap::new();
        if let Some(v) = auth {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        [Role::Load, Role::Execute]
            .into_iter()
            .filter(|&role| t.check(&headers, peer, role).is_ok())
            .collect()
    }

    /// A certificate that grants executing only.
    const EXEC_PEER: PeerRoles = PeerRoles {
        load: false,
        execute: true,
    };

    #[test]
    fn roles_are_separate_and_reload_rotates() {
        let dir = TestDir::new("auth");
        let (l, e) = (dir.write("l", "load-1\n"), dir.write("e", "exec-1"));
        let t = Tokens::load(Some(&l), Some(&e)).unwrap();
        assert_eq!(granted(&t, Some("Bearer load-1"), None), [Role::Load]);
        assert_eq!(granted(&t, Some("Bearer exec-1"), None), [Role::Execute]);
        for wrong in [
            Some("Bearer exec-"),
            Some("Bearer exec-11"),
            Some("exec-1"),
            None,
        ] {
            assert_eq!(granted(&t, wrong, None), [], "{wrong:?}");
        }
        dir.write("e", "exec-2");
        t.reload().unwrap();
        assert_eq!(granted(&t, Some("Bearer exec-1"), None), []);
        assert_eq!(granted(&t, Some("Bearer exec-2"), None), [Role::Execute]);
        // A bad file keeps the old tokens.
        dir.write("e", "");
        assert!(t.reload().is_err());
        assert_eq!(granted(&t, Some("Bearer exec-2"), None), [Role::Execute]);
        dir.write("e", "load-1");
        assert!(matches!(t.reload(), Err(ServeError::Token { .. })));
    }

    #[test]
    fn a_role_without_a_token_file_takes_only_certificates() {
        let dir = TestDir::new("mtls");
        let t = Tokens::load(Some(&dir.write("l", "load-1")), None).unwrap();
        // No token executes, not even the load token or an empty one.
        assert_eq!(granted(&t, Some("Bearer load-1"), None), [Role::Load]);
        for h in ["Bearer ", "Bearer x"] {
            assert_eq!(granted(&t, Some(h), None), [], "{h}");
        }
        assert_eq!(granted(&t, None, Some(&EXEC_PEER)), [Role::Execute]);
        let none = Tokens::load(None, None).unwrap();
        assert_eq!(granted(&none, Some("Bearer load-1"), None), []);
    }

    #[test]
    fn a_certificate_role_stands_for_its_token_only() {
        let dir = TestDir::new("peer");
        let (l, e) = (dir.write("l", "load-1"), dir.write("e", "exec-1"));
        let t = Tokens::load(Some(&l), Some(&e)).unwrap();
        assert_eq!(granted(&t, None, Some(&EXEC_PEER)), [Role::Execute]);
        // A token still works beside a certificate without that role.
        let both = granted(&t, Some("Bearer load-1"), Some(&EXEC_PEER));
        assert_eq!(both, [Role::Load, Role::Execute]);
        assert_eq!(granted(&t, None, Some(&PeerRoles::default())), []);
    }
}
