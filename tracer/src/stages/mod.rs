//! Stages: what runs between correlation and the outputs. A stage sees
//! every event of the session, filtered or not, and may add events of its
//! own (the guard's violations, restorations and commands). The outputs
//! then only fan out to the sinks. `session::pipeline` runs the stages in
//! front of the outputs.
use crate::event::Event;

/// One stage of the pipeline.
pub trait Stage {
    /// An event of the session; the events it gives rise to.
    fn event(&mut self, e: &Event) -> Vec<Event>;
    /// The starting state is known (the snapshot is complete).
    fn start(&mut self) -> Vec<Event>;
    /// Timers (grace periods, commands that finished).
    fn tick(&mut self) -> Vec<Event>;
    /// When `tick` next has something to do, if the stage knows (between
    /// the session's regular ticks).
    fn due(&self) -> Option<std::time::Instant> {
        None
    }
}
