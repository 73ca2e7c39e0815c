//! Frappe-style list queries on tenancy tables: `filters`, `fields`, `order_by`, `limit_start`,
//! `limit_page_length`, validated against each DocType's columns and assembled by a query builder
//! from catalogued columns, every value bound as a parameter.

use dartwing_core::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments, QueryBuilder, Row};

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

/// A condition on the rows of a list, written by the list query builder with every value bound.
/// Columns and tables are catalogued names, never client text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `column = value`.
    Equals(&'static str, String),
    /// `column <> value`.
    NotEquals(&'static str, String),
    /// `column IN (values)`; matches nothing when `values` is empty.
    In(&'static str, Vec<String>),
    /// `column IN (SELECT selected FROM table WHERE condition)`.
    InSelect {
        /// Column of the listed table.
        column: &'static str,
        /// Column the sub-select returns.
        selected: &'static str,
        /// Table of the sub-select.
        table: &'static str,
        /// Which rows of `table` count.
        condition: Box<Condition>,
    },
    /// Every condition holds (none: every row).
    All(Vec<Condition>),
    /// At least one condition holds (none: no row).
    AnyOf(Vec<Condition>),
}

/// A restriction on visible rows.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// The rows the actor sees (e.g. `organization IN (…)`), `None` for every row.
    pub condition: Option<Condition>,
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
    /// The rows that show every field.
    pub condition: Condition,
}

/// A list query assembled by [`ListQuery::build`]: SQL made of catalogued identifiers and
/// keywords, with `$n` placeholders for its values. (sqlx's `Any` driver writes `?` for
/// `QueryBuilder::push_bind`, which PostgreSQL refuses, so the builder writes numbered
/// placeholders and [`BuiltList::into_builder`] hands the values over as the query's arguments.)
pub struct BuiltList {
    builder: QueryBuilder<'static, Any>,
    values: Vec<String>,
}

impl BuiltList {
    fn new() -> Self {
        Self {
            builder: QueryBuilder::new(""),
            values: Vec::new(),
        }
    }

    fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        self.builder.push(sql);
        self
    }

    /// Writes the placeholder of `value`, which is bound when the query runs.
    fn bind(&mut self, value: &str) -> &mut Self {
        self.values.push(value.to_string());
        self.builder.push("$").push(self.values.len());
        self
    }

    /// Writes `values` as a comma-separated list of placeholders.
    fn bind_all(&mut self, values: &[String]) -> &mut Self {
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    fn condition(&mut self, condition: &Condition) -> &mut Self {
        match condition {
            Condition::Equals(column, value) => self.push(column).push(" = ").bind(value),
            Condition::NotEquals(column, value) => self.push(column).push(" <> ").bind(value),
            Condition::In(_, values) if values.is_empty() => self.push("1 = 0"),
            Condition::In(column, values) => self.push(column).push(" IN (").bind_all(values).push(")"),
            Condition::InSelect {
                column,
                selected,
                table,
                condition,
            } => self
                .push(column)
                .push(" IN (SELECT ")
                .push(selected)
                .push(" FROM ")
                .push(table)
                .push(" WHERE ")
                .condition(condition)
                .push(")"),
            Condition::All(conditions) => self.joined(conditions, " AND ", "1 = 1"),
            Condition::AnyOf(conditions) => self.joined(conditions, " OR ", "1 = 0"),
        }
    }

    fn joined(&mut self, conditions: &[Condition], separator: &str, empty: &str) -> &mut Self {
        if conditions.is_empty() {
            return self.push(empty);
        }
        self.push("(");
        for (i, condition) in conditions.iter().enumerate() {
            if i > 0 {
                self.push(separator);
            }
            self.condition(condition);
        }
        self.push(")")
    }

    /// Writes `field` as the list shows it: masked on rows that do not reveal it.
    fn shown(&mut self, field: &str, reveal: Option<&Reveal>) -> &mut Self {
        match reveal {
            Some(reveal) if !reveal.public.contains(&field) => self
                .push("CASE WHEN ")
                .push(REVEALED)
                .push(" = 1 THEN ")
                .push(field)
                .push(" END"),
            _ => self.push(field),
        }
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        self.builder.sql()
    }

    /// The values of the placeholders, in order.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// A query builder holding the SQL and its values, ready to run.
    pub fn into_builder(self) -> std::result::Result<QueryBuilder<'static, Any>, sqlx::Error> {
        let mut arguments = AnyArguments::default();
        for value in self.values {
            arguments.add(value).map_err(sqlx::Error::Encode)?;
        }
        Ok(QueryBuilder::with_arguments(self.builder.into_sql(), arguments))
    }
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
        let fields = parse_fields(table, params.fields.as_deref())?;
        let filters = match params.filters.as_deref() {
            None => Vec::new(),
            Some(text) => parse_filters(table, text)?,
        };
        let (order_field, descending) = parse_order(table, params.order_by.as_deref())?;
        let start = non_negative("limit_start", params.limit_start.as_ref(), 0)?;
        let length = non_negative(
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

    /// The query on `table`, restricted by `visibility`, with every value bound.
    pub fn build(&self, table: &DocTable, visibility: &Visibility) -> BuiltList {
        let reveal = visibility.reveal.as_ref();
        let mut built = BuiltList::new();
        built.push("SELECT ");
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                built.push(", ");
            }
            built.shown(field, reveal);
        }
        built.push(" FROM ");
        match reveal {
            None => built.push(table.table),
            Some(reveal) => built
                .push("(SELECT *, CASE WHEN (")
                .condition(&reveal.condition)
                .push(") THEN 1 ELSE 0 END AS ")
                .push(REVEALED)
                .push(" FROM ")
                .push(table.table)
                .push(") AS ")
                .push(table.table),
        };
        let mut conditions = 0;
        let mut next_condition = |built: &mut BuiltList| {
            built.push(if conditions == 0 { " WHERE " } else { " AND " });
            conditions += 1;
        };
        if reveal.is_some_and(|reveal| self.filters_hidden_fields(reveal.public)) {
            next_condition(&mut built);
            built.push(REVEALED).push(" = 1");
        }
        if let Some(condition) = &visibility.condition {
            next_condition(&mut built);
            built.push("(").condition(condition).push(")");
        }
        for filter in &self.filters {
            next_condition(&mut built);
            self.write_filter(&mut built, filter);
        }
        let direction = if self.descending { " DESC" } else { " ASC" };
        built
            .push(" ORDER BY ")
            .shown(self.order_field, reveal)
            .push(direction)
            .push(", name")
            .push(direction)
            .push(" LIMIT ")
            .push(self.page_length)
            .push(" OFFSET ")
            .push(self.start);
        built
    }

    fn write_filter(&self, built: &mut BuiltList, filter: &Filter) {
        let column = filter.field;
        let not = if matches!(filter.op, Op::NotIn | Op::NotLike) {
            "NOT "
        } else {
            ""
        };
        match filter.op {
            Op::In if filter.values.is_empty() => built.push("1 = 0"),
            Op::NotIn if filter.values.is_empty() => built.push("1 = 1"),
            Op::In | Op::NotIn => built
                .push(column)
                .push(" ")
                .push(not)
                .push("IN (")
                .bind_all(&filter.values)
                .push(")"),
            Op::Like | Op::NotLike => built
                .push("LOWER(")
                .push(column)
                .push(") ")
                .push(not)
                .push("LIKE LOWER(")
                .bind(&filter.values[0])
                .push(")"),
            op => {
                let symbol = match op {
                    Op::Eq => " = ",
                    Op::Ne => " <> ",
                    Op::Lt => " < ",
                    Op::Le => " <= ",
                    Op::Gt => " > ",
                    _ => " >= ",
                };
                built.push(column).push(symbol).bind(&filter.values[0])
            }
        };
    }
}

