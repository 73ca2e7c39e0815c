//! Frappe-style list queries on tenancy tables: `filters`, `fields`, `order_by`, `limit_start`,
//! `limit_page_length`, validated against each DocType's columns and turned into parameterized SQL.

use dartwing_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A DocType stored in one table whose columns are all text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocTable {
    /// DocType name, e.g. `Org Member`.
    pub doctype: &'static str,
    /// SQL table.
    pub table: &'static str,
    /// Columns, in output order.
    pub fields: &'static [&'static str],
}

/// Largest page a list returns; larger requests are capped.
pub const MAX_PAGE_LENGTH: i64 = 1000;
/// Most entries `fields` may list (duplicates included); more answer 400.
pub const MAX_FIELDS: usize = 100;
/// Most filters one list request may carry; more answer 400.
pub const MAX_FILTERS: usize = 50;
/// Most values one `in`/`not in` filter may list; more answer 400.
pub const MAX_FILTER_VALUES: usize = 500;
/// Longest filter value, in characters; longer ones answer 400.
pub const MAX_FILTER_VALUE_CHARS: usize = 1000;
/// Longest `order_by`, in characters; longer ones answer 400.
pub const MAX_ORDER_BY_CHARS: usize = 200;
/// Page length when none is asked for (Frappe's default).
pub const DEFAULT_PAGE_LENGTH: i64 = 20;

/// Query parameters of `GET /api/resource/<DocType>`, as sent.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// JSON: `[[field, op, value], …]`, `[[doctype, field, op, value], …]` or `{field: value | [op, value]}`.
    pub filters: Option<String>,
    /// JSON list of field names, or `["*"]`; default `["name"]`.
    pub fields: Option<String>,
    /// `<field> asc|desc`; default `modified desc`.
    pub order_by: Option<String>,
    /// Offset of the first row.
    pub limit_start: Option<String>,
    /// Rows per page (capped at [`MAX_PAGE_LENGTH`]).
    pub limit_page_length: Option<String>,
    /// Alias of `limit_page_length`.
    pub limit: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    NotLike,
    In,
    NotIn,
}

