//! Minimum-cost flow by successive shortest paths with node potentials, routed one
//! supply node at a time (Dijkstra on reduced costs from that node, stopping at the sink).
//!
//! Written here because no crate fits: `pathfinding::kuhn_munkres` is a dense O(n³)
//! assignment (10,000 × 2,000 would not fit the 5-second goal), `mcmf` wraps C++ and is
//! unmaintained since 2018, and `rs-graph` is GPL.
//!
//! Costs must start non-negative, so zero potentials are valid. Routing each unit along a
//! shortest path from its own supply node keeps the flow minimum-cost for the supplies
//! routed so far (Ahuja, Magnanti and Orlin, ch. 9: successive shortest paths from any
//! excess node), and the search stays local: it settles only nodes nearer than the sink.
//! Every supply node needs a path to the sink; the matcher gives each request an
//! "unfilled" arc for that.

use std::{cmp::Reverse, collections::BinaryHeap};

/// Index of an arc, as `add_edge` returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeId(usize);

#[derive(Debug, Clone)]
struct Edge {
    to: usize,
    capacity: i64,
    cost: i64,
}

/// A flow network; each arc is stored beside its residual twin (index `id ^ 1`).
#[derive(Debug, Clone, Default)]
pub struct Network {
    adjacency: Vec<Vec<usize>>,
    edges: Vec<Edge>,
    original_capacity: Vec<i64>,
    search: Search,
}

/// Dijkstra's working state, kept between searches so each costs only what it touches.
#[derive(Debug, Clone, Default)]
struct Search {
    potential: Vec<i64>,
    distance: Vec<i64>,
    previous_edge: Vec<usize>,
    settled: Vec<bool>,
    touched: Vec<usize>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

/// A supply node with no path left to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no path to the sink")]
pub struct NoPath;

impl Network {
    /// A network of `nodes` nodes and no arcs.
    pub fn new(nodes: usize) -> Self {
        Self {
            adjacency: vec![Vec::new(); nodes],
            ..Self::default()
        }
    }

    /// Adds a node and returns its index.
    pub fn add_node(&mut self) -> usize {
        self.adjacency.push(Vec::new());
        self.adjacency.len() - 1
    }

    /// Adds an arc `from → to` carrying at most `capacity` units at `cost` (at least 0)
    /// each. Add every arc before the first `route`.
    pub fn add_edge(&mut self, from: usize, to: usize, capacity: i64, cost: i64) -> EdgeId {
        debug_assert!(cost >= 0, "costs start non-negative");
        let id = self.edges.len();
        self.edges.push(Edge { to, capacity, cost });
        self.edges.push(Edge {
            to: from,
            capacity: 0,
            cost: -cost,
        });
        self.original_capacity.push(capacity);
        self.adjacency[from].push(id);
        self.adjacency[to].push(id + 1);
        EdgeId(id)
    }

    /// The flow on an arc after `solve`.
    pub fn flow(&self, edge: EdgeId) -> i64 {
        self.original_capacity[edge.0 / 2] - self.edges[edge.0].capacity
    }

    /// Routes `units` from `from` to `sink`, each along a cheapest path, and returns the
    /// cost. Deterministic: the heap breaks distance ties by node index, so the same
    /// network built and routed in the same order gives the same flow.
    pub fn route(&mut self, from: usize, sink: usize, units: i64) -> Result<i64, NoPath> {
        let mut cost = 0;
        let mut left = units;
        while left > 0 {
            let path_cost = self.shortest_path(from, sink).ok_or(NoPath)?;
            let mut bottleneck = left;
            let mut node = sink;
            while node != from {
                let id = self.search.previous_edge[node];
                bottleneck = bottleneck.min(self.edges[id].capacity);
                node = self.edges[id ^ 1].to;
            }
            let mut node = sink;
            while node != from {
                let id = self.search.previous_edge[node];
                self.edges[id].capacity -= bottleneck;
                self.edges[id ^ 1].capacity += bottleneck;
                node = self.edges[id ^ 1].to;
            }
            left -= bottleneck;
            cost += bottleneck * path_cost;
        }
        Ok(cost)
    }

