package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"scalelab/loadgen"
	"scalelab/scenarios"
)

// driver turns a scenario's operation mix into load-generator operations
// against the reference API. It speaks only HTTP to the server; it knows
// the users by their ids and logins (Users).
type driver struct {
	// api is the user collection's path: /api/users (phases 1–2) or
	// /api/v1/users (phases 3–4).
	api string
	// v1 is set when api is the versioned API: writes then need the
	// owner's token, and each simulated client signs in as its own user.
	v1    bool
	users int // seeded users
	// accounts are the users' ids and logins (SeededUsers for a topology
	// the lab seeded; see target.go for other deployments).
	accounts *Users
	// shard is this generator's part of a run split between several:
	// it signs in and writes as its own share of the users.
	shard loadgen.Shard
	keys  scenarios.Keys
	// runTag makes the emails and usernames of users created during a run
	// unique across runs; clients numbers the simulated clients set up
	// over the driver's life, so that they are unique across its warm-up
	// and measured run too (each starts its sessions from ID 0).
	runTag  string
	clients atomic.Int64
	// auth is set when some operation needs a token (v1 writes, records).
	auth bool
	// tokens holds one bearer token per simulated client, signed in
	// before the run (see signIn); client n uses tokens[n%len(tokens)].
	tokens []string
	// writers tracks read-after-write's writes by user index, when the
	// mix has it (see readAfterWrite).
	writers []writers
	// hist, when set, records the user writes and reads for the
	// consistency check (history.go); only the measured run sets it.
	hist *history
}

// writers counts the read-after-write operations writing one user. Clients
// may share a user (there are at most maxSignIns tokens, and phases 1–2
// pick users by key): a read that shows another client's write, made while
// this one's was in flight or between its write and its read, is newer,
// not stale, and cannot be told from a stale one by its name alone.
type writers struct {
	started  atomic.Int64 // writes begun
	inFlight atomic.Int64 // writes begun and not yet answered
}

// sendsHints reports whether the simulated clients send write hints back
// (noteHint): in v1, once they signed in.
func (d *driver) sendsHints() bool { return d.v1 && len(d.tokens) > 0 }

// tokenOf returns the token of user idx when this generator signed that
// user in: its k-th token is user d.shard.Worker(k)'s (see setup).
func (d *driver) tokenOf(idx int) (string, bool) {
	n, i := max(d.shard.Count, 1), d.shard.Index
	if idx < i || (idx-i)%n != 0 || (idx-i)/n >= len(d.tokens) {
		return "", false
	}
	return d.tokens[(idx-i)/n], true
}

// answer is a response's status and body, 0 and nil for none.
func answer(resp *loadgen.Response) (int, []byte) {
	if resp == nil {
		return 0, nil
	}
	return resp.Status, resp.Body
}

// vu is one simulated client: the seeded user it signs in as, its token,
// its own key generator, and the last record it created.
type vu struct {
	user int
	// token holds {Authorization: Bearer …} and the write hint of the
	// client's last write (see noteHint); nil when anonymous.
	token      []loadgen.Header
	keys       scenarios.Generator
	lastRecord string
	lastLarge  string // the last record of write-large-record
	created    int
	serial     int64 // this client's number among the driver's (driver.clients)
}

func newDriver(sc *scenarios.Scenario, apiPrefix string, users int, runTag string) *driver {
	d := &driver{api: apiPrefix, v1: apiPrefix == "/api/v1/users", users: users, accounts: SeededUsers(users), keys: sc.Keys, runTag: runTag}
	for _, w := range sc.Mix {
		switch w.Op {
		case scenarios.OpCreateRecord, scenarios.OpListRecords, scenarios.OpGetRecord, scenarios.OpWriteBatch, scenarios.OpWriteSingles,
			scenarios.OpWriteLargeRecord, scenarios.OpGetLargeRecord, scenarios.OpGetLargeRecordGzip, scenarios.OpGetLargeRecordZstd, scenarios.OpExport:
			d.auth = true
		case scenarios.OpUpdateUser, scenarios.OpReadAfterWrite:
			d.auth = d.auth || d.v1
		}
		if w.Op == scenarios.OpReadAfterWrite && d.writers == nil {
			d.writers = make([]writers, max(users, 1))
		}
	}
	return d
}

