//! Attaching and detaching an interface's tc programs as the arming wants
//! (`packet::arming`): tcx links, or classic tc filters where tcx is
//! missing. The tracepoint fallbacks serve every watched interface and
//! stay attached.
//!
//! Each tcx link waits for an RCU grace period in the kernel as it comes
//! and goes (11–13 ms to attach, 6–8 ms to close on the benchmark VM,
//! BENCHMARKS.md). Attaching is waited for (the programs are wanted now);
//! releasing happens on a thread of its own, and the next attach waits for
//! it (a program attached twice would see each packet twice).
use anyhow::Result;
use aya::programs::{SchedClassifier, tc::SchedClassifierLinkId};
use tracer_common::WatchKey;

use super::{
    classic_tc::ensure_clsact,
    loader::program,
    packet_hooks::{PacketHooks, TC_PROGRAMS, Via, attach_programs, in_namespace},
};
use crate::iface::IfaceSpec;

impl PacketHooks {
    /// Attaches (`on`) or detaches the tc programs of an interface watched
    /// by tc (tcx or classic); the tracepoints stay as they are.
    pub fn arm(&mut self, spec: &IfaceSpec, key: WatchKey, via: &mut Via, on: bool) -> Result<()> {
        let classic = match via {
            Via::Tc(_) => false,
            Via::Clsact(_) => true,
            Via::Tracepoint => return Ok(()),
        };
        if on == via.is_armed() {
            return Ok(());
        }
        if !on {
            match via {
                Via::Tc(links) => self.release_tcx(links.take()),
                Via::Clsact(filters) => {
                    let filters = filters.take();
                    self.release(move || drop(filters));
                }
                Via::Tracepoint => {}
            }
            return Ok(());
        }
        self.await_released();
        let (links, _) = in_namespace(
            spec,
            key,
            |ebpf| {
                if classic {
                    // Its qdisc stays, unless someone removed it.
                    ensure_clsact(&spec.name);
                }
                attach_programs(ebpf, spec, classic, false)
            },
            &mut self.ebpf,
        )?;
        match via {
            Via::Tc(l) => {
                let [rx, tx] = links;
                *l = Some((rx, tx));
            }
            Via::Clsact(f) => *f = Some(self.classic_filters(spec, links)?),
            Via::Tracepoint => {}
        }
        Ok(())
    }

    /// Detaches tcx links, on a thread of their own (when disarmed or
    /// unwatched; already gone when the interface was deleted).
    pub(super) fn release_tcx(
        &mut self,
        links: Option<(SchedClassifierLinkId, SchedClassifierLinkId)>,
    ) {
        let Some((rx, tx)) = links else { return };
        let mut owned = Vec::with_capacity(2);
        for ((prog, _), link) in TC_PROGRAMS.into_iter().zip([rx, tx]) {
            match program::<SchedClassifier>(&mut self.ebpf, prog)
                .and_then(|p| Ok(p.take_link(link)?))
            {
                Ok(l) => owned.push(l),
                Err(e) => log::warn!("detaching {prog}: {e:#}"),
            }
        }
        self.release(move || drop(owned));
    }

    /// Waits for the programs being released: a program attached twice
    /// would see each packet twice.
    pub(super) fn await_released(&mut self) {
        for t in self.releasing.drain(..) {
            let _ = t.join();
        }
    }

    /// Runs `drop` (what detaches) on a thread of its own.
    fn release(&mut self, drop: impl FnOnce() + Send + 'static) {
        self.releasing.retain(|t| !t.is_finished());
        self.releasing.push(std::thread::spawn(drop));
    }
}
