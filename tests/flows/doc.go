// Package flows tests the phase-3 and phase-4 read and write flows of
// docs/architecture.md end to end, over HTTP, against real topologies
// brought up by the topology runner: rate limits shared by instances,
// read-your-writes while replicas lag, the stampede bound, no stale set, a
// Redis outage, tokens of deleted users, and the CDN tier's purges.
//
// It holds only tests; see flows_test.go for the shared topology.
package flows
