package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"scalelab/loadgen"
	"scalelab/server"
)

// The large records of write-large-record are 8 to 64 KiB of JSON: a page
// of items whose words come from a small vocabulary, as product catalogues,
// logs and documents do. That shape compresses as real JSON does (about
// four to one), unlike random bytes (not at all) or one repeated string
// (a hundred to one).
const (
	largeMin = 8 << 10
	largeMax = 64 << 10
)

var largeWords = strings.Fields(`order shipped warehouse customer invoice payment pending
	delivered returned refund parcel courier address street city postal region account
	premium standard express priority discount coupon review rating comment product item
	quantity price total currency tax note status created updated archived label`)

// newLargeRecordData returns one record's data of size bytes or a little more.
func newLargeRecordData(r *rand.Rand, size int) []byte {
	b := make([]byte, 0, size+256)
	b = append(b, `{"kind":"document","items":[`...)
	for i := 0; len(b) < size; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"n":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"sku":"`...)
		b = strconv.AppendUint(b, r.Uint64N(1_000_000), 36)
		b = append(b, `","price":`...)
		b = strconv.AppendInt(b, int64(r.IntN(100_000)), 10)
		b = append(b, `,"status":"`...)
		b = append(b, largeWords[r.IntN(len(largeWords))]...)
		b = append(b, `","text":"`...)
		for w := range 8 + r.IntN(16) {
			if w > 0 {
				b = append(b, ' ')
			}
			b = append(b, largeWords[r.IntN(len(largeWords))]...)
		}
		b = append(b, `"}`...)
	}
	return append(b, `]}`...)
}

// writeLargeRecord adds a record of 8–64 KiB to the client's own user.
func (d *driver) writeLargeRecord(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	data := newLargeRecordData(s.Rand, largeMin+s.Rand.IntN(largeMax-largeMin+1))
	body := make([]byte, 0, len(data)+16)
	body = append(append(append(body, `{"data":`...), data...), '}')
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data (large)", Method: "POST", Path: d.recordsPath(v), Header: v.token, Body: body, Expect: []int{201}})
	// The hint goes with the client's next reads, its read of this record
	// among them: a client that kept sending an older hint (or "none")
	// would tell the server it need not wait for this write, and a
	// replica that has not replayed it yet would answer 404.
	v.noteHint(resp)
	if err != nil {
		return err
	}
	var rec struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(resp.Body, &rec) == nil {
		v.lastLarge = rec.ID
	}
	return nil
}

// getLargeRecord returns the operation that reads the client's last large
// record (writing one first if it has none) asking for encoding ("" for
// none), and counts the reads and the body bytes received by encoding.
func (d *driver) getLargeRecord(encoding string) opFunc {
	name := "identity"
	if encoding != "" {
		name = encoding
	}
	reqName := "GET /api/v1/users/{id}/data/{record_id} (large, " + name + ")"
	return func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
		v := s.Value.(*vu)
		if v.lastLarge == "" {
			if err := d.writeLargeRecord(ctx, c, s); err != nil {
				return err
			}
		}
		hdr := v.token
		if encoding != "" {
			hdr = append(hdr[:len(hdr):len(hdr)], loadgen.Header{Key: "Accept-Encoding", Value: encoding})
		}
		resp, err := c.Do(&loadgen.Request{Name: reqName, Path: d.recordsPath(v) + "/" + v.lastLarge, Header: hdr, Expect: []int{200}})
		if err != nil {
			return err
		}
		s.Counter("large_reads_" + name).Add(1)
		s.Counter("large_read_bytes_" + name).Add(int64(len(resp.Body)))
		mismatch := s.Counter("encoding_mismatch") // reported even when it stays 0
		if got := resp.Header("Content-Encoding"); got != encoding {
			mismatch.Add(1)
		}
		return nil
	}
}

// export asks for an export of the client's own user's records; the job
// queue does the work, which the run's queue section measures.
func (d *driver) export(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/exports", Method: "POST",
		Path: "/api/v1/users/" + server.SeedUserID(v.user) + "/exports", Header: v.token, Expect: []int{202}})
	v.noteHint(resp)
	return err
}

// accountRecords is how many records delete-account gives the user it
// deletes: phase 4's --async-delete-records, so the deletion is deferred.
const accountRecords = 1000

// deleteAccount signs a new user up, signs in, adds accountRecords records
// in batches and deletes the user; 202 (deferred to the queue) and 204
// (deleted at once) both count as success.
func (d *driver) deleteAccount(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
	v := s.Value.(*vu)
	v.created++
	tag := fmt.Sprintf("%s-%d-%d", d.runTag, s.ID, v.created)
	login, password := "lg-del-"+tag, "load-generator-password"
	body, _ := json.Marshal(map[string]any{"email": login + "@load.scalelab.test", "username": login, "password": password})
	resp, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users (delete-account)", Method: "POST", Path: "/api/v1/users", Body: body, Expect: []int{201}})
	if err != nil {
		return err
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp.Body, &u); err != nil || u.ID == "" {
		return fmt.Errorf("delete-account: no id in the sign-up's answer")
	}
	body, _ = json.Marshal(map[string]string{"login": login, "password": password})
	resp, err = c.Do(&loadgen.Request{Name: "POST /api/v1/auth/token (delete-account)", Method: "POST", Path: "/api/v1/auth/token", Body: body, Expect: []int{200}})
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("delete-account: no token in the answer")
	}
	hdr := []loadgen.Header{{Key: "Authorization", Value: "Bearer " + tok.AccessToken}}
	path := "/api/v1/users/" + u.ID
	for range accountRecords / batchSize {
		var b strings.Builder
		b.WriteString(`{"records":[`)
		for i := range batchSize {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"data":` + newRecordData(s) + `}`)
		}
		b.WriteString(`]}`)
		if _, err := c.Do(&loadgen.Request{Name: "POST /api/v1/users/{id}/data:batch (delete-account)", Method: "POST", Path: path + "/data:batch",
			Header: hdr, Body: []byte(b.String()), Expect: []int{201}}); err != nil {
			return err
		}
	}
	resp, err = c.Do(&loadgen.Request{Name: "DELETE /api/v1/users/{id}", Method: "DELETE", Path: path, Header: hdr, Expect: []int{202, 204}})
	if err != nil {
		return err
	}
	deferred := s.Counter("deletes_deferred") // reported even when it stays 0
	if resp.Status == 202 {
		deferred.Add(1)
	}
	return nil
}
