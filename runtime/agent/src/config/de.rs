//! What a config file's values are read as, beyond serde's own types: whole numbers as Go
//! reads them, lists of strings and tables (each only as such), for both formats. Each names
//! what it expects, which is what a wrong type's error says it must be.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Error, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// A whole number of 0 or more. Go's decoder reads JSON numbers as floats and takes a whole one
/// (`3.0`) for an integer, so this does too.
pub(super) struct Whole<T>(pub T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = d.deserialize_any(WholeVisitor)?;
        T::try_from(n)
            .map(Whole)
            .map_err(|_| D::Error::custom(format!("{n} is too large")))
    }
}

/// A whole number of 0 or more as a `u64` (for [`Whole`], and the numbers of a handler size).
pub(super) struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<u64, E> {
        Ok(n)
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<u64, E> {
        u64::try_from(n).map_err(|_| E::custom(format!("{n} is not a whole number of 0 or more")))
    }

    fn visit_f64<E: Error>(self, f: f64) -> Result<u64, E> {
        if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
            Ok(f as u64)
        } else {
            Err(E::custom(format!("{f} is not a whole number of 0 or more")))
        }
    }
}

/// A list of strings, each read as a `T`. (A type of its own for the error's words: "must be a
/// list of strings", not serde's "a sequence".)
pub(super) struct Strings<T = String>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Strings<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        d.deserialize_seq(V(PhantomData)).map(Strings)
    }
}

/// A struct read from a table (a JSON object) only: serde's derive would also take a list of
/// the fields' values in order, which no config file means.
pub(super) struct Table<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Table)
    }
}