// syntheticClientAddr gives simulated client n an address of its own in
// 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks. It travels
// only as an X-Forwarded-For header through the lab's trusted loopback
// proxies, so that per-address rate limits see many clients, as they would
// in production, rather than one load generator. No packet goes there.
func syntheticClientAddr(n int) string {
	return fmt.Sprintf("198.%d.%d.%d", 18+(n>>16)&1, (n>>8)&0xff, n&0xff)
}

// signIn gets a token for each of the first n seeded users through the
// API, as real clients would, before the warm-up: each sign-in costs an
// argon2id verification, and paying for hundreds of them inside the
// measured run would measure the load generator's set-up, not the
// scenario. Client n signs in as user n; a generator with a share of a
// split run signs in as its share of the first n users (d.shard.Worker).
func (d *driver) signIn(ctx context.Context, target string, n int) error {
	if !d.auth {
		return nil
	}
	n = d.shard.Share(min(n, d.users))
	d.tokens = make([]string, n)
	g, ctx := errgroup.WithContext(ctx)
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range 4 {
		g.Go(func() error {
			c, err := loadgen.NewClient(target, 30*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetHeader("Content-Type", "application/json")
			for i := range next {
				u := d.shard.Worker(i)
				c.SetHeader("X-Forwarded-For", syntheticClientAddr(u))
				body, _ := json.Marshal(map[string]string{"login": d.accounts.Login(u), "password": d.accounts.Password})
				resp, err := c.Do(&loadgen.Request{Method: "POST", Path: "/api/v1/auth/token", Body: body, Expect: []int{200}})
				if err != nil {
					return fmt.Errorf("sign in as user %d: %w", u, err)
				}
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
					return fmt.Errorf("sign in as user %d: no token in %q", u, resp.Body)
				}
				d.tokens[i] = tok.AccessToken
			}
			return nil
		})
	}
	return g.Wait()
}

// setup prepares one simulated client: its key generator, its address and,
// when the mix needs one, its token.
func (d *driver) setup(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := &vu{user: s.ID % d.users, keys: d.keys.NewGenerator(s.Rand, int64(d.users)), serial: d.clients.Add(1)}
	s.Value = v
	c.SetHeader("Content-Type", "application/json")
	c.SetHeader("X-Forwarded-For", syntheticClientAddr(s.ID))
	if len(d.tokens) > 0 {
		// Session ids run across the generators of a split run
		// (loadgen.Shard.Worker): this generator's k-th worker takes its
		// k-th token, as worker k did in a run of one generator.
		t := s.ID / max(d.shard.Count, 1) % len(d.tokens)
		v.user = d.shard.Worker(t)
		v.token = []loadgen.Header{{Key: "Authorization", Value: "Bearer " + d.tokens[t]}, {Key: wroteHeader, Value: "none"}}
	}
	return nil
}

// wroteHeader carries the server's write hints (docs/api.md): a write's
// response sets it, and the client sends the latest one back, "none"
// before its first write, so that its own reads need no Redis lookup.
const wroteHeader = "X-Scalelab-Wrote"

// noteHint keeps the write hint of a write's response, as a browser or an
// SDK would, to send with the client's next requests.
func (v *vu) noteHint(resp *loadgen.Response) {
	if len(v.token) < 2 || resp == nil {
		return
	}
	if h := resp.HeaderBytes(wroteHeader); len(h) > 0 {
		v.token[1].Value = string(h)
	}
}

// ops returns the load generator's operations for the scenario's mix.
func (d *driver) ops(sc *scenarios.Scenario) ([]loadgen.Op, error) {
	var ops []loadgen.Op
	for _, w := range sc.Mix {
		do, err := d.op(w.Op)
		if err != nil {
			return nil, err
		}
		ops = append(ops, loadgen.Op{Name: string(w.Op), Weight: w.Weight, Do: do})
	}
	return ops, nil
}

