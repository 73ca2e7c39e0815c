//! `roles`: which parts of the runtime a process runs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A role a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// HTTP API.
    Api,
    /// Socket.IO gateway.
    Realtime,
    /// Job workers.
    Worker,
    /// Cron scheduler.
    Scheduler,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 4] = [Role::Api, Role::Realtime, Role::Worker, Role::Scheduler];

    /// The role's name in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Realtime => "realtime",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }
}

/// The set of roles a process runs; written `api,realtime,worker,scheduler` or as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// All four roles (the default).
    pub fn all() -> Self {
        Self(Role::ALL.to_vec())
    }

    /// Whether `role` is enabled.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Parses a comma-separated list such as `api,worker`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut roles = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == part)
                .ok_or_else(|| format!("unknown role '{part}' (expected api, realtime, worker or scheduler)"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            return Err("at least one role is required".into());
        }
        Ok(Self(roles))
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            One(String),
            Many(Vec<String>),
        }
        let text = match Text::deserialize(deserializer)? {
            Text::One(s) => s,
            Text::Many(list) => list.join(","),
        };
        Roles::parse(&text).map_err(serde::de::Error::custom)
    }
}