    /// Dijkstra on reduced costs from `from` until the sink is settled; moves the settled
    /// nodes' potentials so every residual arc keeps a non-negative reduced cost, and
    /// returns the path's real cost. The path is left in `search.previous_edge`.
    fn shortest_path(&mut self, from: usize, sink: usize) -> Option<i64> {
        let nodes = self.adjacency.len();
        let search = &mut self.search;
        if search.distance.len() != nodes {
            search.distance = vec![i64::MAX; nodes];
            search.previous_edge = vec![usize::MAX; nodes];
            search.settled = vec![false; nodes];
            search.potential.resize(nodes, 0);
        }
        for &node in &search.touched {
            search.distance[node] = i64::MAX;
            search.settled[node] = false;
        }
        search.touched.clear();
        search.heap.clear();
        search.distance[from] = 0;
        search.touched.push(from);
        search.heap.push(Reverse((0_i64, from)));
        while let Some(Reverse((reduced, node))) = search.heap.pop() {
            if search.settled[node] {
                continue;
            }
            search.settled[node] = true;
            if node == sink {
                break;
            }
            for &id in &self.adjacency[node] {
                let edge = &self.edges[id];
                if edge.capacity == 0 || search.settled[edge.to] {
                    continue;
                }
                let candidate =
                    reduced + edge.cost + search.potential[node] - search.potential[edge.to];
                if candidate < search.distance[edge.to] {
                    if search.distance[edge.to] == i64::MAX {
                        search.touched.push(edge.to);
                    }
                    search.distance[edge.to] = candidate;
                    search.previous_edge[edge.to] = id;
                    search.heap.push(Reverse((candidate, edge.to)));
                }
            }
        }
        if !search.settled[sink] {
            return None;
        }
        let to_sink = search.distance[sink];
        let path_cost = to_sink + search.potential[sink] - search.potential[from];
        // Settled nodes move by d - d(sink), the rest by nothing: the same as moving every
        // node by min(d, d(sink)) less a constant, which keeps reduced costs non-negative.
        for &node in &search.touched {
            if search.settled[node] {
                search.potential[node] += search.distance[node] - to_sink;
            }
        }
        Some(path_cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_unit_reroutes_an_earlier_one() {
        // Two requests (1, 2), two ambassadors (3, 4), costs as 10 minus the score. The
        // first request alone takes its cheapest (3); when the second arrives, whose only
        // good option is 3, the first is moved to 4: total 1 + 2 = 3, not 0 + 9.
        let mut network = Network::new(5);
        let sink = 0;
        let a = network.add_edge(1, 3, 1, 0);
        let b = network.add_edge(1, 4, 1, 1);
        let c = network.add_edge(2, 3, 1, 2);
        let d = network.add_edge(2, 4, 1, 9);
        network.add_edge(3, sink, 1, 0);
        network.add_edge(4, sink, 1, 0);
        assert_eq!(network.route(1, sink, 1), Ok(0));
        assert_eq!(network.route(2, sink, 1), Ok(3));
        assert_eq!([a, b, c, d].map(|edge| network.flow(edge)), [0, 1, 1, 0]);
    }

    #[test]
    fn parallel_arcs_fill_cheapest_first() {
        let mut network = Network::new(3);
        network.add_edge(1, 2, 3, 1);
        let cheap = network.add_edge(2, 0, 1, 0);
        let dear = network.add_edge(2, 0, 1, 8);
        network.add_edge(2, 0, 1, 4);
        assert_eq!(network.route(1, 0, 2), Ok(1 + 1 + 4));
        assert_eq!((network.flow(cheap), network.flow(dear)), (1, 0));
    }

    #[test]
    fn a_supply_with_no_way_out_is_an_error() {
        let mut network = Network::new(3);
        network.add_edge(1, 2, 4, 2);
        assert_eq!(network.route(1, 0, 1), Err(NoPath));
    }
}
