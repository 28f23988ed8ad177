package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"scalelab/topologies"
)

// Read-your-writes across instances while both replicas lag: replay is
// paused on both, so a replica can only answer with data older than the
// write. A user's own reads right after their write, through an instance
// that did not take it, must still see the write.
//
// Each part pauses replay afresh: a paused replica stays "usable" for
// plain reads only while its lag is under the router's bound (1s), and
// the interesting case is the one where it is usable but behind.
func TestReadYourWritesAcrossInstancesWhileReplicasLag(t *testing.T) {
	top := phase3.Topology(t)
	apps := appURLs(top)

	t.Run("profile", func(t *testing.T) {
		u := signUp(t, top.EntryURL)
		waitReplicated(t, top, u.ID, 1)
		for _, a := range apps { // every L1 holds the old profile
			mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token}, http.StatusOK)
		}
		before := routing(t, apps)
		pauseReplay(t, top)
		const rounds = 30
		stale, reads := 0, 0
		var last string
		for i := range rounds {
			last = fmt.Sprintf("ryw-%d", i)
			w := i % len(apps)
			setName(t, apps[w], u, last)
			for j, a := range apps {
				if j == w {
					continue
				}
				reads++
				resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token}, http.StatusOK)
				if got := profileName(t, resp.Body); got != last {
					stale++
					t.Errorf("round %d: PUT through app-%d, then GET own user through app-%d: name %q, want %q", i, w+1, j+1, got, last)
				}
			}
		}
		// Anyone else may legitimately see an older value for a moment
		// (replica lag within the bound, an invalidation in flight), so
		// this is only logged.
		resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(apps[1], u.ID), XFF: clientAddr()}, http.StatusOK)
		t.Logf("anonymous read through app-2 right after: name %q (last write %q)", profileName(t, resp.Body), last)
		lagged := replicaNames(t, top, u.ID, last)
		resumeReplay(t, top)
		t.Logf("%d own reads through other instances after %d writes: %d stale; replicas had %v; routing %s",
			reads, rounds, stale, lagged, routing(t, apps).since(before))
	})

	// The same with a client that sends back the write hint of its last
	// write (X-Scalelab-Wrote): its own reads ask Redis for no marker, and
	// the hint alone must keep them exact.
	t.Run("profile with write hints", func(t *testing.T) {
		u := signUp(t, top.EntryURL)
		waitReplicated(t, top, u.ID, 1)
		for _, a := range apps { // every L1 holds the old profile
			mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token, Wrote: "none"}, http.StatusOK)
		}
		before := routing(t, apps)
		pauseReplay(t, top)
		const rounds = 30
		stale, reads := 0, 0
		hint := "none"
		for i := range rounds {
			name := fmt.Sprintf("hint-%d", i)
			w := i % len(apps)
			resp := mustSend(t, request{Method: http.MethodPut, URL: userURL(apps[w], u.ID), Token: u.Token, Wrote: hint,
				Body: map[string]any{"profile": map[string]string{"name": name}}}, http.StatusOK)
			if hint = resp.Header.Get("X-Scalelab-Wrote"); hint == "" {
				t.Fatalf("round %d: PUT through app-%d answered without X-Scalelab-Wrote", i, w+1)
			}
			for j, a := range apps {
				if j == w {
					continue
				}
				reads++
				resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token, Wrote: hint}, http.StatusOK)
				if got := profileName(t, resp.Body); got != name {
					stale++
					t.Errorf("round %d: PUT through app-%d, then GET own user with its hint through app-%d: name %q, want %q", i, w+1, j+1, got, name)
				}
			}
		}
		resumeReplay(t, top)
		t.Logf("%d own reads with write hints through other instances after %d writes: %d stale; routing %s",
			reads, rounds, stale, routing(t, apps).since(before))
	})

	t.Run("records", func(t *testing.T) {
		u := signUp(t, top.EntryURL)
		waitReplicated(t, top, u.ID, 1)
		before := routing(t, apps)
		pauseReplay(t, top)
		const rounds = 10
		stale, reads := 0, 0
		for i := range rounds {
			w := i % len(apps)
			resp := mustSend(t, request{Method: http.MethodPost, URL: userURL(apps[w], u.ID) + "/data", Token: u.Token,
				Body: map[string]any{"data": map[string]int{"n": i}}}, http.StatusCreated)
			var rec struct{ ID string }
			if err := json.Unmarshal(resp.Body, &rec); err != nil || rec.ID == "" {
				t.Fatalf("POST data answered %s: %v", resp.Body, err)
			}
			for j, a := range apps {
				if j == w {
					continue
				}
				reads++
				resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID) + "/data?limit=100", Token: u.Token}, http.StatusOK)
				var page struct{ Items []struct{ ID string } }
				if err := json.Unmarshal(resp.Body, &page); err != nil {
					t.Fatalf("GET data answered %s: %v", resp.Body, err)
				}
				if len(page.Items) != i+1 || page.Items[0].ID != rec.ID {
					stale++
					t.Errorf("round %d: POST data through app-%d, then GET data through app-%d: %d items, newest %v; want %d, newest %s",
						i, w+1, j+1, len(page.Items), page.Items, i+1, rec.ID)
				}
			}
		}
		resumeReplay(t, top)
		t.Logf("%d record lists through other instances after %d inserts: %d stale; routing %s",
			reads, rounds, stale, routing(t, apps).since(before))
	})

	// A sign-up is a write too: the new user's token must work at once
	// on an instance whose replicas have not seen the user yet.
	t.Run("sign-up", func(t *testing.T) {
		before := routing(t, apps)
		pauseReplay(t, top)
		u := signUp(t, apps[0])
		for j, a := range apps[1:] {
			resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token}, http.StatusOK)
			if got := profileName(t, resp.Body); got != "initial" {
				t.Errorf("GET own user through app-%d right after sign-up: name %q, want %q", j+2, got, "initial")
			}
		}
		resumeReplay(t, top)
		t.Logf("routing %s", routing(t, apps).since(before))
	})
}

