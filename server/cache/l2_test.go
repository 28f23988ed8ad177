package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"scalelab/internal/breaker"
	"scalelab/internal/redisserver/redistest"
)

// mustL2 returns an L2 on a fresh client for addrs, closed when the test
// ends, with the test's registry for its metrics.
func mustL2(t *testing.T, addrs []string, o L2Options) (*L2, redis.UniversalClient) {
	t.Helper()
	rdb, err := NewRedisClient(RedisOptions{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	if o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer = reg
		o.Metrics = NewMetrics(reg)
	}
	c, err := NewL2(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		_ = rdb.Close()
	})
	return c, rdb
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.GetCounter().GetValue()
	default:
		return d.GetGauge().GetValue()
	}
}

func TestL2GetFill(t *testing.T) {
	r := redistest.Start(t)
	c, rdb := mustL2(t, []string{r.Addr()}, L2Options{TTL: time.Minute})
	testGetFill(t, c, rdb)
}

func testGetFill(t *testing.T, c *L2, rdb redis.UniversalClient) {
	ctx := context.Background()
	key := fmt.Sprintf("user-%d", time.Now().UnixNano())
	if _, _, ok := c.Get(ctx, key); ok {
		t.Fatal("Get on an empty cache hit")
	}
	if r := c.Fill(ctx, key, []byte("v3 data"), 3); r != FillStored {
		t.Fatalf("Fill(v3) = %v, want stored", r)
	}
	data, v, ok := c.Get(ctx, key)
	if !ok || string(data) != "v3 data" || v != 3 {
		t.Fatalf("Get = (%q, %d, %v), want (v3 data, 3, true)", data, v, ok)
	}
	if r := c.Fill(ctx, key, []byte("v3 data"), 3); r != FillPresent {
		t.Errorf("Fill(v3) again = %v, want present", r)
	}
	if r := c.Fill(ctx, key, []byte("v2 data"), 2); r != FillStale {
		t.Errorf("Fill(v2) over v3 = %v, want stale", r)
	}
	if r := c.Fill(ctx, key, []byte("v4 data"), 4); r != FillStored {
		t.Errorf("Fill(v4) over v3 = %v, want stored", r)
	}
	if _, v, _ := c.Get(ctx, key); v != 4 {
		t.Errorf("version after Fill(v4) = %d", v)
	}
	// Binary data survives.
	bin := []byte{0, 1, 2, 255, '\n', 0}
	if r := c.Fill(ctx, key+"-bin", bin, 1); r != FillStored {
		t.Fatalf("Fill(binary) = %v", r)
	}
	if got, _, _ := c.Get(ctx, key+"-bin"); string(got) != string(bin) {
		t.Errorf("binary round trip = %v, want %v", got, bin)
	}
	// TTL is one minute ± 10%.
	ttl, err := rdb.PTTL(ctx, c.redisKey(key)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 54*time.Second || ttl > 66*time.Second {
		t.Errorf("entry TTL = %v, want 1m ± 10%%", ttl)
	}
	if h, m := value(c.m.hits), value(c.m.misses); h < 3 || m < 1 {
		t.Errorf("hits, misses = %v, %v", h, m)
	}
}

// TestL2NoStaleSet forces the interleaving of the memcache paper's stale
// set: a reader loads v1, a writer commits v2 and invalidates, then the
// reader fills.
func TestL2NoStaleSet(t *testing.T) {
	r := redistest.Start(t)
	c, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	testNoStaleSet(t, c)
}

func testNoStaleSet(t *testing.T, c *L2) {
	ctx := context.Background()
	key := fmt.Sprintf("user-%d", time.Now().UnixNano())

	loaded := make(chan struct{})
	proceed := make(chan struct{})
	var loads atomic.Int32
	slowV1 := func(ctx context.Context, k string) ([]byte, int64, error) {
		loads.Add(1)
		close(loaded) // the reader has read v1 from the database...
		<-proceed     // ...and is delayed before filling
		return []byte("v1"), 1, nil
	}
	type result struct {
		e   Entry
		err error
	}
	readerDone := make(chan result, 1)
	go func() {
		e, err := c.Load(ctx, key, slowV1)
		readerDone <- result{e, err}
	}()
	<-loaded

	// The writer commits v2 and invalidates.
	c.Invalidate(ctx, key, 2)

	// A reader that comes after the write must not join the old load: it
	// starts its own and sees v2.
	e2, err := c.Load(ctx, key, func(ctx context.Context, k string) ([]byte, int64, error) {
		loads.Add(1)
		return []byte("v2"), 2, nil
	})
	if err != nil || string(e2.Data) != "v2" || e2.Fill != FillStored {
		t.Fatalf("Load after the write = %+v, %v; want v2, stored", e2, err)
	}

	close(proceed)
	res := <-readerDone
	if res.err != nil {
		t.Fatal(res.err)
	}
	if string(res.e.Data) != "v1" || res.e.Fill != FillStale {
		t.Errorf("slow reader: Load = %+v, want v1 with Fill stale", res.e)
	}
	if data, v, ok := c.Get(ctx, key); !ok || v != 2 || string(data) != "v2" {
		t.Errorf("Get after the race = (%q, %d, %v), want v2", data, v, ok)
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("loads = %d, want 2", n)
	}

	// The same race without an entry in between: the marker alone refuses.
	key2 := key + "-b"
	c.Invalidate(ctx, key2, 5)
	if r := c.Fill(ctx, key2, []byte("v4"), 4); r != FillStale {
		t.Errorf("Fill(v4) after Invalidate(v5) = %v, want stale", r)
	}
	if _, _, ok := c.Get(ctx, key2); ok {
		t.Error("stale fill is visible")
	}
	// A late, out-of-order invalidation cannot lower the marker.
	c.Invalidate(ctx, key2, 3)
	if r := c.Fill(ctx, key2, []byte("v4"), 4); r != FillStale {
		t.Errorf("Fill(v4) after Invalidate(v5), Invalidate(v3) = %v, want stale", r)
	}
	if r := c.Fill(ctx, key2, []byte("v5"), 5); r != FillStored {
		t.Errorf("Fill(v5) after Invalidate(v5) = %v, want stored", r)
	}

	// A delete (version unknown) refuses every fill.
	key3 := key + "-deleted"
	if r := c.Fill(ctx, key3, []byte("v7"), 7); r != FillStored {
		t.Fatalf("Fill = %v", r)
	}
	c.Invalidate(ctx, key3, 0)
	if r := c.Fill(ctx, key3, []byte("v7"), 7); r != FillStale {
		t.Errorf("Fill after a delete = %v, want stale", r)
	}
	if r := c.Fill(ctx, key3, []byte("v99"), 99); r != FillStale {
		t.Errorf("Fill(v99) after a delete = %v, want stale", r)
	}
}

// holdReads is a go-redis hook that, once armed, holds the next L2 read
// (HMGET) after Redis answered it, until released: a coalesced load that
// read L2 before a write on another instance and has not returned yet.
type holdReads struct {
	armed    atomic.Bool
	held     chan struct{} // closed when the read is held
	released chan struct{} // close to let it return
}

func newHoldReads() *holdReads {
	h := &holdReads{held: make(chan struct{}), released: make(chan struct{})}
	h.armed.Store(true)
	return h
}

func (h *holdReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *holdReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "hmget" && h.armed.CompareAndSwap(true, false) {
			close(h.held)
			<-h.released
		}
		return err
	}
}

