//! `/api/resource/<DocType>` routes for Organization, Person and Org Member (Frappe conventions:
//! documents in `{"data": …}`, list parameters as in [`crate::list`]), and
//! `/api/method/dartwing_core.tenancy.accept_invitation`.

use crate::list::ListParams;
use crate::{
    InvitationRef, Invitee, MemberChanges, NewMember, NewOrganization, NewPerson, OrganizationChanges, PersonChanges,
    TenancyStore,
};
use axum::extract::{Path, State};
use dartwing_core::Error;
use dartwing_core::tenancy::{
    MemberRole, MemberStatus, ORG_MEMBER, ORGANIZATION, OrgStatus, OrgType, PERSON, PersonStatus,
};
use dartwing_http::openapi::error_ref;
use dartwing_http::{ApiResult, Auth, Data, Message, MethodArgs, Routes, StrictJson, StrictQuery};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The tenancy routes, with their state applied, each with its OpenAPI operation.
pub fn routes(store: TenancyStore) -> Routes {
    let items = path_items();
    let op = |path: &str, method: &str| {
        items
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, item)| item[method].clone())
            .unwrap_or_default()
    };
    Routes::builder()
        .get(LIST, list, op(LIST, "get"))
        .post(LIST, create, op(LIST, "post"))
        .get(DOCUMENT, read, op(DOCUMENT, "get"))
        .put(DOCUMENT, update, op(DOCUMENT, "put"))
        .delete(DOCUMENT, remove, op(DOCUMENT, "delete"))
        .post(ACCEPT_INVITATION, accept_invitation, op(ACCEPT_INVITATION, "post"))
        .with_state(store)
}

/// Lists and creates documents of a DocType.
const LIST: &str = "/api/resource/{doctype}";
/// Reads, changes and deletes one document.
const DOCUMENT: &str = "/api/resource/{doctype}/{name}";

/// Where an invited user accepts an invitation.
const ACCEPT_INVITATION: &str = "/api/method/dartwing_core.tenancy.accept_invitation";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocType {
    Organization,
    Person,
    OrgMember,
}

impl DocType {
    fn parse(name: &str) -> Result<Self, Error> {
        match name {
            ORGANIZATION => Ok(DocType::Organization),
            PERSON => Ok(DocType::Person),
            ORG_MEMBER => Ok(DocType::OrgMember),
            other => Err(Error::not_found(format!("DocType {other} not found"))),
        }
    }
}

