// Package loadgen puts HTTP load on a system and measures what it sees:
// executors that decide when operations start, a lean HTTP/1.1 client,
// latency recorded in HDR histograms, errors by class, a per-second series,
// and live progress. It knows HTTP and nothing of the server it tests.
//
// # Driving a run
//
// A driver describes the load as operations with weights and an executor,
// and calls Run:
//
//	res, err := loadgen.Run(ctx, loadgen.Config{
//		Target: "http://127.0.0.1:8080",
//		Ops: []loadgen.Op{
//			{Name: "read user", Weight: 95, Do: readUser},
//			{Name: "update user", Weight: 5, Do: updateUser},
//		},
//		Executor: loadgen.ConstantArrivalRate{Rate: 2000, Duration: time.Minute},
//		Seed:     1,
//		Observer: progress, // loadgen.NewProgress(os.Stderr)
//	})
//
// where an operation issues its requests through the worker's Client:
//
//	func readUser(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
//		id := ids[s.Rand.IntN(len(ids))]
//		_, err := c.Do(&loadgen.Request{Name: "GET /api/users/{id}", Path: "/api/users/" + id})
//		return err
//	}
//
// # Open and closed models
//
// ConstantArrivalRate, RampingArrivalRate and ArrivalRate are open models,
// like k6's executors of the same names and like real traffic: operations
// arrive on a schedule (a Pacer) whatever the server does, each on a free
// worker of a bounded Pool. ConstantVUs is a closed model: N virtual users
// each send their next operation when the previous one has finished, so
// they slow down with the server, as wrk does.
//
// The difference matters for latency. A closed-model generator waiting for
// a slow response does not send the requests it would have sent meanwhile,
// so the slowness is recorded once instead of for every user it would have
// hit ("coordinated omission"). The open-model executors measure every
// latency from the operation's scheduled start, so a request that had to
// wait for a worker, or for the server to come back from a stall, is
// charged for the wait. When no worker is free within the pool's MaxDelay
// the arrival is dropped and counted (Result.Dropped), so that the rate the
// server really saw is never silently lower than the rate asked for.
//
// # What is recorded
//
// Each request is recorded under its name (Request.Name, or the operation's
// name), each operation under its own; Result.Total merges all requests.
// Latencies go to HDR histograms of microseconds (1µs..60s, 3 significant
// digits) that merge exactly, across workers and across runs
// (Result.Merge). A 429 is throttled, not an error; failures are counted by
// class (ClassTimeout, ClassRefused, ClassReset, "http 503", ClassCheck...).
// Operations can count events of their own, such as stale reads, with
// Session.Counter.
//
// # Cost
//
// The generator usually shares a few cores with the server, so its cost per
// request is kept low: one connection per worker, one write per request, a
// response parser that copies nothing it does not need, and recording into
// sharded histograms without a global lock. TestVsWrk (make loadgen-vs-wrk)
// measures its CPU per request against wrk's on the same handler, each in
// a process of its own; docs/loadgen.md has the method, the numbers and
// where the CPU goes. BenchmarkClientVsWrk compares the rates.
package loadgen
