// Package cluster is hopwatch-proxy's cluster manager: it turns the
// configured clusters into live upstream services, each with its host set,
// load balancer and pooled HTTP transport.
//
// The vocabulary is Envoy's. A [Manager] owns the clusters of one
// configuration; a hot reload builds a new Manager from the previous one and
// carries every unchanged [Cluster] over as the same object, so its warm
// connections, host state and DNS loop survive the reload. A Cluster's host
// set is an immutable snapshot swapped atomically when DNS answers change, so
// [Cluster.Pick] never takes a lock to read it.
//
// Picking a host runs in two stages, as in Envoy's load balancer:
//
//  1. a filter stage builds the candidate hosts: healthy hosts, or all hosts
//     when too few are healthy (the panic threshold), minus the hosts this
//     request already tried (the previous_hosts retry predicate). Zone-aware
//     routing belongs to this stage too.
//  2. a balancer (round_robin, least_request, random, or ring_hash and
//     maglev, which choose by the request hash) chooses one candidate. The
//     policies are listed in one table, lbPolicies (balancer.go).
//
// Every connection to an upstream is made in dial.go, which wraps dial and
// TLS handshake failures in [*ConnectError] and reports each attempt to an
// optional [DialObserver], the hook for upstream connection stats.
package cluster
