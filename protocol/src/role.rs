//! The role a member holds on a list, and the permission questions it answers.
//!
//! Stored as a small integer (the seed's `1 OWNER, 2 EDITOR, 3 VIEWER`), sent as the upper-case
//! name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A member's role on one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// Created the list; may do everything, including share and delete.
    Owner,
    /// May read and edit the list's title and items.
    Editor,
    /// May only read.
    Viewer,
}

/// A role name or number that is not one of the three roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected OWNER, EDITOR or VIEWER")]
pub struct UnknownRole(pub String);

impl Role {
    /// The seed's storage code: 1 OWNER, 2 EDITOR, 3 VIEWER.
    pub const fn code(self) -> i16 {
        match self {
            Role::Owner => 1,
            Role::Editor => 2,
            Role::Viewer => 3,
        }
    }

    /// The role for a storage code.
    pub fn from_code(code: i64) -> Result<Self, UnknownRole> {
        match code {
            1 => Ok(Role::Owner),
            2 => Ok(Role::Editor),
            3 => Ok(Role::Viewer),
            other => Err(UnknownRole(other.to_string())),
        }
    }

    /// The wire name: `"OWNER"`, `"EDITOR"` or `"VIEWER"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Editor => "EDITOR",
            Role::Viewer => "VIEWER",
        }
    }

    /// May change the title and the items.
    pub const fn can_edit(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }

    /// May share the list, change members' roles and remove other members.
    pub const fn can_share(self) -> bool {
        matches!(self, Role::Owner)
    }

    /// May delete the list for everyone.
    pub const fn can_delete(self) -> bool {
        matches!(self, Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses the wire name, ignoring ASCII case (`"editor"` is `EDITOR`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "OWNER" => Ok(Role::Owner),
            "EDITOR" => Ok(Role::Editor),
            "VIEWER" => Ok(Role::Viewer),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_the_role() {
        assert!(Role::Owner.can_edit() && Role::Owner.can_share() && Role::Owner.can_delete());
        assert!(Role::Editor.can_edit() && !Role::Editor.can_share() && !Role::Editor.can_delete());
        assert!(
            !Role::Viewer.can_edit() && !Role::Viewer.can_share() && !Role::Viewer.can_delete()
        );
    }

    #[test]
    fn codes_and_names_round_trip() {
        for role in [Role::Owner, Role::Editor, Role::Viewer] {
            assert_eq!(Role::from_code(role.code().into()).unwrap(), role);
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("ADMIN".parse::<Role>().is_err());
        assert!(Role::from_code(4).is_err());
    }
}
