//! The arguments of an `/api/method` procedure in every encoding Frappe clients send them:
//! a JSON body, an `application/x-www-form-urlencoded` or `multipart/form-data` body (what
//! `frappe.call` and `frappeclient` send), or the query string of a `GET`.
//!
//! A form or query value is text; where the procedure expects a number, a flag, a list or an
//! object, the text is read as JSON (`limit=50`, `args={"a":1}`, `hosts=["a.example.com"]`), and
//! where it expects text it is taken as it is (`name=123` is the text `123`). Flags also take
//! Frappe's `1`/`0` (and Python's `True`/`False`); an empty value or `null` for an optional argument means not given. Frappe's
//! own `cmd` key is ignored. The checks are the JSON body's: unknown arguments are refused where
//! the procedure refuses them, a value of the wrong type is a 400 naming the argument, an
//! argument given twice is a 400, and an oversized body is a 413.

use crate::ApiError;
use crate::extract::StrictJson;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{Method, StatusCode, header};
use dartwing_core::{Error, ErrorKind};
use serde::de::value::{Error as ValueError, MapDeserializer};
use serde::de::{DeserializeOwned, Deserializer, Error as _, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;
use std::collections::HashSet;

/// Keys Frappe clients add to every call, which are not arguments of the procedure.
const FRAMEWORK_KEYS: &[&str] = &["cmd"];

/// The arguments of a procedure, read from a JSON body, a form body or the query string (see
/// the module documentation).
#[derive(Debug, Clone)]
pub struct MethodArgs<T>(pub T);

impl<S, T> FromRequest<S> for MethodArgs<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().unwrap_or_default().to_string();
        if req.method() == Method::GET || req.method() == Method::HEAD {
            return from_pairs(query_pairs(&query)).map(Self);
        }
        match media_type(&req).as_deref() {
            Some(json) if json == "application/json" || json.ends_with("+json") => {
                StrictJson::<T>::from_request(req, state)
                    .await
                    .map(|StrictJson(v)| Self(v))
            }
            Some("application/x-www-form-urlencoded") => {
                let body = body_bytes(req, state).await?;
                let mut pairs = query_pairs(&query);
                pairs.extend(url::form_urlencoded::parse(&body).into_owned());
                from_pairs(pairs).map(Self)
            }
            Some("multipart/form-data") => {
                let mut pairs = query_pairs(&query);
                pairs.extend(multipart_fields(req, state).await?);
                from_pairs(pairs).map(Self)
            }
            None => {
                // Nothing in the body: the arguments, if any, are in the query string.
                let body = body_bytes(req, state).await?;
                if !body.is_empty() {
                    return Err(unsupported());
                }
                from_pairs(query_pairs(&query)).map(Self)
            }
            Some(_) => Err(unsupported()),
        }
    }
}

fn unsupported() -> ApiError {
    ApiError(Error::bad_request(
        "Expected the arguments as a JSON body (Content-Type: application/json), a form \
         (application/x-www-form-urlencoded or multipart/form-data) or the query string",
    ))
}

/// The request's media type, lower case, without parameters.
fn media_type(req: &Request) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if crate::listener::is_body_timeout(&rejection) {
            return body_timeout();
        }
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError(Error::new(
                ErrorKind::PayloadTooLarge,
                "Request body exceeds the size limit",
            )),
            _ => ApiError(Error::bad_request(rejection.body_text())),
        }
    })
}

fn body_timeout() -> ApiError {
    ApiError(Error::new(
        ErrorKind::RequestTimeout,
        "The request body stopped arriving before it was complete",
    ))
}

/// The text fields of a multipart body; a file field is refused (no procedure takes files).
async fn multipart_fields<S: Send + Sync>(req: Request, state: &S) -> Result<Vec<(String, String)>, ApiError> {
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|rejection| ApiError(Error::bad_request(rejection.body_text())))?;
    let mut pairs = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Ok(pairs),
            Err(e) => return Err(multipart_error(&e)),
        };
        let name = field.name().unwrap_or_default().to_string();
        if field.file_name().is_some() {
            return Err(ApiError(Error::bad_request(format!(
                "Argument `{name}` is a file; this procedure takes no files"
            ))));
        }
        let value = field.text().await.map_err(|e| multipart_error(&e))?;
        pairs.push((name, value));
    }
}

fn multipart_error(error: &axum::extract::multipart::MultipartError) -> ApiError {
    if crate::listener::is_body_timeout(error) {
        return body_timeout();
    }
    match error.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError(Error::new(
            ErrorKind::PayloadTooLarge,
            "Request body exceeds the size limit",
        )),
        _ => ApiError(Error::bad_request(format!(
            "Malformed multipart body: {}",
            error.body_text()
        ))),
    }
}

