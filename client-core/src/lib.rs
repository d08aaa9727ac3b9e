//! Tandem's client engine. The local store, the edit API and the sync loop are built here by
//! the client issue; until then this crate only names its place in the workspace.
