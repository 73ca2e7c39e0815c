//! Column types shared by every store: timestamps are stored one way everywhere (microseconds
//! since the Unix epoch, `BIGINT`), and JSON documents are text whose decoding failure is an
//! error, never a silent `null`.

use dartwing_core::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Encode, Type};

/// A timestamp column: microseconds since the Unix epoch in a `BIGINT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub Timestamp);

impl From<Timestamp> for Micros {
    fn from(timestamp: Timestamp) -> Self {
        Self(timestamp)
    }
}

impl From<Micros> for Timestamp {
    fn from(micros: Micros) -> Self {
        micros.0
    }
}

impl Type<Any> for Micros {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Micros {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(Timestamp::from_micros(<i64 as Decode<Any>>::decode(value)?)))
    }
}

impl<'q> Encode<'q, Any> for Micros {
    fn encode_by_ref(&self, buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Any>>::encode(self.0.as_micros(), buf)
    }
}

/// A JSON column stored as text. A value that does not decode into `T` fails the query (with the
/// column named in the error) instead of becoming `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonText<T>(pub T);

impl<T> Type<Any> for JsonText<T> {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for JsonText<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Any>>::decode(value)?;
        Ok(Self(serde_json::from_str(text)?))
    }
}

impl<'q, T: Serialize> Encode<'q, Any> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Any>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}
