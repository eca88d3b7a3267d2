//! One versioning mechanism for every persisted and wire format: Raft proposals
//! ([`crate::command::Proposal`]), state machine snapshots, the internal transport
//! envelope and the actor transport envelope.
//!
//! The shape is Garage's `Migrate` (`src/util/migrate.rs`): each format is a type that
//! says which version it is and which type it replaced ([`Migrate::Previous`]), and knows
//! how to turn a value of that type into itself ([`Migrate::migrate`]). [`decode`] tries
//! the current version first and falls back to the previous one (recursively), migrating
//! what it read.
//!
//! Unlike Garage's, the version is not a byte prefix: every Colony format already carries
//! its version as a field of the rmp-serde map (`format` in proposals and snapshots, `v`
//! in envelopes), and those bytes are pinned by `tests/wire_fixtures.rs` and must not
//! change. So a format names the version field's value ([`Migrate::version`]) and
//! [`decode`] reads the map, then decides by that value:
//! - newer than [`Migrate::VERSION`]: refused with [`FormatError::TooNew`], unless the
//!   format declares that newer writers only add fields an older reader may ignore
//!   ([`Newer::ReadAsCurrent`]);
//! - above the previous format's version, up to [`Migrate::VERSION`]: the current format;
//! - otherwise: the previous format's bytes, decoded as that format and migrated.
//!
//! The first format of a type has `type Previous = NoPrevious` and reads every version up
//! to its own. Today every format is at version 1, its first; when one changes, its old
//! type moves to a versioned module (as Garage's `v08`, `v09`), the new type names it as
//! `Previous`, and old bytes keep decoding.
//!
//! Encoding is always rmp-serde as a map with named fields ([`encode`]), so fields can be
//! added (`Option` or `#[serde(default)]`) without a new version.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// What a reader does with a value whose version is newer than its [`Migrate::VERSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newer {
    /// Refuse it ([`FormatError::TooNew`]): a newer writer may mean something this binary
    /// would misread.
    Refuse,
    /// Read it as the current version: newer versions of this format only add fields an
    /// older reader may ignore.
    ReadAsCurrent,
}

/// A versioned format: a type that is one version of an encoding, and can be migrated from
/// the version before it.
pub trait Migrate: DeserializeOwned {
    /// The version of this format: what a writer stamps into the version field. Real
    /// formats number from 1; 0 is [`NoPrevious`]'s.
    const VERSION: u16;

    /// What readers do with a newer version.
    const NEWER: Newer = Newer::Refuse;

    /// The format this one replaced; [`NoPrevious`] for the first.
    type Previous: Migrate;

    /// Turns a value of the previous format into this one.
    fn migrate(previous: Self::Previous) -> Self;

    /// The version a decoded value says it is (its version field).
    fn version(&self) -> u16;
}

/// The `Previous` of a first format: there is none, so it has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPrevious {}

impl<'de> Deserialize<'de> for NoPrevious {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(<D::Error as serde::de::Error>::custom(
            "no format precedes the first one",
        ))
    }
}

impl Migrate for NoPrevious {
    const VERSION: u16 = 0;
    type Previous = NoPrevious;

    fn migrate(previous: NoPrevious) -> Self {
        previous
    }

    fn version(&self) -> u16 {
        match *self {}
    }
}

/// Why bytes could not be read as a versioned format.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not this format (nor any previous one).
    #[error("cannot decode: {0}")]
    Malformed(#[source] rmp_serde::decode::Error),
    /// Written by a newer binary, in a version this one refuses to read.
    #[error("format {found} is newer than this binary understands ({supported})")]
    TooNew {
        /// The version found.
        found: u16,
        /// The newest version this binary reads ([`Migrate::VERSION`]).
        supported: u16,
    },
}

/// Whether `found`, the version of a value of format `T`, is one this binary may read:
/// [`FormatError::TooNew`] if it is newer than `T`'s and `T` refuses newer versions. For
/// values decoded some other way (Raft log entries are decoded by openraft's serde; the
/// state machine checks each proposal's version when it applies it).
pub fn check_version<T: Migrate>(found: u16) -> Result<(), FormatError> {
    if found > T::VERSION && T::NEWER == Newer::Refuse {
        return Err(FormatError::TooNew {
            found,
            supported: T::VERSION,
        });
    }
    Ok(())
}

/// Whether `T` is the first version of its format.
fn is_first<T: Migrate>() -> bool {
    <T::Previous as Migrate>::VERSION == NoPrevious::VERSION
}

/// Decodes `bytes` as format `T`: as the current version when the layout and version fit,
/// otherwise as the previous version (recursively), migrated to `T`.
pub fn decode<T: Migrate>(bytes: &[u8]) -> Result<T, FormatError> {
    let first = is_first::<T>();
    match rmp_serde::from_slice::<T>(bytes) {
        Ok(value) => {
            let found = value.version();
            check_version::<T>(found)?;
            if first || found > <T::Previous as Migrate>::VERSION {
                Ok(value)
            } else {
                // Bytes of an older version that also fit this layout: read them as the
                // version they say they are.
                decode::<T::Previous>(bytes).map(T::migrate)
            }
        }
        Err(current) if first => Err(FormatError::Malformed(current)),
        Err(current) => match decode::<T::Previous>(bytes) {
            Ok(previous) => Ok(T::migrate(previous)),
            // A newer binary's bytes in a layout this one does not know.
            Err(FormatError::TooNew { found, .. }) if found > T::VERSION => {
                Err(FormatError::TooNew {
                    found,
                    supported: T::VERSION,
                })
            }
            Err(_) => Err(FormatError::Malformed(current)),
        },
    }
}

