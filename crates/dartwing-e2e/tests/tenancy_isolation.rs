//! Tenant isolation of People, names and identities: each scenario is an attack by one tenant (or
//! one token) on what belongs to others, asserting the refusal and that nothing changed. Each runs
//! on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::identity::{IdentityStore, VerifiedUser};
use dartwing_e2e::scenario::{ALICE, BOB, DbSnapshot, Scene, assert_private, assert_refused};
use dartwing_e2e::tokens::{hs256, unix_now, with_claim};
use dartwing_e2e::{Reply, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ------------------------------------------------------------------------------------ helpers

const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";
const MALLORY: &str = "mallory@example.com";
const MEMBERS: &str = "/api/resource/Org%20Member";
const ACCEPT: &str = "/api/method/dartwing_core.tenancy.accept_invitation";

/// Signs `email` in once (the first request provisions the Person) and returns the Person's name.
async fn person_of(server: &TestServer, email: &str) -> String {
    let reply = server.get("/api/resource/Organization", &server.token(email)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    server
        .app
        .tenancy
        .person_by_email(email)
        .await
        .unwrap()
        .expect("provisioned")
        .name
}

/// A name of the Person series that no Person has.
fn unknown_person() -> String {
    format!("PERS-{}-99999", dartwing_core::Timestamp::now().year())
}

/// The `data` of a successful reply.
fn data(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["data"].clone()
}

/// `value` without the keys that differ between any two documents (generated name, timestamps)
/// and without `keys`.
fn shape(value: &Value, keys: &[&str]) -> Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        for key in ["name", "creation", "modified"].iter().chain(keys) {
            object.remove(*key);
        }
    }
    value
}

/// Asserts that two refusals are the same answer: status, `exc_type`, and the message once the
/// name each one asked about is blanked out.
fn assert_same_refusal(a: &Reply, a_name: &str, b: &Reply, b_name: &str) {
    assert_eq!(a.status, b.status, "{} / {}", a.text, b.text);
    let (a_body, b_body) = (a.json(), b.json());
    assert_eq!(a_body["exc_type"], b_body["exc_type"]);
    let message = |body: &Value, name: &str| body["message"].as_str().unwrap_or_default().replace(name, "<name>");
    assert_eq!(message(&a_body, a_name), message(&b_body, b_name));
}

/// Creates an organization owned by `owner` (who signs in first).
async fn org_of(server: &TestServer, owner: &str, org_name: &str) -> String {
    server.create_org(owner, org_name).await
}

/// Every row of `org_member` for `org` as `(person, status, invited_email, invited_person)`.
async fn member_rows(server: &TestServer, org: &str) -> Vec<(Option<String>, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT person, status, invited_email, invited_person FROM org_member WHERE organization = $1 ORDER BY name",
    )
    .bind(org)
    .fetch_all(server.app.db.pool())
    .await
    .unwrap()
}

fn every_person_field() -> &'static str {
    "/api/resource/Person?fields=%5B%22*%22%5D&limit_page_length=0"
}

// --------------------------------------------------------------------- finding 1: harvesting

