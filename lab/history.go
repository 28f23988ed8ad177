package lab

import (
	"encoding/json"
	"sync"
	"time"
)

// history records what every simulated client did to users and saw of
// them, for the consistency check after the run (consistency.go): in the
// manner of a Jepsen history, each write with the value it wrote and the
// version the server acknowledged, each read with what it saw, all with
// when they began and ended.
//
// The values are profile names, unique to each write (random), so a read
// that shows only the name (the anonymous public view) still says which
// write it saw. Versions are the users' updated_at, which the server
// advances on every update (never backwards): the owner's view and a
// write's answer carry it.
type history struct {
	mu     sync.Mutex
	writes []writeEvent
	reads  []readEvent
	// users maps a user id to the seeded user's index, whose token the
	// final read uses.
	users map[string]int
	// perClient is set when the clients send write hints: the server then
	// promises read-your-writes per client (a session guarantee), not
	// across the clients that share a user (docs/consistency.md).
	perClient bool
}

// writeEvent is one update of a user's name.
type writeEvent struct {
	client     int
	user       string
	value      string
	begin, end time.Time
	// acked: the server answered 200 (version is then set); failed: it
	// answered 4xx (not applied). Neither: the answer was lost (a
	// timeout, a 5xx): the write may or may not have been applied.
	acked, failed bool
	version       time.Time
}

// readEvent is one read of a user.
type readEvent struct {
	client     int
	user       string
	own        bool // with the owner's token: the full view, with updated_at
	begin, end time.Time
	ok         bool // answered 200
	value      string
	version    time.Time // own reads only
}

func newHistory() *history { return &history{users: map[string]int{}} }

// wrote records a write of value to user (seeded user index idx) that
// began at begin; status is the HTTP status (0: no answer) and body the
// answer.
func (h *history) wrote(client int, user string, idx int, value string, begin time.Time, status int, body []byte) {
	w := writeEvent{client: client, user: user, value: value, begin: begin, end: time.Now()}
	switch {
	case status == 200:
		if v, _, ok := userVersion(body); ok {
			w.acked, w.version = true, v
		}
	case status >= 400 && status < 500:
		w.failed = true
	}
	h.mu.Lock()
	h.writes = append(h.writes, w)
	h.users[user] = idx
	h.mu.Unlock()
}

// read records a read of user that began at begin; status is the HTTP
// status (0: no answer) and body the answer.
func (h *history) read(client int, user string, own bool, begin time.Time, status int, body []byte) {
	r := readEvent{client: client, user: user, own: own, begin: begin, end: time.Now(), ok: status == 200}
	if r.ok {
		var v struct {
			Profile struct {
				Name string `json:"name"`
			} `json:"profile"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		if json.Unmarshal(body, &v) != nil {
			r.ok = false
		}
		r.value, r.version = v.Profile.Name, v.UpdatedAt
	}
	h.mu.Lock()
	h.reads = append(h.reads, r)
	h.mu.Unlock()
}

// userVersion reads the name and updated_at of a user's own view.
func userVersion(body []byte) (version time.Time, name string, ok bool) {
	var v struct {
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
		UpdatedAt time.Time `json:"updated_at"`
	}
	if json.Unmarshal(body, &v) != nil || v.UpdatedAt.IsZero() {
		return time.Time{}, "", false
	}
	return v.UpdatedAt, v.Profile.Name, true
}
