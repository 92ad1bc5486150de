//! PLACEHOLDER until the multiplexer lands: one instance, lines passed
//! through unchanged, server lines to every client. Single-client only.

pub type ClientId = u64;
pub type InstanceId = u64;

#[derive(Clone, Copy, Debug)]
pub enum Sharing {
    Auto,
    Always,
}

pub struct MuxConfig {
    pub sharing: Sharing,
    pub max_message: usize,
    pub max_in_flight: usize,
}

pub enum Action {
    ToClient(ClientId, Vec<u8>),
    ToServer(InstanceId, Vec<u8>),
    Spawn(InstanceId),
    Stop(InstanceId),
    Disconnect(ClientId),
    Log(String),
}

pub struct InstanceView {
    pub id: InstanceId,
    pub class: String,
    pub shareable: bool,
    pub clients: Vec<ClientId>,
}

pub struct Mux {
    clients: Vec<ClientId>,
    instance: Option<InstanceId>,
    next: InstanceId,
}

impl Mux {
    pub fn new(cfg: MuxConfig) -> Mux {
        let _ = (cfg.sharing, cfg.max_message, cfg.max_in_flight);
        Mux { clients: Vec::new(), instance: None, next: 1 }
    }
    pub fn connect(&mut self, c: ClientId) {
        self.clients.push(c);
    }
    pub fn from_client(&mut self, _c: ClientId, line: &[u8], out: &mut Vec<Action>) {
        let i = match self.instance {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next += 1;
                self.instance = Some(i);
                out.push(Action::Spawn(i));
                i
            }
        };
        out.push(Action::ToServer(i, line.to_vec()));
    }
    pub fn oversized(&mut self, c: ClientId, out: &mut Vec<Action>) {
        out.push(Action::ToClient(
            c,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"too big"}}"#.to_vec(),
        ));
    }
    pub fn client_gone(&mut self, c: ClientId, _out: &mut Vec<Action>) {
        self.clients.retain(|&x| x != c);
    }
    pub fn from_server(&mut self, _i: InstanceId, line: &[u8], out: &mut Vec<Action>) {
        for &c in &self.clients {
            out.push(Action::ToClient(c, line.to_vec()));
        }
    }
    pub fn server_gone(&mut self, _i: InstanceId, out: &mut Vec<Action>) {
        self.instance = None;
        for c in self.clients.drain(..) {
            out.push(Action::Disconnect(c));
        }
    }
    pub fn may_read(&self, _c: ClientId) -> bool {
        true
    }
    pub fn idle(&self) -> Vec<InstanceId> {
        if self.clients.is_empty() { self.instance.into_iter().collect() } else { Vec::new() }
    }
    pub fn retire(&mut self, i: InstanceId, out: &mut Vec<Action>) {
        self.instance = None;
        out.push(Action::Stop(i));
        out.push(Action::Log(format!("retired {i}")));
    }
    pub fn instances(&self) -> Vec<InstanceView> {
        self.instance
            .map(|id| InstanceView { id, class: "any".into(), shareable: true, clients: self.clients.clone() })
            .into_iter()
            .collect()
    }
}