// TestL2FlightsAfterInvalidation: a load that read L2 before a write on
// another instance, and has not returned yet, is joined by no reader that
// knows of the write: not by one that heard the invalidation (an L1 load
// after the pub/sub message), nor by a reader of its own write
// (LoadFresh), which may come before the message does. Either would get
// the value the write replaced, and an L1 would keep it.
func TestL2FlightsAfterInvalidation(t *testing.T) {
	r := redistest.Start(t)
	a, rdbA := mustL2(t, []string{r.Addr()}, L2Options{})
	b, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sub subscriber
	a.Subscribe(ctx, sub.invalidate, sub.reset)
	waitFor(t, 3*time.Second, "first subscription", func() bool { _, n := sub.state(); return n == 1 })
	loader := func(data string, v int64) LoadFunc {
		return func(context.Context, string) ([]byte, int64, error) { return []byte(data), v, nil }
	}

	// staleFlight fills key at version 1 and starts a load of it on a
	// that reads the entry and is held before returning it; it returns
	// the hold, to release, and the load's result.
	staleFlight := func(key string) (*holdReads, chan Entry) {
		if f := a.Fill(ctx, key, []byte("old"), 1); f != FillStored {
			t.Fatalf("Fill %s = %v", key, f)
		}
		h := newHoldReads()
		rdbA.AddHook(h)
		done := make(chan Entry, 1)
		go func() {
			e, err := a.Load(ctx, key, loader("never loaded", 9))
			if err != nil {
				t.Errorf("held load of %s: %v", key, err)
			}
			done <- e
		}()
		<-h.held
		return h, done
	}

	// A reader of its own write, before the invalidation reaches a.
	{
		h, done := staleFlight("own")
		b.Invalidate(ctx, "own", 2)
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		e, err := a.LoadFresh(rctx, "own", loader("new", 2))
		rcancel()
		if err != nil || string(e.Data) != "new" || e.Version != 2 {
			t.Errorf("LoadFresh after the write = %+v, %v; want new at version 2, not the held load's", e, err)
		}
		close(h.released)
		if e := <-done; string(e.Data) != "old" {
			t.Errorf("the held load = %q, want the old entry it read", e.Data)
		}
	}

	// An L1 load after the pub/sub message.
	{
		h, done := staleFlight("heard")
		b.Invalidate(ctx, "heard", 2)
		waitFor(t, 3*time.Second, "the invalidation on a", func() bool { k, _ := sub.state(); return slices.Contains(k, "heard") })
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		e, err := a.Load(rctx, "heard", loader("new", 2))
		rcancel()
		if err != nil || string(e.Data) != "new" || e.Version != 2 {
			t.Errorf("Load after the invalidation was heard = %+v, %v; want new at version 2, not the held load's", e, err)
		}
		close(h.released)
		<-done
	}
}