/// The catalogued column `name` of `table`.
fn column(table: &DocTable, name: &str) -> Result<&'static str> {
    table
        .fields
        .iter()
        .copied()
        .find(|f| *f == name)
        .ok_or_else(|| Error::validation(format!("Field '{}' does not exist on {}", shown(name), table.doctype)))
}

/// `fields`: a JSON list of field names, or `["*"]`; default `["name"]`. Duplicates are dropped.
fn parse_fields(table: &DocTable, text: Option<&str>) -> Result<Vec<&'static str>> {
    let Some(text) = text else {
        return Ok(vec!["name"]);
    };
    let list: Vec<String> =
        serde_json::from_str(text).map_err(|_| Error::bad_request("'fields' must be a JSON list of field names"))?;
    if list.len() > MAX_FIELDS {
        return Err(Error::bad_request(format!(
            "'fields' lists {} entries; at most {MAX_FIELDS} are allowed",
            list.len()
        )));
    }
    if list.iter().any(|f| f == "*") {
        return Ok(table.fields.to_vec());
    }
    if list.is_empty() {
        return Ok(vec!["name"]);
    }
    let mut fields: Vec<&'static str> = Vec::with_capacity(list.len());
    for name in &list {
        let name = column(table, name)?;
        if !fields.contains(&name) {
            fields.push(name);
        }
    }
    Ok(fields)
}

/// `filters`: `[[field, op, value], …]`, `[[doctype, field, op, value], …]` or
/// `{field: value | [op, value]}`.
fn parse_filters(table: &DocTable, text: &str) -> Result<Vec<Filter>> {
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
    let filters = match json {
        Value::Array(items) => items
            .iter()
            .map(|item| list_filter(table, item))
            .collect::<Result<Vec<_>>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(name, value)| object_filter(table, name, value))
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(Error::bad_request("'filters' must be a JSON list or object"));
        }
    };
    for filter in &filters {
        let list_op = matches!(filter.op, Op::In | Op::NotIn);
        if !list_op && filter.values.len() != 1 {
            return Err(Error::bad_request(format!(
                "Filter on '{}' needs a single value",
                filter.field
            )));
        }
    }
    Ok(filters)
}

