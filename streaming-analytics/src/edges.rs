//! The dependency model: which edges a set of spans of one trace makes.
//!
//! The streaming job applies it to each trace once the trace has been quiet
//! for the pairing wait, and the batch recomputation applies it to whole
//! traces read back from the span index, so both count by the same rules.
//!
//! Rules, in the order they are tried for each span `s`:
//! 1. `s` is a SERVER or CONSUMER span that shares its span id with a CLIENT
//!    or PRODUCER span (Zipkin's shared spans): one edge from the client's
//!    service to `s`'s service. Its parent reference is then not followed,
//!    because it points at the client's parent and would count the call twice.
//! 2. `s` references a parent span present in the trace: an edge from the
//!    parent's service to `s`'s service (CHILD_OF and FOLLOWS_FROM alike, as
//!    spark-dependencies counts them). An edge whose two ends are the same
//!    service is kept as [`SameService`] says: by default only for a real
//!    call to oneself.
//! 3. `s` is a root SERVER or CONSUMER span: an edge from `user`, if enabled.
//!
//! Independently, a CLIENT or PRODUCER span that nobody answered (no span
//! has it as parent, and none shares its id) makes an edge to the peer its
//! attributes name (`unknown` when none), if virtual nodes are enabled.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::span::{Connection, Kind, SpanFacts};

/// The node a root server span is called from.
pub const USER: &str = "user";
/// The node a calling span with no named peer calls.
pub const UNKNOWN: &str = "unknown";

/// Which parent/child pairs within one service make an edge.
///
/// Jaeger's rule (every parent/child pair) turns each outgoing call into a
/// self-loop: a SERVER span's CLIENT child is in the same service, so the
/// graph shows `frontend → frontend` as often as frontend calls anyone. The
/// default keeps only what a reader means by a call to oneself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameService {
    /// A CLIENT or PRODUCER span answered by a SERVER or CONSUMER span of
    /// the same service.
    #[default]
    Calls,
    /// Every parent/child pair, as Jaeger's dependency jobs count.
    All,
    /// No edge from a service to itself.
    None,
}

impl<'de> serde::Deserialize<'de> for SameService {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "calls" => Ok(SameService::Calls),
            "all" => Ok(SameService::All),
            "none" => Ok(SameService::None),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not one of calls (a call to oneself), all (Jaeger's rule) or none"
            ))),
        }
    }
}

impl SameService {
    /// Whether `caller → called`, both in one service, makes an edge.
    fn counts(self, caller: Kind, called: Kind) -> bool {
        match self {
            SameService::Calls => caller.calls_out() && called.is_called(),
            SameService::All => true,
            SameService::None => false,
        }
    }
}

/// Switches of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Which edges from a service to itself count.
    pub same_service: SameService,
    /// Unanswered client and producer spans make edges to their named peer.
    pub virtual_nodes: bool,
    /// Root server spans make edges from `user`.
    pub user_node: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            same_service: SameService::default(),
            virtual_nodes: true,
            user_node: true,
        }
    }
}

/// One call between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The calling node.
    pub client: Arc<str>,
    /// The called node.
    pub server: Arc<str>,
    /// How the two are connected.
    pub connection: Connection,
    /// When the call started, µs since the epoch: the calling span's start.
    pub time_micros: i64,
    /// Either side reported an error.
    pub error: bool,
    /// The calling span's duration, when the caller is a client or producer span.
    pub client_micros: Option<u64>,
    /// The called span's duration, when there is a called span.
    pub server_micros: Option<u64>,
}

/// What the spans of one trace make.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// The edges, in span order, then by rule.
    pub edges: Vec<Edge>,
    /// Client and producer spans nobody answered (whether or not virtual
    /// nodes turn them into edges).
    pub unpaired_calls: u64,
    /// Spans whose parent is not among the spans.
    pub orphan_spans: u64,
}

/// The edges the spans of one trace make (in span order, then by rule).
pub fn edges(spans: &[SpanFacts], rules: Rules) -> Vec<Edge> {
    analyse(spans, rules).edges
}

/// The edges of one trace, with the calls left unanswered and the spans
/// whose parent is missing, from one pass over the spans.
pub fn analyse(spans: &[SpanFacts], rules: Rules) -> Analysis {
    analyse_in(spans, rules, &mut Scratch::default())
}