type opFunc = func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error

func (d *driver) op(op scenarios.Op) (opFunc, error) {
	switch op {
	case scenarios.OpGetUser:
		return d.getUser, nil
	case scenarios.OpUpdateUser:
		return d.updateUser, nil
	case scenarios.OpCreateUser:
		return d.createUser, nil
	case scenarios.OpReadAfterWrite:
		return d.readAfterWrite, nil
	case scenarios.OpCreateRecord:
		return d.createRecord, nil
	case scenarios.OpListRecords:
		return d.listRecords, nil
	case scenarios.OpGetRecord:
		return d.getRecord, nil
	case scenarios.OpWriteBatch:
		return d.writeBatch, nil
	case scenarios.OpWriteSingles:
		return d.writeSingles, nil
	case scenarios.OpWriteLargeRecord:
		return d.writeLargeRecord, nil
	case scenarios.OpGetLargeRecord:
		return d.getLargeRecord(""), nil
	case scenarios.OpGetLargeRecordGzip:
		return d.getLargeRecord("gzip"), nil
	case scenarios.OpGetLargeRecordZstd:
		return d.getLargeRecord("zstd"), nil
	case scenarios.OpExport:
		return d.export, nil
	case scenarios.OpDeleteAccount:
		return d.deleteAccount, nil
	}
	return nil, fmt.Errorf("operation %q: the driver does not implement it", op)
}

// getUser reads a user picked by the scenario's key distribution, as an
// anonymous client: in phases 3–4 that is the public view the CDN caches.
func (d *driver) getUser(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	id := d.accounts.ID(int(v.keys.Next()))
	begin := time.Now()
	resp, err := c.Do(&loadgen.Request{Name: "GET " + d.api + "/{id}", Path: d.api + "/" + id, Expect: []int{200}})
	if d.hist != nil {
		status, body := answer(resp)
		d.hist.read(s.ID, id, !d.v1, begin, status, body)
	}
	return err
}

// writeTarget returns the index of the user a write goes to and the
// headers it needs: in v1 only the owner may write, so a client writes its
// own user; without auth the key distribution picks the user.
func (d *driver) writeTarget(v *vu) (int, []loadgen.Header) {
	if d.v1 {
		return v.user, v.token
	}
	return int(v.keys.Next()), nil
}

// putName sets user idx's profile name, notes the server's write hint and
// records the write in the history when there is one.
func (d *driver) putName(c *loadgen.Client, s *loadgen.Session, idx int, hdr []loadgen.Header, name string) error {
	id := d.accounts.ID(idx)
	body := []byte(`{"profile":{"name":"` + name + `"}}`)
	begin := time.Now()
	resp, err := c.Do(&loadgen.Request{Name: "PUT " + d.api + "/{id}", Method: "PUT", Path: d.api + "/" + id, Header: hdr, Body: body, Expect: []int{200}})
	s.Value.(*vu).noteHint(resp)
	if d.hist != nil {
		status, rbody := answer(resp)
		d.hist.wrote(s.ID, id, idx, name, begin, status, rbody)
	}
	return err
}

func newName(s *loadgen.Session) string {
	return "load " + strconv.FormatUint(s.Rand.Uint64(), 36)
}

func (d *driver) updateUser(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	idx, hdr := d.writeTarget(s.Value.(*vu))
	return d.putName(c, s, idx, hdr, newName(s))
}