impl Op {
    fn parse(text: &str) -> Result<Self> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "like" => Op::Like,
            "not like" => Op::NotLike,
            "in" => Op::In,
            "not in" => Op::NotIn,
            other => {
                return Err(Error::validation(format!(
                    "Unsupported filter operator '{}'",
                    shown(other)
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    field: &'static str,
    op: Op,
    values: Vec<String>,
}

/// A validated list query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    filters: Vec<Filter>,
    fields: Vec<&'static str>,
    order_field: &'static str,
    descending: bool,
    start: i64,
    page_length: i64,
}

/// A restriction on visible rows: SQL with `{}` standing for the next parameter placeholders,
/// and its parameters.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// SQL condition (e.g. `organization IN (…)`), `None` for everything.
    pub condition: Option<String>,
    /// Parameters of the condition, in order.
    pub params: Vec<String>,
    /// Fields shown only on some of the visible rows; `None` when every field of every visible
    /// row is shown.
    pub reveal: Option<Reveal>,
}

/// Which fields of which rows a list shows: `public` fields on every visible row, the others only
/// on rows meeting `condition` (elsewhere they are `null`). Filtering on a field that is not public
/// searches only the rows that show it, and ordering on one orders by the shown values (hidden ones
/// count as `null`), so hidden values cannot be probed.
#[derive(Debug, Clone)]
pub struct Reveal {
    /// Fields every visible row shows.
    pub public: &'static [&'static str],
    /// SQL condition (with `{}` placeholders) of the rows that show every field.
    pub condition: String,
    /// Parameters of the condition, in order.
    pub params: Vec<String>,
}

/// `text` for an error message, cut short when a client sent something long.
fn shown(text: &str) -> String {
    const MAX: usize = 64;
    let cut: String = text.chars().take(MAX).collect();
    if cut.len() < text.len() {
        format!("{}…", cut.escape_debug())
    } else {
        cut.escape_debug().to_string()
    }
}

/// Column that marks the rows whose every field is revealed.
const REVEALED: &str = "dw_revealed";

impl ListQuery {
    /// Validates `params` against `table`'s columns.
    pub fn parse(table: &DocTable, params: &ListParams) -> Result<Self> {
        let field = |name: &str| -> Result<&'static str> {
            table.fields.iter().copied().find(|f| *f == name).ok_or_else(|| {
                Error::validation(format!("Field '{}' does not exist on {}", shown(name), table.doctype))
            })
        };
        let fields = match params.fields.as_deref() {
            None => vec!["name"],
            Some(text) => {
                let list: Vec<String> = serde_json::from_str(text)
                    .map_err(|_| Error::bad_request("'fields' must be a JSON list of field names"))?;
                if list.len() > MAX_FIELDS {
                    return Err(Error::bad_request(format!(
                        "'fields' lists {} entries; at most {MAX_FIELDS} are allowed",
                        list.len()
                    )));
                }
                if list.iter().any(|f| f == "*") {
                    table.fields.to_vec()
                } else if list.is_empty() {
                    vec!["name"]
                } else {
                    let mut fields: Vec<&'static str> = Vec::with_capacity(list.len());
                    for name in &list {
                        let name = field(name)?;
                        if !fields.contains(&name) {
                            fields.push(name);
                        }
                    }
                    fields
                }
            }
        };
        let mut filters = Vec::new();
        if let Some(text) = params.filters.as_deref() {
            let json: Value = serde_json::from_str(text).map_err(|_| Error::bad_request("'filters' must be JSON"))?;
            let count = match &json {
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                _ => 0,
            };
            if count > MAX_FILTERS {
                return Err(Error::bad_request(format!(
                    "'filters' has {count} conditions; at most {MAX_FILTERS} are allowed"
                )));
            }
            match json {
                Value::Array(items) => {
                    for item in items {
                        let parts = item
                            .as_array()
                            .ok_or_else(|| Error::bad_request("Each filter must be [field, operator, value]"))?;
                        let parts = match parts.len() {
                            3 => &parts[..],
                            4 if parts[0].as_str() == Some(table.doctype) => &parts[1..],
                            _ => {
                                return Err(Error::bad_request("Each filter must be [field, operator, value]"));
                            }
                        };
                        let name = parts[0]
                            .as_str()
                            .ok_or_else(|| Error::bad_request("Filter field must be text"))?;
                        let op = parts[1]
                            .as_str()
                            .ok_or_else(|| Error::bad_request("Filter operator must be text"))?;
                        filters.push(Filter {
                            field: field(name)?,
                            op: Op::parse(op)?,
                            values: values(&parts[2])?,
                        });
                    }
                }
                Value::Object(map) => {
                    for (name, value) in map {
                        let (op, value) = match &value {
                            Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                                (Op::parse(pair[0].as_str().unwrap_or_default())?, &pair[1])
                            }
                            _ => (Op::Eq, &value),
                        };
                        filters.push(Filter {
                            field: field(&name)?,
                            op,
                            values: values(value)?,
                        });
                    }
                }
                _ => {
                    return Err(Error::bad_request("'filters' must be a JSON list or object"));
                }
            }
        }
        for filter in &filters {
            let list_op = matches!(filter.op, Op::In | Op::NotIn);
            if !list_op && filter.values.len() != 1 {
                return Err(Error::bad_request(format!(
                    "Filter on '{}' needs a single value",
                    filter.field
                )));
            }
        }
        if params
            .order_by
            .as_deref()
            .is_some_and(|o| o.chars().count() > MAX_ORDER_BY_CHARS)
        {
            return Err(Error::bad_request(format!(
                "'order_by' is longer than {MAX_ORDER_BY_CHARS} characters"
            )));
        }
        let (order_field, descending) = match params.order_by.as_deref().map(str::trim) {
            None | Some("") => ("modified", true),
            Some(text) => {
                let mut words = text.split_whitespace();
                let name = words.next().unwrap_or_default();
                let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(_) => {
                        return Err(Error::bad_request("'order_by' must be '<field> [asc|desc]'"));
                    }
                };
                if words.next().is_some() {
                    return Err(Error::bad_request("'order_by' must be '<field> [asc|desc]'"));
                }
                (field(name.trim_matches('`'))?, descending)
            }
        };
        let number = |name: &str, value: Option<&String>, default: i64| -> Result<i64> {
            match value {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| Error::bad_request(format!("'{name}' must be a non-negative integer"))),
            }
        };
        let start = number("limit_start", params.limit_start.as_ref(), 0)?;
        let length = number(
            "limit_page_length",
            params.limit_page_length.as_ref().or(params.limit.as_ref()),
            DEFAULT_PAGE_LENGTH,
        )?;
        let page_length = if length == 0 {
            MAX_PAGE_LENGTH
        } else {
            length.min(MAX_PAGE_LENGTH)
        };
        Ok(Self {
            filters,
            fields,
            order_field,
            descending,
            start,
            page_length,
        })
    }

    /// The fields returned, in order.
    pub fn fields(&self) -> &[&'static str] {
        &self.fields
    }

    /// Whether this query filters on a field outside `public`.
    fn filters_hidden_fields(&self, public: &[&str]) -> bool {
        self.filters.iter().any(|f| !public.contains(&f.field))
    }

    /// SQL and parameters for this query on `table`, restricted by `visibility`.
    pub fn to_sql(&self, table: &DocTable, visibility: &Visibility) -> (String, Vec<String>) {
        let mut params: Vec<String> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let placeholder = |params: &mut Vec<String>, value: &str| {
            params.push(value.to_string());
            format!("${}", params.len())
        };
        // `{}` in a condition stands for the next of its parameters.
        let substitute = |params: &mut Vec<String>, condition: &str, values: &[String]| {
            let mut sql = String::new();
            let mut pieces = condition.split("{}");
            sql.push_str(pieces.next().unwrap_or_default());
            for (piece, value) in pieces.zip(values) {
                sql.push_str(&placeholder(params, value));
                sql.push_str(piece);
            }
            sql
        };
        let masked = |field: &str| format!("CASE WHEN {REVEALED} = 1 THEN {field} END");
        let (source, columns, order) = match &visibility.reveal {
            None => (
                table.table.to_string(),
                self.fields.join(", "),
                self.order_field.to_string(),
            ),
            Some(reveal) => {
                let revealed = substitute(&mut params, &reveal.condition, &reveal.params);
                let source = format!(
                    "(SELECT *, CASE WHEN ({revealed}) THEN 1 ELSE 0 END AS {REVEALED} FROM {table}) AS {table}",
                    table = table.table
                );
                let shown = |field: &str| {
                    if reveal.public.contains(&field) {
                        field.to_string()
                    } else {
                        masked(field)
                    }
                };
                let columns: Vec<String> = self.fields.iter().map(|field| shown(field)).collect();
                if self.filters_hidden_fields(reveal.public) {
                    conditions.push(format!("{REVEALED} = 1"));
                }
                (source, columns.join(", "), shown(self.order_field))
            }
        };
        if let Some(condition) = &visibility.condition {
            let sql = substitute(&mut params, condition, &visibility.params);
            conditions.push(format!("({sql})"));
        }
        for filter in &self.filters {
            let column = filter.field;
            let condition = match filter.op {
                Op::In | Op::NotIn if filter.values.is_empty() => {
                    (if filter.op == Op::In { "1 = 0" } else { "1 = 1" }).to_string()
                }
                Op::In | Op::NotIn => {
                    let list: Vec<String> = filter.values.iter().map(|v| placeholder(&mut params, v)).collect();
                    let not = if filter.op == Op::NotIn { "NOT " } else { "" };
                    format!("{column} {not}IN ({})", list.join(", "))
                }
                Op::Like | Op::NotLike => {
                    let p = placeholder(&mut params, &filter.values[0]);
                    let not = if filter.op == Op::NotLike { "NOT " } else { "" };
                    format!("LOWER({column}) {not}LIKE LOWER({p})")
                }
                op => {
                    let symbol = match op {
                        Op::Eq => "=",
                        Op::Ne => "<>",
                        Op::Lt => "<",
                        Op::Le => "<=",
                        Op::Gt => ">",
                        _ => ">=",
                    };
                    format!("{column} {symbol} {}", placeholder(&mut params, &filter.values[0]))
                }
            };
            conditions.push(condition);
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let direction = if self.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {columns} FROM {source}{where_clause} ORDER BY {order} {direction}, name {direction} LIMIT {} OFFSET {}",
            self.page_length, self.start
        );
        (sql, params)
    }
}