/// One filter of the list form: `[field, op, value]` or `[doctype, field, op, value]`.
fn list_filter(table: &DocTable, item: &Value) -> Result<Filter> {
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
    Ok(Filter {
        field: column(table, name)?,
        op: Op::parse(op)?,
        values: values(&parts[2])?,
    })
}

/// One filter of the object form: `field: value` or `field: [op, value]`.
fn object_filter(table: &DocTable, name: &str, value: &Value) -> Result<Filter> {
    let (op, value) = match value {
        Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
            (Op::parse(pair[0].as_str().unwrap_or_default())?, &pair[1])
        }
        _ => (Op::Eq, value),
    };
    Ok(Filter {
        field: column(table, name)?,
        op,
        values: values(value)?,
    })
}

/// `order_by`: `<field> [asc|desc]`; default `modified desc`.
fn parse_order(table: &DocTable, order_by: Option<&str>) -> Result<(&'static str, bool)> {
    if order_by.is_some_and(|o| o.chars().count() > MAX_ORDER_BY_CHARS) {
        return Err(Error::bad_request(format!(
            "'order_by' is longer than {MAX_ORDER_BY_CHARS} characters"
        )));
    }
    let text = match order_by.map(str::trim) {
        None | Some("") => return Ok(("modified", true)),
        Some(text) => text,
    };
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
    Ok((column(table, name.trim_matches('`'))?, descending))
}

/// A non-negative integer parameter, `default` when absent.
fn non_negative(name: &str, value: Option<&String>, default: i64) -> Result<i64> {
    match value {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::bad_request(format!("'{name}' must be a non-negative integer"))),
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
pub fn row_to_object(row: &AnyRow, fields: &[&'static str]) -> std::result::Result<Map<String, Value>, sqlx::Error> {
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let value: Option<String> = row.try_get(i)?;
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
            condition: Some(Condition::In("name", vec!["n1".into(), "n2".into()])),
            reveal: None,
        };
        let built = query.build(&TABLE, &visibility);
        assert_eq!(
            built.sql(),
            "SELECT name FROM thing WHERE (name IN ($1, $2)) AND status IN ($3, $4) AND LOWER(name) LIKE LOWER($5) \
             ORDER BY modified DESC, name DESC LIMIT 20 OFFSET 0"
        );
        assert_eq!(built.values(), ["n1", "n2", "A", "B", "x%"]);
        Ok(())
    }

    #[test]
    fn visibility_conditions_bind_every_value() -> Result<()> {
        let query = ListQuery::parse(&TABLE, &ListParams::default())?;
        let visibility = Visibility {
            condition: Some(Condition::AnyOf(vec![
                Condition::Equals("name", "me".into()),
                Condition::InSelect {
                    column: "name",
                    selected: "person",
                    table: "member",
                    condition: Box::new(Condition::All(vec![
                        Condition::NotEquals("status", "Invited".into()),
                        Condition::In("organization", vec![]),
                    ])),
                },
                Condition::AnyOf(vec![]),
                Condition::All(vec![]),
            ])),
            reveal: None,
        };
        let built = query.build(&TABLE, &visibility);
        assert_eq!(
            built.sql(),
            "SELECT name FROM thing WHERE ((name = $1 OR name IN (SELECT person FROM member WHERE \
             (status <> $2 AND 1 = 0)) OR 1 = 0 OR 1 = 1)) ORDER BY modified DESC, name DESC LIMIT 20 OFFSET 0"
        );
        assert_eq!(built.values(), ["me", "Invited"]);
        assert!(built.into_builder().is_ok());
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
            condition: Some(Condition::Equals("status", "A".into())),
            reveal: Some(Reveal {
                public: &["name"],
                condition: Condition::Equals("name", "me".into()),
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
        let built = names_only.build(&TABLE, &visibility);
        assert_eq!(
            built.sql(),
            "SELECT name, CASE WHEN dw_revealed = 1 THEN status END FROM \
             (SELECT *, CASE WHEN (name = $1) THEN 1 ELSE 0 END AS dw_revealed FROM thing) AS thing \
             WHERE (status = $2) ORDER BY name ASC, name ASC LIMIT 20 OFFSET 0"
        );
        assert_eq!(built.values(), ["me", "A"]);
        // A filter on a hidden field searches the revealed rows only.
        let probe = ListQuery::parse(&TABLE, &params_with(r#"[["status","like","a%"]]"#, "name"))?;
        let sql = probe.build(&TABLE, &visibility).sql().to_string();
        assert!(sql.contains("WHERE dw_revealed = 1 AND (status = $2) AND"), "{sql}");
        // Ordering on a hidden field orders by what is shown.
        let ordered = ListQuery::parse(&TABLE, &params_with("[]", "status desc"))?;
        let sql = ordered.build(&TABLE, &visibility).sql().to_string();
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
                    let built = query.build(&TABLE, &Visibility::default());
                    let (sql, values) = (built.sql(), built.values());
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