/// Buffers [`analyse_in`] reuses from one trace to the next, so that the
/// streaming job, which analyses every trace once, allocates nothing for
/// the lookups.
#[derive(Debug, Default)]
pub struct Scratch {
    keys: Vec<(u64, usize)>,
    group_start: Vec<usize>,
    answered: Vec<bool>,
    /// The last analysis's edge vector, once its caller is done with it
    /// ([`Scratch::recycle`]).
    edges: Vec<Edge>,
}

impl Scratch {
    /// Spans' worth of room kept after a trace; a larger trace's buffers are
    /// released, so that one huge trace does not pin its memory.
    const KEEP: usize = 4096;

    /// Takes back an analysis's edge vector, emptied, for the next trace.
    pub fn recycle(&mut self, mut edges: Vec<Edge>) {
        if edges.capacity() <= Self::KEEP {
            edges.clear();
            self.edges = edges;
        }
    }
}

/// [`analyse`] with buffers kept between calls.
pub fn analyse_in(spans: &[SpanFacts], rules: Rules, scratch: &mut Scratch) -> Analysis {
    let Scratch {
        keys,
        group_start,
        answered,
        edges,
    } = scratch;
    let mut out = std::mem::take(edges);
    out.clear();
    let by_id = ById::new(spans, keys, group_start);
    // Per id, at its group's first position in `by_id`: a span with this id
    // is someone's parent or shares it with a called span.
    answered.clear();
    answered.resize(spans.len(), false);
    let analysis = analyse_with(spans, rules, &by_id, answered, out);
    if spans.len() > Scratch::KEEP {
        *scratch = Scratch::default();
    }
    analysis
}

fn analyse_with(
    spans: &[SpanFacts],
    rules: Rules,
    by_id: &ById<'_>,
    answered: &mut [bool],
    mut out: Vec<Edge>,
) -> Analysis {
    let mut orphan_spans = 0;
    let mut unpaired_calls = 0;
    for (i, span) in spans.iter().enumerate() {
        if by_id.is_repeat(i) {
            continue;
        }
        let shared_client = if span.kind.is_called() {
            by_id.spans(by_id.own_group(i)).find(|o| o.kind.calls_out())
        } else {
            None
        };
        if let Some(client) = shared_client {
            answered[by_id.group_start[i]] = true;
            push_call(&mut out, client, span, rules);
            continue;
        }
        let parent = span.parent_id.and_then(|id| {
            let group = by_id.group(id);
            // Of a shared pair, the server side is the parent of the
            // server's own children.
            let parent = by_id
                .spans(group.clone())
                .find(|c| c.kind.is_called())
                .or_else(|| by_id.spans(group.clone()).next());
            parent.map(|p| (p, group.start))
        });
        match parent {
            Some((parent, group)) => {
                if parent.kind.calls_out() {
                    answered[group] = true;
                }
                push_call(&mut out, parent, span, rules);
            }
            None if span.parent_id.is_none() && span.kind.is_called() && rules.user_node => {
                out.push(Edge {
                    client: node(&USER_NODE, USER),
                    server: span.service.clone(),
                    connection: Connection::Direct,
                    time_micros: span.start_micros,
                    error: span.error,
                    client_micros: None,
                    server_micros: Some(span.duration_micros),
                });
            }
            None => {
                orphan_spans += u64::from(span.parent_id.is_some());
            }
        }
    }
    for (i, span) in spans.iter().enumerate() {
        if span.kind.calls_out() && !answered[by_id.group_start[i]] && !by_id.is_repeat(i) {
            unpaired_calls += 1;
            if rules.virtual_nodes {
                let (server, connection) = span
                    .peer
                    .clone()
                    .unwrap_or_else(|| (node(&UNKNOWN_NODE, UNKNOWN), Connection::Virtual));
                out.push(Edge {
                    client: span.service.clone(),
                    server,
                    connection,
                    time_micros: span.start_micros,
                    error: span.error,
                    client_micros: Some(span.duration_micros),
                    server_micros: None,
                });
            }
        }
    }
    Analysis {
        edges: out,
        unpaired_calls,
        orphan_spans,
    }
}

static USER_NODE: OnceLock<Arc<str>> = OnceLock::new();
static UNKNOWN_NODE: OnceLock<Arc<str>> = OnceLock::new();