fn values(value: &Value) -> Result<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) if s.chars().count() > MAX_FILTER_VALUE_CHARS => Err(Error::bad_request(format!(
            "Filter values are at most {MAX_FILTER_VALUE_CHARS} characters long"
        ))),
        Value::String(s) if s.chars().any(char::is_control) => {
            Err(Error::bad_request("Filter values cannot contain control characters"))
        }
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::bad_request("Filter values must be text or numbers")),
    };
    match value {
        Value::Array(items) if items.len() > MAX_FILTER_VALUES => Err(Error::bad_request(format!(
            "A filter lists at most {MAX_FILTER_VALUES} values"
        ))),
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|v| vec![v]),
    }
}

/// Turns a row of text columns into a JSON object keyed by `fields`.
pub fn row_to_object(row: &sqlx::any::AnyRow, fields: &[&'static str]) -> Result<Map<String, Value>> {
    use sqlx::Row;
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let value: Option<String> = row.try_get(i).map_err(dartwing_db::map_db_error)?;
            Ok((field.to_string(), value.map_or(Value::Null, Value::from)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dartwing_core::ErrorKind;

    const TABLE: DocTable = DocTable {
        doctype: "Thing",
        table: "thing",
        fields: &["name", "status", "modified"],
    };

    fn params(filters: &str) -> ListParams {
        ListParams {
            filters: Some(filters.into()),
            ..Default::default()
        }
    }

    #[test]
    fn filters_become_parameters_never_sql() -> Result<()> {
        let query = ListQuery::parse(&TABLE, &params(r#"[["status","in",["A","B"]],["name","like","x%"]]"#))?;
        let visibility = Visibility {
            condition: Some("name IN ({}, {})".into()),
            params: vec!["n1".into(), "n2".into()],
            reveal: None,
        };
        let (sql, params) = query.to_sql(&TABLE, &visibility);
        assert_eq!(
            sql,
            "SELECT name FROM thing WHERE (name IN ($1, $2)) AND status IN ($3, $4) AND LOWER(name) LIKE LOWER($5) \
             ORDER BY modified DESC, name DESC LIMIT 20 OFFSET 0"
        );
        assert_eq!(params, ["n1", "n2", "A", "B", "x%"]);
        Ok(())
    }

    #[test]
    fn unknown_fields_and_operators_are_refused() {
        assert!(ListQuery::parse(&TABLE, &params(r#"[["password","=","x"]]"#)).is_err());
        assert!(ListQuery::parse(&TABLE, &params(r#"[["name","; drop table","x"]]"#)).is_err());
        assert!(ListQuery::parse(&TABLE, &params(r#"{"status": "Active"}"#)).is_ok());
        let order = ListParams {
            order_by: Some("name; delete".into()),
            ..Default::default()
        };
        assert!(ListQuery::parse(&TABLE, &order).is_err());
        let limit = ListParams {
            limit_page_length: Some("5000".into()),
            ..Default::default()
        };
        assert_eq!(
            ListQuery::parse(&TABLE, &limit).map(|q| q.page_length).ok(),
            Some(MAX_PAGE_LENGTH)
        );
    }

    #[test]
    fn hidden_fields_are_masked_and_only_searched_where_revealed() -> Result<()> {
        let visibility = Visibility {
            condition: Some("status = {}".into()),
            params: vec!["A".into()],
            reveal: Some(Reveal {
                public: &["name"],
                condition: "name = {}".into(),
                params: vec!["me".into()],
            }),
        };
        let names_only = ListQuery::parse(
            &TABLE,
            &ListParams {
                fields: Some(r#"["name","status"]"#.into()),
                order_by: Some("name".into()),
                ..Default::default()
            },
        )?;
        let (sql, params) = names_only.to_sql(&TABLE, &visibility);
        assert_eq!(
            sql,
            "SELECT name, CASE WHEN dw_revealed = 1 THEN status END FROM \
             (SELECT *, CASE WHEN (name = $1) THEN 1 ELSE 0 END AS dw_revealed FROM thing) AS thing \
             WHERE (status = $2) ORDER BY name ASC, name ASC LIMIT 20 OFFSET 0"
        );
        assert_eq!(params, ["me", "A"]);
        // A filter on a hidden field searches the revealed rows only.
        let probe = ListQuery::parse(&TABLE, &params_with(r#"[["status","like","a%"]]"#, "name"))?;
        let (sql, _) = probe.to_sql(&TABLE, &visibility);
        assert!(sql.contains("WHERE dw_revealed = 1 AND (status = $2) AND"), "{sql}");
        // Ordering on a hidden field orders by what is shown.
        let ordered = ListQuery::parse(&TABLE, &params_with("[]", "status desc"))?;
        let (sql, _) = ordered.to_sql(&TABLE, &visibility);
        assert!(!sql.contains("dw_revealed = 1 AND"), "{sql}");
        assert!(
            sql.contains("ORDER BY CASE WHEN dw_revealed = 1 THEN status END DESC, name DESC"),
            "{sql}"
        );
        Ok(())
    }

    fn params_with(filters: &str, order_by: &str) -> ListParams {
        ListParams {
            filters: Some(filters.into()),
            order_by: Some(order_by.into()),
            ..Default::default()
        }
    }

    #[test]
    fn oversized_lists_are_refused_and_fields_deduplicated() -> Result<()> {
        let fields = |n: usize| ListParams {
            fields: Some(serde_json::to_string(&vec!["name"; n]).unwrap_or_default()),
            ..Default::default()
        };
        let kind = |params: &ListParams| ListQuery::parse(&TABLE, params).map_err(|e| e.kind()).err();
        assert_eq!(ListQuery::parse(&TABLE, &fields(MAX_FIELDS))?.fields(), ["name"]);
        assert_eq!(kind(&fields(MAX_FIELDS + 1)), Some(ErrorKind::BadRequest));
        assert_eq!(kind(&fields(2100)), Some(ErrorKind::BadRequest));
        let many_filters = serde_json::to_string(&vec![["name", "=", "x"]; MAX_FILTERS + 1]).unwrap_or_default();
        assert_eq!(kind(&params(&many_filters)), Some(ErrorKind::BadRequest));
        let many_values = serde_json::json!([["name", "in", vec!["x"; MAX_FILTER_VALUES + 1]]]).to_string();
        assert_eq!(kind(&params(&many_values)), Some(ErrorKind::BadRequest));
        let long_value = serde_json::json!([["name", "like", "%".repeat(MAX_FILTER_VALUE_CHARS + 1)]]).to_string();
        assert_eq!(kind(&params(&long_value)), Some(ErrorKind::BadRequest));
        let nul = serde_json::json!([["name", "=", "a\u{0}b"]]).to_string();
        assert_eq!(kind(&params(&nul)), Some(ErrorKind::BadRequest));
        let long_order = ListParams {
            order_by: Some(format!("name {}", " ".repeat(MAX_ORDER_BY_CHARS))),
            ..Default::default()
        };
        assert_eq!(kind(&long_order), Some(ErrorKind::BadRequest));
        let unknown = ListQuery::parse(
            &TABLE,
            &params(&serde_json::json!([["x".repeat(5000), "=", "1"]]).to_string()),
        );
        assert!(unknown.is_err_and(|e| e.message().chars().count() < 200));
        Ok(())
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Names a client might send as fields: the table's columns, SQL fragments and noise.
        fn field_name() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => proptest::sample::select(TABLE.fields).prop_map(str::to_string),
                1 => Just("*".to_string()),
                1 => proptest::sample::select(&["name; DROP TABLE thing", "status) OR (1=1", "`name`", "\"name\"", "owner"][..])
                    .prop_map(str::to_string),
                2 => any::<String>(),
            ]
        }

        fn json_text() -> impl Strategy<Value = String> {
            let value = prop_oneof![
                any::<String>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                Just(Value::Null),
                proptest::collection::vec(any::<String>(), 0..4).prop_map(Value::from),
            ];
            let op = proptest::sample::select(
                &[
                    "=", "!=", "<", "<=", ">", ">=", "like", "not like", "in", "not in", "between", ";",
                ][..],
            );
            let filter = (field_name(), op, value).prop_map(|(f, o, v)| serde_json::json!([f, o, v]));
            prop_oneof![
                proptest::collection::vec(filter, 0..6).prop_map(|f| Value::from(f).to_string()),
                proptest::collection::vec(field_name(), 0..6).prop_map(|f| Value::from(f).to_string()),
                any::<String>(),
            ]
        }

        proptest! {
            /// Whatever a client sends, parsing never panics, and an accepted query's SQL names
            /// only the table's catalogued columns: every identifier in it is a column, the table,
            /// a keyword, or a parameter placeholder; values travel only as parameters.
            #[test]
            fn only_catalogued_columns_reach_sql(
                filters in proptest::option::of(json_text()),
                fields in proptest::option::of(json_text()),
                order_by in proptest::option::of(prop_oneof![
                    (field_name(), proptest::sample::select(&["asc", "desc", "ASC", "sideways", ""][..]))
                        .prop_map(|(f, d)| format!("{f} {d}")),
                    any::<String>(),
                ]),
                limit_start in proptest::option::of(any::<String>()),
                limit_page_length in proptest::option::of(prop_oneof![any::<i64>().prop_map(|n| n.to_string()), any::<String>()]),
            ) {
                let params = ListParams { filters, fields, order_by, limit_start, limit_page_length, limit: None };
                if let Ok(query) = ListQuery::parse(&TABLE, &params) {
                    let (sql, values) = query.to_sql(&TABLE, &Visibility::default());
                    const KEYWORDS: &[&str] = &[
                        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "LOWER", "ORDER", "BY", "ASC",
                        "DESC", "LIMIT", "OFFSET", "IS", "NULL",
                    ];
                    for word in sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')) {
                        if word.is_empty() || word.starts_with('$') || word.chars().all(|c| c.is_ascii_digit()) {
                            continue;
                        }
                        prop_assert!(
                            TABLE.fields.contains(&word) || word == TABLE.table || KEYWORDS.contains(&word),
                            "{word:?} reached SQL: {sql}"
                        );
                    }
                    let placeholders = sql.matches('$').count();
                    prop_assert_eq!(placeholders, values.len(), "{}", sql);
                }
            }
        }
    }
}