/// Fields the server sets; clients may send them back unchanged and they are ignored.
const SERVER_MANAGED: [&str; 5] = ["doctype", "creation", "modified", "owner", "modified_by"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrganizationBody {
    name: Option<String>,
    org_name: Option<String>,
    org_type: Option<OrgType>,
    status: Option<OrgStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonBody {
    name: Option<String>,
    primary_email: Option<String>,
    full_name: Option<String>,
    status: Option<PersonStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    name: Option<String>,
    person: Option<String>,
    /// Invite whoever signs in with this email (instead of naming a `person`).
    email: Option<String>,
    organization: Option<String>,
    role: Option<MemberRole>,
    status: Option<MemberStatus>,
    // Sent back unchanged from a read; the server manages them.
    invited_email: Option<String>,
    invited_person: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptInvitationBody {
    organization: Option<String>,
    name: Option<String>,
}

fn body<T: DeserializeOwned>(doctype: &str, value: Value) -> Result<T, Error> {
    let Value::Object(mut fields) = value else {
        return Err(Error::bad_request("The body must be a JSON object"));
    };
    if fields.get("doctype").is_some_and(|d| d.as_str() != Some(doctype)) {
        return Err(Error::validation(format!("Body doctype does not match {doctype}")));
    }
    for key in SERVER_MANAGED {
        fields.remove(key);
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| Error::bad_request(format!("Invalid {doctype}: {e}")))
}

/// An email typed by a person into a form: surrounding white space is dropped here, at the edge.
/// Emails in tokens are identity keys and are taken exactly as they are
/// ([`normalize_email`](dartwing_core::tenancy::normalize_email) refuses any white space).
fn typed_email(email: String) -> String {
    email.trim().to_string()
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| Error::validation(format!("'{field}' is required")))
}

fn same_name(path: &str, body: Option<&String>) -> Result<(), Error> {
    match body {
        Some(name) if name != path => Err(Error::validation("The document name cannot be changed")),
        _ => Ok(()),
    }
}

fn to_value<T: serde::Serialize>(doc: &T, doctype: &str) -> Value {
    let mut value = serde_json::to_value(doc).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert("doctype".into(), Value::from(doctype));
    }
    value
}

async fn list(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    Path(doctype): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Data<Vec<serde_json::Map<String, Value>>>> {
    let rows = match DocType::parse(&doctype)? {
        DocType::Organization => store.list_organizations(&actor, &params).await?,
        DocType::Person => store.list_people(&actor, &params).await?,
        DocType::OrgMember => store.list_members(&actor, &params).await?,
    };
    Ok(Data(rows))
}

async fn create(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    Path(doctype): Path<String>,
    StrictJson(value): StrictJson<Value>,
) -> ApiResult<Data<Value>> {
    let doc = match DocType::parse(&doctype)? {
        DocType::Organization => {
            let b: OrganizationBody = body(ORGANIZATION, value)?;
            let new = NewOrganization {
                name: b.name,
                org_name: required("org_name", b.org_name)?,
                org_type: required("org_type", b.org_type)?,
                status: b.status,
            };
            to_value(&store.create_organization(&actor, new).await?, ORGANIZATION)
        }
        DocType::Person => {
            let b: PersonBody = body(PERSON, value)?;
            let new = NewPerson {
                name: b.name,
                primary_email: typed_email(required("primary_email", b.primary_email)?),
                full_name: b.full_name,
                status: b.status,
            };
            to_value(&store.create_person(&actor, new).await?, PERSON)
        }
        DocType::OrgMember => {
            let b: MemberBody = body(ORG_MEMBER, value)?;
            if b.name.is_some() {
                return Err(Error::validation("Org Member names are assigned by the server").into());
            }
            if b.invited_email.is_some() || b.invited_person.is_some() {
                return Err(Error::validation(
                    "invited_email and invited_person are set by the server; send 'person' or 'email'",
                )
                .into());
            }
            let invitee = match (b.person, b.email) {
                (Some(person), None) => Invitee::Person(person),
                (None, Some(email)) => Invitee::Email(typed_email(email)),
                _ => return Err(Error::validation("Send either 'person' (a Person's name) or 'email'").into()),
            };
            let organization = required("organization", b.organization)?;
            let new = NewMember {
                invitee,
                organization,
                role: required("role", b.role)?,
                status: b.status,
            };
            to_value(&store.add_member(&actor, new).await?, ORG_MEMBER)
        }
    };
    Ok(Data(doc))
}

async fn read(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    Path((doctype, name)): Path<(String, String)>,
) -> ApiResult<Data<Value>> {
    let doc = match DocType::parse(&doctype)? {
        DocType::Organization => to_value(&store.organization(&actor, &name).await?, ORGANIZATION),
        DocType::Person => to_value(&store.person(&actor, &name).await?, PERSON),
        DocType::OrgMember => to_value(&store.member(&actor, &name).await?, ORG_MEMBER),
    };
    Ok(Data(doc))
}

async fn update(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    Path((doctype, name)): Path<(String, String)>,
    StrictJson(value): StrictJson<Value>,
) -> ApiResult<Data<Value>> {
    let doc = match DocType::parse(&doctype)? {
        DocType::Organization => {
            let b: OrganizationBody = body(ORGANIZATION, value)?;
            same_name(&name, b.name.as_ref())?;
            let changes = OrganizationChanges {
                org_name: b.org_name,
                org_type: b.org_type,
                status: b.status,
            };
            to_value(&store.update_organization(&actor, &name, changes).await?, ORGANIZATION)
        }
        DocType::Person => {
            let b: PersonBody = body(PERSON, value)?;
            same_name(&name, b.name.as_ref())?;
            let changes = PersonChanges {
                primary_email: b.primary_email.map(typed_email),
                full_name: b.full_name,
                status: b.status,
            };
            to_value(&store.update_person(&actor, &name, changes).await?, PERSON)
        }
        DocType::OrgMember => {
            let b: MemberBody = body(ORG_MEMBER, value)?;
            same_name(&name, b.name.as_ref())?;
            let current = store.member(&actor, &name).await?;
            if b.person.is_some_and(|p| Some(p) != current.person)
                || b.organization.is_some_and(|o| o != current.organization)
                || b.email.is_some()
                || b.invited_email.is_some_and(|e| Some(e) != current.invited_email)
                || b.invited_person.is_some_and(|p| Some(p) != current.invited_person)
            {
                return Err(Error::validation(
                    "Whom a membership or invitation is for, and its organization, cannot change",
                )
                .into());
            }
            let changes = MemberChanges {
                role: b.role,
                status: b.status,
            };
            to_value(&store.update_member(&actor, &name, changes).await?, ORG_MEMBER)
        }
    };
    Ok(Data(doc))
}

async fn accept_invitation(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    MethodArgs(body): MethodArgs<AcceptInvitationBody>,
) -> ApiResult<Message<Value>> {
    let invitation = match (body.organization, body.name) {
        (Some(organization), None) => InvitationRef::Organization(organization),
        (None, Some(name)) => InvitationRef::Member(name),
        _ => {
            return Err(
                Error::validation("Send either 'organization' or 'name' (the invitation's Org Member name)").into(),
            );
        }
    };
    let member = store.accept_invitation(&actor, invitation).await?;
    Ok(Message(to_value(&member, ORG_MEMBER)))
}

async fn remove(
    State(store): State<TenancyStore>,
    Auth(actor): Auth,
    Path((doctype, name)): Path<(String, String)>,
) -> ApiResult<Data<&'static str>> {
    match DocType::parse(&doctype)? {
        DocType::Organization => store.delete_organization(&actor, &name).await?,
        DocType::Person => store.delete_person(&actor, &name).await?,
        DocType::OrgMember => store.remove_member(&actor, &name).await?,
    }
    Ok(Data("ok"))
}

/// OpenAPI path items of these routes.
fn path_items() -> Vec<(String, Value)> {
    let doctype = json!({
        "name": "doctype", "in": "path", "required": true,
        "schema": { "type": "string", "enum": [ORGANIZATION, PERSON, ORG_MEMBER] },
        "description": "DocType, URL-encoded (e.g. Org%20Member)"
    });
    let name = json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } });
    let list_params: Vec<Value> = ["filters", "fields", "order_by", "limit_start", "limit_page_length"]
        .iter()
        .map(|p| json!({ "name": p, "in": "query", "required": false, "schema": { "type": "string" } }))
        .collect();
    let errors = json!({
        "400": error_ref("BadRequest"), "401": error_ref("Unauthenticated"), "403": error_ref("Forbidden"),
        "404": error_ref("NotFound"), "409": error_ref("Conflict"), "413": error_ref("TooLarge"),
        "422": error_ref("Invalid"), "503": error_ref("Unavailable")
    });
    let ok = |description: &str| {
        let mut responses = errors.clone();
        responses["200"] = json!({ "description": description, "content": { "application/json": { "schema": {
            "type": "object", "properties": { "data": {} } } } } });
        responses
    };
    let body = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } });
    let mut accepted = errors.clone();
    accepted["200"] = json!({ "description": "The membership", "content": { "application/json": { "schema": {
        "type": "object", "properties": { "message": {} } } } } });
    let mut list_parameters = vec![doctype.clone()];
    list_parameters.extend(list_params);
    vec![
        (
            LIST.to_string(),
            json!({
                "get": { "summary": "List documents the caller can read", "tags": ["Tenancy"],
                         "parameters": list_parameters, "responses": ok("Rows with the requested fields") },
                "post": { "summary": "Create a document", "tags": ["Tenancy"], "parameters": [doctype],
                          "requestBody": body, "responses": ok("The created document") }
            }),
        ),
        (
            ACCEPT_INVITATION.to_string(),
            json!({
                "post": {
                    "summary": "Accept an invitation to an organization",
                    "description": "The caller must be the invited user. The invitation becomes an Active membership with the offered role.",
                    "tags": ["Tenancy"],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "additionalProperties": false,
                        "properties": {
                            "organization": { "type": "string", "description": "Accept the invitation to this organization" },
                            "name": { "type": "string", "description": "Accept this invitation (Org Member name)" }
                        } } } } },
                    "responses": accepted
                }
            }),
        ),
        (
            DOCUMENT.to_string(),
            json!({
                "get": { "summary": "Read a document", "tags": ["Tenancy"], "parameters": [doctype, name],
                         "responses": ok("The document") },
                "put": { "summary": "Change a document", "tags": ["Tenancy"], "parameters": [doctype, name],
                         "requestBody": body, "responses": ok("The changed document") },
                "delete": { "summary": "Delete a document", "tags": ["Tenancy"], "parameters": [doctype, name],
                            "responses": ok("\"ok\"") }
            }),
        ),
    ]
}
