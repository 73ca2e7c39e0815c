//! Tenancy storage and API scenarios (SPEC §3), each run on SQLite and, when available, PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dartwing_core::Principal;
use dartwing_e2e::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn system_key(server: &TestServer, org: Option<&str>) -> String {
    let key = server
        .app
        .tenancy
        .create_api_key(&Principal::system("test"), org, "test")
        .await
        .expect("key");
    format!("token {}:{}", key.api_key, key.api_secret)
}

fn names(reply: &Value) -> Vec<String> {
    reply["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect()
}

dartwing_e2e::backend_tests! {
    async fn organization_names_follow_the_yearly_series_and_the_creator_becomes_owner(db) {
        let server = TestServer::start(db).await;
        let token = server.token("ann@example.com");
        let first = server.create_org("ann@example.com", "Acme").await;
        let second = server.create_org("ann@example.com", "Beta").await;
        let year = dartwing_core::Timestamp::now().year();
        assert_eq!(first, format!("ORG-{year}-00001"), "{:?}", db.backend);
        assert_eq!(second, format!("ORG-{year}-00002"));

        let org = server
            .get(&format!("/api/resource/Organization/{first}"), &token)
            .await
            .json();
        assert_eq!(org["data"]["org_name"], "Acme");
        assert_eq!(org["data"]["org_type"], "Company");
        assert_eq!(org["data"]["status"], "Active");
        assert_eq!(org["data"]["owner"], "ann@example.com");
        assert_eq!(org["data"]["doctype"], "Organization");

        let members = server
            .get(
                &format!("/api/resource/Org%20Member?fields=[\"*\"]&filters=[[\"organization\",\"=\",\"{first}\"]]"),
                &token,
            )
            .await
            .json();
        let rows = members["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["role"], "Owner");
        assert_eq!(rows[0]["status"], "Active");
        server.stop().await;
    }

    async fn explicit_names_are_kept_and_invalid_ones_refused(db) {
        let server = TestServer::start(db).await;
        let token = server.token("ann@example.com");
        let reply = server
            .post(
                "/api/resource/Organization",
                &token,
                &json!({"name": "ACME-HQ", "org_name": "Acme", "org_type": "Family"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json()["data"]["name"], "ACME-HQ");
        let again = server
            .post(
                "/api/resource/Organization",
                &token,
                &json!({"name": "ACME-HQ", "org_name": "Other", "org_type": "Family"}),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
        let bad = server
            .post(
                "/api/resource/Organization",
                &token,
                &json!({"name": "a/b", "org_name": "x", "org_type": "Family"}),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let missing = server
            .post("/api/resource/Organization", &token, &json!({"org_type": "Family"}))
            .await;
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(missing.json()["message"].as_str().unwrap().contains("org_name"));
        server.stop().await;
    }

    async fn organization_settings_change_but_org_type_is_immutable(db) {
        let server = TestServer::start(db).await;
        let token = server.token("ann@example.com");
        let org = server.create_org("ann@example.com", "Acme").await;
        let path = format!("/api/resource/Organization/{org}");
        let renamed = server
            .put(&path, &token, &json!({"org_name": "Acme Ltd", "org_type": "Company"}))
            .await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
        assert_eq!(renamed.json()["data"]["org_name"], "Acme Ltd");
        let retyped = server.put(&path, &token, &json!({"org_type": "Nonprofit"})).await;
        assert_eq!(retyped.status, StatusCode::UNPROCESSABLE_ENTITY);
        let suspended_by_owner = server.put(&path, &token, &json!({"status": "Suspended"})).await;
        assert_eq!(
            suspended_by_owner.status,
            StatusCode::FORBIDDEN,
            "only system administrators suspend"
        );
        let stored = server.get(&path, &token).await.json();
        assert_eq!(stored["data"]["org_type"], "Company");
        assert_eq!(stored["data"]["status"], "Active");
        assert_eq!(stored["data"]["org_name"], "Acme Ltd");
        server.stop().await;
    }

    async fn suspending_an_organization_keeps_reads_and_blocks_changes(db) {
        let server = TestServer::start(db).await;
        let token = server.token("ann@example.com");
        let admin = server.admin_token("root@example.com");
        let org = server.create_org("ann@example.com", "Acme").await;
        let path = format!("/api/resource/Organization/{org}");
        let suspended = server.put(&path, &admin, &json!({"status": "Suspended"})).await;
        assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.text);
        assert_eq!(server.get(&path, &token).await.status, StatusCode::OK);
        let rename = server.put(&path, &token, &json!({"org_name": "New"})).await;
        assert_eq!(rename.status, StatusCode::FORBIDDEN);
        server.stop().await;
    }

    async fn person_emails_are_lower_cased_and_unique_ignoring_case(db) {
        let server = TestServer::start(db).await;
        let admin = server.admin_token("root@example.com");
        let created = server
            .post(
                "/api/resource/Person",
                &admin,
                &json!({"primary_email": "Bob@Example.COM", "full_name": "Bob"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
        assert_eq!(created.json()["data"]["primary_email"], "bob@example.com");
        let duplicate = server
            .post(
                "/api/resource/Person",
                &admin,
                &json!({"primary_email": "BOB@example.com"}),
            )
            .await;
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        let by_user = server
            .post(
                "/api/resource/Person",
                &server.token("ann@example.com"),
                &json!({"primary_email": "c@example.com"}),
            )
            .await;
        assert_eq!(by_user.status, StatusCode::FORBIDDEN);
        server.stop().await;
    }

    async fn first_request_provisions_the_person_just_in_time(db) {
        let server = TestServer::start(db).await;
        assert!(
            server
                .app
                .tenancy
                .person_by_email("new@example.com")
                .await
                .unwrap()
                .is_none()
        );
        let reply = server
            .get("/api/resource/Organization", &server.token("New@Example.com"))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["data"], json!([]));
        let person = server
            .app
            .tenancy
            .person_by_email("new@example.com")
            .await
            .unwrap()
            .expect("provisioned");
        assert_eq!(person.full_name, "new");
        assert_eq!(person.owner, "system:jit");
        let me = server
            .get(
                &format!("/api/resource/Person/{}", person.name),
                &server.token("new@example.com"),
            )
            .await;
        assert_eq!(me.status, StatusCode::OK);
        server.stop().await;
    }

    async fn lists_filter_page_order_and_show_only_readable_organizations(db) {
        let server = TestServer::start(db).await;
        let system = system_key(&server, None).await;
        for i in 0..25 {
            let org_type = if i % 5 == 0 { "Nonprofit" } else { "Company" };
            let body = json!({"name": format!("T-{i:02}"), "org_name": format!("Team {i}"), "org_type": org_type});
            let reply = server
                .send(
                    reqwest::Method::POST,
                    "/api/resource/Organization",
                    Some(&system),
                    Some(&body),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
        let list = |query: &str| {
            let path = format!("/api/resource/Organization?{query}");
            let system = system.clone();
            let server = &server;
            async move { server.send(reqwest::Method::GET, &path, Some(&system), None).await }
        };
        let default_page = list("").await.json();
        assert_eq!(names(&default_page).len(), 20, "Frappe's default page length");
        assert_eq!(
            default_page["data"][0].as_object().unwrap().len(),
            1,
            "default fields: name only"
        );
        let page = list("order_by=name%20asc&limit_start=20&limit_page_length=10")
            .await
            .json();
        assert_eq!(names(&page), ["T-20", "T-21", "T-22", "T-23", "T-24"]);
        let filtered = list("filters=%5B%5B%22org_type%22%2C%22%3D%22%2C%22Nonprofit%22%5D%5D&order_by=name&fields=%5B%22name%22%2C%22org_type%22%5D").await.json();
        assert_eq!(names(&filtered), ["T-00", "T-05", "T-10", "T-15", "T-20"]);
        assert_eq!(filtered["data"][0]["org_type"], "Nonprofit");
        let object_filter =
            list("filters=%7B%22name%22%3A%5B%22in%22%2C%5B%22T-01%22%2C%22T-02%22%5D%5D%7D&order_by=name")
                .await
                .json();
        assert_eq!(names(&object_filter), ["T-01", "T-02"]);
        let like = list(
            "filters=%5B%5B%22org_name%22%2C%22like%22%2C%22team%201%25%22%5D%5D&order_by=name&limit_page_length=0",
        )
        .await
        .json();
        assert_eq!(names(&like).len(), 11, "Team 1 and Team 10-19, case-insensitive");

        // A user sees only the organizations they belong to.
        let own = server.create_org("ann@example.com", "Ann's").await;
        let visible = server
            .get(
                "/api/resource/Organization?limit_page_length=0",
                &server.token("ann@example.com"),
            )
            .await
            .json();
        assert_eq!(names(&visible), [own]);
        server.stop().await;
    }

    async fn membership_changes_take_effect_on_the_next_request(db) {
        let server = TestServer::start(db).await;
        let owner = server.token("ann@example.com");
        let org = server.create_org("ann@example.com", "Acme").await;
        let member = server.add_member(&org, "bob@example.com", "Member").await;
        let bob = server.token("bob@example.com");
        let org_path = format!("/api/resource/Organization/{org}");
        assert_eq!(server.get(&org_path, &bob).await.status, StatusCode::OK);

        let member_path = format!("/api/resource/Org%20Member/{member}");
        let deactivated = server.put(&member_path, &owner, &json!({"status": "Inactive"})).await;
        assert_eq!(deactivated.status, StatusCode::OK, "{}", deactivated.text);
        assert_eq!(server.get(&org_path, &bob).await.status, StatusCode::FORBIDDEN);

        let reactivated = server
            .put(&member_path, &owner, &json!({"status": "Active", "role": "Admin"}))
            .await;
        assert_eq!(reactivated.json()["data"]["role"], "Admin");
        assert_eq!(server.get(&org_path, &bob).await.status, StatusCode::OK);

        assert_eq!(server.delete(&member_path, &owner).await.status, StatusCode::OK);
        assert_eq!(server.get(&org_path, &bob).await.status, StatusCode::FORBIDDEN);
        assert_eq!(server.get(&member_path, &owner).await.status, StatusCode::NOT_FOUND);
        server.stop().await;
    }

    async fn people_are_visible_to_co_members_only(db) {
        let server = TestServer::start(db).await;
        let org = server.create_org("ann@example.com", "Acme").await;
        server.add_member(&org, "bob@example.com", "Guest").await;
        let outsider = server.token("eve@example.com");
        server.get("/api/resource/Organization", &outsider).await;
        let bob = server
            .app
            .tenancy
            .person_by_email("bob@example.com")
            .await
            .unwrap()
            .unwrap();
        let ann_view = server
            .get(
                &format!("/api/resource/Person/{}", bob.name),
                &server.token("ann@example.com"),
            )
            .await;
        assert_eq!(ann_view.status, StatusCode::OK);
        let eve_view = server
            .get(&format!("/api/resource/Person/{}", bob.name), &outsider)
            .await;
        // Not visible answers exactly like not existing, so names cannot be probed.
        assert_eq!(eve_view.status, StatusCode::NOT_FOUND);
        let eve_list = server
            .get("/api/resource/Person?fields=[\"primary_email\"]", &outsider)
            .await
            .json();
        assert_eq!(eve_list["data"], json!([{"primary_email": "eve@example.com"}]));
        let ann_list = server
            .get(
                "/api/resource/Person?fields=[\"primary_email\"]&order_by=primary_email",
                &server.token("ann@example.com"),
            )
            .await
            .json();
        assert_eq!(
            ann_list["data"],
            json!([{"primary_email": "ann@example.com"}, {"primary_email": "bob@example.com"}])
        );
        server.stop().await;
    }

    async fn linked_documents_cannot_be_deleted_until_unlinked(db) {
        let server = TestServer::start(db).await;
        let admin = server.admin_token("root@example.com");
        let system = system_key(&server, None).await;
        let body = json!({"org_name": "Keyless", "org_type": "Association"});
        let created = server
            .send(
                reqwest::Method::POST,
                "/api/resource/Organization",
                Some(&system),
                Some(&body),
            )
            .await;
        let org = created.json()["data"]["name"].as_str().unwrap().to_string();
        let member = server.add_member(&org, "bob@example.com", "Owner").await;
        let org_path = format!("/api/resource/Organization/{org}");
        let refused = server.delete(&org_path, &admin).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_eq!(refused.json()["exc_type"], "LinkExistsError");
        assert_eq!(
            server
                .delete(&format!("/api/resource/Org%20Member/{member}"), &admin)
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "last Owner stays"
        );
        // Give the organization a second owner, then the first can go.
        let second = server.add_member(&org, "carol@example.com", "Owner").await;
        assert_eq!(
            server
                .delete(&format!("/api/resource/Org%20Member/{member}"), &admin)
                .await
                .status,
            StatusCode::OK
        );
        let second_path = format!("/api/resource/Org%20Member/{second}");
        assert_eq!(
            server
                .put(&second_path, &admin, &json!({"role": "Member"}))
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        sqlx::query("DELETE FROM org_member WHERE organization = $1")
            .bind(&org)
            .execute(server.app.db.pool())
            .await
            .unwrap();
        assert_eq!(server.delete(&org_path, &admin).await.status, StatusCode::OK);
        assert_eq!(server.get(&org_path, &admin).await.status, StatusCode::NOT_FOUND);
        server.stop().await;
    }

    async fn write_transactions_commit_or_roll_back_as_a_whole(db) {
        let server = TestServer::start(db).await;
        let database = &server.app.db;
        let insert = |name: &'static str| sqlx::query("INSERT INTO naming_series (prefix, current) VALUES ($1, 1)").bind(name);
        let mut abandoned = database.begin_tx().await.expect("begins");
        insert("rolled-back").execute(&mut *abandoned).await.unwrap();
        drop(abandoned);
        let mut committed = database.begin_tx().await.expect("begins");
        insert("committed").execute(&mut *committed).await.unwrap();
        database.commit(committed).await.expect("commits");
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT prefix FROM naming_series WHERE prefix IN ('rolled-back', 'committed')")
                .fetch_all(database.pool())
                .await
                .unwrap();
        assert_eq!(rows, [("committed".to_string(),)], "{:?}", db.backend);
        server.stop().await;
    }
}
