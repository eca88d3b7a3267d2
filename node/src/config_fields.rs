//! How each kind of config value is read and checked (`#[serde(deserialize_with)]`). Errors
//! are plain messages: the caller knows the key from serde's path and names it.

use serde::de::{Deserializer, Error, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Reads a TOML integer; the error says what was expected in words.
struct Integer;

impl<'de> Visitor<'de> for Integer {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number (without quotes)")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("is too large"))
    }
}

fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_i64(Integer)
}

/// A whole number in `MIN..=MAX`, as `T`.
pub fn count<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = integer(d)?;
    let out_of_range = || {
        if MAX == u64::MAX {
            D::Error::custom(format!("must be at least {MIN}"))
        } else {
            D::Error::custom(format!("must be between {MIN} and {MAX}"))
        }
    };
    let n = u64::try_from(n).map_err(|_| out_of_range())?;
    if !(MIN..=MAX).contains(&n) {
        return Err(out_of_range());
    }
    T::try_from(n).map_err(|_| out_of_range())
}

/// Any whole number that is not negative.
pub fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count::<D, u64, 0, { u64::MAX }>(d)
}

/// A whole number of at least 1.
pub fn positive<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    count::<D, T, 1, { u64::MAX }>(d)
}

/// Milliseconds, at least 1 (keys ending in `_ms`).
pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let ms = integer(d)?;
    match u64::try_from(ms) {
        Ok(ms) if ms >= 1 => Ok(Duration::from_millis(ms)),
        _ => Err(D::Error::custom("must be at least 1 (milliseconds)")),
    }
}

fn parse_addr<E: Error>(v: &str) -> Result<SocketAddr, E> {
    v.trim().parse().map_err(|_| {
        E::custom(format!(
            "{v:?} is not a socket address (expected e.g. 127.0.0.1:7946)"
        ))
    })
}

/// A socket address, `IP:PORT`.
pub fn addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_addr(&String::deserialize(d)?)
}

/// A socket address, or `""` for none.
pub fn optional_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let v = String::deserialize(d)?;
    if v.trim().is_empty() {
        Ok(None)
    } else {
        parse_addr(&v).map(Some)
    }
}

/// A list of socket addresses; the error names the list, not an entry.
pub fn addrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| parse_addr(s))
        .collect()
}

/// A path that is not empty.
pub fn non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let v = String::deserialize(d)?;
    if v.trim().is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(PathBuf::from(v))
}

/// Client certificate names: 1 to 64 of `[A-Za-z0-9._-]` each (as `colony certs
/// create-client` makes them), at most 64 names.
pub fn client_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.len() > 64 {
        return Err(D::Error::custom("at most 64 names"));
    }
    for n in &names {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(D::Error::custom(
                "each name is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
            ));
        }
    }
    Ok(names)
}

/// `"off"`, `"accept"` or `"send"` (gossip.legacy).
pub fn gossip_legacy<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<colony_cluster::membership::Legacy, D::Error> {
    use colony_cluster::membership::Legacy;
    match String::deserialize(d)?.trim() {
        "off" => Ok(Legacy::Off),
        "accept" => Ok(Legacy::Accept),
        "send" => Ok(Legacy::Send),
        _ => Err(D::Error::custom("expected \"off\", \"accept\" or \"send\"")),
    }
}

/// A path, or none when empty.
pub fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let v = String::deserialize(d)?;
    Ok((!v.trim().is_empty()).then(|| PathBuf::from(v)))
}

/// `"pretty"` or `"json"`.
pub fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
    let v = String::deserialize(d)?;
    match v.trim() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(D::Error::custom(format!(
            "{other:?} is not one of \"pretty\", \"json\""
        ))),
    }
}

/// A `tracing` filter directive.
pub fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    if tracing_subscriber::EnvFilter::try_new(&v).is_err() {
        return Err(D::Error::custom(format!(
            "{v:?} is not a log filter (e.g. \"info\" or \"colony=debug,info\")"
        )));
    }
    Ok(v)
}

/// Egress exceptions: CIDRs and `host:port` pairs, as the provider egress policy reads them.
pub fn egress_allow<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let entries: Vec<String> = Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    colony_providers::EgressPolicy::parse(&entries).map_err(D::Error::custom)?;
    Ok(entries)
}

/// An operator credential's name.
pub fn credential_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    colony_core::credential::check_name(&name).map_err(D::Error::custom)?;
    Ok(name)
}

/// The variable an operator credential is read from: a variable name. Whether it is one of
/// the node's own is checked where the node's variables are known.
pub fn variable_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let var = String::deserialize(d)?;
    let mut chars = var.chars();
    let is_name = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(D::Error::custom(format!(
            "{} is not a variable name (letters, digits and '_', not starting with a digit)",
            shown(&var)
        )));
    }
    Ok(Some(var))
}

/// The longest value an error quotes; a longer one may be a secret pasted where its
/// source (a variable's name, a path) belongs, so it is not echoed.
const MAX_SHOWN_CHARS: usize = 24;

/// `value` quoted for an error message, unless it is long enough to be a pasted secret.
pub fn shown(value: &str) -> String {
    let n = value.chars().count();
    if n <= MAX_SHOWN_CHARS {
        format!("{value:?}")
    } else {
        not_shown(n)
    }
}

fn not_shown(n: usize) -> String {
    format!("the value ({n} characters, not shown: is it a secret?)")
}

/// A variable's name for an error message: shown when it looks like one by convention
/// (upper case, digits and '_', at most 64), since keys rarely do; otherwise not echoed.
pub fn shown_variable(var: &str) -> String {
    let conventional = var.len() <= 64
        && var.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if conventional {
        format!("{var:?}")
    } else {
        not_shown(var.chars().count())
    }
}

/// A path for an error message: shown when it has a directory part (a pasted key has
/// none), otherwise only when short.
pub fn shown_path(path: &str) -> String {
    if path.contains('/') {
        format!("{path:?}")
    } else {
        shown(path)
    }
}

/// The file an operator credential is read from.
pub fn credential_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    non_empty_path(d).map(Some)
}

/// The `host:port` pairs an operator credential may be sent to, normalised.
pub fn allowed_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let hosts = Vec::<String>::deserialize(d)?;
    colony_core::credential::normalize_hosts(&hosts).map_err(D::Error::custom)
}

/// The tenants that may use an operator credential: `["*"]`, or tenant ids.
pub fn credential_tenants<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let tenants = Vec::<String>::deserialize(d)?;
    if tenants.is_empty() {
        return Err(D::Error::custom(
            "name at least one tenant id, or \"*\" for all",
        ));
    }
    if tenants.iter().any(|t| t == "*") {
        if tenants.len() != 1 {
            return Err(D::Error::custom(
                "\"*\" (every tenant) must be the only entry",
            ));
        }
        return Ok(tenants);
    }
    for t in &tenants {
        colony_core::ids::validate_id(t)
            .map_err(|p| D::Error::custom(format!("tenant id {t:?} {p}")))?;
    }
    Ok(tenants)
}
