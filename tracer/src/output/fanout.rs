//! Every event of a session that passes the filters goes through here once,
//! to each output: the metrics, the journal and the sink (stdout and
//! `--output`), and loop packets to the `--pcap` file. Stages (the guard)
//! run before, in `crate::stages`.
use std::sync::Arc;

use anyhow::Result;

use super::{filter::Filter, pcap::PcapSink, sink::Sink};
use crate::{
    event::{Body, Event, JournalHealth, Kind, Source, format_ts},
    journal::write::{Health, Journal},
    metrics::Metrics,
};

pub struct Outputs {
    pub sink: Sink,
    filter: Filter,
    pub journal: Option<Journal>,
    pub metrics: Option<Metrics>,
    /// `--pcap`: the packets of loops.
    pub pcap: Option<PcapSink>,
}

impl Outputs {
    pub fn new(sink: Sink, filter: Filter) -> Self {
        Outputs {
            sink,
            filter,
            journal: None,
            metrics: None,
            pcap: None,
        }
    }

    /// Whether the session should start with a snapshot of the state.
    pub fn wants_state(&self) -> bool {
        self.journal.is_some()
    }

    /// Packets of loops (wall-clock ns, bytes) to the pcap file, if any.
    pub fn capture(&mut self, packets: Vec<(i128, Arc<[u8]>)>) -> Result<()> {
        if let Some(sink) = self.pcap.as_mut() {
            for (unix_ns, bytes) in packets {
                sink.write(unix_ns, &bytes)?;
            }
        }
        Ok(())
    }

    /// An event, if the filters pass it.
    pub fn write(&mut self, e: &Event) -> Result<()> {
        if self.filter.pass(e) {
            self.deliver(e)?;
        }
        Ok(())
    }

    /// An event to every output, unfiltered (what a stage derived).
    pub fn deliver(&mut self, e: &Event) -> Result<()> {
        if let Some(m) = self.metrics.as_ref() {
            m.event(e);
        }
        if let Some(j) = self.journal.as_mut() {
            j.write_line(&crate::event::Host::this().json(e)?);
        }
        self.sink.write(e)
    }

    /// Push everything written so far out: to stdout, `--output` and the
    /// journal (which may report its own health as events).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(j) = self.journal.as_mut() {
            j.flush();
            let health = j.take_health();
            if let Some(m) = self.metrics.as_ref() {
                m.journal(j.stats());
            }
            for h in health {
                self.deliver(&health_event(h))?;
            }
            if let Some(j) = self.journal.as_mut() {
                j.flush();
            }
        }
        self.sink.flush()
    }

    /// At shutdown: flush and sync.
    pub fn close(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(j) = self.journal.as_mut() {
            j.close();
        }
        Ok(())
    }

    /// Whether no one reads the events any more.
    pub fn closed(&self) -> bool {
        self.sink.closed() && self.journal.is_none()
    }
}

fn health_event(h: Health) -> Event {
    let (kind, body) = match h {
        Health::Failed { path, error } => (
            Kind::JournalError,
            JournalHealth {
                path,
                error: Some(error),
                dropped: 0,
            },
        ),
        Health::Resumed { path, dropped } => (
            Kind::JournalResumed,
            JournalHealth {
                path,
                error: None,
                dropped,
            },
        ),
    };
    Event {
        ts: format_ts(chrono::Utc::now()),
        kind,
        source: Source::Tracer,
        body: Body::Journal(body),
    }
}
