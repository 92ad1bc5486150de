//! The host's side of its instances: starting them, reading their lines
//! into the multiplexer, writing what it sends them, the idle timers, and
//! reaping their runners.

use super::*;

impl Host {
    pub(super) fn read_server(&mut self, id: InstanceId) {
        let Some(inst) = self.instances.get_mut(&id) else { return };
        let Some(stdout) = inst.stdout.as_mut() else { return };
        let n = match stdout.read(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 {
            // The runner closed its stdout: it is exiting (or gone).
            if let Some(mut inst) = self.instances.remove(&id) {
                inst.stdout = None;
                inst.stdin = None;
                self.exited.push(inst);
            }
            tracing::info!("instance {id} ended");
            self.mux.server_gone(id, &mut self.actions);
            self.changed = true;
            self.apply();
            return;
        }
        let mut lines = Vec::new();
        inst.reader.feed(&self.scratch[..n], &mut |f| match f {
            Frame::Line(l) => lines.push(l.to_vec()),
            Frame::Oversized => tracing::warn!("instance {id} sent a line over the cap: dropped"),
        });
        for l in lines {
            self.mux.from_server(id, &l, &mut self.actions);
        }
        self.apply();
    }

    pub(super) fn spawn(&mut self, id: InstanceId) {
        let tag = format!("{}:{id}", self.cfg.key.id());
        match Instance::spawn(&self.cfg.launch, &tag) {
            Ok(inst) => {
                tracing::info!("instance {id} started: runner {}", inst.child.id());
                self.instances.insert(id, inst);
            }
            Err(e) => {
                tracing::error!("cannot start instance {id}: {e}");
                self.mux.server_gone(id, &mut self.actions);
            }
        }
        self.changed = true;
    }

    pub(super) fn flush_server(&mut self, id: InstanceId) {
        let Some(inst) = self.instances.get_mut(&id) else { return };
        let Some(stdin) = inst.stdin.as_mut() else { return };
        if let Err(e) = inst.out.flush(stdin) {
            // The runner is going; its stdout's end tells the rest.
            tracing::warn!("instance {id}: cannot write to the server: {e}");
            inst.stop();
        }
    }

    /// Starts and stops the idle timers of instances without clients, and
    /// retires those whose timer ran out.
    pub(super) fn idle_timers(&mut self) {
        let now = Instant::now();
        let idle = self.mux.idle();
        for (id, inst) in self.instances.iter_mut() {
            let is_idle = idle.contains(id);
            match (is_idle, inst.idle_since) {
                (true, None) => {
                    inst.idle_since = Some(now);
                    self.changed = true;
                }
                (false, Some(_)) => {
                    inst.idle_since = None;
                    self.changed = true;
                }
                _ => {}
            }
        }
        let expired: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.stdin.is_some() && i.idle_since.is_some_and(|t| now >= t + self.cfg.idle_timeout))
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            tracing::info!("instance {id} idle for {:?}: retired", self.cfg.idle_timeout);
            self.mux.retire(id, &mut self.actions);
        }
        self.apply();
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        // Once passed, the first-client deadline wakes nothing any more.
        let first = (!self.served && now < self.first_client_by).then_some(self.first_client_by);
        let paused = self.accept_paused_until.filter(|&t| now < t);
        self.instances
            .values()
            .filter(|i| i.stdin.is_some())
            .filter_map(|i| i.idle_since)
            .map(|t| t + self.cfg.idle_timeout)
            .chain(first)
            .chain(self.tidy_at)
            .chain(paused)
            .chain(self.next_settle())
            .min()
    }

    /// Once a second while there is traffic, and once after it: buffers of
    /// quiet connections and instances shrink back to a few KiB.
    pub(super) fn tidy(&mut self, now: Instant, busy: bool) {
        match self.tidy_at {
            Some(t) if now >= t => {
                self.tidy_at = None;
                for c in self.clients.values_mut() {
                    c.reader.tidy();
                    c.out.tidy();
                }
                for i in self.instances.values_mut() {
                    i.reader.tidy();
                    i.out.tidy();
                }
            }
            None if busy => self.tidy_at = Some(now + TIDY_EVERY),
            _ => {}
        }
    }

    /// Reaps the runners of ended instances.
    pub(super) fn reap(&mut self) {
        self.exited.retain_mut(|inst| match inst.child.try_wait() {
            Ok(Some(status)) => {
                tracing::info!("instance runner {} exited: {status}", inst.child.id());
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    }
}