// readAfterWrite updates a user and reads it back at once, as the writer
// (with its token in v1). A read that does not show the new name is counted
// in the stale_reads counter: it is what read-your-writes must prevent.
// When another client wrote the same user meanwhile, a read that shows a
// name other than ours may show their newer write: it is counted in
// reads_overtaken instead, unjudged (see writers).
func (d *driver) readAfterWrite(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	idx, hdr := d.writeTarget(s.Value.(*vu))
	id := d.accounts.ID(idx)
	wr := &d.writers[idx%len(d.writers)]
	begun := wr.started.Add(1)
	alone := wr.inFlight.Add(1) == 1
	name := newName(s)
	err := d.putName(c, s, idx, hdr, name)
	wr.inFlight.Add(-1)
	if err != nil {
		return err
	}
	begin := time.Now()
	resp, err := c.Do(&loadgen.Request{Name: "GET " + d.api + "/{id} (after write)", Path: d.api + "/" + id, Header: hdr, Expect: []int{200}})
	if d.hist != nil {
		status, body := answer(resp)
		d.hist.read(s.ID, id, true, begin, status, body)
	}
	if err != nil {
		return err
	}
	alone = alone && wr.started.Load() == begun
	s.Counter("reads_after_write").Add(1)
	stale := s.Counter("stale_reads") // reported even when it stays 0
	overtaken := s.Counter("reads_overtaken")
	if !bytes.Contains(resp.Body, []byte(`"`+name+`"`)) {
		if alone {
			stale.Add(1)
		} else {
			overtaken.Add(1)
		}
	}
	return nil
}

// createUser signs up a new user with an email and username unique to the
// run, the client and its count.
func (d *driver) createUser(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	v.created++
	tag := fmt.Sprintf("%s-%d-%d", d.runTag, v.serial, v.created)
	body, _ := json.Marshal(map[string]any{
		"email":    "lg-" + tag + "@load.scalelab.test",
		"username": "lg-" + tag,
		"password": "load-generator-password",
		"profile":  map[string]string{"name": "Load " + tag},
	})
	_, err := c.Do(&loadgen.Request{Name: "POST " + d.api, Method: "POST", Path: d.api, Body: body, Expect: []int{201}})
	return err
}

func (d *driver) recordsPath(v *vu) string {
	return "/api/v1/users/" + d.accounts.ID(v.user) + "/data"
}

func (d *driver) createRecord(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	body := []byte(`{"data":{"kind":"note","n":` + strconv.FormatUint(s.Rand.Uint64()>>12, 10) + `,"tags":["load","test"]}}`)
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data", Method: "POST", Path: d.recordsPath(v), Header: v.token, Body: body, Expect: []int{201}})
	v.noteHint(resp)
	if err != nil {
		return err
	}
	var rec struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(resp.Body, &rec) == nil {
		v.lastRecord = rec.ID
	}
	return nil
}

func (d *driver) listRecords(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	_, err := c.Do(&loadgen.Request{Name: "GET /api/v1/users/{id}/data", Path: d.recordsPath(v) + "?limit=20", Header: v.token, Expect: []int{200}})
	return err
}

// getRecord reads the client's last record, creating one first if it has
// none yet.
func (d *driver) getRecord(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	if v.lastRecord == "" {
		if err := d.createRecord(ctx, c, s); err != nil {
			return err
		}
	}
	_, err := c.Do(&loadgen.Request{Name: "GET /api/v1/users/{id}/data/{record_id}", Path: d.recordsPath(v) + "/" + v.lastRecord, Header: v.token, Expect: []int{200}})
	return err
}

// batchSize is how many records write-batch and write-singles each add.
const batchSize = 100

func newRecordData(s *loadgen.Session) string {
	return `{"kind":"note","n":` + strconv.FormatUint(s.Rand.Uint64()>>12, 10) + `,"tags":["load","test"]}`
}

// writeBatch adds batchSize records in one POST …/data:batch.
func (d *driver) writeBatch(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range batchSize {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"data":` + newRecordData(s) + `}`)
	}
	b.WriteString(`]}`)
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data:batch", Method: "POST", Path: d.recordsPath(v) + ":batch",
		Header: v.token, Body: []byte(b.String()), Expect: []int{201}})
	v.noteHint(resp)
	return err
}

// writeSingles adds batchSize records one POST …/data after another: the
// operation's latency is the whole sequence's, comparable to writeBatch's.
func (d *driver) writeSingles(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	for range batchSize {
		body := []byte(`{"data":` + newRecordData(s) + `}`)
		resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data", Method: "POST", Path: d.recordsPath(v),
			Header: v.token, Body: body, Expect: []int{201}})
		v.noteHint(resp)
		if err != nil {
			return err
		}
	}
	return nil
}
