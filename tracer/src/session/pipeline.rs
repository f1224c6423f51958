//! The stages, then the outputs: every event of a session goes through each
//! stage (which may derive events of its own), then to the outputs.
use anyhow::Result;

use crate::{event::Event, output::fanout::Outputs, stages::Stage};

/// The stages, then the outputs.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    out: Outputs,
}

impl Pipeline {
    pub fn new(out: Outputs) -> Self {
        Pipeline {
            stages: Vec::new(),
            out,
        }
    }

    pub fn with_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Whether the session should start with a snapshot of the state.
    /// Whether a stage is in it (the guard, which reloads on SIGHUP).
    pub fn has_stages(&self) -> bool {
        !self.stages.is_empty()
    }

    pub fn wants_state(&self) -> bool {
        !self.stages.is_empty() || self.out.wants_state()
    }

    /// An event: through every stage, then (if the filters pass it) to the
    /// outputs, followed by what the stages derived from it (unfiltered).
    pub fn write(&mut self, e: &Event) -> Result<()> {
        let derived: Vec<Event> = self.stages.iter_mut().flat_map(|s| s.event(e)).collect();
        self.out.write(e)?;
        derived.iter().try_for_each(|d| self.out.deliver(d))
    }

    /// The snapshot is complete.
    pub fn start(&mut self) -> Result<()> {
        let due: Vec<Event> = self.stages.iter_mut().flat_map(|s| s.start()).collect();
        due.iter().try_for_each(|e| self.out.deliver(e))
    }

    /// Packets of loops for the pcap file (no stage looks at them).
    pub fn capture(&mut self, packets: Vec<(i128, std::sync::Arc<[u8]>)>) -> Result<()> {
        self.out.capture(packets)
    }

    pub fn tick(&mut self) -> Result<()> {
        let due: Vec<Event> = self.stages.iter_mut().flat_map(|s| s.tick()).collect();
        due.iter().try_for_each(|e| self.out.deliver(e))
    }

    /// When a stage next has something to do.
    pub fn due(&self) -> Option<std::time::Instant> {
        self.stages.iter().filter_map(|s| s.due()).min()
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()
    }

    pub fn close(&mut self) -> Result<()> {
        self.out.close()
    }

    /// Whether no one reads the events any more.
    pub fn closed(&self) -> bool {
        self.stages.is_empty() && self.out.closed()
    }
}