/// The arguments named by `pairs`, each value read as the procedure's type asks.
fn from_pairs<T: DeserializeOwned>(pairs: Vec<(String, String)>) -> Result<T, ApiError> {
    let mut seen = HashSet::new();
    let mut args = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if FRAMEWORK_KEYS.contains(&key.as_str()) {
            continue;
        }
        if !seen.insert(key.clone()) {
            return Err(ApiError(Error::bad_request(format!(
                "Argument `{key}` is given more than once"
            ))));
        }
        args.push((key, FormValue(value)));
    }
    let deserializer = MapDeserializer::<_, ValueError>::new(args.into_iter());
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            format!("Invalid arguments: {}", error.inner())
        } else {
            format!("Invalid argument `{path}`: {}", error.inner())
        };
        ApiError(Error::bad_request(message))
    })
}

/// One form or query value; see the module documentation for how it is read.
struct FormValue(String);

impl FormValue {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.0).ok()
    }

    /// The value read as JSON by `read`, or a type error showing the text.
    fn read_json<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        read: impl FnOnce(Value, V) -> Result<V::Value, serde_json::Error>,
    ) -> Result<V::Value, ValueError> {
        match self.json() {
            Some(json) => read(json, visitor).map_err(ValueError::custom),
            None => Err(ValueError::invalid_type(Unexpected::Str(&self.0), &visitor)),
        }
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for FormValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Reads the value as JSON for a type other than text.
macro_rules! as_json {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            self.read_json(visitor, |json, visitor| json.$method(visitor))
        }
    )*};
}

impl<'de> Deserializer<'de> for FormValue {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.json() {
            Some(json) => json.deserialize_any(visitor).map_err(ValueError::custom),
            None => visitor.visit_string(self.0),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            _ => Err(ValueError::invalid_value(Unexpected::Str(&self.0), &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        if self.0.is_empty() || self.0 == "null" {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.json() {
            Some(json) => json
                .deserialize_enum(name, variants, visitor)
                .map_err(ValueError::custom),
            None => self.0.into_deserializer().deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, ValueError> {
        self.read_json(visitor, |json, visitor| json.deserialize_tuple(len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.read_json(visitor, |json, visitor| {
            json.deserialize_tuple_struct(name, len, visitor)
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.read_json(visitor, |json, visitor| json.deserialize_struct(name, fields, visitor))
    }

    as_json!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_ignored_any,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Args {
        name: String,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        args: Option<Value>,
        #[serde(default)]
        hosts: Vec<String>,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        priority: Option<Level>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Level {
        High,
        Low,
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn message(error: ApiError) -> String {
        error.0.to_string()
    }

    #[test]
    fn values_are_read_as_the_argument_types_ask() {
        let args: Args = from_pairs(pairs(&[
            ("cmd", "dartwing_core.jobs.enqueue"),
            ("name", "123"),
            ("limit", "50"),
            ("args", r#"{"a":[1,2]}"#),
            ("hosts", r#"["a.example.com","b.example.com"]"#),
            ("force", "1"),
            ("priority", "High"),
        ]))
        .unwrap();
        assert_eq!(
            args,
            Args {
                name: "123".into(),
                limit: Some(50),
                args: Some(serde_json::json!({"a": [1, 2]})),
                hosts: vec!["a.example.com".into(), "b.example.com".into()],
                force: true,
                priority: Some(Level::High),
            }
        );
        let args: Args = from_pairs(pairs(&[
            ("name", "x"),
            ("limit", ""),
            ("args", "plain text"),
            ("priority", "\"Low\""),
        ]))
        .unwrap();
        assert_eq!(args.limit, None);
        assert_eq!(args.args, Some(Value::String("plain text".into())));
        assert_eq!(args.priority, Some(Level::Low));
    }

    #[test]
    fn bad_values_are_refused_naming_the_argument() {
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("limit", "many")])).unwrap_err());
        assert!(error.contains("`limit`") && error.contains("many"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("limit", "-1")])).unwrap_err());
        assert!(error.contains("`limit`"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("force", "yes")])).unwrap_err());
        assert!(error.contains("`force`"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("hosts", "a.example.com")])).unwrap_err());
        assert!(error.contains("`hosts`"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("priority", "Urgent")])).unwrap_err());
        assert!(error.contains("`priority`"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("color", "red")])).unwrap_err());
        assert!(error.contains("color"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("limit", "5")])).unwrap_err());
        assert!(error.contains("name"), "{error}");
        let error = message(from_pairs::<Args>(pairs(&[("name", "x"), ("name", "y")])).unwrap_err());
        assert!(error.contains("more than once"), "{error}");
    }
}