/// A fixed node's name, allocated once for the process rather than per edge.
fn node(cell: &'static OnceLock<Arc<str>>, name: &str) -> Arc<str> {
    Arc::clone(cell.get_or_init(|| Arc::from(name)))
}

/// The spans of a trace grouped by span id, spans sharing an id in their
/// trace order.
///
/// A trace is analysed once, with a few lookups per span: a sorted vector
/// of (id, position) pairs answers them from a few cache lines with two
/// allocations, where a map of id to spans cost a map and a vector per
/// span id. Sorting also leaves nothing for a sender's choice of ids to
/// degrade.
struct ById<'a> {
    spans: &'a [SpanFacts],
    /// (span id, position in `spans`), sorted: one group per id.
    keys: &'a [(u64, usize)],
    /// For each span, where its id's group starts in `keys`.
    group_start: &'a [usize],
}

impl<'a> ById<'a> {
    fn new(
        spans: &'a [SpanFacts],
        keys: &'a mut Vec<(u64, usize)>,
        group_start: &'a mut Vec<usize>,
    ) -> Self {
        keys.clear();
        keys.extend(spans.iter().enumerate().map(|(i, s)| (s.span_id, i)));
        // Positions are distinct, so this order is the stable one by id.
        keys.sort_unstable();
        group_start.clear();
        group_start.resize(spans.len(), 0);
        let mut start = 0;
        for (at, &(id, i)) in keys.iter().enumerate() {
            if id != keys[start].0 {
                start = at;
            }
            group_start[i] = start;
        }
        ById {
            spans,
            keys,
            group_start,
        }
    }

    /// Where the spans with `id` sit in `keys`.
    fn group(&self, id: u64) -> Range<usize> {
        self.run_from(self.keys.partition_point(|&(k, _)| k < id), id)
    }

    /// The group of the span at position `i`, without a search.
    fn own_group(&self, i: usize) -> Range<usize> {
        let start = self.group_start[i];
        self.run_from(start, self.keys[start].0)
    }

    /// The keys equal to `id` from `start` on.
    fn run_from(&self, start: usize, id: u64) -> Range<usize> {
        start..start + self.keys[start..].partition_point(|&(k, _)| k == id)
    }

    /// Whether the span at position `i` repeats an earlier one of the trace
    /// in every fact. A record sent twice (a client resending a request it
    /// was refused after a timeout, or the producer after a new epoch)
    /// carries such copies; the span index keeps one document for them (its
    /// ids hash the span), so they count once here too. A shared Zipkin span
    /// differs in kind, so both its halves count.
    fn is_repeat(&self, i: usize) -> bool {
        // The group is ordered by position: the earlier spans come first,
        // and a span that leads its group (nearly every one) repeats none.
        let start = self.group_start[i];
        if self.keys[start].1 == i {
            return false;
        }
        let span = &self.spans[i];
        self.keys[start..]
            .iter()
            .map(|&(_, j)| j)
            .take_while(|&j| j < i)
            .any(|j| self.spans[j] == *span)
    }

    /// The spans of a group, in trace order.
    fn spans(&self, group: Range<usize>) -> impl Iterator<Item = &'a SpanFacts> {
        let spans = self.spans;
        self.keys[group].iter().map(move |&(_, i)| &spans[i])
    }
}

