//! The pool's status file (`pool-ID.json`), for `status` and `stop`.

use super::*;

impl Host {
    pub(super) fn status_json(&self) -> Vec<u8> {
        let views = self.mux.instances();
        let epoch = |t: Option<Instant>| {
            t.map(|t| {
                let ago = t.elapsed();
                SystemTime::now()
                    .checked_sub(ago)
                    .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs())
            })
        };
        let instances = views
            .iter()
            .map(|v| {
                let inst = self.instances.get(&v.id);
                InstanceStatus {
                    id: v.id,
                    runner: inst.and_then(|i| i.runner),
                    class: v.class.clone(),
                    shareable: v.shareable,
                    clients: v.clients.iter().filter_map(|c| self.clients.get(c).and_then(|c| c.who.clone())).collect(),
                    idle_since: epoch(inst.and_then(|i| i.idle_since)),
                }
            })
            .collect();
        let status = PoolStatus {
            version: 1,
            pool: self.cfg.key.id(),
            host: self.cfg.me,
            name: self.cfg.name.clone(),
            command: self.cfg.launch.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            idle_timeout: self.cfg.idle_timeout.as_secs(),
            instances,
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }
}