// TestL2Stampede: 100 concurrent misses of one key on each of two
// instances cost one load per instance at most.
func TestL2Stampede(t *testing.T) {
	r := redistest.Start(t)
	a, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	b, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	ctx := context.Background()
	const key, readers = "hot-user", 100

	var loadsA, loadsB atomic.Int32
	loader := func(n *atomic.Int32) LoadFunc {
		return func(ctx context.Context, k string) ([]byte, int64, error) {
			n.Add(1)
			time.Sleep(50 * time.Millisecond) // a slow query keeps the door open
			return []byte("hot"), 1, nil
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2*readers)
	for i := range 2 * readers {
		c, n := a, &loadsA
		if i%2 == 1 {
			c, n = b, &loadsB
		}
		wg.Go(func() {
			<-start
			e, err := c.Load(ctx, key, loader(n))
			if err == nil && string(e.Data) != "hot" {
				err = fmt.Errorf("Load = %q", e.Data)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if la, lb := loadsA.Load(), loadsB.Load(); la != 1 || lb > 1 {
		t.Errorf("loads = %d on instance A, %d on B; want 1 and at most 1", la, lb)
	}
	if got := value(a.m.hits) + value(a.m.misses); got != readers {
		t.Errorf("instance A counted %v lookups, want %d (one per reader)", got, readers)
	}

	// A failed load is shared too, and not cached.
	var fails atomic.Int32
	boom := errors.New("db down")
	var wg2 sync.WaitGroup
	for range 20 {
		wg2.Go(func() {
			_, err := a.Load(ctx, "missing", func(ctx context.Context, k string) ([]byte, int64, error) {
				fails.Add(1)
				time.Sleep(20 * time.Millisecond)
				return nil, 0, boom
			})
			if !errors.Is(err, boom) {
				t.Errorf("Load error = %v, want %v", err, boom)
			}
		})
	}
	wg2.Wait()
	if _, _, ok := a.Get(ctx, "missing"); ok {
		t.Error("a failed load was cached")
	}
	if n := fails.Load(); n < 1 || n > 2 {
		t.Errorf("failing loads = %d, want 1 (2 at worst)", n)
	}

	// A caller that gives up does not wait for the shared load.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := a.Load(cctx, "slow", func(ctx context.Context, k string) ([]byte, int64, error) {
		time.Sleep(300 * time.Millisecond)
		return []byte("x"), 1, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(begin) > 200*time.Millisecond {
		t.Errorf("Load with a short deadline = %v after %v", err, time.Since(begin))
	}
}

// TestL2RedisDown: a hung Redis costs at most the timeout per call until
// the breaker opens, then nothing; a killed one fails at once; both
// recover by themselves, and invalidations sent meanwhile are retried.
func TestL2RedisDown(t *testing.T) {
	r := redistest.Start(t)
	const timeout, cooldown = 50 * time.Millisecond, 200 * time.Millisecond
	c, _ := mustL2(t, []string{r.Addr()}, L2Options{Timeout: timeout, BreakerCooldown: cooldown, BreakerThreshold: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Subscribe(ctx, nil, nil) // runs the invalidation retries
	if r := c.Fill(ctx, "k", []byte("v1"), 1); r != FillStored {
		t.Fatalf("Fill = %v", r)
	}

	// Hung: SIGSTOP keeps the sockets open but answers nothing.
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		begin := time.Now()
		if _, _, ok := c.Get(ctx, "k"); ok {
			t.Fatal("Get hit while Redis is paused")
		}
		if d := time.Since(begin); d > timeout+100*time.Millisecond {
			t.Errorf("Get %d against a hung Redis took %v, want about %v", i, d, timeout)
		}
	}
	if st := c.breaker.State(); st != breaker.Open {
		t.Fatalf("breaker %v after 3 timeouts, want open", st)
	}
	if got := value(c.m.breaker); got != float64(breaker.Open) {
		t.Errorf("breaker gauge = %v", got)
	}
	begin := time.Now()
	for range 1000 {
		c.Get(ctx, "k")
		if r := c.Fill(ctx, "k", []byte("v1"), 1); r != FillSkipped {
			t.Fatalf("Fill with the breaker open = %v, want skipped", r)
		}
	}
	if d := time.Since(begin); d > 50*time.Millisecond {
		t.Errorf("2000 calls with the breaker open took %v", d)
	}
	// A write while Redis is unreachable: kept for later.
	c.Invalidate(ctx, "k", 2)
	if n := c.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	// Recovery: the retry loop's probe closes the breaker and sends the
	// kept invalidation, whose marker refuses the old value.
	waitFor(t, 3*time.Second, "pending invalidation sent", func() bool { return c.Pending() == 0 })
	if r := c.Fill(ctx, "k", []byte("v1"), 1); r != FillStale {
		t.Errorf("Fill(v1) after the retried Invalidate(v2) = %v, want stale", r)
	}
	// The breaker closes after a few good probes (see package breaker),
	// which the next calls make.
	waitFor(t, 3*time.Second, "breaker closed", func() bool {
		c.Get(ctx, "k")
		return c.breaker.State() == breaker.Closed
	})

	// Killed: connections are refused at once.
	if err := r.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		begin := time.Now()
		if _, _, ok := c.Get(ctx, "k"); ok {
			t.Fatal("Get hit with Redis dead")
		}
		if d := time.Since(begin); d > timeout+100*time.Millisecond {
			t.Errorf("Get %d against a dead Redis took %v", i, d)
		}
	}
	if st := c.breaker.State(); st != breaker.Open {
		t.Errorf("breaker %v with Redis dead, want open", st)
	}
	if got := value(c.m.errors); got < 6 {
		t.Errorf("errors counted = %v, want at least 6", got)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "L2 usable again", func() bool {
		return c.Fill(ctx, "k2", []byte("x"), 1) == FillStored
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subscriber records what an instance's Subscribe delivers.
type subscriber struct {
	mu     sync.Mutex
	keys   []string
	resets int
}

func (s *subscriber) invalidate(k string) { s.mu.Lock(); s.keys = append(s.keys, k); s.mu.Unlock() }
func (s *subscriber) reset()              { s.mu.Lock(); s.resets++; s.mu.Unlock() }
func (s *subscriber) state() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...), s.resets
}

func TestL2PubSub(t *testing.T) {
	r := redistest.Start(t)
	a, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	b, _ := mustL2(t, []string{r.Addr()}, L2Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sub subscriber
	b.Subscribe(ctx, sub.invalidate, sub.reset)
	waitFor(t, 3*time.Second, "first subscription", func() bool { _, n := sub.state(); return n == 1 })

	a.Invalidate(ctx, "user-1", 2)
	a.Invalidate(ctx, "user-2", 0)
	waitFor(t, 3*time.Second, "invalidations on the other instance", func() bool { k, _ := sub.state(); return len(k) == 2 })
	if k, _ := sub.state(); strings.Join(k, ",") != "user-1,user-2" {
		t.Errorf("received %q", k)
	}
	if got := value(b.m.received); got != 2 {
		t.Errorf("received counter = %v", got)
	}

	// The subscriber loses Redis: on reconnect it flushes its L1.
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "flush on resubscription", func() bool { _, n := sub.state(); return n == 2 })
	a.Invalidate(ctx, "user-3", 4)
	waitFor(t, 3*time.Second, "invalidation after reconnect", func() bool { k, _ := sub.state(); return len(k) == 3 })

	// Close stops the subscription goroutines.
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	if err := b.Close(cctx); err != nil {
		t.Fatal(err)
	}
}

// TestL2Cluster runs the tier on a Redis Cluster through the same
// UniversalClient: keys spread over the masters, the scripts run on one
// slot each, and pub/sub reaches an instance connected to another node.
func TestL2Cluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	addrs := cl.Addrs()
	a, rdb := mustL2(t, addrs, L2Options{TTL: time.Minute})
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("NewRedisClient(%d addrs) = %T, want a cluster client", len(addrs), rdb)
	}
	b, _ := mustL2(t, addrs[len(addrs)-1:], L2Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("get fill", func(t *testing.T) { testGetFill(t, a, rdb) })
	t.Run("no stale set", func(t *testing.T) { testNoStaleSet(t, a) })
	t.Run("many slots", func(t *testing.T) {
		for i := range 50 {
			k := fmt.Sprintf("spread-%d", i)
			if r := a.Fill(ctx, k, []byte(k), 1); r != FillStored {
				t.Fatalf("Fill(%s) = %v", k, r)
			}
			a.Invalidate(ctx, k, 2)
			if r := a.Fill(ctx, k, []byte(k), 1); r != FillStale {
				t.Fatalf("Fill(%s) after invalidation = %v", k, r)
			}
		}
	})
	t.Run("pub/sub", func(t *testing.T) {
		var sub subscriber
		b.Subscribe(ctx, sub.invalidate, sub.reset)
		// The publisher runs its background work too, as every server
		// does: an invalidation that Redis did not take in time (a slow
		// moment on a loaded machine) is retried rather than lost.
		a.Subscribe(ctx, nil, nil)
		waitFor(t, 3*time.Second, "subscription", func() bool { _, n := sub.state(); return n >= 1 })
		for i := range 5 {
			a.Invalidate(ctx, fmt.Sprintf("cluster-user-%d", i), 2)
		}
		// Messages travel the cluster bus from the node that owns each key's
		// slot, so they may come out of order, and late ones from the
		// subtests above may come too.
		waitFor(t, 3*time.Second, "5 invalidations", func() bool {
			k, _ := sub.state()
			n := 0
			for _, key := range k {
				if strings.HasPrefix(key, "cluster-user-") {
					n++
				}
			}
			return n == 5
		})
	})
}

// ExampleL2 shows the read and write paths of the HTTP layer with L1 in
// front of L2. (It needs a Redis, so it is compiled but not run.)
func ExampleL2() {
	ctx := context.Background()
	rdb, _ := NewRedisClient(RedisOptions{Addrs: []string{"127.0.0.1:6379"}})
	l1, _ := NewL1(L1Options[[]byte]{TTL: 5 * time.Minute})
	l2, _ := NewL2(rdb, L2Options{})
	purger, _ := NewPurger(PurgerOptions{BaseURLs: []string{"http://127.0.0.1:6081"}})
	purger.Start(ctx)
	// Other instances' writes drop keys from this L1; a reconnect flushes it.
	l2.Subscribe(ctx, l1.Invalidate, l1.InvalidateAll)

	// Stand-ins for the store: a replica read and a primary read.
	readReplica := func(ctx context.Context, id string) ([]byte, int64, error) { return []byte(`{"v":1}`), 1, nil }
	readPrimary := func(ctx context.Context, id string) ([]byte, int64, error) { return []byte(`{"v":2}`), 2, nil }

	// Read: L1, then L2, then the database (one load per instance).
	data, _, err := l1.Get(ctx, "user-id", func(ctx context.Context, id string) ([]byte, error) {
		e, err := l2.Load(ctx, id, readReplica)
		if err != nil {
			return nil, err
		}
		if e.Fill == FillStale {
			// A write invalidated the key after this value was read (the
			// replica lags): it must not be cached. Read the primary, whose
			// version is at least the write's, and fill with that.
			d, v, err := readPrimary(ctx, id)
			if err != nil {
				return nil, err
			}
			l2.Fill(ctx, id, d, v)
			return d, nil
		}
		return e.Data, nil
	})
	_, _ = data, err

	// Write: commit on the primary, then invalidate every tier, L2 before
	// L1 (else a local reader could copy the old L2 entry into L1 between
	// the two; the instance's own pub/sub message would drop it again, but
	// only a moment later). newVersion is the version the write produced
	// (0 for a delete).
	newVersion := int64(2)
	l2.Invalidate(ctx, "user-id", newVersion)
	l1.Invalidate("user-id")
	purger.Purge("/api/v1/users/user-id")

	_ = purger.Close(ctx)
	_ = l2.Close(ctx)
	l1.Close()
	_ = rdb.Close()
}