dartwing_e2e::backend_tests! {
    /// A stranger creates an organization and adds an existing Person by (guessed) name as a
    /// Guest to read their email. The add is at most an invitation that links no Person, no API
    /// shows the email, and an existing name and a non-existent one get the same answers.
    async fn stranger_cannot_harvest_a_person_by_adding_them_as_guest(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.beta, CAROL, "Member").await;
        let carol = person_of(&s.server, CAROL).await;
        let ghost = unknown_person();
        let trap = org_of(&s.server, MALLORY, "Trap").await;
        let mallory = s.token(MALLORY);
        let people_before = DbSnapshot::take(&s.server).await.rows("person").to_vec();

        // Reading the Person: the same 404 for the victim and for a name nobody has.
        let victim = s.server.get(&format!("/api/resource/Person/{carol}"), &mallory).await;
        let nobody = s.server.get(&format!("/api/resource/Person/{ghost}"), &mallory).await;
        assert_refused(&victim, StatusCode::NOT_FOUND, "DoesNotExistError", &[CAROL]);
        assert_same_refusal(&victim, &carol, &nobody, &ghost);

        // Adding them as Guests: both become invitations of the same shape, linking nobody.
        let add = |person: &str| json!({ "person": person, "organization": trap, "role": "Guest" });
        let victim_add = s.server.post(MEMBERS, &mallory, &add(&carol)).await;
        let nobody_add = s.server.post(MEMBERS, &mallory, &add(&ghost)).await;
        assert_private(&victim_add.text, &[CAROL]);
        let (victim_member, nobody_member) = (data(&victim_add), data(&nobody_add));
        assert_eq!(victim_member["status"], "Invited");
        assert_eq!(victim_member["person"], Value::Null);
        assert_eq!(
            shape(&victim_member, &["invited_person"]),
            shape(&nobody_member, &["invited_person"]),
            "an existing Person and an unknown name are answered alike"
        );
        // A second add of each: the same conflict.
        let again_victim = s.server.post(MEMBERS, &mallory, &add(&carol)).await;
        let again_nobody = s.server.post(MEMBERS, &mallory, &add(&ghost)).await;
        assert_refused(&again_victim, StatusCode::CONFLICT, "DuplicateEntryError", &[CAROL]);
        assert_same_refusal(&again_victim, &carol, &again_nobody, &ghost);

        // Nothing the stranger can read shows the email.
        let after = s.snapshot().await;
        for path in [
            format!("/api/resource/Person/{carol}"),
            every_person_field().to_string(),
            format!(
                "/api/resource/Person?fields=%5B%22name%22%5D&filters={}",
                urlencoding::encode(r#"[["primary_email","like","carol%"]]"#)
            ),
            format!("{MEMBERS}?fields=%5B%22*%22%5D&limit_page_length=0"),
            format!("{MEMBERS}/{}", victim_member["name"].as_str().unwrap()),
        ] {
            let reply = s.server.get(&path, &mallory).await;
            assert_private(&reply.text, &[CAROL]);
        }
        let listed = data(&s.server.get(every_person_field(), &mallory).await);
        assert_eq!(listed.as_array().unwrap().len(), 1, "only herself: {listed}");
        after.assert_unchanged(&s.server, "the stranger's reads").await;

        // The database holds two invitations that link no Person; People are untouched.
        assert_eq!(after.rows("person"), people_before.as_slice());
        let rows = member_rows(&s.server, &trap).await;
        let mallory_person = person_of(&s.server, MALLORY).await;
        assert_eq!(
            rows,
            [
                (Some(mallory_person), "Active".to_string(), None, None),
                (None, "Invited".to_string(), None, Some(carol.clone())),
                (None, "Invited".to_string(), None, Some(ghost.clone())),
            ]
        );
        // And Carol is no member of the trap: she reads nothing of it.
        let reply = s
            .server
            .get(&format!("/api/resource/Organization/{trap}"), &s.token(CAROL))
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        s.stop().await;
    }

    /// Inviting by email answers the same whether or not a Person has that email, and creates no
    /// Person and links none.
    async fn inviting_an_email_does_not_reveal_whether_a_person_has_it(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.beta, CAROL, "Member").await;
        let trap = org_of(&s.server, MALLORY, "Trap").await;
        let mallory = s.token(MALLORY);
        let people_before = DbSnapshot::take(&s.server).await.rows("person").to_vec();
        let invite = |email: &str| json!({ "email": email, "organization": trap, "role": "Member" });
        let known = data(&s.server.post(MEMBERS, &mallory, &invite("Carol@Example.com")).await);
        let unknown = data(&s.server.post(MEMBERS, &mallory, &invite("nobody@example.com")).await);
        assert_eq!(known["invited_email"], CAROL, "stored lower-cased");
        assert_eq!(unknown["invited_email"], "nobody@example.com");
        assert_eq!(shape(&known, &["invited_email"]), shape(&unknown, &["invited_email"]));
        assert_eq!(known["status"], "Invited");
        assert_eq!(known["person"], Value::Null);
        assert_eq!(
            s.snapshot().await.rows("person"),
            people_before.as_slice(),
            "no Person created"
        );
        // The same conflict for a second invitation either way.
        let known_again = s.server.post(MEMBERS, &mallory, &invite(CAROL)).await;
        let unknown_again = s.server.post(MEMBERS, &mallory, &invite("nobody@example.com")).await;
        assert_refused(&known_again, StatusCode::CONFLICT, "DuplicateEntryError", &[]);
        assert_same_refusal(&known_again, CAROL, &unknown_again, "nobody@example.com");
        // An invitation cannot be made Active by its inviter.
        let before = s.snapshot().await;
        let body = json!({ "email": "nobody@example.com", "organization": trap, "role": "Member", "status": "Active" });
        let reply = s.server.post(MEMBERS, &mallory, &body).await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        before.assert_unchanged(&s.server, "an Active invitation").await;
        s.stop().await;
    }

    /// An invited user gets no access to the organization, and the inviter no view of the
    /// invitee, until the invitation is accepted; the inviter cannot accept it in their place.
    async fn invitation_grants_nothing_until_accepted(db) {
        let s = Scene::new(db).await;
        s.server.add_member(&s.beta, CAROL, "Member").await;
        s.server.add_member(&s.alpha, DAVE, "Member").await;
        let carol_person = person_of(&s.server, CAROL).await;
        let alice = s.token(ALICE);
        let body = json!({ "email": CAROL, "organization": s.alpha, "role": "Admin" });
        let invitation = data(&s.server.post(MEMBERS, &alice, &body).await);
        let invitation_path = format!("{MEMBERS}/{}", invitation["name"].as_str().unwrap());
        let before = s.snapshot().await;

        // The invitee: no reads, no writes, no members, no live events of the organization.
        let carol = s.token(CAROL);
        let alpha_path = format!("/api/resource/Organization/{}", s.alpha);
        let reply = s.server.get(&alpha_path, &carol).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        let reply = s.server.put(&alpha_path, &carol, &json!({ "org_name": "Taken" })).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        let orgs = data(&s.server.get("/api/resource/Organization", &carol).await);
        assert_eq!(orgs, json!([{ "name": s.beta }]));
        let add = json!({ "email": "friend@example.com", "organization": s.alpha, "role": "Guest" });
        let reply = s.server.post(MEMBERS, &carol, &add).await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        let principal = s
            .server
            .app
            .tenancy
            .user_principal(&VerifiedUser {
                email: CAROL.into(),
                full_name: None,
                system_admin: false,
            })
            .await
            .unwrap();
        for action in dartwing_core::Action::ALL {
            assert!(!principal.can(*action, &s.alpha), "{action:?}");
        }

        // The inviter and the organization's members: no view of the invitee's Person.
        let reply = s
            .server
            .get(&format!("/api/resource/Person/{carol_person}"), &alice)
            .await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[CAROL]);
        let people = s.server.get(every_person_field(), &alice).await;
        assert!(!people.text.contains(&carol_person), "{}", people.text);
        // A plain member does not even see the invitation.
        let dave = s.token(DAVE);
        let reply = s.server.get(&invitation_path, &dave).await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[CAROL]);
        let listed = s.server.get(&format!("{MEMBERS}?fields=%5B%22*%22%5D"), &dave).await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_private(&listed.text, &[CAROL]);

        // Neither the inviter nor an administrator turns the invitation into a membership.
        for token in [&alice, &s.admin] {
            let reply = s
                .server
                .put(&invitation_path, token, &json!({ "status": "Active" }))
                .await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        let reply = s.server.post(ACCEPT, &alice, &json!({ "organization": s.alpha })).await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[CAROL]);
        before.assert_unchanged(&s.server, "attempts before acceptance").await;
        s.stop().await;
    }

    /// Only the invited user accepts an invitation, which then grants the offered role; the
    /// inviter then sees the new member in full.
    async fn accepting_an_invitation_grants_the_role(db) {
        let s = Scene::new(db).await;
        let carol_person = person_of(&s.server, CAROL).await;
        let alice = s.token(ALICE);
        let body = json!({ "email": CAROL, "organization": s.alpha, "role": "Admin" });
        let invitation = data(&s.server.post(MEMBERS, &alice, &body).await);

        // Somebody else cannot accept it, by organization or by name: as if there were none.
        let mallory = s.token(MALLORY);
        person_of(&s.server, MALLORY).await;
        let before = s.snapshot().await;
        for body in [
            json!({ "organization": s.alpha }),
            json!({ "name": invitation["name"] }),
        ] {
            let reply = s.server.post(ACCEPT, &mallory, &body).await;
            assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[CAROL]);
        }
        let reply = s
            .server
            .post(ACCEPT, &mallory, &json!({ "organization": s.alpha, "name": "x" }))
            .await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        before.assert_unchanged(&s.server, "acceptance by someone else").await;

        // The invitee sees the invitation and accepts it.
        let carol = s.token(CAROL);
        let filters = urlencoding::encode(r#"[["status","=","Invited"]]"#);
        let mine = data(
            &s.server
                .get(
                    &format!("{MEMBERS}?fields=%5B%22name%22,%22organization%22%5D&filters={filters}"),
                    &carol,
                )
                .await,
        );
        assert_eq!(mine, json!([{ "name": invitation["name"], "organization": s.alpha }]));
        let reply = s.server.post(ACCEPT, &carol, &json!({ "organization": s.alpha })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let member = reply.json()["message"].clone();
        assert_eq!(member["name"], invitation["name"]);
        assert_eq!(member["person"], json!(carol_person));
        assert_eq!(member["status"], "Active");
        assert_eq!(member["role"], "Admin");
        assert_eq!(member["invited_email"], Value::Null);

        // The role is in force at once: an Admin reads and renames the organization.
        let alpha_path = format!("/api/resource/Organization/{}", s.alpha);
        assert_eq!(s.server.get(&alpha_path, &carol).await.status, StatusCode::OK);
        let renamed = s
            .server
            .put(&alpha_path, &carol, &json!({ "org_name": "Alpha & Co" }))
            .await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
        // The inviter now sees the member in full.
        let seen = data(
            &s.server
                .get(&format!("/api/resource/Person/{carol_person}"), &alice)
                .await,
        );
        assert_eq!(seen["primary_email"], CAROL);
        // Accepting again finds nothing and changes nothing.
        let before = s.snapshot().await;
        let reply = s.server.post(ACCEPT, &carol, &json!({ "organization": s.alpha })).await;
        assert_refused(&reply, StatusCode::NOT_FOUND, "DoesNotExistError", &[]);
        before.assert_unchanged(&s.server, "a second acceptance").await;

        // By member name, for an invitation addressed by Person name.
        let body = json!({ "person": carol_person, "organization": s.beta, "role": "Guest" });
        let by_name = data(&s.server.post(MEMBERS, &s.token(BOB), &body).await);
        assert_eq!(by_name["status"], "Invited");
        let reply = s.server.post(ACCEPT, &carol, &json!({ "name": by_name["name"] })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["message"]["role"], "Guest");
        let orgs = data(&s.server.get("/api/resource/Organization?order_by=name", &carol).await);
        assert_eq!(orgs.as_array().unwrap().len(), 2, "{orgs}");
        s.stop().await;
    }

    /// With `tenancy.auto_accept_invitations` on, the invited user's next request accepts the
    /// invitation (off, the default, requests accept nothing: see
    /// `invitation_grants_nothing_until_accepted`).
    async fn invitations_are_accepted_on_the_next_request_when_configured(db) {
        let server = TestServer::start_with(db, |config| config.tenancy.auto_accept_invitations = true).await;
        let s = Scene::on(server).await;
        person_of(&s.server, CAROL).await;
        let body = json!({ "email": CAROL, "organization": s.alpha, "role": "Member" });
        data(&s.server.post(MEMBERS, &s.token(ALICE), &body).await);
        let orgs = data(&s.server.get("/api/resource/Organization", &s.token(CAROL)).await);
        assert_eq!(orgs, json!([{ "name": s.alpha }]));
        let carol_person = person_of(&s.server, CAROL).await;
        let rows = member_rows(&s.server, &s.alpha).await;
        assert!(
            rows.contains(&(Some(carol_person), "Active".to_string(), None, None)),
            "{rows:?}"
        );
        assert!(rows.iter().all(|(_, status, ..)| status == "Active"), "{rows:?}");
        s.stop().await;
    }

    /// A co-member who sees a Person only by name adds them to an organization of their own: that
    /// is an invitation, not a membership. Only one who manages an organization the Person is an
    /// Active member of (and so sees them in full) adds them directly, by name or by email.
    async fn co_member_cannot_pull_a_person_into_their_own_organization(db) {
        let s = Scene::new(db).await;
        let carol_person = person_of(&s.server, CAROL).await;
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        s.server.add_member(&s.alpha, DAVE, "Member").await;
        let daves = org_of(&s.server, DAVE, "Dave's").await;
        let dave = s.token(DAVE);
        for body in [
            json!({ "person": carol_person, "organization": daves, "role": "Member" }),
            json!({ "email": CAROL, "organization": daves, "role": "Admin" }),
        ] {
            let invited = data(&s.server.post(MEMBERS, &dave, &body).await);
            assert_eq!(invited["status"], "Invited", "{body}");
            assert_eq!(invited["person"], Value::Null);
        }
        let reply = s
            .server
            .get(&format!("/api/resource/Organization/{daves}"), &s.token(CAROL))
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[]);
        // Alice manages Alpha, where Carol is an Active member: she adds Carol directly.
        let gamma = org_of(&s.server, ALICE, "Gamma").await;
        let delta = org_of(&s.server, ALICE, "Delta").await;
        let alice = s.token(ALICE);
        let by_email = json!({ "email": "Carol@example.com", "organization": gamma, "role": "Member" });
        let by_name = json!({ "person": carol_person, "organization": delta, "role": "Guest" });
        for body in [by_email, by_name] {
            let added = data(&s.server.post(MEMBERS, &alice, &body).await);
            assert_eq!(
                (&added["status"], &added["person"]),
                (&json!("Active"), &json!(carol_person))
            );
        }
        let orgs = data(
            &s.server
                .get("/api/resource/Organization?limit_page_length=0", &s.token(CAROL))
                .await,
        );
        assert_eq!(orgs.as_array().unwrap().len(), 3, "Alpha, Gamma and Delta: {orgs}");
        s.stop().await;
    }

    /// A co-member who does not manage a shared organization sees a Person's name and display
    /// name only: not the email, not in lists, not through filters or ordering on it.
    async fn co_member_sees_only_full_name(db) {
        let s = Scene::new(db).await;
        let carol_person = person_of(&s.server, CAROL).await;
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        s.server.add_member(&s.alpha, DAVE, "Member").await;
        let dave = s.token(DAVE);
        let before = s.snapshot().await;

        let seen = data(
            &s.server
                .get(&format!("/api/resource/Person/{carol_person}"), &dave)
                .await,
        );
        assert_eq!(
            seen,
            json!({ "name": carol_person, "full_name": "carol", "doctype": "Person" })
        );
        let listed = s.server.get(every_person_field(), &dave).await;
        assert_private(&listed.text, &[CAROL, ALICE]);
        let rows = data(&listed);
        let carol_row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == json!(carol_person))
            .unwrap_or_else(|| panic!("{rows}"));
        assert_eq!(carol_row["full_name"], "carol");
        assert_eq!(carol_row["primary_email"], Value::Null);
        // Probing the hidden email through filters finds only what Dave sees in full: himself.
        for filters in [
            r#"[["primary_email","like","carol%"]]"#,
            r#"{"primary_email":"carol@example.com"}"#,
        ] {
            let path = format!("/api/resource/Person?filters={}", urlencoding::encode(filters));
            assert_eq!(data(&s.server.get(&path, &dave).await), json!([]), "{filters}");
        }
        // Ordering on it orders the hidden values as if they were empty: all three are listed.
        let path = "/api/resource/Person?fields=%5B%22name%22,%22primary_email%22%5D\
                    &order_by=primary_email&limit_page_length=0";
        let ordered = s.server.get(path, &dave).await;
        assert_private(&ordered.text, &[CAROL, ALICE]);
        assert_eq!(data(&ordered).as_array().unwrap().len(), 3, "{}", ordered.text);
        let reply = s
            .server
            .put(
                &format!("/api/resource/Person/{carol_person}"),
                &dave,
                &json!({ "full_name": "X" }),
            )
            .await;
        assert_refused(&reply, StatusCode::FORBIDDEN, "PermissionError", &[CAROL]);
        before.assert_unchanged(&s.server, "a co-member's reads").await;

        // The Owner, the Person themself and administrators see everything.
        for token in [s.token(ALICE), s.token(CAROL), s.admin.clone()] {
            let seen = data(
                &s.server
                    .get(&format!("/api/resource/Person/{carol_person}"), &token)
                    .await,
            );
            assert_eq!(seen["primary_email"], CAROL);
        }
        s.stop().await;
    }
}

