//! The subcommands that run a session or inspect the machine: each builds
//! what it needs (outputs, stages) and hands it to `session`, or answers
//! directly. `report` and `explain`, which read journals, are folders of
//! their own.
pub mod doctor;
pub mod gendocs;
pub mod guard;
pub mod record;
pub mod walk_check;
pub mod watch;