fn push_call(out: &mut Vec<Edge>, caller: &SpanFacts, called: &SpanFacts, rules: Rules) {
    // Names read from one record share an allocation: compare pointers first.
    let same = Arc::ptr_eq(&caller.service, &called.service) || caller.service == called.service;
    if same && !rules.same_service.counts(caller.kind, called.kind) {
        return;
    }
    let connection = if caller.kind == Kind::Producer && called.kind == Kind::Consumer {
        Connection::Messaging
    } else {
        Connection::Direct
    };
    let caller_measures = caller.kind.calls_out();
    out.push(Edge {
        client: caller.service.clone(),
        server: called.service.clone(),
        connection,
        time_micros: caller.start_micros,
        error: called.error || (caller_measures && caller.error),
        client_micros: caller_measures.then_some(caller.duration_micros),
        server_micros: Some(called.duration_micros),
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use spanway_schemas::id_hashing::{IdMap, id_map, id_map_with_capacity};

    /// `analyse` as first written, with maps from id to spans: the sorted
    /// index must find the same edges.
    fn reference_analyse(spans: &[SpanFacts], rules: Rules) -> Analysis {
        let mut orphan_spans = 0;
        let mut unpaired_calls = 0;
        let mut by_id: IdMap<u64, Vec<&SpanFacts>> = id_map_with_capacity(spans.len());
        for span in spans {
            by_id.entry(span.span_id).or_default().push(span);
        }
        let mut answered: IdMap<u64, bool> = id_map();
        let mut out = Vec::new();
        let repeats: Vec<bool> = (0..spans.len())
            .map(|i| spans[..i].contains(&spans[i]))
            .collect();
        for (span, _) in spans.iter().zip(&repeats).filter(|(_, r)| !**r) {
            let shared_client = if span.kind.is_called() {
                by_id
                    .get(&span.span_id)
                    .and_then(|same| same.iter().find(|o| o.kind.calls_out()).copied())
            } else {
                None
            };
            if let Some(client) = shared_client {
                answered.insert(client.span_id, true);
                push_call(&mut out, client, span, rules);
                continue;
            }
            let parent = span.parent_id.and_then(|id| {
                by_id.get(&id).and_then(|candidates| {
                    // Of a shared pair, the server side is the parent of the
                    // server's own children.
                    candidates
                        .iter()
                        .find(|c| c.kind.is_called())
                        .or_else(|| candidates.first())
                        .copied()
                })
            });
            match parent {
                Some(parent) => {
                    if parent.kind.calls_out() {
                        answered.insert(parent.span_id, true);
                    }
                    push_call(&mut out, parent, span, rules);
                }
                None if span.parent_id.is_none() && span.kind.is_called() && rules.user_node => {
                    out.push(Edge {
                        client: Arc::from(USER),
                        server: span.service.clone(),
                        connection: Connection::Direct,
                        time_micros: span.start_micros,
                        error: span.error,
                        client_micros: None,
                        server_micros: Some(span.duration_micros),
                    });
                }
                None => {
                    orphan_spans += u64::from(span.parent_id.is_some());
                }
            }
        }
        for (span, _) in spans.iter().zip(&repeats).filter(|(_, r)| !**r) {
            if span.kind.calls_out() && !answered.contains_key(&span.span_id) {
                unpaired_calls += 1;
                if rules.virtual_nodes {
                    let (server, connection) = span
                        .peer
                        .clone()
                        .unwrap_or_else(|| (Arc::from(UNKNOWN), Connection::Virtual));
                    out.push(Edge {
                        client: span.service.clone(),
                        server,
                        connection,
                        time_micros: span.start_micros,
                        error: span.error,
                        client_micros: Some(span.duration_micros),
                        server_micros: None,
                    });
                }
            }
        }
        Analysis {
            edges: out,
            unpaired_calls,
            orphan_spans,
        }
    }

    /// A span for tests: trace 1, given id, parent, service and kind.
    pub(crate) fn facts(id: u64, parent: Option<u64>, service: &str, kind: Kind) -> SpanFacts {
        SpanFacts {
            trace_id: 1,
            span_id: id,
            parent_id: parent,
            service: Arc::from(service),
            kind,
            start_micros: 1_000_000 + id as i64,
            duration_micros: 100 * id,
            error: false,
            peer: None,
        }
    }

    fn pairs(edges: &[Edge]) -> Vec<(String, String, &'static str)> {
        edges
            .iter()
            .map(|e| {
                (
                    e.client.to_string(),
                    e.server.to_string(),
                    e.connection.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn client_server_call_is_one_edge_with_both_latencies() {
        let spans = [
            facts(1, None, "frontend", Kind::Server),
            facts(2, Some(1), "frontend", Kind::Client),
            facts(3, Some(2), "cart", Kind::Server),
        ];
        let out = edges(&spans, Rules::default());
        assert_eq!(
            pairs(&out),
            [
                ("user".into(), "frontend".into(), "direct"),
                ("frontend".into(), "cart".into(), "direct"),
            ]
        );
        let call = &out[1];
        assert_eq!(call.client_micros, Some(200));
        assert_eq!(call.server_micros, Some(300));
        assert_eq!(call.time_micros, spans[1].start_micros);
    }

    #[test]
    fn switches_remove_same_service_and_user_edges() {
        let spans = [
            facts(1, None, "frontend", Kind::Server),
            facts(2, Some(1), "frontend", Kind::Client),
            facts(3, Some(2), "cart", Kind::Server),
        ];
        let rules = Rules {
            same_service: SameService::None,
            virtual_nodes: true,
            user_node: false,
        };
        assert_eq!(
            pairs(&edges(&spans, rules)),
            [("frontend".into(), "cart".into(), "direct")]
        );
    }

    #[test]
    fn zipkin_shared_span_counts_once() {
        // Zipkin: client and server share id 2; both name 1 as parent.
        let spans = [
            facts(1, None, "frontend", Kind::Server),
            facts(2, Some(1), "frontend", Kind::Client),
            facts(2, Some(1), "cart", Kind::Server),
            facts(4, Some(2), "cart", Kind::Internal),
        ];
        let rules = Rules {
            user_node: false,
            ..Rules::default()
        };
        assert_eq!(
            pairs(&edges(&spans, rules)),
            [("frontend".into(), "cart".into(), "direct")]
        );
        let jaeger = Rules {
            same_service: SameService::All,
            ..rules
        };
        assert_eq!(
            pairs(&edges(&spans, jaeger)),
            [
                ("frontend".into(), "frontend".into(), "direct"),
                ("frontend".into(), "cart".into(), "direct"),
                ("cart".into(), "cart".into(), "direct"),
            ]
        );
    }

    #[test]
    fn jaegers_rule_turns_every_outgoing_call_into_a_self_loop() {
        // frontend serves a request, works internally, calls cart.
        let spans = [
            facts(1, None, "frontend", Kind::Server),
            facts(2, Some(1), "frontend", Kind::Internal),
            facts(3, Some(2), "frontend", Kind::Client),
            facts(4, Some(3), "cart", Kind::Server),
        ];
        let rules = |same_service| Rules {
            same_service,
            user_node: false,
            ..Rules::default()
        };
        assert_eq!(
            pairs(&edges(&spans, rules(SameService::All))),
            [
                ("frontend".into(), "frontend".into(), "direct"),
                ("frontend".into(), "frontend".into(), "direct"),
                ("frontend".into(), "cart".into(), "direct"),
            ]
        );
        for quiet in [SameService::Calls, SameService::None] {
            assert_eq!(
                pairs(&edges(&spans, rules(quiet))),
                [("frontend".into(), "cart".into(), "direct")],
                "{quiet:?}"
            );
        }
    }

    #[test]
    fn a_real_call_to_oneself_counts_by_default() {
        // frontend calls its own API (CLIENT → SERVER) and sends itself a
        // message (PRODUCER → CONSUMER); the INTERNAL child of the server
        // span is not a call.
        let spans = [
            facts(1, None, "frontend", Kind::Internal),
            facts(2, Some(1), "frontend", Kind::Client),
            facts(3, Some(2), "frontend", Kind::Server),
            facts(4, Some(3), "frontend", Kind::Internal),
            facts(5, Some(1), "frontend", Kind::Producer),
            facts(6, Some(5), "frontend", Kind::Consumer),
        ];
        let rules = |same_service| Rules {
            same_service,
            ..Rules::default()
        };
        let calls = edges(&spans, rules(SameService::Calls));
        assert_eq!(
            pairs(&calls),
            [
                ("frontend".into(), "frontend".into(), "direct"),
                ("frontend".into(), "frontend".into(), "messaging"),
            ]
        );
        assert_eq!(calls[0].client_micros, Some(200));
        assert_eq!(calls[0].server_micros, Some(300));
        assert_eq!(edges(&spans, rules(SameService::All)).len(), 5);
        assert!(edges(&spans, rules(SameService::None)).is_empty());
    }

    #[test]
    fn unanswered_calls_go_to_named_or_unknown_peers() {
        let mut db = facts(2, Some(1), "orders", Kind::Client);
        db.peer = Some((Arc::from("postgresql/orders"), Connection::Database));
        db.error = true;
        let spans = [
            facts(1, None, "orders", Kind::Internal),
            db,
            facts(3, Some(1), "orders", Kind::Producer),
        ];
        let rules = Rules {
            same_service: SameService::None,
            ..Rules::default()
        };
        let out = edges(&spans, rules);
        assert_eq!(
            pairs(&out),
            [
                ("orders".into(), "postgresql/orders".into(), "database"),
                ("orders".into(), "unknown".into(), "virtual"),
            ]
        );
        assert!(out[0].error);
        assert_eq!(out[0].server_micros, None);
        let off = Rules {
            virtual_nodes: false,
            ..rules
        };
        assert!(edges(&spans, off).is_empty());
    }

    #[test]
    fn producer_consumer_is_messaging_and_errors_come_from_either_side() {
        let mut consumer = facts(2, Some(1), "billing", Kind::Consumer);
        consumer.error = true;
        let spans = [facts(1, Some(99), "orders", Kind::Producer), consumer];
        let out = edges(&spans, Rules::default());
        assert_eq!(
            pairs(&out),
            [("orders".into(), "billing".into(), "messaging")]
        );
        assert!(out[0].error);
    }

    /// Traces from a small deterministic generator: few distinct ids, so
    /// shared ids, missing parents, self references and long candidate
    /// lists all occur.
    fn generated_traces() -> Vec<Vec<SpanFacts>> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let kinds = [
            Kind::Client,
            Kind::Server,
            Kind::Producer,
            Kind::Consumer,
            Kind::Internal,
        ];
        let services = ["frontend", "cart", "orders"];
        (0..3000)
            .map(|_| {
                let len = 1 + next(40);
                let ids = 1 + len / 2 + next(len);
                (0..len)
                    .map(|_| {
                        let parent = match next(5) {
                            0 => None,
                            _ => Some(next(ids + 2)),
                        };
                        let mut span = facts(
                            next(ids),
                            parent,
                            services[next(3) as usize],
                            kinds[next(5) as usize],
                        );
                        span.error = next(4) == 0;
                        if next(3) == 0 {
                            span.peer = Some((Arc::from("db"), Connection::Database));
                        }
                        span
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_sorted_index_finds_what_the_id_maps_found() {
        let mut edges_seen = 0;
        let mut unpaired = 0;
        let mut orphans = 0;
        let mut scratch = Scratch::default();
        for spans in generated_traces() {
            for same_service in [SameService::Calls, SameService::All, SameService::None] {
                for (virtual_nodes, user_node) in
                    [(true, true), (true, false), (false, true), (false, false)]
                {
                    let rules = Rules {
                        same_service,
                        virtual_nodes,
                        user_node,
                    };
                    let expected = reference_analyse(&spans, rules);
                    assert_eq!(analyse(&spans, rules), expected, "{spans:?} {rules:?}");
                    // Buffers left by the previous, different trace change nothing.
                    let reused = analyse_in(&spans, rules, &mut scratch);
                    assert_eq!(reused, expected, "{spans:?} {rules:?}");
                    edges_seen += expected.edges.len();
                    unpaired += expected.unpaired_calls;
                    orphans += expected.orphan_spans;
                }
            }
        }
        // The generator reaches every branch, not only the empty ones.
        assert!(edges_seen > 10_000 && unpaired > 1_000 && orphans > 1_000);
    }

    #[test]
    fn a_span_sent_twice_counts_once() {
        let client = facts(1, None, "frontend", Kind::Client);
        let server = facts(2, Some(1), "cart", Kind::Server);
        let lone = facts(3, None, "frontend", Kind::Client);
        let once = analyse(
            &[client.clone(), server.clone(), lone.clone()],
            Rules::default(),
        );
        assert_eq!(once.edges.len(), 2, "{once:?}");
        assert_eq!(once.unpaired_calls, 1);
        // Every span again, as a resent record brings them.
        let twice = analyse(
            &[
                client.clone(),
                server.clone(),
                lone.clone(),
                server.clone(),
                client.clone(),
                lone.clone(),
            ],
            Rules::default(),
        );
        assert_eq!(twice, once);
        // The same id with another start is another span: it counts.
        let mut later = server.clone();
        later.start_micros += 1;
        let both = analyse(&[client, server, later], Rules::default());
        assert_eq!(pairs(&both.edges).len(), 2, "{both:?}");
    }

    #[test]
    fn a_missing_parent_makes_no_edge() {
        let spans = [facts(5, Some(4), "cart", Kind::Server)];
        assert!(edges(&spans, Rules::default()).is_empty());
    }
}
