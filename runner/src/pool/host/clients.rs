//! The host's side of its relays: accepting them (same user only), their
//! hello, reading their lines into the multiplexer, writing what it sends
//! them, and dropping one that leaves too much unread.

use super::*;

impl Host {
    pub(super) fn accept(&mut self, listener: &UnixListener) {
        loop {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
                // Out of descriptors (or memory): the listener stays
                // readable, so polling it again at once would spin. Pause.
                Err(e) => {
                    tracing::warn!("cannot accept a relay ({e}): not accepting for {ACCEPT_PAUSE:?}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            };
            let pending = self.clients.values().filter(|c| c.who.is_none()).count();
            if pending >= MAX_PENDING_HELLOS {
                tracing::warn!("{pending} connections have not said hello yet: refused one more");
                continue;
            }
            let uid = crate::os::peer_uid(stream.as_fd());
            let me = nix::unistd::Uid::effective().as_raw();
            if uid.as_ref().ok() != Some(&me) {
                tracing::warn!("refused a connection from uid {uid:?}: the pool serves uid {me} only");
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_client;
            self.next_client += 1;
            let client = Client {
                stream,
                reader: LineReader::new(wire::MAX_HELLO),
                out: OutQueue::default(),
                who: None,
                closing: false,
                placed: false,
                held: VecDeque::new(),
                accepted: Instant::now(),
                done_sending: None,
            };
            self.clients.insert(id, client);
        }
    }

    pub(super) fn read_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        let n = match c.stream.read(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 {
            // The client closed its side: it is owed the answers to what it
            // sent (a client may write its requests and close stdin at once).
            // It is detached once they are delivered, or after `grace`.
            if c.who.is_some() && c.done_sending.is_none() {
                c.done_sending = Some(Instant::now());
                self.settle_clients(Instant::now());
            } else {
                self.client_gone(id, "closed its connection");
            }
            return;
        }
        let mut admitted = c.who.is_some();
        // The hello is the first line; what follows it in the same read is
        // the client's JSON-RPC, framed under the message cap.
        let data = &self.scratch[..n];
        let mut rest: &[u8] = data;
        if !admitted {
            let mut hello = None;
            let cut = memchr::memchr(b'\n', data).map_or(data.len(), |p| p + 1);
            c.reader.feed(&data[..cut], &mut |f| {
                hello = Some(match f {
                    Frame::Line(l) => l.to_vec(),
                    Frame::Oversized => Vec::new(),
                })
            });
            rest = &data[cut..];
            if let Some(line) = hello {
                match self.cfg.check_hello(&line) {
                    Ok(who) => {
                        c.out.push_line(&Reply::accept().json());
                        c.who = Some(who);
                        c.reader = LineReader::new(MAX_CLIENT_MESSAGE);
                        admitted = true;
                        self.mux.connect(id);
                        self.served = true;
                        self.changed = true;
                    }
                    Err(why) => {
                        tracing::warn!("refused a relay: {why}");
                        c.out.push_line(&Reply::refuse(why).json());
                        c.closing = true;
                        rest = &[];
                    }
                }
            }
        }
        if admitted {
            // Lines go to the multiplexer straight from the read buffer
            // while it takes more from this client; once the client is at
            // its in-flight cap the rest of this read waits in `held` (and
            // nothing more is read from it) until answers drain.
            let (mux, actions) = (&mut self.mux, &mut self.actions);
            let held = &mut c.held;
            let mut placed = c.placed;
            c.reader.feed(rest, &mut |f| {
                if !held.is_empty() || !mux.may_read(id) {
                    held.push_back(match f {
                        Frame::Line(l) => Some(l.to_vec()),
                        Frame::Oversized => None,
                    });
                    return;
                }
                match f {
                    Frame::Line(l) => {
                        // The first message places the client on an
                        // instance: the status file shows it from then on.
                        placed = true;
                        mux.from_client(id, l, actions);
                    }
                    Frame::Oversized => mux.oversized(id, actions),
                }
            });
            self.changed |= placed != c.placed;
            c.placed = placed;
        }
        self.apply();
        self.flush_client(id);
    }

    /// Hands held lines to the multiplexer as far as each client's
    /// in-flight cap allows again.
    pub(super) fn release_held(&mut self) {
        let waiting: Vec<ClientId> =
            self.clients.iter().filter(|(_, c)| !c.held.is_empty()).map(|(&id, _)| id).collect();
        for id in waiting {
            while self.mux.may_read(id) {
                let Some(c) = self.clients.get_mut(&id) else { break };
                let Some(line) = c.held.pop_front() else { break };
                match line {
                    Some(l) => self.mux.from_client(id, &l, &mut self.actions),
                    None => self.mux.oversized(id, &mut self.actions),
                }
            }
        }
        self.apply();
    }

    pub(super) fn flush_client(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else { return };
        match c.out.flush(&mut c.stream) {
            Ok(true) if c.closing => {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                self.clients.remove(&id);
                self.changed = true;
            }
            Ok(_) if c.out.len() > MAX_CLIENT_BACKLOG => {
                // Closing is the error it gets: its relay tells the client
                // once it reads again.
                let why = format!("left {} bytes unread: dropped as too slow", c.out.len());
                tracing::warn!("client {id}: {why}");
                self.client_gone(id, &why);
            }
            Ok(_) => {}
            Err(_) => self.client_gone(id, "stopped reading (connection lost)"),
        }
    }

    /// Detaches clients that closed their side once nothing is owed them
    /// (or `grace` after they closed), and drops connections that never
    /// said hello within `HELLO_TIMEOUT`.
    pub(super) fn settle_clients(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (&id, c) in &self.clients {
            if let Some(at) = c.done_sending {
                let owed = self.mux.owed(id) + c.held.len();
                if owed == 0 && c.out.is_empty() {
                    gone.push((id, "closed its side; every answer delivered".to_owned()));
                } else if now >= at + self.cfg.grace {
                    gone.push((id, format!("closed its side; {owed} answers still owed after {:?}", self.cfg.grace)));
                }
            } else if c.who.is_none() && now >= c.accepted + HELLO_TIMEOUT {
                tracing::warn!("client {id} sent no hello within {HELLO_TIMEOUT:?}: dropped");
                gone.push((id, String::new()));
            }
        }
        for (id, why) in gone {
            self.client_gone(id, &why);
        }
    }

    /// The next time `settle_clients` has something to do.
    pub(super) fn next_settle(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(|c| match c.done_sending {
                Some(at) => Some(at + self.cfg.grace),
                None if c.who.is_none() => Some(c.accepted + HELLO_TIMEOUT),
                None => None,
            })
            .min()
    }

    pub(super) fn client_gone(&mut self, id: ClientId, why: &str) {
        if let Some(c) = self.clients.remove(&id) {
            if let Some(who) = &c.who {
                tracing::info!("client {id} (session {}, runner {}) {why}", who.session, who.runner.pid);
                self.mux.client_gone(id, &mut self.actions);
            }
            self.changed = true;
        }
        self.apply();
    }
}
