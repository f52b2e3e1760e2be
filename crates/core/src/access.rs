//! Roles and scopes: what a member's role allows, and which scopes only operator keys carry.

/// Every scope of SPEC section 3.
pub const SCOPES: [&str; 8] = [
    "credits:read",
    "credits:write",
    "usage:write",
    "usage:read",
    "team:manage",
    "budgets:manage",
    "webhooks:manage",
    "accounts:manage",
];

/// Scopes only operator keys may carry: creating and voiding credits, managing accounts.
pub const OPERATOR_ONLY_SCOPES: [&str; 2] = ["credits:write", "accounts:manage"];

/// The scopes an account key may carry at most.
pub const ACCOUNT_SCOPES: [&str; 6] = [
    "credits:read",
    "usage:write",
    "usage:read",
    "team:manage",
    "budgets:manage",
    "webhooks:manage",
];

const _: () = assert!(ACCOUNT_SCOPES.len() + OPERATOR_ONLY_SCOPES.len() == SCOPES.len());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    /// Every value, in the order the API documents them; `parse` reads `as_str` back.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|value| value.as_str() == text)
    }

    /// The default scopes of a role, which are also the most a key bound to the member may carry.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Role::Owner | Role::Admin => &ACCOUNT_SCOPES,
            Role::Member => &["credits:read", "usage:read", "usage:write"],
            Role::Viewer => &["credits:read", "usage:read"],
        }
    }
}

pub fn scope_known(scope: &str) -> bool {
    SCOPES.contains(&scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_never_carry_operator_scopes() {
        for role in [Role::Owner, Role::Admin, Role::Member, Role::Viewer] {
            for scope in role.scopes() {
                assert!(ACCOUNT_SCOPES.contains(scope), "{role:?} {scope}");
                assert!(!OPERATOR_ONLY_SCOPES.contains(scope), "{role:?} {scope}");
            }
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
