package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"scalelab/loadgen"
	"scalelab/scenarios"
	"scalelab/server"
)

// driver turns a scenario's operation mix into load-generator operations
// against the reference API. It speaks only HTTP to the server; it uses the
// server package for the seeded users' deterministic ids and logins.
type driver struct {
	// api is the user collection's path: /api/users (phases 1–2) or
	// /api/v1/users (phases 3–4).
	api string
	// v1 is set when api is the versioned API: writes then need the
	// owner's token, and each simulated client signs in as its own user.
	v1    bool
	users int // seeded users
	keys  scenarios.Keys
	// runTag makes the emails and usernames of users created during a run
	// unique across runs and warm-ups.
	runTag string
	// auth is set when some operation needs a token (v1 writes, records).
	auth bool
	// tokens holds one bearer token per simulated client, signed in
	// before the run (see signIn); client n uses tokens[n%len(tokens)].
	tokens []string
}

// vu is one simulated client: the seeded user it signs in as, its token,
// its own key generator, and the last record it created.
type vu struct {
	user       int
	token      []loadgen.Header // {Authorization: Bearer …}, nil when anonymous
	keys       scenarios.Generator
	lastRecord string
	lastLarge  string // the last record of write-large-record
	created    int
}

func newDriver(sc *scenarios.Scenario, apiPrefix string, users int, runTag string) *driver {
	d := &driver{api: apiPrefix, v1: apiPrefix == "/api/v1/users", users: users, keys: sc.Keys, runTag: runTag}
	for _, w := range sc.Mix {
		switch w.Op {
		case scenarios.OpCreateRecord, scenarios.OpListRecords, scenarios.OpGetRecord, scenarios.OpWriteBatch, scenarios.OpWriteSingles,
			scenarios.OpWriteLargeRecord, scenarios.OpGetLargeRecord, scenarios.OpGetLargeRecordGzip, scenarios.OpGetLargeRecordZstd, scenarios.OpExport:
			d.auth = true
		case scenarios.OpUpdateUser, scenarios.OpReadAfterWrite:
			d.auth = d.auth || d.v1
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
// scenario. Client n signs in as seeded user n.
func (d *driver) signIn(ctx context.Context, target string, n int) error {
	if !d.auth {
		return nil
	}
	n = min(n, d.users)
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
				c.SetHeader("X-Forwarded-For", syntheticClientAddr(i))
				body, _ := json.Marshal(map[string]string{"login": server.SeedUsername(i), "password": server.SeedPassword})
				resp, err := c.Do(&loadgen.Request{Method: "POST", Path: "/api/v1/auth/token", Body: body, Expect: []int{200}})
				if err != nil {
					return fmt.Errorf("sign in as seeded user %d: %w", i, err)
				}
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
					return fmt.Errorf("sign in as seeded user %d: no token in %q", i, resp.Body)
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
	v := &vu{user: s.ID % d.users, keys: d.keys.NewGenerator(s.Rand, int64(d.users))}
	s.Value = v
	c.SetHeader("Content-Type", "application/json")
	c.SetHeader("X-Forwarded-For", syntheticClientAddr(s.ID))
	if len(d.tokens) > 0 {
		v.user = s.ID % len(d.tokens)
		v.token = []loadgen.Header{{Key: "Authorization", Value: "Bearer " + d.tokens[v.user]}}
	}
	return nil
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
	id := server.SeedUserID(int(v.keys.Next()))
	_, err := c.Do(&loadgen.Request{Name: "GET " + d.api + "/{id}", Path: d.api + "/" + id, Expect: []int{200}})
	return err
}

// writeTarget returns the user a write goes to and the headers it needs:
// in v1 only the owner may write, so a client writes its own user; without
// auth the key distribution picks the user.
func (d *driver) writeTarget(v *vu) (string, []loadgen.Header) {
	if d.v1 {
		return server.SeedUserID(v.user), v.token
	}
	return server.SeedUserID(int(v.keys.Next())), nil
}

func newName(s *loadgen.Session) string {
	return "load " + strconv.FormatUint(s.Rand.Uint64(), 36)
}

func (d *driver) updateUser(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	id, hdr := d.writeTarget(v)
	body := []byte(`{"profile":{"name":"` + newName(s) + `"}}`)
	_, err := c.Do(&loadgen.Request{Name: "PUT " + d.api + "/{id}", Method: "PUT", Path: d.api + "/" + id, Header: hdr, Body: body, Expect: []int{200}})
	return err
}

// readAfterWrite updates a user and reads it back at once, as the writer
// (with its token in v1). A read that does not show the new name is counted
// in the stale_reads counter: it is what read-your-writes must prevent.
func (d *driver) readAfterWrite(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	id, hdr := d.writeTarget(v)
	name := newName(s)
	body := []byte(`{"profile":{"name":"` + name + `"}}`)
	if _, err := c.Do(&loadgen.Request{Name: "PUT " + d.api + "/{id}", Method: "PUT", Path: d.api + "/" + id, Header: hdr, Body: body, Expect: []int{200}}); err != nil {
		return err
	}
	resp, err := c.Do(&loadgen.Request{Name: "GET " + d.api + "/{id} (after write)", Path: d.api + "/" + id, Header: hdr, Expect: []int{200}})
	if err != nil {
		return err
	}
	s.Counter("reads_after_write").Add(1)
	stale := s.Counter("stale_reads") // reported even when it stays 0
	if !bytes.Contains(resp.Body, []byte(`"`+name+`"`)) {
		stale.Add(1)
	}
	return nil
}

// createUser signs up a new user with an email and username unique to the
// run, the client and its count.
func (d *driver) createUser(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	v.created++
	tag := fmt.Sprintf("%s-%d-%d", d.runTag, s.ID, v.created)
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
	return "/api/v1/users/" + server.SeedUserID(v.user) + "/data"
}

func (d *driver) createRecord(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	body := []byte(`{"data":{"kind":"note","n":` + strconv.FormatUint(s.Rand.Uint64()>>12, 10) + `,"tags":["load","test"]}}`)
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data", Method: "POST", Path: d.recordsPath(v), Header: v.token, Body: body, Expect: []int{201}})
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
	_, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data:batch", Method: "POST", Path: d.recordsPath(v) + ":batch",
		Header: v.token, Body: []byte(b.String()), Expect: []int{201}})
	return err
}

// writeSingles adds batchSize records one POST …/data after another: the
// operation's latency is the whole sequence's, comparable to writeBatch's.
func (d *driver) writeSingles(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	for range batchSize {
		body := []byte(`{"data":` + newRecordData(s) + `}`)
		if _, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data", Method: "POST", Path: d.recordsPath(v),
			Header: v.token, Body: body, Expect: []int{201}}); err != nil {
			return err
		}
	}
	return nil
}