// Read-your-writes does not depend on L1: with --cache-ttl 0 (L1 off), an
// own read after a write through another instance is as fresh. The phase's
// instances run with L1, so this starts two of its own without, on the
// phase's primary, replicas and Redis.
func TestReadYourWritesWithoutL1(t *testing.T) {
	top := phase3.Topology(t)
	flags := []string{"--db", top.PrimaryURL, "--redis", top.RedisAddr, "--cache-ttl", "0",
		"--token-secret", "hex:" + randomHex(32), "--trusted-proxy", "127.0.0.1/32"}
	for _, r := range top.ReplicaURLs {
		flags = append(flags, "--replica", r)
	}
	apps := []string{startServer(t, "no-l1-a", flags...), startServer(t, "no-l1-b", flags...)}
	u := signUp(t, apps[0])
	waitReplicated(t, top, u.ID, 1)
	for _, a := range apps { // L2 holds the old profile
		mustSend(t, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token}, http.StatusOK)
	}
	pauseReplay(t, top)
	const rounds = 10
	stale := 0
	for i := range rounds {
		name := fmt.Sprintf("no-l1-%d", i)
		setName(t, apps[i%2], u, name)
		resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(apps[(i+1)%2], u.ID), Token: u.Token}, http.StatusOK)
		if got := profileName(t, resp.Body); got != name {
			stale++
			t.Errorf("round %d: PUT through one instance without L1, GET own user through the other: name %q, want %q", i, got, name)
		}
	}
	resumeReplay(t, top)
	t.Logf("%d own reads through the other L1-less instance: %d stale", rounds, stale)
}

// pauseReplay pauses WAL replay on every replica, and makes sure it is
// resumed when the test ends.
func pauseReplay(t *testing.T, top *topologies.Topology) {
	t.Helper()
	for _, r := range top.Replicas() {
		conn := connect(t, r.URL())
		if _, err := conn.Exec(context.Background(), `SELECT pg_wal_replay_pause()`); err != nil {
			t.Fatalf("%s: pg_wal_replay_pause(): %v", r.Name(), err)
		}
	}
	t.Cleanup(func() { resumeReplay(t, top) })
}

// resumeReplay resumes replay on every replica and waits until each has
// replayed what the primary had written, so that later tests find the
// replicas caught up.
func resumeReplay(t *testing.T, top *topologies.Topology) {
	t.Helper()
	ctx := context.Background()
	var target string
	if err := connect(t, top.PrimaryURL).QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatalf("primary: pg_current_wal_lsn(): %v", err)
	}
	for _, r := range top.Replicas() {
		conn := connect(t, r.URL())
		if _, err := conn.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
			t.Fatalf("%s: pg_wal_replay_resume(): %v", r.Name(), err)
		}
		ok := eventually(5*time.Second, func() bool {
			var caught bool
			err := conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, target).Scan(&caught)
			return err == nil && caught
		})
		if !ok {
			t.Fatalf("%s has not replayed up to %s within 5s of resuming", r.Name(), target)
		}
	}
}

// replicaNames returns the profile name each replica holds for user id,
// and fails the test if one already has want: then the replicas did not
// lag, and the test proved nothing.
func replicaNames(t *testing.T, top *topologies.Topology, id, want string) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, r := range top.Replicas() {
		var name string
		if err := connect(t, r.URL()).QueryRow(context.Background(), `SELECT name FROM users WHERE id = $1`, id).Scan(&name); err != nil {
			t.Fatalf("%s: read user %s: %v", r.Name(), id, err)
		}
		if name == want {
			t.Errorf("%s already has name %q although its replay is paused", r.Name(), want)
		}
		names[r.Name()] = name
	}
	return names
}

// routingStats is where the instances' reads went, summed over instances.
type routingStats struct {
	primary, replica float64
	fallbacks        map[string]float64
}

func routing(t *testing.T, apps []string) routingStats {
	t.Helper()
	s := routingStats{fallbacks: map[string]float64{}}
	for _, a := range apps {
		m := scrape(t, a)
		s.primary += m.sum("scalelab_db_queries_total", `role="primary"`)
		s.replica += m.sum("scalelab_db_queries_total", `role="replica"`)
		for _, reason := range []string{"forced", "unhealthy", "lag", "position", "replica_error"} {
			s.fallbacks[reason] += m.sum("scalelab_db_replica_fallbacks_total", `reason="`+reason+`"`)
		}
	}
	return s
}

// since describes the difference from an earlier snapshot.
func (s routingStats) since(before routingStats) string {
	out := fmt.Sprintf("primary %.0f, replica %.0f queries; fallbacks to the primary:", s.primary-before.primary, s.replica-before.replica)
	for _, reason := range []string{"forced", "unhealthy", "lag", "position", "replica_error"} {
		if d := s.fallbacks[reason] - before.fallbacks[reason]; d > 0 {
			out += fmt.Sprintf(" %s %.0f", reason, d)
		}
	}
	return out
}