// ------------------------------------------------------------------- finding 2: name squatting

dartwing_e2e::backend_tests! {
    /// A tenant names its documents inside the server's generated series (any year, any width,
    /// any case) to make later generated names collide: refused with 422 naming the series.
    async fn explicit_name_inside_generated_series_is_refused(db) {
        let s = Scene::new(db).await;
        let year = dartwing_core::Timestamp::now().year();
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for (name, series) in [
            (format!("ORG-{year}-00003"), "ORG-YYYY-#####"),
            ("ORG-1999-7".to_string(), "ORG-YYYY-#####"),
            (format!("org-{year}-000000003"), "ORG-YYYY-#####"),
            (format!("PERS-{year}-00042"), "PERS-YYYY-#####"),
            (format!("MEM-{year}-00042"), "MEM-YYYY-#####"),
        ] {
            let body = json!({ "name": name, "org_name": "Squat", "org_type": "Company" });
            let reply = s.server.post("/api/resource/Organization", &alice, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
            assert!(
                reply.json()["message"].as_str().unwrap().contains(series),
                "{}",
                reply.text
            );
            let body = json!({ "name": name, "primary_email": "squat@example.com" });
            let reply = s.server.post("/api/resource/Person", &s.admin, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&s.server, "names inside the series").await;
        // Generated names keep coming, and names outside the series are fine.
        assert_eq!(s.server.create_org(ALICE, "Third").await, format!("ORG-{year}-00003"));
        let body = json!({ "name": format!("ORG-{year}-HQ"), "org_name": "HQ", "org_type": "Company" });
        assert_eq!(
            data(&s.server.post("/api/resource/Organization", &alice, &body).await)["name"],
            format!("ORG-{year}-HQ")
        );
        s.stop().await;
    }

    /// Names taken before their series was reserved (legacy rows) are skipped by generation
    /// instead of failing every later create with 409.
    async fn generated_names_skip_taken_names(db) {
        let s = Scene::new(db).await;
        let year = dartwing_core::Timestamp::now().year();
        let pool = s.server.app.db.pool();
        let now = dartwing_core::Timestamp::now().to_string();
        for n in 3..=5 {
            sqlx::query(
                "INSERT INTO organization (name, org_name, org_type, status, creation, modified, owner, modified_by) \
                 VALUES ($1, 'Legacy', 'Company', 'Active', $2, $2, 'legacy', 'legacy')",
            )
            .bind(format!("ORG-{year}-{n:05}"))
            .bind(&now)
            .execute(pool)
            .await
            .unwrap();
        }
        let people: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM person")
            .fetch_one(pool)
            .await
            .unwrap();
        let next_person = people + 1;
        sqlx::query(
            "INSERT INTO person (name, primary_email, full_name, status, creation, modified, owner, modified_by) \
             VALUES ($1, 'legacy@example.com', 'Legacy', 'Active', $2, $2, 'legacy', 'legacy')",
        )
        .bind(format!("PERS-{year}-{next_person:05}"))
        .bind(&now)
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(
            s.server.create_org(ALICE, "After legacy").await,
            format!("ORG-{year}-00006")
        );
        assert_eq!(
            s.server.create_org(ALICE, "And next").await,
            format!("ORG-{year}-00007")
        );
        assert_eq!(
            person_of(&s.server, CAROL).await,
            format!("PERS-{year}-{:05}", next_person + 1)
        );
        s.stop().await;
    }
}

// ------------------------------------------------------------------- finding 3: email identity

/// Claims of a valid token for `email`.
fn claims(email: &str) -> Value {
    let now = unix_now();
    json!({ "email": email, "iat": now, "nbf": now, "exp": now + 600 })
}

dartwing_e2e::backend_tests! {
    /// `\u{212A}ate@a.test` (KELVIN SIGN) lower-cases to `kate@a.test` with Unicode case folding:
    /// it must not sign in as Kate, nor provision anyone. Other look-alikes and white space neither.
    async fn kelvin_sign_email_does_not_authenticate_as_ascii_user(db) {
        let s = Scene::new(db).await;
        let kates = org_of(&s.server, "kate@a.test", "Kate's").await;
        let before = s.snapshot().await;
        for email in [
            "\u{212A}ate@a.test",
            "\u{FF4B}ate@a.test",
            "kate@a.test\u{3000}",
            " kate@a.test",
            "ka te@a.test",
            "kate@a.test\u{0}",
        ] {
            let token = hs256(&claims(email));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{kates}"), &token)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "look-alike emails").await;
        // ASCII case still folds: the same identity.
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{kates}"),
                &hs256(&claims("KATE@A.test")),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        s.stop().await;
    }

    /// A token whose IdP says the email is not verified proves nothing about the mailbox: 401,
    /// and nobody is provisioned. Without the claim, or with `true`, the token is accepted.
    async fn unverified_email_is_refused(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        for unverified in [json!(false), json!("false"), json!("FALSE")] {
            let token = hs256(&with_claim(claims(ALICE), "email_verified", unverified));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.alpha), &token)
                .await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
            let token = hs256(&with_claim(claims("newcomer@example.com"), "email_verified", json!(false)));
            let reply = s.server.get("/api/resource/Organization", &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "unverified emails").await;
        for verified in [json!(true), json!("true")] {
            let token = hs256(&with_claim(claims(ALICE), "email_verified", verified));
            let reply = s
                .server
                .get(&format!("/api/resource/Organization/{}", s.alpha), &token)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{}", s.alpha),
                &hs256(&claims(ALICE)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "no claim: {}", reply.text);
        s.stop().await;

        // An operator may turn the check off.
        let server = TestServer::start_with(db, |config| config.auth.require_verified_email = false).await;
        let token = hs256(&with_claim(claims(ALICE), "email_verified", json!(false)));
        let reply = server.get("/api/resource/Organization", &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        server.stop().await;
    }

    /// Once a Person has signed in with an identity provider account (`iss`+`sub`), another
    /// account presenting the same email — another subject, or another issuer — is refused.
    async fn another_account_with_the_same_email_cannot_sign_in(db) {
        let s = Scene::new(db).await;
        let first = hs256(&with_claim(
            with_claim(claims(CAROL), "iss", json!("https://idp.a.test")),
            "sub",
            json!("carol-1"),
        ));
        let alpha = format!("/api/resource/Organization/{}", s.alpha);
        assert_eq!(
            s.server.get("/api/resource/Organization", &first).await.status,
            StatusCode::OK
        );
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        assert_eq!(
            s.server.get(&alpha, &first).await.status,
            StatusCode::OK,
            "the same account again"
        );
        let before = s.snapshot().await;
        for (iss, sub) in [("https://idp.a.test", "carol-2"), ("https://idp.b.test", "carol-1")] {
            let token = hs256(&with_claim(with_claim(claims(CAROL), "iss", json!(iss)), "sub", json!(sub)));
            let reply = s.server.get(&alpha, &token).await;
            assert_refused(&reply, StatusCode::UNAUTHORIZED, "AuthenticationError", &[&token]);
        }
        before.assert_unchanged(&s.server, "other accounts").await;
        s.stop().await;
    }
}

// ------------------------------------------------------------------- finding 4: list sizes

dartwing_e2e::backend_tests! {
    /// `?fields=` with 2,100 columns (and other oversized list parameters) answers 400 with a
    /// clear message instead of a database error.
    async fn two_thousand_fields_is_400(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        let encode = |value: &Value| urlencoding::encode(&value.to_string()).into_owned();
        let many_fields = encode(&json!(vec!["name"; 2100]));
        let long_value = "%".repeat(5000);
        for doctype in ["Organization", "Person", "Org%20Member"] {
            for query in [
                format!("fields={many_fields}"),
                format!("fields={}", encode(&json!(vec!["name"; 101]))),
                format!("filters={}", encode(&json!(vec![["name", "=", "x"]; 51]))),
                format!("filters={}", encode(&json!([["name", "in", vec!["x"; 501]]]))),
                format!("filters={}", encode(&json!([["name", "like", long_value]]))),
                format!("filters={}", encode(&json!([["name", "=", "a\u{0}b"]]))),
                format!("order_by={}", "name%20".repeat(60)),
            ] {
                let reply = s.server.get(&format!("/api/resource/{doctype}?{query}"), &alice).await;
                assert_refused(&reply, StatusCode::BAD_REQUEST, "BadRequestError", &[]);
                assert!(reply.text.len() < 1000, "the message stays short: {}", reply.text);
            }
            // At the caps, duplicates folded: fine.
            let reply = s
                .server
                .get(
                    &format!("/api/resource/{doctype}?fields={}", encode(&json!(vec!["name"; 100]))),
                    &alice,
                )
                .await;
            let rows = data(&reply);
            assert!(
                rows.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r.as_object().unwrap().len() == 1),
                "{rows}"
            );
        }
        before.assert_unchanged(&s.server, "oversized list parameters").await;
        s.stop().await;
    }
}

dartwing_e2e::backend_tests! {
    /// Names no document can have (a NUL byte, which PostgreSQL text cannot even hold; or more
    /// than 140 characters), sent by an administrator in paths and bodies: a 4xx, never a 500.
    async fn impossible_document_names_are_4xx_not_500(db) {
        let s = Scene::new(db).await;
        let before = s.snapshot().await;
        let long = "n".repeat(141);
        for name in ["a%00b", long.as_str()] {
            for doctype in ["Organization", "Person", "Org%20Member"] {
                let path = format!("/api/resource/{doctype}/{name}");
                for reply in [
                    s.server.get(&path, &s.admin).await,
                    s.server.put(&path, &s.admin, &json!({})).await,
                    s.server.delete(&path, &s.admin).await,
                ] {
                    assert!(
                        reply.status.is_client_error(),
                        "{path}: {} {}",
                        reply.status,
                        reply.text
                    );
                    assert!(reply.json()["exc_type"].is_string(), "{}", reply.text);
                }
            }
        }
        for body in [
            json!({ "person": "a\u{0}b", "organization": s.alpha, "role": "Guest" }),
            json!({ "email": CAROL, "organization": "a\u{0}b", "role": "Guest" }),
            json!({ "person": long, "organization": s.alpha, "role": "Guest" }),
        ] {
            let reply = s.server.post(MEMBERS, &s.admin, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        let reply = s
            .server
            .post(ACCEPT, &s.token(ALICE), &json!({ "organization": "a\u{0}b" }))
            .await;
        assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        before.assert_unchanged(&s.server, "impossible names").await;
        s.stop().await;
    }
}

// ------------------------------------------------------------ finding 5: ghost people

dartwing_e2e::backend_tests! {
    /// An administrator changes Carol's email; the realtime access re-check that follows looks
    /// her up by the old email. It must not provision a ghost Person with the old email.
    async fn email_change_does_not_provision_a_ghost_person(db) {
        let s = Scene::new(db).await;
        let carol_person = person_of(&s.server, CAROL).await;
        s.server.add_member(&s.alpha, CAROL, "Member").await;
        let path = format!("/api/resource/Person/{carol_person}");
        let changed = s
            .server
            .put(&path, &s.admin, &json!({ "primary_email": "carol.new@example.com" }))
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
        let before = s.snapshot().await;
        // The re-check the gateway runs on that change (also started in the background).
        s.server.app.realtime.recheck_user(CAROL).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            s.server.app.tenancy.person_by_email(CAROL).await.unwrap().is_none(),
            "ghost Person provisioned"
        );
        let old = VerifiedUser {
            email: CAROL.into(),
            full_name: None,
            system_admin: false,
        };
        let looked_up = s.server.app.tenancy.user_principal(&old).await;
        assert_eq!(
            looked_up.map_err(|e| e.kind()).err(),
            Some(dartwing_core::ErrorKind::PermissionDenied)
        );
        before.assert_unchanged(&s.server, "the access re-check").await;
        // The Person signs in with the new email and keeps the membership.
        let reply = s
            .server
            .get(
                &format!("/api/resource/Organization/{}", s.alpha),
                &s.token("carol.new@example.com"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        s.stop().await;
    }
}

// ------------------------------------------------------------ finding 6: one name grammar

dartwing_e2e::backend_tests! {
    /// An organization named with `:` cannot be a realtime room (`org:{organization}`), so its
    /// events would be dropped: such names, and others outside the grammar, are refused.
    async fn organization_name_with_colon_is_refused(db) {
        let s = Scene::new(db).await;
        let alice = s.token(ALICE);
        let before = s.snapshot().await;
        for name in [
            "Acme:HQ",
            "org:Acme",
            "Acme\\HQ",
            "Acme\u{a0}HQ",
            "\u{FF21}cme",
            " Acme",
            "Acme\tHQ",
        ] {
            let body = json!({ "name": name, "org_name": "Acme", "org_type": "Company" });
            let reply = s.server.post("/api/resource/Organization", &alice, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
            let body = json!({ "name": name, "primary_email": "named@example.com" });
            let reply = s.server.post("/api/resource/Person", &s.admin, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
            let body = json!({ "person": name, "organization": s.alpha, "role": "Guest" });
            let reply = s.server.post(MEMBERS, &alice, &body).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", &[]);
        }
        before.assert_unchanged(&s.server, "names outside the grammar").await;
        let body = json!({ "name": "Acme HQ", "org_name": "Acme", "org_type": "Company" });
        assert_eq!(
            data(&s.server.post("/api/resource/Organization", &alice, &body).await)["name"],
            "Acme HQ"
        );
        s.stop().await;
    }
}