/// Encodes `value` the one way versioned formats are encoded: rmp-serde, a map with named
/// fields. The version field is the value's own (writers stamp [`Migrate::VERSION`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors
mod tests {
    use super::*;

    /// The first version of a toy format.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct V1 {
        format: u16,
        name: String,
    }

    impl Migrate for V1 {
        const VERSION: u16 = 1;
        type Previous = NoPrevious;
        fn migrate(previous: NoPrevious) -> Self {
            match previous {}
        }
        fn version(&self) -> u16 {
            self.format
        }
    }

    /// Its second version: `name` became `names`, and `tags` is new.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct V2 {
        format: u16,
        names: Vec<String>,
        #[serde(default)]
        tags: Vec<String>,
    }

    impl Migrate for V2 {
        const VERSION: u16 = 2;
        type Previous = V1;
        fn migrate(previous: V1) -> Self {
            Self {
                format: Self::VERSION,
                names: vec![previous.name],
                tags: Vec::new(),
            }
        }
        fn version(&self) -> u16 {
            self.format
        }
    }

    /// A format whose newer versions only add fields.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Tolerant {
        v: u16,
        body: u32,
    }

    impl Migrate for Tolerant {
        const VERSION: u16 = 1;
        const NEWER: Newer = Newer::ReadAsCurrent;
        type Previous = NoPrevious;
        fn migrate(previous: NoPrevious) -> Self {
            match previous {}
        }
        fn version(&self) -> u16 {
            self.v
        }
    }

    fn v1() -> V1 {
        V1 {
            format: 1,
            name: "a".into(),
        }
    }

    #[test]
    fn current_versions_round_trip() {
        let one = v1();
        assert_eq!(decode::<V1>(&encode(&one).unwrap()).unwrap(), one);
        let two = V2 {
            format: 2,
            names: vec!["a".into(), "b".into()],
            tags: vec!["t".into()],
        };
        let bytes = encode(&two).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec_named(&two).unwrap());
        assert_eq!(decode::<V2>(&bytes).unwrap(), two);
    }

    #[test]
    fn previous_version_bytes_are_migrated() {
        let got = decode::<V2>(&encode(&v1()).unwrap()).unwrap();
        assert_eq!(
            got,
            V2 {
                format: 2,
                names: vec!["a".into()],
                tags: Vec::new(),
            }
        );
    }

    #[test]
    fn the_version_field_decides_which_layout_is_read() {
        // Version 1 in V2's layout (a writer that stamped the wrong version): the version
        // field decides, so it is read as V1, whose layout it does not fit.
        let odd = V2 {
            format: 1,
            names: vec!["x".into()],
            tags: Vec::new(),
        };
        assert!(matches!(
            decode::<V2>(&encode(&odd).unwrap()),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn newer_versions_are_refused_with_a_clear_error() {
        let three = V2 {
            format: 3,
            names: vec![],
            tags: vec![],
        };
        let err = decode::<V2>(&encode(&three).unwrap()).unwrap_err();
        assert!(matches!(
            err,
            FormatError::TooNew {
                found: 3,
                supported: 2
            }
        ));
        assert_eq!(
            err.to_string(),
            "format 3 is newer than this binary understands (2)"
        );
        // Also when the newer layout only fits the previous version's.
        let newer_v1 = V1 {
            format: 3,
            name: "a".into(),
        };
        assert!(matches!(
            decode::<V2>(&encode(&newer_v1).unwrap()),
            Err(FormatError::TooNew {
                found: 3,
                supported: 2
            })
        ));
        assert!(check_version::<V2>(2).is_ok());
        assert!(check_version::<V2>(3).is_err());
    }

    #[test]
    fn a_tolerant_format_reads_newer_versions() {
        let newer = Tolerant { v: 7, body: 5 };
        assert_eq!(decode::<Tolerant>(&encode(&newer).unwrap()).unwrap(), newer);
        assert!(check_version::<Tolerant>(7).is_ok());
    }

    #[test]
    fn the_first_format_reads_every_version_up_to_its_own() {
        let zero = V1 {
            format: 0,
            name: "a".into(),
        };
        assert_eq!(decode::<V1>(&encode(&zero).unwrap()).unwrap(), zero);
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            decode::<V2>(b"\x01\x02"),
            Err(FormatError::Malformed(_))
        ));
        assert!(matches!(decode::<V1>(&[]), Err(FormatError::Malformed(_))));
        assert!(decode::<NoPrevious>(&encode(&v1()).unwrap()).is_err());
    }
}
