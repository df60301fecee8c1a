//! Node trust, the pure part: which files each node's container runtime
//! needs for the records (`plan`), and the report a node gives back
//! (`report`). Writing them on a node lives with the command.

pub mod plan;
pub mod report;

pub use plan::{Layout, Runtime};
